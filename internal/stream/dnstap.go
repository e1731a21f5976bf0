package stream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
)

// dnstap input. A dnstap message is not a packet: it carries a DNS message (query_message or
// response_message), the addresses, ports, family and protocol of the exchange and its
// timestamps. The dispatcher decodes it, takes its time and direction from the message type,
// and routes it by a hash of (query address, query port) — present, and equal, in a query and
// its response — so both meet on one worker, where they pair as a DNS transaction. Handlers
// count dnstap through their own method (spec §2.1/§2.2 count dnstap differently from
// packets): a handler without one does not see dnstap messages.

// DnstapSource yields dnstap frames, as *dnstap.Reader does: a frame is valid until the next
// call, and io.EOF ends the stream.
type DnstapSource interface {
	Next() ([]byte, error)
}

// DnstapPacketHandler is a packet handler (net) that counts dnstap messages. ev.Pkt
// describes the message: TS, CapLen = WireLen = frame length, L3 from socket_family, L4 from
// socket_protocol (L4Other for DoT, DoH, DNSCrypt, DoQ), Src/SrcPort the query side and
// Dst/DstPort the response side. query and response are the addresses (nil when absent or
// not of the family's length).
type DnstapPacketHandler interface {
	Dnstap(ev *handler.PacketEvent, query, response []byte) bool
}

// DnstapDNSHandler is a DNS handler that counts dnstap messages. ev is as for a packet's DNS
// message (Pkt described as for DnstapPacketHandler, Port = query port, Transport TCP when
// socket_protocol is TCP, else UDP); ev.Msg is valid only when hasMsg.
type DnstapDNSHandler interface {
	Dnstap(ev *handler.DNSEvent, typ dnstap.MessageType, hasMsg bool) bool
}

// RunDnstap reads dnstap frames from src to its end (or until ctx is done) and closes the
// live buckets at the last message's time, like Run. Frames that do not decode, or are not a
// MESSAGE with a message, are skipped and counted (Stats.DnstapSkipped). A read error is
// returned after everything before it was processed.
//
// With Config.Live (a socket of senders) the first period starts when RunDnstap starts, src
// returns ErrIdle (or a timeout error) when no frame came within its poll interval — periods
// then rotate and rates tick on wall time, and control requests are served — and messages are
// timestamped as the reference does (spec §1.6): CLIENT/AUTH/RESOLVER queries and responses by
// their own query/response time, every other type by the wall clock; a message time ahead of
// the wall clock (a sender's skewed clock) is taken as now, so it cannot rotate periods early.
func (s *Stream) RunDnstap(ctx context.Context, src DnstapSource) error {
	return s.runLoop(ctx, func() error {
		frame, err := src.Next()
		if err != nil {
			if !s.cfg.Live && isIdle(err) {
				return fmt.Errorf("stream: idle error from a recorded dnstap source: %v", err)
			}
			return err
		}
		s.dnstapFrame(frame)
		return nil
	}, nil)
}

// dnstapFrame is the dispatcher's per-frame work for dnstap.
func (s *Stream) dnstapFrame(frame []byte) {
	d := s.d
	d.stats.Frames++
	t := &d.tap
	if err := t.Unmarshal(frame); err != nil || !t.IsMessage() {
		d.stats.DnstapSkipped++
		return
	}
	var ts int64
	ok := false
	if s.cfg.Live {
		ts, ok = dnstapLiveTime(t, time.Now().UnixNano()), true
	} else {
		ts, ok = dnstapTime(t)
	}
	if !ok {
		// No usable time in the message: the stream's clock (wall time before the first event),
		// so a recorded file keeps its own clock.
		ts = d.stats.LastTS
		if !d.started {
			ts = time.Now().UnixNano()
		}
	}
	ts = s.advance(d, -1, ts)
	m := &t.Message
	dir := DnstapDirection(m.Type)
	rnd := d.rng.Next()
	hash := dnstapFlowHash(m.QueryAddress, m.QueryPort)
	if len(s.workers) == 1 {
		s.workers[0].dnstap(t, ts, len(frame), dir, hash, rnd)
		return
	}
	s.enqueueDnstap(int(hash%uint64(len(s.workers))), frame, ts, dir, hash, rnd)
}

