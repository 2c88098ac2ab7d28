package main

import (
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
)

func newFreeCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "free CID...",
		Short: "Let the node forget refs it keeps for CIDs it handed out",
		Long: `The node's control API keeps a ref for every CID it hands out (dray submit,
dray put, dray fetch), so the object stays available for later gets and calls.
dray free drops those refs: the objects are freed unless something else still
holds them (a task waiting for one, a value containing it). It prints one line
per CID: "CID freed", or "CID not kept" when the node kept no ref for it.
dray run and dray map keep nothing: they print the values and let go.`,
		Example: `  dray free bafyrei...
  dray submit sleep 100 | xargs dray free`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs := make([]cid.Cid, len(args))
			for i, a := range args {
				c, err := cid.Decode(a)
				if err != nil {
					return fmt.Errorf("bad CID %q: %v", a, err)
				}
				cs[i] = c
			}
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			c := t.client()
			for _, id := range cs {
				kept, err := c.Free(cmd.Context(), id)
				if err != nil {
					return t.remoteErr(err)
				}
				what := "freed"
				if !kept {
					what = "not kept"
				}
				fmt.Fprintln(cmd.OutOrStdout(), id, what)
			}
			return nil
		},
	}
}
