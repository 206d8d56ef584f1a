// Package store keeps the local Lambda service's functions in an embedded
// database (bbolt) under the user's state directory: each function's
// $LATEST configuration, its published versions (immutable snapshots), its
// aliases, reserved concurrency and function URL config, and the code of
// Zip functions, kept once per SHA-256 and unpacked on demand into a folder
// the store owns.
//
// A Store is safe for concurrent use by the goroutines of one process;
// bbolt's file lock keeps a second process out (Open fails after
// Config.LockTimeout). Every change is one transaction: it is on disk when
// the method returns, and survives a crash or restart.
package store

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Errors callers branch on, with errors.Is.
var (
	// ErrNotFound: no such function, version or alias.
	ErrNotFound = errors.New("not found")
	// ErrExists: a function or alias of that name exists already.
	ErrExists = errors.New("already exists")
	// ErrCorrupt: the database file cannot be read as lambdabox's.
	ErrCorrupt = errors.New("state database is corrupt")
)

// DefaultLockTimeout is how long Open waits for another process's lock.
const DefaultLockTimeout = 2 * time.Second

// Config configures Open. Zero values are the documented defaults.
type Config struct {
	// Dir is the state directory; default DefaultDir(). It holds
	// lambdabox.db and code/, the unpacked code of Zip functions.
	Dir string
	// LockTimeout bounds the wait for a database another process holds
	// open; default DefaultLockTimeout.
	LockTimeout time.Duration
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.LockTimeout < 0 {
		return fmt.Errorf("lock timeout %v: must not be negative", c.LockTimeout)
	}
	return nil
}

// DefaultDir is $XDG_STATE_HOME/lambdabox, or ~/.local/state/lambdabox.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "lambdabox"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "lambdabox"), nil
}

// Function is one function's configuration: its $LATEST (Version
// "$LATEST", changed in place) or a published version (Version "1", "2"…,
// never changed).
type Function struct {
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	PackageType string            `json:"packageType"` // Zip or Image
	Runtime     string            `json:"runtime,omitempty"`
	Handler     string            `json:"handler,omitempty"`
	Role        string            `json:"role,omitempty"`
	Description string            `json:"description,omitempty"`
	ImageURI    string            `json:"imageUri,omitempty"`
	CodeSha256  string            `json:"codeSha256"` // base64, as Lambda reports it
	CodeSize    int64             `json:"codeSize"`
	Env         map[string]string `json:"env,omitempty"`
	Timeout     int               `json:"timeout"`    // seconds
	MemorySize  int               `json:"memorySize"` // MB
	Ephemeral   int               `json:"ephemeral,omitempty"`
	Arch        []string          `json:"arch,omitempty"`
	// TenantIsolation is TenancyConfig.TenantIsolationMode PER_TENANT.
	TenantIsolation bool `json:"tenantIsolation,omitempty"`

	State            string    `json:"state"`
	StateReason      string    `json:"stateReason,omitempty"`
	StateReasonCode  string    `json:"stateReasonCode,omitempty"`
	LastUpdateStatus string    `json:"lastUpdateStatus"`
	LastUpdateReason string    `json:"lastUpdateReason,omitempty"`
	LastUpdateCode   string    `json:"lastUpdateCode,omitempty"`
	LastModified     time.Time `json:"lastModified"`
	RevisionID       string    `json:"revisionId"`

	// Set on $LATEST only: they belong to the function, not a version.
	ReservedConcurrency *int       `json:"reservedConcurrency,omitempty"`
	URL                 *URLConfig `json:"url,omitempty"`
	LastVersion         int        `json:"lastVersion,omitempty"` // highest published
	// Running is the code and configuration of $LATEST that last started,
	// while a later update's cannot: Lambda keeps them available, so a
	// restart runs them again. Its code is kept (Prune).
	Running *Function `json:"running,omitempty"`
}

