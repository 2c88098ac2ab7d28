package sched

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTraces replays the scheduling traces under testdata/. Each trace is a
// sequence of events; the expected output is the actions they produce.
// Rewrite with `go test ./sched -rewrite` only after reading the diff.
func TestTraces(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var s *Scheduler
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd == "init" {
				cfg := DefaultConfig()
				d.MaybeScanArgs(t, "slots", &cfg.Slots)
				var self string
				d.MaybeScanArgs(t, "self", &self)
				cfg.Self = PeerID(self)
				d.MaybeScanArgs(t, "funcs", &cfg.Funcs)
				d.MaybeScanArgs(t, "offer", &cfg.OfferAfter)
				d.MaybeScanArgs(t, "ttl", &cfg.BeaconTTL)
				d.MaybeScanArgs(t, "nestedwait", &cfg.NestedWait)
				d.MaybeScanArgs(t, "probe", &cfg.ProbeBatch)
				d.MaybeScanArgs(t, "retries", &cfg.MaxRetries)
				d.MaybeScanArgs(t, "maxqueue", &cfg.MaxQueue)
				d.MaybeScanArgs(t, "lease", &cfg.LeaseTicks)
				d.MaybeScanArgs(t, "silence", &cfg.SilenceTicks)
				d.MaybeScanArgs(t, "funcwait", &cfg.FuncWait)
				if d.HasArg("res") {
					var res string
					d.ScanArgs(t, "res", &res)
					cfg.Resources = parseRes(res)
				}
				cfg.Check = true
				var seed uint64
				d.MaybeScanArgs(t, "seed", &seed)
				cfg.Rand = rand.New(rand.NewPCG(seed, seed))
				var err error
				s, err = New(cfg)
				if err != nil {
					return err.Error() + "\n"
				}
				return ""
			}
			require.NotNil(t, s, "trace must start with init")
			if d.Cmd == "load" {
				l := s.Load()
				return fmt.Sprintf("slots=%d free=%d queue=%d\n", l.Slots, l.Free, l.Queue)
			}
			if d.Cmd == "stats" {
				st := s.Stats()
				out := fmt.Sprintf("slots=%d running=%d blocked=%d queued=%d waiting=%d finished=%d\n",
					st.Slots, st.Running, st.Blocked, st.Queued, st.Waiting, st.Finished)
				if st.Peers > 0 || st.Forwarded > 0 {
					out += fmt.Sprintf("peers=%d forwarded=%d\n", st.Peers, st.Forwarded)
				}
				return out
			}
			var out strings.Builder
			for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
				if line == "" {
					continue
				}
				ev, err := parseEvent(line)
				require.NoError(t, err, "line %q", line)
				repeat := 1
				if ev.Kind == Tick {
					repeat, ev.Deps = len(ev.Deps), nil
				}
				for range repeat {
					if err := s.Step(ev); err != nil {
						fmt.Fprintf(&out, "error: %v\n", err)
					}
				}
			}
			if d.Cmd != "step" {
				t.Fatalf("unknown command %q", d.Cmd)
			}
			for _, a := range s.TakeActions(nil) {
				switch {
				case a.Kind == Fetch:
					fmt.Fprintf(&out, "%s %s (for %s, refused by %s)\n", a.Kind, a.Object, a.Task, a.Peer)
				case a.Kind == Fail && a.Reason == FailNoPeer:
					fmt.Fprintf(&out, "%s %s (%s: %d ticks)\n", a.Kind, a.Task, a.Reason, a.Count)
				case a.Kind == Fail && a.Reason == FailArg:
					fmt.Fprintf(&out, "%s %s (%s %s: %d hand-backs)\n", a.Kind, a.Task, a.Reason, a.Object, a.Count)
				case a.Kind == Fail && a.Object != "":
					fmt.Fprintf(&out, "%s %s (dep %s)\n", a.Kind, a.Task, a.Object)
				case a.Kind == Fail && a.Reason == FailLost:
					fmt.Fprintf(&out, "%s %s (%s: %s, %d runs)\n", a.Kind, a.Task, a.Reason, a.Peer, a.Count)
				case a.Kind == Fail:
					fmt.Fprintf(&out, "%s %s (%s: %s)\n", a.Kind, a.Task, a.Reason, a.Peer)
				case a.Kind == Forward:
					fmt.Fprintf(&out, "%s %s -> %s\n", a.Kind, a.Task, a.Peer)
				case a.Kind == Probe:
					fmt.Fprintf(&out, "%s %d\n", a.Kind, a.Count)
				case a.Kind == Retry:
					fmt.Fprintf(&out, "%s %s (attempt %d)\n", a.Kind, a.Task, a.Count)
				case a.Kind == Refuse:
					fmt.Fprintf(&out, "%s %s -> %s (%s)\n", a.Kind, a.Task, a.Peer, a.Reason)
				case a.Kind == Ping, a.Kind == Drop:
					fmt.Fprintf(&out, "%s %s\n", a.Kind, a.Peer)
				case a.Kind == Cancel, a.Kind == ClaimOffer:
					fmt.Fprintf(&out, "%s %s -> %s\n", a.Kind, a.Task, a.Peer)
				case a.Kind == EndLoan:
					fmt.Fprintf(&out, "%s %s -> %s (%s)\n", a.Kind, a.Object, a.Peer, a.Reason)
				case a.Kind == Take:
					fmt.Fprintf(&out, "%s %s -> %s\n", a.Kind, a.Object, a.Peer)
				case a.Kind == Left:
					fmt.Fprintf(&out, "%s\n", a.Kind)
				case a.Kind == Abort && a.Peer != "":
					fmt.Fprintf(&out, "%s %s -> %s\n", a.Kind, a.Task, a.Peer)
				case a.Kind == FetchFuncs:
					fmt.Fprintf(&out, "%s %s\n", a.Kind, a.Peer)
				default:
					fmt.Fprintf(&out, "%s %s\n", a.Kind, a.Task)
				}
			}
			return out.String()
		})
	})
}

