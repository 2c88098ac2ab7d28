package sim

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// crashy is a swarm whose executors keep crashing under long tasks: one
// submitter (which survives) hands 2 s tasks to 40 peers, and a fifth of
// the live peers crash every second, noticed after 500 ms.
func crashy(kind string, retries int) Scenario {
	sc := DefaultScenario()
	sc.Peers = 40
	sc.Slots = 2
	sc.MaxRetries = retries
	sc.DetectionDelay = Duration(500 * time.Millisecond)
	sc.Workload.Kind = kind
	sc.Workload.Tasks = 160
	sc.Workload.FibN = 6
	sc.Workload.Jobs = 4
	sc.Workload.Duration = Dist{Kind: "constant", Mean: Duration(2 * time.Second)}
	for k := range 5 {
		sc.Churn.Events = append(sc.Churn.Events, ChurnEvent{At: Duration(time.Duration(k)*time.Second + 300*time.Millisecond), Action: "crash", Fraction: 0.2})
	}
	return sc
}

// TestMaxRetries: a task whose executor is lost more than max_retries
// times fails, and is reported as such (never lost, never silent); with
// no limit, every task runs in the end. Fewer retries, more failures.
func TestMaxRetries(t *testing.T) {
	failed := map[int]uint64{}
	for _, retries := range []int{0, 1, 3, -1} {
		r := run(t, crashy("bag", retries))
		t.Logf("max_retries %d: %d finished, %d failed (executor lost), %d re-run, %.3fx", retries, r.TasksRun, r.FailedLost, r.Reruns, r.Ratio)
		require.Zero(t, r.Lost, "max_retries %d", retries)
		require.False(t, r.Stalled)
		require.Zero(t, r.FailedOwner, "the submitter survives")
		require.Equal(t, r.Tasks, r.TasksRun+int(r.FailedLost+r.FailedDep), "every task finished or failed")
		require.Equal(t, retries, r.MaxRetries)
		failed[retries] = r.FailedLost
		var b bytes.Buffer
		require.NoError(t, r.WriteSummary(&b))
		require.Contains(t, b.String(), "(executor lost, max retries ")
	}
	assert.Positive(t, failed[0], "crashes every second lose executors")
	assert.Zero(t, failed[-1], "no limit: every task runs in the end")
	assert.GreaterOrEqual(t, failed[0], failed[1])
	assert.GreaterOrEqual(t, failed[1], failed[3])
}

// TestMaxRetriesNested: a nested fib call that fails fails the parent
// blocked on it, up to the top-level call; nothing hangs.
func TestMaxRetriesNested(t *testing.T) {
	sc := crashy("fib", 0)
	sc.Workload.Duration = Dist{Kind: "constant", Mean: Duration(400 * time.Millisecond)}
	r := run(t, sc)
	t.Logf("fib: %d top-level calls, %d calls finished in all, %d failed (executor lost), %d failed with a nested call, %d abandoned",
		r.Tasks, r.TasksRun, r.FailedLost, r.FailedDep, r.Abandoned)
	require.Zero(t, r.Lost)
	require.False(t, r.Stalled)
	require.Positive(t, r.FailedLost)
	require.Positive(t, r.FailedDep, "parents of failed nested calls fail")
	sc.MaxRetries = -1
	r = run(t, sc)
	require.Zero(t, r.Lost)
	require.Zero(t, r.FailedLost+r.FailedDep)
}
