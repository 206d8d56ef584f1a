package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Addition is one layer a function build puts on top of a base image.
type Addition struct {
	Layer   v1.Layer
	Comment string // the history entry, e.g. "lambdabox code"
}

// Extension is what Extend changes in a base image. Nil fields keep the
// base's value.
type Extension struct {
	Layers []Addition
	// Env sets or replaces variables (KEY=VALUE) of the base's environment.
	Env []string
	// Cmd and Entrypoint replace the base's when not nil.
	Cmd, Entrypoint []string
	// WorkingDir replaces the base's when not empty.
	WorkingDir string
	// Labels are added to the base's.
	Labels map[string]string
	// Created is the creation time of the config and of the new history
	// entries (SOURCE_DATE_EPOCH); zero means the Unix epoch.
	Created time.Time
}

// Extend returns base with ext's layers appended and its config changed.
// The result is a function of base's digest and ext alone.
func Extend(base v1.Image, ext Extension) (v1.Image, error) {
	created := ext.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	adds := make([]mutate.Addendum, 0, len(ext.Layers))
	mt := types.OCILayer
	if m, err := base.MediaType(); err == nil && m == types.DockerManifestSchema2 {
		mt = types.DockerLayer
	}
	for _, l := range ext.Layers {
		adds = append(adds, mutate.Addendum{
			Layer:     l.Layer,
			MediaType: mt,
			History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "lambdabox build", Comment: l.Comment},
		})
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, fmt.Errorf("appending layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.Config.Env = MergeEnv(cf.Config.Env, ext.Env)
	if ext.Cmd != nil {
		cf.Config.Cmd = ext.Cmd
	}
	if ext.Entrypoint != nil {
		cf.Config.Entrypoint = ext.Entrypoint
	}
	if ext.WorkingDir != "" {
		cf.Config.WorkingDir = ext.WorkingDir
	}
	if len(ext.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range cf.Config.Labels {
			labels[k] = v
		}
		for k, v := range ext.Labels {
			labels[k] = v
		}
		cf.Config.Labels = labels
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}
	return img, nil
}

// MergeEnv returns env with each KEY=VALUE of set replacing the variable of
// the same name, or appended in order when env has none.
func MergeEnv(env, set []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				out[i], replaced = kv, true
				break
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// Getenv returns the value of key in env (KEY=VALUE entries).
func Getenv(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// memLayer is a gzip layer held in memory.
type memLayer struct {
	data []byte
	d    layerDigests
}

func (m *memLayer) Digest() (v1.Hash, error)            { return m.d.Digest, nil }
func (m *memLayer) DiffID() (v1.Hash, error)            { return m.d.DiffID, nil }
func (m *memLayer) Size() (int64, error)                { return m.d.Size, nil }
func (m *memLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (m *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m.data)), nil
}

// TreeLayer writes t as a deterministic tar compressed at gzip level
// (gzip.DefaultCompression, gzip.BestSpeed, …) and returns it as an
// in-memory layer with its digests. Its bytes are a function of the tree,
// epoch and level.
func TreeLayer(t *Tree, epoch time.Time, level int) (v1.Layer, error) {
	if epoch.IsZero() {
		epoch = time.Unix(0, 0)
	}
	var tarBuf bytes.Buffer
	if err := t.WriteTar(&tarBuf, epoch); err != nil {
		return nil, err
	}
	diffID, _, err := v1.SHA256(bytes.NewReader(tarBuf.Bytes()))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	digest, size, err := v1.SHA256(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, err
	}
	return partial.CompressedToLayer(&memLayer{data: buf.Bytes(), d: layerDigests{Digest: digest, DiffID: diffID, Size: size}})
}

// SaveLayer writes l, compressed, to path atomically with its digests
// beside it, so that OpenLayer reads it back without decompressing it.
func SaveLayer(path string, l v1.Layer) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if err := writeAtomic(path, data); err != nil {
		return err
	}
	d := layerDigests{Size: int64(len(data))}
	if d.Digest, err = l.Digest(); err != nil {
		return err
	}
	if d.DiffID, err = l.DiffID(); err != nil {
		return err
	}
	return saveDigests(path+digestsSuffix, d)
}

// OpenLayer returns the gzip layer file at path, with the digests saved
// beside it when they match.
func OpenLayer(path string) (v1.Layer, error) { return openLayer(path) }

// Files lists the regular files' paths in t under prefix, sorted.
func (t *Tree) Files(prefix string) []string {
	c, _ := clean(prefix)
	var out []string
	for p, e := range t.entries {
		if e.typ == tar.TypeReg && (c == "" || p == c || strings.HasPrefix(p, c+"/")) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// writeAtomic writes data to path through a temporary file beside it.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// linkBlobs hard-links into the new layout at tmp the blobs of img that
// the layout being replaced at old already has, so that rewriting a
// layout after a small change copies only the new blobs (layout.Write
// skips blobs that exist with the right size). Failures only cost a copy.
func linkBlobs(old, tmp string, img v1.Image) {
	if _, err := os.Stat(filepath.Join(old, "oci-layout")); err != nil {
		return
	}
	var hashes []v1.Hash
	if ls, err := img.Layers(); err == nil {
		for _, l := range ls {
			if d, err := l.Digest(); err == nil {
				hashes = append(hashes, d)
			}
		}
	}
	dst := filepath.Join(tmp, "blobs", "sha256")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return
	}
	for _, h := range hashes {
		if h.Algorithm != "sha256" {
			continue
		}
		_ = os.Link(filepath.Join(old, "blobs", "sha256", h.Hex), filepath.Join(dst, h.Hex))
	}
}
