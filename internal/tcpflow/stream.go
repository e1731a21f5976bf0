package tcpflow

import "github.com/pktvisor-go/pktvisor/internal/decode"

// span is a run of early (out-of-order) bytes held in a pend buffer: offsets [start, end).
type span struct{ start, end int32 }

// pend is the buffer of one direction: buf[:contig] holds the bytes received in order but not
// yet framed (at most one partial message, by invariant); beyond contig, buf holds early data
// at its final offset, where spans says, with unfilled gaps between.
type pend struct {
	buf    []byte
	spans  []span
	contig int
	owner  int32 // flow index
	dir    uint8
	prev   int32 // LRU of pends in use (head = most recent); -1 ends
	next   int32 // same, or the free stacks
}

// pendArena pools the pends and their buffers. Pends in use form an LRU list, so that the
// flows holding the least recently used buffers are the ones evicted to respect MaxTotalBytes.
type pendArena struct {
	pends              []pend
	pendHead, pendTail int32
	freeBuf            int32 // free pends that still own a buffer (reused first)
	freeEmpty          int32 // free pends without a buffer
	held               int64 // capacity of every buffer and span list, in use or free
}

func (a *pendArena) init() {
	a.pendHead, a.pendTail, a.freeBuf, a.freeEmpty = -1, -1, -1, -1
}

func (a *pendArena) pendPushHead(i int32) {
	pd := &a.pends[i]
	pd.prev, pd.next = -1, a.pendHead
	if a.pendHead >= 0 {
		a.pends[a.pendHead].prev = i
	} else {
		a.pendTail = i
	}
	a.pendHead = i
}

func (a *pendArena) pendUnlink(i int32) {
	pd := &a.pends[i]
	if pd.prev >= 0 {
		a.pends[pd.prev].next = pd.next
	} else {
		a.pendHead = pd.next
	}
	if pd.next >= 0 {
		a.pends[pd.next].prev = pd.prev
	} else {
		a.pendTail = pd.prev
	}
}

func (a *pendArena) pendTouch(i int32) {
	if a.pendHead != i {
		a.pendUnlink(i)
		a.pendPushHead(i)
	}
}

// acquire gives direction d of flow fi an empty pend and returns its index. It may grow the
// arena, which invalidates *pend pointers.
func (r *Reassembler) acquire(fi int32, d int) int32 {
	var i int32
	switch {
	case r.freeBuf >= 0:
		i = r.freeBuf
		r.freeBuf = r.pends[i].next
	case r.freeEmpty >= 0:
		i = r.freeEmpty
		r.freeEmpty = r.pends[i].next
	default:
		i = int32(len(r.pends))
		r.pends = append(r.pends, pend{})
	}
	pd := &r.pends[i]
	pd.buf, pd.spans, pd.contig = pd.buf[:0], pd.spans[:0], 0
	pd.owner, pd.dir = fi, uint8(d)
	r.pendPushHead(i)
	r.flows[fi].dir[d].pend = i + 1
	return i
}

// release returns direction d's pend (if any) to the pool and reports how many received bytes
// it held.
func (r *Reassembler) release(fi int32, d int) int {
	s := &r.flows[fi].dir[d]
	if s.pend == 0 {
		return 0
	}
	i := s.pend - 1
	s.pend = 0
	pd := &r.pends[i]
	n := pd.contig
	for _, sp := range pd.spans {
		n += int(sp.end - sp.start)
	}
	r.pendUnlink(i)
	if cap(pd.buf) > 0 {
		pd.next = r.freeBuf
		r.freeBuf = i
	} else {
		pd.next = r.freeEmpty
		r.freeEmpty = i
	}
	return n
}

// dropPending releases direction d's pend, counting what it held as dropped.
func (r *Reassembler) dropPending(fi int32, d int) int {
	n := r.release(fi, d)
	r.st.BytesDropped += uint64(n)
	return n
}

// breakSide gives up on direction d: its framing can no longer be trusted.
func (r *Reassembler) breakSide(fi int32, d int, dropped int) {
	r.flows[fi].dir[d].flags |= sideBroken
	r.st.BytesDropped += uint64(dropped)
	r.dropPending(fi, d)
}

