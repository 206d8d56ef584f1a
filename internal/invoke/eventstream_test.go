package invoke

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// TestEncodeEvent: the messages are byte for byte those of aws-sdk-go-v2's
// encoder, and its decoder reads them back.
func TestEncodeEvent(t *testing.T) {
	for _, payload := range [][]byte{nil, []byte(`{"ErrorCode":"Runtime.Error"}`), bytes.Repeat([]byte{0, 0xff, 'x'}, 256<<10/3)} {
		h := []eventHeader{{":message-type", "event"}, {":event-type", "PayloadChunk"}, {":content-type", "application/octet-stream"}}
		var got bytes.Buffer
		if err := encodeEvent(&got, h, payload); err != nil {
			t.Fatal(err)
		}
		var sh eventstream.Headers
		for _, x := range h {
			sh.Set(x.name, eventstream.StringValue(x.value))
		}
		var want bytes.Buffer
		if err := eventstream.NewEncoder().Encode(&want, eventstream.Message{Headers: sh, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("payload of %d bytes: encoded %d bytes, the SDK %d, and they differ", len(payload), got.Len(), want.Len())
		}
		m, err := eventstream.NewDecoder().Decode(&got, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Payload, payload) || m.Headers.Get(":event-type").String() != "PayloadChunk" {
			t.Errorf("decoded %d bytes of payload, headers %v", len(m.Payload), m.Headers)
		}
	}
	if err := encodeEvent(&bytes.Buffer{}, []eventHeader{{"x", strings.Repeat("v", maxEventHeaderValue+1)}}, nil); err == nil {
		t.Error("a header value too long for the format was encoded")
	}
}
