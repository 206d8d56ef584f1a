package invoke

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Written here rather than taken from aws-sdk-go-v2's eventstream package,
// so that the emulator of every base image carries no AWS SDK module (see
// TestEmulatorDependencies in cmd/lambdabox). The tests decode it with the
// SDK's decoder.

// maxEventHeaderValue is the longest string header value the event-stream
// format holds (its length is a signed 16-bit number).
const maxEventHeaderValue = 1<<15 - 1

// eventHeader is one string header of an event-stream message.
type eventHeader struct{ name, value string }

// encodeEvent writes one message of the AWS event-stream format
// (application/vnd.amazon.eventstream) to w in a single Write: a prelude
// of total and headers length with its CRC-32, the headers (each a 1-byte
// name length, the name, type 7 for a string, a 2-byte value length and
// the value), the payload, and the CRC-32 of all that came before.
func encodeEvent(w io.Writer, headers []eventHeader, payload []byte) error {
	hlen := 0
	for _, h := range headers {
		if len(h.name) == 0 || len(h.name) > 255 || len(h.value) > maxEventHeaderValue {
			return fmt.Errorf("encoding event header %q: name of 1 to 255 bytes and value of at most %d bytes", h.name, maxEventHeaderValue)
		}
		hlen += 1 + len(h.name) + 1 + 2 + len(h.value)
	}
	total := 12 + hlen + len(payload) + 4
	if uint64(total) > 1<<32-1 {
		return fmt.Errorf("encoding event: message of %d bytes is too long", total)
	}
	msg := make([]byte, 0, total)
	msg = binary.BigEndian.AppendUint32(msg, uint32(total))
	msg = binary.BigEndian.AppendUint32(msg, uint32(hlen))
	msg = binary.BigEndian.AppendUint32(msg, crc32.ChecksumIEEE(msg))
	for _, h := range headers {
		msg = append(msg, byte(len(h.name)))
		msg = append(msg, h.name...)
		msg = append(msg, 7) // string
		msg = binary.BigEndian.AppendUint16(msg, uint16(len(h.value)))
		msg = append(msg, h.value...)
	}
	msg = append(msg, payload...)
	msg = binary.BigEndian.AppendUint32(msg, crc32.ChecksumIEEE(msg))
	_, err := w.Write(msg)
	return err
}
