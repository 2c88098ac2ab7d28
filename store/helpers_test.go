package store

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var ctx = context.Background()

// testConfig returns a quiet config with the given budgets; dir may be "".
func testConfig(dir string, memBudget, diskBudget int64) Config {
	return Config{Dir: dir, MemoryBudget: memBudget, DiskBudget: diskBudget, Logger: slog.New(slog.DiscardHandler)}
}

// openStore opens a Store that is closed when the test ends.
func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// obj returns size deterministic bytes that differ for each seed.
func obj(seed uint64, size int) []byte {
	b := make([]byte, size)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := 0; i < size; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], x)
		copy(b[i:], w[:])
	}
	return b
}

// tempFiles lists the temp files in a store's data directory.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "objects"))
	require.NoError(t, err)
	var out []string
	for _, de := range des {
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			out = append(out, de.Name())
		}
	}
	return out
}

// spillFiles lists the spill files in a store's data directory.
func spillFiles(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "objects"))
	require.NoError(t, err)
	var out []string
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			out = append(out, de.Name())
		}
	}
	return out
}

// checkInvariants verifies the store's internal accounting.
func checkInvariants(t testing.TB, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var memData, slack, diskData, unpinnedMem, pinnedMem, unpinnedDisk int64
	var memObjects, diskObjects, pinned int
	for c, e := range s.objects {
		require.Equal(t, c, e.c)
		require.True(t, e.inMem || e.onDisk, "entry %s holds its bytes nowhere", c)
		require.False(t, e.deleted)
		if e.inMem {
			memData += e.size
			memObjects++
			require.Equal(t, e.size, memLen(e.data, e.segs()))
			require.True(t, e.data == nil || e.segs() == nil, "both data and segs set")
			require.NotEqual(t, 1, len(e.segs()), "one segment is kept as data")
			if e.slack() > 0 { // only streams keep (accounted) unused room
				var allocated int64
				for _, b := range e.bufs() {
					allocated += int64(cap(b))
				}
				require.Equal(t, allocated-e.size, e.slack(), "slack of %s", c)
			}
			slack += e.slack()
			if !e.spilling {
				if e.pins > 0 {
					require.Equal(t, memPinnedList, e.memIn)
					pinnedMem += e.size
				} else {
					require.Equal(t, memUnpinnedList, e.memIn)
					unpinnedMem += e.size
				}
			}
		} else {
			require.Equal(t, noList, e.memIn)
			require.Nil(t, e.ext)
		}
		if e.onDisk {
			diskData += e.size
			diskObjects++
			info, err := os.Stat(s.path(c))
			require.NoError(t, err)
			require.Equal(t, e.size, info.Size())
			if e.pins == 0 {
				require.Equal(t, diskUnpinnedList, e.diskIn)
				unpinnedDisk += e.size
			}
		} else {
			require.Equal(t, noList, e.diskIn)
		}
		if e.pins > 0 {
			pinned++
		}
	}
	for _, l := range []*lruList{&s.memPinned, &s.memUnpinned, &s.diskUnpin} {
		checkList(t, l)
	}
	require.Equal(t, memData, s.memData, "memData")
	require.Equal(t, diskData, s.diskData, "diskData")
	require.Equal(t, memObjects, s.memObjects)
	require.Equal(t, diskObjects, s.diskObjects)
	require.Equal(t, pinned, s.pinned)
	require.Equal(t, unpinnedMem, s.memUnpinned.bytes)
	require.Equal(t, pinnedMem, s.memPinned.bytes)
	require.Equal(t, unpinnedDisk, s.diskUnpin.bytes)
	require.LessOrEqual(t, s.memUsed, s.memBudget)
	require.GreaterOrEqual(t, s.memUsed, s.memData+slack)
	if s.spillsInFlight == 0 {
		require.Equal(t, s.memData+slack, s.memUsed, "memory reserved with nothing in flight")
		require.Equal(t, s.diskData, s.diskUsed, "disk reserved with nothing in flight")
	}
	if s.diskBudget > 0 {
		require.LessOrEqual(t, s.diskUsed, s.diskBudget)
	}
}

// checkList verifies l's links, length and byte count.
func checkList(t testing.TB, l *lruList) {
	t.Helper()
	var n int
	var bytes int64
	var prev *entry
	for e := l.head; e != nil; e = l.links(e).next {
		require.Same(t, prev, l.links(e).prev)
		if l.id == diskUnpinnedList {
			require.Equal(t, l.id, e.diskIn)
		} else {
			require.Equal(t, l.id, e.memIn)
		}
		n++
		bytes += e.size
		prev = e
		require.LessOrEqual(t, n, l.len, "list longer than its length")
	}
	require.Same(t, prev, l.tail)
	require.Equal(t, l.len, n)
	require.Equal(t, l.bytes, bytes)
}
