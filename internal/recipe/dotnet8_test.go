package recipe

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dotnetRoot is a stand-in image for the dotnet8 bootstrap: the recipe's
// script with /var/lang/bin and /var/runtime moved under a temporary root,
// a fake dotnet that records its arguments, and a task root whose path has
// a space in it.
type dotnetRoot struct {
	bootstrap, task, record, runtime string
	// dotnetRoot stands for /var/lang/bin.
	dotnetRoot string
}

func newDotnetRoot(t *testing.T) *dotnetRoot {
	t.Helper()
	r, err := Load("dotnet8")
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for _, f := range r.RIC.Files {
		if f.Path == "/var/runtime/bootstrap" {
			script = f.Content
		}
	}
	if !strings.Contains(script, "/var/lang/bin/dotnet") || !strings.Contains(script, "/var/runtime/Amazon.Lambda.RuntimeSupport.dll") {
		t.Fatalf("dotnet8 bootstrap does not use /var/lang/bin/dotnet and /var/runtime:\n%s", script)
	}
	root := t.TempDir()
	d := &dotnetRoot{
		bootstrap:  filepath.Join(root, "runtime", "bootstrap"),
		task:       filepath.Join(root, "task root"),
		record:     filepath.Join(root, "record"),
		runtime:    filepath.Join(root, "runtime"),
		dotnetRoot: filepath.Join(root, "lang", "bin"),
	}
	script = strings.ReplaceAll(script, "/var/lang/bin", d.dotnetRoot)
	script = strings.ReplaceAll(script, "/var/runtime", d.runtime)
	write(t, d.bootstrap, script, 0o755)
	write(t, filepath.Join(d.runtime, "runtime-release"), "LAMBDA_RUNTIME_NAME=dotnet8\n", 0o644)
	// The fake records argv and the variables the bootstrap sets.
	write(t, filepath.Join(d.dotnetRoot, "dotnet"), `#!/bin/sh
{ echo "dotnet $*"; echo "AWS_EXECUTION_ENV=$AWS_EXECUTION_ENV DOTNET_ROOT=$DOTNET_ROOT"; } >> "$RECORD"
`, 0o755)
	if err := os.MkdirAll(d.task, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// run runs the bootstrap under dash (the image's /bin/sh) and returns its
// exit status, stderr and what the fakes recorded.
func (d *dotnetRoot) run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	sh, err := exec.LookPath("dash")
	if err != nil {
		sh = "/bin/sh"
	}
	os.Remove(d.record)
	cmd := exec.Command(sh, append([]string{d.bootstrap}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "RECORD=" + d.record}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("running bootstrap: %v", err)
	}
	rec, _ := os.ReadFile(d.record)
	return cmd.ProcessState.ExitCode(), stderr.String(), string(rec)
}

// TestDotnetBootstrap checks the dotnet8 bootstrap against images.md
// ".NET" steps 1-6 with a stand-in dotnet.
func TestDotnetBootstrap(t *testing.T) {
	d := newDotnetRoot(t)
	task := d.task
	taskEnv := "LAMBDA_TASK_ROOT=" + task
	put := func(names ...string) {
		for _, n := range names {
			write(t, filepath.Join(task, n), "{}", 0o644)
		}
	}
	reset := func() {
		os.RemoveAll(task)
		os.MkdirAll(task, 0o755)
		write(t, filepath.Join(d.runtime, "runtime-release"), "LAMBDA_RUNTIME_NAME=dotnet8\n", 0o644)
	}
	const lib = "Fn::Fn.Function::Handler"
	rs := filepath.Join(d.runtime, "Amazon.Lambda.RuntimeSupport.dll")
	classLib := func(deps, rc string) string {
		return "dotnet exec --depsfile " + filepath.Join(task, deps) + " --runtimeconfig " + filepath.Join(task, rc) + " " + rs + " " + lib + "\n"
	}
	tests := []struct {
		name  string
		setup func()
		env   []string
		args  []string
		code  int
		// stderr is a substring of stderr; record is the first lines of
		// what the fakes recorded.
		stderr, record string
	}{
		{name: "no task root", env: nil, args: []string{"App"}, code: 101, stderr: "LAMBDA_TASK_ROOT"},
		{name: "missing task root", env: []string{"LAMBDA_TASK_ROOT=" + filepath.Join(task, "nope")}, args: []string{"App"}, code: 102},
		{name: "empty task root", setup: reset, env: []string{taskEnv}, args: []string{"App"}, code: 102, stderr: "missing or empty"},
		{name: "no handler", setup: func() { reset(); put("App.dll") }, env: []string{taskEnv}, code: 103},
		{name: "empty _HANDLER", setup: func() { reset(); put("App.dll") }, env: []string{taskEnv, "_HANDLER="}, code: 103},

		// Executable mode.
		{name: "executable from _HANDLER", setup: func() { reset(); put("App.dll") }, env: []string{taskEnv, "_HANDLER=App"},
			record: "dotnet exec " + filepath.Join(task, "App.dll") + "\n"},
		{name: "argument beats _HANDLER", setup: func() { reset(); put("App.dll", "Other.dll") }, env: []string{taskEnv, "_HANDLER=Other"}, args: []string{"App"},
			record: "dotnet exec " + filepath.Join(task, "App.dll") + "\n"},
		{name: "executable with .dll", setup: func() { reset(); put("App.dll") }, env: []string{taskEnv}, args: []string{"App.dll"},
			record: "dotnet exec " + filepath.Join(task, "App.dll") + "\n"},
		{name: "native executable", setup: func() {
			reset()
			write(t, filepath.Join(task, "app"), "#!/bin/sh\necho \"native $* $AWS_EXECUTION_ENV\" >> \"$RECORD\"\n", 0o755)
		}, env: []string{taskEnv}, args: []string{"app"}, record: "native  AWS_Lambda_dotnet8\n"},
		{name: "native not executable", setup: func() { reset(); put("app") }, env: []string{taskEnv}, args: []string{"app"}, code: 104},
		{name: "executable missing", setup: func() { reset(); put("Other.dll") }, env: []string{taskEnv}, args: []string{"App"}, code: 104, stderr: "App.dll"},

		// Class-library mode.
		{name: "class library", setup: func() {
			reset()
			put("Fn.dll", "Fn.deps.json", "Fn.runtimeconfig.json", "Dep.deps.json", "Dep.runtimeconfig.json")
		}, env: []string{taskEnv}, args: []string{lib}, record: classLib("Fn.deps.json", "Fn.runtimeconfig.json")},
		{name: "single deps and runtimeconfig", setup: func() {
			reset()
			put("Other.deps.json", "Other.runtimeconfig.json")
		}, env: []string{taskEnv, "_HANDLER=" + lib}, record: classLib("Other.deps.json", "Other.runtimeconfig.json")},
		{name: "LAMBDA_DOTNET_MAIN_ASSEMBLY", setup: func() {
			reset()
			put("Fn.deps.json", "Fn.runtimeconfig.json", "Main.deps.json", "Main.runtimeconfig.json")
		}, env: []string{taskEnv, "LAMBDA_DOTNET_MAIN_ASSEMBLY=Main.dll"}, args: []string{lib}, record: classLib("Main.deps.json", "Main.runtimeconfig.json")},
		{name: "two deps files", setup: func() {
			reset()
			put("A.deps.json", "B.deps.json", "A.runtimeconfig.json")
		}, env: []string{taskEnv}, args: []string{lib}, code: 105, stderr: "deps.json"},
		{name: "no deps file", setup: func() { reset(); put("Fn.runtimeconfig.json") }, env: []string{taskEnv}, args: []string{lib}, code: 105},
		{name: "no runtimeconfig", setup: func() { reset(); put("Fn.deps.json") }, env: []string{taskEnv}, args: []string{lib}, code: 106, stderr: "runtimeconfig.json"},
		{name: "two runtimeconfigs", setup: func() {
			reset()
			put("Fn.deps.json", "A.runtimeconfig.json", "B.runtimeconfig.json")
		}, env: []string{taskEnv}, args: []string{lib}, code: 106},

		// The environment the runtime sees.
		{name: "execution environment", setup: func() { reset(); put("App.dll") }, env: []string{taskEnv, "DOTNET_ROOT=/elsewhere"}, args: []string{"App"},
			record: "dotnet exec " + filepath.Join(task, "App.dll") + "\nAWS_EXECUTION_ENV=AWS_Lambda_dotnet8 DOTNET_ROOT=" + d.dotnetRoot + "\n"},
		{name: "no runtime-release", setup: func() {
			reset()
			put("App.dll")
			os.Remove(filepath.Join(d.runtime, "runtime-release"))
		}, env: []string{taskEnv}, args: []string{"App"},
			record: "dotnet exec " + filepath.Join(task, "App.dll") + "\nAWS_EXECUTION_ENV=AWS_Lambda_dotnet_custom DOTNET_ROOT=" + d.dotnetRoot + "\n"},

		// AWS_LAMBDA_EXEC_WRAPPER.
		{name: "wrapper", setup: func() {
			reset()
			put("Fn.deps.json", "Fn.runtimeconfig.json")
			write(t, filepath.Join(d.runtime, "..", "wrap"), "#!/bin/sh\necho \"wrapper $#\" >> \"$RECORD\"\nexec \"$@\"\n", 0o755)
		}, env: []string{taskEnv, "AWS_LAMBDA_EXEC_WRAPPER=" + filepath.Join(d.runtime, "..", "wrap")}, args: []string{lib},
			record: "wrapper 8\n" + classLib("Fn.deps.json", "Fn.runtimeconfig.json")},
		{name: "wrapper for executable", setup: func() { reset(); put("App.dll") },
			env: []string{taskEnv, "AWS_LAMBDA_EXEC_WRAPPER=" + filepath.Join(d.runtime, "..", "wrap")}, args: []string{"App"},
			record: "wrapper 3\ndotnet exec " + filepath.Join(task, "App.dll") + "\n"},
		{name: "wrapper missing", setup: func() { reset(); put("App.dll") },
			env: []string{taskEnv, "AWS_LAMBDA_EXEC_WRAPPER=" + filepath.Join(task, "no-such-wrapper")}, args: []string{"App"}, code: 127, stderr: "does not exist"},
		{name: "wrapper not executable", setup: func() {
			reset()
			put("App.dll")
			write(t, filepath.Join(task, "wrap.sh"), "#!/bin/sh\nexec \"$@\"\n", 0o644)
		}, env: []string{taskEnv, "AWS_LAMBDA_EXEC_WRAPPER=" + filepath.Join(task, "wrap.sh")}, args: []string{"App"}, code: 126, stderr: "not an executable"},
		{name: "wrapper is a directory", setup: func() { reset(); put("App.dll") },
			env: []string{taskEnv, "AWS_LAMBDA_EXEC_WRAPPER=" + d.runtime}, args: []string{"App"}, code: 126},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			code, stderr, record := d.run(t, tt.env, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if tt.code != 0 && record != "" {
				t.Errorf("failed bootstrap started something: %q", record)
			}
			if tt.code != 0 && strings.TrimSpace(stderr) == "" {
				t.Errorf("exit %d without a message on stderr", code)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.stderr)
			}
			got := record
			if n := strings.Count(tt.record, "\n"); n > 0 {
				lines := strings.SplitAfter(record, "\n")
				got = strings.Join(lines[:min(n, len(lines))], "")
			}
			if got != tt.record {
				t.Errorf("recorded\n%q\nwant\n%q", record, tt.record)
			}
		})
	}
}
