// Command dray runs remote functions on a dray peer.
//
//	dray run add 1 2          # prints 3
//	dray functions            # lists the built-in functions
//	dray node                 # starts a peer that the other commands talk to
//	dray fetch CID            # gets an object from the swarm into the node's store
//	dray stats                # the node's figures as JSON
//
// The commands talk to a node's control API (package node/api) at --api,
// else $DRAY_API, else 127.0.0.1:5050. An address given by --api or
// DRAY_API must answer. With neither, `run` and `functions` fall back to an
// in-process peer (the embedded default: no setup and no server to start by
// hand) when nothing answers at the default address; the other commands
// fail with one line that says to start a node. DRAY_DEFAULT_API replaces
// the default address without making it explicit (the tests use it).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/pbnjay/memory"
	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/api"
	"github.com/dray-project/dray/node/builtin"
	"github.com/dray-project/dray/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, errorLine(err))
		os.Exit(1)
	}
}

// errorLine is the one line a failed command prints: "dray: " and the
// error, whose lines (errors.Join) become one.
func errorLine(err error) string {
	msg := strings.TrimPrefix(strings.TrimSpace(err.Error()), "dray: ")
	return "dray: " + strings.Join(strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}

// options are the flags shared by the commands.
type options struct {
	slots    int
	dataDir  string
	memory   string
	logLevel string
	api      string
	apiToken string
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	var opts options
	root := &cobra.Command{
		Use:           "dray",
		Short:         "dray runs Go functions on a swarm of equal peers",
		Long:          "dray is Ray's remote-function model in Go with no head node: call a registered function, get refs back at once, and fetch results by CID.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// The root runs so that it, not cobra, words an unknown command: on
	// one line, suggestions included.
	root.SuggestionsMinimumDistance = 2
	root.Args = cobra.ArbitraryArgs
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return unknownCommand(cmd, args[0])
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
	pf := root.PersistentFlags()
	pf.IntVar(&opts.slots, "slots", runtime.NumCPU(), "worker slots: tasks that run at once")
	pf.StringVar(&opts.dataDir, "data", defaultDataDir(), "data directory (spilled objects)")
	pf.StringVar(&opts.memory, "memory", "25%", "object store memory budget: bytes (1GiB, 512MB) or a share of system memory (25%)")
	pf.StringVar(&opts.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	pf.StringVar(&opts.api, "api", api.DefaultAddr, "HOST:PORT of the node's control API (env DRAY_API)")
	pf.StringVar(&opts.apiToken, "api-token", "", "token of the node's control API: required of clients by a node that sets one, and to serve the API on a non-loopback address (env DRAY_API_TOKEN)")
	root.AddCommand(
		newNodeCmd(&opts),
		newRunCmd(&opts), newMapCmd(&opts), newSubmitCmd(&opts),
		newGetCmd(&opts), newPutCmd(&opts), newFetchCmd(&opts), newFreeCmd(&opts),
		newIDCmd(&opts), newPeersCmd(&opts), newStatsCmd(&opts), newFunctionsCmd(&opts),
		newSimCmd(&opts), newSwarmKeyCmd(&opts),
	)
	root.SetHelpCommand(newHelpCmd(root))
	// cobra's completion command prints its help, and exits 0, for a shell
	// it does not know: make that an error too.
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil && c != root {
		c.Args = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("completion: unknown shell %q: want bash, fish, powershell or zsh", args[0])
			}
			return nil
		}
		c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	return root
}

// newHelpCmd is `dray help [COMMAND]`: unlike cobra's, it fails on a
// command that does not exist.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		ValidArgsFunction: func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, c := range cmd.Commands() {
				if c.IsAvailableCommand() && strings.HasPrefix(c.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(c.Name(), c.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			cmd, _, err := root.Find(args)
			if err != nil {
				return err
			}
			if cmd == root && len(args) > 0 {
				return unknownCommand(root, args[0])
			}
			return cmd.Help()
		},
	}
}

func defaultDataDir() string {
	if d := os.Getenv("DRAY_DATA"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "dray")
	}
	return filepath.Join(home, ".dray")
}

// registry returns the functions every dray binary offers.
func registry() (*node.Registry, error) {
	reg := node.NewRegistry()
	if err := builtin.Register(reg); err != nil {
		return nil, fmt.Errorf("register built-in functions: %w", err)
	}
	return reg, nil
}

// logger returns the logger of --log-level, writing to stderr.
func logger(opts *options, stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", opts.logLevel)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), nil
}

// nodeConfig is the node configuration of the shared flags.
func nodeConfig(opts *options, stderr io.Writer) (node.Config, error) {
	log, err := logger(opts, stderr)
	if err != nil {
		return node.Config{}, err
	}
	reg, err := registry()
	if err != nil {
		return node.Config{}, err
	}
	if opts.slots < 1 {
		return node.Config{}, fmt.Errorf("--slots %d: want at least 1 worker slot", opts.slots)
	}
	cfg := node.DefaultConfig()
	cfg.Functions = reg
	cfg.Slots = opts.slots
	cfg.Store.Dir = opts.dataDir
	budget, err := parseMemory(opts.memory, totalMemory())
	if err != nil {
		return node.Config{}, fmt.Errorf("--memory %q: %w", opts.memory, err)
	}
	cfg.Store.MemoryBudget = budget
	cfg.Logger = log
	if err := cfg.Validate(); err != nil {
		return node.Config{}, err
	}
	return cfg, nil
}

// startNode starts the in-process peer a command runs on.
func startNode(opts *options, stderr io.Writer) (*closer, error) {
	cfg, err := nodeConfig(opts, stderr)
	if err != nil {
		return nil, err
	}
	n, err := node.New(cfg)
	if errors.Is(err, store.ErrLocked) {
		// Another peer uses the data directory: this command's peer is
		// short-lived, so it spills to a private directory instead.
		tmp, terr := os.MkdirTemp("", "dray-run-")
		if terr != nil {
			return nil, fmt.Errorf("%w (and no private directory: %v)", err, terr)
		}
		cfg.Logger.Debug("data directory in use; using a private one", "dir", tmp)
		cfg.Store.Dir = tmp
		n, err = node.New(cfg)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		return &closer{Node: n, dir: tmp}, nil
	}
	if err != nil {
		return nil, err
	}
	return &closer{Node: n}, nil
}

// closer is a command's peer; Close also removes its private directory.
type closer struct {
	*node.Node
	dir string
}

func (c *closer) Close() error {
	err := c.Node.Close()
	if c.dir != "" {
		err = errors.Join(err, os.RemoveAll(c.dir))
	}
	return err
}

// totalMemory is the machine's memory in bytes (1 GiB when unknown).
func totalMemory() int64 {
	if m := memory.TotalMemory(); m > 0 {
		return int64(m)
	}
	return 1 << 30
}
