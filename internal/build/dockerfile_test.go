package build

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/lambdabox/lambdabox/internal/image"
)

// TestDockerfileNative builds a Dockerfile natively on a stand-in base and
// checks the code layer and the config.
func TestDockerfileNative(t *testing.T) {
	base, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := base.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Env = []string{"LAMBDA_TASK_ROOT=/var/task", "PATH=/usr/bin"}
	cf.Config.WorkingDir = "/var/task"
	cf.Config.Entrypoint = []string{"/lambda-entrypoint.sh"}
	base, _ = mutate.ConfigFile(base, cf)
	layout := filepath.Join(t.TempDir(), "base.oci")
	if err := image.WriteLayout(layout, base, name.MustParseReference("x/base:1")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "unpacked.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	files := map[string]string{
		"Dockerfile": `ARG ROOT=/var/task
FROM public.ecr.aws/lambda/python:3.12
ARG ROOT
ENV GREETING=hello TARGET="${ROOT}/sub"
LABEL org.example.k="v w"
COPY app.py lib/ ${LAMBDA_TASK_ROOT}/
COPY cfg/*.json /etc/fn/
WORKDIR ${TARGET}
COPY notes.txt .
ADD archive.tar /opt/
COPY link /opt/link
CMD ["app.handler"]
`,
		"app.py":        "def handler(e, c): pass\n",
		"lib/util.py":   "x = 1\n",
		"cfg/a.json":    "{}",
		"cfg/b.json":    "{}",
		"cfg/c.txt":     "no",
		"notes.txt":     "n",
		"secret.env":    "S=1",
		".dockerignore": "*.env\n",
	}
	for n, c := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755)
		os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "archive.tar"), tb.Bytes(), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	res, err := Build(context.Background(), Config{Dir: dir, Base: layout, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := res.Image.ConfigFile()
	if g := strings.Join(got.Config.Cmd, " "); g != "app.handler" {
		t.Errorf("CMD %q", g)
	}
	if g := got.Config.WorkingDir; g != "/var/task/sub" {
		t.Errorf("WORKDIR %q", g)
	}
	if image.Getenv(got.Config.Env, "GREETING") != "hello" || image.Getenv(got.Config.Env, "TARGET") != "/var/task/sub" || image.Getenv(got.Config.Env, "PATH") != "/usr/bin" {
		t.Errorf("env %q", got.Config.Env)
	}
	if got.Config.Labels["org.example.k"] != "v w" || strings.Join(got.Config.Entrypoint, " ") != "/lambda-entrypoint.sh" {
		t.Errorf("labels %v entrypoint %v", got.Config.Labels, got.Config.Entrypoint)
	}
	ls, _ := res.Image.Layers()
	rc, _ := ls[len(ls)-1].Uncompressed()
	tree := image.NewTree()
	if err := tree.AddTar(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	want := "etc/fn/a.json etc/fn/b.json opt/unpacked.txt var/task/app.py var/task/sub/notes.txt var/task/util.py"
	if g := strings.Join(tree.Files(""), " "); g != want {
		t.Errorf("code layer files:\n%s\nwant\n%s", g, want)
	}
	if !tree.Has("opt/link") {
		t.Error("the symlink was not kept")
	}
	if _, ok := tree.File("opt/link"); ok {
		t.Error("the symlink out of the context was followed")
	}
}
