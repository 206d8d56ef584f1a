package base

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
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

func TestPruneJar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ric.jar")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := []string{"META-INF/MANIFEST.MF", "jni/libaws-lambda-jni.linux-x86_64.so", "jni/libaws-lambda-jni.linux_musl-x86_64.so",
		"jni/libaws-lambda-jni.linux-aarch_64.so", "jni/libaws-lambda-jni.linux_musl-aarch_64.so", "com/x/AWSLambda.class"}
	for _, n := range names {
		w, _ := zw.Create(n)
		w.Write([]byte(n))
	}
	zw.Close()
	for arch, keep := range map[string]string{"amd64": "linux-x86_64", "arm64": "linux-aarch_64"} {
		os.WriteFile(path, buf.Bytes(), 0o644)
		if err := pruneJar(path, arch); err != nil {
			t.Fatal(err)
		}
		first, _ := os.ReadFile(path)
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range zr.File {
			got = append(got, f.Name)
		}
		zr.Close()
		want := "META-INF/MANIFEST.MF jni/libaws-lambda-jni." + keep + ".so com/x/AWSLambda.class"
		if strings.Join(got, " ") != want {
			t.Errorf("%s: %s, want %s", arch, strings.Join(got, " "), want)
		}
		os.WriteFile(path, buf.Bytes(), 0o644)
		pruneJar(path, arch)
		if again, _ := os.ReadFile(path); !bytes.Equal(first, again) {
			t.Errorf("%s: pruning is not deterministic", arch)
		}
	}
}
