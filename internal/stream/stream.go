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

	"github.com/pktvisor-go/pktvisor/internal/bpf"
	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/decode"
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
	Workers      int           // ≥ 1
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
}

// Stream is one input's processing pipeline.
type Stream struct {
	cfg       Config
	specs     []handler.Spec
	instances [][]handler.Handler // [spec][worker]
	workers   []*worker
	shifting  bool // some handler keeps more than one period

	d *dispatcher

	// multi-worker plumbing
	queues  []chan *batch
	free    []chan *batch
	pending []*batch
	wg      sync.WaitGroup
	barrier sync.WaitGroup
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

	// Capture filters, one per link type (a pcapng file may mix link types).
	matchers  map[decode.LinkType]*bpf.Matcher
	lastLink  decode.LinkType
	lastMatch *bpf.Matcher

	started   bool
	nextShift int64 // seconds
	stats     Stats

	_ [64]byte
}

// Group is a set of handlers attached to the stream together (a policy's modules): side by
// side when Chained is false (a `modules` map), or as a chain when true (a `modules` sequence:
// each module sees only what the previous one let through).
type Group struct {
	Specs   []handler.Spec
	Chained bool
}

// New builds the instances of independent handlers on every worker.
func New(cfg Config, specs []handler.Spec) *Stream {
	return NewGroups(cfg, []Group{{Specs: specs}})
}

// NewGroups builds the instances of every group's handlers on every worker. Specs are numbered
// in group order for Instances and Render.
func NewGroups(cfg Config, groups []Group) *Stream {
	cfg.Workers = max(cfg.Workers, 1)
	var specs []handler.Spec
	for _, g := range groups {
		specs = append(specs, g.Specs...)
	}
	s := &Stream{cfg: cfg, specs: specs, d: &dispatcher{rng: *metrics.NewJSF32(1), defrag: decode.NewDefragmenter(cfg.Defrag)}}
	s.instances = make([][]handler.Handler, len(specs))
	for wi := range cfg.Workers {
		env := &handler.Env{Worker: wi, Geo: geo.NewLookup(cfg.City, cfg.ASN, cfg.GeoCacheSize)}
		w := newWorker(wi, cfg.TCP)
		si := 0
		for _, g := range groups {
			var hs []handler.Handler
			for _, sp := range g.Specs {
				h := sp.NewInstance(env)
				s.instances[si] = append(s.instances[si], h)
				hs = append(hs, h)
				si++
			}
			w.attach(hs, g.Chained)
		}
		w.ready(cfg.TCP)
		s.workers = append(s.workers, w)
	}
	for _, sp := range specs {
		if sp.Window().NumPeriods > 1 {
			s.shifting = true
		}
	}
	return s
}

// Instances returns the per-worker instances of spec i (for rendering).
func (s *Stream) Instances(i int) []handler.Handler { return s.instances[i] }

// Specs returns the stream's handler specs.
func (s *Stream) Specs() []handler.Spec { return s.specs }

// Stats returns the counters, summed over the workers. Call it after Run returned.
func (s *Stream) Stats() Stats {
	st := s.d.stats
	st.Defrag = s.d.defrag.Stats()
	for _, w := range s.workers {
		st.DNSMalformed += w.stats.DNSMalformed
		if w.tcp != nil {
			st.TCP = addTCPStats(st.TCP, w.tcp.Stats())
		}
	}
	return st
}

// Run reads src to its end (or until ctx is done), then closes the live buckets at the last
// packet's time. A read error after some packets (a truncated file) is returned after the
// packets before it were processed and the buckets closed, so the caller can still report.
func (s *Stream) Run(ctx context.Context, src Source) error {
	if len(s.workers) > 1 {
		s.startWorkers()
	}
	var runErr error
	for n := 0; ; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
		data, info, err := src.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				runErr = err
			}
			break
		}
		s.packet(data, info)
	}
	s.finish()
	return runErr
}

