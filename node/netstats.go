package node

import "sync/atomic"

// NetStats counts what a node sent and received on the swarm: every frame
// of the task, completion and fetch protocols and every gossip message is
// one message. Bytes count message payloads (object bytes of fetches
// included), not frame headers, libp2p's own framing or encryption.
type NetStats struct {
	MsgsSent  uint64 // frames and gossip messages sent
	MsgsRecv  uint64 // frames and gossip messages received
	BytesSent uint64
	BytesRecv uint64
	TasksOut  uint64 // tasks handed to other peers
	TasksIn   uint64 // tasks accepted from other peers
	Fetches   uint64 // objects fetched from other peers
	Resumed   uint64 // fetches resumed from another holder mid-stream
	Refused   uint64 // hand-offs this node refused (queue full, rate, ...)
	Rebuilt   uint64 // tasks run again to rebuild results whose holder was lost
	Probes    uint64 // peers asked for their load (see Config.ProbeBatch)
	// Announced counts CIDs handed to the DHT announcer; Unannounced
	// those dropped before they were due (see announceDelay).
	Announced   uint64
	Unannounced uint64
}

// netCounters are the live counters behind NetStats.
type netCounters struct {
	msgsSent, msgsRecv, bytesSent, bytesRecv atomic.Uint64
	tasksOut, tasksIn, fetches, resumed      atomic.Uint64
	refused, rebuilt, probes                 atomic.Uint64
	announced, unannounced                   atomic.Uint64
}

func (c *netCounters) sent(payload int) {
	c.msgsSent.Add(1)
	c.bytesSent.Add(uint64(payload))
}

func (c *netCounters) recv(payload int) {
	c.msgsRecv.Add(1)
	c.bytesRecv.Add(uint64(payload))
}

func (c *netCounters) snapshot() NetStats {
	return NetStats{
		MsgsSent: c.msgsSent.Load(), MsgsRecv: c.msgsRecv.Load(),
		BytesSent: c.bytesSent.Load(), BytesRecv: c.bytesRecv.Load(),
		TasksOut: c.tasksOut.Load(), TasksIn: c.tasksIn.Load(), Fetches: c.fetches.Load(), Resumed: c.resumed.Load(), Refused: c.refused.Load(), Rebuilt: c.rebuilt.Load(), Probes: c.probes.Load(),
		Announced: c.announced.Load(), Unannounced: c.unannounced.Load(),
	}
}
