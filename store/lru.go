package store

// listID names one of a Store's LRU lists (0: none).
type listID uint8

const (
	noList           listID = iota
	memPinnedList           // in-memory pinned objects: spill candidates
	memUnpinnedList         // in-memory unpinned objects: eviction candidates
	diskUnpinnedList        // unpinned objects with a spill file: disk eviction candidates
)

// links are an entry's pointers in one list.
type links struct{ prev, next *entry }

// lruList is an intrusive doubly linked list of entries ordered by recency:
// the head is the most recently used, the tail the least. It also keeps
// the total size of its entries. Operations are O(1) and allocation-free.
// An entry can be in one memory list and in the disk list at once, through
// separate links.
type lruList struct {
	id         listID
	head, tail *entry
	len        int
	bytes      int64
}

func (l *lruList) init(id listID) { *l = lruList{id: id} }

func (l *lruList) links(e *entry) *links {
	if l.id == diskUnpinnedList {
		return &e.diskLinks
	}
	return &e.memLinks
}

func (l *lruList) setIn(e *entry, id listID) {
	if l.id == diskUnpinnedList {
		e.diskIn = id
	} else {
		e.memIn = id
	}
}

func (l *lruList) pushFront(e *entry) {
	ln := l.links(e)
	ln.prev, ln.next = nil, l.head
	if l.head != nil {
		l.links(l.head).prev = e
	} else {
		l.tail = e
	}
	l.head = e
	l.setIn(e, l.id)
	l.len++
	l.bytes += e.size
}

func (l *lruList) remove(e *entry) {
	ln := l.links(e)
	if ln.prev != nil {
		l.links(ln.prev).next = ln.next
	} else {
		l.head = ln.next
	}
	if ln.next != nil {
		l.links(ln.next).prev = ln.prev
	} else {
		l.tail = ln.prev
	}
	ln.prev, ln.next = nil, nil
	l.setIn(e, noList)
	l.len--
	l.bytes -= e.size
}

func (l *lruList) moveToFront(e *entry) {
	if l.head == e {
		return
	}
	l.remove(e)
	l.pushFront(e)
}

// back returns the least recently used entry, or nil when l is empty.
func (l *lruList) back() *entry { return l.tail }
