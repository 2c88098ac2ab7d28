// Package p2ptest holds test helpers for dray's network code, in the
// manner of net/http/httptest: real hosts, real sockets, real namespaces.
//
// LAN makes two Linux network namespaces joined by a veth pair, so a test
// can run two peers that see each other only through that link — the
// setting mDNS discovery is tested in:
//
//	lan := p2ptest.LAN(t, "10.213.77") // skips without root or iproute2
//	cmd := exec.Command("ip", "netns", "exec", lan.NS[0], "dray", "node")
package p2ptest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Pair is two network namespaces joined by a veth pair that is up.
type Pair struct {
	NS   [2]string // namespace names
	Veth [2]string // interface names, one in each namespace
	Addr [2]string // IPv4 address of each interface (no prefix length)
}

var pairs atomic.Int32

// LAN creates a Pair whose interfaces get the addresses subnet.1 and
// subnet.2 (subnet is three octets, e.g. "10.213.77"), waits until both
// links have carrier, and removes everything when the test ends. It skips
// the test in -short mode, when not root, without the ip command, or when
// namespaces cannot be created here.
func LAN(t testing.TB, subnet string) Pair {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip command (iproute2) to create network namespaces")
	}
	ip := func(args ...string) error {
		out, err := exec.Command(ipCmd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	tag := fmt.Sprintf("dr%d-%d", os.Getpid()%100000, pairs.Add(1)%100)
	p := Pair{
		NS:   [2]string{tag + "a", tag + "b"},
		Veth: [2]string{tag + "va", tag + "vb"},
		Addr: [2]string{subnet + ".1", subnet + ".2"},
	}
	if err := ip("netns", "add", p.NS[0]); err != nil {
		t.Skipf("cannot create network namespaces here: %v", err)
	}
	t.Cleanup(func() { _ = ip("netns", "del", p.NS[0]) })
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ip("netns", "add", p.NS[1]))
	t.Cleanup(func() { _ = ip("netns", "del", p.NS[1]) })
	must(ip("link", "add", p.Veth[0], "netns", p.NS[0], "type", "veth", "peer", "name", p.Veth[1], "netns", p.NS[1]))
	for i := range 2 {
		must(ip("-n", p.NS[i], "addr", "add", p.Addr[i]+"/24", "dev", p.Veth[i]))
		must(ip("-n", p.NS[i], "link", "set", p.Veth[i], "up"))
		must(ip("-n", p.NS[i], "link", "set", "lo", "up"))
	}
	// mDNS picks its interfaces at start: wait until both ends have
	// carrier, or the first announcements and queries are lost.
	deadline := time.Now().Add(10 * time.Second)
	for i := range 2 {
		for {
			out, err := exec.Command(ipCmd, "-n", p.NS[i], "-o", "link", "show", "dev", p.Veth[i]).CombinedOutput()
			if err == nil && strings.Contains(string(out), "LOWER_UP") && strings.Contains(string(out), "state UP") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("veth %s never came up: %s", p.Veth[i], out)
			}
			time.Sleep(20 * time.Millisecond) // poll the link state
		}
	}
	return p
}
