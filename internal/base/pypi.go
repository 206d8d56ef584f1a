package base

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// pypiJSON is PyPI's JSON API, which names a project's latest release.
const pypiJSON = "https://pypi.org/pypi/"

// pipPinsLatest reports whether every pin (name==version) is its project's
// latest release on PyPI, except the projects the recipe itself pins with
// ==, which never move. It asks PyPI once per project, in parallel: far
// quicker than a pip resolution, whose result it predicts when it says
// yes (the newest release of every project is what pip would pick). A no
// only means the full resolution must run.
func pipPinsLatest(ctx context.Context, client *http.Client, base string, specs, pins []string) (bool, error) {
	fixed := map[string]bool{}
	for _, s := range specs {
		if name, _, ok := strings.Cut(s, "=="); ok {
			fixed[normalizeProject(name)] = true
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		latest = true
		first  error
	)
	for _, pin := range pins {
		name, version, ok := strings.Cut(pin, "==")
		if !ok || fixed[normalizeProject(name)] {
			continue
		}
		wg.Go(func() {
			v, err := pypiLatest(ctx, client, base, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			if err != nil || v != version {
				latest = false
			}
		})
	}
	wg.Wait()
	return latest && first == nil, first
}

// pypiLatest returns the version of name's latest release.
func pypiLatest(ctx context.Context, client *http.Client, base, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+normalizeProject(name)+"/json", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("asking PyPI for %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("asking PyPI for %s: %s", name, resp.Status)
	}
	var v struct {
		Info struct {
			Version string `json:"version"`
		} `json:"info"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", fmt.Errorf("reading PyPI's answer for %s: %w", name, err)
	}
	return v.Info.Version, nil
}

// normalizeProject is a project name as PyPI's URLs take it (PEP 503).
func normalizeProject(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	return strings.NewReplacer("_", "-", ".", "-").Replace(name)
}
