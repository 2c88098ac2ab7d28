package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/pbnjay/memory"
	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/api"
	"github.com/dray-project/dray/node/builtin"
	"github.com/dray-project/dray/store"
)

// Main runs the command line on os.Args with the functions of reg (nil:
// none of the program's own) and the built-ins, unless WithoutBuiltins,
// and exits: with status 0 when the command succeeds, else with status 1
// after one line on stderr that starts with the program's name ("dray:
// ..."). SIGINT and SIGTERM cancel the command; a node then leaves the
// swarm and closes.
func Main(reg *node.Registry, opts ...Option) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := Command(os.Stdout, os.Stderr, reg, opts...)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, errorLine(root.Name(), err))
		os.Exit(1)
	}
}

// An Option changes the command line of Main and Command.
type Option func(*settings)

// settings are what the options set.
type settings struct {
	name     string // the program's name ("" the default)
	builtins bool   // offer the built-in functions too
}

// WithoutBuiltins leaves out the built-in functions (package node/builtin:
// add, fib, nd.matmul, ...): the program offers its registry's functions
// only.
func WithoutBuiltins() Option { return func(s *settings) { s.builtins = false } }

// Name sets the program's name, one word, which its help and its error
// lines use. The default is the base name of os.Args[0] ("dray",
// "wordcount"), without ".exe".
func Name(name string) Option { return func(s *settings) { s.name = name } }

// defaultName is the base name of os.Args[0] without ".exe", else "dray".
func defaultName() string {
	if len(os.Args) > 0 {
		n := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
		if n != "" && n != "." && n != string(filepath.Separator) {
			return n
		}
	}
	return "dray"
}

// errorLine is the one line a failed command prints: the program's name,
// ": " and the error, whose lines (errors.Join) become one.
func errorLine(name string, err error) string {
	msg := strings.TrimPrefix(strings.TrimSpace(err.Error()), name+": ")
	return name + ": " + strings.Join(strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}

// options are the flags shared by the commands, and the program's name
// and functions.
type options struct {
	name  string
	funcs *functions

	slots    int
	dataDir  string
	memory   string
	logLevel string
	api      string
	apiToken string
}

// Command returns the root command of the command line, with the
// functions of reg (nil: none of the program's own) and the built-ins,
// unless WithoutBuiltins, for a program that embeds or tests it; it
// writes to stdout and stderr. Its arguments are os.Args[1:] unless set
// with SetArgs. Its Execute returns a failed command's error without
// printing it: Main prints it as one line.
//
// Unless WithoutBuiltins, the built-ins are added to reg (once, when a
// command first needs the functions); a function of reg's with a
// built-in's name makes every such command fail with an error that names
// it.
func Command(stdout, stderr io.Writer, reg *node.Registry, opts ...Option) *cobra.Command {
	s := settings{builtins: true}
	for _, opt := range opts {
		opt(&s)
	}
	if s.name == "" {
		s.name = defaultName()
	}
	o := options{name: s.name, funcs: &functions{reg: reg, builtins: s.builtins}}
	root := &cobra.Command{
		Use:           s.name,
		Short:         s.name + " runs Go functions on a swarm of equal peers",
		Long:          "dray is Ray's remote-function model in Go with no head node: call a registered function, get refs back at once, and fetch results by CID.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if s.name != "dray" {
		root.Long = s.name + " is a dray peer with its own functions. " + root.Long
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
	pf.IntVar(&o.slots, "slots", runtime.NumCPU(), "worker slots: tasks that run at once")
	pf.StringVar(&o.dataDir, "data", defaultDataDir(), "data directory (spilled objects)")
	pf.StringVar(&o.memory, "memory", "25%", "object store memory budget: bytes (1GiB, 512MB) or a share of system memory (25%)")
	pf.StringVar(&o.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	pf.StringVar(&o.api, "api", api.DefaultAddr, "HOST:PORT of the node's control API (env DRAY_API)")
	pf.StringVar(&o.apiToken, "api-token", "", "token of the node's control API: required of clients by a node that sets one, and to serve the API on a non-loopback address (env DRAY_API_TOKEN)")
	root.AddCommand(
		newNodeCmd(&o),
		newRunCmd(&o), newMapCmd(&o), newSubmitCmd(&o),
		newGetCmd(&o), newPutCmd(&o), newFetchCmd(&o), newFreeCmd(&o),
		newIDCmd(&o), newPeersCmd(&o), newStatsCmd(&o), newFunctionsCmd(&o),
		newSimCmd(&o), newSwarmKeyCmd(&o),
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
	renameBinary(root)
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

// renameBinary makes the help of root's commands name the program where
// it names the binary: "dray node" becomes "wordcount node".
func renameBinary(root *cobra.Command) {
	name := root.Name()
	if name == "dray" {
		return
	}
	var cmds []string
	for _, c := range root.Commands() {
		cmds = append(cmds, regexp.QuoteMeta(c.Name()))
	}
	// "dray" before a command or a flag: not "a dray peer".
	re := regexp.MustCompile(`\bdray( +(?:--|(?:` + strings.Join(cmds, "|") + `)\b))`)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c != root {
			c.Short = re.ReplaceAllString(c.Short, name+"$1")
			c.Long = re.ReplaceAllString(c.Long, name+"$1")
		}
		c.Example = re.ReplaceAllString(c.Example, name+"$1")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
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

// functions are the remote functions of a program: its own, and the
// built-ins unless it leaves them out.
type functions struct {
	reg      *node.Registry // the program's; nil: none
	builtins bool

	once sync.Once
	all  *node.Registry
	err  error
}

// registry returns the functions the program offers.
func (f *functions) registry() (*node.Registry, error) {
	f.once.Do(func() { f.all, f.err = withBuiltins(f.reg, f.builtins) })
	return f.all, f.err
}

// extended holds, for each program registry the built-ins were added to,
// the *extension that added them: two commands over one registry add them
// once.
var extended sync.Map

// extension is the adding of the built-ins to a program's registry.
type extension struct {
	once sync.Once
	err  error
}

// withBuiltins returns reg (nil: an empty registry) with the built-ins
// added when builtins is set.
func withBuiltins(reg *node.Registry, builtins bool) (*node.Registry, error) {
	switch {
	case reg == nil && !builtins:
		return node.NewRegistry(), nil
	case !builtins:
		return reg, nil
	case reg == nil:
		reg = node.NewRegistry()
		if err := builtin.Register(reg); err != nil {
			return nil, fmt.Errorf("register built-in functions: %w", err)
		}
		return reg, nil
	}
	v, _ := extended.LoadOrStore(reg, new(extension))
	e := v.(*extension)
	e.once.Do(func() {
		if err := builtin.Register(reg); err != nil {
			e.err = fmt.Errorf("register built-in functions: %w (name yours otherwise, or leave the built-ins out with cli.WithoutBuiltins)", err)
		}
	})
	return reg, e.err
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
	reg, err := opts.funcs.registry()
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
