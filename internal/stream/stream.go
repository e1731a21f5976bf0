// Package stream runs an input's packets through the handlers: one dispatcher reads frames,
// applies the capture filter, decodes them, reassembles IP fragments, decides the direction,
// draws the deep-sampling number and routes each packet by its direction-independent flow hash
// to one of W workers, so a query and its reply, and both sides of a TCP connection, meet on
// the same worker. Each worker owns its handler instances and TCP stream tracker: no locks on
// the hot path. With one worker the dispatcher calls it directly (no copy, no channel).
//
// Control operations (period shifts, end of input, reads) run while every worker is paused at
// a barrier, from the dispatcher's goroutine, so they see and change worker state safely and
// in step: results do not depend on the number of workers.
package stream

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/bpf"
	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/tcpflow"
)

// Source yields captured frames. Data is valid until the next call; io.EOF ends the stream.
type Source interface {
	Next() ([]byte, capture.PacketInfo, error)
}

// Config configures a stream.
type Config struct {
	Workers int // ≥ 1
	// Live: the source is a live capture — the first period starts when Run starts, and
	// periods rotate and rates tick on wall time while no packet arrives (the source returns
	// capture.ErrTimeout then).
	Live         bool
	HostSpec     *hostspec.Set // nil = no host addresses (every direction unknown)
	BPF          string        // tcpdump-style capture filter; "" = every frame
	City, ASN    *geo.DB       // nil = disabled
	GeoCacheSize int
	TCP          tcpflow.Config
	Defrag       decode.DefragConfig
}

// Stats are the stream's counts of what it read and what it could not use.
type Stats struct {
	Frames       uint64 // frames read from the source
	BPFFiltered  uint64 // frames rejected by the capture filter
	Malformed    uint64 // corrupt frames, counted and skipped
	UnknownLink  uint64 // frames of an unsupported link type
	Fragments    uint64
	Reassembled  uint64 // datagrams rebuilt from fragments
	DNSMalformed uint64 // DNS-port payloads too short for a DNS header
	FirstTS      int64
	LastTS       int64
	TCP          tcpflow.Stats
	Defrag       decode.DefragStats
	XactsEvicted uint64
	// DnstapSkipped counts dnstap frames that did not decode or were not a MESSAGE with a
	// message (the reference skips them too).
	DnstapSkipped uint64
}

// Stream is one input's processing pipeline.
type Stream struct {
	cfg  Config
	envs []*handler.Env // per worker
	atts []*Attachment  // attached handler groups, in order

	// Derived from atts: every spec with its instances, in attachment order.
	specs     []handler.Spec
	instances [][]handler.Handler // [spec][worker]
	workers   []*worker
	shifting  bool // some handler keeps more than one period

	d *dispatcher

	// Fanout mode (RunFanout): the stop-the-world control of the lanes and their dispatchers
	// (laneDs[0] == d). Set before the lanes start, under mu.
	lanes  *laneCtl
	laneDs []*dispatcher

	// Control requests from other goroutines (reads, attach, detach) while Run is active; the
	// dispatcher runs them between packets at a barrier. mu serializes the callers, and runs
	// requests directly when Run is not active.
	ctl     chan func()
	mu      sync.Mutex
	running bool // under mu
	stopped chan struct{}

	// multi-worker plumbing
	queues    []chan *batch
	published atomic.Pointer[[]chan *batch] // queues, for QueueDepths from other goroutines
	free      []chan *batch
	pending   []*batch
	wg        sync.WaitGroup
	barrier   sync.WaitGroup
}

