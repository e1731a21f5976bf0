package tui

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// Every field the view shows, read from the lenient decoder and from a plain generic decode
// of the same real agent answer.
var decodeChecks = []struct {
	schema, path string
	get          func(*Snapshot) float64
}{
	{"packets", "total", func(s *Snapshot) float64 { return float64(s.Packets.Total) }},
	{"packets", "udp", func(s *Snapshot) float64 { return float64(s.Packets.UDP) }},
	{"packets", "tcp", func(s *Snapshot) float64 { return float64(s.Packets.TCP) }},
	{"packets", "other_l4", func(s *Snapshot) float64 { return float64(s.Packets.OtherL4) }},
	{"packets", "ipv4", func(s *Snapshot) float64 { return float64(s.Packets.IPv4) }},
	{"packets", "ipv6", func(s *Snapshot) float64 { return float64(s.Packets.IPv6) }},
	{"packets", "in", func(s *Snapshot) float64 { return float64(s.Packets.In) }},
	{"packets", "out", func(s *Snapshot) float64 { return float64(s.Packets.Out) }},
	{"packets", "deep_samples", func(s *Snapshot) float64 { return float64(s.Packets.DeepSamples) }},
	{"packets", "cardinality.src_ips_in", func(s *Snapshot) float64 { return float64(s.Packets.Cardinality.SrcIPsIn) }},
	{"packets", "cardinality.dst_ips_out", func(s *Snapshot) float64 { return float64(s.Packets.Cardinality.DstIPsOut) }},
	{"packets", "rates.pps_total.p50", func(s *Snapshot) float64 { return float64(s.Packets.Rates.PpsTotal.P50) }},
	{"packets", "rates.pps_total.p99", func(s *Snapshot) float64 { return float64(s.Packets.Rates.PpsTotal.P99) }},
	{"packets", "rates.pps_total.live", func(s *Snapshot) float64 { return float64(s.Packets.Rates.PpsTotal.Live.V) }},
	{"packets", "rates.pps_in.p90", func(s *Snapshot) float64 { return float64(s.Packets.Rates.PpsIn.P90) }},
	{"packets", "rates.pps_out.p95", func(s *Snapshot) float64 { return float64(s.Packets.Rates.PpsOut.P95) }},
	{"packets", "period.start_ts", func(s *Snapshot) float64 { return float64(s.Packets.Period.StartTS) }},
	{"packets", "period.length", func(s *Snapshot) float64 { return float64(s.Packets.Period.Length) }},
	{"dns", "wire_packets.total", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.Total) }},
	{"dns", "wire_packets.events", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.Events) }},
	{"dns", "wire_packets.queries", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.Queries) }},
	{"dns", "wire_packets.replies", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.Replies) }},
	{"dns", "wire_packets.udp", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.UDP) }},
	{"dns", "wire_packets.tcp", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.TCP) }},
	{"dns", "wire_packets.ipv4", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.IPv4) }},
	{"dns", "wire_packets.ipv6", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.IPv6) }},
	{"dns", "wire_packets.noerror", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.NoError) }},
	{"dns", "wire_packets.nxdomain", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.NXDomain) }},
	{"dns", "wire_packets.srvfail", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.SrvFail) }},
	{"dns", "wire_packets.refused", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.Refused) }},
	{"dns", "wire_packets.nodata", func(s *Snapshot) float64 { return float64(s.DNS.WirePackets.NoData) }},
	{"dns", "rates.total.p50", func(s *Snapshot) float64 { return float64(s.DNS.Rates.Total.P50) }},
	{"dns", "rates.total.live", func(s *Snapshot) float64 { return float64(s.DNS.Rates.Total.Live.V) }},
	{"dns", "cardinality.qname", func(s *Snapshot) float64 { return float64(s.DNS.Cardinality.QName) }},
	{"dns", "xact.counts.total", func(s *Snapshot) float64 { return float64(s.DNS.Xact.Counts.Total) }},
	{"dns", "xact.counts.timed_out", func(s *Snapshot) float64 { return float64(s.DNS.Xact.Counts.TimedOut) }},
	{"dns", "xact.in.total", func(s *Snapshot) float64 { return float64(s.DNS.Xact.In.Total) }},
	{"dns", "xact.out.total", func(s *Snapshot) float64 { return float64(s.DNS.Xact.Out.Total) }},
	{"dns", "xact.in.quantiles_us.p50", func(s *Snapshot) float64 { return float64(s.DNS.Xact.In.QuantilesUS.P50) }},
	{"dns", "xact.in.quantiles_us.p99", func(s *Snapshot) float64 { return float64(s.DNS.Xact.In.QuantilesUS.P99) }},
	{"dns", "xact.out.quantiles_us.p90", func(s *Snapshot) float64 { return float64(s.DNS.Xact.Out.QuantilesUS.P90) }},
	{"pcap", "os_drops", func(s *Snapshot) float64 { return float64(s.Pcap.OSDrops) }},
	{"pcap", "if_drops", func(s *Snapshot) float64 { return float64(s.Pcap.IfDrops) }},
	{"pcap", "tcp_reassembly_errors", func(s *Snapshot) float64 { return float64(s.Pcap.TCPReassemblyErrors) }},
}

