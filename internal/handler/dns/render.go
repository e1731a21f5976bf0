package dns

import (
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

func d(help string, name ...string) *metrics.Desc {
	return &metrics.Desc{Schema: Schema, Name: name, Help: help}
}

var (
	dRatesTotal   = d("Rate of all DNS wire packets (combined ingress and egress) in packets per second", "rates", "total")
	dRatesEvents  = d("Rate of all DNS wire packets before filtering per second", "rates", "events")
	dEvents       = d("Total DNS wire packets events", "wire_packets", "events")
	dDeepSamples  = d("Total DNS wire packets that were sampled for deep inspection", "wire_packets", "deep_samples")
	dQueries      = d("Total DNS wire packets flagged as query (ingress and egress)", "wire_packets", "queries")
	dReplies      = d("Total DNS wire packets flagged as reply (ingress and egress)", "wire_packets", "replies")
	dTCP          = d("Total DNS wire packets received over TCP (ingress and egress)", "wire_packets", "tcp")
	dUDP          = d("Total DNS wire packets received over UDP (ingress and egress)", "wire_packets", "udp")
	dDoT          = d("Total DNS messages over DNS-over-TLS (dnstap socket_protocol; ingress and egress)", "wire_packets", "dot")
	dDoH          = d("Total DNS messages over DNS-over-HTTPS (dnstap socket_protocol; ingress and egress)", "wire_packets", "doh")
	dDNSCryptUDP  = d("Total DNS messages over DNSCrypt on UDP (dnstap socket_protocol; ingress and egress)", "wire_packets", "dnscrypt_udp")
	dDNSCryptTCP  = d("Total DNS messages over DNSCrypt on TCP (dnstap socket_protocol; ingress and egress)", "wire_packets", "dnscrypt_tcp")
	dDoQ          = d("Total DNS messages over DNS-over-QUIC (dnstap socket_protocol; ingress and egress)", "wire_packets", "doq")
	dIPv4         = d("Total DNS wire packets received over IPv4 (ingress and egress)", "wire_packets", "ipv4")
	dIPv6         = d("Total DNS wire packets received over IPv6 (ingress and egress)", "wire_packets", "ipv6")
	dNX           = d("Total DNS wire packets flagged as reply with return code NXDOMAIN (ingress and egress)", "wire_packets", "nxdomain")
	dRefused      = d("Total DNS wire packets flagged as reply with return code REFUSED (ingress and egress)", "wire_packets", "refused")
	dSrvfail      = d("Total DNS wire packets flagged as reply with return code SRVFAIL (ingress and egress)", "wire_packets", "srvfail")
	dNoerror      = d("Total DNS wire packets flagged as reply with return code NOERROR (ingress and egress)", "wire_packets", "noerror")
	dNodata       = d("Total DNS wire packets flagged as reply with return code NOERROR and no answer section data (ingress and egress)", "wire_packets", "nodata")
	dTotal        = d("Total DNS wire packets matching the configured filter(s)", "wire_packets", "total")
	dFiltered     = d("Total DNS wire packets seen that did not match the configured filter(s) (if any)", "wire_packets", "filtered")
	dQnameCard    = d("Cardinality of unique QNAMES, both ingress and egress", "cardinality", "qname")
	dXactTotal    = d("Total DNS transactions (query/reply pairs)", "xact", "counts", "total")
	dXactTimedOut = d("Total number of DNS transactions that timed out", "xact", "counts", "timed_out")
	dXactInTotal  = d("Total ingress DNS transactions (host is server)", "xact", "in", "total")
	dXactInSlow   = d("Top QNAMES in transactions where host is the server and transaction speed is slower than p90", "xact", "in", "top_slow")
	dXactOutUs    = d("Quantiles of transaction timing (query/reply pairs) when host is client, in microseconds", "xact", "out", "quantiles_us")
	dXactInUs     = d("Quantiles of transaction timing (query/reply pairs) when host is server, in microseconds", "xact", "in", "quantiles_us")
	dXactRatio    = d("Quantiles of ratio of packet sizes in a DNS transaction (reply/query)", "xact", "ratio", "quantiles")
	dXactOutHist  = d("Histogram of transaction timing (query/reply pairs) when host is client, in microseconds", "xact", "out", "histogram_us")
	dXactInHist   = d("Histogram of transaction timing (query/reply pairs) when host is server, in microseconds", "xact", "in", "histogram_us")
	dXactOutTotal = d("Total egress DNS transactions (host is client)", "xact", "out", "total")
	dXactOutSlow  = d("Top QNAMES in transactions where host is the client and transaction speed is slower than p90", "xact", "out", "top_slow")
	dTopPorts     = d("Top client source port numbers", "top_udp_ports")
	dQueryECS     = d("Total queries that have EDNS Client Subnet (ECS) field set", "wire_packets", "query_ecs")
	dTopGeoLocECS = d("Top GeoIP ECS locations", "top_geoLoc_ecs")
	dTopASNECS    = d("Top ASNs by ECS", "top_asn_ecs")
	dTopQueryECS  = d("Top EDNS Client Subnet (ECS) observed in DNS queries", "top_query_ecs")
	dTopQname2    = d("Top QNAMES, aggregated at a depth of two labels", "top_qname2")
	dTopQname3    = d("Top QNAMES, aggregated at a depth of three labels", "top_qname3")
	dTopNX        = d("Top QNAMES with result code NXDOMAIN", "top_nxdomain")
	dTopRefused   = d("Top QNAMES with result code REFUSED", "top_refused")
	dTopSrvfail   = d("Top QNAMES with result code SRVFAIL", "top_srvfail")
	dTopNodata    = d("Top QNAMES with result code NOERROR and no answer section", "top_nodata")
	dTopRespBytes = d("Top QNAMES by response volume in bytes", "top_qname_by_resp_bytes")
	dTopNoerror   = d("Top QNAMES with result code NOERROR", "top_noerror")
	dTopRcode     = d("Top result codes", "top_rcode")
	dTopQtype     = d("Top query types", "top_qtype")
)

var (
	rcodeKey = metrics.Uint16NameKey(dnswire.RcodeName)
	qtypeKey = metrics.Uint16NameKey(dnswire.QTypeName)
)

// Render implements handler.Spec.
func (s *Spec) Render(instances []handler.Handler, sel metrics.Selection, sink metrics.Sink, nowNs int64) (metrics.RenderedPeriod, error) {
	b, rp, err := handler.MergeInstances(instances, func(h *Instance) *metrics.Ring[bucket, *bucket] { return h.ring },
		sel, s.common.Recorded, nowNs)
	if err != nil {
		return rp, err
	}
	s.render(b, rp.Live, sink)
	return rp, nil
}

func (s *Spec) render(b *bucket, live bool, sink metrics.Sink) {
	g := s.common.Groups
	w := s.common.Window
	has := func(groups uint32) bool { return g&groups == groups }
	sink.Rate(dRatesTotal, &b.ratesTotal, live)
	sink.Rate(dRatesEvents, &b.ratesEvents, live)
	sink.Counter(dEvents, b.events)
	sink.Counter(dDeepSamples, b.deepSamples)
	if has(grpCounters) {
		sink.Counter(dQueries, b.queries)
		sink.Counter(dReplies, b.replies)
		sink.Counter(dTCP, b.tcp)
		sink.Counter(dUDP, b.udp)
		// Only dnstap reports these transports. They are printed when not zero, so packet
		// inputs (and dnstap of plain UDP/TCP) keep the reference's closed wire_packets schema.
		for _, c := range []struct {
			d *metrics.Desc
			v uint64
		}{{dDoT, b.dot}, {dDoH, b.doh}, {dDNSCryptUDP, b.dnscryptUDP}, {dDNSCryptTCP, b.dnscryptTCP}, {dDoQ, b.doq}} {
			if c.v != 0 {
				sink.Counter(c.d, c.v)
			}
		}
		sink.Counter(dIPv4, b.ipv4)
		sink.Counter(dIPv6, b.ipv6)
		sink.Counter(dNX, b.nxdomain)
		sink.Counter(dRefused, b.refused)
		sink.Counter(dSrvfail, b.srvfail)
		sink.Counter(dNoerror, b.noerror)
		sink.Counter(dNodata, b.nodata)
		sink.Counter(dTotal, b.total)
		sink.Counter(dFiltered, b.filtered)
	}
	if has(grpCardinality) {
		sink.Cardinality(dQnameCard, b.qnameCard.Estimate())
	}
	if has(grpXact) {
		sink.Counter(dXactTotal, b.xactTotal)
		sink.Counter(dXactTimedOut, b.xactTimedOut)
		sink.Counter(dXactInTotal, b.xin.total)
		sink.TopN(dXactInSlow, "qname", metrics.TopItems(&b.xin.slow, w, metrics.StringKey))
		if has(grpQuantiles) {
			sink.Quantiles(dXactOutUs, &b.xout.us, false)
			sink.Quantiles(dXactInUs, &b.xin.us, false)
			sink.Quantiles(dXactRatio, &b.xactRatio, true)
		}
		if has(grpHistograms) {
			sink.Histogram(dXactOutHist, &b.xout.hist)
			sink.Histogram(dXactInHist, &b.xin.hist)
		}
		sink.Counter(dXactOutTotal, b.xout.total)
		sink.TopN(dXactOutSlow, "qname", metrics.TopItems(&b.xout.slow, w, metrics.StringKey))
	}
	if has(grpTopPorts) {
		sink.TopN(dTopPorts, "port", metrics.TopItems(&b.topPorts, w, metrics.Uint16Key))
	}
	if has(grpTopECS) {
		if has(grpCounters) {
			sink.Counter(dQueryECS, b.queryECS)
		}
		sink.TopN(dTopGeoLocECS, "geo_loc", metrics.TopItems(&b.topGeoLocECS, w, metrics.GeoKey))
		sink.TopN(dTopASNECS, "asn", metrics.TopItems(&b.topASNECS, w, metrics.StringKey))
		sink.TopN(dTopQueryECS, "ecs", metrics.TopItems(&b.topQueryECS, w, metrics.StringKey))
	}
	if has(grpTopQnames) {
		sink.TopN(dTopQname2, "qname", metrics.TopItems(&b.topQname2, w, metrics.StringKey))
		sink.TopN(dTopQname3, "qname", metrics.TopItems(&b.topQname3, w, metrics.StringKey))
		sink.TopN(dTopNX, "qname", metrics.TopItems(&b.topNX, w, metrics.StringKey))
		sink.TopN(dTopRefused, "qname", metrics.TopItems(&b.topRefused, w, metrics.StringKey))
		sink.TopN(dTopSrvfail, "qname", metrics.TopItems(&b.topSrvfail, w, metrics.StringKey))
		sink.TopN(dTopNodata, "qname", metrics.TopItems(&b.topNodata, w, metrics.StringKey))
		if has(grpTopQnamesDetails) {
			sink.TopN(dTopRespBytes, "qname", metrics.TopItems(&b.topRespBytes, w, metrics.StringKey))
			sink.TopN(dTopNoerror, "qname", metrics.TopItems(&b.topNoerror, w, metrics.StringKey))
		}
	}
	sink.TopN(dTopRcode, "rcode", metrics.TopItems(&b.topRcode, w, rcodeKey))
	sink.TopN(dTopQtype, "qtype", metrics.TopItems(&b.topQtype, w, qtypeKey))
}

// AfterShift sets every worker's slow-transaction thresholds to the p90 of the bucket that just
// closed, merged over all workers (so the thresholds do not depend on the number of workers).
func (s *Spec) AfterShift(instances []handler.Handler) {
	if s.common.Groups&grpXact == 0 || len(instances) == 0 {
		return
	}
	var in, out sketch.Quantiles
	for _, x := range instances {
		h := x.(*Instance)
		if h.ring.Len() < 2 {
			return
		}
		prev, _ := h.ring.Bucket(1)
		in.Merge(&prev.xin.us)
		out.Merge(&prev.xout.us)
	}
	var pIn, pOut float64
	if in.Count() > 0 {
		pIn = in.Quantile(0.90)
	}
	if out.Count() > 0 {
		pOut = out.Quantile(0.90)
	}
	for _, x := range instances {
		h := x.(*Instance)
		h.slowIn, h.slowOut = pIn, pOut
	}
}
