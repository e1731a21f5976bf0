package stream

import (
	"errors"

	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/tcpflow"
)

// DNSPorts are the ports whose traffic the DNS handlers consider (the reference's list).
var DNSPorts = [...]uint16{53, 5353, 5355, 53000}

// IsDNSPort reports whether port is one of DNSPorts.
func IsDNSPort(port uint16) bool {
	return port == 53 || port == 5353 || port == 5355 || port == 53000
}

// record is one packet as handed to a worker.
type record struct {
	pkt      decode.Packet
	dir      hostspec.Direction
	flowHash uint64
	rnd      uint32
	// netOnly: an IP fragment — a frame the packet handlers count, but not a whole datagram.
	// dnsOnly: a datagram reassembled from fragments — DNS content, not a frame of its own.
	netOnly, dnsOnly bool
}

// chain is a `modules` sequence on one worker: a module sees only what the previous one let
// through. Leading packet modules (net) see packets; once a module that consumes DNS messages
// is reached, the packet's DNS messages flow on, and a packet module after a DNS module sees
// the packet that carried (or, over TCP, completed) each message that passed.
type chain struct {
	stages []handler.Handler
	isDNS  []bool
	lead   int  // leading packet stages
	passed bool // the current packet passed the leading stages
}

// worker owns one shard of the traffic: its handler instances and its TCP stream tracker.
// Padded so that two workers' hot fields never share a cache line.
type worker struct {
	_        [64]byte
	id       int
	all      []handler.Handler
	packetHs []handler.Handler
	dnsHs    []handler.Handler
	inputHs  []handler.Handler
	// The packet and DNS handlers that count dnstap messages.
	tapPacketHs []DnstapPacketHandler
	tapDNSHs    []DnstapDNSHandler
	tap         dnstap.Dnstap // a batch's dnstap record, decoded
	chains      []*chain
	tcp         *tcpflow.Reassembler
	msg         dnswire.Message
	ev          handler.PacketEvent
	dev         handler.DNSEvent
	cur         *record // the record being processed (for TCP message callbacks)
	dec         decode.Decoder
	rec         record // a batch record, decoded
	tcpErrors   uint64 // reassembly errors already reported to the handlers

	stats WorkerStats
	_     [64]byte
}

// WorkerStats are a worker's counts of what it could not use.
type WorkerStats struct {
	DNSMalformed uint64 // DNS-port payloads too short for a DNS header
}

func newWorker(id int, tcpCfg tcpflow.Config) *worker {
	w := &worker{id: id}
	w.dev.Msg = &w.msg
	return w
}

// reset forgets every handler (before the lists are rebuilt); the TCP tracker stays.
func (w *worker) reset() {
	w.all, w.packetHs, w.dnsHs, w.inputHs, w.chains = nil, nil, nil, nil, nil
	w.tapPacketHs, w.tapDNSHs = nil, nil
}

// attach adds a group of handler instances, side by side or chained. Input-level handlers
// (pcap) are never part of a chain: they observe the input itself.
func (w *worker) attach(hs []handler.Handler, chained bool) {
	w.all = append(w.all, hs...)
	c := &chain{}
	for _, h := range hs {
		wants := h.Wants()
		if wants&handler.WantInput != 0 {
			w.inputHs = append(w.inputHs, h)
		}
		if chained && wants&(handler.WantPackets|handler.WantDNS) != 0 {
			isDNS := wants&handler.WantDNS != 0
			if !isDNS && len(c.stages) == c.lead {
				c.lead++
			}
			c.stages = append(c.stages, h)
			c.isDNS = append(c.isDNS, isDNS)
			continue
		}
		if wants&handler.WantPackets != 0 {
			w.packetHs = append(w.packetHs, h)
			if th, ok := h.(DnstapPacketHandler); ok {
				w.tapPacketHs = append(w.tapPacketHs, th)
			}
		}
		if wants&handler.WantDNS != 0 {
			w.dnsHs = append(w.dnsHs, h)
			if th, ok := h.(DnstapDNSHandler); ok {
				w.tapDNSHs = append(w.tapDNSHs, th)
			}
		}
	}
	if len(c.stages) > 0 {
		w.chains = append(w.chains, c)
	}
}

// ready finishes the setup once every group is attached: the TCP tracker exists as soon as
// any handler wants DNS, and is kept (with its streams) if they all go.
func (w *worker) ready(tcpCfg tcpflow.Config) {
	if w.tcp == nil && w.wantsDNS() {
		w.tcp = tcpflow.New(tcpCfg, w.tcpMessage)
	}
}

