package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildNodeAddon builds testdata/node-addon, whose dependency
// unix-dgram is a native addon (nan and node-gyp, so tied to one Node ABI),
// without an engine: the addon is compiled against the image's Node 18 in a
// chroot of the base's Debian packages, whatever the host's Node. The image
// is loaded into Podman and invoked, and the addon sends a datagram to
// itself. A second build takes the dependency layer from the cache.
func TestBuildNodeAddon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the nodejs base and native addons build in a chroot: run as root")
	}
	requireTool(t, "podman", "bash .ci/images.sh")
	requireTool(t, "runc", "bash .ci/images.sh")
	requireTool(t, "dpkg-deb", "apt-get install -y dpkg")
	requireTool(t, "npm", "npm, any version")
	cache := buildCache(t)
	dir := filepath.Join(t.TempDir(), "node-addon")
	copyDir(t, "testdata/node-addon", dir)
	img := fmt.Sprintf("localhost/lambdabox-test/node-addon:b%d", os.Getpid())
	oci := filepath.Join(t.TempDir(), "addon.oci")
	args := []string{dir, "--cache", cache, "-t", img, "--load", "--output", "oci:" + oci}
	res := mustBuild(t, args...)
	t.Cleanup(func() { podmanRun(t, "rmi", "-f", img) })
	if len(res.digests("dependencies")) != 1 {
		t.Fatalf("layers %+v: want one dependencies layer", res.Layers)
	}
	sbom, _ := os.ReadFile(oci + ".spdx.json")
	if !bytes.Contains(sbom, []byte("pkg:npm/unix-dgram@2.0.7")) {
		t.Errorf("SBOM has no unix-dgram 2.0.7:\n%s", sbom)
	}
	addr := runImage(t, img)
	if body := curlInvoke(t, addr, `{"name":"addon"}`); !strings.Contains(body, `"echo":"echo addon","node":"18"`) {
		t.Fatalf("invoke: %s, want the addon's echo under Node 18", body)
	}
	again := mustBuild(t, dir, "--cache", cache, "--output", "oci:"+filepath.Join(t.TempDir(), "again.oci"))
	if again.Digest != res.Digest {
		t.Errorf("rebuild: digest %s, want %s (the dependency layer from the cache)", again.Digest, res.Digest)
	}

	// An addon that does not compile: the compiler's error, and no build
	// root left in the cache.
	pkg := writeFiles(t, t.TempDir(), map[string]string{
		"package/package.json": `{"name":"broken-addon","version":"1.0.0","main":"index.js"}`,
		"package/binding.gyp":  `{"targets":[{"target_name":"broken","sources":["broken.c"]}]}`,
		"package/broken.c":     "int broken(void) { return not_declared_anywhere; }\n",
		"package/index.js":     `module.exports = require("./build/Release/broken.node");`,
	})
	tgz := filepath.Join(pkg, "broken-addon-1.0.0.tgz")
	if out, err := exec.Command("tar", "czf", tgz, "-C", pkg, "package").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	broken := writeFiles(t, t.TempDir(), map[string]string{
		"package.json": `{"name":"fn","version":"1.0.0","dependencies":{"broken-addon":"file:` + tgz + `"}}`,
		"index.js":     "exports.handler = async () => require('broken-addon');\n",
	})
	_, _, err := lambdaboxBuild(t, broken, "--cache", cache, "--output", "oci:"+filepath.Join(t.TempDir(), "broken.oci"))
	if err == nil || !strings.Contains(err.Error(), "native addons (broken-addon)") || !strings.Contains(err.Error(), "not_declared_anywhere") {
		t.Fatalf("err = %v, want the compiler's error for broken-addon", err)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "addon-root-*")); len(left) > 0 {
		t.Errorf("build roots left in the cache: %v", left)
	}
}

// TestBuildNodeAddonForeignBase: with a base that is not lambdabox's, there
// is no Debian build root of the image's Node, so a native addon that the
// host's Node cannot build for the image is a clear error naming it.
func TestBuildNodeAddonForeignBase(t *testing.T) {
	if testing.Short() {
		t.Skip("reaches the npm registry: not in -short")
	}
	npm := requireTool(t, "npm", "npm, any version")
	if out, _ := exec.Command(filepath.Join(filepath.Dir(npm), "node"), "-p", "process.versions.node.split('.')[0] + ' ' + process.arch").Output(); strings.TrimSpace(string(out)) == "18 x64" {
		t.Skip("the host's Node is the image's: the addon builds on the host")
	}
	dir := filepath.Join(t.TempDir(), "node-addon")
	copyDir(t, "testdata/node-addon", dir)
	out := filepath.Join(t.TempDir(), "fn.oci")
	_, _, err := lambdaboxBuild(t, dir, "--cache", t.TempDir(), "--base", fakeBase(t), "--output", "oci:"+out)
	if err == nil || !strings.Contains(err.Error(), "native addons (unix-dgram)") || !strings.Contains(err.Error(), "only a lambdabox base") {
		t.Fatalf("err = %v, want a native addon error naming unix-dgram", err)
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Errorf("a failed build left %s", out)
	}
}
