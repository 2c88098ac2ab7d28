package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node/api"
)

func newMapCmd(opts *options) *cobra.Command {
	var (
		timeout time.Duration
		on      string
		retry   retryFlags
	)
	cmd := &cobra.Command{
		Use:   "map FUNC ARG...",
		Short: "Call a function once per ARG, all at once, and print the results in order",
		Long: `Submit one call of FUNC per ARG together, then print the results as JSON,
one line per call in argument order.

For a function of one parameter each ARG is its argument; for other
functions each ARG is a JSON list of the arguments, such as [1,2] for add.
` + argsHelp,
		Example: `  dray map fib 10 20 30
  dray map add '[1,2]' '[3,4]'`,
		Args: minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = dropDashDash(args)
			if err := minArgs(2)(cmd, args); err != nil {
				return err // only "FUNC --"
			}
			if err := firstErr(checkTimeout(timeout), checkPeer(on, opts.name)); err != nil {
				return err
			}
			for i, a := range args[1:] {
				if err := api.CheckJSON([]byte(a)); err != nil {
					return fmt.Errorf("%s: ARG %d: %w%s", args[0], i+1, err, flagHint(a))
				}
			}
			ctx := cmd.Context()
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			c := t.client()
			fns, err := c.Functions(ctx)
			if err != nil {
				return t.remoteErr(err)
			}
			params := 1 // an unknown function: the server says so
			for _, f := range fns {
				if f.Name == args[0] {
					params = len(f.Params)
				}
			}
			calls := make([][]json.RawMessage, len(args)-1)
			for i, a := range args[1:] {
				if params == 1 {
					calls[i] = []json.RawMessage{json.RawMessage(a)}
					continue
				}
				if err := json.Unmarshal([]byte(a), &calls[i]); err != nil || calls[i] == nil {
					return fmt.Errorf("%s: ARG %d: %s takes %d arguments, so each ARG is a JSON list of them, such as [%s]",
						args[0], i+1, args[0], params, strings.TrimSuffix(strings.Repeat("1,", params), ","))
				}
			}
			out := newResults(cmd, runHint(opts.name))
			err = c.MapStream(ctx, api.MapRequest{Func: args[0], Args: calls, Wait: true, Free: true, Timeout: api.Duration(timeout), On: on,
				MaxRetries: retry.max, RetryErrors: retry.errors, Needs: retry.needs},
				func(k int, refs []cid.Cid, i int, v io.Reader) error {
					if err := out.upTo(k); err != nil {
						return err
					}
					return out.value(refs, i, v)
				})
			if err != nil {
				return timedOut(t.remoteErr(err), timeout)
			}
			return out.upTo(len(calls))
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting for the results after this long (0: no limit)")
	cmd.Flags().StringVar(&on, "on", "", "run every call on the peer with this ID")
	retry.add(cmd)
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newSubmitCmd(opts *options) *cobra.Command {
	var (
		on    string
		retry retryFlags
	)
	cmd := &cobra.Command{
		Use:   "submit FUNC [ARG...]",
		Short: "Submit a call and print the CIDs of its outputs without waiting",
		Long: `Submit a call of FUNC to the node and print the ref of each output, one CID a
line, without waiting for the task: fetch the values later with dray get.

` + argsHelp,
		Example: `  dray submit fib 30
  dray get "$(dray submit fib 30)"`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = dropDashDash(args)
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			if err := checkPeer(on, opts.name); err != nil {
				return err
			}
			raw, err := checkArgs(args[0], args[1:])
			if err != nil {
				return err
			}
			res, err := t.client().Call(cmd.Context(), api.CallRequest{Func: args[0], Args: raw, On: on, MaxRetries: retry.max, RetryErrors: retry.errors, Needs: retry.needs})
			if err != nil {
				return t.remoteErr(err)
			}
			for _, c := range res.Refs {
				fmt.Fprintln(cmd.OutOrStdout(), c)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&on, "on", "", "run on the peer with this ID")
	retry.add(cmd)
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newGetCmd(opts *options) *cobra.Command {
	var (
		timeout time.Duration
		out     string
	)
	cmd := &cobra.Command{
		Use:   "get CID",
		Short: "Wait for a value and print it as JSON (or write a byte string's bytes with --out)",
		Long: `Wait for the value with this CID (a task output or a put value) and print it
as JSON; with --out FILE write the raw bytes of a byte-string value to FILE
("-" for stdout) instead.`,
		Example: `  dray get bafyrei...
  dray get --out copy.bin bafyrei...`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cid.Decode(args[0])
			if err != nil {
				return fmt.Errorf("bad CID %q: %v", args[0], err)
			}
			if err := firstErr(checkTimeout(timeout), checkOut(out)); err != nil {
				return err
			}
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			if out != "" {
				return timedOut(getRaw(cmd, t, c, out, timeout), timeout)
			}
			return timedOut(t.remoteErr(printGet(cmd, t.client(), c, timeout, opts.name)), timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting after this long (0: no limit)")
	cmd.Flags().StringVarP(&out, "out", "o", "", `write the raw bytes of a byte-string value to FILE ("-": stdout)`)
	return cmd
}

// checkOut checks, before anything is fetched, that get can write the
// file out: its directory exists and it is not a directory itself.
func checkOut(out string) error {
	if out == "" || out == "-" {
		return nil
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("--out %s: is a directory, want a file name", out)
	}
	dir := filepath.Dir(out)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--out %s: no directory %s", out, dir)
	}
	return nil
}

// getRaw streams a byte-string value into the file out. A failed transfer
// leaves no partial file behind.
func getRaw(cmd *cobra.Command, t target, c cid.Cid, out string, timeout time.Duration) error {
	rc, size, err := t.client().OpenRaw(cmd.Context(), c, timeout)
	if err != nil {
		return t.remoteErr(err)
	}
	defer rc.Close()
	if out == "-" {
		n, err := io.Copy(cmd.OutOrStdout(), rc)
		if err == nil && n != size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", c, err)
		}
		return nil
	}
	// Write next to the target and rename, so the file appears whole.
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".part-")
	if err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	n, err := io.Copy(f, rc)
	if err == nil && n != size {
		err = fmt.Errorf("%w after %d of %d bytes", io.ErrUnexpectedEOF, n, size)
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("get %s --out %s: %w", c, out, err)
	}
	return nil
}

func newPutCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "put FILE|-",
		Short: "Store a file's bytes (or stdin's) as a byte-string value and print its CID",
		Long: `Store the bytes of FILE ("-": standard input) on the node as one byte-string
value and print its CID. The bytes are streamed: a file is never held in
memory. Standard input that is not a file is first copied to a temporary
file, since the node needs the size up front.`,
		Example: `  dray put data.bin
  dray run sha256 "{\"/\":\"$(dray put data.bin)\"}"`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			f, size, cleanup, err := openInput(args[0], cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("put: %w", err)
			}
			defer cleanup()
			c, err := t.client().Put(cmd.Context(), f, size)
			if err != nil {
				return t.remoteErr(err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), c)
			return err
		},
	}
}

