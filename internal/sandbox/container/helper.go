package container

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// HelperName is the name the helper runs under in a container: a
// statically linked lambdabox (or any binary whose main calls RunHelper
// first), bound read-only at HelperPath. It is the container's first
// process and starts its other processes, so that images need no shell.
const (
	HelperName = "lambdabox-container-helper"
	HelperPath = "/.lambdabox/" + HelperName
)

// RunHelper runs the container helper when the process was started as
// HelperName, and then exits; otherwise it returns at once. Call it first
// in main.
//
//	keeper DIR CMD   lists the executables in DIR ("ext NAME"), says
//	                 "noexec" when CMD cannot be executed, "ready", and then
//	                 waits until its standard input ends
//	exec CMD ARGS…   writes its pid on stderr's first line, then becomes
//	                 CMD (found in $PATH when it has no slash)
//	kill SIG PID     sends signal number SIG to PID (-1: to every process
//	                 it may signal)
func RunHelper() {
	if filepath.Base(os.Args[0]) != HelperName {
		return
	}
	os.Exit(helper(os.Args[1:]))
}

func helper(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, HelperName+": keeper, exec or kill?")
		return 2
	}
	switch args[0] {
	case "keeper":
		if len(args) != 3 {
			return 2
		}
		for _, name := range executables(args[1]) {
			fmt.Println("ext " + name)
		}
		if args[2] != "" {
			if _, err := lookPath(args[2]); err != nil {
				fmt.Println("noexec")
			}
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "exec":
		if len(args) < 2 {
			return 2
		}
		env, direct, report := directOutput()
		if direct != nil {
			fmt.Fprintln(os.Stderr, os.Getpid(), "direct")
			_ = unix.Dup2(int(direct.Fd()), 1)
			_ = unix.Dup2(int(direct.Fd()), 2)
			direct.Close()
		} else {
			fmt.Fprintln(os.Stderr, os.Getpid())
		}
		path, err := lookPath(args[1])
		if err == nil {
			// report closes on exec: lambdabox reads end-of-file.
			err = syscall.Exec(path, args[1:], env)
		}
		msg := "exec " + args[1] + ": " + err.Error()
		if report != nil {
			_, _ = report.Write([]byte(msg))
		}
		fmt.Fprintln(os.Stderr, msg)
		return 127
	case "kill":
		if len(args) != 3 {
			return 2
		}
		sig, err1 := strconv.Atoi(args[1])
		pid, err2 := strconv.Atoi(args[2])
		if err1 != nil || err2 != nil {
			return 2
		}
		if err := syscall.Kill(pid, syscall.Signal(sig)); err != nil {
			return 1
		}
		return 0
	}
	return 2
}

// OutputEnv, when set in an exec's environment to a token, has the helper
// fetch the process's output file from lambdabox (see outputs) and give
// it to the process as its stdout and stderr. Without it, or when that
// fails, the output goes through the engine's exec streams.
const OutputEnv = "LAMBDABOX_CONTAINER_OUTPUT"

// directOutput fetches the output file that OutputEnv names, and returns
// the environment without it, the file, and the connection to report an
// exec failure on (it closes on exec); or nils.
func directOutput() ([]string, *os.File, io.Writer) {
	var env []string
	var token string
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, OutputEnv+"="); ok {
			token = v
			continue
		}
		env = append(env, kv)
	}
	if token == "" {
		return env, nil, nil
	}
	f, c, err := fetchOutput(token)
	if err != nil {
		return env, nil, nil
	}
	return env, f, c
}

// executables lists the executable files in dir, in name order, as
// sandbox.FindExtensions does.
func executables(dir string) []string {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, de := range entries {
		p := filepath.Join(dir, de.Name())
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if unix.Access(p, unix.X_OK) == nil {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	return names
}

// lookPath finds an executable regular file: p itself when it has a
// slash, else in $PATH.
func lookPath(p string) (string, error) {
	if filepath.Base(p) == p {
		return exec.LookPath(p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a file", p)
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return p, nil
}

// staticBinary reports whether the executable at path needs no dynamic
// loader, so that it runs in any image.
func staticBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is linked dynamically (build it with CGO_ENABLED=0)", path)
		}
	}
	return nil
}
