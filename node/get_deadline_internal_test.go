package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGetTimeoutIsOneDeadline: a Get WithTimeout whose object goes back to
// pending again and again (its holder lost, rebuilt from lineage, as
// localize reports with errRebuilding) still ends when its one timeout
// passes; it used to start a fresh timeout at every rebuild.
func TestGetTimeoutIsOneDeadline(t *testing.T) {
	reg := NewRegistry()
	release := make(chan struct{})
	_, err := Register0(reg, "block", func(ctx context.Context) (int, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return 1, nil
	})
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Functions = reg
	cfg.Slots = 1
	cfg.Store.Dir = ""
	n, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { close(release); assert.NoError(t, n.Close()) })
	refs, err := n.Call(context.Background(), "block")
	require.NoError(t, err)
	r := refs[0]

	const timeout = 150 * time.Millisecond
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := r.Get(context.Background(), WithTimeout(timeout))
		done <- err
	}()
	// Each time the Get waits on the object, tell it the object is away
	// and being rebuilt: it wakes, finds it pending again and waits anew.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	defer func() { // here for good, so the task's end makes it ready
		n.mu.Lock()
		n.objects[r.CID()].away = false
		n.mu.Unlock()
	}()
	limit := time.After(10 * time.Second)
	for {
		select {
		case err := <-done:
			require.Error(t, err)
			assert.True(t, errors.Is(err, context.DeadlineExceeded), "want a deadline error, got %v", err)
			assert.Less(t, time.Since(start), 5*time.Second)
			return
		case <-limit:
			t.Fatalf("Get with a %v timeout still waiting after 10s: the timeout restarts at each rebuild", timeout)
		case <-tick.C:
			n.mu.Lock()
			if o := n.objects[r.CID()]; len(o.waiters) > 0 {
				o.away = true
				n.wake(o)
			}
			n.mu.Unlock()
		}
	}
}
