package reader

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// These tests are the rows of the reference's acceptance oracle (spec §6.1, §6.4, §6.9) that
// concern the net v1, dns v1 and pcap handlers on a pcap input, run through the reader exactly
// as a user would (one cumulative bucket, --periods 1). Where our numbers differ from the
// reference on purpose (IP fragments are reassembled), the row says so and asserts the number
// tshark confirms.

const (
	geoCity = "GeoIP2-City-Test.mmdb"
	geoASN  = "GeoIP2-ISP-Test.mmdb"
	hostNet = "192.168.0.0/24"
)

// card is a cardinality expectation: the exact distinct count within 3 standard errors of the
// HLL sketch (precision 14: 1.04/sqrt(16384) ≈ 0.81 %), at least ±1.
func card(exact int) within {
	return within{float64(exact), math.Max(1, 3*1.04/128*float64(exact))}
}

type specCase struct {
	name    string
	file    string
	host    string
	geo     bool
	yaml    string // handlers: section; empty = default net, dns, pcap
	want    map[string]any
	wantErr string
}

func runSpecCases(t *testing.T, cases []specCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{File: fixture(t, tc.file), Periods: 1, HostSpec: tc.host, ConfigYAML: []byte(tc.yaml), Workers: 2}
			if tc.geo {
				o.GeoCity, o.GeoASN = fixture(t, geoCity), fixture(t, geoASN)
			}
			if tc.wantErr != "" {
				_, err := Run(t.Context(), o)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			check(t, summarize(t, o)["1m"], tc.want)
		})
	}
}

func netModule(extra string) string {
	return "handlers:\n  modules:\n    net:\n      type: net\n" + extra
}

func dnsModule(extra string) string {
	return "handlers:\n  modules:\n    dns:\n      type: dns\n" + extra
}

