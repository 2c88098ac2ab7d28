package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// napRegistry has one function: nap sleeps ms milliseconds and returns the
// ID of the node that ran it.
func napRegistry(t *testing.T) *Registry {
	t.Helper()
	reg := NewRegistry()
	require.NoError(t, reg.Register("nap", func(ctx context.Context, ms int) (string, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return FromContext(ctx).ID(), nil
	}))
	return reg
}

// TestLateCompletionAfterSessionLoss kills the session a task was handed
// over on while the executor runs it. The owner takes the task back and
// places it again; the executor's completion, which comes later on a new
// session, is stale and must be ignored — before, it finished a task the
// scheduler had queued again, and the scheduler's later Run of it named a
// task the node had forgotten, leaking a slot.
func TestLateCompletionAfterSessionLoss(t *testing.T) {
	reg := napRegistry(t)
	a, _, b, hb := pair(t, reg, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitHeard(t, b, 1)
	deadline := time.Now().Add(20 * time.Second)

	// A's one slot is busy, so the task goes to B.
	busy, err := a.CallWith(ctx, CallOptions{On: a.ID()}, "nap", 600)
	require.NoError(t, err)
	r, err := a.Call(ctx, "nap", 300)
	require.NoError(t, err)
	var ss *session
	for ss == nil {
		require.True(t, time.Now().Before(deadline), "the task never went to B")
		a.smu.Lock()
		ss = a.sessions[hb.ID()]
		a.smu.Unlock()
		time.Sleep(5 * time.Millisecond) // poll: the hand-off is asynchronous
	}
	for b.Stats().Net.TasksIn == 0 {
		require.True(t, time.Now().Before(deadline), "B never got the task")
		time.Sleep(5 * time.Millisecond)
	}
	// B looks full (one running, one queued), so A does not hand the task
	// back to B at once; B's completion then finds it queued at A.
	bq, err := b.CallWith(ctx, CallOptions{On: b.ID()}, "nap", 600)
	require.NoError(t, err)
	ss.close(errors.New("test: session lost"))
	defer func() { _, _ = As[string](bq[0]).Get(ctx) }()

	who, err := As[string](r[0]).Get(ctx)
	require.NoError(t, err)
	assert.Contains(t, []string{a.ID(), b.ID()}, who)
	_, err = As[string](busy[0]).Get(ctx)
	require.NoError(t, err)
	// The scheduler and the node agree that nothing is left: no slot
	// held, nothing queued or handed over.
	for {
		st := a.Stats()
		q := st.Sched
		if q.Running == 0 && q.Queued == 0 && q.Forwarded == 0 && q.Waiting == 0 && st.Tasks == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "A's scheduler still has work after all finished: %+v (node tasks %d)", q, st.Tasks)
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandOffLimits: a peer refuses hand-offs beyond its per-peer rate or
// beyond its queue bound; the owner takes each refused task back and runs
// it elsewhere, so every result still arrives.
func TestHandOffLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit func(*Config)
		fill  bool // keep B's slot busy and one of its own tasks queued
	}{
		{"rate", func(c *Config) { c.PeerTaskRate = 1 }, false},
		{"queue", func(c *Config) { c.MaxQueue = 1 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := napRegistry(t)
			a, _, b, _ := pair(t, reg, nil, tc.limit)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.fill {
				own, err := b.CallWith(ctx, CallOptions{On: b.ID()}, "nap", 1500)
				require.NoError(t, err)
				queued, err := b.CallWith(ctx, CallOptions{On: b.ID()}, "nap", 10)
				require.NoError(t, err)
				defer func() { _, _ = As[string](own[0]).Get(ctx); _, _ = As[string](queued[0]).Get(ctx) }()
			}
			busy, err := a.CallWith(ctx, CallOptions{On: a.ID()}, "nap", 300)
			require.NoError(t, err)
			refs := naps(t, ctx, a, 4, 50)
			for _, r := range refs {
				who, err := As[string](r).Get(ctx)
				require.NoError(t, err)
				assert.Contains(t, []string{a.ID(), b.ID()}, who)
			}
			_, err = As[string](busy[0]).Get(ctx)
			require.NoError(t, err)
			assert.Positive(t, b.Stats().Net.Refused, "B refused nothing")
		})
	}
}

// TestLimitersForgotten: the per-peer hand-off limits are dropped when
// the peer disconnects, so the table does not grow with every peer ever
// met (issue 11 §4).
func TestLimitersForgotten(t *testing.T) {
	a, _, b, hb := pair(t, napRegistry(t), nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := b.CallWith(ctx, CallOptions{On: a.ID()}, "nap", 1)
	require.NoError(t, err)
	_, err = r[0].Get(ctx)
	require.NoError(t, err)
	a.lmu.Lock()
	_, had := a.limits[hb.ID()]
	a.lmu.Unlock()
	require.True(t, had, "a kept no limiter for the peer that handed it a task")
	require.NoError(t, b.Close())
	require.NoError(t, hb.Close())
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.lmu.Lock()
		_, has := a.limits[hb.ID()]
		a.lmu.Unlock()
		if !has {
			break
		}
		require.True(t, time.Now().Before(deadline), "the limiter of a peer gone is still kept")
		time.Sleep(10 * time.Millisecond) // poll: the disconnect event is asynchronous
	}
}
