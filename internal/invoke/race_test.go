package invoke

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdabox/lambdabox/internal/environment"
	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/pool"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
)

// Buffered invokes of a function that streams its answer (as Node's
// streamifyResponse does) go through the Invoke API, a pool and its
// environments concurrently; under the race detector with two threads
// nothing is shared between the front and the settling environment (the
// front used to clear the Stream of the environment's own response).
func TestBufferedInvokesOfStreamingFunction(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	d := &sandboxtest.Driver{
		Handler: func(p []byte) ([]byte, error) { return p, nil },
		Stream: func([]byte) sandboxtest.StreamWriter {
			return func(_ context.Context, w io.Writer) error {
				_, err := w.Write([]byte(`{"streamed":true}`))
				return err
			}
		},
	}
	cfg := function.Config{Name: "f", Command: []string{"bootstrap"}, Dir: t.TempDir(), Timeout: 10 * time.Second}.WithDefaults()
	extDir := t.TempDir()
	p, err := pool.New(pool.Config{MaxConcurrency: 2, Queue: true, QueueTimeout: 10 * time.Second,
		New: func(int, bool) (*environment.Environment, error) {
			return environment.New(environment.Config{Function: cfg, Driver: d, ExtensionsDir: extDir, Output: io.Discard})
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	s := NewServer(nil)
	s.Add(cfg, p, nil)
	ts := httptest.NewServer(s)
	defer ts.Close()

	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for i := range 60 {
				req, _ := http.NewRequest(http.MethodPost, ts.URL+"/2015-03-31/functions/f/invocations", strings.NewReader("{}"))
				if i%2 == c%2 {
					req.Header.Set("X-Amz-Log-Type", "Tail")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != `{"streamed":true}` || resp.Header.Get("X-Amz-Function-Error") != "" {
					t.Errorf("client %d invoke %d: %d %s", c, i, resp.StatusCode, b)
					return
				}
			}
		})
	}
	wg.Wait()
}