// §6.1 net v1.
func TestSpecNetV1(t *testing.T) {
	runSpecCases(t, []specCase{
		{name: "UDP IPv4", file: "dns_ipv4_udp.pcap", want: map[string]any{
			"packets.period.start_ts": 1567706414, "packets.period.length": 6,
			"packets.events": 140, "packets.udp": 140, "packets.ipv4": 140, "packets.ipv6": 0}},
		{name: "TCP IPv4", file: "dns_ipv4_tcp.pcap", want: map[string]any{
			"packets.period.start_ts": 1567706433, "packets.events": 2100, "packets.tcp": 2100,
			"packets.protocol.tcp.syn": 420, "packets.ipv4": 2100, "packets.ipv6": 0}},
		{name: "UDP IPv6", file: "dns_ipv6_udp.pcap", want: map[string]any{
			"packets.period.start_ts": 1567706365, "packets.events": 140, "packets.udp": 140,
			"packets.ipv4": 0, "packets.ipv6": 140}},
		{name: "TCP IPv6", file: "dns_ipv6_tcp.pcap", want: map[string]any{
			"packets.period.start_ts": 1567706308, "packets.events": 1800, "packets.tcp": 1800,
			"packets.protocol.tcp.syn": 360, "packets.ipv4": 0, "packets.ipv6": 1800}},
		{name: "random UDP/TCP", file: "dns_udp_tcp_random.pcap", host: hostNet, want: map[string]any{
			"packets.period.start_ts": 1614874231, "packets.events": 16147, "packets.deep_samples": 16147,
			"packets.tcp": 13176, "packets.protocol.tcp.syn": 2846, "packets.udp": 2971, "packets.ipv4": 16147,
			"packets.ipv6": 0, "packets.other_l4": 0, "packets.in": 6648, "packets.out": 9499, "packets.unknown_dir": 0,
			"packets.cardinality.dst_ips_out": 1, "packets.cardinality.src_ips_in": 1,
			"packets.top_ipv4.0.name": "8.8.8.8", "packets.top_ipv4.0.estimate": 16147,
			"packets.payload_size.p50": atLeast(66)}},
		{name: "groups disable cardinality and counters", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml: netModule("      metric_groups:\n        disable: [cardinality, counters]\n"), want: map[string]any{
				"packets.period.start_ts": 1614874231, "packets.events": 16147, "packets.deep_samples": 16147,
				"packets.tcp": absent, "packets.protocol": absent, "packets.udp": absent, "packets.ipv4": absent,
				"packets.ipv6": absent, "packets.other_l4": absent, "packets.in": absent, "packets.out": absent,
				"packets.cardinality": absent, "packets.top_ipv4.0.name": "8.8.8.8", "packets.top_ipv4.0.estimate": 16147}},
		{name: "groups disable top ips and top geo", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml: netModule("      metric_groups:\n        disable: [top_ips, top_geo]\n"), want: map[string]any{
				"packets.events": 16147, "packets.tcp": 13176, "packets.udp": 2971, "packets.ipv4": 16147,
				"packets.ipv6": 0, "packets.other_l4": 0, "packets.in": 6648, "packets.out": 9499,
				"packets.cardinality.dst_ips_out": 1, "packets.cardinality.src_ips_in": 1,
				"packets.top_ipv4": absent, "packets.top_geoLoc": absent}},
		{name: "groups disable invalid", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml:    netModule("      metric_groups:\n        disable: [top_ips, rates]\n"),
			wantErr: "rates is an invalid/unsupported metric group. The valid groups are: all, cardinality, counters, top_geo, top_ips"},
		{name: "groups enable invalid", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml:    netModule("      metric_groups:\n        enable: [top_ips, rates]\n"),
			wantErr: "rates is an invalid/unsupported metric group. The valid groups are: all, cardinality, counters, top_geo, top_ips"},
		{name: "geoloc not found", file: "dns_udp_mixed_rcode.pcap", host: hostNet, geo: true,
			yaml: netModule("      filter:\n        geoloc_notfound: true\n"), want: map[string]any{
				"packets.top_ipv4.0.name": oneOf{"198.51.44.1", "216.239.38.10"}, "packets.top_ipv4.0.estimate": 4,
				"packets.top_geoLoc.0.name": "Unknown", "packets.top_geoLoc.0.estimate": 24}},
		{name: "asn not found", file: "dns_udp_mixed_rcode.pcap", host: hostNet, geo: true,
			yaml: netModule("      filter:\n        asn_notfound: true\n"), want: map[string]any{
				"packets.top_ipv4.0.name": oneOf{"198.51.44.1", "216.239.38.10"}, "packets.top_ipv4.0.estimate": 4,
				"packets.top_ASN.0.name": "Unknown", "packets.top_ASN.0.estimate": 24}},
		{name: "geoloc and asn not found", file: "dns_udp_mixed_rcode.pcap", host: hostNet, geo: true,
			yaml: netModule("      filter:\n        geoloc_notfound: true\n        asn_notfound: true\n"), want: map[string]any{
				"packets.top_ipv4.0.name": oneOf{"198.51.44.1", "216.239.38.10"}, "packets.top_ipv4.0.estimate": 4,
				"packets.top_geoLoc.0.name": "Unknown", "packets.top_geoLoc.0.estimate": 24,
				"packets.top_ASN.0.name": "Unknown", "packets.top_ASN.0.estimate": 24}},
		{name: "geoloc prefix", file: "dns_udp_mixed_rcode.pcap", host: hostNet, geo: true,
			yaml: netModule("      filter:\n        only_geoloc_prefix: [\"NA/United States\"]\n"), want: map[string]any{
				"packets.filtered": 24, "packets.top_geoLoc.0": absent}},
		{name: "asn number", file: "dns_udp_mixed_rcode.pcap", host: hostNet, geo: true,
			yaml: netModule("      filter:\n        only_asn_number: [\"16509\", \"22131\"]\n"), want: map[string]any{
				"packets.filtered": 24, "packets.top_ASN.0": absent}},
		{name: "invalid asn number", file: "dns_udp_mixed_rcode.pcap", host: hostNet, geo: true,
			yaml:    netModule("      filter:\n        only_asn_number: [\"16509/Amazon\"]\n"),
			wantErr: "NetStreamHandler: only_asn_number filter contained an invalid/unsupported value: 16509/Amazon"},
		{name: "invalid config", file: "dns_udp_mixed_rcode.pcap",
			yaml:    netModule("      config:\n        invalid_config: true\n"),
			wantErr: "invalid_config is an invalid/unsupported config or filter. The valid configs/filters are: geoloc_notfound, asn_notfound, only_geoloc_prefix, only_asn_number, recorded_stream, deep_sample_rate, num_periods, topn_count, topn_percentile_threshold"},
	})
}

