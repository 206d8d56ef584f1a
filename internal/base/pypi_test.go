package base

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestPipPinsLatest(t *testing.T) {
	latest := map[string]string{"awslambdaric": "4.3.0", "simplejson": "3.20.1", "snapshot-restore-py": "1.0.0"}
	var mu sync.Mutex
	asked := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/json")
		mu.Lock()
		asked[name]++
		mu.Unlock()
		v, ok := latest[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"info":{"version":"` + v + `"}}`))
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		specs, pins  []string
		want, hasErr bool
	}{
		{"all latest", []string{"awslambdaric"}, []string{"awslambdaric==4.3.0", "simplejson==3.20.1", "Snapshot_Restore.py==1.0.0"}, true, false},
		{"a dependency moved", []string{"awslambdaric"}, []string{"awslambdaric==4.3.0", "simplejson==3.19.0"}, false, false},
		{"the recipe pins an older release", []string{"awslambdaric==4.2.2"}, []string{"awslambdaric==4.2.2", "simplejson==3.20.1"}, true, false},
		{"unknown project", []string{"nosuch"}, []string{"nosuch==1.0"}, false, true},
	} {
		got, err := pipPinsLatest(ctx, srv.Client(), srv.URL+"/", tc.specs, tc.pins)
		if got != tc.want || (err != nil) != tc.hasErr {
			t.Errorf("%s: %v, %v; want %v (error %v)", tc.name, got, err, tc.want, tc.hasErr)
		}
	}
	if asked["awslambdaric"] != 2 || asked["snapshot-restore-py"] != 1 {
		t.Errorf("asked %v: the recipe's own == pin is never asked for, names are normalised", asked)
	}
}