// charge accounts delta more bytes of buffer memory, first trimming the pool and then evicting
// the flows with the least recently used buffers (never the flow being processed).
func (r *Reassembler) charge(delta int64) bool {
	limit := int64(r.cfg.MaxTotalBytes)
	for r.held+delta > limit {
		if i := r.freeBuf; i >= 0 {
			pd := &r.pends[i]
			r.freeBuf = pd.next
			r.held -= int64(cap(pd.buf)) + int64(cap(pd.spans))*8
			pd.buf, pd.spans = nil, nil
			pd.next = r.freeEmpty
			r.freeEmpty = i
			continue
		}
		victim := int32(-1)
		for i := r.pendTail; i >= 0; i = r.pends[i].prev {
			if r.pends[i].owner != r.cur {
				victim = r.pends[i].owner
				break
			}
		}
		if victim < 0 {
			return false
		}
		r.removeFlow(victim, removeEvict)
	}
	r.held += delta
	return true
}

// reserve makes pend i able to hold n bytes, growing its buffer progressively (so that a
// claimed length costs memory only once the bytes actually arrive).
func (r *Reassembler) reserve(i int32, n int) bool {
	old := cap(r.pends[i].buf)
	if n <= old {
		return true
	}
	c := max(old, 256)
	for c < n {
		c *= 2
	}
	c = min(c, r.cfg.MaxSideBytes)
	if !r.charge(int64(c - old)) {
		return false
	}
	pd := &r.pends[i]
	nb := make([]byte, len(pd.buf), c)
	copy(nb, pd.buf)
	pd.buf = nb
	return true
}

// validLen checks a length prefix, counting the error that breaks the direction.
func (r *Reassembler) validLen(l int) bool {
	if l < minMessage {
		r.st.ErrBadLength++
		return false
	}
	if 2+l > r.cfg.MaxSideBytes {
		r.st.ErrOversize++
		return false
	}
	return true
}

// frame emits every complete message at the front of b and returns the bytes consumed; ok is
// false when a length prefix is invalid (b[n:] starts with it).
func (r *Reassembler) frame(b []byte, fromClient bool, p *decode.Packet) (n int, ok bool) {
	for {
		rest := b[n:]
		if len(rest) < 2 {
			return n, true
		}
		l := int(rest[0])<<8 | int(rest[1])
		if !r.validLen(l) {
			return n, false
		}
		if len(rest) < 2+l {
			return n, true
		}
		r.emit(rest[2:2+l], fromClient, p)
		n += 2 + l
	}
}

// data handles payload b at sequence number seq in direction d of flow fi.
func (r *Reassembler) data(fi int32, d int, seq uint32, b []byte, p *decode.Packet) {
	for len(b) > 0 {
		s := &r.flows[fi].dir[d]
		if s.flags&sideBroken != 0 {
			r.st.BytesDropped += uint64(len(b))
			return
		}
		off := int64(int32(seq - s.nextSeq))
		if off < 0 { // retransmitted or overlapping: never deliver a byte twice
			if -off >= int64(len(b)) {
				return
			}
			b = b[-off:]
			seq = s.nextSeq
			off = 0
		}
		if off > 0 {
			r.hold(fi, d, off, b)
			return
		}
		n := r.inOrder(fi, d, b, p)
		b = b[n:]
		seq += uint32(n)
	}
}

