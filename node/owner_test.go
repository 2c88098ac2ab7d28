package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOwnerDiesTasksStop: an owner hands tasks to a peer and dies. The
// peer stops them at once instead of running them to the end for nobody:
// the running function sees an OwnerDiedError as its context's cause, and
// the queued one never runs.
func TestOwnerDiesTasksStop(t *testing.T) {
	causes := make(chan error, 4)
	started := make(chan struct{}, 4)
	reg := NewRegistry()
	require.NoError(t, reg.Register("hold", func(ctx context.Context, ms int) (string, error) {
		started <- struct{}{}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			causes <- nil
		case <-ctx.Done():
			causes <- context.Cause(ctx)
			return "", ctx.Err()
		}
		return FromContext(ctx).ID(), nil
	}))
	a, ha, b, _ := pair(t, reg, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline := time.Now().Add(20 * time.Second)
	// A's slot is busy; two long tasks go to B, which runs one and queues one.
	_, err := a.CallWith(ctx, CallOptions{On: a.ID()}, "hold", 20000)
	require.NoError(t, err)
	<-started
	for range 2 {
		_, err := a.Call(ctx, "hold", 20000)
		require.NoError(t, err)
	}
	for b.Stats().Net.TasksIn < 2 {
		require.True(t, time.Now().Before(deadline), "B did not get both tasks")
		time.Sleep(10 * time.Millisecond) // poll: hand-offs are asynchronous
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("B never started a task")
	}

	died := time.Now()
	require.NoError(t, a.Close())
	require.NoError(t, ha.Close())
	for {
		st := b.Stats().Sched
		if st.Running == 0 && st.Queued == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "B still runs its dead owner's tasks: %+v", st)
		time.Sleep(10 * time.Millisecond)
	}
	stopped := time.Since(died)
	// A's own task also saw its node close; B's one running task saw the owner die.
	var ownerDied int
	for len(causes) > 0 {
		var od *OwnerDiedError
		if err := <-causes; errors.As(err, &od) {
			ownerDied++
			assert.Equal(t, ha.ID().String(), od.Owner)
		}
	}
	assert.Equal(t, 1, ownerDied, "the running task did not see OwnerDiedError")
	assert.Less(t, stopped, 10*time.Second, "tasks of a dead owner ran to the end (20 s)")
	select {
	case <-started:
		t.Fatal("B started its dead owner's queued task")
	default:
	}
	t.Logf("B stopped its dead owner's tasks %v after the owner closed", stopped.Round(time.Millisecond))
}

// TestStaleOwnerEvent: a disconnect event read late, after the owner is
// back and has handed a new task, must not stop that task: its owner is
// connected and waits for it (before, the task ran, its outcome was
// dropped, and the owner's Get hung).
func TestStaleOwnerEvent(t *testing.T) {
	reg := napRegistry(t)
	a, ha, b, _ := pair(t, reg, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := a.CallWith(ctx, CallOptions{On: b.ID()}, "nap", 300)
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Sched.Running == 0 {
		require.True(t, time.Now().Before(deadline), "B never ran the task")
		time.Sleep(5 * time.Millisecond) // poll: the hand-off is asynchronous
	}
	b.peerGone(ha.ID()) // as peerLoop does with a PeerDisconnected read late
	who, err := As[string](r[0]).Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, b.ID(), who)
}
