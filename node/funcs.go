package node

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dray-project/dray/codec"
	"github.com/dray-project/dray/sched"
	"github.com/dray-project/dray/wire"
)

// Function tables: each peer beacons the digest of its function table;
// the scheduler asks for a table it has not seen (FetchFuncs), which this
// node fetches on a session (FrameTableWant → FrameTable) and steps as
// Offers, so tasks go only to peers that offer their function. The tables
// also let this node call a function only other peers offer: its identity
// and the codec names of its types come from their tables.

// ErrNoPeerOffers is matched (errors.Is) by every *NoPeerOffersError.
var ErrNoPeerOffers = errors.New("node: no peer offers the function")

// NoPeerOffersError reports a call of a function that no peer this node
// knows offers — not even after Waited — with the closest names the
// swarm does offer.
type NoPeerOffersError struct {
	Name        string
	Signature   string         // the identity called, when known from a table
	Needs       map[string]int // the resources the call needs, if any
	Waited      time.Duration
	Suggestions []string
}

func (e *NoPeerOffersError) Error() string {
	what := e.Name
	if e.Signature != "" {
		what = e.Signature
	}
	msg := fmt.Sprintf("node: no peer offers function %s", what)
	if len(e.Needs) > 0 {
		msg += " with " + needsText(e.Needs)
	}
	if e.Waited > 0 {
		msg += fmt.Sprintf(" (waited %v for one to join)", e.Waited.Round(time.Millisecond))
	}
	if len(e.Suggestions) > 0 {
		msg += "; did you mean " + strings.Join(e.Suggestions, ", ") + "?"
	} else {
		msg += "; run `dray functions --swarm` to list what the swarm offers"
	}
	return msg
}

// Is makes errors.Is(err, ErrNoPeerOffers) true.
func (e *NoPeerOffersError) Is(target error) bool { return target == ErrNoPeerOffers }

// peerTable is another peer's function table.
type peerTable struct {
	digest    uint64
	funcs     []wire.FuncInfo
	resources map[string]int
}

// fetchTableLocked asks p for its function table (a FetchFuncs action).
func (n *Node) fetchTableLocked(p sched.PeerID) {
	id := peerOf(p)
	n.later = append(n.later, func() { n.fetchTable(id) })
}

// fetchTable asks p for its function table on a session; the answer comes
// as a FrameTable (handleTable).
func (n *Node) fetchTable(p peer.ID) {
	ss, err := n.sessionTo(p)
	if err == nil {
		err = ss.send(wire.FrameTableWant, nil)
	}
	if err != nil {
		n.log.Debug("cannot ask for a function table", "peer", p, "err", err)
	}
}

// handleTable records from's function table and tells the scheduler.
func (n *Node) handleTable(from peer.ID, payload []byte) {
	var t wire.Table
	if err := codec.Unmarshal(payload, &t); err != nil {
		n.log.Warn("bad function table", "peer", from, "err", err)
		return
	}
	if len(t.Funcs) > wire.MaxTableFuncs {
		n.log.Warn("function table too large; ignored", "peer", from, "funcs", len(t.Funcs))
		return
	}
	ids := make([]sched.FuncID, 0, len(t.Funcs))
	for _, f := range t.Funcs {
		if f.ID == 0 || f.Name == "" {
			n.log.Warn("function table with a nameless or zero function; ignored", "peer", from)
			return
		}
		ids = append(ids, sched.FuncID(f.ID))
	}
	n.update(func() {
		n.tables[from] = &peerTable{digest: t.Digest, funcs: t.Funcs, resources: t.Resources}
		n.stepLocked(sched.Event{Kind: sched.Offers, Peer: peerKey(from), Funcs: ids, Resources: t.Resources, Load: sched.Load{Funcs: t.Digest}})
		if n.tablesUp != nil {
			close(n.tablesUp)
		}
		n.tablesUp = make(chan struct{})
	})
}

// SwarmFunction is a function some peers of the swarm offer, as their
// tables say.
type SwarmFunction struct {
	wire.FuncInfo
	Peers []string // the peers that offer it (this node's ID if it does)
}

// Signature renders the function as Function.Signature does.
func (f SwarmFunction) Signature() string {
	return signature(f.Name, f.Params, f.Results, f.Version)
}

// SwarmFunctions lists the functions of every table this node knows,
// its own included, by name then signature.
func (n *Node) SwarmFunctions() []SwarmFunction {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.swarmFunctionsLocked()
}

