package cli

import (
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"
)

func newFreeCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "free CID...",
		Short: "Release the refs the node keeps for CIDs it handed out",
		Long: `The node's control API keeps a ref for every CID it hands out (dray submit,
dray put, dray fetch), so the object stays available for later gets and calls.
dray free releases that ref at once (however many times the CID was handed
out), and the node forgets the object: dray get CID then fails with "unknown
ref", and its bytes leave the store. The exception is an object something else
still holds — a task waiting for it or taking it as an argument, or a value
that contains it — which stays until that lets go. On a node in a swarm, a get
may still find the CID at another peer that holds a copy.

It prints one line per CID: "CID freed", or "CID not kept" when the node kept
no ref for it (never handed out, or freed already). dray run and dray map keep
nothing: they print the values and release their refs.`,
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
