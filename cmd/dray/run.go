package main

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/dray-project/dray/codec"
)

func newRunCmd(opts *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run FUNC [ARG...]",
		Short: "Call a remote function and print its result as JSON",
		Long: `Call a remote function and print its result as JSON on stdout.

Each ARG is JSON: 1, 2.5, "text", [1,2,3], {"k":1}. A ref is written
{"/":"<cid>"} as in DAG-JSON, and bytes as {"/":{"bytes":"<base64>"}} or as
a plain string (its UTF-8 bytes). Arrays are {"dtype":"float64","shape":[2,2],"data":[1,2,3,4]}.
A function with several results prints them as one JSON array.`,
		Example: `  dray run add 1 2
  dray run fib 20
  dray run nd.sum '{"dtype":"int32","shape":[3],"data":[1,2,3]}'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) > 1 && args[1] == "--" {
				args = append(args[:1:1], args[2:]...)
			}
			reg, err := registry()
			if err != nil {
				return err
			}
			fn, err := reg.Lookup(args[0])
			if err != nil {
				return err
			}
			if len(args)-1 != len(fn.Params) {
				return fmt.Errorf("%s takes %d argument(s), got %d (usage: dray run %s)", fn.Name, len(fn.Params), len(args)-1, fn.Signature())
			}
			n, err := startNode(opts, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer n.Close()
			callArgs := make([]any, len(fn.Params))
			for i, p := range fn.Params {
				v, err := argFromJSON(n, []byte(args[i+1]), p)
				if err != nil {
					return fmt.Errorf("%s: argument %d: %w", fn.Name, i+1, err)
				}
				callArgs[i] = v
			}
			refs, err := n.Call(ctx, fn.Name, callArgs...)
			if err != nil {
				return err
			}
			results := make([]any, len(refs))
			for i, r := range refs {
				p := reflect.New(fn.Results[i])
				if err := r.GetInto(ctx, p.Interface()); err != nil {
					return err
				}
				if results[i], err = codec.ToJSONValue(p.Elem().Interface()); err != nil {
					return fmt.Errorf("%s: result %d: %w", fn.Name, i+1, err)
				}
			}
			var out any = results
			if len(results) == 1 {
				out = results[0]
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			return enc.Encode(out)
		},
	}
	// Flags go before FUNC; everything after it is an argument, so
	// negative numbers such as -1 are not read as flags.
	cmd.Flags().SetInterspersed(false)
	return cmd
}
