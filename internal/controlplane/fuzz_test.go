package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lambdabox/lambdabox/internal/store"
)

// fakeRunner deploys nothing; names starting with "fail" fail to deploy.
type fakeRunner struct {
	mu       sync.Mutex
	deployed map[string]Function
	routes   map[string]Routing
	// during, when set, runs at the start of each Deploy; an error it
	// returns fails the deploy.
	during func(Function) error
}

func (r *fakeRunner) Deploy(_ context.Context, fn Function) error {
	if r.during != nil {
		if err := r.during(fn); err != nil {
			return err
		}
	}
	if strings.HasPrefix(fn.Name, "fail") || fn.Handler == "bad.handler" {
		return errTest
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deployed[fn.Name+":"+fn.Version] = fn
	return nil
}

func (r *fakeRunner) Undeploy(_ context.Context, name, version string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.deployed, name+":"+version)
	return nil
}

func (r *fakeRunner) Route(name, alias string, to *Routing) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if to == nil {
		delete(r.routes, name+":"+alias)
	} else {
		r.routes[name+":"+alias] = *to
	}
	return nil
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("the code cannot start")

func newTestServer(t testing.TB) (*Server, *fakeRunner) {
	st, err := store.Open(store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRunner{deployed: map[string]Function{}, routes: map[string]Routing{}}
	s, err := New(Config{Store: st, Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); st.Close() })
	return s, r
}

// bombB64 is a zip of two files that say they unzip to 150 MiB each
// (over Lambda's 250 MB), base64.
const bombB64 = "UEsDBAAAAAAAAAAAAAAAAAAAAQAAAAAAYAkBAAAAYXhQSwMEAAAAAAAAAAAAAAAAAAABAAAAAABgCQEAAABieFBLAQIAAAAAAAAAAAAAAAAAAAAAAQAAAAAAYAkBAAAAAAAAAAAAAAAAAAAAAABhUEsBAgAAAAAAAAAAAAAAAAAAAAABAAAAAABgCQEAAAAAAAAAAAAAAAAAIAAAAGJQSwUGAAAAAAIAAgBeAAAAQAAAAAAA"

// zipB64 is a zip with app.py, base64, for request bodies.
const zipB64 = "UEsDBBQAAAAAACodgl07ifaLBgAAAAYAAAAGAAAAYXBwLnB5eCA9IDEKUEsBAhQDFAAAAAAAKh2CXTuJ9osGAAAABgAAAAYAAAAAAAAAAAAAAIABAAAAAGFwcC5weVBLBQYAAAAAAQABADQAAAAqAAAAAAA="

