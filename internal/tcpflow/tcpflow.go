package tcpflow

import (
	"math/rand/v2"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// Defaults for the zero fields of Config.
const (
	// DefaultMaxFlows is the reference's tcp_packet_reassembly_cache_limit default.
	DefaultMaxFlows = 300000
	// DefaultIdleTimeout is the reference's TCP_TIMEOUT.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxSideBytes holds one maximal DNS message with its length prefix.
	DefaultMaxSideBytes = 64<<10 + 2
	// DefaultMaxTotalBytes bounds all buffers of one Reassembler together.
	DefaultMaxTotalBytes = 64 << 20
	// DefaultMaxOOOSegments bounds the separate runs of early data held per direction.
	DefaultMaxOOOSegments = 16
)

// MaxCleanups is how many least-recently-used flows each packet may inspect for idle expiry
// (the reference's MAX_TCP_CLEANUPS): enough to keep up with any arrival rate, yet O(1).
const MaxCleanups = 100

// minMessage is the size of a DNS header: a shorter message is not DNS, so the stream is not
// DNS-over-TCP (or we picked it up mid-message) and its framing cannot be trusted.
const minMessage = 12

// maxChain bounds a hash chain. With a load factor ≤ 1 and a seeded bucket index, a chain this
// long only arises from deliberate full 64-bit flow-hash collisions.
const maxChain = 16

// maxOOOSegments caps Config.MaxOOOSegments.
const maxOOOSegments = 256

// Config bounds a Reassembler. Zero (or negative) fields take the defaults above.
type Config struct {
	MaxFlows       int           // LRU cap on tracked connections (closed ones awaiting expiry included)
	IdleTimeout    time.Duration // by event time: a flow silent this long is dropped
	MaxSideBytes   int           // buffered bytes per direction (window for out-of-order data too)
	MaxTotalBytes  int           // buffer memory of all flows together; LRU flows are evicted beyond it
	MaxOOOSegments int           // separate runs of out-of-order data held per direction (≤ 256)
}

func (c Config) normalized() Config {
	if c.MaxFlows <= 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxSideBytes <= 0 {
		c.MaxSideBytes = DefaultMaxSideBytes
	}
	// A direction must at least hold a length prefix and a DNS header, and offsets are int32.
	c.MaxSideBytes = min(max(c.MaxSideBytes, 2+minMessage), 1<<30)
	if c.MaxOOOSegments <= 0 {
		c.MaxOOOSegments = DefaultMaxOOOSegments
	}
	// Inserting a run is linear in the runs held: keep that cheap.
	c.MaxOOOSegments = min(c.MaxOOOSegments, maxOOOSegments)
	if c.MaxTotalBytes <= 0 {
		c.MaxTotalBytes = DefaultMaxTotalBytes
	}
	// The flow being processed is never evicted to make room for itself, so the total must fit
	// both of its directions (buffers and span lists, which may be rounded up) whatever else is
	// held; then a buffer can always grow and ErrNoMemory stays 0.
	c.MaxTotalBytes = max(c.MaxTotalBytes, 4*(c.MaxSideBytes+8*(c.MaxOOOSegments+1)))
	return c
}

// Message is one reassembled DNS message.
type Message struct {
	// Data is the message without its length prefix. It points into the packet payload or into
	// a reassembly buffer and is valid only during the callback.
	Data []byte
	// Packet is the packet whose bytes completed the message: its timestamp is the message's
	// time (the reference wrongly used the first segment's).
	Packet *decode.Packet
	// FromClient is true for data sent by the connection's client (normally the queries).
	FromClient bool
}

// Stats are cumulative counters, except Flows, Open and BufferedBytes which are current values.
type Stats struct {
	Flows         int   // flows tracked now (open, plus closed ones kept until they age out)
	Open          int   // open connections tracked now
	BufferedBytes int64 // buffer capacity held now (in use and pooled), bounded by MaxTotalBytes

	Created  uint64 // connections started (first SYN or mid-stream pickup, or a new SYN on a tuple)
	Evicted  uint64 // open connections dropped to respect MaxFlows or MaxTotalBytes
	Expired  uint64 // open connections dropped after IdleTimeout of silence
	Closed   uint64 // connections ended by FIN/RST, replaced by a new SYN, or FlushAll
	Messages uint64 // DNS messages emitted

	// BytesDropped counts payload bytes discarded without being framed: data of broken
	// directions, segments beyond the window or the out-of-order limit, and partial data
	// pending when a flow ended. Retransmitted duplicates are not counted: nothing is lost.
	BytesDropped uint64

	ErrBadLength      uint64 // length prefix < 12 (not a DNS header): direction marked broken
	ErrOversize       uint64 // message larger than MaxSideBytes-2: direction marked broken
	ErrOutOfWindow    uint64 // early data beyond MaxSideBytes ahead of the first unframed byte
	ErrOOOOverflow    uint64 // early data needing more than MaxOOOSegments separate runs
	ErrEvictedPending uint64 // flows evicted or expired while holding partial data
	ErrNoMemory       uint64 // a buffer could not grow within MaxTotalBytes (defensive: stays 0)
}

// Errors is the sum of the error counters.
func (s Stats) Errors() uint64 {
	return s.ErrBadLength + s.ErrOversize + s.ErrOutOfWindow + s.ErrOOOOverflow +
		s.ErrEvictedPending + s.ErrNoMemory
}

// IsDNSPort reports whether port is one of the reference's DNS ports (53, 5353, 5355, 53000).
func IsDNSPort(port uint16) bool {
	return port == 53 || port == 5353 || port == 5355 || port == 53000
}

// Flow states.
const (
	stateFree uint8 = iota
	stateOpen
	stateClosed // tombstone: ignores stragglers until it ages out
)

// Side flags.
const (
	sideSeq    uint8 = 1 << iota // isn and nextSeq are known
	sideFin                      // FIN seen; finSeq valid
	sideBroken                   // framing failed: ignore this direction's data from now on
)

// side is one direction of a connection.
type side struct {
	nextSeq uint32 // sequence number of the first byte not yet received in order
	isn     uint32 // the SYN's sequence number, or first data byte - 1 on mid-stream pickup
	finSeq  uint32 // sequence number of the FIN
	pend    int32  // index+1 into Reassembler.pends; 0: nothing buffered
	flags   uint8
}

// done reports whether every byte this direction will send has been seen.
func (s *side) done() bool {
	return s.flags&sideFin != 0 && (s.flags&sideBroken != 0 || int32(s.nextSeq-s.finSeq) >= 0)
}

// flow is one tracked connection, oriented client→server.
type flow struct {
	hash         uint64
	lastTS       int64
	caddr, saddr [16]byte
	cport, sport uint16
	l3           decode.L3
	state        uint8
	prev, next   int32 // LRU list (head = most recent); -1 ends
	hnext        int32 // hash chain, or free list; -1 ends
	dir          [2]side
}

// Reassembler tracks TCP flows and emits DNS messages. It is not safe for concurrent use: each
// worker owns one. The emit callback must not call back into the Reassembler.
type Reassembler struct {
	cfg    Config
	emitFn func(*Message)
	msg    Message

	seed       uint64
	buckets    []int32 // chain heads, index+1 (0: empty)
	shift      uint8   // bucket = mix(hash^seed) >> shift
	maxBuckets int

	flows      []flow
	freeFlow   int32
	head, tail int32
	tracked    int
	open       int
	now        int64 // latest packet time seen
	cur        int32 // flow being processed: never evicted to make room

	pendArena
	st Stats
}

// New returns a Reassembler that calls emit for every complete message.
func New(cfg Config, emit func(m *Message)) *Reassembler {
	cfg = cfg.normalized()
	r := &Reassembler{
		cfg:      cfg,
		emitFn:   emit,
		seed:     rand.Uint64(),
		freeFlow: -1,
		head:     -1,
		tail:     -1,
		cur:      -1,
	}
	r.maxBuckets = 16
	for r.maxBuckets < cfg.MaxFlows {
		r.maxBuckets *= 2
	}
	r.setBuckets(min(1024, r.maxBuckets))
	r.pendArena.init()
	return r
}

// Stats returns the counters.
func (r *Reassembler) Stats() Stats {
	s := r.st
	s.Flows = r.tracked
	s.Open = r.open
	s.BufferedBytes = r.held
	return s
}

func dirIndex(fromClient bool) int {
	if fromClient {
		return 0
	}
	return 1
}

// Segment processes one TCP packet of any flags, with or without payload. flowHash must be
// p.FlowHash(). Packets that are not TCP, or non-first IP fragments, are ignored.
func (r *Reassembler) Segment(p *decode.Packet, flowHash uint64) {
	if p.L4 != decode.L4TCP || p.AddrLen() == 0 || (p.Fragment && p.FragOffset != 0) {
		return
	}
	if p.TS > r.now {
		r.now = p.TS
	}
	r.expireIdle()

	fl := p.TCPFlags
	rst := fl&decode.TCPRst != 0
	syn := fl&decode.TCPSyn != 0 && !rst
	fi, fromClient, chainLen, chainLast := r.lookup(p, flowHash)
	switch {
	case fi < 0:
		// Only a SYN or data starts tracking: a lone ACK, FIN or RST is the tail of a connection
		// we no longer (or never) track, and tracking it would only cost memory.
		if rst || (!syn && len(p.Payload) == 0) {
			return
		}
		fi, fromClient = r.create(p, flowHash, chainLen, chainLast)
	case r.flows[fi].state == stateClosed:
		if !syn {
			return
		}
		s := &r.flows[fi].dir[dirIndex(fromClient)]
		if s.flags&sideSeq != 0 && s.isn == p.TCPSeq {
			return // the closed connection's own SYN, retransmitted
		}
		fromClient = r.restart(fi, p)
	}
	r.touch(fi)

	d := dirIndex(fromClient)
	seq := p.TCPSeq
	if syn {
		s := &r.flows[fi].dir[d]
		if s.flags&sideSeq != 0 && s.isn != seq {
			// A different initial sequence number: the 5-tuple was reused by a new connection.
			fromClient = r.restart(fi, p)
			d = dirIndex(fromClient)
			s = &r.flows[fi].dir[d]
		}
		if s.flags&sideSeq == 0 {
			s.isn, s.nextSeq = seq, seq+1
			s.flags |= sideSeq
		}
		seq++ // the SYN occupies one sequence number
	}
	if len(p.Payload) > 0 {
		s := &r.flows[fi].dir[d]
		if s.flags&sideSeq == 0 { // mid-stream pickup: trust the first data we see
			s.isn, s.nextSeq = seq-1, seq
			s.flags |= sideSeq
		}
		r.cur = fi
		r.data(fi, d, seq, p.Payload, p)
		r.cur = -1
	}
	f := &r.flows[fi]
	if fl&decode.TCPFin != 0 && !rst {
		s := &f.dir[d]
		end := seq + uint32(len(p.Payload))
		if s.flags&sideSeq == 0 {
			s.isn, s.nextSeq = seq-1, end
			s.flags |= sideSeq
		}
		s.finSeq = end
		s.flags |= sideFin
	}
	if rst || (f.dir[0].done() && f.dir[1].done()) {
		r.closeFlow(fi)
	}
}

// ExpireIdle drops every flow silent for IdleTimeout as of nowNs (event time), however many:
// the input calls it at each period shift and at the end, so idle expiry (and the errors it
// counts for flows dropped with pending data) lands in the same period whichever worker, or
// however few packets, saw the flow.
func (r *Reassembler) ExpireIdle(nowNs int64) {
	if nowNs > r.now {
		r.now = nowNs
	}
	idle := int64(r.cfg.IdleTimeout)
	for r.tail >= 0 && r.now-r.flows[r.tail].lastTS >= idle {
		r.removeFlow(r.tail, removeExpire)
	}
}

// FlushAll ends the input: every flow is closed (partial messages are dropped and counted in
// BytesDropped) and forgotten.
func (r *Reassembler) FlushAll() {
	for r.tail >= 0 {
		fi := r.tail
		if r.flows[fi].state == stateOpen {
			r.closeFlow(fi)
		}
		r.removeFlow(fi, removeQuiet)
	}
}

func (r *Reassembler) emit(data []byte, fromClient bool, p *decode.Packet) {
	r.st.Messages++
	r.msg = Message{Data: data, Packet: p, FromClient: fromClient}
	r.emitFn(&r.msg)
}

// clientIsSender decides who the client of a new connection is: the sender of a SYN (the
// receiver of a SYN-ACK), else the side talking to a DNS port, else the first sender.
func clientIsSender(p *decode.Packet) bool {
	if p.TCPFlags&decode.TCPSyn != 0 {
		return p.TCPFlags&decode.TCPAck == 0
	}
	sd, dd := IsDNSPort(p.SrcPort), IsDNSPort(p.DstPort)
	if sd != dd {
		return dd
	}
	return true
}

// orient stores the 5-tuple of p in f, client first.
func orient(f *flow, p *decode.Packet) bool {
	c := clientIsSender(p)
	if c {
		f.caddr, f.cport, f.saddr, f.sport = p.Src, p.SrcPort, p.Dst, p.DstPort
	} else {
		f.caddr, f.cport, f.saddr, f.sport = p.Dst, p.DstPort, p.Src, p.SrcPort
	}
	f.l3 = p.L3
	return c
}

// create starts tracking the connection of p and returns its index and p's direction.
func (r *Reassembler) create(p *decode.Packet, h uint64, chainLen int, chainLast int32) (int32, bool) {
	if chainLen >= maxChain {
		r.removeFlow(chainLast, removeEvict)
	}
	if r.tracked >= r.cfg.MaxFlows {
		r.removeFlow(r.tail, removeEvict)
	}
	if r.tracked >= len(r.buckets) && len(r.buckets) < r.maxBuckets {
		r.setBuckets(2 * len(r.buckets))
	}
	var fi int32
	if r.freeFlow >= 0 {
		fi = r.freeFlow
		r.freeFlow = r.flows[fi].hnext
	} else {
		fi = int32(len(r.flows))
		r.flows = append(r.flows, flow{})
	}
	f := &r.flows[fi]
	*f = flow{hash: h, state: stateOpen, prev: -1, next: -1}
	fromClient := orient(f, p)
	b := r.bucket(h)
	f.hnext = r.buckets[b] - 1
	r.buckets[b] = fi + 1
	r.lruPushHead(fi)
	r.tracked++
	r.open++
	r.st.Created++
	return fi, fromClient
}

// restart replaces the connection at fi by the new one that the SYN p opens.
func (r *Reassembler) restart(fi int32, p *decode.Packet) bool {
	f := &r.flows[fi]
	if f.state == stateOpen {
		r.closeFlow(fi)
	}
	f.dir = [2]side{}
	f.state = stateOpen
	r.open++
	r.st.Created++
	return orient(f, p)
}

// closeFlow ends an open connection but keeps it as a tombstone until it ages out.
func (r *Reassembler) closeFlow(fi int32) {
	f := &r.flows[fi]
	r.dropPending(fi, 0)
	r.dropPending(fi, 1)
	f.state = stateClosed
	r.open--
	r.st.Closed++
}

// Reasons for removeFlow.
const (
	removeQuiet  = iota // counted elsewhere (FlushAll)
	removeEvict         // capacity
	removeExpire        // idle
)

// removeFlow forgets the flow at fi and frees its slot.
func (r *Reassembler) removeFlow(fi int32, why int) {
	f := &r.flows[fi]
	if f.state == stateOpen {
		if r.dropPending(fi, 0)+r.dropPending(fi, 1) > 0 {
			r.st.ErrEvictedPending++
		}
		switch why {
		case removeEvict:
			r.st.Evicted++
		case removeExpire:
			r.st.Expired++
		}
		r.open--
	}
	// Unlink from the hash chain.
	b := r.bucket(f.hash)
	if r.buckets[b]-1 == fi {
		r.buckets[b] = f.hnext + 1
	} else {
		for i := r.buckets[b] - 1; i >= 0; i = r.flows[i].hnext {
			if r.flows[i].hnext == fi {
				r.flows[i].hnext = f.hnext
				break
			}
		}
	}
	r.lruUnlink(fi)
	f.state = stateFree
	f.hnext = r.freeFlow
	r.freeFlow = fi
	r.tracked--
}

// expireIdle drops up to MaxCleanups flows silent for IdleTimeout of event time.
func (r *Reassembler) expireIdle() {
	idle := int64(r.cfg.IdleTimeout)
	for i := 0; i < MaxCleanups && r.tail >= 0; i++ {
		if r.now-r.flows[r.tail].lastTS < idle {
			return
		}
		r.removeFlow(r.tail, removeExpire)
	}
}

// mix is the SplitMix64 finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (r *Reassembler) bucket(h uint64) uint64 { return mix(h^r.seed) >> r.shift }

// setBuckets resizes the chain heads to n (a power of two) and rehashes every tracked flow.
func (r *Reassembler) setBuckets(n int) {
	r.buckets = make([]int32, n)
	bits := uint8(0)
	for 1<<bits < n {
		bits++
	}
	r.shift = 64 - bits
	for fi := r.head; fi >= 0; fi = r.flows[fi].next {
		f := &r.flows[fi]
		b := r.bucket(f.hash)
		f.hnext = r.buckets[b] - 1
		r.buckets[b] = fi + 1
	}
}

// lookup finds p's flow; it also reports the chain's length and last (oldest) member so that
// create can enforce maxChain without a second walk.
func (r *Reassembler) lookup(p *decode.Packet, h uint64) (fi int32, fromClient bool, n int, last int32) {
	last = -1
	for i := r.buckets[r.bucket(h)] - 1; i >= 0; i = r.flows[i].hnext {
		f := &r.flows[i]
		n++
		last = i
		if f.hash != h || f.l3 != p.L3 {
			continue
		}
		if f.cport == p.SrcPort && f.sport == p.DstPort && f.caddr == p.Src && f.saddr == p.Dst {
			return i, true, n, last
		}
		if f.sport == p.SrcPort && f.cport == p.DstPort && f.saddr == p.Src && f.caddr == p.Dst {
			return i, false, n, last
		}
	}
	return -1, false, n, last
}

func (r *Reassembler) lruPushHead(fi int32) {
	f := &r.flows[fi]
	f.prev, f.next = -1, r.head
	if r.head >= 0 {
		r.flows[r.head].prev = fi
	} else {
		r.tail = fi
	}
	r.head = fi
}

func (r *Reassembler) lruUnlink(fi int32) {
	f := &r.flows[fi]
	if f.prev >= 0 {
		r.flows[f.prev].next = f.next
	} else {
		r.head = f.next
	}
	if f.next >= 0 {
		r.flows[f.next].prev = f.prev
	} else {
		r.tail = f.prev
	}
	f.prev, f.next = -1, -1
}

// touch marks fi as used now.
func (r *Reassembler) touch(fi int32) {
	r.flows[fi].lastTS = r.now
	if r.head != fi {
		r.lruUnlink(fi)
		r.lruPushHead(fi)
	}
}