// URLConfig is a function URL's configuration.
type URLConfig struct {
	AuthType     string          `json:"authType"`
	InvokeMode   string          `json:"invokeMode,omitempty"`
	Cors         json.RawMessage `json:"cors,omitempty"`
	Created      time.Time       `json:"created"`
	LastModified time.Time       `json:"lastModified"`
	// Port is the local port the URL answers on, kept so that it stays
	// the same across restarts; 0: none yet.
	Port int `json:"port,omitempty"`
}

// Alias names a version of a function, optionally with a share of the
// invokes routed to a second version.
type Alias struct {
	Function    string             `json:"function"`
	Name        string             `json:"name"`
	Version     string             `json:"version"`
	Description string             `json:"description,omitempty"`
	Weights     map[string]float64 `json:"weights,omitempty"`
	RevisionID  string             `json:"revisionId"`
}

// Buckets. Versions and aliases are keyed "function\x00qualifier" so that
// a function's own form one prefix range.
var (
	bucketFunctions = []byte("functions")
	bucketVersions  = []byte("versions")
	bucketAliases   = []byte("aliases")
	bucketCode      = []byte("code")
	bucketMeta      = []byte("meta")
	schemaKey       = []byte("schema")
)

const schema = "lambdabox-store-1"

// Store is an open state database. Create it with Open.
type Store struct {
	db  *bolt.DB
	dir string
}

// Open opens (creating if needed) the database in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		cfg.Dir = d
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "code"), 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	path := filepath.Join(cfg.Dir, "lambdabox.db")
	db, err := openDB(path, cfg.LockTimeout)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketFunctions, bucketVersions, bucketAliases, bucketCode, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(schemaKey); {
		case v == nil:
			return meta.Put(schemaKey, []byte(schema))
		case string(v) != schema:
			return fmt.Errorf("%w: schema %q, want %q", ErrCorrupt, v, schema)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening the state database %s: %w", path, err)
	}
	return &Store{db: db, dir: cfg.Dir}, nil
}

// openDB opens path, turning bbolt's failures and panics on a damaged file
// into ErrCorrupt.
func openDB(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("opening the state database %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("opening the state database %s: another lambdabox holds it open (waited %v): %w", path, timeout, err)
	case err != nil:
		return nil, fmt.Errorf("opening the state database %s: %w: %w (move it away to start afresh)", path, ErrCorrupt, err)
	}
	return db, nil
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func vkey(fn, q string) []byte { return []byte(fn + "\x00" + q) }

func get[T any](b *bolt.Bucket, key []byte, what string) (T, error) {
	var v T
	raw := b.Get(key)
	if raw == nil {
		return v, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%s: %w: %w", what, ErrCorrupt, err)
	}
	return v, nil
}

func put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// CreateFunction stores f as a new function's $LATEST; ErrExists if the
// name is taken.
func (s *Store) CreateFunction(f Function) error {
	f.Version = "$LATEST"
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFunctions)
		if b.Get([]byte(f.Name)) != nil {
			return fmt.Errorf("function %s: %w", f.Name, ErrExists)
		}
		return put(b, []byte(f.Name), f)
	})
}

// Function returns the named function's $LATEST.
func (s *Store) Function(name string) (Function, error) {
	var f Function
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		f, err = get[Function](tx.Bucket(bucketFunctions), []byte(name), "function "+name)
		return err
	})
	return f, err
}

// Functions lists every function's $LATEST, by name.
func (s *Store) Functions() ([]Function, error) {
	var out []Function
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFunctions).ForEach(func(k, _ []byte) error {
			f, err := get[Function](tx.Bucket(bucketFunctions), k, "function "+string(k))
			out = append(out, f)
			return err
		})
	})
	return out, err
}

// UpdateFunction changes the named function's $LATEST with fn, in one
// transaction; an error from fn changes nothing and is returned.
func (s *Store) UpdateFunction(name string, fn func(*Function) error) (Function, error) {
	var f Function
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		b := tx.Bucket(bucketFunctions)
		if f, err = get[Function](b, []byte(name), "function "+name); err != nil {
			return err
		}
		if err := fn(&f); err != nil {
			return err
		}
		f.Name, f.Version = name, "$LATEST"
		return put(b, []byte(name), f)
	})
	return f, err
}

