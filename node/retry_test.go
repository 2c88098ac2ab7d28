package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRetryErrors: a function that fails its first two runs. Its failures
// are final unless the call or the function asks for retries; then it runs
// up to MaxRetries more times, here and on another peer, and a failure
// past them is the function's last error.
func TestRetryErrors(t *testing.T) {
	var runs atomic.Int64
	flaky := func(_ context.Context, key string) (string, error) {
		if n := runs.Add(1); n <= 2 {
			return "", fmt.Errorf("%s: attempt %d failed", key, n)
		}
		return key + " ok", nil
	}
	reg := NewRegistry()
	require.NoError(t, reg.Register("flaky", flaky))
	require.NoError(t, reg.Register("flaky.retry", flaky, RetryErrors(), MaxRetries(2)))
	require.NoError(t, reg.Register("boom", func(context.Context, int) (int, error) { panic("boom") }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a, _, b, _ := pair(t, reg, nil, nil)

	for _, tc := range []struct {
		name     string
		fn       string
		opts     CallOptions
		wantRuns int64
		wantErr  string
	}{
		{"not asked", "flaky", CallOptions{}, 1, "attempt 1 failed"},
		{"call asks", "flaky", CallOptions{RetryErrors: true, MaxRetries: 3}, 3, ""},
		{"too few retries", "flaky", CallOptions{RetryErrors: true, MaxRetries: 1}, 2, "attempt 2 failed"},
		{"function asks", "flaky.retry", CallOptions{}, 3, ""},
		{"remote, call asks", "flaky", CallOptions{On: b.ID(), RetryErrors: true, MaxRetries: 3}, 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs.Store(0)
			r, err := a.CallWith(ctx, tc.opts, tc.fn, tc.name)
			require.NoError(t, err)
			got, err := As[string](r[0]).Get(ctx)
			assert.Equal(t, tc.wantRuns, runs.Load(), "runs")
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				var te *TaskError
				require.True(t, errors.As(err, &te))
				assert.True(t, te.FromFunc)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.name+" ok", got)
		})
	}

	t.Run("arguments it cannot decode are not the function's failure", func(t *testing.T) {
		runs.Store(0)
		s, err := a.Put(ctx, 42) // flaky takes a string
		require.NoError(t, err)
		r, err := a.CallWith(ctx, CallOptions{RetryErrors: true, MaxRetries: 3}, "flaky", s)
		require.NoError(t, err)
		_, err = As[string](r[0]).Get(ctx)
		var te *TaskError
		require.True(t, errors.As(err, &te))
		assert.False(t, te.FromFunc)
		var ae *ArgumentError
		assert.True(t, errors.As(err, &ae))
		assert.Zero(t, runs.Load(), "the function ran")
	})

	t.Run("panics retried, and reported as the function's", func(t *testing.T) {
		r, err := a.CallWith(ctx, CallOptions{RetryErrors: true, MaxRetries: 2}, "boom", 1)
		require.NoError(t, err)
		_, err = As[int](r[0]).Get(ctx)
		var te *TaskError
		require.True(t, errors.As(err, &te))
		assert.True(t, te.FromFunc)
		var pe *PanicError
		assert.True(t, errors.As(err, &pe))
	})
}
