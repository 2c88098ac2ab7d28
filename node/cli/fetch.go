package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/dray-project/dray/node/api"
)

func newFetchCmd(opts *options) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "fetch CID",
		Short: "Have the node get an object into its store from the swarm, verified, and time it",
		Long: `Have the node get the object with this CID into its own store: one it already
has (or is computing), else one it finds in the swarm through the DHT, fetches
from a peer that holds it and verifies against the CID as the bytes arrive.
The node keeps it while it runs, so later gets and calls that use it are
local.

It prints one line:
  CID SIZE SECONDS GB/s
SIZE is the value's encoded size in bytes, SECONDS the time the node took
(lookup, transfer, verification) and GB/s is SIZE/SECONDS in 10^9 bytes per
second; GB/s is "-" when the node already had the value and fetched nothing.`,
		Example: `  dray fetch bafkrei...
  dray --api 127.0.0.1:5051 fetch "$(dray put data.bin)"`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cid.Decode(args[0])
			if err != nil {
				return fmt.Errorf("bad CID %q: %v", args[0], err)
			}
			if err := checkTimeout(timeout); err != nil {
				return err
			}
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			res, err := t.client().Fetch(cmd.Context(), c, timeout)
			if err != nil {
				return timedOut(t.remoteErr(err), timeout)
			}
			return printFetch(cmd.OutOrStdout(), res)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: no limit)")
	return cmd
}

// printFetch prints a fetch as `CID SIZE SECONDS GB/s`.
func printFetch(w io.Writer, res api.FetchResult) error {
	rate := "-"
	if !res.Local && res.Seconds > 0 {
		rate = strconv.FormatFloat(float64(res.Size)/res.Seconds/1e9, 'f', 3, 64)
	}
	_, err := fmt.Fprintf(w, "%s %d %.6f %s\n", res.CID, res.Size, res.Seconds, rate)
	return err
}

func newStatsCmd(opts *options) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Print the node's figures as JSON: objects, tasks, scheduler, store, swarm traffic",
		Long: `Print a snapshot of the node's figures as JSON:
  objects, tasks   refs the node tracks, tasks not finished
  refs             refs the API keeps for the CIDs it handed out
  sched            worker slots, running/queued/waiting/forwarded tasks, peers
                   whose load beacons are live, tasks finished
  store            objects and bytes in memory and on disk, pins, evictions,
                   spills, budgets
  net              swarm messages and payload bytes sent and received, tasks
                   handed out and taken in, objects fetched`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := apiTarget(cmd, opts)
			if err != nil {
				return err
			}
			st, err := t.client().Stats(cmd.Context())
			if err != nil {
				return t.remoteErr(err)
			}
			return printIndented(cmd.OutOrStdout(), st)
		},
	}
}