// parseEvent reads "submit t1 o1 o2 [nested]", "ready o1", "failed o1", "done t1",
// "blocked t1", "unblocked t1".
func parseEvent(line string) (Event, error) {
	f := strings.Fields(line)
	if len(f) < 2 && (len(f) == 0 || f[0] != "tick" && f[0] != "leave") {
		return Event{}, fmt.Errorf("want KIND ID..., got %q", line)
	}
	switch f[0] {
	case "tick":
		n := 1
		if len(f) > 1 {
			n, _ = strconv.Atoi(f[1])
		}
		return Event{Kind: Tick, Deps: make([]ObjectID, n)}, nil // Deps' length: repeat count
	case "submit":
		ev := Event{Kind: Submit, Task: TaskID(f[1])}
		for _, d := range f[2:] {
			switch {
			case d == "nested":
				ev.Nested = true
			case d == "here":
				ev.Here = true
			case d == "retry-errors":
				ev.RetryErrors = true
			case strings.HasPrefix(d, "owner="):
				ev.Here, ev.Owner = true, PeerID(d[6:])
			case strings.HasPrefix(d, "needs="):
				ev.Needs = parseRes(d[6:])
			case strings.HasPrefix(d, "func="):
				f, _ := strconv.ParseUint(d[5:], 10, 64)
				ev.Func = FuncID(f)
			case strings.HasPrefix(d, "retries="):
				ev.MaxRetries, _ = strconv.Atoi(d[8:])
			case strings.HasPrefix(d, "on="):
				ev.On = PeerID(d[3:])
			case strings.HasPrefix(d, "in="):
				// in=OBJECT:SIZE:HOLDER+HOLDER
				p := strings.Split(d[3:], ":")
				size, _ := strconv.ParseInt(p[1], 10, 64)
				in := Input{Object: ObjectID(p[0]), Size: size}
				for _, h := range strings.Split(p[2], "+") {
					in.Holders = append(in.Holders, PeerID(h))
				}
				ev.Inputs = append(ev.Inputs, in)
			default:
				ev.Deps = append(ev.Deps, ObjectID(d))
			}
		}
		return ev, nil
	case "load", "probe-reply":
		// load|probe-reply PEER SLOTS FREE QUEUE [FUNCS]
		n := make([]int, 4)
		for i := range 4 {
			if i+2 < len(f) {
				n[i], _ = strconv.Atoi(f[i+2])
			}
		}
		kind := PeerLoad
		if f[0] == "probe-reply" {
			kind = ProbeReply
		}
		return Event{Kind: kind, Peer: PeerID(f[1]), Load: Load{Slots: n[0], Free: n[1], Queue: n[2], Funcs: uint64(n[3])}}, nil
	case "gone":
		return Event{Kind: PeerGone, Peer: PeerID(f[1])}, nil
	case "claim":
		return Event{Kind: Claim, Task: TaskID(f[1]), Peer: PeerID(f[2])}, nil
	case "refused":
		return Event{Kind: Refused, Task: TaskID(f[1]), Peer: PeerID(f[2])}, nil
	case "lost":
		return Event{Kind: Lost, Task: TaskID(f[1]), Peer: PeerID(f[2])}, nil
	case "offer-heard":
		// offer-heard TASK OWNER [FUNC]
		ev := Event{Kind: OfferHeard, Task: TaskID(f[1]), Peer: PeerID(f[2])}
		if len(f) > 3 {
			fn, _ := strconv.ParseUint(f[3], 10, 64)
			ev.Func = FuncID(fn)
		}
		return ev, nil
	case "offers":
		// offers PEER|self DIGEST FUNC...
		ev := Event{Kind: Offers, Peer: PeerID(f[1])}
		if f[1] == "self" {
			ev.Peer = ""
		}
		d, _ := strconv.ParseUint(f[2], 10, 64)
		ev.Load.Funcs = d
		for _, x := range f[3:] {
			if strings.HasPrefix(x, "res=") {
				ev.Resources = parseRes(x[4:])
				continue
			}
			fn, _ := strconv.ParseUint(x, 10, 64)
			ev.Funcs = append(ev.Funcs, FuncID(fn))
		}
		return ev, nil
	case "leave":
		return Event{Kind: Leave}, nil
	case "heard":
		return Event{Kind: Heard, Peer: PeerID(f[1])}, nil
	case "settled":
		return Event{Kind: Settled, Object: ObjectID(f[1])}, nil
	case "stop":
		// stop TASK [OWNER]
		ev := Event{Kind: Stop, Task: TaskID(f[1])}
		if len(f) > 2 {
			ev.Peer = PeerID(f[2])
		}
		return ev, nil
	case "released":
		// released OBJECT OWNER
		return Event{Kind: Released, Object: ObjectID(f[1]), Peer: PeerID(f[2])}, nil
	case "object-lost":
		return Event{Kind: ObjectLost, Object: ObjectID(f[1])}, nil
	case "arg-lost":
		// arg-lost TASK PEER OBJECT
		return Event{Kind: ArgLost, Task: TaskID(f[1]), Peer: PeerID(f[2]), Object: ObjectID(f[3])}, nil
	case "ready":
		// ready OBJECT [HOLDER:SIZE]
		ev := Event{Kind: ObjectReady, Object: ObjectID(f[1])}
		if len(f) > 2 {
			h, size, _ := strings.Cut(f[2], ":")
			ev.Holder = PeerID(h)
			ev.Size, _ = strconv.ParseInt(size, 10, 64)
		}
		return ev, nil
	case "failed":
		return Event{Kind: ObjectFailed, Object: ObjectID(f[1])}, nil
	case "done":
		// done TASK [by=PEER] [retryable]
		ev := Event{Kind: Done, Task: TaskID(f[1])}
		for _, a := range f[2:] {
			switch {
			case a == "retryable":
				ev.Retryable = true
			case strings.HasPrefix(a, "lent="):
				for _, o := range strings.Split(a[5:], "+") {
					ev.Lent = append(ev.Lent, ObjectID(o))
				}
			case strings.HasPrefix(a, "by="):
				ev.Peer = PeerID(a[3:])
			}
		}
		return ev, nil
	case "blocked":
		return Event{Kind: Blocked, Task: TaskID(f[1])}, nil
	case "unblocked":
		return Event{Kind: Unblocked, Task: TaskID(f[1])}, nil
	case "bogus":
		return Event{Kind: EventKind(99), Task: TaskID(f[1])}, nil
	}
	return Event{}, fmt.Errorf("unknown event %q", f[0])
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" = valid; else a substring of the error
	}{
		{Config{Slots: 1}, ""},
		{Config{Slots: 64, ProbeBatch: 32}, ""},
		{Config{Slots: 0}, "Slots"},
		{Config{Slots: -3}, "Slots"},
		{Config{Slots: 1, OfferAfter: -1}, "OfferAfter"},
		{Config{Slots: 1, BeaconTTL: -1}, "BeaconTTL"},
		{Config{Slots: 1, NestedWait: -1}, "NestedWait"},
		{Config{Slots: 1, ProbeBatch: -1}, "ProbeBatch"},
	} {
		_, err := New(tc.cfg)
		if tc.want == "" {
			require.NoError(t, err, "%+v", tc.cfg)
		} else {
			require.ErrorContains(t, err, tc.want, "%+v", tc.cfg)
		}
	}
}