// packet is the dispatcher's per-frame work.
func (s *Stream) packet(data []byte, info capture.PacketInfo) {
	s.d.stats.Frames++
	if s.cfg.BPF != "" {
		if m := s.matcher(info.Link); m == nil || !m.MatchWire(data, info.WireLen) {
			s.d.stats.BPFFiltered++
			return
		}
	}
	// Event time never goes backwards: a frame stamped earlier than one already seen (captures
	// merged from several queues do that) counts at the latest time seen, so per-second rates,
	// shifts and timeouts see one clock, whatever the number of workers.
	ts := info.TS
	switch {
	case !s.d.started:
		s.d.started = true
		s.d.stats.FirstTS = ts
		s.d.nextShift = ts/1e9 + metrics.PeriodSeconds
		s.control(func() {
			for _, hs := range s.instances {
				for _, h := range hs {
					h.Start(ts)
				}
			}
		})
	case ts < s.d.stats.LastTS:
		ts = s.d.stats.LastTS
	case s.shifting && ts/1e9 >= s.d.nextShift:
		s.shift(ts)
	}
	s.d.stats.LastTS = ts
	p := &s.d.pkt
	*p = decode.Packet{TS: ts, CapLen: info.CapLen, WireLen: info.WireLen}
	if err := s.d.dec.Decode(info.Link, data, p); err != nil {
		if errors.Is(err, decode.ErrUnsupportedLink) {
			s.d.stats.UnknownLink++
		} else {
			s.d.stats.Malformed++
		}
		return
	}
	p.TS, p.CapLen, p.WireLen = ts, info.CapLen, info.WireLen
	var dir hostspec.Direction
	if s.cfg.HostSpec != nil && p.L3 != decode.L3None {
		dir = s.cfg.HostSpec.Direction(p.SrcAddr(), p.DstAddr())
	}
	rnd := s.d.rng.Next()
	if !p.Fragment {
		s.dispatch(p, data, info.Link, dir, p.FlowHash(), rnd, false, false)
		return
	}
	s.d.stats.Fragments++
	// The fragment is a frame for the packet handlers; its datagram, once whole, is content for
	// the DNS handlers, routed by the full 5-tuple like any unfragmented datagram.
	s.dispatch(p, data, info.Link, dir, p.FlowHash(), rnd, true, false)
	if s.d.defrag.Add(p, &s.d.full) {
		s.d.stats.Reassembled++
		s.dispatch(&s.d.full, nil, 0, dir, s.d.full.FlowHash(), rnd, false, true)
	}
}

// dispatch hands a packet to its worker. frame is the raw frame p was decoded from (nil for a
// datagram reassembled from fragments).
func (s *Stream) dispatch(p *decode.Packet, frame []byte, link decode.LinkType, dir hostspec.Direction, flowHash uint64, rnd uint32, netOnly, dnsOnly bool) {
	if len(s.workers) == 1 {
		r := &s.d.rec
		r.pkt, r.dir, r.flowHash, r.rnd, r.netOnly, r.dnsOnly = *p, dir, flowHash, rnd, netOnly, dnsOnly
		s.workers[0].process(r)
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
func (s *Stream) matcher(lt decode.LinkType) *bpf.Matcher {
	if s.d.lastMatch != nil && lt == s.d.lastLink {
		return s.d.lastMatch
	}
	m, ok := s.d.matchers[lt]
	if !ok {
		var err error
		if m, err = bpf.NewMatcher(s.cfg.BPF, uint32(lt)); err != nil {
			// Validated for the file's first link type by the caller; for a later interface
			// of another type the program may not exist (nil): its frames are all rejected.
			m = nil
		}
		if s.d.matchers == nil {
			s.d.matchers = map[decode.LinkType]*bpf.Matcher{}
		}
		s.d.matchers[lt] = m
	}
	s.d.lastLink, s.d.lastMatch = lt, m
	return m
}

// shift closes every handler's live bucket at ts and opens the next one.
func (s *Stream) shift(ts int64) {
	s.d.nextShift = ts/1e9 + metrics.PeriodSeconds
	s.control(func() {
		s.expireTCP(ts)
		for i, hs := range s.instances {
			for _, h := range hs {
				h.Shift(ts)
			}
			if hook, ok := s.specs[i].(handler.ShiftHook); ok {
				hook.AfterShift(hs)
			}
		}
	})
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
func (s *Stream) Render(i int, sel metrics.Selection, sink metrics.Sink, nowNs int64) (metrics.RenderedPeriod, error) {
	return s.specs[i].Render(s.instances[i], sel, sink, nowNs)
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