// wantsDNS reports whether any handler consumes DNS messages (else DNS is never parsed).
func (w *worker) wantsDNS() bool {
	if len(w.dnsHs) > 0 {
		return true
	}
	for _, c := range w.chains {
		if c.lead < len(c.stages) {
			return true
		}
	}
	return false
}

// processSlim decodes a batch record and processes it.
func (w *worker) processSlim(b *batch, s *slim) {
	if s.dnstap {
		w.dnstapSlim(b, s)
		return
	}
	r := &w.rec
	r.dir, r.flowHash, r.rnd, r.netOnly, r.dnsOnly = s.dir, s.flowHash, s.rnd, s.netOnly, s.dnsOnly
	if s.dnsOnly {
		r.pkt = b.fulls[s.off]
	} else {
		r.pkt = decode.Packet{}
		// The dispatcher decoded this frame without error: decoding is deterministic.
		_ = w.dec.Decode(s.link, b.arena[s.off:s.off+s.n:s.off+s.n], &r.pkt)
		r.pkt.TS, r.pkt.CapLen, r.pkt.WireLen = s.ts, int(s.capLen), int(s.wireLen)
	}
	w.process(r)
}

// process runs one record through the handlers. It is the hot path of a worker.
func (w *worker) process(r *record) {
	p := &r.pkt
	if !r.dnsOnly {
		w.ev = handler.PacketEvent{Pkt: p, Dir: r.dir, FlowHash: r.flowHash, Rand: r.rnd}
		for _, h := range w.packetHs {
			h.Packet(&w.ev)
		}
		for _, c := range w.chains {
			c.passed = true
			for i := range c.lead {
				if !c.stages[i].Packet(&w.ev) {
					c.passed = false
					break
				}
			}
		}
	} else {
		// A reassembled datagram is not a frame: the leading packet stages counted its
		// fragments (which may have gone to other workers), so its DNS content goes on.
		for _, c := range w.chains {
			c.passed = true
		}
	}
	if r.netOnly || w.tcp == nil {
		return
	}
	var port uint16
	switch {
	case IsDNSPort(p.DstPort):
		port = p.SrcPort
	case IsDNSPort(p.SrcPort):
		port = p.DstPort
	default:
		return
	}
	switch p.L4 {
	case decode.L4UDP:
		w.dnsMessage(r, p.Payload, p, handler.TransportUDP, port)
	case decode.L4TCP:
		w.cur = r
		w.tcp.Segment(p, r.flowHash)
		w.cur = nil
		w.reportTCPErrors()
	}
}

func (w *worker) tcpMessage(m *tcpflow.Message) {
	r := w.cur
	if r == nil {
		return // FlushAll emits nothing new; be safe
	}
	p := m.Packet
	port := p.SrcPort
	if IsDNSPort(p.SrcPort) && !IsDNSPort(p.DstPort) {
		port = p.DstPort
	} else if IsDNSPort(p.DstPort) {
		port = p.SrcPort
	}
	w.dnsMessage(r, m.Data, p, handler.TransportTCP, port)
}

func (w *worker) dnsMessage(r *record, payload []byte, p *decode.Packet, tr handler.Transport, port uint16) {
	err := w.msg.Parse(payload)
	if err != nil && !errors.Is(err, dnswire.ErrQuestion) {
		w.stats.DNSMalformed++
		return
	}
	w.dev.Reset()
	w.dev.Pkt = p
	w.dev.Dir = r.dir
	w.dev.FlowHash = r.flowHash
	w.dev.Rand = r.rnd
	w.dev.Transport = tr
	w.dev.Port = port
	w.dev.QuestionOK = err == nil && w.msg.HasQuestion
	for _, h := range w.dnsHs {
		h.DNS(&w.dev)
	}
	for _, c := range w.chains {
		if c.passed {
			w.runChain(c, r, p)
		}
	}
}

// runChain passes one DNS message through a chain from its first DNS stage on.
func (w *worker) runChain(c *chain, r *record, p *decode.Packet) {
	for i := c.lead; i < len(c.stages); i++ {
		if c.isDNS[i] {
			if !c.stages[i].DNS(&w.dev) {
				return
			}
			continue
		}
		w.ev = handler.PacketEvent{Pkt: p, Dir: r.dir, FlowHash: r.flowHash, Rand: r.rnd}
		if !c.stages[i].Packet(&w.ev) {
			return
		}
	}
}

func (w *worker) reportTCPErrors() {
	errs := w.tcp.Stats().Errors()
	if errs > w.tcpErrors {
		n := errs - w.tcpErrors
		w.tcpErrors = errs
		for _, h := range w.inputHs {
			h.TCPReassemblyErrors(n)
		}
	}
}
