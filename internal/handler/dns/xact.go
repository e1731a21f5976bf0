package dns

// Open DNS transactions: a query waits here until its reply, its timeout, or eviction. The
// table is bounded (an attacker can send queries that are never answered). Queries sit in a
// ring in arrival order, so expiry pops the oldest in O(1); an open-addressing index (linear
// probing on a mixed key, backward-shift deletion) finds a query by key. Both grow by doubling
// up to the bound and are reused, so a steady state allocates nothing, and there is no Go map
// on the per-message path.

// MaxOpenXacts bounds the open transactions of one handler instance (one worker).
const MaxOpenXacts = 1 << 18

type xactKey struct {
	flow uint64
	id   uint16
}

type xactVal struct {
	ts    int64
	qhash uint64 // hash of the question (name, type); 0 = no question
	qsize uint32
}

type xactEntry struct {
	key  xactKey
	hash uint64 // of key, for the index
	xactVal
	live bool // false once answered, expired or replaced
}

type xactTable struct {
	ring    []xactEntry // circular; entry of sequence number s at s & (len-1)
	head    uint64      // sequence number of the oldest entry
	n       int         // entries in the ring, live or not
	slots   []uint64    // index: 0 = empty, else sequence number + 1
	live    int
	max     int
	evicted uint64
}

func newXactTable(max int) *xactTable {
	return &xactTable{ring: make([]xactEntry, 1024), slots: make([]uint64, 2048), max: max}
}

func (t *xactTable) open() int { return t.live }

func keyHash(k xactKey) uint64 {
	x := k.flow ^ uint64(k.id)*0x9e3779b97f4a7c15
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return x
}

func (t *xactTable) entry(seq uint64) *xactEntry { return &t.ring[seq&uint64(len(t.ring)-1)] }

// find returns the index slot holding key, or -1.
func (t *xactTable) find(k xactKey, h uint64) int {
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if e := t.entry(s - 1); e.hash == h && e.key == k {
			return int(i)
		}
	}
}

func (t *xactTable) insertSlot(h, seq uint64) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = seq + 1
}

// deleteSlot empties slot i, shifting back the entries of its probe run.
func (t *xactTable) deleteSlot(i int) {
	mask := len(t.slots) - 1
	for j := (i + 1) & mask; t.slots[j] != 0; j = (j + 1) & mask {
		home := int(t.entry(t.slots[j]-1).hash) & mask
		// Move slot j to i unless its home lies cyclically in (i, j].
		if (i < j && (i < home && home <= j)) || (i > j && (i < home || home <= j)) {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = 0
}

// kill ends a live entry: its index slot goes, the ring entry stays until popped.
func (t *xactTable) kill(e *xactEntry) {
	if i := t.find(e.key, e.hash); i >= 0 {
		t.deleteSlot(i)
	}
	e.live = false
	t.live--
}

func (t *xactTable) pop() *xactEntry {
	e := t.entry(t.head)
	t.head++
	t.n--
	return e
}

// growRing doubles the ring; sequence numbers, and so the index, stay valid.
func (t *xactTable) growRing() {
	nr := make([]xactEntry, 2*len(t.ring))
	for s := t.head; s < t.head+uint64(t.n); s++ {
		nr[s&uint64(len(nr)-1)] = *t.entry(s)
	}
	t.ring = nr
}

// growSlots doubles the index and re-inserts the live entries.
func (t *xactTable) growSlots() {
	t.slots = make([]uint64, 2*len(t.slots))
	for s := t.head; s < t.head+uint64(t.n); s++ {
		if e := t.entry(s); e.live {
			t.insertSlot(e.hash, s)
		}
	}
}

// start records a query, replacing an open one with the same key (a retransmitted query
// restarts its clock, as in the reference).
func (t *xactTable) start(k xactKey, ts int64, qhash uint64, qsize int) {
	h := keyHash(k)
	if i := t.find(k, h); i >= 0 {
		t.entry(t.slots[i] - 1).live = false
		t.deleteSlot(i)
		t.live--
	}
	if t.n == len(t.ring) {
		if len(t.ring) < t.max {
			t.growRing()
		} else {
			// Full: the oldest entry gives way.
			if e := t.pop(); e.live {
				t.kill(e)
				t.evicted++
			}
		}
	}
	if 2*(t.live+1) > len(t.slots) {
		t.growSlots()
	}
	seq := t.head + uint64(t.n)
	*t.entry(seq) = xactEntry{key: k, hash: h, xactVal: xactVal{ts: ts, qhash: qhash, qsize: uint32(qsize)}, live: true}
	t.n++
	t.live++
	t.insertSlot(h, seq)
}

// expire removes the queries started at or before deadline and returns how many were still
// open (unanswered: timed out).
func (t *xactTable) expire(deadline int64) uint64 {
	var timedOut uint64
	for t.n > 0 {
		e := t.entry(t.head)
		if e.live && e.ts > deadline {
			break
		}
		t.pop()
		if e.live {
			t.kill(e)
			timedOut++
		}
	}
	return timedOut
}

// end looks up the query of a reply and removes it. A reply whose question differs from the
// query's is not its answer (both must carry a question for the check to apply).
func (t *xactTable) end(k xactKey, qhash uint64) (xactVal, bool) {
	h := keyHash(k)
	i := t.find(k, h)
	if i < 0 {
		return xactVal{}, false
	}
	e := t.entry(t.slots[i] - 1)
	if e.qhash != 0 && qhash != 0 && e.qhash != qhash {
		return xactVal{}, false
	}
	t.deleteSlot(i)
	e.live = false
	t.live--
	return e.xactVal, true
}
