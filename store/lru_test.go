package store

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLRUList(t *testing.T) {
	type op struct {
		kind string // push, remove, front
		e    int
	}
	tests := []struct {
		name string
		ops  []op
		want []int // head to tail
	}{
		{"empty", nil, nil},
		{"push order", []op{{"push", 1}, {"push", 2}, {"push", 3}}, []int{3, 2, 1}},
		{"remove middle", []op{{"push", 1}, {"push", 2}, {"push", 3}, {"remove", 2}}, []int{3, 1}},
		{"remove head", []op{{"push", 1}, {"push", 2}, {"remove", 2}}, []int{1}},
		{"remove tail", []op{{"push", 1}, {"push", 2}, {"remove", 1}}, []int{2}},
		{"remove only", []op{{"push", 1}, {"remove", 1}}, nil},
		{"front tail", []op{{"push", 1}, {"push", 2}, {"push", 3}, {"front", 1}}, []int{1, 3, 2}},
		{"front head", []op{{"push", 1}, {"push", 2}, {"front", 2}}, []int{2, 1}},
		{"front middle", []op{{"push", 1}, {"push", 2}, {"push", 3}, {"front", 2}}, []int{2, 3, 1}},
		{"readd", []op{{"push", 1}, {"push", 2}, {"remove", 1}, {"push", 1}}, []int{1, 2}},
	}
	for _, id := range []listID{memUnpinnedList, diskUnpinnedList} {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var l lruList
				l.init(id)
				entries := map[int]*entry{}
				get := func(i int) *entry {
					if entries[i] == nil {
						entries[i] = newEntry(sum([]byte{byte(i)}), int64(i*10))
					}
					return entries[i]
				}
				for _, o := range tt.ops {
					switch o.kind {
					case "push":
						l.pushFront(get(o.e))
					case "remove":
						l.remove(get(o.e))
					case "front":
						l.moveToFront(get(o.e))
					}
					checkList(t, &l)
				}
				var got []int
				var bytes int64
				for e := l.head; e != nil; e = l.links(e).next {
					for i, x := range entries {
						if x == e {
							got = append(got, i)
							bytes += int64(i * 10)
						}
					}
				}
				require.Equal(t, tt.want, got)
				require.Equal(t, bytes, l.bytes)
				if len(tt.want) > 0 {
					require.Same(t, entries[tt.want[len(tt.want)-1]], l.back())
				} else {
					require.Nil(t, l.back())
				}
			})
		}
	}
}
