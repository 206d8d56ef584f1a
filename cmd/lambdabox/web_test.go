package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// get sends an HTTP request to a front and returns the response and body.
func httpDo(t *testing.T, method, url, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func jsonBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}

func jsonEq(t *testing.T, what string, got any, want string) {
	t.Helper()
	g, _ := json.Marshal(got)
	var w any
	_ = json.Unmarshal([]byte(want), &w)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(g, wb) {
		t.Errorf("%s = %s, want %s", what, g, wb)
	}
}

func binaryBody() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestFunctionURLPython(t *testing.T) {
	addr := freeAddr(t)
	pythonRIE(t, "web.handler", "--function-url", addr)
	url := "http://" + addr
	resp, b := httpDo(t, http.MethodGet, url+"/path/x?a=1&a=2&b=3", "", nil, "Cookie", "c1=v1; c2=v2", "X-Multi", "one", "X-Multi", "two")
	if resp.StatusCode != 201 || resp.Header.Get("X-Handler") != "python" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 2 || c[0] != "session=abc; Path=/" || c[1] != "theme=dark" {
		t.Errorf("Set-Cookie %q", c)
	}
	m := jsonBody(t, b)
	jsonEq(t, "version", m["version"], `"2.0"`)
	jsonEq(t, "routeKey", m["routeKey"], `"$default"`)
	jsonEq(t, "rawPath", m["rawPath"], `"/path/x"`)
	jsonEq(t, "rawQueryString", m["rawQueryString"], `"a=1&a=2&b=3"`)
	jsonEq(t, "cookies", m["cookies"], `["c1=v1","c2=v2"]`)
	jsonEq(t, "queryStringParameters", m["queryStringParameters"], `{"a":"1,2","b":"3"}`)
	jsonEq(t, "method", m["method"], `"GET"`)

	resp, b = httpDo(t, http.MethodPost, url+"/bin", "application/octet-stream", binaryBody())
	if resp.StatusCode != 200 || !bytes.Equal(b, binaryBody()) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("binary round trip: %d %v %d bytes", resp.StatusCode, resp.Header, len(b))
	}
	_, b = httpDo(t, http.MethodPost, url+"/json", "application/json", []byte(`{"k":"v"}`))
	m = jsonBody(t, b)
	jsonEq(t, "text body", m["body"], `"{\"k\":\"v\"}"`)
	jsonEq(t, "isBase64Encoded", m["isBase64Encoded"], `false`)
}

func TestFunctionURLGo(t *testing.T) {
	addr := freeAddr(t)
	startRIE(t, rieOpts{flags: []string{"--function-url", addr, "--function-url-streaming"}, command: []string{goWebBin}})
	url := "http://" + addr
	resp, b := httpDo(t, http.MethodPut, url+"/things?q=go", "text/plain", []byte("hello"), "Cookie", "k=v")
	if resp.StatusCode != 200 || resp.Header.Get("Set-Cookie") != "from=go" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
	m := jsonBody(t, b)
	jsonEq(t, "seen", m, `{"rawPath":"/things","rawQueryString":"q=go","cookies":["k=v"],"query":{"q":"go"},"method":"PUT","body":"hello"}`)
	resp, b = httpDo(t, http.MethodPost, url+"/bin", "application/octet-stream", binaryBody())
	if resp.StatusCode != 200 || !bytes.Equal(b, binaryBody()) {
		t.Errorf("binary round trip: %d %d bytes", resp.StatusCode, len(b))
	}
}

func TestAPIGatewayRoutes(t *testing.T) {
	addr := freeAddr(t)
	pythonRIE(t, "web.handler", "--api-address", addr, "--route", "GET /items/{id}", "--rest-route", "POST /legacy/{proxy+}")
	url := "http://" + addr

	_, b := httpDo(t, http.MethodGet, url+"/items/42?x=1", "", nil)
	m := jsonBody(t, b)
	jsonEq(t, "pathParameters", m["pathParameters"], `{"id":"42"}`)
	jsonEq(t, "routeKey", m["routeKey"], `"GET /items/{id}"`)
	jsonEq(t, "version", m["version"], `"2.0"`)

	resp, b := httpDo(t, http.MethodPost, url+"/legacy/a/b/c?m=1&m=2", "application/json", []byte(`{"v1":true}`), "Cookie", "z=1")
	if resp.StatusCode != 201 || len(resp.Header.Values("Set-Cookie")) != 2 {
		t.Errorf("REST: %d %v", resp.StatusCode, resp.Header)
	}
	m = jsonBody(t, b)
	jsonEq(t, "resource", m["resource"], `"/legacy/{proxy+}"`)
	jsonEq(t, "path", m["path"], `"/legacy/a/b/c"`)
	jsonEq(t, "httpMethod", m["httpMethod"], `"POST"`)
	jsonEq(t, "pathParameters", m["pathParameters"], `{"proxy":"a/b/c"}`)
	jsonEq(t, "multiValueQueryStringParameters", m["multiValueQueryStringParameters"], `{"m":["1","2"]}`)
	jsonEq(t, "body", m["body"], `"{\"v1\":true}"`)

	if resp, _ := httpDo(t, http.MethodGet, url+"/nowhere", "", nil); resp.StatusCode != 404 {
		t.Errorf("unknown route: %d", resp.StatusCode)
	}
	if resp, _ := httpDo(t, http.MethodDelete, url+"/items/1", "", nil); resp.StatusCode != 404 {
		t.Errorf("wrong method: %d", resp.StatusCode)
	}
}