// qtypes of dns_udp_tcp_random.pcap, in the reference's order (no ties).
var randomQtypes = []struct {
	name string
	n    int
}{{"AAAA", 1476}, {"CNAME", 825}, {"SOA", 794}, {"MX", 757}, {"A", 717}, {"NS", 662}, {"TXT", 620}}

// §6.4 dns v1.
func TestSpecDNSV1(t *testing.T) {
	random := map[string]any{
		"dns.wire_packets.events": 5851, "dns.wire_packets.deep_samples": 5851, "dns.wire_packets.tcp": 2880,
		"dns.wire_packets.udp": 2971, "dns.wire_packets.ipv4": 5851, "dns.wire_packets.ipv6": 0,
		"dns.wire_packets.queries": 2930, "dns.wire_packets.replies": 2921, "dns.xact.counts.total": 2921,
		"dns.xact.in.total": 0, "dns.xact.out.total": 2921, "dns.xact.counts.timed_out": 0,
		"dns.wire_packets.nodata": 2254, "dns.wire_packets.noerror": 2921, "dns.wire_packets.nxdomain": 0,
		"dns.wire_packets.refused": 0, "dns.wire_packets.srvfail": 0,
		// The reference's CPC sketch says 2036; the true number of distinct names is 1999.
		"dns.cardinality.qname": card(1999),
		"dns.top_qname2.0.name": ".test.com", "dns.top_qname2.0.estimate": 5851,
		"dns.top_rcode.0.name": "NOERROR", "dns.top_rcode.0.estimate": 2921,
		"dns.top_udp_ports.0.name": "57975", "dns.top_udp_ports.0.estimate": 302,
		"dns.top_qname_by_resp_bytes.0.name":     "82gdxvz5vp.mmyv7ma0jn.rxst40swe.tcbgtnfa.test.com",
		"dns.top_qname_by_resp_bytes.0.estimate": 290,
	}
	for i, q := range randomQtypes {
		random["dns.top_qtype."+itoa(i)+".name"] = q.name
		random["dns.top_qtype."+itoa(i)+".estimate"] = q.n
	}
	onlyQtype := map[string]any{
		"dns.wire_packets.events": 5851, "dns.wire_packets.deep_samples": 5851, "dns.wire_packets.ipv4": 2096,
		"dns.wire_packets.ipv6": 0, "dns.wire_packets.queries": 1050, "dns.wire_packets.replies": 1046,
		"dns.wire_packets.nodata": 737, "dns.wire_packets.noerror": 1046,
		"dns.top_qtype.0.name": "AAAA", "dns.top_qtype.0.estimate": 1476,
		"dns.top_qtype.1.name": "TXT", "dns.top_qtype.1.estimate": 620, "dns.top_qtype.2": absent,
	}
	dnssec := map[string]any{
		"dns.wire_packets.events": 14, "dns.wire_packets.deep_samples": 14, "dns.wire_packets.tcp": 0,
		"dns.wire_packets.udp": 6, "dns.wire_packets.ipv4": 6, "dns.wire_packets.ipv6": 0,
		"dns.wire_packets.queries": 0, "dns.wire_packets.replies": 6, "dns.wire_packets.noerror": 6,
		"dns.cardinality.qname": 3,
		"dns.top_qtype.0.name":  "DNSKEY", "dns.top_qtype.0.estimate": 3, "dns.top_qtype.1.name": "DS",
		"dns.top_qtype.1.estimate": 2, "dns.top_qtype.2.name": "A", "dns.top_qtype.2.estimate": 1,
	}
	runSpecCases(t, []specCase{
		{name: "UDP IPv4", file: "dns_ipv4_udp.pcap", want: map[string]any{
			"dns.period.start_ts": 1567706414, "dns.period.length": 6, "dns.wire_packets.events": 140,
			"dns.wire_packets.udp": 140, "dns.wire_packets.ipv4": 140, "dns.wire_packets.ipv6": 0,
			"dns.wire_packets.queries": 70, "dns.wire_packets.replies": 70,
			"dns.top_qname2.0.name": ".test.com", "dns.top_qname2.0.estimate": 140}},
		{name: "TCP IPv4", file: "dns_ipv4_tcp.pcap", want: map[string]any{
			"dns.wire_packets.events": 420, "dns.wire_packets.tcp": 420, "dns.wire_packets.ipv4": 420,
			"dns.wire_packets.ipv6": 0, "dns.wire_packets.queries": 210, "dns.wire_packets.replies": 210,
			"dns.top_qname2.0.name": ".test.com", "dns.top_qname2.0.estimate": 420}},
		{name: "UDP IPv6", file: "dns_ipv6_udp.pcap", want: map[string]any{
			"dns.wire_packets.events": 140, "dns.wire_packets.udp": 140, "dns.wire_packets.ipv4": 0,
			"dns.wire_packets.ipv6": 140, "dns.wire_packets.queries": 70, "dns.wire_packets.replies": 70,
			"dns.top_qname2.0.name": ".test.com", "dns.top_qname2.0.estimate": 140}},
		{name: "TCP IPv6", file: "dns_ipv6_tcp.pcap", want: map[string]any{
			"dns.wire_packets.events": 360, "dns.wire_packets.tcp": 360, "dns.wire_packets.ipv4": 0,
			"dns.wire_packets.ipv6": 360, "dns.wire_packets.queries": 180, "dns.wire_packets.replies": 180,
			"dns.top_qname2.0.name": ".test.com", "dns.top_qname2.0.estimate": 360}},
		{name: "random UDP/TCP", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml: dnsModule("      metric_groups:\n        enable: [top_qnames_details]\n"), want: random},
		{name: "exclude_noerror", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      filter:\n        exclude_noerror: true\n"), want: map[string]any{
				"dns.wire_packets.noerror": 0, "dns.wire_packets.srvfail": 0, "dns.wire_packets.refused": 1,
				"dns.wire_packets.nxdomain": 1, "dns.wire_packets.nodata": 0, "dns.wire_packets.filtered": 22}},
		{name: "only_rcode nx", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      filter:\n        only_rcode: 3\n"), want: map[string]any{
				"dns.wire_packets.noerror": 0, "dns.wire_packets.srvfail": 0, "dns.wire_packets.refused": 0,
				"dns.wire_packets.nxdomain": 1, "dns.wire_packets.nodata": 0, "dns.wire_packets.filtered": 0}},
		{name: "only_rcode nx and refused", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      filter:\n        only_rcode: [nxdomain, \"5\"]\n"), want: map[string]any{
				"dns.wire_packets.noerror": 0, "dns.wire_packets.srvfail": 0, "dns.wire_packets.refused": 1,
				"dns.wire_packets.nxdomain": 1, "dns.wire_packets.nodata": 0, "dns.wire_packets.filtered": 0}},
		{name: "only_qtype AAAA and TXT", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml: dnsModule("      filter:\n        only_qtype: [AAAA, TxT]\n"), want: onlyQtype},
		{name: "topn custom size", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml: "handlers:\n  window_config:\n    topn_count: 3\n  modules:\n    dns:\n      type: dns\n", want: map[string]any{
				"dns.cardinality.qname": card(1999),
				"dns.top_qtype.0.name":  "AAAA", "dns.top_qtype.0.estimate": 1476,
				"dns.top_qtype.1.name": "CNAME", "dns.top_qtype.1.estimate": 825,
				"dns.top_qtype.2.name": "SOA", "dns.top_qtype.2.estimate": 794, "dns.top_qtype.3": absent}},
		{name: "only_qname", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      filter:\n        only_qname: [play.GooGle.com, nonexistent.google.com]\n"), want: map[string]any{
				"dns.wire_packets.udp": 6, "dns.wire_packets.noerror": 2, "dns.wire_packets.srvfail": 0,
				"dns.wire_packets.refused": 0, "dns.wire_packets.nxdomain": 1, "dns.wire_packets.nodata": 2,
				"dns.wire_packets.total": 6, "dns.wire_packets.filtered": 0,
				"dns.top_qname2.0.name": ".google.com", "dns.top_qname3.0.name": "play.google.com"}},
		{name: "only_qname_suffix", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      filter:\n        only_qname_suffix: [GooGle.com]\n"), want: map[string]any{
				"dns.wire_packets.udp": 10, "dns.wire_packets.noerror": 4, "dns.wire_packets.srvfail": 0,
				"dns.wire_packets.refused": 0, "dns.wire_packets.nxdomain": 1, "dns.wire_packets.nodata": 2,
				"dns.wire_packets.total": 10, "dns.wire_packets.filtered": 14,
				"dns.top_qname2.0.name": contains("google.com"), "dns.top_qname3.0": absent}},
		{name: "answer_count", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      filter:\n        only_rcode: 0\n        answer_count: 0\n"), want: map[string]any{
				"dns.wire_packets.udp": 4, "dns.wire_packets.noerror": 4, "dns.wire_packets.srvfail": 0,
				"dns.wire_packets.refused": 0, "dns.wire_packets.nxdomain": 0, "dns.wire_packets.nodata": 4,
				"dns.wire_packets.filtered": 6}},
		{name: "only_dnssec_response", file: "dnssec.pcap", host: hostNet,
			yaml: dnsModule("      filter:\n        only_dnssec_response: true\n"), want: dnssec},
		{name: "public_suffix_list", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      config:\n        public_suffix_list: true\n"), want: map[string]any{
				"dns.wire_packets.udp": 24, "dns.wire_packets.noerror": 10, "dns.wire_packets.srvfail": 0,
				"dns.wire_packets.refused": 1, "dns.wire_packets.nxdomain": 1, "dns.wire_packets.filtered": 0,
				"dns.top_qname2.0.name": ".mwbsys.com", "dns.top_qname3.0.name": "sirius.mwbsys.com"}},
		{name: "only_queries", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      config:\n        only_queries: true\n"), want: map[string]any{
				"dns.wire_packets.udp": 12, "dns.wire_packets.noerror": 0, "dns.wire_packets.srvfail": 0,
				"dns.wire_packets.refused": 0, "dns.wire_packets.nxdomain": 0, "dns.wire_packets.filtered": 12,
				"dns.top_qname2.0.name": ".mwbsys.com", "dns.top_qname3.0.name": "sirius.mwbsys.com"}},
		{name: "only_responses", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: dnsModule("      config:\n        only_responses: true\n"), want: map[string]any{
				"dns.wire_packets.udp": 12, "dns.wire_packets.noerror": 10, "dns.wire_packets.srvfail": 0,
				"dns.wire_packets.refused": 1, "dns.wire_packets.nxdomain": 1, "dns.wire_packets.filtered": 12,
				"dns.top_qname2.0.name": ".mwbsys.com", "dns.top_qname3.0.name": "sirius.mwbsys.com"}},
		{name: "groups disable cardinality and counters enable histograms", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml: dnsModule("      metric_groups:\n        disable: [cardinality, counters]\n        enable: [histograms]\n"), want: map[string]any{
				"dns.wire_packets.events": 5851, "dns.wire_packets.deep_samples": 5851, "dns.wire_packets.tcp": absent,
				"dns.wire_packets.udp": absent, "dns.wire_packets.queries": absent, "dns.wire_packets.replies": absent,
				"dns.xact.counts.total": 2921, "dns.xact.in.total": 0, "dns.xact.out.total": 2921,
				"dns.xact.counts.timed_out": 0, "dns.cardinality": absent, "dns.top_qname2.0.name": ".test.com",
				"dns.xact.ratio.quantiles.p50": present, "dns.xact.out.histogram_us.buckets": present}},
		{name: "groups disable top_qnames and dns_transaction", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml: dnsModule("      metric_groups:\n        disable: [top_qnames, dns_transaction]\n"), want: map[string]any{
				"dns.wire_packets.events": 5851, "dns.wire_packets.tcp": 2880, "dns.wire_packets.udp": 2971,
				"dns.wire_packets.queries": 2930, "dns.wire_packets.replies": 2921, "dns.xact": absent,
				"dns.cardinality.qname": card(1999), "dns.top_qname2": absent}},
		{name: "groups invalid", file: "dns_udp_tcp_random.pcap",
			yaml:    dnsModule("      metric_groups:\n        disable: [top_qnames, dns_top_wired]\n"),
			wantErr: "dns_top_wired is an invalid/unsupported metric group. The valid groups are: all, cardinality, counters, dns_transaction, histograms, quantiles, top_ecs, top_ports, top_qnames, top_qnames_details"},
		{name: "only_rcode as string", file: "dns_udp_tcp_random.pcap",
			yaml:    dnsModule("      filter:\n        only_rcode: \"1x\"\n"),
			wantErr: "DnsStreamHandler: wrong value type for only_rcode filter. It should be an integer or an array"},
		{name: "only_rcode invalid", file: "dns_udp_tcp_random.pcap",
			yaml:    dnsModule("      filter:\n        only_rcode: 133\n"),
			wantErr: "DnsStreamHandler: only_rcode filter contained an invalid/unsupported rcode"},
		{name: "only_qtype invalid string", file: "dns_udp_tcp_random.pcap",
			yaml:    dnsModule("      filter:\n        only_qtype: [AAAA, TEXT]\n"),
			wantErr: "DnsStreamHandler: only_qtype filter contained an invalid/unsupported qtype: TEXT"},
		{name: "only_qtype invalid number", file: "dns_udp_tcp_random.pcap",
			yaml:    dnsModule("      filter:\n        only_qtype: [AAAA, \"270\"]\n"),
			wantErr: "DnsStreamHandler: only_qtype filter contained an invalid/unsupported qtype: 270"},
		{name: "answer_count as string", file: "dns_udp_tcp_random.pcap",
			yaml:    dnsModule("      filter:\n        answer_count: \"1x\"\n"),
			wantErr: "DnsStreamHandler: wrong value type for answer_count filter. It should be an integer"},
		{name: "invalid config", file: "dns_udp_tcp_random.pcap",
			yaml:    dnsModule("      config:\n        invalid_config: true\n"),
			wantErr: "invalid_config is an invalid/unsupported config or filter. The valid configs/filters are: exclude_noerror, only_rcode, only_queries, only_responses, only_dnssec_response, answer_count, only_qtype, only_qname, only_qname_suffix, geoloc_notfound, asn_notfound, dnstap_msg_type, public_suffix_list, recorded_stream, xact_ttl_secs, xact_ttl_ms, deep_sample_rate, num_periods, topn_count, topn_percentile_threshold"},
		// ecs.pcap: the reference misses the 7 replies that arrive as IP fragments (4 over IPv4,
		// 3 over IPv6); we reassemble them, so events, udp, ipv4, ipv6, replies and filtered
		// are higher by exactly those (tshark with defragmentation agrees: 43 messages, 10 IPv4,
		// 33 IPv6, 22 queries, 21 replies). The ECS numbers are the reference's.
		{name: "ECS data", file: "ecs.pcap", host: hostNet, geo: true,
			yaml: dnsModule("      metric_groups:\n        enable: [top_ecs]\n"), want: map[string]any{
				"dns.wire_packets.events": 36 + 7, "dns.wire_packets.deep_samples": 36 + 7, "dns.wire_packets.tcp": 4,
				"dns.wire_packets.udp": 32 + 7, "dns.wire_packets.ipv4": 6 + 4, "dns.wire_packets.ipv6": 30 + 3,
				"dns.wire_packets.queries": 22, "dns.wire_packets.replies": 14 + 7, "dns.wire_packets.filtered": 0,
				"dns.wire_packets.query_ecs": 5, "dns.cardinality.qname": 9,
				"dns.top_query_ecs.0.name": "2001:470:1f0b:1600::", "dns.top_query_ecs.0.estimate": 5,
				"dns.top_query_ecs.1":       absent,
				"dns.top_geoLoc_ecs.0.name": "Unknown", "dns.top_geoLoc_ecs.0.estimate": 5,
				"dns.top_asn_ecs.0.name": "Unknown", "dns.top_asn_ecs.0.estimate": 5}},
		{name: "ECS geoloc not found", file: "ecs.pcap", host: hostNet, geo: true,
			yaml: dnsModule("      metric_groups:\n        enable: [top_ecs]\n      filter:\n        geoloc_notfound: true\n"), want: map[string]any{
				"dns.wire_packets.events": 36 + 7, "dns.wire_packets.deep_samples": 36 + 7, "dns.wire_packets.tcp": 0,
				"dns.wire_packets.udp": 5, "dns.wire_packets.ipv4": 1, "dns.wire_packets.ipv6": 4,
				"dns.wire_packets.queries": 5, "dns.wire_packets.replies": 0, "dns.wire_packets.filtered": 31 + 7,
				"dns.wire_packets.query_ecs": 5, "dns.cardinality.qname": 2,
				"dns.top_query_ecs.0.name": "2001:470:1f0b:1600::", "dns.top_query_ecs.0.estimate": 5,
				"dns.top_query_ecs.1": absent, "dns.top_geoLoc_ecs.0.name": "Unknown", "dns.top_geoLoc_ecs.0.estimate": 5}},
		{name: "ECS asn not found", file: "ecs.pcap", host: hostNet, geo: true,
			yaml: dnsModule("      metric_groups:\n        enable: [top_ecs]\n      filter:\n        asn_notfound: true\n"), want: map[string]any{
				"dns.wire_packets.events": 36 + 7, "dns.wire_packets.udp": 5, "dns.wire_packets.ipv4": 1,
				"dns.wire_packets.ipv6": 4, "dns.wire_packets.queries": 5, "dns.wire_packets.replies": 0,
				"dns.wire_packets.filtered": 31 + 7, "dns.wire_packets.query_ecs": 5, "dns.cardinality.qname": 2,
				"dns.top_query_ecs.0.name": "2001:470:1f0b:1600::", "dns.top_query_ecs.0.estimate": 5,
				"dns.top_asn_ecs.0.name": "Unknown", "dns.top_asn_ecs.0.estimate": 5}},
		{name: "config ttl", file: "dns_udp_tcp_random.pcap", host: hostNet,
			yaml: "handlers:\n  window_config:\n    xact_ttl_secs: 2\n  modules:\n    dns:\n      type: dns\n", want: map[string]any{
				"dns.xact.counts.total": 2921}},
	})
}

