package bintest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles the main package in dir into a temporary directory as
// name; remove deletes it.
func Build(dir, name string) (bin string, remove func(), err error) {
	tmp, err := os.MkdirTemp("", name+"-bin-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(tmp, name)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", nil, fmt.Errorf("bintest: go build %s: %w\n%s", name, err, out)
	}
	return bin, func() { os.RemoveAll(tmp) }, nil
}

// DeadAddr returns a loopback address where nothing listens.
func DeadAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// Run runs cmd and returns its stdout, stderr and exit code; a command
// that cannot run at all fails the test.
func Run(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", cmd.Path, err)
	}
	return o.String(), e.String(), code
}
