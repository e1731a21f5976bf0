// Package net is the `net` stream handler, version 1.0 (JSON key and Prometheus prefix
// "packets"): packet counts by L3/L4 and direction, per-second packet and byte rates, frame
// size quantiles, distinct remote addresses, and top remote IPs, geo locations and ASNs.
// See README.md beside this file for its configuration and every metric.
package net

import (
	"fmt"
	"strings"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Schema is the handler's JSON key and Prometheus prefix.
const Schema = "packets"

func init() { handler.Register("net", "1.0", New) }

// Metric groups, in bit order.
const (
	grpCounters = 1 << iota
	grpCardinality
	grpTopGeo
	grpTopIPs
)

// Groups are net v1's metric groups (all enabled by default).
var Groups = metrics.Groups{
	Names:    []string{"counters", "cardinality", "top_geo", "top_ips"},
	Defaults: []string{"counters", "cardinality", "top_geo", "top_ips"},
}

// ConfigKeys are the handler's own config/filter keys in the reference's order.
var ConfigKeys = []string{"geoloc_notfound", "asn_notfound", "only_geoloc_prefix", "only_asn_number", "recorded_stream"}

// Spec is a validated net handler configuration.
type Spec struct {
	common handler.Common

	geoNotFound, asnNotFound bool
	geoPrefixes              []string
	asnPrefixes              []string // "<n>/"
	filtering                bool
}

// New validates cfg (module config, filters, window keys and enable/disable merged).
func New(cfg config.Map) (handler.Spec, error) {
	c, err := handler.ParseCommon(cfg, ConfigKeys, &Groups)
	if err != nil {
		return nil, err
	}
	s := &Spec{common: c}
	if s.geoNotFound, _, err = cfg.Bool("geoloc_notfound"); err != nil {
		return nil, err
	}
	if s.asnNotFound, _, err = cfg.Bool("asn_notfound"); err != nil {
		return nil, err
	}
	if s.geoPrefixes, _, err = cfg.List("only_geoloc_prefix"); err != nil {
		return nil, err
	}
	asns, _, err := cfg.List("only_asn_number")
	if err != nil {
		return nil, err
	}
	for _, a := range asns {
		if a == "" || strings.Trim(a, "0123456789") != "" {
			return nil, fmt.Errorf("NetStreamHandler: only_asn_number filter contained an invalid/unsupported value: %s", a)
		}
		s.asnPrefixes = append(s.asnPrefixes, a+"/")
	}
	s.filtering = s.geoNotFound || s.asnNotFound || len(s.geoPrefixes) > 0 || len(s.asnPrefixes) > 0
	return s, nil
}

// Schema implements handler.Spec.
func (s *Spec) Schema() string { return Schema }

// Window implements handler.Spec.
func (s *Spec) Window() metrics.Window { return s.common.Window }

// AllGroupsDisabled reports `disable: [all]`: the handler then emits nothing.
func (s *Spec) AllGroupsDisabled() bool { return s.common.Groups == 0 }

// bucket is one period of net metrics.
type bucket struct {
	events, deepSamples                  uint64
	udp, tcp, tcpSyn, otherL4            uint64
	ipv4, ipv6                           uint64
	in, out, unknownDir, total, filtered uint64

	ppsIn, ppsOut, ppsTotal, ppsEvents sketch.Rate
	bytesIn, bytesOut, bytesTotal      sketch.Rate

	srcIPsIn, dstIPsOut sketch.Cardinality
	topIPv4, topIPv6    sketch.TopN
	topGeoLoc, topASN   sketch.TopN
	payloadSize         sketch.Quantiles
}

func (b *bucket) Reset() { *b = bucket{} }

func (b *bucket) Merge(o *bucket) {
	b.events += o.events
	b.deepSamples += o.deepSamples
	b.udp += o.udp
	b.tcp += o.tcp
	b.tcpSyn += o.tcpSyn
	b.otherL4 += o.otherL4
	b.ipv4 += o.ipv4
	b.ipv6 += o.ipv6
	b.in += o.in
	b.out += o.out
	b.unknownDir += o.unknownDir
	b.total += o.total
	b.filtered += o.filtered
	orates := o.rates()
	for i, r := range b.rates() {
		r.Merge(orates[i])
	}
	_ = b.srcIPsIn.Merge(&o.srcIPsIn)
	_ = b.dstIPsOut.Merge(&o.dstIPsOut)
	b.topIPv4.Merge(&o.topIPv4)
	b.topIPv6.Merge(&o.topIPv6)
	b.topGeoLoc.Merge(&o.topGeoLoc)
	b.topASN.Merge(&o.topASN)
	b.payloadSize.Merge(&o.payloadSize)
}

func (b *bucket) rates() []*sketch.Rate {
	return []*sketch.Rate{&b.ppsIn, &b.ppsOut, &b.ppsTotal, &b.ppsEvents, &b.bytesIn, &b.bytesOut, &b.bytesTotal}
}

// tickRates completes the idle seconds of a live bucket's rates.
func (b *bucket) tickRates(sec int64) {
	for _, r := range b.rates() {
		r.Tick(sec)
	}
}

// closeRates finishes the per-second rate counting of a bucket that stops being written.
func (b *bucket) closeRates() {
	for _, r := range b.rates() {
		r.Flush()
	}
}

// Instance is the handler on one worker.
type Instance struct {
	spec *Spec
	geo  *geo.Lookup
	ring *metrics.Ring[bucket, *bucket]
	key  []byte // scratch for geo keys
}

// NewInstance implements handler.Spec.
func (s *Spec) NewInstance(env *handler.Env) handler.Handler {
	return &Instance{
		spec: s,
		geo:  env.Geo,
		ring: metrics.NewRing(s.common.Window.NumPeriods, 0, func() *bucket { return &bucket{} }),
		key:  make([]byte, 0, 128),
	}
}

func (h *Instance) Wants() handler.Wants       { return handler.WantPackets }
func (h *Instance) DNS(*handler.DNSEvent) bool { return true }
func (h *Instance) TCPReassemblyErrors(uint64) {}
func (h *Instance) Drops(uint64, uint64)       {}
func (h *Instance) Start(tsNs int64)           { h.ring.SetStart(tsNs) }
func (h *Instance) Shift(tsNs int64)           { h.ring.Live().closeRates(); h.ring.Shift(tsNs) }
func (h *Instance) End(tsNs int64)             { h.ring.Live().closeRates(); h.ring.Close(tsNs) }
func (h *Instance) Tick(tsNs int64)            { h.ring.Live().tickRates(tsNs / 1e9) }
func (h *Instance) cityEnabled() bool          { return h.geo != nil && h.geo.CityEnabled() }
func (h *Instance) asnEnabled() bool           { return h.geo != nil && h.geo.ASNEnabled() }
func remote(p *decode.Packet, dir hostspec.Direction) []byte {
	switch dir {
	case hostspec.ToHost:
		return p.SrcAddr()
	case hostspec.FromHost:
		return p.DstAddr()
	}
	return nil
}

// filtered applies the geo/ASN filters to the remote address. Unknown direction, or a
// database that is not loaded, filters the packet out (as the reference does).
func (h *Instance) filtered(p *decode.Packet, dir hostspec.Direction) bool {
	return h.filteredAddr(remote(p, dir))
}

// filteredAddr applies the geo/ASN filters to a remote address (nil: none, filtered out).
func (h *Instance) filteredAddr(addr []byte) bool {
	s := h.spec
	if addr == nil {
		return true
	}
	if s.geoNotFound || len(s.geoPrefixes) > 0 {
		if !h.cityEnabled() {
			return true
		}
		loc := h.geo.City(addr).Location
		if s.geoNotFound && !strings.HasPrefix(loc, "Unknown") {
			return true
		}
		if len(s.geoPrefixes) > 0 && !hasAnyPrefix(loc, s.geoPrefixes) {
			return true
		}
	}
	if s.asnNotFound || len(s.asnPrefixes) > 0 {
		if !h.asnEnabled() {
			return true
		}
		asn := h.geo.ASN(addr)
		if s.asnNotFound && !strings.HasPrefix(asn, "Unknown") {
			return true
		}
		if len(s.asnPrefixes) > 0 && !hasAnyPrefix(asn, s.asnPrefixes) {
			return true
		}
	}
	return false
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// event counts an event (a packet or a dnstap message) before the filters and says whether it
// is deep-sampled.
func (h *Instance) event(ev *handler.PacketEvent) (*bucket, bool) {
	b := h.ring.Live()
	deep := handler.Deep(h.spec.common.Window.DeepSampleRate, ev.Rand)
	b.events++
	if deep {
		b.deepSamples++
	}
	b.ppsEvents.Add(ev.Pkt.TS/1e9, 1)
	return b, deep
}

// Packet implements handler.Handler: the hot path.
func (h *Instance) Packet(ev *handler.PacketEvent) bool {
	s := h.spec
	b, deep := h.event(ev)
	if s.filtering && h.filtered(ev.Pkt, ev.Dir) {
		b.filtered++
		return false
	}
	if !h.counters(ev, b, deep) {
		return true
	}
	addr := remote(ev.Pkt, ev.Dir)
	if addr == nil {
		return true
	}
	h.address(b, addr, ev.Pkt.L3, ev.Dir == hostspec.ToHost)
	return true
}

// Dnstap counts one dnstap message (spec §2.1): ev.Pkt describes the message, not a packet
// (CapLen is the frame length, L3/L4 come from socket_family/socket_protocol, Dir from the
// message type). The query address (nil if absent) feeds src_ips_in, the response address
// dst_ips_out, both the tops, whatever the direction, as the reference counts dnstap.
func (h *Instance) Dnstap(ev *handler.PacketEvent, query, response []byte) bool {
	s := h.spec
	b, deep := h.event(ev)
	if s.filtering {
		var addr []byte
		switch ev.Dir {
		case hostspec.ToHost:
			addr = query
		case hostspec.FromHost:
			addr = response
		}
		if h.filteredAddr(addr) {
			b.filtered++
			return false
		}
	}
	if !h.counters(ev, b, deep) {
		return true
	}
	if query != nil {
		h.address(b, query, ev.Pkt.L3, true)
	}
	if response != nil {
		h.address(b, response, ev.Pkt.L3, false)
	}
	return true
}

// counters counts a packet that passed the filters and reports whether it is deep-sampled.
func (h *Instance) counters(ev *handler.PacketEvent, b *bucket, deep bool) bool {
	s := h.spec
	g := s.common.Groups
	p := ev.Pkt
	sec := p.TS / 1e9
	size := uint64(p.CapLen)
	b.total++
	b.ppsTotal.Add(sec, 1)
	b.bytesTotal.Add(sec, size)
	switch ev.Dir {
	case hostspec.ToHost:
		b.ppsIn.Add(sec, 1)
		b.bytesIn.Add(sec, size)
	case hostspec.FromHost:
		b.ppsOut.Add(sec, 1)
		b.bytesOut.Add(sec, size)
	}
	b.payloadSize.Add(float64(size))

	if g&grpCounters != 0 {
		switch p.L4 {
		case decode.L4UDP:
			b.udp++
		case decode.L4TCP:
			b.tcp++
			if deep && p.TCPFlags&decode.TCPSyn != 0 {
				b.tcpSyn++
			}
		default:
			b.otherL4++
		}
		switch p.L3 {
		case decode.L3IPv4:
			b.ipv4++
		case decode.L3IPv6:
			b.ipv6++
		}
		switch ev.Dir {
		case hostspec.ToHost:
			b.in++
		case hostspec.FromHost:
			b.out++
		default:
			b.unknownDir++
		}
	}
	return deep
}

// address counts a deep-sampled remote address: src_ips_in when in, else dst_ips_out, and
// the top IPs, locations and ASNs.
func (h *Instance) address(b *bucket, addr []byte, l3 decode.L3, in bool) {
	g := h.spec.common.Groups
	hash := sketch.Hash(addr)
	if g&grpCardinality != 0 {
		if in {
			b.srcIPsIn.InsertHash(hash)
		} else {
			b.dstIPsOut.InsertHash(hash)
		}
	}
	if g&grpTopIPs != 0 {
		if l3 == decode.L3IPv4 {
			b.topIPv4.Update(addr, hash, 1)
		} else {
			b.topIPv6.Update(addr, hash, 1)
		}
	}
	if g&grpTopGeo != 0 {
		if h.cityEnabled() {
			h.key = metrics.AppendGeoKey(h.key[:0], h.geo.City(addr))
			b.topGeoLoc.Update(h.key, sketch.Hash(h.key), 1)
		}
		if h.asnEnabled() {
			k := append(h.key[:0], h.geo.ASN(addr)...)
			h.key = k
			b.topASN.Update(k, sketch.Hash(k), 1)
		}
	}
}
