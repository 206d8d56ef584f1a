package build

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ErrHandler is wrapped by every handler check that fails.
var ErrHandler = errors.New("bad handler")

// reader reads a file of the function by its slash-separated path
// relative to the code's root.
type reader func(rel string) ([]byte, bool)

// dirReader reads files below dir.
func dirReader(dir string) reader {
	return func(rel string) ([]byte, bool) {
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil || !st.Mode().IsRegular() {
			return nil, false
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		return data, err == nil
	}
}

// pythonHandler checks that handler "pkg/mod.func" or "pkg.mod.func" names
// a file of the code (in where) that defines func at the top level,
// without running it.
func pythonHandler(read reader, where, handler string) error {
	i := strings.LastIndex(handler, ".")
	if i <= 0 || i == len(handler)-1 {
		return fmt.Errorf("%w %q: want module.function (e.g. lambda_function.handler)", ErrHandler, handler)
	}
	mod, fn := handler[:i], handler[i+1:]
	rel := strings.ReplaceAll(mod, ".", "/")
	var file string
	var src []byte
	for _, c := range []string{rel + ".py", rel + "/__init__.py"} {
		if data, ok := read(c); ok {
			file, src = c, data
			break
		}
	}
	if file == "" {
		return fmt.Errorf("%w %q: no file %s.py in %s", ErrHandler, handler, rel, where)
	}
	names := pythonNames(string(src))
	if !names[fn] {
		return fmt.Errorf("%w %q: %s defines no function %s (found: %s)", ErrHandler, handler, file, fn, list(names))
	}
	return nil
}

var (
	pyDef    = regexp.MustCompile(`^(?:async\s+)?def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(`)
	pyAssign = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]*)?=[^=]`)
	pyImport = regexp.MustCompile(`^from\s+\S+\s+import\s+(.+)$`)
)

// pythonNames returns the names a module binds at its top level: def,
// async def, assignments and from-imports.
func pythonNames(src string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := pyDef.FindStringSubmatch(line); m != nil {
			names[m[1]] = true
		} else if m := pyAssign.FindStringSubmatch(line); m != nil {
			names[m[1]] = true
		} else if m := pyImport.FindStringSubmatch(line); m != nil {
			for _, part := range strings.Split(strings.Trim(m[1], "()\\ "), ",") {
				f := strings.Fields(part)
				if len(f) == 3 && f[1] == "as" {
					names[f[2]] = true
				} else if len(f) == 1 {
					names[f[0]] = true
				}
			}
		}
	}
	return names
}

// nodeHandler checks that handler "path/file.export" names a .js, .mjs or
// .cjs file under dir that exports the function, without running it. A
// module whose exports cannot be read from its text (module.exports =
// require(…)) passes.
func nodeHandler(read reader, where, handler string) error {
	i := strings.LastIndex(handler, ".")
	if i <= 0 || i == len(handler)-1 {
		return fmt.Errorf("%w %q: want file.export (e.g. index.handler)", ErrHandler, handler)
	}
	base, fn := handler[:i], handler[i+1:]
	var file string
	var src []byte
	for _, ext := range []string{".js", ".mjs", ".cjs"} {
		if data, ok := read(base + ext); ok {
			file, src = base+ext, data
			break
		}
	}
	if file == "" {
		return fmt.Errorf("%w %q: no file %s.js, %s.mjs or %s.cjs in %s", ErrHandler, handler, base, base, base, where)
	}
	names, known := nodeExports(string(src))
	if known && !names[fn] {
		return fmt.Errorf("%w %q: %s exports no %s (found: %s)", ErrHandler, handler, file, fn, list(names))
	}
	return nil
}

var (
	jsExportsDot = regexp.MustCompile(`(?m)^\s*(?:module\.)?exports\.([A-Za-z_$][\w$]*)\s*=`)
	jsExportDecl = regexp.MustCompile(`(?m)^\s*export\s+(?:async\s+)?(?:function\s*\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)`)
	jsExportList = regexp.MustCompile(`(?m)^\s*export\s*\{([^}]*)\}`)
	jsModuleObj  = regexp.MustCompile(`(?m)^\s*module\.exports\s*=\s*\{([^}]*)\}`)
	jsModuleAny  = regexp.MustCompile(`(?m)^\s*module\.exports\s*=`)
	jsDefault    = regexp.MustCompile(`(?m)^\s*export\s+default\b`)
)

// nodeExports returns the names a CommonJS or ES module exports, and false
// when the text does not say (module.exports = something opaque).
func nodeExports(src string) (map[string]bool, bool) {
	names := map[string]bool{}
	for _, m := range jsExportsDot.FindAllStringSubmatch(src, -1) {
		names[m[1]] = true
	}
	for _, m := range jsExportDecl.FindAllStringSubmatch(src, -1) {
		names[m[1]] = true
	}
	for _, m := range append(jsExportList.FindAllStringSubmatch(src, -1), jsModuleObj.FindAllStringSubmatch(src, -1)...) {
		for _, part := range strings.Split(m[1], ",") {
			f := strings.Fields(strings.NewReplacer(":", " : ").Replace(part))
			switch {
			case len(f) == 3 && f[1] == "as":
				names[f[2]] = true
			case len(f) >= 1:
				names[f[0]] = true
			}
		}
	}
	if jsDefault.MatchString(src) {
		names["default"] = true
	}
	objs := len(jsModuleObj.FindAllString(src, -1))
	if len(jsModuleAny.FindAllString(src, -1)) > objs {
		return names, false
	}
	return names, true
}

func list(names map[string]bool) string {
	if len(names) == 0 {
		return "nothing"
	}
	var ns []string
	for n := range names {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return strings.Join(ns, ", ")
}
