package reader

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"
)

// The reference's window JSON schemas (spec §6.3 net, §6.6 dns, §6.9 pcap) for the merged
// 5-period window of dns_udp_tcp_random.pcap read as a recorded stream. A schema here lists
// the exact keys of an object ("closed") or the keys it must have ("open"), with the JSON
// type of leaves. One deliberate difference: the reference's file windows had no "rates" key
// only because its rates were sampled on wall-clock time and a file is read in less than a
// second; ours are per event-time second, so a recorded stream has real rates. "rates" is the
// one key allowed beyond the reference schemas, and its shape is checked too.

type schema struct {
	closed bool
	keys   map[string]any // key → "int" | "number" | "array" | "topn" | schema
}

var quantilesInt = schema{true, map[string]any{"p50": "int", "p90": "int", "p95": "int", "p99": "int"}}
var quantilesNum = schema{true, map[string]any{"p50": "number", "p90": "number", "p95": "number", "p99": "number"}}
var periodSchema = schema{true, map[string]any{"length": "int", "start_ts": "int"}}

func rateSchemas(names ...string) schema {
	s := schema{true, map[string]any{}}
	for _, n := range names {
		s.keys[n] = quantilesInt
	}
	return s
}

var netSchema = schema{true, map[string]any{
	"cardinality":  schema{true, map[string]any{"dst_ips_out": "int", "src_ips_in": "int"}},
	"deep_samples": "int", "events": "int", "in": "int", "ipv4": "int", "ipv6": "int", "other_l4": "int",
	"out": "int", "filtered": "int", "tcp": "int", "total": "int", "udp": "int", "unknown_dir": "int",
	"period": periodSchema, "payload_size": quantilesInt,
	"protocol": schema{true, map[string]any{"tcp": schema{true, map[string]any{"syn": "int"}}}},
	"top_ASN":  "array", "top_geoLoc": "array", "top_ipv6": "array", "top_ipv4": "topn",
	"rates": rateSchemas("pps_in", "pps_out", "pps_total", "pps_events", "bytes_in", "bytes_out", "bytes_total"),
}}

var dnsSchema = schema{true, map[string]any{
	"cardinality": schema{true, map[string]any{"qname": "int"}},
	"period":      periodSchema,
	"top_asn_ecs": "array", "top_geoLoc_ecs": "array", "top_query_ecs": "array", "top_nodata": "array",
	"top_noerror": "array", "top_nxdomain": "array", "top_refused": "array", "top_qname_by_resp_bytes": "array",
	"top_srvfail": "array", "top_qname2": "topn", "top_qname3": "topn", "top_qtype": "topn", "top_rcode": "topn",
	"top_udp_ports": "topn",
	"wire_packets": schema{true, map[string]any{"deep_samples": "int", "events": "int", "ipv4": "int", "ipv6": "int",
		"nodata": "int", "noerror": "int", "nxdomain": "int", "queries": "int", "refused": "int", "replies": "int",
		"srvfail": "int", "tcp": "int", "total": "int", "udp": "int", "filtered": "int", "query_ecs": "int"}},
	// The reference's additionalProperties:false for xact is mis-nested, so xact is open.
	"xact": schema{false, map[string]any{
		"counts": schema{true, map[string]any{"timed_out": "int", "total": "int"}},
		"in":     schema{true, map[string]any{"top_slow": "array", "total": "int"}},
		"out":    schema{true, map[string]any{"quantiles_us": quantilesInt, "top_slow": "array", "total": "int"}},
		"ratio":  schema{true, map[string]any{"quantiles": quantilesNum}},
	}},
	"rates": rateSchemas("events", "total"),
}}

var pcapSchema = schema{false, map[string]any{"if_drops": "int", "os_drops": "int", "period": periodSchema,
	"tcp_reassembly_errors": "int"}}

func validate(t *testing.T, path string, v any, s any) {
	t.Helper()
	switch want := s.(type) {
	case schema:
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: not an object: %v", path, v)
			return
		}
		for k, sub := range want.keys {
			val, ok := obj[k]
			if !ok {
				t.Errorf("%s.%s: required key missing", path, k)
				continue
			}
			validate(t, path+"."+k, val, sub)
		}
		if want.closed {
			var extra []string
			for k := range obj {
				if _, ok := want.keys[k]; !ok {
					extra = append(extra, k)
				}
			}
			sort.Strings(extra)
			if len(extra) > 0 {
				t.Errorf("%s: keys not allowed by the schema: %v", path, extra)
			}
		}
	case string:
		switch want {
		case "int":
			n, ok := v.(json.Number)
			if _, err := n.Int64(); !ok || err != nil {
				t.Errorf("%s = %v: want an integer", path, v)
			}
		case "number":
			if _, ok := v.(json.Number); !ok {
				t.Errorf("%s = %v: want a number", path, v)
			}
		case "array", "topn":
			arr, ok := v.([]any)
			if !ok {
				t.Errorf("%s = %v: want an array", path, v)
				return
			}
			if want == "topn" {
				for i, row := range arr {
					validate(t, path+"["+itoa(i)+"]", row, schema{true, map[string]any{"estimate": "int", "name": "string"}})
				}
			}
		case "string":
			if _, ok := v.(string); !ok {
				t.Errorf("%s = %v: want a string", path, v)
			}
		}
	}
}

func TestSpecWindowSchemas(t *testing.T) {
	yaml := "handlers:\n  modules:\n    net:\n      type: net\n    dns:\n      type: dns\n" +
		"      metric_groups:\n        enable: [top_ecs, top_ports, top_qnames_details]\n    pcap:\n      type: pcap\n"
	doc := summarize(t, Options{File: fixture(t, "dns_udp_tcp_random.pcap"), HostSpec: hostNet, ConfigYAML: []byte(yaml)})
	if keys := keysOf(doc); !slices.Equal(keys, []string{"5m"}) {
		t.Fatalf("top-level keys %v, want [5m]", keys)
	}
	w := doc["5m"].(map[string]any)
	validate(t, "packets", w["packets"], netSchema)
	validate(t, "dns", w["dns"], dnsSchema)
	validate(t, "pcap", w["pcap"], pcapSchema)
	// The values the schemas' examples carry for this capture.
	check(t, w, map[string]any{
		"packets.period.length": 31, "packets.period.start_ts": 1614874231, "packets.events": 16147,
		"packets.in": 6648, "packets.out": 9499, "packets.tcp": 13176, "packets.udp": 2971,
		"packets.protocol.tcp.syn": 2846, "packets.top_ipv4.0.estimate": 16147, "packets.top_ipv4.0.name": "8.8.8.8",
		"pcap.tcp_reassembly_errors": 0, "pcap.os_drops": 0, "pcap.if_drops": 0, "pcap.period.start_ts": 1614874231,
	})
}
