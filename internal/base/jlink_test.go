package base

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootSymlinks(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "usr/lib/jvm/j/conf")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/etc/j/net.properties", filepath.Join(conf, "net.properties"))
	os.Symlink("../lib/x", filepath.Join(conf, "rel"))
	if err := rootSymlinks(root); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(conf, "net.properties")); got != filepath.Join(root, "etc/j/net.properties") {
		t.Errorf("absolute link now points to %q", got)
	}
	if got, _ := os.Readlink(filepath.Join(conf, "rel")); got != "../lib/x" {
		t.Errorf("relative link changed to %q", got)
	}
}
