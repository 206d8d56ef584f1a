package controlplane

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkGetFunction is GetFunction over loopback HTTP (a bbolt read
// transaction and the JSON answer); BenchmarkFloor is the same request to
// a handler answering a fixed body of the same size: report the ratio.
func BenchmarkGetFunction(b *testing.B) {
	s, _ := newTestServer(b)
	if w := do(s, "POST", "/2015-03-31/functions", `{"FunctionName":"f","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"`+zipB64+`"}}`); w.Code != 201 {
		b.Fatal(w.Body)
	}
	s.wg.Wait()
	benchGet(b, s)
}

func BenchmarkFloor(b *testing.B) {
	s, _ := newTestServer(b)
	do(s, "POST", "/2015-03-31/functions", `{"FunctionName":"f","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"`+zipB64+`"}}`)
	s.wg.Wait()
	body := do(s, "GET", "/2015-03-31/functions/f", "").Body.Bytes()
	benchGet(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
}

func benchGet(b *testing.B, h http.Handler) {
	ts := httptest.NewServer(h)
	defer ts.Close()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Get(ts.URL + "/2015-03-31/functions/f")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}
