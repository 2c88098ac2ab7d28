package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node"
	"github.com/dray-project/dray/node/api"
)

const argsHelp = `Each ARG is JSON: 1, 2.5, "text", [1,2,3], {"k":1}. A ref is written
{"/":"<cid>"} as in DAG-JSON, and bytes as {"/":{"bytes":"<base64>"}} or as
a plain string (its UTF-8 bytes). Arrays are {"dtype":"float64","shape":[2,2],"data":[1,2,3,4]}.`

func newRunCmd(opts *options) *cobra.Command {
	var (
		timeout time.Duration
		on      string
		retry   retryFlags
	)
	cmd := &cobra.Command{
		Use:   "run FUNC [ARG...]",
		Short: "Call a remote function and print its result as JSON",
		Long: `Call a remote function and print its result as JSON on stdout.

` + argsHelp + `
A function with several results prints them as one JSON array.

The call goes to the node at --api (or $DRAY_API). With neither set and no
node at 127.0.0.1:5050, an in-process peer runs it.`,
		Example: `  dray run add 1 2
  dray run fib 20
  dray run nd.sum '{"dtype":"int32","shape":[3],"data":[1,2,3]}'`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = dropDashDash(args)
			if err := firstErr(checkTimeout(timeout), checkPeer(on, opts.name)); err != nil {
				return err
			}
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			raw, err := checkArgs(args[0], args[1:])
			if err != nil {
				return err
			}
			out := newResults(cmd, runHint(opts.name))
			err = t.client().CallStream(cmd.Context(), api.CallRequest{
				Func: args[0], Args: raw, Wait: true, Free: true, Timeout: api.Duration(timeout), On: on,
				MaxRetries: retry.max, RetryErrors: retry.errors, Needs: retry.needs,
			}, out.value)
			if errors.Is(err, api.ErrNoNode) && !t.explicit {
				if on != "" {
					return fmt.Errorf("--on %s needs a running node (start one with `%s node`)", on, opts.name)
				}
				return timedOut(runLocal(cmd, opts, args, timeout, retry.options()), timeout)
			}
			if err != nil {
				return timedOut(t.remoteErr(err), timeout)
			}
			return out.upTo(1) // a function without results: []
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting for the result after this long (0: no limit)")
	cmd.Flags().StringVar(&on, "on", "", "run on the peer with this ID")
	retry.add(cmd)
	// Flags go before FUNC; everything after it is an argument, so
	// negative numbers such as -1 are not read as flags.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// runLocal runs the call on an in-process peer.
func runLocal(cmd *cobra.Command, opts *options, args []string, timeout time.Duration, co node.CallOptions) error {
	ctx := cmd.Context()
	reg, err := opts.funcs.registry()
	if err != nil {
		return err
	}
	fn, err := reg.Lookup(args[0])
	if err != nil {
		return err
	}
	if len(args)-1 != len(fn.Params) {
		return fmt.Errorf("%s takes %d argument(s), got %d (usage: %s run %s)", fn.Name, len(fn.Params), len(args)-1, opts.name, fn.Signature())
	}
	n, err := startNode(opts, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer n.Close()
	raw := make([]json.RawMessage, len(args)-1)
	for i, a := range args[1:] {
		raw[i] = json.RawMessage(a)
	}
	fn, refs, err := api.Call(ctx, n.Node, fn.Name, raw, co)
	if err != nil {
		return err
	}
	var getOpts []node.GetOption
	if timeout > 0 {
		getOpts = append(getOpts, node.WithTimeout(timeout))
	}
	results, err := api.Results(ctx, fn, refs, getOpts...)
	for _, r := range refs {
		r.Release()
	}
	if err != nil {
		return err
	}
	var out any = results
	if len(results) == 1 {
		out = results[0]
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// retryFlags are the retry flags of run, map and submit.
type retryFlags struct {
	max    int
	errors bool
	needs  map[string]int
}

func (r *retryFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&r.max, "max-retries", 0, "times a task is run again when its peer is lost (or, with --retry-errors, it fails): 0 the function's or node's default (3), -1 none")
	cmd.Flags().BoolVar(&r.errors, "retry-errors", false, "also run the task again when the function itself fails (returns an error or panics)")
	cmd.Flags().StringToIntVar(&r.needs, "need", nil, "resources each call needs where it runs, beside its function's (gpu=1): only peers started with them (dray node --resources) run it")
}

func (r retryFlags) options() node.CallOptions {
	return node.CallOptions{MaxRetries: r.max, RetryErrors: r.errors, Needs: r.needs}
}
