package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/internal/bintest"
	"github.com/dray-project/dray/p2p/p2ptest"
)

// TestLAN runs two `dray node` processes in two network namespaces joined
// by a veth pair, with no bootstrap address: they find each other by mDNS
// alone, and a task submitted on one runs on the other. The test drives
// them only through the CLI, run inside each namespace. It needs root and
// iproute2 (CI has both) and skips otherwise.
func TestLAN(t *testing.T) {
	lan := p2ptest.LAN(t, "10.213.78")
	ipCmd, err := exec.LookPath("ip")
	require.NoError(t, err)
	ns, addr := lan.NS, lan.Addr

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
		return bintest.Run(t, cmd)
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
