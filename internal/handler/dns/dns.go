// Package dns is the `dns` stream handler, version 1.0 (JSON key and Prometheus prefix "dns"):
// DNS messages counted by type, transport, rcode; distinct and top query names aggregated to
// two and three labels; top rcodes, qtypes, client ports, ECS subnets; and query/reply
// transactions with latency quantiles, slow names and size ratios.
// See README.md beside this file for its configuration, every metric, and where it differs
// from the reference on purpose.
package dns

import (
	"bytes"

	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Schema is the handler's JSON key and Prometheus prefix.
const Schema = "dns"

func init() { handler.Register("dns", "1.0", New) }

const (
	rcodeNoError  = 0
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeRefused  = 5
)

// bucket is one period of dns metrics.
type bucket struct {
	events, deepSamples                    uint64
	queries, replies, tcp, udp, ipv4, ipv6 uint64
	// dnstap only: messages over the encrypted transports (socket_protocol).
	dot, doh, dnscryptUDP, dnscryptTCP, doq uint64
	noerror, nxdomain, srvfail, refused     uint64
	nodata, total, filtered, queryECS       uint64
	xactTotal, xactTimedOut                 uint64

	ratesTotal, ratesEvents sketch.Rate
	qnameCard               sketch.Cardinality
	xactRatio               sketch.Quantiles
	xin, xout               xactDir // host is the server / the client

	topQname2, topQname3                 sketch.TopN
	topNX, topSrvfail, topRefused        sketch.TopN
	topNodata, topNoerror, topRespBytes  sketch.TopN
	topQueryECS, topGeoLocECS, topASNECS sketch.TopN
	// Small key spaces are counted exactly (no sketch error, no purges, no hashing).
	topPorts, topRcode, topQtype sketch.Counts16
}

func (b *bucket) Reset() { *b = bucket{} }

func (b *bucket) counters() []*uint64 {
	return []*uint64{&b.events, &b.deepSamples, &b.queries, &b.replies, &b.tcp, &b.udp, &b.ipv4, &b.ipv6,
		&b.noerror, &b.nxdomain, &b.srvfail, &b.refused, &b.nodata, &b.total, &b.filtered, &b.queryECS,
		&b.xactTotal, &b.xactTimedOut, &b.dot, &b.doh, &b.dnscryptUDP, &b.dnscryptTCP, &b.doq}
}

func (b *bucket) tops() []*sketch.TopN {
	return []*sketch.TopN{&b.topQname2, &b.topQname3, &b.topNX,
		&b.topSrvfail, &b.topRefused, &b.topNodata, &b.topNoerror, &b.topRespBytes, &b.topQueryECS,
		&b.topGeoLocECS, &b.topASNECS}
}

func (b *bucket) Merge(o *bucket) {
	oc := o.counters()
	for i, c := range b.counters() {
		*c += *oc[i]
	}
	ot := o.tops()
	for i, t := range b.tops() {
		t.Merge(ot[i])
	}
	b.topPorts.Merge(&o.topPorts)
	b.topRcode.Merge(&o.topRcode)
	b.topQtype.Merge(&o.topQtype)
	b.ratesTotal.Merge(&o.ratesTotal)
	b.ratesEvents.Merge(&o.ratesEvents)
	_ = b.qnameCard.Merge(&o.qnameCard)
	b.xin.merge(&o.xin)
	b.xout.merge(&o.xout)
	b.xactRatio.Merge(&o.xactRatio)
}

// xactDir holds the transactions of one direction.
type xactDir struct {
	total uint64
	us    sketch.Quantiles // latency, µs
	hist  sketch.Histogram
	slow  sketch.TopN // names at or above the previous period's p90
}

func (d *xactDir) merge(o *xactDir) {
	d.total += o.total
	d.us.Merge(&o.us)
	d.hist.Merge(&o.hist)
	d.slow.Merge(&o.slow)
}

// Instance is the handler on one worker.
type Instance struct {
	spec  *Spec
	geo   *geo.Lookup
	ring  *metrics.Ring[bucket, *bucket]
	xacts *xactTable
	// Slow-transaction thresholds: the p90 of the previous period, per direction (µs; 0 = none
	// yet). Set from the merge of all workers, so they do not depend on the worker count.
	slowIn, slowOut float64
	key             []byte // scratch for keys built per message
	sweepTick       uint32
}

// NewInstance implements handler.Spec.
func (s *Spec) NewInstance(env *handler.Env) handler.Handler {
	return &Instance{
		spec:  s,
		geo:   env.Geo,
		ring:  metrics.NewRing(s.common.Window.NumPeriods, 0, func() *bucket { return &bucket{} }),
		xacts: newXactTable(MaxOpenXacts),
		key:   make([]byte, 0, 256),
	}
}

func (h *Instance) Wants() handler.Wants             { return handler.WantDNS }
func (h *Instance) Packet(*handler.PacketEvent) bool { return true }
func (h *Instance) TCPReassemblyErrors(uint64)       {}
func (h *Instance) Drops(uint64, uint64)             {}
func (h *Instance) Start(tsNs int64)                 { h.ring.SetStart(tsNs) }
func (h *Instance) End(tsNs int64)                   { h.sweepAll(tsNs); h.closeRates(); h.ring.Close(tsNs) }
func (h *Instance) Shift(tsNs int64)                 { h.sweepAll(tsNs); h.closeRates(); h.ring.Shift(tsNs) }
func (h *Instance) Tick(tsNs int64) {
	b := h.ring.Live()
	b.ratesTotal.Tick(tsNs / 1e9)
	b.ratesEvents.Tick(tsNs / 1e9)
}
func (h *Instance) OpenTransactions() int       { return h.xacts.open() }
func (h *Instance) EvictedTransactions() uint64 { return h.xacts.evicted }

// sweepAll counts the queries whose TTL elapsed by tsNs in the bucket that is closing, so a
// timeout lands in the period in which it happened.
func (h *Instance) sweepAll(tsNs int64) {
	if n := h.xacts.sweep(tsNs-h.spec.xactTTLNs, 0); n > 0 && h.spec.common.Groups&grpXact != 0 {
		h.ring.Live().xactTimedOut += n
	}
}

func (h *Instance) closeRates() {
	b := h.ring.Live()
	b.ratesTotal.Flush()
	b.ratesEvents.Flush()
}

// predicateMiss implements the reference's UDP predicates: with only_rcode or only_qname set,
// a UDP message that does not match never reaches the handler (it is not even an event);
// queries never match only_rcode.
func (h *Instance) predicateMiss(ev *handler.DNSEvent) bool {
	s := h.spec
	m := ev.Msg
	if len(s.onlyRcode) > 0 && (!m.QR || !containsU16(s.onlyRcode, uint16(m.Rcode))) {
		return true
	}
	if len(s.onlyQname) > 0 && (!ev.QuestionOK || !containsName(s.onlyQname, m.QName())) {
		return true
	}
	return false
}

func containsU16(set []uint16, v uint16) bool {
	for _, x := range set {
		if x == v {
			return true
		}
	}
	return false
}

func containsName(set []string, name []byte) bool {
	for _, n := range set {
		if n == string(name) {
			return true
		}
	}
	return false
}

// filtered applies the v1 filters in the reference's order. suffix is the length of the
// matched only_qname_suffix entry (it changes name aggregation), or 0.
func (h *Instance) filtered(ev *handler.DNSEvent) (out bool, suffix int) {
	s := h.spec
	m := ev.Msg
	if s.excludeNoerror && m.Rcode == rcodeNoError {
		return true, 0
	}
	if len(s.onlyRcode) > 0 && !containsU16(s.onlyRcode, uint16(m.Rcode)) {
		return true, 0
	}
	if s.answerCount >= 0 && int(m.ANCount) != s.answerCount {
		return true, 0
	}
	if s.onlyQueries && m.QR {
		return true, 0
	}
	if s.onlyResponses && !m.QR {
		return true, 0
	}
	if s.onlyDNSSEC && (!m.QR || m.ANCount == 0 || !m.HasRRSIG) {
		return true, 0
	}
	if len(s.onlyQtype) > 0 && (!ev.QuestionOK || !containsU16(s.onlyQtype, m.QType)) {
		return true, 0
	}
	if len(s.onlyQname) > 0 && (!ev.QuestionOK || !containsName(s.onlyQname, m.QName())) {
		return true, 0
	}
	if len(s.onlyQnameSuffix) > 0 {
		if !ev.QuestionOK {
			return true, 0
		}
		name := m.QName()
		for _, suf := range s.onlyQnameSuffix {
			if bytes.HasSuffix(name, []byte(suf)) {
				suffix = len(suf)
				break
			}
		}
		if suffix == 0 {
			return true, 0
		}
	}
	if s.geoNotFound || s.asnNotFound {
		// Only queries carrying an ECS subnet whose lookup finds nothing pass.
		if m.QR || !m.HasECS || h.geo == nil {
			return true, 0
		}
		addr := m.ECSAddr[:ecsAddrLen(m)]
		if s.geoNotFound && (!h.geo.CityEnabled() || h.geo.City(addr).Location != "Unknown") {
			return true, 0
		}
		if s.asnNotFound && (!h.geo.ASNEnabled() || h.geo.ASN(addr) != "Unknown") {
			return true, 0
		}
	}
	return false, suffix
}

func ecsAddrLen(m *dnswire.Message) int {
	if m.ECSFamily == 1 {
		return 4
	}
	return 16
}

// DNS implements handler.Handler: the hot path.
func (h *Instance) DNS(ev *handler.DNSEvent) bool {
	s := h.spec
	m := ev.Msg
	if ev.Transport == handler.TransportUDP && (len(s.onlyRcode) > 0 || len(s.onlyQname) > 0) && h.predicateMiss(ev) {
		return false
	}
	if s.needScan {
		_ = ev.Records() // a record section that does not parse leaves what was found before it
	}
	g := s.common.Groups
	p := ev.Pkt
	sec := p.TS / 1e9
	b, deep := h.event(ev)
	suffix := 0
	if s.filtering {
		var out bool
		if out, suffix = h.filtered(ev); out {
			b.filtered++
			return false
		}
	}
	b.total++
	b.ratesTotal.Add(sec, 1)

	if g&grpCounters != 0 {
		if m.QR {
			b.replies++
		} else {
			b.queries++
		}
		if ev.Transport == handler.TransportTCP {
			b.tcp++
		} else {
			b.udp++
		}
		countL3(b, p.L3)
		countRcode(b, m)
	}
	return h.content(ev, b, deep, suffix)
}

func countL3(b *bucket, l3 decode.L3) {
	switch l3 {
	case decode.L3IPv4:
		b.ipv4++
	case decode.L3IPv6:
		b.ipv6++
	}
}

// countRcode counts a reply's rcode.
func countRcode(b *bucket, m *dnswire.Message) {
	if !m.QR {
		return
	}
	switch m.Rcode {
	case rcodeNoError:
		b.noerror++
		if m.ANCount == 0 {
			b.nodata++
		}
	case rcodeNXDomain:
		b.nxdomain++
	case rcodeServFail:
		b.srvfail++
	case rcodeRefused:
		b.refused++
	}
}

// Dnstap counts one dnstap message (spec §2.2). ev.Pkt describes the message, not a packet:
// TS from the message's query or response time, L3 from socket_family, L4 from
// ev.Transport (from socket_protocol: UDP and TCP count as such, DoT, DoH, DNSCrypt and DoQ in
// their own counters, wire_packets.dot/doh/dnscrypt_udp/dnscrypt_tcp/doq).
// ev.Msg is the parsed query_message or response_message when hasMsg; without one only the
// events, rates, totals and the transport, family and query/reply counters move. Queries and
// replies are told by the message type, and of the filters only dnstap_msg_type applies.
// Transactions pair when the worker gives a query and its response the same FlowHash.
func (h *Instance) Dnstap(ev *handler.DNSEvent, typ dnstap.MessageType, hasMsg bool) bool {
	s := h.spec
	g := s.common.Groups
	p := ev.Pkt
	sec := p.TS / 1e9
	b, deep := h.event(ev)
	if q := s.dnstapQuery; q != 0 && typ != q && typ != q+1 {
		b.filtered++
		return false
	}
	b.total++
	b.ratesTotal.Add(sec, 1)
	if g&grpCounters != 0 {
		switch {
		case typ.IsQuery():
			b.queries++
		case typ.IsResponse():
			b.replies++
		}
		switch ev.Transport {
		case handler.TransportUDP:
			b.udp++
		case handler.TransportTCP:
			b.tcp++
		case handler.TransportDoT:
			b.dot++
		case handler.TransportDoH:
			b.doh++
		case handler.TransportDNSCryptUDP:
			b.dnscryptUDP++
		case handler.TransportDNSCryptTCP:
			b.dnscryptTCP++
		case handler.TransportDoQ:
			b.doq++
		}
		countL3(b, p.L3)
		if hasMsg {
			countRcode(b, ev.Msg)
		}
	}
	if !hasMsg {
		return true
	}
	if s.needScan {
		_ = ev.Records()
	}
	return h.content(ev, b, deep, 0)
}

// content counts what a message's content says (transactions, tops, cardinality) once it
// passed the filters; suffix is the matched only_qname_suffix length, or 0.
func (h *Instance) content(ev *handler.DNSEvent, b *bucket, deep bool, suffix int) bool {
	s := h.spec
	g := s.common.Groups
	m := ev.Msg

	// The name is hashed once and serves the transaction check, the cardinality and the tops.
	var nameHash, qhash uint64
	if ev.QuestionOK {
		nameHash = sketch.Hash(m.QName())
		qhash = nameHash ^ uint64(m.QType)<<48 | 1
	}
	if g&grpXact != 0 {
		h.transaction(ev, b, deep, qhash)
	}
	if !deep {
		return true
	}
	if m.QR {
		b.topRcode.Add(uint16(m.Rcode), 1)
	}
	if g&grpTopPorts != 0 {
		b.topPorts.Add(ev.Port, 1)
	}
	if g&grpTopECS != 0 && !m.QR && m.HasECS {
		h.ecs(m, b, g)
	}
	if !ev.QuestionOK {
		return true
	}
	b.topQtype.Add(m.QType, 1)

	name := m.QName()
	if len(name) == 0 {
		return true // the root name: no cardinality, no aggregation (as the reference)
	}
	if g&grpCardinality != 0 {
		b.qnameCard.InsertHash(nameHash)
	}
	if g&grpTopQnames == 0 {
		return true
	}
	if suffix == 0 && s.publicSuffixList {
		suffix = dnswire.PublicSuffixSize(name)
	}
	q2, q3 := dnswire.AggregateDomain(name, suffix)
	b.topQname2.Update(q2, sketch.Hash(q2), 1)
	if len(q3) > 0 {
		b.topQname3.Update(q3, sketch.Hash(q3), 1)
	}
	if !m.QR {
		return true
	}
	switch m.Rcode {
	case rcodeNXDomain:
		b.topNX.Update(name, nameHash, 1)
	case rcodeServFail:
		b.topSrvfail.Update(name, nameHash, 1)
	case rcodeRefused:
		b.topRefused.Update(name, nameHash, 1)
	case rcodeNoError:
		if m.ANCount == 0 {
			b.topNodata.Update(name, nameHash, 1)
		}
		if g&grpTopQnamesDetails != 0 {
			b.topNoerror.Update(name, nameHash, 1)
		}
	}
	if g&grpTopQnamesDetails != 0 {
		b.topRespBytes.Update(name, nameHash, uint64(m.Size))
	}
	return true
}

// ecs counts a query's client subnet and the subnet's location and ASN.
func (h *Instance) ecs(m *dnswire.Message, b *bucket, g uint32) {
	if g&grpCounters != 0 {
		b.queryECS++
	}
	h.key = m.AppendECSText(h.key[:0])
	b.topQueryECS.Update(h.key, sketch.Hash(h.key), 1)
	if h.geo == nil {
		return
	}
	addr := m.ECSAddr[:ecsAddrLen(m)]
	if h.geo.CityEnabled() {
		h.key = metrics.AppendGeoKey(h.key[:0], h.geo.City(addr))
		b.topGeoLocECS.Update(h.key, sketch.Hash(h.key), 1)
	}
	if h.geo.ASNEnabled() {
		h.key = append(h.key[:0], h.geo.ASN(addr)...)
		b.topASNECS.Update(h.key, sketch.Hash(h.key), 1)
	}
}

// transaction pairs queries and replies by flow and DNS ID, confirmed by the question.
func (h *Instance) transaction(ev *handler.DNSEvent, b *bucket, deep bool, qhash uint64) {
	m := ev.Msg
	k := xactKey{flow: ev.FlowHash, id: m.ID}
	if !m.QR {
		h.xacts.start(k, ev.Pkt.TS, qhash, m.Size)
		return
	}
	q, res := h.xacts.end(k, qhash, ev.Pkt.TS-h.spec.xactTTLNs)
	switch res {
	case endNone:
		return
	case endExpired:
		b.xactTimedOut++
		return
	}
	elapsedUs := float64((ev.Pkt.TS - q.ts) / 1e3)
	if elapsedUs < 0 {
		elapsedUs = 0
	}
	b.xactTotal++
	g := h.spec.common.Groups
	var dir *xactDir
	var slow float64
	switch ev.Dir {
	case hostspec.ToHost: // the reply came to the host: the host was the client
		dir, slow = &b.xout, h.slowOut
	case hostspec.FromHost: // the host answered: it was the server
		dir, slow = &b.xin, h.slowIn
	}
	if dir != nil {
		dir.total++
		if deep {
			if g&grpQuantiles != 0 {
				dir.us.Add(elapsedUs)
			}
			if g&grpHistograms != 0 {
				dir.hist.Add(uint64(elapsedUs))
			}
			if slow > 0 && elapsedUs >= slow && ev.QuestionOK {
				orig := m.QNameOrig()
				dir.slow.Update(orig, sketch.Hash(orig), 1)
			}
		}
	}
	if deep && g&grpQuantiles != 0 && q.qsize > 0 {
		b.xactRatio.Add(float64(m.Size) / float64(q.qsize))
	}
}

// event counts a DNS event of any source in the live bucket (events, deep samples, event
// rate) and times out transactions on event time, whatever happens to the message next.
func (h *Instance) event(ev *handler.DNSEvent) (*bucket, bool) {
	s := h.spec
	b := h.ring.Live()
	if h.sweepTick++; h.sweepTick&(sweepEvery-1) == 0 {
		if n := h.xacts.sweep(ev.Pkt.TS-s.xactTTLNs, sweepEvery*sweepStep); n > 0 && s.common.Groups&grpXact != 0 {
			b.xactTimedOut += n
		}
	}
	deep := handler.Deep(s.common.Window.DeepSampleRate, ev.Rand)
	b.events++
	if deep {
		b.deepSamples++
	}
	b.ratesEvents.Add(ev.Pkt.TS/1e9, 1)
	return b, deep
}
