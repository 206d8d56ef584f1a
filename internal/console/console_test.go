package console

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestText(t *testing.T) {
	var out bytes.Buffer
	c, err := New(Config{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	c.Align([]string{"a", "longer"})
	a, b := c.For("a"), c.For("longer")
	a.Write([]byte("one\ntw"))
	b.Write([]byte("START RequestId: x\n"))
	a.Write([]byte("o\r\nthree"))
	a.Flush()
	want := "a      | one\nlonger | START RequestId: x\na      | two\na      | three\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
}

func TestColor(t *testing.T) {
	var out bytes.Buffer
	c, _ := New(Config{Out: &out, Color: true})
	c.For("f").Write([]byte("x\n"))
	if !strings.HasPrefix(out.String(), "\x1b[36mf |\x1b[0m x") {
		t.Errorf("%q", out.String())
	}
}

func TestJSON(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)
	c, _ := New(Config{Out: &out, Format: JSON, Now: func() time.Time { return now }})
	w := c.For("hello")
	w.Write([]byte("REPORT RequestId: 1\tDuration: 1 ms\nsaid \"hi\"\n"))
	var got []jsonLine
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var j jsonLine
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got = append(got, j)
	}
	want := []jsonLine{
		{"2026-12-02T03:04:05.000Z", "hello", "platform", "REPORT RequestId: 1\tDuration: 1 ms"},
		{"2026-12-02T03:04:05.000Z", "hello", "function", `said "hi"`},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v", got)
	}
	if _, err := New(Config{Out: &out, Format: "xml"}); err == nil {
		t.Error("no error for format xml")
	}
}

func TestLongLineIsCut(t *testing.T) {
	var out bytes.Buffer
	c, _ := New(Config{Out: &out})
	w := c.For("f")
	w.Write(bytes.Repeat([]byte("x"), maxPending+10))
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("%d lines written for an over-long partial line", n)
	}
}
