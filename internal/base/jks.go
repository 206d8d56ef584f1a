package base

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/pem"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/lambdabox/lambdabox/internal/image"
)

// javaCacerts is the Java trust store that Debian's ca-certificates-java
// maintainer script would generate: every certificate under
// usr/share/ca-certificates as a trusted entry of a JKS key store with
// the password "changeit", aliases "debian:<file>", dated at epoch. JKS
// has no salt or IV, so the same certificates give the same bytes; Java
// reads it whatever keystore.type says (keystore.type.compat).
func javaCacerts(t *image.Tree, epoch time.Time) []byte {
	type cert struct {
		alias string
		der   []byte
	}
	var certs []cert
	for _, p := range t.Paths() {
		if !strings.HasPrefix(p, "usr/share/ca-certificates/") || !strings.HasSuffix(p, ".crt") {
			continue
		}
		data, _ := t.File(p)
		alias := "debian:" + strings.ToLower(strings.TrimSuffix(path.Base(p), ".crt")) + ".pem"
		for n := 0; ; n++ {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			a := alias
			if n > 0 {
				a += "-" + strconv.Itoa(n)
			}
			certs = append(certs, cert{a, b.Bytes})
		}
	}
	var buf bytes.Buffer
	w := func(v any) { binary.Write(&buf, binary.BigEndian, v) }
	utf := func(s string) { w(uint16(len(s))); buf.WriteString(s) } // aliases are ASCII
	w(uint32(0xFEEDFEED))
	w(uint32(2))
	w(uint32(len(certs)))
	for _, c := range certs {
		w(uint32(2)) // trusted certificate entry
		utf(c.alias)
		w(epoch.UnixMilli())
		utf("X.509")
		w(uint32(len(c.der)))
		buf.Write(c.der)
	}
	h := sha1.New()
	for _, c := range utf16.Encode([]rune("changeit")) {
		h.Write([]byte{byte(c >> 8), byte(c)})
	}
	h.Write([]byte("Mighty Aphrodite"))
	h.Write(buf.Bytes())
	buf.Write(h.Sum(nil))
	return buf.Bytes()
}
