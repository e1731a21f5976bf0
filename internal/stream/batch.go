package stream

import (
	"sync"

	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
)

// Hand-off between the dispatcher and the workers goes in batches of compact records: the raw
// frame is copied into the batch's arena and the worker decodes it again (about 20 ns, in its
// own cache) instead of receiving the ~200-byte decoded Packet: what crosses between cores is
// what costs (every cache line the dispatcher writes was last read by the worker's core).
// Batches are recycled through a free list per worker, so steady state allocates nothing.
// Large batches matter too: each hand-off may park and wake a goroutine.

const (
	batchRecords = 2048
	batchBytes   = 512 << 10
	queueDepth   = 4
)

// slim is a packet in a batch.
type slim struct {
	ts              int64
	flowHash        uint64
	off, n          uint32 // the frame in the arena; for a reassembled datagram, its index in fulls
	capLen, wireLen int32
	rnd             uint32
	link            decode.LinkType
	dir             hostspec.Direction
	netOnly         bool
	dnsOnly         bool
	dnstap          bool // a dnstap frame (off, n), not a link-layer frame
}

type batch struct {
	recs  []slim
	arena []byte
	fulls []decode.Packet // datagrams reassembled from fragments (not frames), payload in arena
	sync  bool            // a barrier marker: the worker acknowledges and waits for the next batch
}

func (s *Stream) startWorkers() {
	n := len(s.workers)
	s.queues = make([]chan *batch, n)
	s.free = make([]chan *batch, n)
	s.pending = make([]*batch, n)
	for i := range n {
		s.queues[i] = make(chan *batch, queueDepth)
		s.free[i] = make(chan *batch, queueDepth+2)
		for range queueDepth + 2 {
			s.free[i] <- &batch{recs: make([]slim, 0, batchRecords), arena: make([]byte, 0, batchBytes)}
		}
		s.wg.Add(1)
		go runWorker(s.workers[i], s.queues[i], s.free[i], &s.barrier, &s.wg)
	}
	qs := s.queues
	s.published.Store(&qs)
}

// runWorker is a worker goroutine. It touches only its worker, its channels and the batches
// (not the Stream, whose fields the dispatcher writes).
func runWorker(w *worker, queue <-chan *batch, free chan<- *batch, barrier, done *sync.WaitGroup) {
	defer done.Done()
	for b := range queue {
		if b.sync {
			barrier.Done()
			continue
		}
		for j := range b.recs {
			w.processSlim(b, &b.recs[j])
		}
		b.recs = b.recs[:0]
		b.arena = b.arena[:0]
		b.fulls = b.fulls[:0]
		free <- b
	}
}

func (s *Stream) stopWorkers() {
	for _, q := range s.queues {
		close(q)
	}
	s.wg.Wait()
}

func (s *Stream) enqueue(wi int, p *decode.Packet, frame []byte, link decode.LinkType, dir hostspec.Direction, flowHash uint64, rnd uint32, netOnly, dnsOnly bool) {
	data := frame
	if dnsOnly {
		data = p.Payload
	}
	b := s.pending[wi]
	if b == nil {
		b = <-s.free[wi]
		s.pending[wi] = b
	}
	if len(b.recs) == cap(b.recs) || len(b.arena)+len(data) > cap(b.arena) {
		s.queues[wi] <- b
		b = <-s.free[wi]
		s.pending[wi] = b
	}
	off := len(b.arena)
	b.arena = append(b.arena, data...)
	r := slim{ts: p.TS, flowHash: flowHash, off: uint32(off), n: uint32(len(data)), capLen: int32(p.CapLen),
		wireLen: int32(p.WireLen), rnd: rnd, link: link, dir: dir, netOnly: netOnly, dnsOnly: dnsOnly}
	if dnsOnly {
		full := *p
		full.Payload = b.arena[off:len(b.arena):len(b.arena)]
		full.FragData = nil
		r.off = uint32(len(b.fulls))
		b.fulls = append(b.fulls, full)
	}
	b.recs = append(b.recs, r)
}

// control runs fn while every worker is idle and has processed everything dispatched before.
func (s *Stream) control(fn func()) {
	if len(s.workers) == 1 || s.queues == nil {
		fn()
		return
	}
	s.barrier.Add(len(s.workers))
	for i, q := range s.queues {
		if b := s.pending[i]; b != nil && len(b.recs) > 0 {
			q <- b
			s.pending[i] = nil
		}
		q <- &batch{sync: true}
	}
	s.barrier.Wait()
	fn()
}
