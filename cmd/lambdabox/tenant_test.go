package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// With --tenant-isolation an invoke without a tenant gets Lambda's 400;
// each tenant's invokes run in environments of their own, so two tenants
// never share a runtime process, even past --max-concurrency (an
// environment then changes tenant only through a restart); REPORT names
// the tenant; and an Event invoke carries its tenant through the queue.
func TestTenantIsolation(t *testing.T) {
	e := fakeRIE(t, "tenant", "--tenant-isolation", "--max-concurrency", "2")
	resp, body := e.invoke(t, "function", "{}")
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-Errortype") != "InvalidParameterValueException" {
		t.Errorf("no tenant: %d %s %s, want 400 InvalidParameterValueException", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body)
	}
	owner := map[int]string{} // pid -> tenant
	for _, tenant := range []string{"blue", "green", "blue", "green", "red", "blue", "red"} {
		resp, body := e.invoke(t, "function", "{}", "X-Amz-Tenant-Id", tenant)
		var got struct {
			Pid    int
			Tenant string
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("tenant %s: %d %s", tenant, resp.StatusCode, body)
		}
		if got.Tenant != tenant {
			t.Errorf("the runtime saw tenant %q, want %q", got.Tenant, tenant)
		}
		if o, ok := owner[got.Pid]; ok && o != tenant {
			t.Errorf("pid %d served tenants %s and %s", got.Pid, o, tenant)
		}
		owner[got.Pid] = tenant
		if line := reportLine(t, e, resp.Header.Get("X-Amzn-Requestid")); !strings.HasSuffix(line, "\tTenant Id: "+tenant) {
			t.Errorf("REPORT does not name tenant %s: %q", tenant, line)
		}
	}
	if len(owner) < 3 {
		t.Errorf("%d runtime processes for 3 tenants", len(owner))
	}

	resp, body = e.invoke(t, "function", "{}", "X-Amz-Tenant-Id", "amber", "X-Amz-Invocation-Type", "Event")
	if resp.StatusCode != 202 {
		t.Fatalf("Event: %d %s", resp.StatusCode, body)
	}
	waitFor(t, "the Event invoke of tenant amber", func() bool { return strings.Contains(e.Stdout.String(), " tenant=amber\n") })
	e.alive(t)
}

// The Telemetry API's platform.start, platform.runtimeDone and
// platform.report records of a tenant's invoke carry its tenantId, as
// AWS documents for tenant-isolated functions.
func TestTenantTelemetry(t *testing.T) {
	dir, record := recorderDir(t)
	e := startRIE(t, rieOpts{
		flags:   []string{"--extensions-dir", dir, "--function-name", "tenantfn", "--tenant-isolation"},
		command: []string{goFnBin, "ext.handler"},
		env:     []string{"EXT_RECORD=" + record},
	})
	resp, body := e.invoke(t, "tenantfn", `{"data":"x"}`, "X-Amz-Tenant-Id", "blue")
	if resp.StatusCode != 200 {
		t.Fatalf("invoke: %d %s", resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Amzn-Requestid")
	for _, kind := range []string{"platform.start", "platform.runtimeDone", "platform.report"} {
		waitFor(t, kind+" with tenantId blue", func() bool {
			return has(records(t, record), "telemetry", func(r map[string]any) bool {
				rec, _ := r["record"].(map[string]any)
				return r["type"] == kind && rec["requestId"] == id && rec["tenantId"] == "blue"
			})
		})
	}
}
