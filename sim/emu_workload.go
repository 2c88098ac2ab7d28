package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/dray-project/dray/node"
)

// The emulation's workload, in real time: the functions every node
// registers (emu.w<k> and emu.fib), which sleep a task's drawn duration
// and return its output, and the run, which submits the DES task list at
// its times from each task's owner, starts the churn plan and the
// sampler, and waits (bounded) for every top-level task.

// Workload functions. Every task is a call of emu.w<k>(idx, k byte
// arguments): it sleeps the task's drawn duration and returns its output
// size in bytes; fib trees call emu.fib.
const (
	emuWork = "emu.w"
	emuFib  = "emu.fib"
)

var bytesType = reflect.TypeFor[[]byte]()

// registry registers the functions the workload needs, with the same
// table on every peer.
func (e *emu) registry() (*node.Registry, error) {
	reg := node.NewRegistry()
	arities := map[int]bool{}
	for i := range e.model.tasks {
		t := &e.model.tasks[i]
		k := int(t.nDeps)
		if t.input > 0 {
			k++
		}
		arities[k] = true
	}
	ctxType := reflect.TypeFor[context.Context]()
	errType := reflect.TypeFor[error]()
	for k := range arities {
		in := []reflect.Type{ctxType, reflect.TypeFor[int64]()}
		for range k {
			in = append(in, bytesType)
		}
		ft := reflect.FuncOf(in, []reflect.Type{bytesType, errType}, false)
		fn := reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
			ctx := args[0].Interface().(context.Context)
			out, err := e.work(ctx, args[1].Int())
			ev := reflect.Zero(errType)
			if err != nil {
				ev = reflect.ValueOf(&err).Elem()
			}
			return []reflect.Value{reflect.ValueOf(out), ev}
		})
		if err := reg.Register(emuWork+strconv.Itoa(k), fn.Interface()); err != nil {
			return nil, fmt.Errorf("sim: emu: %w", err)
		}
	}
	if err := reg.Register(emuFib, e.fib); err != nil {
		return nil, fmt.Errorf("sim: emu: %w", err)
	}
	return reg, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runner returns the peer running the task whose context ctx is.
func (e *emu) runner(ctx context.Context) *emuPeer {
	n := node.FromContext(ctx)
	if n == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if i, ok := e.byID[n.ID()]; ok {
		return e.peers[i]
	}
	return nil
}

// work runs top-level task idx: records its start, sleeps its duration,
// and returns its output.
func (e *emu) work(ctx context.Context, idx int64) ([]byte, error) {
	if idx < 0 || int(idx) >= len(e.model.tasks) {
		return nil, fmt.Errorf("sim: emu: no task %d", idx)
	}
	t := &e.model.tasks[idx]
	now := int64(time.Since(e.t0))
	if e.tasks[idx].started.CompareAndSwap(0, max(now, 1)) {
		ready := t.submitAt - e.model.t0
		for _, d := range e.model.depsOf(t) {
			ready = max(ready, e.tasks[d].done.Load())
		}
		e.mu.Lock()
		e.schedDelay = append(e.schedDelay, max(now-ready, 0))
		e.mu.Unlock()
	}
	if p := e.runner(ctx); p != nil {
		p.busy.Add(t.dur)
		p.ran.Add(1)
	}
	if err := sleep(ctx, time.Duration(t.dur)); err != nil {
		return nil, err
	}
	out := make([]byte, t.out)
	binary.LittleEndian.PutUint64(out[:min(8, len(out))], uint64(idx)) // distinct contents
	return out, nil
}

// fibKey numbers the calls of a fib tree: the root of job i is i<<34|1,
// the children of k are 2k and 2k+1.
func fibKey(job int64) int64 { return job<<34 | 1 }

// fib is the nested workload: half its work, fib(n-1) and fib(n-2) as
// nested tasks on the node running it (as builtin.Fib), waiting for both,
// then the other half. Durations are drawn from a hash of the seed and the
// call's key (the DES draws them in event order, which emu cannot follow).
func (e *emu) fib(ctx context.Context, n, key int64) (int64, error) {
	d := drawDist(e.sc.Workload.Duration, mix(e.sc.Seed^uint64(key)*0x9e3779b97f4a7c15))
	if p := e.runner(ctx); p != nil {
		p.busy.Add(d)
		p.ran.Add(1)
	}
	if n < 2 {
		if err := sleep(ctx, time.Duration(d)); err != nil {
			return 0, err
		}
		return n, nil
	}
	if err := sleep(ctx, time.Duration(d/2)); err != nil {
		return 0, err
	}
	nd := node.FromContext(ctx)
	if nd == nil {
		return 0, errors.New("sim: emu: fib called outside a task")
	}
	var sum int64
	var refs [2]node.ObjectRef
	var called [2]time.Time
	for c := range 2 {
		r, err := nd.Call(ctx, emuFib, n-1-int64(c), 2*key+int64(c))
		if err != nil {
			return 0, err
		}
		refs[c], called[c] = r[0], time.Now()
	}
	for c := range 2 {
		v, err := node.As[int64](refs[c]).Get(ctx)
		if err != nil {
			return 0, err
		}
		e.mu.Lock()
		e.latency = append(e.latency, int64(time.Since(called[c])))
		e.mu.Unlock()
		e.completed.Add(1)
		sum += v
	}
	if err := sleep(ctx, time.Duration(d-d/2)); err != nil {
		return 0, err
	}
	return sum, nil
}