func TestAPIGatewayFromSAMTemplate(t *testing.T) {
	tpl := filepath.Join(t.TempDir(), "template.yaml")
	err := os.WriteFile(tpl, []byte(`Transform: AWS::Serverless-2016-10-31
Resources:
  Web:
    Type: AWS::Serverless::Function
    Properties:
      Handler: web.handler
      Runtime: python3.11
      Timeout: 7
      Environment:
        Variables:
          FROM_TEMPLATE: "yes"
      Events:
        Rest:
          Type: Api
          Properties:
            Path: /rest/{id}
            Method: get
        Http:
          Type: HttpApi
          Properties:
            Path: /http/{proxy+}
            Method: ANY
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	e := pythonRIE(t, "web.handler", "--template", tpl, "--api-address", addr)
	url := "http://" + addr
	_, b := httpDo(t, http.MethodGet, url+"/rest/7", "", nil)
	m := jsonBody(t, b)
	jsonEq(t, "REST resource", m["resource"], `"/rest/{id}"`)
	jsonEq(t, "REST params", m["pathParameters"], `{"id":"7"}`)
	_, b = httpDo(t, http.MethodPatch, url+"/http/x/y", "", nil)
	m = jsonBody(t, b)
	jsonEq(t, "HTTP API routeKey", m["routeKey"], `"ANY /http/{proxy+}"`)
	jsonEq(t, "HTTP API params", m["pathParameters"], `{"proxy":"x/y"}`)
	// The function takes the template's name, timeout and variables.
	resp, _ := e.invoke(t, "Web", `{}`)
	if resp.StatusCode != 200 {
		t.Errorf("invoke by logical id: %d", resp.StatusCode)
	}
	if !strings.Contains(e.Stderr.String(), "function=Web") {
		t.Errorf("function not named after the template")
	}
}

// curlChunks runs curl --no-buffer and timestamps what arrives.
func curlChunks(t *testing.T, url string) (header string, chunks []chunk) {
	t.Helper()
	curl := requireTool(t, "curl", "apt-get install curl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, "-sS", "-i", "--no-buffer", url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	var head strings.Builder
	for {
		line, err := r.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunks = append(chunks, chunk{string(buf[:n]), time.Now()})
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("curl: %v", err)
	}
	return head.String(), chunks
}

func TestFunctionURLStreamingWithCurl(t *testing.T) {
	for name, start := range map[string]func(t *testing.T, addr string){
		"node": func(t *testing.T, addr string) {
			nodeRIE(t, "stream.url", "--function-url", addr, "--function-url-streaming")
		},
		"go": func(t *testing.T, addr string) {
			startRIE(t, rieOpts{flags: []string{"--function-url", addr, "--function-url-streaming"}, command: []string{goWebBin}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			addr := freeAddr(t)
			start(t, addr)
			header, chunks := curlChunks(t, "http://"+addr+"/stream")
			if !strings.Contains(header, "X-From: "+name) || !strings.HasPrefix(header, "HTTP/1.1 20") {
				t.Errorf("header:\n%s", header)
			}
			if name == "node" && !strings.Contains(header, "Set-Cookie: flavour=oat") {
				t.Errorf("no cookie in\n%s", header)
			}
			var all string
			for _, c := range chunks {
				all += c.data
			}
			if strings.Count(all, "part") != 5 {
				t.Fatalf("body %q", all)
			}
			if len(chunks) < 3 || chunks[len(chunks)-1].at.Sub(chunks[0].at) < 500*time.Millisecond {
				t.Errorf("%d chunks over %v: the body was buffered", len(chunks), chunks[len(chunks)-1].at.Sub(chunks[0].at))
			}
		})
	}
}

func TestFunctionURLBadInput(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startRIE(t, rieOpts{flags: []string{"--function-url", addr, "--function-url-streaming"}, command: []string{self},
		env: []string{"LAMBDABOX_TEST_RUNTIME=badprelude"}})
	url := "http://" + addr
	if resp, b := httpDo(t, http.MethodGet, url+"/", "", nil); resp.StatusCode != 502 {
		t.Errorf("prelude without NULs: %d %s", resp.StatusCode, b)
	}
	// A header over Go's 1 MiB limit is refused before any invoke.
	resp, _ := httpDo(t, http.MethodGet, url+"/", "", nil, "X-Huge", strings.Repeat("h", 2<<20))
	if resp.StatusCode != 431 {
		t.Errorf("huge header: %d", resp.StatusCode)
	}
	if resp, _ := httpDo(t, http.MethodGet, url+"/", "", nil); resp.StatusCode != 502 {
		t.Errorf("the front did not survive: %d", resp.StatusCode)
	}
}
