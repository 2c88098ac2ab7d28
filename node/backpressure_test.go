package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBackpressure: with MaxPending tasks unfinished, a further Call waits
// for room rather than growing the queue: it fails with a clear error when
// its context ends first, and goes through as soon as a task finishes.
// Calls from running tasks never wait (they would deadlock the pool).
func TestBackpressure(t *testing.T) {
	release := make(chan struct{})
	reg := NewRegistry()
	require.NoError(t, reg.Register("block", func(ctx context.Context, _ int) (int, error) {
		select {
		case <-release:
			return 1, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}))
	require.NoError(t, reg.Register("nest", func(ctx context.Context, k int) (int, error) {
		// Submits k children while the node is full: they must not wait.
		n := FromContext(ctx)
		for range k {
			if _, err := n.Call(ctx, "block", 0); err != nil {
				return 0, err
			}
		}
		return k, nil
	}))
	n, err := New(Config{Slots: 2, Functions: reg, MaxPending: 3, Store: DefaultConfig().Store})
	require.NoError(t, err)
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var refs []ObjectRef
	r, err := n.Call(ctx, "nest", 4)
	require.NoError(t, err)
	refs = append(refs, r...)
	got, err := As[int](r[0]).Get(ctx)
	require.NoError(t, err, "nested calls waited for room")
	assert.Equal(t, 4, got)
	assert.Equal(t, 4, n.Stats().Tasks, "the four children are pending")

	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	_, err = n.Call(short, "block", 0)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded))
	assert.Contains(t, err.Error(), "MaxPending")
	assert.Equal(t, 4, n.Stats().Tasks, "a refused call left a task behind")

	// A call that waits goes through once the children finish.
	done := make(chan error, 1)
	go func() {
		r, err := n.Call(ctx, "block", 0)
		if err == nil {
			refs = append(refs, r...)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("call went through with the node full: %v", err)
	case <-time.After(50 * time.Millisecond): // it must still be waiting
	}
	close(release)
	require.NoError(t, <-done)
}
