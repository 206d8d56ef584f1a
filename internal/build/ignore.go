package build

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// ignore is a .lambdaboxignore or .dockerignore file: one pattern a line
// (filepath.Match syntax plus **), # comments, ! to include again; the last
// matching pattern wins. A pattern that matches a directory matches
// everything below it.
type ignore struct {
	rules []ignoreRule
}

type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

// loadIgnore reads dir/.lambdaboxignore, else dir/.dockerignore; neither
// means nothing is ignored.
func loadIgnore(dir string) (*ignore, error) {
	for _, n := range []string{".lambdaboxignore", ".dockerignore"} {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ig, err := parseIgnore(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		return ig, nil
	}
	return &ignore{}, nil
}

func parseIgnore(data []byte) (*ignore, error) {
	ig := &ignore{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		line = strings.TrimPrefix(line, "!")
		p := strings.Trim(path.Clean("/"+filepath.ToSlash(line)), "/")
		re, err := globRegexp(p)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: %w", n, line, err)
		}
		ig.rules = append(ig.rules, ignoreRule{re: re, negate: neg})
	}
	return ig, sc.Err()
}

// globRegexp turns a pattern into a regexp matching the path or any path
// below it.
func globRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '*' && i+1 < len(p) && p[i+1] == '*':
			i++
			if i+1 < len(p) && p[i+1] == '/' {
				i++
				b.WriteString("(?:.*/)?")
			} else {
				b.WriteString(".*")
			}
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [")
			}
			b.WriteString(p[i : i+j+1])
			i += j
		case c == '\\' && i+1 < len(p):
			i++
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("(?:/.*)?$")
	return regexp.Compile(b.String())
}

// match reports whether rel (slash-separated, relative to the folder) is
// excluded.
func (ig *ignore) match(rel string) bool {
	out := false
	for _, r := range ig.rules {
		if r.re.MatchString(rel) {
			out = !r.negate
		}
	}
	return out
}
