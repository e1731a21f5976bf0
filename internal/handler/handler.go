// Package handler defines what a stream handler is: the events an input delivers to it, the
// interface every handler implements, and the registry that maps a module `type` and
// `require_version` to a constructor, so that the policy layer and the reader never name a
// concrete handler (as node_exporter registers collectors, or CoreDNS plugins).
//
// One handler *instance* exists per policy module per worker: a worker owns its instances and
// calls them without locks. Reads merge the instances of all workers (Merge), bucket by bucket.
package handler

import (
	"fmt"

	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// Wants says which events a handler consumes, so the worker skips work nobody needs (for
// example DNS parsing when no DNS handler is attached).
type Wants uint8

const (
	WantPackets Wants = 1 << iota // every decoded packet (net)
	WantDNS                       // every DNS message, UDP or reassembled TCP (dns)
	WantInput                     // input-level counters: reassembly errors, drops (pcap)
)

// Transport of a DNS message. Packet inputs see only UDP and TCP; dnstap also reports the
// encrypted transports a server terminated (its socket_protocol), which a capture cannot see.
type Transport uint8

const (
	TransportUDP Transport = iota
	TransportTCP
	TransportDoT
	TransportDoH
	TransportDNSCryptUDP
	TransportDNSCryptTCP
	TransportDoQ
	TransportOther // a dnstap message without (or with an unknown) socket_protocol
)

// PacketEvent is one decoded packet as seen by the handlers of a worker.
type PacketEvent struct {
	Pkt      *decode.Packet
	Dir      hostspec.Direction
	FlowHash uint64
	// Rand is a per-packet random number drawn by the input in packet order, so deep sampling
	// does not depend on how packets were spread over workers.
	Rand uint32
}

// DNSEvent is one DNS message (a UDP datagram's payload, or one message reassembled from a TCP
// stream), parsed once by the worker and shared by every DNS handler.
type DNSEvent struct {
	Pkt       *decode.Packet // the packet that carried (or, over TCP, completed) the message
	Dir       hostspec.Direction
	FlowHash  uint64
	Rand      uint32
	Transport Transport
	Port      uint16 // the client-side port (the one that is not the DNS port)
	Msg       *dnswire.Message
	// QuestionOK is false when the question section did not parse (header fields still valid).
	QuestionOK bool

	scanned bool
	scanErr error
}

// Records scans the message's records (RRSIG answers, EDNS OPT, ECS) once, however many
// handlers ask: the walk over every RR is only paid when some handler needs it.
func (ev *DNSEvent) Records() error {
	if !ev.scanned {
		ev.scanned = true
		ev.scanErr = ev.Msg.ScanRecords()
	}
	return ev.scanErr
}

// Reset prepares the event for the next message.
func (ev *DNSEvent) Reset() {
	ev.scanned = false
	ev.scanErr = nil
}

// Handler is one handler instance on one worker.
type Handler interface {
	Wants() Wants
	// Packet and DNS consume an event and report whether it passed the handler's filters: in
	// a chain (a `modules` sequence) only what passes goes on to the next module.
	Packet(ev *PacketEvent) bool
	DNS(ev *DNSEvent) bool
	// TCPReassemblyErrors reports n new reassembly errors (segments or messages the stream
	// tracker had to give up on).
	TCPReassemblyErrors(n uint64)
	// Drops reports capture drops observed since the previous report (live inputs).
	Drops(os, ifd uint64)
	// Shift closes the live bucket at tsNs (event time) and starts a new one.
	Shift(tsNs int64)
	// Start sets the live bucket's start (first packet of a recorded stream); End closes it
	// (last packet), and Tick lets a live input advance per-second rates on wall time.
	Start(tsNs int64)
	End(tsNs int64)
	// Tick tells a live handler that time has passed without traffic (wall clock), so that
	// per-second rates complete their idle seconds.
	Tick(tsNs int64)
}

// Env is what the input shares with the handler instances of one worker.
type Env struct {
	Geo    *geo.Lookup // per worker; nil or disabled DBs mean no geo
	Worker int
}

// Spec is a handler's validated configuration, from which one instance per worker is built.
type Spec interface {
	// Schema is the JSON object key and Prometheus prefix ("packets", "dns", "pcap").
	Schema() string
	NewInstance(env *Env) Handler
	// Render merges the selected bucket (or window of buckets) of the given instances (all built
	// from this Spec, one per worker) and renders it into sink. nowNs is the wall clock, for
	// live buckets.
	Render(instances []Handler, sel metrics.Selection, sink metrics.Sink, nowNs int64) (metrics.RenderedPeriod, error)
	// Window returns the validated window configuration.
	Window() metrics.Window
}

// ShiftHook is implemented by specs that derive state for the new period from the period that
// just closed, merged over all workers (dns: the slow-transaction threshold). It runs while the
// workers are paused, right after every instance shifted.
type ShiftHook interface {
	AfterShift(instances []Handler)
}

// Nop implements the Handler methods a handler does not need; embed it.
type Nop struct{}

func (Nop) Packet(*PacketEvent) bool   { return true }
func (Nop) DNS(*DNSEvent) bool         { return true }
func (Nop) TCPReassemblyErrors(uint64) {}
func (Nop) Drops(uint64, uint64)       {}
func (Nop) Tick(int64)                 {}

// MergeInstances merges the selected bucket or window of every worker's instance of one spec
// into a fresh bucket. ring gives an instance's ring; every instance must be an I.
func MergeInstances[I Handler, B any, PB metrics.Bucket[B]](instances []Handler, ring func(I) *metrics.Ring[B, PB],
	sel metrics.Selection, recorded bool, nowNs int64) (PB, metrics.RenderedPeriod, error) {
	rings := make([]*metrics.Ring[B, PB], 0, len(instances))
	for _, h := range instances {
		in, ok := h.(I)
		if !ok {
			return nil, metrics.RenderedPeriod{}, fmt.Errorf("handler instance %T is not a %T", h, in)
		}
		rings = append(rings, ring(in))
	}
	b := PB(new(B))
	rp, err := metrics.MergeRings(rings, sel, recorded, nowNs, b)
	return b, rp, err
}