func itoa(i int) string { return string(rune('0' + i)) }

// §6.1 rows with chained modules (a `modules` sequence): each module sees only what the previous
// one let through.
func TestSpecChains(t *testing.T) {
	cases := []struct {
		name, file, host, yaml string
		geo                    bool
		want                   map[string]any
	}{
		{name: "dns only_qname_suffix then net", file: "dns_udp_mixed_rcode.pcap", host: hostNet,
			yaml: "handlers:\n  modules:\n    - dns:\n        type: dns\n        filter:\n          only_qname_suffix: [google.com]\n    - net:\n        type: net\n",
			want: map[string]any{
				"dns.dns.wire_packets.udp": 10, "dns.dns.wire_packets.ipv4": 10,
				"net.packets.events": 10, "net.packets.tcp": 0, "net.packets.udp": 10, "net.packets.ipv4": 10,
				"net.packets.cardinality.dst_ips_out": 3, "net.packets.cardinality.src_ips_in": 5,
				"net.packets.top_ipv4.0.name": "216.239.38.10", "net.packets.top_ipv4.0.estimate": 4}},
		{name: "net geoloc_notfound then dns", file: "dns_udp_mixed_rcode.pcap", host: hostNet, geo: true,
			yaml: "handlers:\n  modules:\n    - net:\n        type: net\n        filter:\n          geoloc_notfound: true\n    - dns:\n        type: dns\n",
			want: map[string]any{
				"net.packets.events": 24, "net.packets.tcp": 0, "net.packets.udp": 24, "net.packets.ipv4": 24,
				"dns.dns.wire_packets.udp": 24, "dns.dns.wire_packets.ipv4": 24}},
		// The reference's net counted 2310 events here: 2100 packets plus 210 TCP
		// connection-end notifications that it treated as (filtered) packet events. Ours
		// counts packets only.
		{name: "TCP net geo then dns then net then dns", file: "dns_ipv4_tcp.pcap", host: "127.0.0.0/24", geo: true,
			yaml: "handlers:\n  modules:\n    - net:\n        type: net\n        filter:\n          geoloc_notfound: true\n" +
				"    - dns:\n        type: dns\n    - net2:\n        type: net\n    - dns2:\n        type: dns\n",
			want: map[string]any{
				"net.packets.events": 2100, "net.packets.tcp": 2100, "net.packets.ipv4": 2100,
				"dns.dns.wire_packets.tcp": 420, "dns.dns.wire_packets.ipv4": 420,
				"net2.packets.tcp": 420, "net2.packets.ipv4": 420,
				"dns2.dns.wire_packets.tcp": 420, "dns2.dns.wire_packets.ipv4": 420}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{File: fixture(t, tc.file), Periods: 1, HostSpec: tc.host, ConfigYAML: []byte(tc.yaml),
				Workers: 2, ByModule: true}
			if tc.geo {
				o.GeoCity, o.GeoASN = fixture(t, geoCity), fixture(t, geoASN)
			}
			check(t, summarize(t, o)["1m"], tc.want)
		})
	}
}

// §6.10 "Top K Src Ports": a frequent-items sketch of capacity 6 (lg_max_map_size 3) over the
// UDP source ports of dns_ipv4_udp.pcap lists 5 items, port 53000 first with 70.
func TestSpecTopKSrcPorts(t *testing.T) {
	r, err := capture.OpenFile(fixture(t, "dns_ipv4_udp.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	top := sketch.NewTopN(6)
	var dec decode.Decoder
	var p decode.Packet
	var key [2]byte
	for {
		data, info, err := r.Next()
		if err != nil {
			break
		}
		if dec.Decode(info.Link, data, &p) != nil || p.L4 != decode.L4UDP {
			continue
		}
		binary.BigEndian.PutUint16(key[:], p.SrcPort)
		top.Update(key[:], sketch.Hash(key[:]), 1)
	}
	items := top.Items(-1, nil)
	if len(items) != 5 || binary.BigEndian.Uint16([]byte(items[0].Key)) != 53000 || items[0].Estimate != 70 {
		t.Errorf("items %+v: want 5, the first port 53000 with 70", items)
	}
}
