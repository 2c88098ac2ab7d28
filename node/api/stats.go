package api

import (
	"net/http"

	"github.com/dray-project/dray/node"
)

// Stats is the answer of GET /v1/stats: a snapshot of the node's tables
// (node.Stats) in JSON form, plus the refs the API server keeps.
type Stats struct {
	Objects int        `json:"objects"` // refs the node tracks
	Tasks   int        `json:"tasks"`   // tasks submitted and not finished
	Lent    int        `json:"lent"`    // results kept for the peers that own them
	Refs    int        `json:"refs"`    // refs this API server keeps for CIDs it handed out
	Sched   SchedStats `json:"sched"`
	Store   StoreStats `json:"store"`
	Net     NetStats   `json:"net"`
}

// SchedStats are the scheduler's queues (sched.Stats).
type SchedStats struct {
	Slots     int    `json:"slots"`     // configured worker slots
	Running   int    `json:"running"`   // tasks holding a slot
	Blocked   int    `json:"blocked"`   // running tasks that gave their slot back
	Queued    int    `json:"queued"`    // ready tasks waiting for a slot
	Waiting   int    `json:"waiting"`   // tasks waiting for dependencies
	Forwarded int    `json:"forwarded"` // tasks handed to other peers, not yet done
	Peers     int    `json:"peers"`     // peers whose load beacons are live
	Finished  uint64 `json:"finished"`  // tasks finished since start
}

// StoreStats describe the object store (store.Stats).
type StoreStats struct {
	Objects      int    `json:"objects"`       // distinct objects held
	MemObjects   int    `json:"mem_objects"`   // objects with their bytes in memory
	MemBytes     int64  `json:"mem_bytes"`     // bytes of object data in memory
	DiskObjects  int    `json:"disk_objects"`  // objects with a spill file
	DiskBytes    int64  `json:"disk_bytes"`    // bytes of spill files
	Pinned       int    `json:"pinned"`        // objects with a pin count above zero
	Evicted      uint64 `json:"evicted"`       // in-memory copies dropped to make room
	Spilled      uint64 `json:"spilled"`       // objects written to spill files
	Restored     uint64 `json:"restored"`      // spilled objects read back into memory
	DiskEvicted  uint64 `json:"disk_evicted"`  // spill files removed to make room on disk
	MemoryBudget int64  `json:"memory_budget"` // the store's memory budget in bytes
	DiskBudget   int64  `json:"disk_budget"`   // the disk budget in bytes (0: unlimited)
}

// NetStats count the node's swarm traffic (node.NetStats): every frame of
// the task, completion and fetch protocols and every gossip message is one
// message; bytes count payloads.
type NetStats struct {
	MsgsSent  uint64 `json:"msgs_sent"`
	MsgsRecv  uint64 `json:"msgs_recv"`
	BytesSent uint64 `json:"bytes_sent"`
	BytesRecv uint64 `json:"bytes_recv"`
	TasksOut  uint64 `json:"tasks_out"` // tasks handed to other peers (and acknowledged)
	TasksIn   uint64 `json:"tasks_in"`  // tasks accepted from other peers
	Fetches   uint64 `json:"fetches"`   // objects fetched from other peers
	Resumed   uint64 `json:"resumed"`   // fetches resumed from another holder mid-stream
	Refused   uint64 `json:"refused"`   // hand-offs this node refused
	Rebuilt   uint64 `json:"rebuilt"`   // tasks run again to rebuild results whose holder was lost
	Probes    uint64 `json:"probes"`    // peers asked for their load
	// Announced counts CIDs handed to the DHT announcer, Unannounced
	// those dropped before they were due.
	Announced   uint64 `json:"announced"`
	Unannounced uint64 `json:"unannounced"`
}

// StatsFrom converts a node's stats into their JSON form; Refs is left zero.
func StatsFrom(s node.Stats) Stats {
	return Stats{
		Objects: s.Objects,
		Tasks:   s.Tasks,
		Lent:    s.Lent,
		Sched: SchedStats{
			Slots: s.Sched.Slots, Running: s.Sched.Running, Blocked: s.Sched.Blocked,
			Queued: s.Sched.Queued, Waiting: s.Sched.Waiting, Forwarded: s.Sched.Forwarded,
			Peers: s.Sched.Peers, Finished: s.Sched.Finished,
		},
		Store: StoreStats{
			Objects: s.Store.Objects, MemObjects: s.Store.MemObjects, MemBytes: s.Store.MemBytes,
			DiskObjects: s.Store.DiskObjects, DiskBytes: s.Store.DiskBytes, Pinned: s.Store.Pinned,
			Evicted: s.Store.Evicted, Spilled: s.Store.Spilled, Restored: s.Store.Restored,
			DiskEvicted: s.Store.DiskEvicted, MemoryBudget: s.Store.MemoryBudget, DiskBudget: s.Store.DiskBudget,
		},
		Net: NetStats{
			MsgsSent: s.Net.MsgsSent, MsgsRecv: s.Net.MsgsRecv, BytesSent: s.Net.BytesSent,
			BytesRecv: s.Net.BytesRecv, TasksOut: s.Net.TasksOut, TasksIn: s.Net.TasksIn, Fetches: s.Net.Fetches,
			Resumed: s.Net.Resumed, Refused: s.Net.Refused, Rebuilt: s.Net.Rebuilt, Probes: s.Net.Probes, Announced: s.Net.Announced, Unannounced: s.Net.Unannounced,
		},
	}
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	st := StatsFrom(s.n.Stats())
	st.Refs = s.Refs()
	s.reply(w, st)
}