// DeleteFunction removes the function with its versions and aliases, and
// returns what it removed. Code no function uses any more is removed
// (Prune).
func (s *Store) DeleteFunction(name string) (latest Function, versions []Function, aliases []Alias, err error) {
	err = s.db.Update(func(tx *bolt.Tx) (err error) {
		if latest, err = get[Function](tx.Bucket(bucketFunctions), []byte(name), "function "+name); err != nil {
			return err
		}
		if versions, err = scan[Function](tx.Bucket(bucketVersions), name, true); err != nil {
			return err
		}
		if aliases, err = scan[Alias](tx.Bucket(bucketAliases), name, true); err != nil {
			return err
		}
		return tx.Bucket(bucketFunctions).Delete([]byte(name))
	})
	if err == nil {
		err = s.Prune()
	}
	return
}

// scan decodes the values under "name\x00" in b, deleting them if del.
func scan[T any](b *bolt.Bucket, name string, del bool) ([]T, error) {
	prefix := []byte(name + "\x00")
	var out []T
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		v, err := get[T](b, k, string(k))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		keys = append(keys, slices.Clone(k))
	}
	if del {
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// PublishVersion snapshots the function's $LATEST as its next version,
// unless the newest version has the same code and configuration
// (same(newest, latest) reports it): then that version is returned.
// check, when not nil, may refuse either with an error, given the
// $LATEST; prepare may check or change the snapshot (its Version is set)
// and the $LATEST (its LastVersion is set) before they are stored.
func (s *Store) PublishVersion(name string, check func(latest Function) error, same func(newest, latest Function) bool, prepare func(v, latest *Function) error) (Function, error) {
	var v Function
	err := s.db.Update(func(tx *bolt.Tx) error {
		fb, vb := tx.Bucket(bucketFunctions), tx.Bucket(bucketVersions)
		latest, err := get[Function](fb, []byte(name), "function "+name)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(latest); err != nil {
				return err
			}
		}
		if latest.LastVersion > 0 {
			newest, err := get[Function](vb, vkey(name, versionKey(latest.LastVersion)), "version")
			if err == nil && same(newest, latest) {
				v = newest
				return nil
			}
		}
		latest.LastVersion++
		v = latest
		v.Version = strconv.Itoa(latest.LastVersion)
		v.ReservedConcurrency, v.URL, v.LastVersion, v.Running = nil, nil, 0, nil
		if err := prepare(&v, &latest); err != nil {
			return err
		}
		if err := put(vb, vkey(name, versionKey(latest.LastVersion)), v); err != nil {
			return err
		}
		return put(fb, []byte(name), latest)
	})
	return v, err
}

// versionKey pads version numbers so that keys sort as numbers.
func versionKey(n int) string { return fmt.Sprintf("%010d", n) }

// Version returns a published version.
func (s *Store) Version(name, version string) (Function, error) {
	n, err := strconv.Atoi(version)
	if err != nil || n < 1 {
		return Function{}, fmt.Errorf("function %s version %s: %w", name, version, ErrNotFound)
	}
	var f Function
	err = s.db.View(func(tx *bolt.Tx) (err error) {
		f, err = get[Function](tx.Bucket(bucketVersions), vkey(name, versionKey(n)), "function "+name+" version "+version)
		return err
	})
	return f, err
}

// Versions lists the function's published versions, oldest first.
func (s *Store) Versions(name string) ([]Function, error) {
	var out []Function
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		out, err = scan[Function](tx.Bucket(bucketVersions), name, false)
		return err
	})
	return out, err
}

// InUseError is DeleteVersion's error for a version an alias routes to.
type InUseError struct{ Version, Alias string }

func (e *InUseError) Error() string {
	return "version " + e.Version + " is used by alias " + e.Alias
}