func do(s http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

// Errors carry x-amzn-ErrorType and {"Type":"User","message":...}.
func TestErrorShapes(t *testing.T) {
	s, _ := newTestServer(t)
	create := `{"FunctionName":"f","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"` + zipB64 + `"}}`
	if w := do(s, "POST", "/2015-03-31/functions", create); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		typ                string
	}{
		{"POST", "/2015-03-31/functions", create, 409, "ResourceConflictException"},
		{"POST", "/2015-03-31/functions", strings.Replace(create, "python3.12", "python2.7", 1), 400, "InvalidParameterValueException"},
		{"POST", "/2015-03-31/functions", strings.Replace(create, `"f"`, `"g"`, 1)[:40], 400, "InvalidRequestContentException"},
		{"POST", "/2015-03-31/functions", strings.Replace(create, zipB64, "bm90IGEgemlw", 1), 400, "InvalidParameterValueException"},
		{"POST", "/2015-03-31/functions", strings.Replace(strings.Replace(create, zipB64, bombB64, 1), `"f"`, `"bomb"`, 1), 400, "InvalidParameterValueException"},
		{"PUT", "/2015-03-31/functions/f/code", `{"ZipFile":"` + bombB64 + `"}`, 400, "InvalidParameterValueException"},
		{"POST", "/2015-03-31/functions", `{"FunctionName":"` + strings.Repeat("x", 69905067) + `"}`, 413, "RequestEntityTooLargeException"},
		{"POST", "/2015-03-31/functions", `{"FunctionName":"bad name!","Code":{}}`, 400, "ValidationException"},
		{"GET", "/2015-03-31/functions/nope", "", 404, "ResourceNotFoundException"},
		{"GET", "/2015-03-31/functions/arn:aws:lambda:eu-west-3:123456789012:function:f", "", 404, "ResourceNotFoundException"},
		{"GET", "/2015-03-31/functions/999999999999:function:f", "", 404, "ResourceNotFoundException"},
		{"GET", "/2015-03-31/functions/f?Qualifier=7", "", 404, "ResourceNotFoundException"},
		{"GET", "/2015-03-31/functions/f/aliases/nope", "", 404, "ResourceNotFoundException"},
		{"PUT", "/2015-03-31/functions/f/configuration", `{"Timeout":0}`, 400, "ValidationException"},
		{"PUT", "/2015-03-31/functions/f/configuration", `{"Timeout":901}`, 400, "InvalidParameterValueException"},
		{"PUT", "/2015-03-31/functions/f/configuration", `{"MemorySize":127}`, 400, "ValidationException"},
		{"PUT", "/2015-03-31/functions/f/configuration", `{"Role":"notarole"}`, 400, "ValidationException"},
		{"PUT", "/2015-03-31/functions/f/configuration", `{"Description":"` + strings.Repeat("d", 257) + `"}`, 400, "ValidationException"},
		{"POST", "/2015-03-31/functions", strings.Replace(create, `"Role":"arn:aws:iam::123456789012:role/r",`, "", 1), 400, "ValidationException"},
		{"PUT", "/2015-03-31/functions/f/configuration", `{"Environment":{"Variables":{"AWS_REGION":"x"}}}`, 400, "InvalidParameterValueException"},
		{"PUT", "/2017-10-31/functions/f/concurrency", `{"ReservedConcurrentExecutions":-1}`, 400, "ValidationException"},
		{"PUT", "/2017-10-31/functions/f/concurrency", `{"ReservedConcurrentExecutions":901}`, 400, "InvalidParameterValueException"},
		{"DELETE", "/2015-03-31/functions/f?Qualifier=$LATEST", "", 400, "InvalidParameterValueException"},
		{"GET", "/2015-03-31/functions/?MaxItems=0", "", 400, "ValidationException"},
		{"GET", "/2017-10-31/functions/f:nope/concurrency", "", 400, "InvalidParameterValueException"},
		{"GET", "/2021-10-31/functions/f/url?Qualifier=live", "", 404, "ResourceNotFoundException"},
		{"PATCH", "/2015-03-31/nothing", "", 404, "UnknownOperationException"},
	} {
		w := do(s, c.method, c.path, c.body)
		var body map[string]string
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != c.status || w.Header().Get("X-Amzn-ErrorType") != c.typ || body["Type"] != "User" || body["message"] == "" {
			t.Errorf("%s %s: %d %s %s, want %d %s", c.method, c.path, w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body, c.status, c.typ)
		}
	}
}