// DnstapDirection is the net direction of a message type (spec §1.6): what the host
// received is in, what it sent is out.
func DnstapDirection(t dnstap.MessageType) hostspec.Direction {
	switch t {
	case dnstap.ClientQuery, dnstap.StubResponse, dnstap.ResolverResponse, dnstap.AuthQuery,
		dnstap.ForwarderResponse, dnstap.UpdateQuery, dnstap.ToolResponse:
		return hostspec.ToHost
	case dnstap.StubQuery, dnstap.ClientResponse, dnstap.ResolverQuery, dnstap.AuthResponse,
		dnstap.ForwarderQuery, dnstap.UpdateResponse, dnstap.ToolQuery:
		return hostspec.FromHost
	}
	return hostspec.Unknown
}

// dnstapTime is the message's event time in Unix ns: query_time for a *_QUERY, response_time
// for a *_RESPONSE (the other one when that is absent). ok is false when neither is usable.
func dnstapTime(t *dnstap.Dnstap) (int64, bool) {
	m := &t.Message
	qt, qok := nsTime(m.QueryTimeSec, m.QueryTimeNsec, t.Has(dnstap.HasQueryTimeSec))
	rt, rok := nsTime(m.ResponseTimeSec, m.ResponseTimeNsec, t.Has(dnstap.HasResponseTimeSec))
	if m.Type.IsResponse() {
		qt, qok, rt, rok = rt, rok, qt, qok
	}
	if qok {
		return qt, true
	}
	return rt, rok
}

// dnstapLiveTime is a live message's time (spec §1.6): the event time of CLIENT, AUTH and
// RESOLVER queries and responses, the wall clock now for every other type (and when the
// message has no usable time); never later than now.
func dnstapLiveTime(t *dnstap.Dnstap, now int64) int64 {
	switch t.Message.Type {
	case dnstap.ClientQuery, dnstap.ClientResponse, dnstap.AuthQuery, dnstap.AuthResponse,
		dnstap.ResolverQuery, dnstap.ResolverResponse:
		if ts, ok := dnstapTime(t); ok && ts <= now {
			return ts
		}
	}
	return now
}

func nsTime(sec uint64, nsec uint32, present bool) (int64, bool) {
	if !present || sec >= math.MaxInt64/1_000_000_000-1 {
		return 0, false
	}
	return int64(sec)*1e9 + int64(min(nsec, 999_999_999)), true
}

