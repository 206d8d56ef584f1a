package build

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDockerfile: any Dockerfile text parses to instructions or an error,
// and classifying them never panics.
func FuzzDockerfile(f *testing.F) {
	for _, s := range []string{
		"FROM public.ecr.aws/lambda/python:3.12\nCOPY . ${LAMBDA_TASK_ROOT}\nRUN pip3 install -r requirements.txt --target \"${LAMBDA_TASK_ROOT}\"\nCMD [ \"lambda_function.handler\" ]\n",
		"FROM\n", "ENV A\n", "LABEL =\n", "RUN <<EOF\necho\nEOF\n", "COPY --from=x a b\n", "ARG X=${Y:-z}\nFROM $X\n", "# escape=`\nFROM x\nRUN a `\n b\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		file := filepath.Join(t.TempDir(), "Dockerfile")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		ins, _, err := parseDockerfile(file)
		if err != nil {
			return
		}
		for _, in := range ins {
			unsupported(in, 1)
			if in.cmd == "run" && len(in.args) > 0 {
				runKind(in.args[0])
			}
		}
	})
}

// FuzzHandlerParsing: the handler checks' parsers never panic.
func FuzzHandlerParsing(f *testing.F) {
	f.Add("def handler(e, c):\n    pass\n", "export const handler = 1;\nmodule.exports = { a, b: c };\n", "*.env\n!keep\n**/x/")
	f.Fuzz(func(t *testing.T, py, js, ignore string) {
		pythonNames(py)
		nodeExports(js)
		if ig, err := parseIgnore([]byte(ignore)); err == nil {
			ig.match("a/b/c.py")
		}
	})
}