// inOrder consumes a prefix of b, which starts at the next expected byte, and returns its
// length (at least 1).
func (r *Reassembler) inOrder(fi int32, d int, b []byte, p *decode.Packet) int {
	fromClient := d == 0
	s := &r.flows[fi].dir[d]
	if s.pend == 0 {
		// Fast path: emit whole messages straight from the payload, copy only a partial tail.
		n, ok := r.frame(b, fromClient, p)
		if !ok {
			r.breakSide(fi, d, len(b)-n)
			return len(b)
		}
		s.nextSeq += uint32(len(b))
		if tail := b[n:]; len(tail) > 0 {
			i := r.acquire(fi, d)
			if !r.reserve(i, len(tail)) {
				r.st.ErrNoMemory++
				r.breakSide(fi, d, len(tail))
				return len(b)
			}
			pd := &r.pends[i]
			pd.buf = append(pd.buf, tail...)
			pd.contig = len(tail)
		}
		return len(b)
	}

	i := s.pend - 1
	r.pendTouch(i)
	if len(r.pends[i].spans) == 0 {
		// Complete the partial message at the front of the buffer, then return to the fast path.
		c := r.pends[i].contig
		want := 2
		if c >= 2 {
			want = 2 + (int(r.pends[i].buf[0])<<8 | int(r.pends[i].buf[1]))
		}
		take := min(want-c, len(b))
		if !r.reserve(i, c+take) {
			r.st.ErrNoMemory++
			r.breakSide(fi, d, len(b))
			return len(b)
		}
		pd := &r.pends[i]
		pd.buf = append(pd.buf, b[:take]...)
		pd.contig += take
		s.nextSeq += uint32(take)
		if pd.contig == 2 && want == 2 {
			if !r.validLen(int(pd.buf[0])<<8 | int(pd.buf[1])) {
				r.breakSide(fi, d, len(b)-take)
				return len(b)
			}
		} else if pd.contig == want {
			r.emit(pd.buf[2:want], fromClient, p)
			r.release(fi, d)
		}
		return take
	}

	// Early data is held: write b in place, absorb the spans it joins, frame, compact.
	pd := &r.pends[i]
	k := min(len(b), r.cfg.MaxSideBytes-pd.contig) // ≥ 1: contig < one message ≤ MaxSideBytes
	end := pd.contig + k
	if end > len(pd.buf) {
		if !r.reserve(i, end) {
			r.st.ErrNoMemory++
			r.breakSide(fi, d, len(b))
			return len(b)
		}
		pd = &r.pends[i]
		pd.buf = pd.buf[:end]
	}
	copy(pd.buf[pd.contig:end], b[:k])
	old := pd.contig
	pd.contig = end
	j := 0
	for j < len(pd.spans) && int(pd.spans[j].start) <= pd.contig {
		pd.contig = max(pd.contig, int(pd.spans[j].end))
		j++
	}
	pd.spans = pd.spans[:copy(pd.spans, pd.spans[j:])]
	s.nextSeq += uint32(pd.contig - old)
	n, ok := r.frame(pd.buf[:pd.contig], fromClient, p)
	if !ok {
		r.breakSide(fi, d, len(b)-k)
		return len(b)
	}
	if n > 0 {
		rest := copy(pd.buf, pd.buf[n:])
		pd.buf = pd.buf[:rest]
		pd.contig -= n
		for j := range pd.spans {
			pd.spans[j].start -= int32(n)
			pd.spans[j].end -= int32(n)
		}
	}
	if len(pd.buf) == 0 && len(pd.spans) == 0 {
		r.release(fi, d)
	}
	return k
}

// hold keeps early data b, which starts off bytes after the next expected byte.
func (r *Reassembler) hold(fi int32, d int, off int64, b []byte) {
	s := &r.flows[fi].dir[d]
	contig := 0
	if s.pend != 0 {
		contig = r.pends[s.pend-1].contig
	}
	o := int64(contig) + off
	limit := int64(r.cfg.MaxSideBytes)
	if o >= limit {
		r.st.ErrOutOfWindow++
		r.st.BytesDropped += uint64(len(b))
		return
	}
	if o+int64(len(b)) > limit {
		r.st.ErrOutOfWindow++
		r.st.BytesDropped += uint64(o + int64(len(b)) - limit)
		b = b[:limit-o]
	}
	start, end := int32(o), int32(o)+int32(len(b))

	var i int32
	if s.pend == 0 {
		i = r.acquire(fi, d)
	} else {
		i = s.pend - 1
		r.pendTouch(i)
	}
	pd := &r.pends[i]
	// Spans [lo, hi) overlap or touch the new one and merge with it.
	lo := 0
	for lo < len(pd.spans) && pd.spans[lo].end < start {
		lo++
	}
	hi := lo
	for hi < len(pd.spans) && pd.spans[hi].start <= end {
		hi++
	}
	if lo == hi && len(pd.spans) >= r.cfg.MaxOOOSegments {
		r.st.ErrOOOOverflow++
		r.st.BytesDropped += uint64(len(b))
		if pd.contig == 0 && len(pd.spans) == 0 {
			r.release(fi, d)
		}
		return
	}
	if cap(pd.spans) == 0 {
		n := r.cfg.MaxOOOSegments + 1
		if !r.charge(int64(n) * 8) {
			r.st.ErrNoMemory++
			r.breakSide(fi, d, len(b))
			return
		}
		pd = &r.pends[i]
		pd.spans = make([]span, 0, n)
	}
	if int(end) > len(pd.buf) {
		if !r.reserve(i, int(end)) {
			r.st.ErrNoMemory++
			r.breakSide(fi, d, len(b))
			return
		}
		pd = &r.pends[i]
		pd.buf = pd.buf[:end]
	}
	copy(pd.buf[start:end], b)
	if lo == hi {
		pd.spans = append(pd.spans, span{})
		copy(pd.spans[lo+1:], pd.spans[lo:])
		pd.spans[lo] = span{start, end}
	} else {
		merged := span{min(start, pd.spans[lo].start), max(end, pd.spans[hi-1].end)}
		pd.spans[lo] = merged
		pd.spans = append(pd.spans[:lo+1], pd.spans[hi:]...)
	}
}
