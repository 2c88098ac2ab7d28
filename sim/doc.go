// Package sim is dray's network simulator. Its discrete-event mode (DES)
// answers "how would my workload behave on 50 laptops on a LAN, or on
// 10,000 peers across continents, with peers coming and going?" before
// anything is deployed.
//
// A run drives the real per-peer core, package sched (the code every node
// runs, not a copy: placement and the whole task lifecycle — retries,
// hand-backs, peers gone, leaving, claims, lineage), of every virtual
// peer, inside a shell that models the node's I/O in virtual time (see
// peer.go and the files it lists, which name the node code each piece
// models). Time is virtual (int64 nanoseconds); events sit in a binary
// heap ordered by (time, sequence), so the same scenario and seed give the
// same events in the same order and byte-identical output. There are no
// goroutines in the event loop.
//
// The network model gives every link a one-way latency (constant,
// uniform, normal, lognormal, or a region matrix), every peer an uplink
// that serialises the bytes it sends, and loss as retransmissions after
// an RTO. Object transfers take size/bandwidth. DHT lookups are iterative
// Kademlia lookups (k=20, alpha=3) over routing tables built from the
// SHA-256 of the virtual peer IDs; their rounds are the hop counts.
//
// Every message the protocols would send is counted: load beacons (one per
// receiving peer), hand-offs, acknowledgements (delayed 5 ms: a task that
// finishes sooner needs none), completions, refusals, offers, claims,
// probes and their answers, fetches and their bytes, releases, DHT lookups
// and provider records.
//
// Defaults are the node's. Beacons and offers go on load shards
// (Scenario.Shards; sched.Shards and sched.ShardOf): a peer publishes on
// its home shard and hears its home shard and one other, so a peer hears
// about 128 others however large the swarm (up to 64 peers there is one
// shard and every peer hears every other). Work that finds no peer it
// hears with room probes peers it does not know (Scenario.ProbeBatch,
// 32). A fixed random neighbourhood of N peers (Scenario.BeaconScope) is
// the other model of who hears whom.
//
// Churn: crashed peers are noticed after a detection delay by the peers
// with a session to them (PeerGone); their tasks are re-placed, up to
// Scenario.MaxRetries times (3) — a task whose executor is lost once more
// fails, as with the node's ExecutorLostError — and outputs only they held
// are rebuilt from lineage by their owners. Tasks owned by a crashed peer
// fail with it ("owner died"). Failed tasks are reported, never dropped
// silently. Graceful leaves hand queued tasks back. Partitions drop
// messages across the cut and end sessions across it after the detection
// delay.
//
// The emulation mode (RunEmu) runs the same scenario — the same task
// list and link latencies — on real nodes with real libp2p hosts, DHT and
// GossipSub over go-libp2p's in-memory network, in real time; it is not
// deterministic (EmuNondeterminism says why), and TestEmuCalibration
// checks that the two modes agree within 15% on a small LAN.
//
// Scenarios are YAML or JSON files (LoadScenario, ParseScenario);
// sim/scenarios holds examples. Result.WriteSummary prints the summary table; WriteCSV and
// WritePlots write time series, distributions and SVG plots.
package sim