var recordedAnswers = []string{"sample-window5.json", "sample-bucket0.json", "attack-bucket0.json", "attack-window5.json"}

func TestDecodeRecorded(t *testing.T) {
	for _, file := range recordedAnswers {
		t.Run(file, func(t *testing.T) {
			body := recorded(t, file)
			s, err := Decode(body, "default")
			if err != nil {
				t.Fatal(err)
			}
			if !s.HasPackets || !s.HasDNS || !s.HasPcap || s.HasDHCP {
				t.Errorf("schemas: packets %v dns %v pcap %v dhcp %v", s.HasPackets, s.HasDNS, s.HasPcap, s.HasDHCP)
			}
			g := generic(t, body)
			for _, c := range decodeChecks {
				want := num(schemaOf(t, g, "default", c.schema), c.path)
				if got := c.get(&s); got != want {
					t.Errorf("%s.%s = %v, want %v", c.schema, c.path, got, want)
				}
			}
			// "live" is present exactly when the agent sent it.
			pt, _ := schemaOf(t, g, "default", "packets")["rates"].(map[string]any)
			ppsTotal, _ := pt["pps_total"].(map[string]any)
			_, hasLive := ppsTotal["live"]
			if s.Packets.Rates.PpsTotal.Live.Valid != hasLive {
				t.Errorf("live valid %v, JSON has it %v", s.Packets.Rates.PpsTotal.Live.Valid, hasLive)
			}
			for _, tb := range []struct {
				schema, path string
				got          TopList
			}{
				{"dns", "top_qname2", s.DNS.TopQName2}, {"dns", "top_qname3", s.DNS.TopQName3},
				{"dns", "top_nxdomain", s.DNS.TopNXDomain}, {"dns", "top_qtype", s.DNS.TopQType},
				{"dns", "top_rcode", s.DNS.TopRCode}, {"dns", "top_srvfail", s.DNS.TopSrvFail},
				{"dns", "top_refused", s.DNS.TopRefused}, {"dns", "top_udp_ports", s.DNS.TopUDPPorts},
				{"dns", "xact.in.top_slow", s.DNS.Xact.In.TopSlow}, {"dns", "xact.out.top_slow", s.DNS.Xact.Out.TopSlow},
				{"packets", "top_ipv4", s.Packets.TopIPv4}, {"packets", "top_ipv6", s.Packets.TopIPv6},
				{"packets", "top_geoLoc", s.Packets.TopGeoLoc}, {"packets", "top_ASN", s.Packets.TopASN},
			} {
				want := list(schemaOf(t, g, "default", tb.schema), tb.path)
				if len(tb.got) != len(want) {
					t.Errorf("%s: %d items, want %d", tb.path, len(tb.got), len(want))
					continue
				}
				for i, w := range want {
					if tb.got[i].Name != w["name"].(string) || float64(tb.got[i].Estimate) != w["estimate"].(float64) {
						t.Errorf("%s[%d] = %+v, want %v", tb.path, i, tb.got[i], w)
					}
				}
			}
		})
	}
}