func (n *Node) swarmFunctionsLocked() []SwarmFunction {
	byID := make(map[uint64]*SwarmFunction)
	add := func(fi wire.FuncInfo, p string) {
		f := byID[fi.ID]
		if f == nil {
			f = &SwarmFunction{FuncInfo: fi}
			byID[fi.ID] = f
		}
		if !slices.Contains(f.Peers, p) {
			f.Peers = append(f.Peers, p)
		}
	}
	for _, f := range n.reg.Functions() {
		if !f.remote {
			add(f.info(), n.id)
			for p := range n.same {
				add(f.info(), p.String())
			}
		}
	}
	for p, t := range n.tables {
		for _, fi := range t.funcs {
			add(fi, p.String())
		}
	}
	out := make([]SwarmFunction, 0, len(byID))
	for _, f := range byID {
		slices.Sort(f.Peers)
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b SwarmFunction) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Signature(), b.Signature())
	})
	return out
}

// lookupFunction finds the function a call names: registered here, or
// offered by other peers (a remote function, run only there). A name no
// table holds waits up to Config.FuncWait for a peer that offers it,
// unless nothing the swarm offers is even close to it (a typo).
func (n *Node) lookupFunction(ctx context.Context, name string, args []any) (*Function, error) {
	fn, err := n.reg.Lookup(name)
	if err == nil || n.net == nil {
		return fn, err
	}
	var wait <-chan time.Time
	start := time.Now()
	for {
		n.mu.Lock()
		fn, known := n.remoteFunctionLocked(name, args)
		up := n.tablesUp
		if up == nil {
			n.tablesUp = make(chan struct{})
			up = n.tablesUp
		}
		n.mu.Unlock()
		if fn != nil {
			return fn, nil
		}
		near := n.nearNames(name)
		if known {
			// Offered, but not with these arguments' types.
			return nil, n.mismatchError(name, args)
		}
		if wait == nil {
			// Ask the peers connected whose tables are not here yet (a
			// node just started has heard few beacons); if there are
			// none and nothing offered is close to the name, it is a
			// typo, not a peer still joining.
			if n.askTables() == 0 && len(near) == 0 {
				return nil, &NoPeerOffersError{Name: name}
			}
			t := time.NewTimer(n.cfg.funcWait())
			defer t.Stop()
			wait = t.C
		}
		select {
		case <-up:
		case <-wait:
			return nil, &NoPeerOffersError{Name: name, Waited: time.Since(start), Suggestions: near}
		case <-ctx.Done():
			return nil, fmt.Errorf("node: call %s: waiting for a peer that offers it: %w", name, ctx.Err())
		case <-n.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// askTables asks every connected peer whose function table this node
// does not have for it, and returns how many it asked.
func (n *Node) askTables() int {
	var ask []peer.ID
	n.mu.Lock()
	for _, p := range n.net.Peers() {
		if n.tables[p] == nil {
			ask = append(ask, p)
		}
	}
	n.mu.Unlock()
	for _, p := range ask {
		n.fetchTable(p)
	}
	return len(ask)
}

// remoteFunctionLocked returns the function name as other peers' tables
// describe it, choosing among identities the one whose parameters the
// arguments fit; known reports a name offered under identities none of
// which fits.
func (n *Node) remoteFunctionLocked(name string, args []any) (fn *Function, known bool) {
	var cands []wire.FuncInfo
	for _, t := range n.tables {
		for _, fi := range t.funcs {
			if fi.Name == name && !slices.ContainsFunc(cands, func(c wire.FuncInfo) bool { return c.ID == fi.ID }) {
				cands = append(cands, fi)
			}
		}
	}
	slices.SortFunc(cands, func(a, b wire.FuncInfo) int { return compareU64(a.ID, b.ID) })
	for _, fi := range cands {
		if argsFit(fi, args) {
			return remoteFunction(fi), true
		}
	}
	return nil, len(cands) > 0
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// argsFit reports whether args fit fi's parameters by their codec type
// names (refs fit any parameter: their values are checked where the task
// runs).
func argsFit(fi wire.FuncInfo, args []any) bool {
	if len(args) != len(fi.Params) {
		return false
	}
	for i, a := range args {
		if _, ok := a.(refArg); ok || fi.Params[i] == "any" {
			continue
		}
		if typeName(reflect.TypeOf(a)) != fi.Params[i] {
			return false
		}
	}
	return true
}

// remoteFunction is fi as this node calls it: it never runs here.
func remoteFunction(fi wire.FuncInfo) *Function {
	f := &Function{Name: fi.Name, Version: fi.Version, Deterministic: fi.Deterministic, Doc: fi.Doc,
		MaxRetries: -1, id: sched.FuncID(fi.ID), remote: true, paramNames: fi.Params}
	anyType := reflect.TypeFor[any]()
	for range fi.Params {
		f.Params = append(f.Params, anyType)
	}
	for range fi.Results {
		f.Results = append(f.Results, anyType)
	}
	return f
}

// mismatchError says which identities of name the swarm offers when the
// arguments fit none.
func (n *Node) mismatchError(name string, args []any) error {
	var have []string
	for _, f := range n.SwarmFunctions() {
		if f.Name == name {
			have = append(have, f.Signature())
		}
	}
	got := make([]string, len(args))
	for i, a := range args {
		if _, ok := a.(refArg); ok {
			got[i] = "ref"
			continue
		}
		got[i] = typeName(reflect.TypeOf(a))
	}
	return fmt.Errorf("%w: call %s(%s): the swarm offers %s", ErrArgCount, name, strings.Join(got, ", "), strings.Join(have, "; "))
}

// nearNames lists the names the swarm offers closest to name.
func (n *Node) nearNames(name string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nearNamesLocked(name)
}

func (n *Node) nearNamesLocked(name string) []string {
	seen := make(map[string]bool)
	var names []string
	for _, f := range n.swarmFunctionsLocked() {
		if !seen[f.Name] {
			seen[f.Name] = true
			names = append(names, f.Name)
		}
	}
	return closestNames(name, names)
}

// closestNames returns the names within a small edit distance of name,
// nearest first, or sharing its prefix (at most 3).
func closestNames(name string, names []string) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	limit := max(2, len(name)/3)
	lname := strings.ToLower(name)
	for _, fname := range names {
		lf := strings.ToLower(fname)
		d := levenshtein.ComputeDistance(lname, lf)
		// Also match the name without its namespace: "matmul" finds
		// "nd.matmul".
		if i := strings.LastIndexByte(lf, '.'); i >= 0 {
			d = min(d, levenshtein.ComputeDistance(lname, lf[i+1:]))
		}
		if d <= limit || (len(name) >= 2 && strings.HasPrefix(lf, lname)) {
			cs = append(cs, cand{fname, d})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return a.d - b.d })
	var out []string
	for _, c := range cs {
		if len(out) == 3 {
			break
		}
		out = append(out, c.name)
	}
	return out
}

// BeaconSize is the size in bytes of this node's load beacon as it is
// gossiped, before the GossipSub envelope.
func (n *Node) BeaconSize() int {
	b, err := codec.Marshal(n.currentBeacon())
	if err != nil {
		return 0
	}
	return len(b)
}

// callNeeds merges a call's needs into its function's.
func callNeeds(fn *Function, extra map[string]int) (map[string]int, error) {
	if len(fn.Needs) == 0 && len(extra) == 0 {
		return nil, nil
	}
	m := make(map[string]int, len(fn.Needs)+len(extra))
	for k, v := range fn.Needs {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	for k, v := range m {
		if k == "" || v <= 0 {
			return nil, fmt.Errorf("need %q=%d: want a resource name and a positive quantity", k, v)
		}
	}
	return m, nil
}

// checkNeeds fails a call whose needs no peer has at all, this one
// included: it would wait for ever. The tables of connected peers not
// known yet are asked for first, within Config.FuncWait.
func (n *Node) checkNeeds(ctx context.Context, fn *Function, needs map[string]int) error {
	if len(needs) == 0 {
		return nil
	}
	err := n.needsMet(fn, needs)
	if err == nil || n.net == nil || n.askTables() == 0 {
		return err
	}
	t := time.NewTimer(n.cfg.funcWait())
	defer t.Stop()
	for err != nil {
		n.mu.Lock()
		if n.tablesUp == nil {
			n.tablesUp = make(chan struct{})
		}
		up := n.tablesUp
		n.mu.Unlock()
		if err = n.needsMet(fn, needs); err == nil || n.askTables() == 0 {
			return err
		}
		select {
		case <-up:
		case <-t.C:
			return err
		case <-ctx.Done():
			return fmt.Errorf("node: call %s: %w", fn.Name, ctx.Err())
		}
	}
	return nil
}

// needsMet says whether a known peer has needs for fn, or why none does.
func (n *Node) needsMet(fn *Function, needs map[string]int) error {
	fits := func(have map[string]int) bool {
		for k, v := range needs {
			if have[k] < v {
				return false
			}
		}
		return true
	}
	if !fn.remote && fits(n.cfg.Resources) {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var seen []string
	for p, t := range n.tables {
		if fits(t.resources) && slices.ContainsFunc(t.funcs, func(fi wire.FuncInfo) bool { return fi.ID == uint64(fn.ID()) }) {
			return nil
		}
		if len(t.resources) > 0 {
			seen = append(seen, fmt.Sprintf("%s has %s", p, needsText(t.resources)))
		}
	}
	if len(n.cfg.Resources) > 0 {
		seen = append(seen, "this peer has "+needsText(n.cfg.Resources))
	}
	slices.Sort(seen)
	msg := "no peer has them"
	if len(seen) > 0 {
		msg = strings.Join(seen, "; ")
	}
	return fmt.Errorf("%w: call %s needs %s, which no peer this node knows has (%s): start a peer with --resources, or lower the need",
		ErrNoPeerOffers, fn.Name, needsText(needs), msg)
}

// needsText renders resources as "gpu=1,license=2".
func needsText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ",")
}
