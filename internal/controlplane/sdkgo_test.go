package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func sdkClient(url string) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

type answer struct {
	Code, Version, Arn string
}

func sdkInvoke(t *testing.T, c *lambda.Client, name, qualifier string) (answer, string) {
	t.Helper()
	in := &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(`{"hello":"world"}`)}
	if qualifier != "" {
		in.Qualifier = aws.String(qualifier)
	}
	out, err := c.Invoke(context.Background(), in)
	if err != nil {
		t.Fatalf("invoke %s:%s: %v", name, qualifier, err)
	}
	if out.FunctionError != nil {
		t.Fatalf("invoke %s:%s: function error %s: %s", name, qualifier, *out.FunctionError, out.Payload)
	}
	var a answer
	if err := json.Unmarshal(out.Payload, &a); err != nil {
		t.Fatalf("answer %s: %v", out.Payload, err)
	}
	return a, aws.ToString(out.ExecutedVersion)
}

func waitActive(t *testing.T, c *lambda.Client, name string) error {
	t.Helper()
	return lambda.NewFunctionActiveV2Waiter(c, func(o *lambda.FunctionActiveV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	}).
		Wait(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(name)}, 30*time.Second)
}

func waitUpdated(t *testing.T, c *lambda.Client, name string) error {
	t.Helper()
	return lambda.NewFunctionUpdatedV2Waiter(c, func(o *lambda.FunctionUpdatedV2WaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 500*time.Millisecond
	}).
		Wait(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(name)}, 30*time.Second)
}

func errorCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// The whole flow through aws-sdk-go-v2: create (python and a Go
// provided.al2023 function), waiters, update, publish, aliases, invokes by
// version and alias, the function-wide settings, errors, a restart, delete.
func TestSDKGo(t *testing.T) {
	ctx := context.Background()
	l := startLocal(t, "")
	c := sdkClient(l.URL)

	out, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("py"), Runtime: types.RuntimePython312, Handler: aws.String("app.handler"),
		Role: aws.String("arn:aws:iam::123456789012:role/lambda"), Code: &types.FunctionCode{ZipFile: zipFiles(t, "", pyApp("v1"))},
		Environment: &types.Environment{Variables: map[string]string{"GREETING": "hi"}}, Timeout: aws.Int32(10),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != types.StatePending || aws.ToString(out.FunctionArn) != "arn:aws:lambda:us-east-1:123456789012:function:py" || aws.ToString(out.CodeSha256) == "" || out.CodeSize == 0 || aws.ToString(out.RevisionId) == "" || aws.ToString(out.Version) != "$LATEST" {
		t.Errorf("create: %+v", out)
	}
	if err := waitActive(t, c, "py"); err != nil {
		t.Fatal(err)
	}
	if a, v := sdkInvoke(t, c, "py", ""); a.Code != "v1" || v != "$LATEST" || a.Version != "$LATEST" {
		t.Errorf("first invoke: %+v on %s", a, v)
	}

	if _, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("py"), ZipFile: zipFiles(t, "", pyApp("v2"))}); err != nil {
		t.Fatal(err)
	}
	if err := waitUpdated(t, c, "py"); err != nil {
		t.Fatal(err)
	}
	if a, _ := sdkInvoke(t, c, "py", ""); a.Code != "v2" {
		t.Errorf("after update-function-code: %+v", a)
	}
	v1, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("py"), Description: aws.String("first")})
	if err != nil || aws.ToString(v1.Version) != "1" || !strings.HasSuffix(aws.ToString(v1.FunctionArn), ":py:1") {
		t.Fatalf("publish: %+v, %v", v1, err)
	}
	if again, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("py")}); err != nil || aws.ToString(again.Version) != "1" {
		t.Errorf("publish of unchanged code: %+v, %v", again, err)
	}
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("py"), MemorySize: aws.Int32(256)}); err != nil {
		t.Fatal(err)
	}
	if err := waitUpdated(t, c, "py"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("py"), ZipFile: zipFiles(t, "", pyApp("v3"))}); err != nil {
		t.Fatal(err)
	}
	if err := waitUpdated(t, c, "py"); err != nil {
		t.Fatal(err)
	}
	alias, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("py"), Name: aws.String("live"), FunctionVersion: aws.String("1")})
	if err != nil || aws.ToString(alias.AliasArn) != "arn:aws:lambda:us-east-1:123456789012:function:py:live" {
		t.Fatalf("create alias: %+v, %v", alias, err)
	}
	check := func(when string) {
		t.Helper()
		for _, c2 := range []struct{ q, code, version, arnSuffix string }{
			{"", "v3", "$LATEST", ":py"}, {"1", "v2", "1", ":py:1"}, {"live", "v2", "1", ":py:live"}, {"$LATEST", "v3", "$LATEST", ":py:$LATEST"},
		} {
			a, v := sdkInvoke(t, c, "py", c2.q)
			if a.Code != c2.code || v != c2.version || a.Version != c2.version || !strings.HasSuffix(a.Arn, c2.arnSuffix) {
				t.Errorf("%s: invoke with qualifier %q: %+v executed %s, want code %s on %s", when, c2.q, a, v, c2.code, c2.version)
			}
		}
	}
	check("before restart")

	// Function-wide settings.
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("py"), ReservedConcurrentExecutions: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("py")}); err != nil || aws.ToInt32(got.ReservedConcurrentExecutions) != 3 {
		t.Errorf("get concurrency: %+v, %v", got, err)
	}
	if got, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("py")}); err != nil || got.Concurrency == nil || aws.ToInt32(got.Concurrency.ReservedConcurrentExecutions) != 3 || got.Configuration.MemorySize == nil || *got.Configuration.MemorySize != 256 {
		t.Errorf("get function: %+v, %v", got, err)
	}
	url, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("py"), AuthType: types.FunctionUrlAuthTypeNone})
	if err != nil || !strings.HasPrefix(aws.ToString(url.FunctionUrl), "http://127.0.0.1:") || url.InvokeMode != types.InvokeModeBuffered {
		t.Errorf("create URL config: %+v, %v", url, err)
	}
	if resp, err := http.Get(aws.ToString(url.FunctionUrl)); err != nil {
		t.Errorf("function URL: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"code": "v3"`) && !strings.Contains(string(b), `"code":"v3"`) {
			t.Errorf("function URL %s: %d %s", aws.ToString(url.FunctionUrl), resp.StatusCode, b)
		}
	}
	if _, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("py"), AuthType: types.FunctionUrlAuthTypeNone}); errorCode(err) != "ResourceConflictException" {
		t.Errorf("second URL config: %v", err)
	}
	if u, err := c.UpdateFunctionUrlConfig(ctx, &lambda.UpdateFunctionUrlConfigInput{FunctionName: aws.String("py"), InvokeMode: types.InvokeModeResponseStream}); err != nil || u.InvokeMode != types.InvokeModeResponseStream {
		t.Errorf("update URL config: %+v, %v", u, err)
	}
	if _, err := c.DeleteFunctionUrlConfig(ctx, &lambda.DeleteFunctionUrlConfigInput{FunctionName: aws.String("py")}); err != nil {
		t.Error(err)
	}
	if resp, err := http.Get(aws.ToString(url.FunctionUrl)); err == nil {
		resp.Body.Close()
		t.Errorf("the function URL still answers after DeleteFunctionUrlConfig: %d", resp.StatusCode)
	}
	if _, err := c.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("py")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("URL config after delete: %v", err)
	}
	// Reserved concurrency 0 throttles every invoke, as Lambda does; its
	// removal lets them run again.
	if _, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("py"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("py"), Payload: []byte(`{}`)}, func(o *lambda.Options) { o.RetryMaxAttempts = 1 })
	if tm := new(types.TooManyRequestsException); !errors.As(err, &tm) || tm.Reason != types.ThrottleReasonReservedFunctionConcurrentInvocationLimitExceeded {
		t.Errorf("invoke with reserved concurrency 0: %v, want TooManyRequestsException (ReservedFunctionConcurrentInvocationLimitExceeded)", err)
	}
	if _, err := c.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("py")}); err != nil {
		t.Error(err)
	}
	if a, _ := sdkInvoke(t, c, "py", ""); a.Code != "v3" {
		t.Errorf("invoke once the reserved concurrency is deleted: %+v", a)
	}

	// A Go function on provided.al2023.
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("gofn"), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::123456789012:role/lambda"), Code: &types.FunctionCode{ZipFile: zipFiles(t, "", map[string]string{"bootstrap*": string(goBootstrap(t))})},
		Environment: &types.Environment{Variables: map[string]string{"CODE": "go1"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := waitActive(t, c, "gofn"); err != nil {
		t.Fatal(err)
	}
	if a, v := sdkInvoke(t, c, "gofn", ""); a.Code != "go1" || v != "$LATEST" {
		t.Errorf("go function: %+v on %s", a, v)
	}

	// Tenant isolation: an invoke must name its tenant.
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("tenant"), Runtime: types.RuntimePython312, Handler: aws.String("app.handler"), Role: aws.String("arn:aws:iam::123456789012:role/r"),
		Code: &types.FunctionCode{ZipFile: zipFiles(t, "", pyApp("t1"))}, TenancyConfig: &types.TenancyConfig{TenantIsolationMode: types.TenantIsolationModePerTenant},
	}); err != nil {
		t.Fatal(err)
	}
	if err := waitActive(t, c, "tenant"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("tenant")}); err != nil || got.Configuration.TenancyConfig == nil || got.Configuration.TenancyConfig.TenantIsolationMode != types.TenantIsolationModePerTenant {
		t.Errorf("tenancy config: %+v, %v", got, err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("tenant")}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("invoke without a tenant id: %v", err)
	}
	if out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("tenant"), TenantId: aws.String("acme")}); err != nil || out.FunctionError != nil {
		t.Errorf("invoke with a tenant id: %+v, %v", out, err)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("tenant")}); err != nil {
		t.Fatal(err)
	}

	// Errors in Lambda's shapes.
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nope")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("invoke of an unknown function: %v", err)
	}
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("py"), Runtime: types.RuntimePython312, Handler: aws.String("app.handler"),
		Role: aws.String("arn:aws:iam::123456789012:role/r"), Code: &types.FunctionCode{ZipFile: zipFiles(t, "", pyApp("x"))}}); errorCode(err) != "ResourceConflictException" {
		t.Errorf("create twice: %v", err)
	}
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("bad"), Runtime: "cobol85", Handler: aws.String("app.handler"),
		Role: aws.String("arn:aws:iam::123456789012:role/r"), Code: &types.FunctionCode{ZipFile: zipFiles(t, "", pyApp("x"))}}); errorCode(err) != "InvalidParameterValueException" {
		t.Errorf("bad runtime: %v", err)
	}
	if _, err := c.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("py"), Name: aws.String("nope")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("unknown alias: %v", err)
	}
	if _, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("py"), Name: aws.String("x"), FunctionVersion: aws.String("9")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("alias of an unknown version: %v", err)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("py"), Qualifier: aws.String("1")}); errorCode(err) != "ResourceConflictException" {
		t.Errorf("delete of a version an alias uses: %v", err)
	}
	// Code that cannot start: State Failed with the reason; the waiter fails.
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("broken"), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("x"),
		Role: aws.String("arn:aws:iam::123456789012:role/r"), Code: &types.FunctionCode{ZipFile: zipFiles(t, "", map[string]string{"README": "no bootstrap"})}}); err != nil {
		t.Fatal(err)
	}
	if err := waitActive(t, c, "broken"); err == nil {
		t.Error("function-active-v2 waiter succeeded for a function that cannot start")
	}
	if got, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("broken")}); err != nil || got.State != types.StateFailed || !strings.Contains(aws.ToString(got.StateReason), "bootstrap") {
		t.Errorf("broken function: %+v, %v", got, err)
	}
	// The Invoke API runs no such function and hands the invoke on.
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("broken")}); errorCode(err) != "ResourceConflictException" || !strings.Contains(err.Error(), "state: Failed") {
		t.Errorf("invoke of a Failed function: %v, want ResourceConflictException", err)
	}

	// Listing, with paging.
	var names []string
	for p := lambda.NewListFunctionsPaginator(c, &lambda.ListFunctionsInput{MaxItems: aws.Int32(1)}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range page.Functions {
			names = append(names, aws.ToString(f.FunctionName))
		}
	}
	if strings.Join(names, ",") != "broken,gofn,py" {
		t.Errorf("ListFunctions: %v", names)
	}
	if vs, err := c.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("py")}); err != nil || len(vs.Versions) != 2 {
		t.Errorf("ListVersionsByFunction: %+v, %v", vs, err)
	}

	// State survives a restart, function URLs with their address.
	goURL, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("gofn"), AuthType: types.FunctionUrlAuthTypeNone})
	if err != nil {
		t.Fatal(err)
	}
	l.stop(t)
	l = startLocal(t, l.dir)
	c = sdkClient(l.URL)
	check("after restart")
	if a, _ := sdkInvoke(t, c, "gofn", ""); a.Code != "go1" {
		t.Errorf("go function after restart: %+v", a)
	}
	if u, err := c.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("gofn")}); err != nil || aws.ToString(u.FunctionUrl) != aws.ToString(goURL.FunctionUrl) {
		t.Errorf("function URL after restart: %v, %v; want %s", u, err, aws.ToString(goURL.FunctionUrl))
	} else if resp, err := http.Get(aws.ToString(u.FunctionUrl)); err != nil {
		t.Errorf("function URL after restart: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "go1") {
			t.Errorf("function URL after restart: %d %s", resp.StatusCode, b)
		}
	}
	// Its port taken meanwhile, the URL moves to another.
	l.stop(t)
	taken, err := net.Listen("tcp", strings.TrimSuffix(strings.TrimPrefix(aws.ToString(goURL.FunctionUrl), "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	l = startLocal(t, l.dir)
	c = sdkClient(l.URL)
	if u, err := c.GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("gofn")}); err != nil || aws.ToString(u.FunctionUrl) == aws.ToString(goURL.FunctionUrl) {
		t.Errorf("function URL after a restart with its port taken: %v, %v", u, err)
	} else if resp, err := http.Get(aws.ToString(u.FunctionUrl)); err != nil {
		t.Errorf("moved function URL: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("moved function URL: %d", resp.StatusCode)
		}
	}

	// Aliases move; versions and functions go.
	if _, err := c.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("py"), Name: aws.String("live"), FunctionVersion: aws.String("$LATEST")}); err != nil {
		t.Fatal(err)
	}
	if a, v := sdkInvoke(t, c, "py", "live"); a.Code != "v3" || v != "$LATEST" {
		t.Errorf("alias moved to $LATEST: %+v on %s", a, v)
	}
	if as, err := c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("py")}); err != nil || len(as.Aliases) != 1 {
		t.Errorf("ListAliases: %+v, %v", as, err)
	}
	if _, err := c.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("py"), Name: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("py"), Qualifier: aws.String("1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("py"), Qualifier: aws.String("1")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("invoke of a deleted version: %v", err)
	}
	for _, name := range []string{"py", "gofn", "broken"} {
		if _, err := c.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("py")}); errorCode(err) != "ResourceNotFoundException" || !strings.Contains(err.Error(), ":123456789012:function:py") {
		t.Errorf("invoke after delete: %v", err)
	}
	if _, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("py")}); errorCode(err) != "ResourceNotFoundException" {
		t.Errorf("get after delete: %v", err)
	}
}

