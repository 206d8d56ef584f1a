package image

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// digestsSuffix names the file beside a layer that remembers its digests,
// so that assembling an image from cached layers does not read and
// decompress every layer again.
const digestsSuffix = ".digests.json"

// layerDigests are a gzip layer file's descriptor fields.
type layerDigests struct {
	Digest v1.Hash `json:"digest"`
	DiffID v1.Hash `json:"diffID"`
	Size   int64   `json:"size"`
}

// gzipFile is a gzip-compressed tar layer on disk with known digests.
type gzipFile struct {
	path string
	d    layerDigests
}

func (f *gzipFile) Digest() (v1.Hash, error)            { return f.d.Digest, nil }
func (f *gzipFile) DiffID() (v1.Hash, error)            { return f.d.DiffID, nil }
func (f *gzipFile) Size() (int64, error)                { return f.d.Size, nil }
func (f *gzipFile) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (f *gzipFile) Compressed() (io.ReadCloser, error)  { return os.Open(f.path) }

// openLayer returns the gzip layer at path. Its digests come from the file
// beside it when that file matches the layer's size; otherwise they are
// computed in one pass over the layer and saved there for the next build.
func openLayer(path string) (v1.Layer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var d layerDigests
	if b, err := os.ReadFile(path + digestsSuffix); err == nil && json.Unmarshal(b, &d) == nil && d.Size == st.Size() && d.Digest.Algorithm != "" && d.DiffID.Algorithm != "" {
		return partial.CompressedToLayer(&gzipFile{path: path, d: d})
	}
	if d, err = computeDigests(path); err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", path, err)
	}
	// The digests only save time: a layer whose digests cannot be saved
	// is still good.
	_ = saveDigests(path+digestsSuffix, d)
	return partial.CompressedToLayer(&gzipFile{path: path, d: d})
}

// computeDigests hashes the compressed and the uncompressed layer in one
// pass.
func computeDigests(path string) (layerDigests, error) {
	f, err := os.Open(path)
	if err != nil {
		return layerDigests{}, err
	}
	defer f.Close()
	h := sha256.New()
	compressed := io.TeeReader(f, h)
	zr, err := gzip.NewReader(compressed)
	if err != nil {
		return layerDigests{}, err
	}
	diffID, _, err := v1.SHA256(zr)
	if err != nil {
		return layerDigests{}, err
	}
	// Anything after the gzip stream still counts towards the digest.
	if _, err := io.Copy(io.Discard, compressed); err != nil {
		return layerDigests{}, err
	}
	st, err := f.Stat()
	if err != nil {
		return layerDigests{}, err
	}
	return layerDigests{
		Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		DiffID: diffID,
		Size:   st.Size(),
	}, nil
}

// saveDigests writes d beside its layer. A torn or stale file is caught on
// reading (it does not parse or does not match the layer's size), so a
// plain write does.
func saveDigests(path string, d layerDigests) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