// TestProbeWaste: replies that find no room free their probes for more,
// but at most probeWaste batches a tick; after that no probe is in flight
// until the tick, which starts a new round.
func TestProbeWaste(t *testing.T) {
	s, err := New(Config{Slots: 1, ProbeBatch: 1, OfferAfter: 100})
	require.NoError(t, err)
	probes := func() int {
		n := 0
		for _, a := range s.TakeActions(nil) {
			if a.Kind == Probe {
				n += a.Count
			}
		}
		return n
	}
	require.NoError(t, s.Step(Event{Kind: Submit, Task: "run"}))
	require.NoError(t, s.Step(Event{Kind: Submit, Task: "wait"}))
	require.Equal(t, 1, probes())
	full := Load{Slots: 1, Free: 0, Queue: 1}
	for i := range probeWaste + 1 {
		require.NoError(t, s.Step(Event{Kind: ProbeReply, Peer: PeerID(fmt.Sprint("p", i)), Load: full}))
		want := 1
		if i == probeWaste {
			want = 0
		}
		require.Equal(t, want, probes(), "reply %d", i+1)
	}
	require.NoError(t, s.Step(Event{Kind: Tick}))
	require.Equal(t, 1, probes(), "a tick starts a new round")
}

// TestErrorsLeaveStateUnchanged checks that a rejected event does not move
// any counter.
func TestErrorsLeaveStateUnchanged(t *testing.T) {
	s, err := New(Config{Slots: 1})
	require.NoError(t, err)
	require.NoError(t, s.Step(Event{Kind: Submit, Task: "a"}))
	before := s.Stats()
	for _, ev := range []Event{
		{Kind: Submit, Task: "a"},
		{Kind: Submit},
		{Kind: Done, Task: "zz"},
		{Kind: Unblocked, Task: "a"},
		{Kind: EventKind(42)},
	} {
		require.Error(t, s.Step(ev), "%+v", ev)
		require.Equal(t, before, s.Stats(), "%+v", ev)
	}
}

