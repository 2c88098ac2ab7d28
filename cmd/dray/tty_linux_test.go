package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openPty opens a pseudo-terminal: its controlling side and the terminal.
func openPty(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptm.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Skipf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptm.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Skipf("pty number: %v", e)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { tty.Close() })
	return ptm, tty
}

// TestGetRefusesBinaryOnTerminal: `dray get` of a byte string above 1 MiB
// with stdout on a terminal prints one line on stderr saying to use --out,
// nothing on the terminal, and exits non-zero.
func TestGetRefusesBinaryOnTerminal(t *testing.T) {
	ptm, tty := openPty(t)
	p := startPeer(t)
	file := filepath.Join(t.TempDir(), "value")
	require.NoError(t, os.WriteFile(file, bytes.Repeat([]byte{1}, 1<<20+1), 0o644))
	c := strings.TrimSpace(ok(t, p.api, "put", file))

	cmd := exec.Command(drayBin, "get", c)
	cmd.Env = append(testEnv(), "DRAY_API="+p.api, "DRAY_DATA="+t.TempDir())
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = tty, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "dray get on a terminal: %v", err)
	assert.NotZero(t, ee.ExitCode())
	msg := errOut.String()
	assert.Equal(t, 1, strings.Count(msg, "\n"), "stderr: %q", msg)
	assert.Contains(t, msg, "binary output can mess up your terminal")
	assert.Contains(t, msg, "dray get --out FILE "+c)
	t.Logf("stderr: %s", msg)

	// Nothing reached the terminal: after a marker written now, the marker
	// is the first thing read.
	_, err = tty.WriteString("END\n")
	require.NoError(t, err)
	require.NoError(t, ptm.SetReadDeadline(time.Now().Add(10*time.Second)))
	buf := make([]byte, 64)
	n, err := ptm.Read(buf)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(buf[:n]), "END"), "terminal got %q", buf[:n])
}
