package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node/api"
)

func newFunctionsCmd(opts *options) *cobra.Command {
	var swarm bool
	cmd := &cobra.Command{
		Use:   "functions",
		Short: "List the remote functions with their parameter and result types",
		Long: `List the remote functions of the node at --api (or $DRAY_API); with
neither set and no node at 127.0.0.1:5050, the functions built into this binary.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			if swarm {
				fns, err := t.client().SwarmFunctions(cmd.Context())
				if err != nil {
					return t.remoteErr(err)
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				for _, f := range fns {
					fmt.Fprintf(w, "%s\t%d peer(s)\t%s\n", f.Signature, len(f.Peers), strings.Join(f.Peers, " "))
				}
				return w.Flush()
			}
			fns, err := t.client().Functions(cmd.Context())
			if errors.Is(err, api.ErrNoNode) && !t.explicit {
				fns, err = localFunctions(opts.funcs)
			}
			if err != nil {
				return t.remoteErr(err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, f := range fns {
				det := ""
				if f.Deterministic {
					det = "deterministic"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", f.Signature, det, f.Doc)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&swarm, "swarm", false, "list every function the swarm offers, with the peers that offer it (needs a running node)")
	return cmd
}

// localFunctions lists the functions built into this binary.
func localFunctions(funcs *functions) ([]api.FunctionInfo, error) {
	reg, err := funcs.registry()
	if err != nil {
		return nil, err
	}
	var out []api.FunctionInfo
	for _, f := range reg.Functions() {
		out = append(out, api.FunctionInfo{Name: f.Name, Signature: f.Signature(), Deterministic: f.Deterministic, Doc: f.Doc})
	}
	return out, nil
}
