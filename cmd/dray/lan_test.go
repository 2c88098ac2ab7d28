package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLAN runs two `dray node` processes in two network namespaces joined
// by a veth pair, with no bootstrap address: they find each other by mDNS
// alone, and a task submitted on one runs on the other. The test drives
// them only through the CLI, run inside each namespace. It needs root and
// iproute2 (CI has both) and skips otherwise.
func TestLAN(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	ip := func(args ...string) error {
		out, err := exec.Command(ipCmd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	tag := fmt.Sprintf("drl%d", os.Getpid()%100000)
	ns := []string{tag + "a", tag + "b"}
	veth := []string{tag + "va", tag + "vb"}
	addr := []string{"10.213.78.1", "10.213.78.2"}
	if err := ip("netns", "add", ns[0]); err != nil {
		t.Skipf("cannot create network namespaces here: %v", err)
	}
	t.Cleanup(func() { _ = ip("netns", "del", ns[0]) })
	require.NoError(t, ip("netns", "add", ns[1]))
	t.Cleanup(func() { _ = ip("netns", "del", ns[1]) })
	require.NoError(t, ip("link", "add", veth[0], "netns", ns[0], "type", "veth", "peer", "name", veth[1], "netns", ns[1]))
	for i := range 2 {
		require.NoError(t, ip("-n", ns[i], "addr", "add", addr[i]+"/24", "dev", veth[i]))
		require.NoError(t, ip("-n", ns[i], "link", "set", veth[i], "up"))
		require.NoError(t, ip("-n", ns[i], "link", "set", "lo", "up"))
	}
	// mDNS announces on the interfaces present at start: wait for carrier.
	for i := range 2 {
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := exec.Command(ipCmd, "-n", ns[i], "-o", "link", "show", "dev", veth[i]).CombinedOutput()
			if err == nil && strings.Contains(string(out), "LOWER_UP") && strings.Contains(string(out), "state UP") {
				break
			}
			require.True(t, time.Now().Before(deadline), "veth %s never came up: %s", veth[i], out)
			time.Sleep(20 * time.Millisecond)
		}
	}

	var peers []*peerProc
	for i := range 2 {
		cmd := exec.Command(ipCmd, "netns", "exec", ns[i], drayBin, "node", "--data", t.TempDir(),
			"--listen", "/ip4/"+addr[i]+"/tcp/0", "--api", "127.0.0.1:0", "--slots", "1", "--memory", "64MiB")
		cmd.Env = testEnv()
		peers = append(peers, startCmd(t, cmd))
	}
	// in runs the CLI inside namespace i against its node.
	in := func(i int, args ...string) (string, string, int) {
		all := append([]string{"netns", "exec", ns[i], drayBin, "--api", peers[i].api}, args...)
		cmd := exec.Command(ipCmd, all...)
		cmd.Env = testEnv()
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return o.String(), e.String(), code
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		out, errOut, code := in(0, "peers")
		require.Equal(t, 0, code, errOut)
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				ids = append(ids, f[0])
			}
		}
		if slices.Contains(ids, peers[1].peer) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the peers never found each other by mDNS")
		time.Sleep(200 * time.Millisecond)
	}
	out, errOut, code := in(0, "run", "--on", peers[1].peer, "whoami")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, `"`+peers[1].peer+`"`+"\n", out)
	out, errOut, code = in(1, "run", "add", "20", "22")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "42\n", out)
	for _, p := range peers {
		p.stop(t)
	}
}