// openInput opens the file to put and finds its size. "-" is stdin: read
// in place when it is a regular file, else spooled to a temporary file.
func openInput(name string, stdin io.Reader) (r io.Reader, size int64, cleanup func(), err error) {
	if name == "" {
		return nil, 0, nil, errors.New("empty file name (- reads standard input)")
	}
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, 0, nil, err
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			if err == nil {
				err = fmt.Errorf("%s: not a regular file", name)
			}
			return nil, 0, nil, err
		}
		return f, st.Size(), func() { f.Close() }, nil
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
				return f, st.Size() - pos, func() {}, nil
			}
		}
	}
	tmp, err := os.CreateTemp("", "dray-put-")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("spool standard input: %w", err)
	}
	cleanup = func() { tmp.Close(); os.Remove(tmp.Name()) }
	size, err = io.Copy(tmp, stdin)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return nil, 0, nil, fmt.Errorf("spool standard input: %w", err)
	}
	return tmp, size, cleanup, nil
}

func newIDCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "id",
		Short: `Print the node's peer ID, multiaddrs and API address as JSON`,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			info, err := t.client().ID(cmd.Context())
			if err != nil {
				return t.remoteErr(err)
			}
			return printIndented(cmd.OutOrStdout(), info)
		},
	}
}

func newPeersCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "List the connected peers: one a line, peer ID then its addresses",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			peers, err := t.client().Peers(cmd.Context())
			if err != nil {
				return t.remoteErr(err)
			}
			for _, p := range peers {
				fmt.Fprintln(cmd.OutOrStdout(), strings.Join(append([]string{p.ID}, p.Addrs...), " "))
			}
			return nil
		},
	}
}
