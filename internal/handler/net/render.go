package net

import (
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

func d(schema, help string, name ...string) *metrics.Desc {
	return &metrics.Desc{Schema: schema, Name: name, Help: help}
}

var (
	dPpsIn       = d(Schema, "Rate of ingress packets", "rates", "pps_in")
	dPpsOut      = d(Schema, "Rate of egress packets", "rates", "pps_out")
	dPpsTotal    = d(Schema, "Rate of all packets (combined ingress and egress)", "rates", "pps_total")
	dBytesIn     = d("payload", "Data rate of bytes ingress", "rates", "bytes_in")
	dBytesOut    = d("payload", "Data rate of bytes egress", "rates", "bytes_out")
	dBytesTotal  = d("payload", "Data rate of all bytes (combined ingress and egress)", "rates", "bytes_total")
	dPpsEvents   = d(Schema, "Rate of all packets events (including filtered)", "rates", "pps_events")
	dEvents      = d(Schema, "Total packets events generated", "events")
	dDeepSamples = d(Schema, "Total packets that were sampled for deep inspection", "deep_samples")
	dUDP         = d(Schema, "Total UDP packets", "udp")
	dTCP         = d(Schema, "Total TCP packets", "tcp")
	dSyn         = d(Schema, "Total TCP packets with SYN flag", "protocol", "tcp", "syn")
	dOther       = d(Schema, "Total packets with other than TCP and UDP transport", "other_l4")
	dIPv4        = d(Schema, "Total IPv4 packets", "ipv4")
	dIPv6        = d(Schema, "Total IPv6 packets", "ipv6")
	dIn          = d(Schema, "Total ingress packets", "in")
	dOut         = d(Schema, "Total egress packets", "out")
	dUnknown     = d(Schema, "Total unknown direction packets", "unknown_dir")
	dTotal       = d(Schema, "Total packets", "total")
	dFiltered    = d(Schema, "Total packets that did not match the configured filter(s) (if any)", "filtered")
	dSrcIPsIn    = d(Schema, "Source IP cardinality", "cardinality", "src_ips_in")
	dDstIPsOut   = d(Schema, "Destination IP cardinality", "cardinality", "dst_ips_out")
	dTopIPv4     = d(Schema, "Top IPv4 IP addresses", "top_ipv4")
	dTopIPv6     = d(Schema, "Top IPv6 IP addresses", "top_ipv6")
	dTopGeoLoc   = d(Schema, "Top GeoIP locations", "top_geoLoc")
	dTopASN      = d(Schema, "Top ASNs by IP", "top_ASN")
	dPayloadSize = d(Schema, "Quantiles of payload sizes, in bytes", "payload_size")
)

// Render implements handler.Spec: merge the selection over the workers' instances, then emit
// every metric in the reference's Prometheus order.
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
	sink.Rate(dPpsIn, &b.ppsIn, live)
	sink.Rate(dPpsOut, &b.ppsOut, live)
	sink.Rate(dPpsTotal, &b.ppsTotal, live)
	sink.Rate(dBytesIn, &b.bytesIn, live)
	sink.Rate(dBytesOut, &b.bytesOut, live)
	sink.Rate(dBytesTotal, &b.bytesTotal, live)
	sink.Rate(dPpsEvents, &b.ppsEvents, live)
	sink.Counter(dEvents, b.events)
	sink.Counter(dDeepSamples, b.deepSamples)
	if g&grpCounters != 0 {
		sink.Counter(dUDP, b.udp)
		sink.Counter(dTCP, b.tcp)
		sink.Counter(dSyn, b.tcpSyn)
		sink.Counter(dOther, b.otherL4)
		sink.Counter(dIPv4, b.ipv4)
		sink.Counter(dIPv6, b.ipv6)
		sink.Counter(dIn, b.in)
		sink.Counter(dOut, b.out)
		sink.Counter(dUnknown, b.unknownDir)
		sink.Counter(dTotal, b.total)
		sink.Counter(dFiltered, b.filtered)
	}
	if g&grpCardinality != 0 {
		sink.Cardinality(dSrcIPsIn, b.srcIPsIn.Estimate())
		sink.Cardinality(dDstIPsOut, b.dstIPsOut.Estimate())
	}
	if g&grpTopIPs != 0 {
		sink.TopN(dTopIPv4, "ipv4", metrics.TopItems(&b.topIPv4, w, metrics.IPKey))
		sink.TopN(dTopIPv6, "ipv6", metrics.TopItems(&b.topIPv6, w, metrics.IPKey))
	}
	if g&grpTopGeo != 0 {
		sink.TopN(dTopGeoLoc, "geo_loc", metrics.TopItems(&b.topGeoLoc, w, metrics.GeoKey))
		sink.TopN(dTopASN, "asn", metrics.TopItems(&b.topASN, w, metrics.StringKey))
	}
	sink.Quantiles(dPayloadSize, &b.payloadSize, false)
}