// dispatcher is the state the dispatcher writes for every packet, in its own allocation and
// padded, so that no worker core ever reads a cache line the dispatcher keeps dirtying.
type dispatcher struct {
	_ [64]byte

	dec    decode.Decoder
	defrag *decode.Defragmenter
	rng    metrics.JSF32
	pkt    decode.Packet
	full   decode.Packet
	rec    record
	tap    dnstap.Dnstap

	// Capture filters, one per link type (a pcapng file may mix link types).
	matchers  map[decode.LinkType]*bpf.Matcher
	lastLink  decode.LinkType
	lastMatch *bpf.Matcher

	started          bool
	nextShift        int64 // seconds
	stats            Stats
	osDrops, ifDrops uint64 // last cumulative drop counts of a live source

	_ [64]byte
}

// Group is a set of handlers attached to the stream together (a policy's modules): side by
// side when Chained is false (a `modules` map), or as a chain when true (a `modules` sequence:
// each module sees only what the previous one let through).
type Group struct {
	Specs   []handler.Spec
	Chained bool
}

// Attachment is a group of handlers attached to a stream, with an instance of each on every
// worker.
type Attachment struct {
	s         *Stream
	group     Group
	instances [][]handler.Handler // [spec][worker]
}

// New builds the instances of independent handlers on every worker.
func New(cfg Config, specs []handler.Spec) *Stream {
	return NewGroups(cfg, []Group{{Specs: specs}})
}

// NewGroups builds a stream with the given groups attached. Specs are numbered in group order
// for Instances and Render.
func NewGroups(cfg Config, groups []Group) *Stream {
	cfg.Workers = max(cfg.Workers, 1)
	s := &Stream{cfg: cfg, d: &dispatcher{rng: *metrics.NewJSF32(1), defrag: decode.NewDefragmenter(cfg.Defrag)},
		ctl: make(chan func()), stopped: make(chan struct{})}
	for wi := range cfg.Workers {
		s.envs = append(s.envs, &handler.Env{Worker: wi, Geo: geo.NewLookup(cfg.City, cfg.ASN, cfg.GeoCacheSize)})
		s.workers = append(s.workers, newWorker(wi, cfg.TCP))
	}
	for _, g := range groups {
		s.attach(g)
	}
	return s
}

// attach builds a group's instances; the caller holds the stream (not running, or at a barrier).
func (s *Stream) attach(g Group) *Attachment {
	a := &Attachment{s: s, group: g, instances: make([][]handler.Handler, len(g.Specs))}
	for i, sp := range g.Specs {
		for wi := range s.workers {
			a.instances[i] = append(a.instances[i], sp.NewInstance(s.envs[wi]))
		}
	}
	s.atts = append(s.atts, a)
	s.rebuild()
	return a
}

// rebuild derives the flat spec list and every worker's handler lists from the attachments.
func (s *Stream) rebuild() {
	s.specs, s.instances, s.shifting = nil, nil, false
	for _, a := range s.atts {
		s.specs = append(s.specs, a.group.Specs...)
		s.instances = append(s.instances, a.instances...)
		for _, sp := range a.group.Specs {
			if sp.Window().NumPeriods > 1 {
				s.shifting = true
			}
		}
	}
	for wi, w := range s.workers {
		w.reset()
		for _, a := range s.atts {
			hs := make([]handler.Handler, len(a.instances))
			for i := range a.instances {
				hs[i] = a.instances[i][wi]
			}
			w.attach(hs, a.group.Chained)
		}
		w.ready(s.cfg.TCP)
	}
}

// Attach adds a group of handlers, also while Run is active (at a barrier). Handlers attached
// to a running stream start at the current time.
func (s *Stream) Attach(g Group) *Attachment {
	var a *Attachment
	s.Do(func() {
		a = s.attach(g)
		if s.d.started {
			for _, hs := range a.instances {
				for _, h := range hs {
					h.Start(s.d.stats.LastTS)
				}
			}
		}
	})
	return a
}

// Detach removes a group of handlers.
func (a *Attachment) Detach() {
	s := a.s
	s.Do(func() {
		for i, x := range s.atts {
			if x == a {
				s.atts = append(s.atts[:i:i], s.atts[i+1:]...)
				s.rebuild()
				return
			}
		}
	})
}

