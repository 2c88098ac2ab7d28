package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzScenario feeds arbitrary bytes to the scenario decoder, as YAML and
// as JSON: it must never panic, and what it refuses must be an error
// wrapping ErrScenario. What it accepts must validate, and a small
// scenario must also run (bounded in virtual and wall time) without the
// schedulers refusing an event. Seeds: testdata/fuzz/FuzzScenario (the
// shipped scenarios and edge cases) and the scenario files themselves.
//
//	go test -run '^$' -fuzz FuzzScenario -fuzztime 60s ./sim
func FuzzScenario(f *testing.F) {
	files, err := filepath.Glob("scenarios/*.yaml")
	require.NoError(f, err)
	more, err := filepath.Glob("testdata/*.yaml")
	require.NoError(f, err)
	for _, file := range append(files, more...) {
		data, err := os.ReadFile(file)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, format := range []string{"yaml", "json"} {
			sc, err := ParseScenario(data, format)
			if err != nil {
				require.ErrorIs(t, err, ErrScenario, "%s", format)
				continue
			}
			require.NoError(t, sc.Validate(), "%s: accepted, so valid", format)
			smokeRun(t, sc)
		}
	})
}

// smokeRun runs sc when it is small enough for a fuzzing iteration: a
// handful of peers and tasks, no more than a few hundred churn steps, at
// most 10 minutes of virtual time and 2 s of wall time.
func smokeRun(t *testing.T, sc Scenario) {
	w := sc.Workload
	c := sc.Churn
	small := sc.Peers <= 16 && (w.Kind == "fib" && w.FibN <= 8 && w.Jobs <= 4 ||
		w.Kind != "fib" && w.Tasks <= 200 && w.Length <= 200 && w.Leaves <= 64 && w.Maps+w.Reduces <= 64) &&
		c.JoinRate+c.LeaveRate+c.CrashRate <= 100 && len(c.Events) <= 16
	if !small {
		return
	}
	if sc.MaxTime == 0 || sc.MaxTime > Duration(10*time.Minute) {
		sc.MaxTime = Duration(10 * time.Minute)
	}
	s, err := New(sc, Options{})
	if err != nil {
		require.ErrorIs(t, err, ErrScenario)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := s.Run(ctx)
	if err != nil {
		require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		return
	}
	require.Zero(t, r.SchedErrors, "scheduler refused events: %s", r.FirstSchedError)
	require.LessOrEqual(t, r.Lost, r.Tasks)
}