// dnstapFlowHash hashes the query side of an exchange (address and port), which a query and
// its response share: it routes both to one worker and keys their transaction (the DNS ID and
// the question confirm a match, so a collision costs a missed pairing at worst).
func dnstapFlowHash(addr []byte, port uint32) uint64 {
	h := uint64(port)<<32 ^ uint64(len(addr))
	for i, c := range addr {
		h ^= uint64(c) << (8 * (i & 7))
		if i&7 == 7 {
			h = mix64(h)
		}
	}
	return mix64(h)
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// enqueueDnstap copies a dnstap frame into worker wi's batch; the worker decodes it again.
func (s *Stream) enqueueDnstap(wi int, frame []byte, ts int64, dir hostspec.Direction, hash uint64, rnd uint32) {
	b := s.pending[wi]
	if b == nil {
		b = <-s.free[wi]
		s.pending[wi] = b
	}
	if len(b.recs) == cap(b.recs) || (len(b.recs) > 0 && len(b.arena)+len(frame) > cap(b.arena)) {
		s.queues[wi] <- b
		b = <-s.free[wi]
		s.pending[wi] = b
	}
	off := len(b.arena)
	// A frame larger than the arena (up to the 1 MiB Frame Streams bound) grows it once.
	b.arena = append(b.arena, frame...)
	b.recs = append(b.recs, slim{ts: ts, flowHash: hash, off: uint32(off), n: uint32(len(frame)),
		capLen: int32(len(frame)), wireLen: int32(len(frame)), rnd: rnd, dir: dir, dnstap: true})
}

// dnstapSlim decodes a batch's dnstap record and processes it.
func (w *worker) dnstapSlim(b *batch, s *slim) {
	// The dispatcher decoded this frame without error: decoding is deterministic.
	_ = w.tap.Unmarshal(b.arena[s.off : s.off+s.n : s.off+s.n])
	w.dnstap(&w.tap, s.ts, int(s.n), s.dir, s.flowHash, s.rnd)
}

// addrOf returns a message address if it has the family's length, else nil.
func addrOf(a []byte, n int) []byte {
	if n == 0 || len(a) != n {
		return nil
	}
	return a
}

// dnstap runs one dnstap message through the handlers: the hot path of a dnstap worker.
func (w *worker) dnstap(t *dnstap.Dnstap, ts int64, frameLen int, dir hostspec.Direction, hash uint64, rnd uint32) {
	m := &t.Message
	p := &w.rec.pkt
	*p = decode.Packet{TS: ts, CapLen: frameLen, WireLen: frameLen}
	alen := 0
	switch m.SocketFamily {
	case dnstap.FamilyINET:
		p.L3, alen = decode.L3IPv4, 4
	case dnstap.FamilyINET6:
		p.L3, alen = decode.L3IPv6, 16
	}
	switch m.SocketProtocol {
	case dnstap.ProtocolUDP:
		p.L4, p.IPProto = decode.L4UDP, 17
	case dnstap.ProtocolTCP:
		p.L4, p.IPProto = decode.L4TCP, 6
	}
	query, response := addrOf(m.QueryAddress, alen), addrOf(m.ResponseAddress, alen)
	copy(p.Src[:], query)
	copy(p.Dst[:], response)
	p.SrcPort, p.DstPort = uint16(m.QueryPort), uint16(m.ResponsePort)
	w.ev = handler.PacketEvent{Pkt: p, Dir: dir, FlowHash: hash, Rand: rnd}
	for _, h := range w.tapPacketHs {
		h.Dnstap(&w.ev, query, response)
	}

	hasMsg := false
	if w.tcp != nil { // some handler wants DNS
		payload := m.ResponseMessage
		if m.Type.IsQuery() && len(m.QueryMessage) > 0 || len(payload) == 0 {
			payload = m.QueryMessage
		}
		if len(payload) > 0 {
			err := w.msg.Parse(payload)
			if err == nil || errors.Is(err, dnswire.ErrQuestion) {
				hasMsg = true
			} else {
				w.stats.DNSMalformed++
			}
			w.dev.QuestionOK = err == nil && w.msg.HasQuestion
		}
	}
	w.dev.Reset()
	w.dev.Pkt, w.dev.Dir, w.dev.FlowHash, w.dev.Rand = p, dir, hash, rnd
	w.dev.Transport = transportOf(m.SocketProtocol)
	w.dev.Port = uint16(m.QueryPort)
	if !hasMsg {
		w.dev.QuestionOK = false
	}
	for _, h := range w.tapDNSHs {
		h.Dnstap(&w.dev, m.Type, hasMsg)
	}
	for _, c := range w.chains {
		w.dnstapChain(c, m.Type, hasMsg, query, response)
	}
}

// dnstapChain passes a dnstap message through a `modules` sequence: each stage that counts
// dnstap decides whether it goes on; a stage that does not lets it through.
func (w *worker) dnstapChain(c *chain, typ dnstap.MessageType, hasMsg bool, query, response []byte) {
	for i, st := range c.stages {
		if c.isDNS[i] {
			if h, ok := st.(DnstapDNSHandler); ok && !h.Dnstap(&w.dev, typ, hasMsg) {
				return
			}
			continue
		}
		if h, ok := st.(DnstapPacketHandler); ok && !h.Dnstap(&w.ev, query, response) {
			return
		}
	}
}

// transports maps a dnstap socket_protocol to the transport the dns handler counts.
var transports = [...]handler.Transport{
	dnstap.ProtocolUDP: handler.TransportUDP, dnstap.ProtocolTCP: handler.TransportTCP,
	dnstap.ProtocolDOT: handler.TransportDoT, dnstap.ProtocolDOH: handler.TransportDoH,
	dnstap.ProtocolDNSCryptUDP: handler.TransportDNSCryptUDP, dnstap.ProtocolDNSCryptTCP: handler.TransportDNSCryptTCP,
	dnstap.ProtocolDOQ: handler.TransportDoQ,
}

// transportOf is TransportOther for a message without (or with an unknown) socket_protocol.
func transportOf(p dnstap.SocketProtocol) handler.Transport {
	if p > 0 && int(p) < len(transports) {
		return transports[p]
	}
	return handler.TransportOther
}