// TestFIFOFairness runs many tasks through one slot and checks they start in
// submission order, across ring-buffer growth.
func TestFIFOFairness(t *testing.T) {
	s, err := New(Config{Slots: 1})
	require.NoError(t, err)
	const n = 1000
	for i := range n {
		require.NoError(t, s.Step(Event{Kind: Submit, Task: TaskID(fmt.Sprint(i))}))
	}
	for i := range n {
		acts := s.TakeActions(nil)
		require.Len(t, acts, 1)
		require.Equal(t, Action{Kind: Run, Task: TaskID(fmt.Sprint(i))}, acts[0])
		require.NoError(t, s.Step(Event{Kind: Done, Task: acts[0].Task}))
	}
	require.Empty(t, s.TakeActions(nil))
	require.Equal(t, Stats{Slots: 1, Finished: n}, s.Stats())
}

// TestFIFOGrowthWithPushFront mixes front and back pushes across buffer
// growth and checks the order against a plain slice model.
func TestFIFOGrowthWithPushFront(t *testing.T) {
	var q fifo
	var model []TaskID
	for i := range 500 {
		id := TaskID(fmt.Sprint(i))
		switch {
		case i%3 == 0:
			q.pushFront(id)
			model = append([]TaskID{id}, model...)
		case i%7 == 0:
			got, ok := q.pop()
			require.True(t, ok)
			require.Equal(t, model[0], got)
			model = model[1:]
		default:
			q.push(id)
			model = append(model, id)
		}
		require.Equal(t, len(model), q.len())
	}
	for _, want := range model {
		got, ok := q.pop()
		require.True(t, ok)
		require.Equal(t, want, got)
	}
	_, ok := q.pop()
	require.False(t, ok)
}

