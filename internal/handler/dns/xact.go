package dns

// Open DNS transactions: a query waits here until its reply, its timeout, or eviction.
//
// The table is one open-addressing array (linear probing on a mixed key, backward-shift
// deletion) holding the queries themselves: one memory access per lookup, no Go map, no
// allocation once grown. Its size follows the number of open queries (doubling, at most
// MaxOpenXacts live entries): an attacker sending queries that are never answered fills it up
// to the bound, after which a new query evicts an old one (counted apart, not as a timeout).
//
// Expiry is incremental: every message advances a sweep cursor over a few slots and removes
// the queries whose TTL has elapsed; a reply that comes after the TTL is a timeout too; and at
// each period shift and at the end of the input the whole table is swept. So every unanswered
// query counts once as timed out, in the period in which its TTL elapsed, whatever the number
// of workers.

// MaxOpenXacts bounds the open transactions of one handler instance (one worker).
const MaxOpenXacts = 1 << 18

// sweepStep is how many slots each message sweeps, on average: enough to stay ahead of
// insertions (at most one per message) in a table kept at most half full. The sweep runs every
// sweepEvery messages, over sweepEvery·sweepStep slots, so its loop costs less per message.
const (
	sweepStep  = 4
	sweepEvery = 8
)

type xactKey struct {
	flow uint64
	id   uint16
}

type xactVal struct {
	ts    int64
	qhash uint64 // hash of the question (name, type); 0 = no question
	qsize uint32
}

type xslot struct {
	flow  uint64
	qhash uint64
	ts    int64
	qsize uint32
	id    uint16
	used  bool
}

type xactTable struct {
	slots   []xslot // power of two, at most half full
	live    int
	max     int
	cursor  int
	evicted uint64
}

func newXactTable(max int) *xactTable {
	return &xactTable{slots: make([]xslot, 1024), max: max}
}

func (t *xactTable) open() int { return t.live }

func keyHash(flow uint64, id uint16) uint64 {
	x := flow ^ uint64(id)*0x9e3779b97f4a7c15
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return x
}

// find returns the slot holding key, or -1.
func (t *xactTable) find(k xactKey) int {
	mask := len(t.slots) - 1
	for i := int(keyHash(k.flow, k.id)) & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if !s.used {
			return -1
		}
		if s.flow == k.flow && s.id == k.id {
			return i
		}
	}
}

func (t *xactTable) insert(s xslot) {
	mask := len(t.slots) - 1
	i := int(keyHash(s.flow, s.id)) & mask
	for t.slots[i].used {
		i = (i + 1) & mask
	}
	t.slots[i] = s
}

// remove empties slot i, shifting back the entries of its probe run.
func (t *xactTable) remove(i int) {
	mask := len(t.slots) - 1
	for j := (i + 1) & mask; t.slots[j].used; j = (j + 1) & mask {
		home := int(keyHash(t.slots[j].flow, t.slots[j].id)) & mask
		// Move slot j to i unless its home lies cyclically in (i, j].
		if (i < j && i < home && home <= j) || (i > j && (i < home || home <= j)) {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = xslot{}
	t.live--
}

func (t *xactTable) grow() {
	old := t.slots
	t.slots = make([]xslot, 2*len(old))
	t.cursor = 0
	for _, s := range old {
		if s.used {
			t.insert(s)
		}
	}
}

// start records a query, replacing an open one with the same key (a retransmitted query
// restarts its clock, as in the reference).
func (t *xactTable) start(k xactKey, ts int64, qhash uint64, qsize int) {
	s := xslot{flow: k.flow, id: k.id, ts: ts, qhash: qhash, qsize: uint32(qsize), used: true}
	if i := t.find(k); i >= 0 {
		t.slots[i] = s
		return
	}
	if t.live >= t.max {
		t.evictOne()
	}
	if 2*(t.live+1) > len(t.slots) {
		t.grow()
	}
	t.insert(s)
	t.live++
}

// evictOne drops the next open query after the sweep cursor to make room.
func (t *xactTable) evictOne() {
	mask := len(t.slots) - 1
	for !t.slots[t.cursor].used {
		t.cursor = (t.cursor + 1) & mask
	}
	t.remove(t.cursor)
	t.evicted++
}

// sweep moves the cursor over up to n slots (n ≤ 0: the whole table) and removes the queries
// started at or before deadline, returning how many (they timed out).
func (t *xactTable) sweep(deadline int64, n int) uint64 {
	if t.live == 0 {
		return 0
	}
	if n <= 0 || n > len(t.slots) {
		n = len(t.slots)
	}
	var timedOut uint64
	mask := len(t.slots) - 1
	for n > 0 && t.live > 0 {
		s := &t.slots[t.cursor]
		if s.used && s.ts <= deadline {
			// The backward shift may move another entry into this slot: look at it again.
			t.remove(t.cursor)
			timedOut++
			continue
		}
		t.cursor = (t.cursor + 1) & mask
		n--
	}
	return timedOut
}

// endResult says what became of a reply.
type endResult uint8

const (
	endNone    endResult = iota // no open query with that key (and question)
	endMatched                  // the reply answers an open query in time
	endExpired                  // it answers a query whose TTL had elapsed: a timeout
)

// end looks up the query of a reply and removes it. A reply whose question differs from the
// query's is not its answer (both must carry a question for the check to apply). A reply to a
// query started at or before deadline comes too late.
func (t *xactTable) end(k xactKey, qhash uint64, deadline int64) (xactVal, endResult) {
	i := t.find(k)
	if i < 0 {
		return xactVal{}, endNone
	}
	s := t.slots[i]
	if s.qhash != 0 && qhash != 0 && s.qhash != qhash {
		return xactVal{}, endNone
	}
	t.remove(i)
	if s.ts <= deadline {
		return xactVal{}, endExpired
	}
	return xactVal{ts: s.ts, qhash: s.qhash, qsize: s.qsize}, endMatched
}