// A create answers Pending at once; the deploy makes it Active, or Failed
// with the Runner's reason; an update is refused (409) while one runs.
func TestStateTransitions(t *testing.T) {
	s, r := newTestServer(t)
	for _, name := range []string{"ok", "failing"} {
		w := do(s, "POST", "/2015-03-31/functions", `{"FunctionName":"`+name+`","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"`+zipB64+`"}}`)
		if w.Code != 201 || !strings.Contains(w.Body.String(), `"State":"Pending"`) {
			t.Fatalf("create %s: %d %s", name, w.Code, w.Body)
		}
	}
	s.wg.Wait()
	var cfg configOut
	json.Unmarshal(do(s, "GET", "/2015-03-31/functions/ok/configuration", "").Body.Bytes(), &cfg)
	if cfg.State != "Active" || cfg.LastUpdateStatus != "Successful" {
		t.Errorf("ok: %s %s", cfg.State, cfg.LastUpdateStatus)
	}
	json.Unmarshal(do(s, "GET", "/2015-03-31/functions/failing/configuration", "").Body.Bytes(), &cfg)
	if cfg.State != "Failed" || cfg.StateReason != string(errTest) || cfg.StateReasonCode == "" {
		t.Errorf("failing: %+v", cfg)
	}
	if _, ok := r.deployed["ok:$LATEST"]; !ok {
		t.Errorf("deployed: %v", r.deployed)
	}
	// Hold the deploy lock: the update stays InProgress, and a second is a 409.
	s.deployMu.Lock()
	w1 := do(s, "PUT", "/2015-03-31/functions/ok/configuration", `{"Timeout":30}`)
	w2 := do(s, "PUT", "/2015-03-31/functions/ok/configuration", `{"Timeout":31}`)
	s.deployMu.Unlock()
	if w1.Code != 200 || !strings.Contains(w1.Body.String(), `"LastUpdateStatus":"InProgress"`) || w2.Code != 409 {
		t.Errorf("updates: %d %s; %d %s", w1.Code, w1.Body, w2.Code, w2.Body)
	}
	s.wg.Wait()
	if got := r.deployed["ok:$LATEST"].Timeout.Seconds(); got != 30 {
		t.Errorf("deployed timeout %v", got)
	}
	// An update whose code cannot start: LastUpdateStatus Failed with the
	// reason; the function stays Active (on its previous code).
	if w := do(s, "PUT", "/2015-03-31/functions/ok/configuration", `{"Handler":"bad.handler"}`); w.Code != 200 {
		t.Fatalf("update: %d %s", w.Code, w.Body)
	}
	s.wg.Wait()
	cfg = configOut{}
	json.Unmarshal(do(s, "GET", "/2015-03-31/functions/ok", "").Body.Bytes(), &struct{ Configuration *configOut }{&cfg})
	if cfg.State != "Active" || cfg.LastUpdateStatus != "Failed" || cfg.LastUpdateStatusReason != string(errTest) || cfg.LastUpdateStatusReasonCode == "" {
		t.Errorf("failed update: %+v", cfg)
	}
	// A version of it would not run: publishing is refused, and leaves
	// no version behind.
	if w := do(s, "POST", "/2015-03-31/functions/ok/versions", `{}`); w.Code != 409 || w.Header().Get("X-Amzn-ErrorType") != "ResourceConflictException" {
		t.Errorf("publish after a failed update: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/2015-03-31/functions/ok/versions", ""); strings.Contains(w.Body.String(), `"Version":"1"`) {
		t.Errorf("a version was left: %s", w.Body)
	}
}

// An alias points to $LATEST or a version, and with weights to two
// published versions at most, as AWS has it.
func TestAliasRouting(t *testing.T) {
	s, _ := newTestServer(t)
	if w := do(s, "POST", "/2015-03-31/functions", `{"FunctionName":"f","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Publish":true,"Code":{"ZipFile":"`+zipB64+`"}}`); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	for _, timeout := range []string{"4", "5"} { // versions 2 and 3
		do(s, "PUT", "/2015-03-31/functions/f/configuration", `{"Timeout":`+timeout+`}`)
		s.wg.Wait()
		if w := do(s, "POST", "/2015-03-31/functions/f/versions", `{}`); w.Code != 201 {
			t.Fatalf("publish: %d %s", w.Code, w.Body)
		}
	}
	for _, c := range []struct {
		method, path, body, status, typ string
	}{
		{"POST", "/2015-03-31/functions/f/aliases", `{"Name":"a","FunctionVersion":"1","RoutingConfig":{"AdditionalVersionWeights":{"2":0.3,"3":0.3}}}`, "400", "InvalidParameterValueException"},
		{"POST", "/2015-03-31/functions/f/aliases", `{"Name":"a","FunctionVersion":"$LATEST","RoutingConfig":{"AdditionalVersionWeights":{"1":0.5}}}`, "400", "InvalidParameterValueException"},
		{"POST", "/2015-03-31/functions/f/aliases", `{"Name":"a","FunctionVersion":"abc"}`, "400", "ValidationException"},
		{"POST", "/2015-03-31/functions/f/aliases", `{"Name":"a"}`, "400", "ValidationException"},
		{"POST", "/2015-03-31/functions/f/aliases", `{"Name":"a","FunctionVersion":"9"}`, "404", "ResourceNotFoundException"},
		{"POST", "/2015-03-31/functions/f/aliases", `{"Name":"a","FunctionVersion":"1","RoutingConfig":{"AdditionalVersionWeights":{"2":0.3}}}`, "201", ""},
		{"PUT", "/2015-03-31/functions/f/aliases/a", `{"FunctionVersion":"$LATEST"}`, "400", "InvalidParameterValueException"},
		{"PUT", "/2015-03-31/functions/f/aliases/a", `{"FunctionVersion":"$LATEST","RoutingConfig":{"AdditionalVersionWeights":{}}}`, "200", ""},
		{"POST", "/2015-03-31/functions/f/aliases", `{"Name":"b","FunctionVersion":"$LATEST","RoutingConfig":{"AdditionalVersionWeights":{}}}`, "201", ""},
		{"PUT", "/2015-03-31/functions/f/aliases/a", `{"FunctionVersion":"1","RoutingConfig":{"AdditionalVersionWeights":{"2":0.5}}}`, "200", ""},
	} {
		w := do(s, c.method, c.path, c.body)
		if strconv.Itoa(w.Code) != c.status || w.Header().Get("X-Amzn-ErrorType") != c.typ {
			t.Errorf("%s %s %s: %d %s %s, want %s %s", c.method, c.path, c.body, w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body, c.status, c.typ)
		}
	}
	if w := do(s, "DELETE", "/2015-03-31/functions/f?Qualifier=2", ""); w.Code != 409 || !strings.Contains(w.Body.String(), "used by alias a.") {
		t.Errorf("delete of a version an alias routes to: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/2017-10-31/functions/f/concurrency", ""); w.Code != 200 || w.Body.String() != "{}" {
		t.Errorf("concurrency of a function without any: %d %s, want {}", w.Code, w.Body)
	}
}

// ListFunctions pages hold 50 functions at most, and a marker names the
// last function of its page: one deleted meanwhile skips no other.
func TestListPages(t *testing.T) {
	s, _ := newTestServer(t)
	for i := range 55 {
		if w := do(s, "POST", "/2015-03-31/functions", fmt.Sprintf(`{"FunctionName":"f%02d","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"%s"}}`, i, zipB64)); w.Code != 201 {
			t.Fatalf("create: %d %s", w.Code, w.Body)
		}
	}
	s.wg.Wait()
	list := func(query string) (names []string, next string) {
		t.Helper()
		w := do(s, "GET", "/2015-03-31/functions/?"+query, "")
		var out struct {
			Functions  []configOut
			NextMarker string
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 {
			t.Fatalf("list %s: %d %s", query, w.Code, w.Body)
		}
		for _, f := range out.Functions {
			names = append(names, f.FunctionName)
		}
		return names, out.NextMarker
	}
	if names, next := list("MaxItems=100"); len(names) != 50 || next == "" {
		t.Errorf("MaxItems=100: %d functions, next %q; want 50 and a marker", len(names), next)
	}
	names, next := list("MaxItems=5")
	if strings.Join(names, ",") != "f00,f01,f02,f03,f04" {
		t.Fatalf("first page: %v", names)
	}
	if w := do(s, "DELETE", "/2015-03-31/functions/f02", ""); w.Code != 204 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if names, _ = list("MaxItems=5&Marker=" + next); strings.Join(names, ",") != "f05,f06,f07,f08,f09" {
		t.Errorf("second page after a delete: %v", names)
	}
	if w := do(s, "GET", "/2015-03-31/functions/?Marker=!!", ""); w.Code != 400 {
		t.Errorf("bad marker: %d %s", w.Code, w.Body)
	}
}

// CreateFunction takes a name, a full ARN or a partial ARN.
func TestCreateByARN(t *testing.T) {
	s, _ := newTestServer(t)
	for _, c := range []struct{ name, status, want string }{
		{"arn:aws:lambda:us-east-1:123456789012:function:viaarn", "201", "viaarn"},
		{"123456789012:function:viapartial", "201", "viapartial"},
		{"a.b", "400", ""},
		{"f:1", "400", ""},
		{strings.Repeat("n", 65), "400", ""},
	} {
		w := do(s, "POST", "/2015-03-31/functions", `{"FunctionName":"`+c.name+`","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"`+zipB64+`"}}`)
		var cfg configOut
		_ = json.Unmarshal(w.Body.Bytes(), &cfg)
		if strconv.Itoa(w.Code) != c.status || cfg.FunctionName != c.want {
			t.Errorf("create %s: %d %s, want %s %q", c.name, w.Code, w.Body, c.status, c.want)
		}
	}
	s.wg.Wait()
}

// PublishVersion's RevisionId and CodeSha256 preconditions hold also when
// nothing changed since the newest version (which is then returned).
func TestPublishPreconditions(t *testing.T) {
	s, _ := newTestServer(t)
	if w := do(s, "POST", "/2015-03-31/functions", `{"FunctionName":"p","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Publish":true,"Code":{"ZipFile":"`+zipB64+`"}}`); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	for _, c := range []struct {
		body, status, typ string
	}{
		{`{"RevisionId":"bad"}`, "412", "PreconditionFailedException"},
		{`{"CodeSha256":"bad"}`, "400", "InvalidParameterValueException"},
		{`{}`, "201", ""},
	} {
		w := do(s, "POST", "/2015-03-31/functions/p/versions", c.body)
		if strconv.Itoa(w.Code) != c.status || w.Header().Get("X-Amzn-ErrorType") != c.typ {
			t.Errorf("publish %s: %d %s %s, want %s %s", c.body, w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body, c.status, c.typ)
		}
	}
}

// An invocation the Invoke API hands on (it runs no such function): a
// function being created or whose creation failed gets 409
// ResourceConflictException with its state, as Lambda; one that does not
// exist 404 with the control plane's ARN.
func TestInvokeUnserved(t *testing.T) {
	s, _ := newTestServer(t)
	create := func(name string) {
		t.Helper()
		if w := do(s, "POST", "/2015-03-31/functions", `{"FunctionName":"`+name+`","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"`+zipB64+`"}}`); w.Code != 201 {
			t.Fatalf("create %s: %d %s", name, w.Code, w.Body)
		}
	}
	invoke := func(path, status, typ, msg string) {
		t.Helper()
		w := do(s, "POST", path, `{}`)
		var body map[string]string
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if strconv.Itoa(w.Code) != status || w.Header().Get("X-Amzn-ErrorType") != typ || !strings.Contains(body["message"], msg) {
			t.Errorf("invoke %s: %d %s %s, want %s %s %q", path, w.Code, w.Header().Get("X-Amzn-ErrorType"), w.Body, status, typ, msg)
		}
	}
	s.deployMu.Lock() // the deploy waits: the function stays Pending
	create("slow")
	invoke("/2015-03-31/functions/slow/invocations", "409", "ResourceConflictException", "The function is currently in the following state: Pending")
	invoke("/2021-11-15/functions/slow/response-streaming-invocations", "409", "ResourceConflictException", "state: Pending")
	s.deployMu.Unlock()
	create("failing")
	s.wg.Wait()
	invoke("/2015-03-31/functions/failing/invocations?Qualifier=$LATEST", "409", "ResourceConflictException", "state: Failed")
	invoke("/2015-03-31/functions/failing:7/invocations", "404", "ResourceNotFoundException", "Function not found: arn:aws:lambda:us-east-1:123456789012:function:failing:7")
	invoke("/2015-03-31/functions/nope/invocations", "404", "ResourceNotFoundException", "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope")
	// Active, but its last update could not start (as after a restart
	// with code that no longer starts): not served.
	create("later")
	s.wg.Wait()
	do(s, "PUT", "/2015-03-31/functions/later/configuration", `{"Handler":"bad.handler"}`)
	s.wg.Wait()
	invoke("/2015-03-31/functions/later/invocations", "409", "ResourceConflictException", "code could not be started: "+string(errTest))
	invoke("/2015-03-31/functions/bad%20name/invocations", "400", "ValidationException", "functionName")
}

// Publish: true answers with the new version, deployed.
func TestPublishOnUpdate(t *testing.T) {
	s, r := newTestServer(t)
	w := do(s, "POST", "/2015-03-31/functions", `{"FunctionName":"p","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Publish":true,"Code":{"ZipFile":"`+zipB64+`"}}`)
	if w.Code != 201 || !strings.Contains(w.Body.String(), `"Version":"1"`) || !strings.Contains(w.Body.String(), `"State":"Active"`) {
		t.Fatalf("create with Publish: %d %s", w.Code, w.Body)
	}
	do(s, "PUT", "/2015-03-31/functions/p/configuration", `{"Timeout":9}`)
	s.wg.Wait()
	w = do(s, "PUT", "/2015-03-31/functions/p/code", `{"ZipFile":"`+zipB64+`","Publish":true}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"Version":"2"`) || !strings.Contains(w.Body.String(), `"Timeout":9`) {
		t.Fatalf("update with Publish: %d %s", w.Code, w.Body)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.deployed["p:2"]; !ok {
		t.Errorf("version 2 not deployed: %v", r.deployed)
	}
}

// FuzzRequests sends arbitrary requests to the control plane: every one is
// answered, errors in Lambda's shape, without a panic.
func FuzzRequests(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/2015-03-31/functions", `{"FunctionName":"f","Runtime":"python3.12","Handler":"app.h","Code":{"ZipFile":"` + zipB64 + `"}}`},
		{"POST", "/2015-03-31/functions", `{"FunctionName":"i","PackageType":"Image","Code":{"ImageUri":"x:1"}}`},
		{"PUT", "/2015-03-31/functions/f/code", `{"ZipFile":"` + zipB64 + `","Publish":true}`},
		{"PUT", "/2015-03-31/functions/f/configuration", `{"Environment":{"Variables":{"A":"b"}},"MemorySize":256}`},
		{"POST", "/2015-03-31/functions/f/versions", `{"Description":"d"}`},
		{"POST", "/2015-03-31/functions/f/aliases", `{"Name":"live","FunctionVersion":"1","RoutingConfig":{"AdditionalVersionWeights":{"2":0.5}}}`},
		{"PUT", "/2015-03-31/functions/f/aliases/live", `{"FunctionVersion":"$LATEST"}`},
		{"PUT", "/2017-10-31/functions/f/concurrency", `{"ReservedConcurrentExecutions":5}`},
		{"POST", "/2021-10-31/functions/f/url", `{"AuthType":"NONE","Cors":{"AllowOrigins":["*"]}}`},
		{"GET", "/2015-03-31/functions/?MaxItems=1&Marker=1&FunctionVersion=ALL", ""},
		{"DELETE", "/2015-03-31/functions/f?Qualifier=1", ""},
		{"GET", "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:f:live/configuration", ""},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	s, _ := newTestServer(f)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n#") || len(body) > 1<<16 {
			return
		}
		req, err := http.NewRequest(method, "http://127.0.0.1"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code >= 400 {
			var e map[string]string
			if w.Header().Get("X-Amzn-ErrorType") == "" && w.Code != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: %d without X-Amzn-ErrorType: %s", method, path, w.Code, w.Body)
			}
			if w.Header().Get("X-Amzn-ErrorType") != "" && (json.Unmarshal(w.Body.Bytes(), &e) != nil || e["message"] == "") {
				t.Fatalf("%s %s: %d body %q", method, path, w.Code, w.Body)
			}
		}
	})
}

// A function deleted while its new version deploys (the delete removes it
// and prunes its code without waiting for the deploy, which then fails for
// want of its code) answers Publish with ResourceNotFoundException, not a
// service error. TestConcurrentClients found it as a rare 500.
func TestPublishWhileDeleted(t *testing.T) {
	s, r := newTestServer(t)
	create := `{"FunctionName":"gone","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"` + zipB64 + `"}}`
	if w := do(s, "POST", "/2015-03-31/functions", create); w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	s.wg.Wait() // $LATEST deployed
	r.during = func(fn Function) error {
		if fn.Version == "$LATEST" {
			return nil
		}
		if _, _, _, err := s.st.DeleteFunction(fn.Name); err != nil {
			t.Errorf("delete: %v", err)
		}
		return errors.New("code not found")
	}
	w := do(s, "POST", "/2015-03-31/functions/gone/versions", ``)
	if w.Code != http.StatusNotFound || w.Header().Get("X-Amzn-ErrorType") != "ResourceNotFoundException" {
		t.Errorf("publish while deleted: %d %s, want 404 ResourceNotFoundException", w.Code, w.Body)
	}
}

// Clients racing on the same functions get answers in Lambda's shapes
// (never a 5xx), and the store ends consistent.
func TestConcurrentClients(t *testing.T) {
	s, r := newTestServer(t)
	create := func(name string) string {
		return `{"FunctionName":"` + name + `","Runtime":"python3.12","Handler":"app.h","Role":"arn:aws:iam::123456789012:role/r","Code":{"ZipFile":"` + zipB64 + `"}}`
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				name := []string{"shared", "other"}[(g+i)%2]
				for _, req := range []struct{ method, path, body string }{
					{"POST", "/2015-03-31/functions", create(name)},
					{"PUT", "/2015-03-31/functions/" + name + "/configuration", `{"Timeout":` + strconv.Itoa(1+i) + `}`},
					{"POST", "/2015-03-31/functions/" + name + "/versions", ``},
					{"PUT", "/2015-03-31/functions/" + name + "/code", `{"ZipFile":"` + zipB64 + `","Publish":true}`},
					{"POST", "/2015-03-31/functions/" + name + "/aliases", `{"Name":"a` + strconv.Itoa(g) + `","FunctionVersion":"$LATEST"}`},
					{"PUT", "/2017-10-31/functions/" + name + "/concurrency", `{"ReservedConcurrentExecutions":2}`},
					{"GET", "/2015-03-31/functions/?FunctionVersion=ALL", ``},
					{"DELETE", "/2015-03-31/functions/" + name, ``},
				} {
					if w := do(s, req.method, req.path, req.body); w.Code >= 500 {
						t.Errorf("%s %s: %d %s", req.method, req.path, w.Code, w.Body)
					}
				}
			}
		})
	}
	wg.Wait()
	s.wg.Wait()
	// Whatever is left in the store is what the runner runs.
	fns, err := s.st.Functions()
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range fns {
		if f.State == "Active" {
			if _, ok := r.deployed[f.Name+":$LATEST"]; !ok {
				t.Errorf("%s is Active in the store but not deployed", f.Name)
			}
		}
	}
	for key := range r.routes {
		name, alias, _ := strings.Cut(key, ":")
		if _, err := s.st.Alias(name, alias); err != nil {
			t.Errorf("alias %s routed but not in the store: %v", key, err)
		}
	}
	for key := range r.deployed {
		name, _, _ := strings.Cut(key, ":")
		if _, err := s.st.Function(name); err != nil {
			t.Errorf("%s deployed but not in the store: %v", key, err)
		}
	}
}