func BenchmarkSubmitRunDone(b *testing.B) {
	s, err := New(Config{Slots: 2})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]TaskID, 1024)
	for i := range ids {
		ids[i] = TaskID(fmt.Sprint(i))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := ids[i%len(ids)]
		_ = s.Step(Event{Kind: Submit, Task: id})
		for _, a := range s.TakeActions(nil) {
			_ = s.Step(Event{Kind: Done, Task: a.Task})
		}
	}
}

// TestPeerGoneNoSlotLeak: a peer lost with tasks past their retries and
// tasks still within them. Before the one PeerGone step, the node failed
// the first (each a Done that credited the gone peer with a free place),
// the scheduler handed queued work to the gone peer, and PeerGone then
// took that back while the node kept it recorded there: a slot leaked.
// Now nothing is forwarded to a gone peer, and every task is accounted
// for.
func TestPeerGoneNoSlotLeak(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Self, cfg.Slots, cfg.Check = "A", 1, true
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Step(Event{Kind: PeerLoad, Peer: "B", Load: Load{Slots: 2, Free: 2}}))
	for i := range 8 {
		r := 0
		if i%2 == 0 {
			r = -1 // no retries: fails with B
		}
		require.NoError(t, s.Step(Event{Kind: Submit, Task: TaskID(fmt.Sprint("t", i)), MaxRetries: r}))
	}
	before := s.TakeActions(nil)
	require.NotEmpty(t, before)
	require.NoError(t, s.Step(Event{Kind: PeerGone, Peer: "B"}))
	var failed int
	for _, a := range s.TakeActions(nil) {
		require.False(t, a.Kind == Forward && a.Peer == "B", "task %s forwarded to the gone peer", a.Task)
		if a.Kind == Fail {
			require.Equal(t, FailLost, a.Reason)
			failed++
		}
	}
	st := s.Stats()
	assert.Zero(t, st.Forwarded)
	assert.Equal(t, 8, st.Running+st.Queued+failed, "every task is running, queued or failed")
	assert.Equal(t, uint64(failed), st.Finished)
	assert.Positive(t, failed)
}

// TestSeedPerPeer: peers that share a Seed (every node of a test) but not
// an ID draw differently; before, every node drew alike and herded work
// onto the same targets (39 of 39 the same in a two-node test).
func TestSeedPerPeer(t *testing.T) {
	draws := func(self PeerID) []PeerID {
		cfg := DefaultConfig()
		cfg.Self, cfg.Slots, cfg.Seed = self, 1, 42
		s, err := New(cfg)
		require.NoError(t, err)
		for _, p := range []PeerID{"P", "Q", "R", "S", "T"} {
			require.NoError(t, s.Step(Event{Kind: PeerLoad, Peer: p, Load: Load{Slots: 64, Free: 64}}))
		}
		var got []PeerID
		for i := range 40 {
			require.NoError(t, s.Step(Event{Kind: Submit, Task: TaskID(fmt.Sprint("t", i))}))
			for _, a := range s.TakeActions(nil) {
				if a.Kind == Forward {
					got = append(got, a.Peer)
				}
			}
		}
		return got
	}
	a, b := draws("A"), draws("B")
	require.Len(t, a, 39)
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	assert.Less(t, same, 20, "two peers chose the same target %d times of %d", same, len(a))
	assert.Equal(t, a, draws("A"), "a peer's draws are reproducible for its seed")
}

// parseRes reads "gpu:1+license:2".
func parseRes(s string) map[string]int {
	m := map[string]int{}
	for _, kv := range strings.Split(s, "+") {
		k, v, _ := strings.Cut(kv, ":")
		n, _ := strconv.Atoi(v)
		m[k] = n
	}
	return m
}
