// Package watch calls a function when files change below some folders:
// fsnotify events, debounced, with editors' temporary files and folders of
// dependencies and caches (node_modules, __pycache__, .git, .aws-sam)
// ignored. Hot reload of lambdabox serve uses it.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the folders must be quiet before OnChange.
const DefaultDebounce = 50 * time.Millisecond

// Config configures a Watcher.
type Config struct {
	// Dirs are the folders watched, with every folder below them. Required.
	Dirs []string
	// Debounce is the quiet time after the last change before OnChange
	// runs; default DefaultDebounce.
	Debounce time.Duration
	// Ignore reports a file or folder name whose changes do not count;
	// default Ignored.
	Ignore func(name string) bool
	// OnChange runs once the folders have been quiet for Debounce after a
	// change, with the changed paths; never twice at once. Required.
	OnChange func(ctx context.Context, changed []string)
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if len(c.Dirs) == 0 {
		return errors.New("watch: no folders")
	}
	if c.OnChange == nil {
		return errors.New("watch: no OnChange")
	}
	return nil
}

// skipDirs are folders never watched.
var skipDirs = map[string]bool{"node_modules": true, "__pycache__": true, ".git": true, ".aws-sam": true, ".hg": true, ".idea": true, ".vscode": true}

// Ignored reports the names of editors' temporary and backup files
// (vim's .swp and 4913, emacs' #x# and .#x, x~, .DS_Store, ...), compiled
// Python files, and the folders skipped below.
func Ignored(name string) bool {
	switch {
	case skipDirs[name], name == "4913", name == ".DS_Store":
		return true
	case strings.HasSuffix(name, "~"), strings.HasPrefix(name, ".#"),
		strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"):
		return true
	}
	switch filepath.Ext(name) {
	case ".swp", ".swx", ".swo", ".tmp", ".pyc", ".crswap":
		return true
	}
	return strings.HasPrefix(name, ".goutputstream-") // gedit
}

// Watcher watches folders. Create it with New; Run watches.
type Watcher struct {
	cfg Config
	w   *fsnotify.Watcher
}

// New starts watching cfg.Dirs (the events are delivered once Run runs).
func New(cfg Config) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Ignore == nil {
		cfg.Ignore = Ignored
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching files: %w", err)
	}
	w := &Watcher{cfg: cfg, w: fw}
	for _, d := range cfg.Dirs {
		if err := w.addTree(d); err != nil {
			fw.Close()
			return nil, err
		}
	}
	return w, nil
}

// addTree watches dir and the folders below it.
func (w *Watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return fmt.Errorf("watching %s: %w", dir, err)
			}
			return nil // gone meanwhile
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && w.cfg.Ignore(d.Name()) {
			return filepath.SkipDir
		}
		if err := w.w.Add(p); err != nil {
			return fmt.Errorf("watching %s: %w", p, err)
		}
		return nil
	})
}

// Run delivers changes to OnChange until ctx ends, then stops watching.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var changed []string
	seen := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case err, ok := <-w.w.Errors:
			if !ok {
				return nil
			}
			return fmt.Errorf("watching files: %w", err)
		case ev, ok := <-w.w.Events:
			if !ok {
				return nil
			}
			if w.cfg.Ignore(filepath.Base(ev.Name)) || ev.Op == fsnotify.Chmod {
				continue
			}
			if ev.Op.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = w.addTree(ev.Name)
				}
			}
			if !seen[ev.Name] {
				seen[ev.Name] = true
				changed = append(changed, ev.Name)
			}
			timer.Reset(w.cfg.Debounce)
		case <-timer.C:
			w.cfg.OnChange(ctx, changed)
			changed, seen = nil, map[string]bool{}
		}
	}
}
