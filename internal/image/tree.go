package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Tree is a file system tree held in memory, written as a deterministic tar.
// Later additions replace earlier ones at the same path.
type Tree struct {
	entries map[string]*entry
}

type entry struct {
	typ  byte // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	exec bool
	data []byte
	link string
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{entries: map[string]*entry{}} }

// clean turns "./usr/bin/", "/usr/bin" and "usr/bin" into "usr/bin", and
// "" for the root; ".." never climbs above the root.
func clean(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q contains NUL", p)
	}
	return strings.TrimPrefix(path.Clean("/"+p), "/"), nil
}

func (t *Tree) put(p string, e *entry) error {
	c, err := clean(p)
	if err != nil {
		return err
	}
	if c == "" {
		return nil
	}
	if old, ok := t.entries[c]; ok && old.typ == tar.TypeDir && e.typ == tar.TypeDir {
		return nil
	}
	t.entries[c] = e
	return nil
}

// AddFile adds a regular file; any execute bit in mode makes it 0755.
func (t *Tree) AddFile(p string, data []byte, mode fs.FileMode) error {
	return t.put(p, &entry{typ: tar.TypeReg, data: data, exec: mode&0o111 != 0})
}

// AddDir adds a directory.
func (t *Tree) AddDir(p string) error { return t.put(p, &entry{typ: tar.TypeDir}) }

// AddSymlink adds a symbolic link to target.
func (t *Tree) AddSymlink(p, target string) error {
	return t.put(p, &entry{typ: tar.TypeSymlink, link: target})
}

// Remove drops p and everything below it.
func (t *Tree) Remove(p string) error {
	c, err := clean(p)
	if err != nil {
		return err
	}
	for k := range t.entries {
		if k == c || strings.HasPrefix(k, c+"/") {
			delete(t.entries, k)
		}
	}
	return nil
}

// File returns the content of the regular file at p.
func (t *Tree) File(p string) ([]byte, bool) {
	c, err := clean(p)
	if err != nil {
		return nil, false
	}
	e, ok := t.entries[c]
	if !ok || e.typ != tar.TypeReg {
		return nil, false
	}
	return e.data, true
}

// Has reports whether the tree has an entry at p.
func (t *Tree) Has(p string) bool {
	c, err := clean(p)
	if err != nil {
		return false
	}
	_, ok := t.entries[c]
	return ok
}

// Paths returns every path in the tree, sorted, without a leading slash.
func (t *Tree) Paths() []string {
	ps := make([]string, 0, len(t.entries))
	for p := range t.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// Len is the number of entries.
func (t *Tree) Len() int { return len(t.entries) }

// Merge adds every entry of o to t.
func (t *Tree) Merge(o *Tree) {
	for p, e := range o.entries {
		t.entries[p] = e
	}
}

// WriteDir writes the tree's directories, files and symbolic links below
// dir. Entries below a symbolic link of the tree are skipped, so nothing is
// written outside dir.
func (t *Tree) WriteDir(dir string) error {
	links := map[string]bool{}
	for _, p := range t.Paths() { // parents first
		e := t.entries[p]
		below := false
		for d := path.Dir(p); d != "." && !below; d = path.Dir(d) {
			below = links[d]
		}
		if below {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		var err error
		switch e.typ {
		case tar.TypeDir:
			err = os.MkdirAll(dst, 0o755)
		case tar.TypeSymlink:
			links[p] = true
			err = os.Symlink(e.link, dst)
		default:
			mode := fs.FileMode(0o644)
			if e.exec {
				mode = 0o755
			}
			err = os.WriteFile(dst, e.data, mode)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", dst, err)
		}
	}
	return nil
}

// AddTar adds the entries of a tar stream, such as dpkg-deb --fsys-tarfile
// writes. Hard links become copies of their target; devices, fifos and
// other special files are skipped.
func (t *Tree) AddTar(r io.Reader) error { return t.AddTarAt(r, "") }

// AddTarAt is AddTar with every entry placed under the directory prefix.
func (t *Tree) AddTarAt(r io.Reader, prefix string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		h.Name = path.Join(prefix, path.Clean("/"+h.Name)) // never above prefix
		if h.Typeflag == tar.TypeLink {
			h.Linkname = path.Join(prefix, path.Clean("/"+h.Linkname))
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = t.AddDir(h.Name)
		case tar.TypeReg:
			var data []byte
			data, err = io.ReadAll(tr)
			if err == nil {
				err = t.AddFile(h.Name, data, fs.FileMode(h.Mode))
			}
		case tar.TypeSymlink:
			err = t.AddSymlink(h.Name, h.Linkname)
		case tar.TypeLink:
			c, cerr := clean(h.Linkname)
			if cerr != nil {
				return cerr
			}
			target, ok := t.entries[c]
			if !ok {
				return fmt.Errorf("tar: hard link %s to missing %s", h.Name, h.Linkname)
			}
			cp := *target
			err = t.put(h.Name, &cp)
		}
		if err != nil {
			return err
		}
	}
}

// AddDirFromDisk adds the host directory root, recursively, under prefix.
func (t *Tree) AddDirFromDisk(root, prefix string) error {
	return t.AddDirFromDiskSkipping(root, prefix, nil)
}

// AddDirFromDiskSkipping adds the host directory root, recursively, under
// prefix, leaving out what skip names (rel is slash-separated and relative
// to root; a skipped directory is left out whole). A nil skip keeps all.
func (t *Tree) AddDirFromDiskSkipping(root, prefix string, skip func(rel string, dir bool) bool) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && skip != nil && skip(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := path.Join(prefix, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return t.AddDir(dst)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return t.AddSymlink(dst, target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return t.AddFile(dst, data, info.Mode())
		}
		return nil
	})
}

// WriteTar writes the tree as a deterministic tar: sorted entries, explicit
// parent directories, mtime epoch, uid/gid 0, normalised modes.
func (t *Tree) WriteTar(w io.Writer, epoch time.Time) error {
	all := map[string]*entry{}
	for p, e := range t.entries {
		all[p] = e
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := t.entries[d]; !ok {
				all[d] = &entry{typ: tar.TypeDir}
			}
		}
	}
	paths := make([]string, 0, len(all))
	for p := range all {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		e := all[p]
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     p,
			ModTime:  epoch,
		}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
			h.Mode = 0o755
			if p == "tmp" {
				h.Mode = 0o1777 // world-writable and sticky, as every /tmp
			}
		case tar.TypeSymlink:
			h.Mode = 0o777
			h.Linkname = e.link
		default:
			h.Mode = 0o644
			if e.exec {
				h.Mode = 0o755
			}
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing tar header %s: %w", p, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
		}
	}
	return tw.Close()
}

// Gzip returns the tree as a deterministic gzip-compressed tar.
func (t *Tree) Gzip(epoch time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := t.WriteTar(zw, epoch); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
