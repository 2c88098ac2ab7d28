package p2p

// The FIFO behind the announcement queue (announcer.queue).

// ring is a FIFO on a growable circular buffer.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) pushBack(v T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(64, 2*len(r.buf)))
		m := copy(nb, r.buf[r.head:])
		copy(nb[m:], r.buf[:r.head])
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

// popFront removes and returns the oldest element; the ring must not be empty. An
// emptied ring releases a large buffer.
func (r *ring[T]) popFront() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 {
		r.head = 0
		if len(r.buf) > 4096 {
			r.buf = nil
		}
	}
	return v
}