// An update whose code cannot start leaves the function on its code and
// configuration of before (LastUpdateStatus Failed), as Lambda, also
// after a restart; an update that starts ends that.
func TestFailedUpdateKeepsCodeAcrossRestart(t *testing.T) {
	l := startLocal(t, "")
	c := sdkClient(l.URL)
	ctx := context.Background()
	good := zipFiles(t, "", map[string]string{"bootstrap*": string(goBootstrap(t))})
	if _, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("keep"), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::123456789012:role/lambda"), Code: &types.FunctionCode{ZipFile: good},
		Environment: &types.Environment{Variables: map[string]string{"CODE": "before"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := waitActive(t, c, "keep"); err != nil {
		t.Fatal(err)
	}
	// GetFunction's Code.Location gives the zip back.
	got, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("keep")})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(aws.ToString(got.Code.Location)); err != nil {
		t.Errorf("Code.Location: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(b, good) {
			t.Errorf("Code.Location %s: %d, %d bytes, want the %d of the zip", aws.ToString(got.Code.Location), resp.StatusCode, len(b), len(good))
		}
	}
	if _, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("keep"),
		ZipFile: zipFiles(t, "", map[string]string{"README": "no bootstrap"})}); err != nil {
		t.Fatal(err)
	}
	if err := waitUpdated(t, c, "keep"); err == nil {
		t.Fatal("function-updated-v2 waiter succeeded for code that cannot start")
	}
	for _, when := range []string{"after the failed update", "after a restart"} {
		if a, _ := sdkInvoke(t, c, "keep", ""); a.Code != "before" {
			t.Errorf("%s: %+v, want the code of before", when, a)
		}
		if got, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("keep")}); err != nil || got.LastUpdateStatus != types.LastUpdateStatusFailed {
			t.Errorf("%s: %+v, %v", when, got, err)
		}
		l.stop(t)
		l = startLocal(t, l.dir)
		c = sdkClient(l.URL)
	}
	if _, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("keep"), ZipFile: good}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("keep"),
		Environment: &types.Environment{Variables: map[string]string{"CODE": "after"}}}); err != nil {
		// The code update may still be in progress: wait, then again.
		if err := waitUpdated(t, c, "keep"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("keep"),
			Environment: &types.Environment{Variables: map[string]string{"CODE": "after"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := waitUpdated(t, c, "keep"); err != nil {
		t.Fatal(err)
	}
	if a, _ := sdkInvoke(t, c, "keep", ""); a.Code != "after" {
		t.Errorf("after a good update: %+v", a)
	}
}
