package p2p

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dray-project/dray/p2p/p2ptest"
)

// hasMulticastInterface reports whether an up, non-loopback, multicast-capable interface
// with an IPv4 address exists (mDNS cannot work on loopback alone).
func hasMulticastInterface() bool {
	ifaces, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagMulticast == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return true
			}
		}
	}
	return false
}

// TestMDNSInProcess runs two mDNS hosts in this process; it needs a multicast interface
// (most machines have one; loopback-only sandboxes do not, see TestMDNSNetns).
func TestMDNSInProcess(t *testing.T) {
	if !hasMulticastInterface() {
		t.Skip("no up multicast interface with an IPv4 address: mDNS cannot work here (TestMDNSNetns covers it when root)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	any4 := []string{"/ip4/0.0.0.0/tcp/0"}
	a := newTestHost(t, func(c *Config) { c.MDNS = true; c.Listen = any4 })
	b := newTestHost(t, func(c *Config) { c.MDNS = true; c.Listen = any4 })
	for _, h := range []struct{ self, other *Host }{{a, b}, {b, a}} {
		select {
		case ev := <-h.self.PeerEvents():
			assert.Equal(t, PeerEvent{Peer: h.other.ID(), Kind: PeerConnected}, ev)
		case <-ctx.Done():
			t.Fatal("the hosts did not find each other by mDNS")
		}
	}
}

const mdnsHelperEnv = "DRAY_P2P_MDNS_HELPER"

// TestMDNSHelper is not a test: TestMDNSNetns runs this test binary inside a network
// namespace with DRAY_P2P_MDNS_HELPER=1 to get a host with mDNS on. It prints
// "ID <peer id>", then "PEER <peer id>" for the first peer it connects to, and exits
// when its stdin closes.
func TestMDNSHelper(t *testing.T) {
	if os.Getenv(mdnsHelperEnv) != "1" {
		t.Skip("helper process for TestMDNSNetns")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := New(ctx, Config{MDNS: true, Listen: []string{"/ip4/0.0.0.0/tcp/0"}, Logger: testLogger(&logBuffer{})})
	require.NoError(t, err)
	defer h.Close()
	fmt.Printf("ID %s\n", h.ID())
	select {
	case ev := <-h.PeerEvents():
		fmt.Printf("PEER %s\n", ev.Peer)
	case <-ctx.Done():
		fmt.Printf("TIMEOUT\n")
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // stay up until the parent is done
}

// TestMDNSNetns runs two hosts in two network namespaces joined by a veth pair, with
// no bootstrap addresses, and checks that they find each other by mDNS. It needs root
// and the ip command; otherwise it is skipped.
func TestMDNSNetns(t *testing.T) {
	lan := p2ptest.LAN(t, "10.213.77")
	ipCmd, err := exec.LookPath("ip")
	require.NoError(t, err)
	ns := lan.NS[:]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		id, found string
		err       error
	}
	results := make([]chan result, 2)
	for i := range 2 {
		cmd := exec.CommandContext(ctx, ipCmd, "netns", "exec", ns[i], os.Args[0], "-test.run=^TestMDNSHelper$", "-test.v")
		cmd.Env = append(os.Environ(), mdnsHelperEnv+"=1")
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			stdin.Close()
			_ = cmd.Wait()
		})
		ch := make(chan result, 1)
		results[i] = ch
		go func() {
			var r result
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "ID "):
					r.id = strings.TrimPrefix(line, "ID ")
				case strings.HasPrefix(line, "PEER "):
					r.found = strings.TrimPrefix(line, "PEER ")
					ch <- r
					_, _ = io.Copy(io.Discard, stdout)
					return
				case line == "TIMEOUT":
					r.err = fmt.Errorf("helper in %s found no peer", ns[i])
					ch <- r
					return
				}
			}
			r.err = fmt.Errorf("helper in %s exited before finding a peer: %v", ns[i], sc.Err())
			ch <- r
		}()
	}
	var got [2]result
	for i := range 2 {
		select {
		case got[i] = <-results[i]:
			require.NoError(t, got[i].err)
		case <-ctx.Done():
			t.Fatalf("timed out waiting for the helper in %s", ns[i])
		}
	}
	for i := range 2 {
		_, err := peer.Decode(got[i].id)
		require.NoError(t, err)
	}
	assert.Equal(t, got[1].id, got[0].found, "host in %s found the host in %s", ns[0], ns[1])
	assert.Equal(t, got[0].id, got[1].found, "host in %s found the host in %s", ns[1], ns[0])
}
