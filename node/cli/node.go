package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/api"
	"github.com/dray-project/dray/p2p"
	"github.com/dray-project/dray/store"
)

// nodeFlags are the flags of `dray node` only.
type nodeFlags struct {
	listen    []string
	bootstrap []string
	noMDNS    bool
	swarmKey  string
	resources map[string]int
}

func newNodeCmd(opts *options) *cobra.Command {
	var nf nodeFlags
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Start a peer and serve the control API until interrupted",
		Long: `Start a dray peer: a libp2p host, a worker pool and an object store in --data,
with the control API the other commands use at --api. The API runs functions
and reads objects, so on an address other than loopback it requires a token:
set one with --api-token or DRAY_API_TOKEN, and give clients the same. It runs
until SIGINT or SIGTERM, then closes cleanly.

Once ready it prints, one per line on stdout:
  peer <peer ID>
  addr <multiaddr>        (one line per address, each ending in /p2p/<peer ID>)
  api <HOST:PORT>         (the real port, also with --api HOST:0; the last line)`,
		Example: `  dray node
  dray node --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW...`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNode(cmd, opts, &nf)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&nf.listen, "listen", nil, "multiaddr to listen on (repeatable; default all interfaces, TCP and QUIC, port 4001 or a random port when taken)")
	f.StringArrayVar(&nf.bootstrap, "bootstrap", nil, "multiaddr of a peer to join, ending in /p2p/<peer ID> (repeatable)")
	f.BoolVar(&nf.noMDNS, "no-mdns", false, "do not discover peers on the LAN with mDNS")
	f.StringVar(&nf.swarmKey, "swarm-key", "", "private network key file: only peers with the same key connect")
	f.StringToIntVar(&nf.resources, "resources", nil, "named quantities beside the slots, as Ray's custom resources (gpu=1,license=2): tasks whose functions need them run only here, while they are free")
	return cmd
}

// apiListenAddr is the API address `dray node` listens on and where it
// came from: --api, else $DRAY_API, else 127.0.0.1:5050.
func apiListenAddr(cmd *cobra.Command, opts *options) (addr, from string) {
	if f := cmd.Flag("api"); f != nil && f.Changed {
		return opts.api, "--api"
	}
	if a := strings.TrimSpace(os.Getenv("DRAY_API")); a != "" {
		return a, "DRAY_API"
	}
	return api.DefaultAddr, "--api"
}

// checkAPIAddr checks the API address (from names the flag or variable
// that gave it) and refuses one that is not loopback unless the API
// requires a token.
func checkAPIAddr(addr, from, token string) error {
	if err := checkHostPort(addr, true); err != nil {
		return fmt.Errorf("%s %q: %w", from, addr, err)
	}
	if token != "" {
		return nil
	}
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %s is not a loopback address: the API runs functions and reads objects, so it needs a token there; set one with --api-token or DRAY_API_TOKEN (clients pass the same)", from, addr)
}

func runNode(cmd *cobra.Command, opts *options, nf *nodeFlags) (err error) {
	ctx := cmd.Context()
	apiAddr, from := apiListenAddr(cmd, opts)
	token := apiToken(cmd, opts)
	if err := checkAPIAddr(apiAddr, from, token); err != nil {
		return err
	}
	cfg, err := nodeConfig(opts, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if len(nf.resources) > 0 {
		cfg.Resources = nf.resources
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("--resources: %w", err)
		}
	}
	pcfg := p2p.DefaultConfig()
	pcfg.DataDir = opts.dataDir
	pcfg.Listen = nf.listen
	pcfg.Bootstrap = nf.bootstrap
	pcfg.MDNS = !nf.noMDNS
	pcfg.SwarmKeyFile = nf.swarmKey
	// The host's start-up warnings wait until it has started: when it
	// fails, its error line says it all (unless the user asked for info).
	plog, held := hold(cfg.Logger)
	pcfg.Logger = plog
	if err := pcfg.Validate(); err != nil {
		return err
	}

	// The API port first: a second node on the same address fails before
	// it touches anything.
	ln, err := net.Listen("tcp", apiAddr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s %s: %w (is another dray node running? pick another address with --api)", from, apiAddr, unwrapOp(err))
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", from, apiAddr, unwrapOp(err))
	}
	defer func() {
		if ln != nil {
			ln.Close()
		}
	}()

	host, err := p2p.New(ctx, pcfg)
	if err != nil {
		if cfg.Logger.Enabled(ctx, slog.LevelInfo) {
			held.release(ctx)
		} else {
			held.drop()
		}
		return err
	}
	held.release(ctx)
	defer func() { err = errors.Join(err, host.Close()) }()

	cfg.ID = host.ID().String()
	cfg.Network = host
	n, err := node.New(cfg)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("data directory %s is in use by another dray node: %w (use --data)", opts.dataDir, err)
	}
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, n.Close()) }()

	apiOpts := api.DefaultOptions()
	apiOpts.Network = func() api.NetInfo { return netInfo(host) }
	apiOpts.Logger, apiOpts.Token = cfg.Logger, token
	if err := apiOpts.Validate(); err != nil {
		return err
	}
	srv := api.NewServer(n, apiOpts)
	serveErr := make(chan error, 1)
	l := ln
	ln = nil // the server owns it now
	go func() { serveErr <- srv.Serve(l) }()

	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "peer %s\n", host.ID())
	for _, a := range host.Addrs() {
		fmt.Fprintf(out, "addr %s\n", a)
	}
	fmt.Fprintf(out, "api %s\n", l.Addr())
	if f, ok := out.(*os.File); ok {
		_ = f.Sync()
	}

	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
	case err := <-serveErr:
		_ = srv.Close()
		if err != nil {
			return err
		}
		return errors.New("control API stopped")
	}
	if err := srv.Close(); err != nil {
		cfg.Logger.Warn("closing the control API", "err", err)
	}
	<-serveErr
	// Leave gracefully: finish what peers handed us, hand the results we
	// lend to their owners, for at most leaveGrace; then the deferred
	// Close. (Not Node.Shutdown: it would also wait for this node's own
	// tasks, whose results nobody can read once the API is closed.)
	lctx, cancel := context.WithTimeout(context.Background(), leaveGrace)
	defer cancel()
	if err := n.Leave(lctx); err != nil {
		cfg.Logger.Warn("leaving the swarm", "err", err)
	}
	return nil
}

// leaveGrace bounds how long `dray node` takes to leave on SIGTERM.
const leaveGrace = 20 * time.Second

// unwrapOp drops the "listen tcp 1.2.3.4:5:" prefix of a listen error.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// netInfo reports the host's identity, addresses and connected peers for
// the API.
func netInfo(h *p2p.Host) api.NetInfo {
	ni := api.NetInfo{Peer: h.ID().String()}
	for _, a := range h.Addrs() {
		ni.Addrs = append(ni.Addrs, a.String())
	}
	lh := h.Libp2p()
	for _, p := range h.Peers() {
		ni.Peers = append(ni.Peers, api.Peer{ID: p.String(), Addrs: peerAddrs(lh.Network().ConnsToPeer(p), lh.Peerstore().Addrs(p))})
	}
	return ni
}

// peerAddrs lists the addresses of a peer's connections, else those the
// peerstore knows.
func peerAddrs(conns []network.Conn, known []ma.Multiaddr) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range conns {
		if s := c.RemoteMultiaddr().String(); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		for _, a := range known {
			out = append(out, a.String())
		}
	}
	return out
}
