package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/dray-project/dray/p2p"
)

// newSwarmKeyCmd is `dray swarm-key [FILE]`: a new private-network key.
func newSwarmKeyCmd(_ *options) *cobra.Command {
	return &cobra.Command{
		Use:   "swarm-key [FILE]",
		Short: "Make a new private swarm key (for dray node --swarm-key)",
		Long: `dray swarm-key makes a new random 256-bit private network key in the
swarm.key format that dray node --swarm-key reads ("/key/swarm/psk/1.0.0/"),
and writes it to FILE (created with mode 0600; an existing file is never
overwritten), or prints it when no FILE is given. Copy the file to every
machine of the swarm and start each node with --swarm-key FILE: nodes
without that key cannot connect to them. A private swarm runs over TCP
only (libp2p's private networks do not cover QUIC).`,
		Example: `  dray swarm-key ~/.dray/swarm.key
  dray node --swarm-key ~/.dray/swarm.key`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return p2p.GenerateSwarmKey(cmd.OutOrStdout())
			}
			f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("swarm-key: %s exists: pick another file, or remove it first (nodes using it would no longer connect)", args[0])
			}
			if err != nil {
				return fmt.Errorf("swarm-key: %w", err)
			}
			if err := p2p.GenerateSwarmKey(f); err != nil {
				_ = f.Close()
				_ = os.Remove(args[0])
				return fmt.Errorf("swarm-key: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("swarm-key: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: start every node of the swarm with --swarm-key %s\n", args[0], args[0])
			return nil
		},
	}
}