// run submits the workload in real time, runs the churn plan and the
// sampler, waits (bounded) for every top-level task and builds the result.
func (e *emu) run(ctx context.Context) (*EmuResult, error) {
	m := e.model
	perSlot, lastSub := m.workPerSlot()
	// The deadline: MaxTime, or generous room over the ideal.
	limit := time.Duration(lastSub) + 4*time.Duration(perSlot) + 60*time.Second
	if m.sc.Workload.Kind == "fib" {
		limit += 2 * time.Duration(float64(int64(1)<<min(m.sc.Workload.FibN, 30))*meanOf(m.sc.Workload.Duration)/float64(max(m.totalSlots, 1)))
	}
	if m.sc.MaxTime > 0 {
		limit = time.Duration(m.sc.MaxTime)
	}
	e.ctx, e.cancel = context.WithTimeout(ctx, limit)
	defer e.cancel()
	for _, p := range e.peers {
		p.base = p.count()
	}
	e.t0 = time.Now()
	every := time.Duration(m.sc.SampleEvery)
	if every <= 0 {
		every = time.Duration(m.estimateSample())
	}
	var bg sync.WaitGroup
	stopSampler := make(chan struct{})
	bg.Go(func() { e.sampler(every, stopSampler) })
	bg.Go(e.churn)
	var waiters sync.WaitGroup
	subErr := e.submitAll(&waiters)
	done := make(chan struct{})
	go func() { waiters.Wait(); close(done) }()
	select {
	case <-done:
	case <-e.ctx.Done():
	}
	e.cancel()
	waiters.Wait()
	close(stopSampler)
	bg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: emu: run stopped: %w", err)
	}
	if subErr != nil {
		return nil, subErr
	}
	// The DES counts an announcement's provider records when it is made;
	// the hosts send them in batches a little later, so let them finish
	// before counting (bounded: a busy machine must not hang the run).
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	for _, p := range e.peers {
		if p.alive.Load() {
			_ = p.net.Flush(fctx)
		}
	}
	cancel()
	for _, p := range e.peers {
		if p.alive.Load() {
			p.last = p.count()
		}
	}
	e.sample(time.Since(e.t0))
	return e.result(), nil
}

// submitAll submits the top-level tasks at their times, each from its
// owner, and starts a waiter per task.
func (e *emu) submitAll(waiters *sync.WaitGroup) error {
	m := e.model
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for k, i := range m.subs {
		t := &m.tasks[i]
		at := time.Duration(t.submitAt - m.t0)
		if wait := at - time.Since(e.t0); wait > 0 {
			timer.Reset(wait)
			select {
			case <-e.ctx.Done():
				return nil
			case <-timer.C:
			}
		}
		if e.opts.Progress != nil && k%256 == 0 {
			e.opts.Progress(time.Since(e.t0), int(e.resolved.Load()), m.topTasks)
		}
		owner := e.peers[t.owner]
		if !owner.alive.Load() {
			e.tasks[i].failed.Store(true)
			e.resolved.Add(1)
			continue
		}
		ref, err := e.call(owner, i)
		if err != nil {
			if e.ctx.Err() != nil || !owner.alive.Load() {
				e.tasks[i].failed.Store(true)
				e.resolved.Add(1)
				continue
			}
			return fmt.Errorf("sim: emu: submit task %d: %w", i, err)
		}
		e.tasks[i].ref = ref
		waiters.Go(func() { e.await(owner, i) })
	}
	return nil
}

// call submits task i on its owner.
func (e *emu) call(owner *emuPeer, i int32) (node.ObjectRef, error) {
	t := &e.model.tasks[i]
	if t.fibN > 0 || e.sc.Workload.Kind == "fib" {
		r, err := owner.n.Call(e.ctx, emuFib, int64(t.fibN), fibKey(int64(i)))
		if err != nil {
			return node.ObjectRef{}, err
		}
		return r[0], nil
	}
	args := []any{int64(i)}
	if t.input > 0 {
		in := make([]byte, t.input)
		binary.LittleEndian.PutUint64(in, uint64(i))
		r, err := owner.n.Put(e.ctx, in)
		if err != nil {
			return node.ObjectRef{}, err
		}
		args = append(args, r)
	}
	for _, d := range e.model.depsOf(t) {
		args = append(args, e.tasks[d].ref)
	}
	r, err := owner.n.Call(e.ctx, emuWork+strconv.Itoa(len(args)-1), args...)
	if err != nil {
		return node.ObjectRef{}, err
	}
	return r[0], nil
}

// await waits until task i is resolved at its owner; a final result is
// fetched with Get (as the user would), which also tells a failure.
func (e *emu) await(owner *emuPeer, i int32) {
	t := &e.model.tasks[i]
	et := &e.tasks[i]
	ready, _, err := owner.n.Wait(e.ctx, []node.ObjectRef{et.ref}, 1, 0)
	if err != nil || len(ready) == 0 {
		return // lost: the run ended first
	}
	if t.final {
		if _, err := et.ref.Get(e.ctx); err != nil {
			if e.ctx.Err() != nil {
				return
			}
			et.failed.Store(true)
			e.resolved.Add(1)
			return
		}
	}
	now := int64(time.Since(e.t0))
	et.done.Store(now)
	e.lastDone.Store(now)
	e.mu.Lock()
	e.latency = append(e.latency, now-(t.submitAt-e.model.t0))
	e.mu.Unlock()
	e.completed.Add(1)
	e.resolved.Add(1)
}