func TestDecodeLenient(t *testing.T) {
	long := strings.Repeat("a", 2000)
	many := "[" + strings.Repeat(`{"name":"x","estimate":1},`, 1500) + `{"name":"y","estimate":2}]`
	tests := []struct {
		name    string
		body    string
		wantErr string
		check   func(*Snapshot) string
	}{
		{"not JSON", `{"default":`, "decode metrics", nil},
		{"not an object", `[1,2]`, "decode metrics", nil},
		{"policy missing", `{"other":{}}`, `policy "default" missing`, nil},
		{"policy not an object", `{"default":[]}`, "decode metrics of policy", nil},
		{"empty policy", `{"default":{}}`, "", func(s *Snapshot) string {
			if s.HasDNS || s.HasPackets {
				return "schemas found in an empty policy"
			}
			return ""
		}},
		{"float, string, null and object counters", `{"default":{"h":{"packets":{"total":12.9,"udp":"7","tcp":null,"ipv4":{"a":1},"ipv6":-3}}}}`, "", func(s *Snapshot) string {
			p := s.Packets
			if p.Total != 12 || p.UDP != 0 || p.TCP != 0 || p.IPv4 != 0 || p.IPv6 != -3 {
				return fmt.Sprintf("got total %d udp %d tcp %d ipv4 %d ipv6 %d", p.Total, p.UDP, p.TCP, p.IPv4, p.IPv6)
			}
			return ""
		}},
		{"overflowing counters clamp", `{"default":{"h":{"packets":{"total":1e300,"udp":-1e300,"tcp":99999999999999999999}}}}`, "", func(s *Snapshot) string {
			p := s.Packets
			if p.Total != math.MaxInt64 || p.UDP != math.MinInt64 || p.TCP != math.MaxInt64 {
				return fmt.Sprintf("got %d %d %d", p.Total, p.UDP, p.TCP)
			}
			return ""
		}},
		{"live absent, null, present", `{"default":{"h":{"packets":{"rates":{"pps_in":{"p50":1},"pps_out":{"live":null},"pps_total":{"live":0}}}}}}`, "", func(s *Snapshot) string {
			r := s.Packets.Rates
			if r.PpsIn.Live.Valid || r.PpsOut.Live.Valid || !r.PpsTotal.Live.Valid {
				return fmt.Sprintf("live valid: in %v out %v total %v", r.PpsIn.Live.Valid, r.PpsOut.Live.Valid, r.PpsTotal.Live.Valid)
			}
			return ""
		}},
		{"top list of the wrong shape", `{"default":{"h":{"dns":{"top_qname2":{"a":1},"top_qname3":[1,"x",null,{"name":5,"estimate":"9"},{"name":"ok","estimate":3}]}}}}`, "", func(s *Snapshot) string {
			d := s.DNS
			if len(d.TopQName2) != 0 || len(d.TopQName3) != 3 || d.TopQName3[1].Name != "5" || d.TopQName3[2] != (NameCount{"ok", 3}) {
				return fmt.Sprintf("got %+v / %+v", d.TopQName2, d.TopQName3)
			}
			return ""
		}},
		{"long lists and names are capped", `{"default":{"h":{"dns":{"top_qname2":` + many + `,"top_nxdomain":[{"name":"` + long + `","estimate":1}]}}}}`, "", func(s *Snapshot) string {
			if len(s.DNS.TopQName2) != maxTopItems || len(s.DNS.TopNXDomain[0].Name) != maxNameBytes {
				return fmt.Sprintf("got %d items, name of %d bytes", len(s.DNS.TopQName2), len(s.DNS.TopNXDomain[0].Name))
			}
			return ""
		}},
		{"first handler by name wins", `{"default":{"b-dns":{"dns":{"wire_packets":{"total":2}}},"a-dns":{"dns":{"wire_packets":{"total":1}}}}}`, "", func(s *Snapshot) string {
			if s.DNS.WirePackets.Total != 1 {
				return fmt.Sprintf("total %d, want a-dns's 1", s.DNS.WirePackets.Total)
			}
			return ""
		}},
		{"bad handler objects are skipped", `{"default":{"a":[],"b":{"packets":[]},"c":{"packets":{"total":5}},"d":{"net":{"total":9}}}}`, "", func(s *Snapshot) string {
			if !s.HasPackets || s.Packets.Total != 5 {
				return fmt.Sprintf("packets %v total %d, want c's 5", s.HasPackets, s.Packets.Total)
			}
			return ""
		}},
		{"case-insensitive keys as the reference", `{"default":{"h":{"packets":{"TOP_asn":[{"name":"AS1","estimate":1}],"top_geoloc":[{"name":"EU","estimate":2}]}}}}`, "", func(s *Snapshot) string {
			if len(s.Packets.TopASN) != 1 || len(s.Packets.TopGeoLoc) != 1 {
				return "case-insensitive keys not matched"
			}
			return ""
		}},
		{"dhcp schema", `{"default":{"h":{"dhcp":{"wire_packets":{"total":4,"ack":1}}}}}`, "", func(s *Snapshot) string {
			if !s.HasDHCP || s.DHCP.WirePackets.Total != 4 || s.DHCP.WirePackets.Ack != 1 {
				return "dhcp not decoded"
			}
			return ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Decode([]byte(tc.body), "default")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(&s); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	body := recorded(b, "attack-window5.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Decode(body, "default"); err != nil {
			b.Fatal(err)
		}
	}
}
