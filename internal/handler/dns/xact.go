package dns

// Open DNS transactions: a query waits here until its reply, its timeout, or eviction. The
// table is bounded (an attacker can send queries that are never answered), and expiry is in
// insertion order through a FIFO, so purging costs O(1) per query instead of a scan.

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
	seq   uint32
}

type fifoEntry struct {
	key xactKey
	ts  int64
	seq uint32
}

type xactTable struct {
	m       map[xactKey]xactVal
	fifo    []fifoEntry // circular
	head, n int
	seq     uint32
	max     int
	evicted uint64
}

func newXactTable(max int) *xactTable {
	return &xactTable{m: make(map[xactKey]xactVal), fifo: make([]fifoEntry, 1024), max: max}
}

func (t *xactTable) open() int { return len(t.m) }

// start records a query, replacing an open one with the same key (a retransmitted query
// restarts its clock, as in the reference).
func (t *xactTable) start(k xactKey, ts int64, qhash uint64, qsize int) {
	if t.n == len(t.fifo) {
		if len(t.fifo) < t.max {
			t.grow()
		} else {
			// Full: the oldest entry gives way.
			e := t.pop()
			if v, ok := t.m[e.key]; ok && v.seq == e.seq {
				delete(t.m, e.key)
				t.evicted++
			}
		}
	}
	t.seq++
	t.m[k] = xactVal{ts: ts, qhash: qhash, qsize: uint32(qsize), seq: t.seq}
	t.fifo[(t.head+t.n)%len(t.fifo)] = fifoEntry{key: k, ts: ts, seq: t.seq}
	t.n++
}

func (t *xactTable) grow() {
	nf := make([]fifoEntry, min(2*len(t.fifo), t.max))
	for i := range t.n {
		nf[i] = t.fifo[(t.head+i)%len(t.fifo)]
	}
	t.fifo, t.head = nf, 0
}

func (t *xactTable) pop() fifoEntry {
	e := t.fifo[t.head]
	t.head = (t.head + 1) % len(t.fifo)
	t.n--
	return e
}

// expire removes the queries started at or before deadline and returns how many were still
// open (unanswered: timed out).
func (t *xactTable) expire(deadline int64) uint64 {
	var timedOut uint64
	for t.n > 0 && t.fifo[t.head].ts <= deadline {
		e := t.pop()
		if v, ok := t.m[e.key]; ok && v.seq == e.seq {
			delete(t.m, e.key)
			timedOut++
		}
	}
	return timedOut
}

// end looks up the query of a reply and removes it. A reply whose question differs from the
// query's is not its answer (both must carry a question for the check to apply).
func (t *xactTable) end(k xactKey, qhash uint64) (xactVal, bool) {
	v, ok := t.m[k]
	if !ok {
		return v, false
	}
	if v.qhash != 0 && qhash != 0 && v.qhash != qhash {
		return v, false
	}
	delete(t.m, k)
	return v, true
}
