package sim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/dray-project/dray/sim"
)

// Example simulates a small bag of tasks on a LAN and prints a few of the
// figures the summary table shows.
func Example() {
	sc := sim.DefaultScenario()
	sc.Peers = 10
	sc.Workload.Tasks = 2000
	sc.Workload.Duration = sim.Dist{Kind: "constant", Mean: sim.Duration(10 * time.Millisecond)}
	s, err := sim.New(sc, sim.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := s.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("tasks finished:", res.TasksRun, "lost:", res.Lost)
	fmt.Println("within 25% of ideal:", res.Ratio < 1.25)
	// Output:
	// tasks finished: 2000 lost: 0
	// within 25% of ideal: true
}