// Render renders spec i of the group, merged over the workers, at a barrier.
func (a *Attachment) Render(i int, sel metrics.Selection, sink metrics.Sink, nowNs int64) (rp metrics.RenderedPeriod, err error) {
	a.s.Do(func() { rp, err = a.group.Specs[i].Render(a.instances[i], sel, sink, nowNs) })
	return rp, err
}

// Specs returns the group's specs.
func (a *Attachment) Specs() []handler.Spec { return a.group.Specs }

// Instances returns the instances of spec i, one per worker (read them only inside Do).
func (a *Attachment) Instances(i int) []handler.Handler { return a.instances[i] }

// Do runs fn while the pipeline is still: if Run is active, the dispatcher runs it between two
// packets with every worker parked at a barrier; otherwise it runs at once. Calls from
// different goroutines are serialized. fn must not call Do.
func (s *Stream) Do(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		fn()
		return
	}
	if s.lanes != nil {
		s.lanes.run(fn, false)
		return
	}
	done := make(chan struct{})
	req := func() {
		defer close(done)
		fn()
	}
	select {
	case s.ctl <- req:
		<-done
	case <-s.stopped:
		// Run ended meanwhile: its workers are gone, so fn can run here.
		fn()
	}
}

// serveControl runs the pending control requests (dispatcher goroutine).
func (s *Stream) serveControl() {
	for {
		select {
		case fn := <-s.ctl:
			s.control(fn)
		default:
			return
		}
	}
}

// QueueDepths returns the batches waiting in each worker's queue (nil with one worker: the
// dispatcher calls it directly). Safe from any goroutine.
func (s *Stream) QueueDepths() []int {
	qs := s.published.Load()
	if qs == nil {
		return nil
	}
	d := make([]int, len(*qs))
	for i, q := range *qs {
		d[i] = len(q)
	}
	return d
}

// Instances returns the per-worker instances of spec i (for rendering).
func (s *Stream) Instances(i int) []handler.Handler { return s.instances[i] }

// Specs returns the stream's handler specs.
func (s *Stream) Specs() []handler.Spec { return s.specs }

// Stats returns the counters, summed over the workers.
func (s *Stream) Stats() Stats {
	var st Stats
	s.Do(func() {
		st = s.d.stats
		st.Defrag = s.d.defrag.Stats()
		if s.laneDs != nil {
			s.laneStats(&st)
		}
		for _, w := range s.workers {
			st.DNSMalformed += w.stats.DNSMalformed
			if w.tcp != nil {
				st.TCP = addTCPStats(st.TCP, w.tcp.Stats())
			}
		}
	})
	return st
}

// Run reads src to its end (or until ctx is done), then closes the live buckets at the last
// packet's time. A read error after some packets (a truncated file) is returned after the
// packets before it were processed and the buckets closed, so the caller can still report.
func (s *Stream) Run(ctx context.Context, src Source) error {
	lastStats := time.Now()
	n := 0
	return s.runLoop(ctx, func() error {
		data, info, err := src.Next()
		if err != nil {
			return err
		}
		s.packet(data, info)
		if n++; s.cfg.Live && n&1023 == 0 {
			s.pollDrops(src, &lastStats, false)
		}
		return nil
	}, func() { s.pollDrops(src, &lastStats, true) })
}

