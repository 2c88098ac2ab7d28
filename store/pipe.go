package store

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// hookPipeItem, a test hook (nil outside tests), is called by a pipe's
// hasher before it hashes each item it has not been told to drop.
var hookPipeItem func(*pipe)

// pipe hashes the bytes a stream reads, and writes them to the stream's
// spill file, on goroutines of its own, so that reading, hashing and
// writing overlap: the reader hands each run of bytes it has read to the
// hasher, which hands it on to the writer when there is a file.
//
// Handing over queues a slice header and wakes the next worker only when
// it is idle; the reader never waits for the hasher, nor the hasher for
// the writer. What bounds the bytes in flight is where they live. In
// memory they are already in the object's final segments (reserved in the
// budget), so the reader may run ahead of the hasher by the whole object
// and a slow hasher never stalls the network. On disk they are in
// pipeDepth pooled chunk buffers, which the writer returns once it has
// written them; the reader waits for one when all are in flight.
type pipe struct {
	dg     *digester
	f      *os.File // the spill file, or nil in memory
	hasher *stage
	writer *stage        // nil in memory
	free   chan *[]byte  // chunk buffers the writer is done with
	done   chan struct{} // closed when the workers are done with every item

	chunks int         // chunk buffers taken from chunkPool (reader only)
	stop   atomic.Bool // drop what is in flight: the stream has failed
	failed atomic.Bool // err is set
	err    error       // the first write error; read after done
}

// pipeItem is a run of bytes a stream has read, in a chunk buffer (to be
// returned to the pipe's free list) or in an object segment.
type pipeItem struct {
	b     []byte
	chunk *[]byte
}

// newPipe starts the workers of a pipe that hashes into dg and, when f is
// not nil, writes to f.
func newPipe(dg *digester, f *os.File) *pipe {
	pp := &pipe{dg: dg, f: f, free: make(chan *[]byte, pipeDepth)}
	if f == nil {
		pp.hasher = newStage(pp.hash, nil)
		pp.done = pp.hasher.done
		return pp
	}
	pp.writer = newStage(pp.write, nil)
	pp.hasher = newStage(pp.hash, pp.writer.close)
	pp.done = pp.writer.done
	return pp
}

// send hands it over to the hasher.
func (pp *pipe) send(it pipeItem) { pp.hasher.send(it) }

// hash is the hasher's work on one item.
func (pp *pipe) hash(it pipeItem) {
	if !pp.stop.Load() {
		if hookPipeItem != nil {
			hookPipeItem(pp)
		}
		_, _ = pp.dg.Write(it.b)
	}
	switch {
	case pp.writer != nil:
		pp.writer.send(it)
	case it.chunk != nil:
		pp.free <- it.chunk // never blocks: it has room for every chunk
	}
}

// write is the writer's work on one item.
func (pp *pipe) write(it pipeItem) {
	if !pp.stop.Load() && pp.err == nil {
		if _, err := pp.f.Write(it.b); err != nil {
			pp.err = fmt.Errorf("write spill file: %w", err)
			pp.failed.Store(true)
		}
	}
	if it.chunk != nil {
		pp.free <- it.chunk
	}
}

// getChunk returns a free chunk buffer, waiting for the writer when all
// pipeDepth buffers are in flight.
func (pp *pipe) getChunk() *[]byte {
	select {
	case c := <-pp.free:
		return c
	default:
	}
	if pp.chunks < pipeDepth {
		pp.chunks++
		return chunkPool.Get().(*[]byte)
	}
	return <-pp.free
}

// finish tells the workers that nothing more is coming and waits for them
// to process everything handed over; it returns the first write error. If
// ctx is done or the store closes first, the workers drop what is left,
// and finish returns once they have exited.
func (pp *pipe) finish(ctx context.Context, closing <-chan struct{}) error {
	pp.hasher.close()
	var err error
	select {
	case <-pp.done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-closing:
		err = ErrClosed
	}
	if err != nil {
		pp.stop.Store(true)
		<-pp.done // each worker finishes at most the item it is on
	}
	pp.release()
	if err != nil {
		return err
	}
	return pp.err
}

// abandon stops the workers, dropping what they have not processed yet,
// and waits for them to exit.
func (pp *pipe) abandon() {
	pp.stop.Store(true)
	pp.hasher.close()
	<-pp.done
	pp.release()
}

// release returns the chunk buffers to the pool; the workers have exited.
func (pp *pipe) release() {
	for range len(pp.free) {
		chunkPool.Put(<-pp.free)
	}
}

// stage is a worker goroutine with an unbounded queue: send never blocks,
// and wakes the worker only when it waits for work.
type stage struct {
	process func(pipeItem)
	onExit  func()        // called when the worker exits, before done closes
	wake    chan struct{} // capacity 1: rung when an idle worker has work
	done    chan struct{} // closed when the worker has exited

	mu     sync.Mutex
	queue  []pipeItem // sent, not yet taken by the worker
	idle   bool       // the worker waits for wake
	closed bool       // nothing more will be sent
}

func newStage(process func(pipeItem), onExit func()) *stage {
	st := &stage{
		process: process,
		onExit:  onExit,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go st.loop()
	return st
}

// send queues it for the worker.
func (st *stage) send(it pipeItem) {
	st.mu.Lock()
	st.queue = append(st.queue, it)
	ring := st.idle
	st.idle = false
	st.mu.Unlock()
	if ring {
		st.wake <- struct{}{} // never blocks: only an idle worker is rung
	}
}

// close tells the worker that nothing more will be sent: it exits once it
// has processed the queue.
func (st *stage) close() {
	st.mu.Lock()
	st.closed = true
	ring := st.idle
	st.idle = false
	st.mu.Unlock()
	if ring {
		st.wake <- struct{}{}
	}
}

func (st *stage) loop() {
	defer close(st.done)
	if st.onExit != nil {
		defer st.onExit()
	}
	var batch []pipeItem
	for {
		st.mu.Lock()
		for len(st.queue) == 0 {
			if st.closed {
				st.mu.Unlock()
				return
			}
			st.idle = true
			st.mu.Unlock()
			<-st.wake
			st.mu.Lock()
		}
		// Take the whole queue and leave the sender the emptied batch
		// to fill: no allocation once both have grown.
		batch, st.queue = st.queue, batch[:0]
		st.mu.Unlock()
		for i := range batch {
			st.process(batch[i])
			batch[i] = pipeItem{} // do not keep the bytes reachable
		}
	}
}