// DeleteVersion removes a published version; it fails (*InUseError)
// while an alias routes to it.
func (s *Store) DeleteVersion(name, version string) error {
	n, err := strconv.Atoi(version)
	if err != nil || n < 1 {
		return fmt.Errorf("function %s version %s: %w", name, version, ErrNotFound)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		vb := tx.Bucket(bucketVersions)
		k := vkey(name, versionKey(n))
		if vb.Get(k) == nil {
			return fmt.Errorf("function %s version %s: %w", name, version, ErrNotFound)
		}
		aliases, err := scan[Alias](tx.Bucket(bucketAliases), name, false)
		if err != nil {
			return err
		}
		for _, a := range aliases {
			if _, weighted := a.Weights[version]; a.Version == version || weighted {
				return &InUseError{Version: version, Alias: a.Name}
			}
		}
		return vb.Delete(k)
	})
	if err == nil {
		err = s.Prune()
	}
	return err
}

// PutAlias stores a; create refuses an existing alias (ErrExists), !create
// a missing one (ErrNotFound). The function must exist.
func (s *Store) PutAlias(a Alias, create bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketFunctions).Get([]byte(a.Function)) == nil {
			return fmt.Errorf("function %s: %w", a.Function, ErrNotFound)
		}
		b := tx.Bucket(bucketAliases)
		k := vkey(a.Function, a.Name)
		switch exists := b.Get(k) != nil; {
		case create && exists:
			return fmt.Errorf("alias %s of function %s: %w", a.Name, a.Function, ErrExists)
		case !create && !exists:
			return fmt.Errorf("alias %s of function %s: %w", a.Name, a.Function, ErrNotFound)
		}
		return put(b, k, a)
	})
}

// Alias returns one alias of a function.
func (s *Store) Alias(name, alias string) (Alias, error) {
	var a Alias
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		a, err = get[Alias](tx.Bucket(bucketAliases), vkey(name, alias), "alias "+alias+" of function "+name)
		return err
	})
	return a, err
}

// Aliases lists a function's aliases, by name.
func (s *Store) Aliases(name string) ([]Alias, error) {
	var out []Alias
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		out, err = scan[Alias](tx.Bucket(bucketAliases), name, false)
		return err
	})
	return out, err
}

// DeleteAlias removes an alias.
func (s *Store) DeleteAlias(name, alias string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAliases)
		k := vkey(name, alias)
		if b.Get(k) == nil {
			return fmt.Errorf("alias %s of function %s: %w", alias, name, ErrNotFound)
		}
		return b.Delete(k)
	})
}

// MaxCodeSize is the largest zip the store takes: Lambda's 50 MB limit
// of a direct upload, base64 aside; MaxUnzippedSize is Lambda's limit of
// the code unzipped (250 MB).
const (
	MaxCodeSize     = 50 << 20
	MaxUnzippedSize = 262144000
)

// ErrUnzippedTooLarge is PutCode's error for a zip whose files add up to
// more than MaxUnzippedSize.
var ErrUnzippedTooLarge = fmt.Errorf("unzipped size must be smaller than %d bytes", MaxUnzippedSize)

// PutCode checks that zipped is a zip archive within Lambda's limits and
// stores it once; it returns its SHA-256 in base64 (Lambda's CodeSha256)
// and its size.
func (s *Store) PutCode(zipped []byte) (sha string, size int64, err error) {
	if len(zipped) > MaxCodeSize {
		return "", 0, fmt.Errorf("zip file of %d bytes: over the %d bytes limit", len(zipped), MaxCodeSize)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		return "", 0, fmt.Errorf("reading the zip file: %w", err)
	}
	var unzipped uint64
	for _, f := range zr.File {
		if unzipped += f.UncompressedSize64; unzipped > MaxUnzippedSize {
			return "", 0, ErrUnzippedTooLarge
		}
	}
	sum := sha256.Sum256(zipped)
	sha = base64.StdEncoding.EncodeToString(sum[:])
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCode)
		if b.Get(sum[:]) != nil {
			return nil
		}
		return b.Put(sum[:], zipped)
	})
	if err != nil {
		return "", 0, fmt.Errorf("storing code: %w", err)
	}
	return sha, int64(len(zipped)), nil
}