// runLoop is the dispatcher's loop shared by every kind of source: step reads and processes
// one item and returns the source's error; an idle error (ErrIdle, a timeout) runs the
// timers, onIdle and the control requests instead. It starts the workers and, live, the
// first period, and finishes the stream at the end.
func (s *Stream) runLoop(ctx context.Context, step func() error, onIdle func()) error {
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	if len(s.workers) > 1 {
		s.startWorkers()
	}
	if s.cfg.Live {
		s.begin(time.Now().UnixNano())
	}
	var runErr error
	for n := 0; ; n++ {
		if n&63 == 0 {
			if ctx.Err() != nil {
				runErr = ctx.Err()
				break
			}
			s.serveControl()
		}
		err := step()
		if err == nil {
			continue
		}
		if isIdle(err) {
			if ctx.Err() != nil {
				runErr = ctx.Err()
				break
			}
			s.idle(time.Now().UnixNano())
			s.serveControl()
			if onIdle != nil {
				onIdle()
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			runErr = err
		}
		break
	}
	s.finish()
	// Close stopped before taking mu: a Do caller holding mu may be waiting for the dispatcher.
	close(s.stopped)
	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	return runErr
}

// ErrIdle is what a live Source returns when no packet arrived within its poll timeout: the
// stream then runs its timers and control requests, and reads again.
var ErrIdle = errors.New("stream: no packet within the poll timeout")

// isIdle recognizes ErrIdle and timeout errors (those with a Timeout() bool method saying so).
func isIdle(err error) bool {
	if errors.Is(err, ErrIdle) || errors.Is(err, capture.ErrTimeout) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// DropSource is implemented by live sources that report capture drops (cumulative).
type DropSource interface {
	Stats() (osDrops, ifDrops uint64, err error)
}

// pollDrops reports, at most once a second, the drops counted by the source since the last
// report, to the input-level handlers of worker 0 (once, not once per worker).
func (s *Stream) pollDrops(src Source, last *time.Time, force bool) {
	dOS, dIf := s.d.newDrops(src, last, force)
	if dOS == 0 && dIf == 0 {
		return
	}
	s.control(func() {
		for _, h := range s.workers[0].inputHs {
			h.Drops(dOS, dIf)
		}
	})
}

// newDrops returns the drops a live source counted since d last asked (at most once a second
// unless forced).
func (d *dispatcher) newDrops(src Source, last *time.Time, force bool) (dOS, dIf uint64) {
	ds, ok := src.(DropSource)
	if !ok || (!force && time.Since(*last) < time.Second) {
		return 0, 0
	}
	*last = time.Now()
	osd, ifd, err := ds.Stats()
	if err != nil {
		return 0, 0
	}
	dOS, dIf = osd-min(osd, d.osDrops), ifd-min(ifd, d.ifDrops)
	d.osDrops, d.ifDrops = osd, ifd
	return dOS, dIf
}

// begin starts the handlers' first period at tsNs.
func (s *Stream) begin(ts int64) {
	s.d.started = true
	s.d.stats.FirstTS = ts
	s.d.stats.LastTS = ts
	s.d.nextShift = s.boundaryAfter(ts)
	s.control(func() {
		for _, hs := range s.instances {
			for _, h := range hs {
				h.Start(ts)
			}
		}
	})
}

// idle advances a live input's clock without traffic: periods rotate on wall time, and rates
// complete their idle seconds.
func (s *Stream) idle(now int64) {
	if !s.cfg.Live || !s.d.started || now < s.d.stats.LastTS {
		return
	}
	s.d.stats.LastTS = now
	if s.shifting && now/1e9 >= s.d.nextShift {
		s.shift(now)
	}
	s.control(func() {
		for _, hs := range s.instances {
			for _, h := range hs {
				h.Tick(now)
			}
		}
	})
}

// packet is the dispatcher's per-frame work.
func (s *Stream) packet(data []byte, info capture.PacketInfo) { s.packetOn(s.d, -1, data, info) }

// packetOn processes a frame with dispatcher d: lane -1 routes it to a worker by flow hash;
// a fanout lane (RunFanout) hands it to its own worker.
func (s *Stream) packetOn(d *dispatcher, lane int, data []byte, info capture.PacketInfo) {
	d.stats.Frames++
	if s.cfg.BPF != "" {
		if m := s.matcher(d, info.Link); m == nil || !m.MatchWire(data, info.WireLen) {
			d.stats.BPFFiltered++
			return
		}
	}
	ts := s.advance(d, lane, info.TS)
	p := &d.pkt
	*p = decode.Packet{TS: ts, CapLen: info.CapLen, WireLen: info.WireLen}
	if err := d.dec.Decode(info.Link, data, p); err != nil {
		if errors.Is(err, decode.ErrUnsupportedLink) {
			d.stats.UnknownLink++
		} else {
			d.stats.Malformed++
		}
		return
	}
	p.TS, p.CapLen, p.WireLen = ts, info.CapLen, info.WireLen
	var dir hostspec.Direction
	if s.cfg.HostSpec != nil && p.L3 != decode.L3None {
		dir = s.cfg.HostSpec.Direction(p.SrcAddr(), p.DstAddr())
	}
	rnd := d.rng.Next()
	if !p.Fragment {
		s.dispatch(d, lane, p, data, info.Link, dir, p.FlowHash(), rnd, false, false)
		return
	}
	d.stats.Fragments++
	// The fragment is a frame for the packet handlers; its datagram, once whole, is content for
	// the DNS handlers, routed by the full 5-tuple like any unfragmented datagram.
	s.dispatch(d, lane, p, data, info.Link, dir, p.FlowHash(), rnd, true, false)
	if d.defrag.Add(p, &d.full) {
		d.stats.Reassembled++
		s.dispatch(d, lane, &d.full, nil, 0, dir, d.full.FlowHash(), rnd, false, true)
	}
}

// dispatch hands a packet to its worker. frame is the raw frame p was decoded from (nil for a
// datagram reassembled from fragments).
func (s *Stream) dispatch(d *dispatcher, lane int, p *decode.Packet, frame []byte, link decode.LinkType, dir hostspec.Direction, flowHash uint64, rnd uint32, netOnly, dnsOnly bool) {
	if lane >= 0 || len(s.workers) == 1 {
		r := &d.rec
		r.pkt, r.dir, r.flowHash, r.rnd, r.netOnly, r.dnsOnly = *p, dir, flowHash, rnd, netOnly, dnsOnly
		s.workers[max(lane, 0)].process(r)
		return
	}
	s.enqueue(int(flowHash%uint64(len(s.workers))), p, frame, link, dir, flowHash, rnd, netOnly, dnsOnly)
}

// expireTCP expires idle TCP streams on every worker as of tsNs, before the buckets close.
func (s *Stream) expireTCP(tsNs int64) {
	for _, w := range s.workers {
		if w.tcp != nil {
			w.tcp.ExpireIdle(tsNs)
			w.reportTCPErrors()
		}
	}
}

// matcher returns the capture filter compiled for a link type.
func (s *Stream) matcher(d *dispatcher, lt decode.LinkType) *bpf.Matcher {
	if d.lastMatch != nil && lt == d.lastLink {
		return d.lastMatch
	}
	m, ok := d.matchers[lt]
	if !ok {
		var err error
		if m, err = bpf.NewMatcher(s.cfg.BPF, uint32(lt)); err != nil {
			// Validated for the file's first link type by the caller; for a later interface
			// of another type the program may not exist (nil): its frames are all rejected.
			m = nil
		}
		if d.matchers == nil {
			d.matchers = map[decode.LinkType]*bpf.Matcher{}
		}
		d.matchers[lt] = m
	}
	d.lastLink, d.lastMatch = lt, m
	return m
}

// advance moves dispatcher d's clock to an event at ts and returns the time the event counts
// at. Event time never goes backwards: an event stamped earlier than one already seen
// (captures merged from several queues, dnstap senders with their own clocks) counts at the
// latest time seen, so per-second rates, shifts and timeouts see one clock, whatever the
// number of workers. The first event starts the periods; one past the boundary shifts them
// (lane < 0: the dispatcher's stream; else a fanout lane).
func (s *Stream) advance(d *dispatcher, lane int, ts int64) int64 {
	switch {
	case !d.started:
		s.begin(ts)
	case ts < d.stats.LastTS:
		ts = d.stats.LastTS
	case s.shifting && ts/1e9 >= d.nextShift:
		if lane < 0 {
			s.shift(ts)
		} else {
			s.laneShift(d, ts)
		}
	}
	d.stats.LastTS = ts
	return ts
}

// shift closes every handler's live bucket at ts (live: at the minute boundary ts crossed) and
// opens the next one.
func (s *Stream) shift(ts int64) {
	at := s.shiftTime(ts)
	s.d.nextShift = s.boundaryAfter(at)
	s.control(func() { s.shiftAll(at) })
}

// A live stream's periods are wall-clock minutes (the first one runs from the start to the
// next minute boundary), so that agents' buckets cover the same minutes and merge by start
// time; a recorded stream's periods are PeriodSeconds from its first event (event time).

// boundaryAfter is the period boundary (seconds) that follows a period starting at ts (ns).
func (s *Stream) boundaryAfter(ts int64) int64 {
	if s.cfg.Live {
		return (ts/1e9/metrics.PeriodSeconds + 1) * metrics.PeriodSeconds
	}
	return ts/1e9 + metrics.PeriodSeconds
}

// shiftTime is when a period that ts (ns) has gone past ends: for a live stream the last
// minute boundary at or before ts (the period's length is exactly a minute unless the stream
// was stalled longer), for a recorded one ts itself.
func (s *Stream) shiftTime(ts int64) int64 {
	if s.cfg.Live {
		return ts / 1e9 / metrics.PeriodSeconds * metrics.PeriodSeconds * 1e9
	}
	return ts
}

// shiftAll shifts every instance at ts; the caller holds the stream still.
func (s *Stream) shiftAll(ts int64) {
	s.expireTCP(ts)
	for i, hs := range s.instances {
		for _, h := range hs {
			h.Shift(ts)
		}
		if hook, ok := s.specs[i].(handler.ShiftHook); ok {
			hook.AfterShift(hs)
		}
	}
}

// finish ends the input: TCP streams are closed, live buckets end at the last packet.
func (s *Stream) finish() {
	s.control(func() {
		s.expireTCP(s.d.stats.LastTS)
		for _, w := range s.workers {
			if w.tcp != nil {
				w.tcp.FlushAll()
				w.reportTCPErrors()
			}
		}
		if !s.d.started {
			return
		}
		for _, hs := range s.instances {
			for _, h := range hs {
				h.End(s.d.stats.LastTS)
			}
		}
	})
	if len(s.workers) > 1 {
		s.stopWorkers()
	}
}

// Render renders spec i's selection merged over the workers. Call it only when Run is not
// running (the reader) — the live agent reads through its own barrier.
func (s *Stream) Render(i int, sel metrics.Selection, sink metrics.Sink, nowNs int64) (rp metrics.RenderedPeriod, err error) {
	s.Do(func() { rp, err = s.specs[i].Render(s.instances[i], sel, sink, nowNs) })
	return rp, err
}

func addTCPStats(a, b tcpflow.Stats) tcpflow.Stats {
	a.Flows += b.Flows
	a.Open += b.Open
	a.BufferedBytes += b.BufferedBytes
	a.Created += b.Created
	a.Evicted += b.Evicted
	a.Expired += b.Expired
	a.Closed += b.Closed
	a.Messages += b.Messages
	a.BytesDropped += b.BytesDropped
	a.ErrBadLength += b.ErrBadLength
	a.ErrOversize += b.ErrOversize
	a.ErrOutOfWindow += b.ErrOutOfWindow
	a.ErrOOOOverflow += b.ErrOOOOverflow
	a.ErrEvictedPending += b.ErrEvictedPending
	a.ErrNoMemory += b.ErrNoMemory
	return a
}
