package sched

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShards(t *testing.T) {
	tests := []struct{ n, want int }{
		{0, 1}, {1, 1}, {50, 1}, {64, 1}, {65, 2}, {128, 2}, {129, 4},
		{1000, 16}, {1024, 16}, {1025, 32}, {10000, 256},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Shards(tt.n), "Shards(%d)", tt.n)
	}
}

func TestShardOf(t *testing.T) {
	for _, shards := range []int{0, 1, 2, 4, 16, 256} {
		t.Run(fmt.Sprint(shards), func(t *testing.T) {
			count := make([]int, max(shards, 1))
			for i := range 20000 {
				p := PeerID(fmt.Sprintf("peer-%d", i))
				home, extra := ShardOf(p, shards)
				h2, e2 := ShardOf(p, shards)
				require.Equal(t, [2]int{home, extra}, [2]int{h2, e2}, "deterministic")
				if shards < 2 {
					require.Equal(t, [2]int{0, 0}, [2]int{home, extra})
					continue
				}
				require.True(t, home >= 0 && home < shards && extra >= 0 && extra < shards)
				require.NotEqual(t, home, extra)
				count[home]++
				// Doubling the shards splits the home shard in two.
				h, _ := ShardOf(p, shards*2)
				require.Equal(t, home, h%shards)
			}
			if shards >= 2 {
				mean := 20000 / shards
				for s, c := range count {
					assert.InDelta(t, mean, c, 5*math.Sqrt(float64(mean)), "shard %d of %d (5 sigma)", s, shards)
				}
			}
		})
	}
}

func TestProbeBatchFor(t *testing.T) {
	tests := []struct{ shards, base, want int }{
		{1, 32, 32}, {16, 32, 32}, {32, 32, 64}, {256, 32, 512}, {256, 0, 0}, {4, 100, 100},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ProbeBatchFor(tt.shards, tt.base), "ProbeBatchFor(%d, %d)", tt.shards, tt.base)
	}
}
