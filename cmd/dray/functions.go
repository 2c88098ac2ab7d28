package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newFunctionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "functions",
		Short: "List the remote functions with their parameter and result types",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := registry()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, f := range reg.Functions() {
				det := ""
				if f.Deterministic {
					det = "deterministic"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", f.Signature(), det, f.Doc)
			}
			return w.Flush()
		},
	}
}