// Code returns the zip stored under sha (base64 SHA-256).
func (s *Store) Code(sha string) ([]byte, error) {
	sum, err := base64.StdEncoding.DecodeString(sha)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("code %s: %w", sha, ErrNotFound)
	}
	var out []byte
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCode).Get(sum)
		if v == nil {
			return fmt.Errorf("code %s: %w", sha, ErrNotFound)
		}
		out = slices.Clone(v)
		return nil
	})
	return out, err
}

// CodeDir returns a folder holding the code stored under sha, unpacked
// (once) under Dir()/code. Callers must not change it.
func (s *Store) CodeDir(sha string) (string, error) {
	sum, err := base64.StdEncoding.DecodeString(sha)
	if err != nil || len(sum) != sha256.Size {
		return "", fmt.Errorf("code %s: %w", sha, ErrNotFound)
	}
	dir := filepath.Join(s.dir, "code", hex.EncodeToString(sum))
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	zipped, err := s.Code(sha)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "code"), ".unpack-")
	if err != nil {
		return "", fmt.Errorf("unpacking code: %w", err)
	}
	if err := unzip(zipped, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("unpacking code %s: %w", sha, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, statErr := os.Stat(dir); statErr == nil { // another caller won
			return dir, nil
		}
		return "", fmt.Errorf("unpacking code: %w", err)
	}
	return dir, nil
}

// unzip extracts zipped into dir, refusing paths that leave it.
func unzip(zipped []byte, dir string) error {
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		return err
	}
	var total int64
	for _, f := range zr.File {
		name := filepath.FromSlash(f.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("zip entry %q: outside the code folder", f.Name)
		}
		path := filepath.Join(dir, name)
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
			continue
		case mode&os.ModeSymlink != 0:
			return fmt.Errorf("zip entry %q: symbolic links are not supported", f.Name)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		perm := os.FileMode(0o644)
		if mode&0o111 != 0 || isBootstrap(f.Name) {
			perm = 0o755
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("zip entry %q: %w", f.Name, err)
		}
		out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
		if err != nil {
			rc.Close()
			return err
		}
		// Lambda's unpacked limit is 250 MB.
		n, err := io.Copy(out, io.LimitReader(rc, 250<<20-total+1))
		total += n
		rc.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("zip entry %q: %w", f.Name, err)
		}
		if total > 250<<20 {
			return errors.New("unpacked code over Lambda's 250 MB limit")
		}
	}
	return nil
}

// isBootstrap: a zip made without Unix modes (Windows tools) still gets an
// executable bootstrap, as Lambda's provided runtimes need.
func isBootstrap(name string) bool {
	return name == "bootstrap" || strings.HasSuffix(name, "/bootstrap")
}

// Prune removes stored and unpacked code that no function or version uses.
func (s *Store) Prune() error {
	used := map[string]bool{}
	var unused [][]byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketFunctions, bucketVersions} {
			err := tx.Bucket(b).ForEach(func(k, _ []byte) error {
				f, err := get[Function](tx.Bucket(b), k, string(k))
				used[f.CodeSha256] = true
				if f.Running != nil {
					used[f.Running.CodeSha256] = true
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		cb := tx.Bucket(bucketCode)
		err := cb.ForEach(func(k, _ []byte) error {
			if !used[base64.StdEncoding.EncodeToString(k)] {
				unused = append(unused, slices.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range unused {
			if err := cb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pruning code: %w", err)
	}
	for _, k := range unused {
		if err := os.RemoveAll(filepath.Join(s.dir, "code", hex.EncodeToString(k))); err != nil {
			return fmt.Errorf("pruning code: %w", err)
		}
	}
	return nil
}
