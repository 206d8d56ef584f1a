package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"

	"github.com/lambdabox/lambdabox/internal/sandbox"
	"github.com/lambdabox/lambdabox/internal/sandbox/sandboxtest"
)

// testImage is the image the tests run: the host's /bin/sh and its
// libraries, and the fake runtime at fakePath.
const fakePath = "/lambdabox/fake"

// testImage is tagged with the test process's pid: test runs of the
// package may overlap (go test -race beside go test).
var testImage = "localhost/lambdabox-container-test:" + strconv.Itoa(os.Getpid())

// tmpRoot is the tests' TMPDIR, bound into the containers at the same
// path, so that a test's temporary directories are the container's too.
var tmpRoot string

func TestMain(m *testing.M) {
	if os.Getenv(ownerHelper) != "" {
		helperBin, testImage, _ = strings.Cut(os.Getenv(ownerHelper), " ")
		runOwner()
		return
	}
	var err error
	if tmpRoot, err = os.MkdirTemp("", "lambdabox-container-test-"); err != nil {
		panic(err)
	}
	_ = os.Chmod(tmpRoot, 0o755)
	os.Setenv("TMPDIR", tmpRoot)
	code := m.Run()
	if imageLoaded {
		if e, err := Connect(context.Background(), Config{Helper: helperBin}); err == nil {
			_, _ = e.cli.ImageRemove(context.Background(), testImage, client.ImageRemoveOptions{Force: true})
			_ = e.Close(context.Background())
		}
	}
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// connect connects to the engine of $DOCKER_HOST (or the default), or
// skips the test when none answers.
func connect(t testing.TB) *Engine {
	t.Helper()
	e, err := Connect(context.Background(), Config{Helper: helperBinary(t)})
	if errors.Is(err, ErrNoEngine) {
		t.Skipf("%v; start one (podman system service --time=0 unix:///run/lambdabox-podman.sock) and set DOCKER_HOST, as .ci/run does", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("Engine.Close: %v", err)
		}
	})
	loadImage(t, e)
	return e
}

var (
	helperOnce sync.Once
	helperBin  string // testdata/fake, built static: the helper and the fake runtime
	helperErr  error
)

// helperBinary builds testdata/fake once.
func helperBinary(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		helperBin = filepath.Join(tmpRoot, "helper", HelperName)
		cmd := exec.Command("go", "build", "-o", helperBin, "./testdata/fake")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperErr = errors.New("go build: " + err.Error() + ": " + string(out))
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperBin
}

var (
	imageOnce   sync.Once
	imageErr    error
	imageLoaded bool
)

// loadImage builds the test image and loads it into e's engine, once.
func loadImage(t testing.TB, e *Engine) {
	t.Helper()
	imageOnce.Do(func() { imageErr = buildImage(e) })
	if imageErr != nil {
		t.Fatalf("building the test image: %v", imageErr)
	}
}

func buildImage(e *Engine) error {
	files := map[string]string{"/bin/sh": "/bin/sh", fakePath: e.helper}
	out, err := exec.Command("ldd", "/bin/sh").Output()
	if err != nil {
		return errors.New("ldd /bin/sh: " + err.Error())
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			files[f] = f
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdir := func(d string) {
		if !dirs[d] {
			dirs[d] = true
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755})
		}
	}
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777})
	dirs["tmp"] = true
	for _, d := range []string{"var", "var/task", "opt", "opt/extensions", "proc", "sys", "dev", "etc", "lambdabox"} {
		mkdir(d)
	}
	for dst, src := range files {
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		var parents []string
		for p := filepath.Dir(dst); p != "/"; p = filepath.Dir(p) {
			parents = append([]string{strings.TrimPrefix(p, "/")}, parents...)
		}
		for _, p := range parents {
			mkdir(p)
		}
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(dst, "/"), Mode: 0o755, Size: int64(len(b))}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{fakePath}, Env: []string{"PATH=/bin"}, WorkingDir: "/var/task"})
	if err != nil {
		return err
	}
	tag, err := name.NewTag(testImage)
	if err != nil {
		return err
	}
	var archive bytes.Buffer
	if err := tarball.Write(tag, img, &archive); err != nil {
		return err
	}
	res, err := e.cli.ImageLoad(context.Background(), &archive, client.ImageLoadWithQuiet(true))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res)
	res.Close()
	imageLoaded = true
	return nil
}

// testFunction is the test image's function, with the tests' temporary
// directories bound in.
func testFunction() Function {
	return Function{Image: testImage, Name: "test", Mounts: []Mount{{Source: tmpRoot, Target: tmpRoot}}}
}

func TestConformance(t *testing.T) {
	e := connect(t)
	sandboxtest.Conformance(t, sandboxtest.Harness{
		Driver: func(t *testing.T) sandbox.Driver {
			fn := testFunction()
			fn.User = "0:0" // the suite's temporary directories are the test's, mode 0700
			d := e.Driver(fn)
			t.Cleanup(func() { _ = d.Close(context.Background()) })
			return d
		},
		Runtime:      []string{fakePath},
		Processes:    true,
		LimitsMemory: true,
		Skip: map[string]string{
			"EscapedChildren": "the pids of a container's processes are not the host's; the container's removal ends them all",
		},
	})
	assertNoContainers(t, e)
}

// assertNoContainers checks that no container of e's is left, once the
// engine has had a moment to remove them.
func assertNoContainers(t *testing.T, e *Engine) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		left = containersOf(t, e)
		if len(left) == 0 {
			return
		}
	}
	t.Errorf("containers left behind: %v", left)
}

func containersOf(t *testing.T, e *Engine) []string {
	t.Helper()
	// Closed engines cannot list: ask with a new connection.
	cli, err := client.New(client.WithHost(e.host))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", LabelOwner+"="+e.owner)})
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, shortID(c.ID)+" "+string(c.State))
	}
	return ids
}
