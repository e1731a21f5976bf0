package tui

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// wantSegments is the oracle of the header: every count and share the header must show,
// computed here from a plain decode of the agent's JSON with the arithmetic of spec §5
// (in/out shares of in+out, rcode shares of replies, the rest of the total).
func wantSegments(t testing.TB, body []byte, policy string) []string {
	g := generic(t, body)
	p := schemaOf(t, g, policy, "packets")
	d := schemaOf(t, g, policy, "dns")
	pc := schemaOf(t, g, policy, "pcap")
	share := func(label string, v, whole float64) string {
		s := 0.0
		if whole > 0 {
			s = 100 * v / whole
		}
		return fmt.Sprintf("%s %d (%.1f%%)", label, int64(v), s)
	}
	rates := func(o map[string]any, path string) string {
		live := "-"
		if r, ok := o["rates"].(map[string]any); ok {
			if rr, ok := r[path].(map[string]any); ok {
				if l, ok := rr["live"].(float64); ok {
					live = strconv.FormatInt(int64(l), 10)
				}
			}
		}
		return fmt.Sprintf("%s/s %d/%d/%d/%d", live, int64(num(o, "rates."+path+".p50")), int64(num(o, "rates."+path+".p90")),
			int64(num(o, "rates."+path+".p95")), int64(num(o, "rates."+path+".p99")))
	}
	total, inOut := num(p, "total"), num(p, "in")+num(p, "out")
	wire, replies, xacts := num(d, "wire_packets.total"), num(d, "wire_packets.replies"), num(d, "xact.counts.total")
	return []string{
		fmt.Sprintf("Pkts %d", int64(total)),
		share("UDP", num(p, "udp"), total), share("TCP", num(p, "tcp"), total),
		share("Other", num(p, "other_l4"), total), share("IPv4", num(p, "ipv4"), total),
		share("IPv6", num(p, "ipv6"), total), share("In", num(p, "in"), inOut), share("Out", num(p, "out"), inOut),
		share("Deep Samples", num(p, "deep_samples"), total),
		"Pkt Rates Total " + rates(p, "pps_total") + " pps", "In " + rates(p, "pps_in") + " pps", "Out " + rates(p, "pps_out") + " pps",
		fmt.Sprintf("IP Card. In: %d | Out: %d", int64(num(p, "cardinality.src_ips_in")), int64(num(p, "cardinality.dst_ips_out"))),
		fmt.Sprintf("TCP Errors %d", int64(num(pc, "tcp_reassembly_errors"))),
		fmt.Sprintf("OS Drops %d", int64(num(pc, "os_drops"))), fmt.Sprintf("IF Drops %d", int64(num(pc, "if_drops"))),
		fmt.Sprintf("DNS Wire Pkts %d/%d", int64(wire), int64(num(d, "wire_packets.events"))),
		"Rates Total " + rates(d, "total"),
		share("UDP", num(d, "wire_packets.udp"), wire), share("TCP", num(d, "wire_packets.tcp"), wire),
		share("IPv4", num(d, "wire_packets.ipv4"), wire), share("IPv6", num(d, "wire_packets.ipv6"), wire),
		share("Query", num(d, "wire_packets.queries"), wire), share("Response", replies, wire),
		fmt.Sprintf("DNS Xacts %d", int64(xacts)), fmt.Sprintf("Timed Out %d", int64(num(d, "xact.counts.timed_out"))),
		share("In", num(d, "xact.in.total"), xacts), share("Out", num(d, "xact.out.total"), xacts),
		fmt.Sprintf("Qname Card. %d", int64(num(d, "cardinality.qname"))),
		share("DNS NOERROR", num(d, "wire_packets.noerror"), replies), share("SRVFAIL", num(d, "wire_packets.srvfail"), replies),
		share("NXDOMAIN", num(d, "wire_packets.nxdomain"), replies), share("REFUSED", num(d, "wire_packets.refused"), replies),
		share("NODATA", num(d, "wire_packets.nodata"), replies),
		fmt.Sprintf("Period %ds", int64(num(p, "period.length"))),
	}
}

// latencyRE finds the "In a/b/c/d ms" and "Out a/b/c/d ms" segments.
var latencyRE = regexp.MustCompile(`(In|Out) ([-0-9.]+)/([-0-9.]+)/([-0-9.]+)/([-0-9.]+) ms`)

// checkLatency checks that the shown milliseconds are the agent's microseconds / 1000 to the
// precision shown.
func checkLatency(t *testing.T, text string, body []byte, policy string) {
	t.Helper()
	d := schemaOf(t, generic(t, body), policy, "dns")
	found := 0
	for _, m := range latencyRE.FindAllStringSubmatch(text, -1) {
		dir := strings.ToLower(m[1])
		for i, q := range []string{"p50", "p90", "p95", "p99"} {
			shown := m[2+i]
			v, err := strconv.ParseFloat(shown, 64)
			if err != nil {
				t.Fatalf("latency %q: %v", shown, err)
			}
			decimals := 0
			if j := strings.IndexByte(shown, '.'); j >= 0 {
				decimals = len(shown) - j - 1
			}
			us := num(d, "xact."+dir+".quantiles_us."+q)
			if math.Abs(v*1000-us) > 0.5*math.Pow(10, -float64(decimals))*1000+1e-9 {
				t.Errorf("%s %s: shown %s ms, agent %v µs", dir, q, shown, us)
			}
		}
		found++
	}
	if found != 2 {
		t.Errorf("found %d latency segments, want 2 (In and Out)", found)
	}
}

func TestHeaderLines(t *testing.T) {
	for _, file := range recordedAnswers {
		t.Run(file, func(t *testing.T) {
			body := recorded(t, file)
			s, err := Decode(body, "default")
			if err != nil {
				t.Fatal(err)
			}
			var segs []string
			for _, l := range headerLines(&s, time.UTC) {
				segs = append(segs, l...)
			}
			text := strings.Join(segs, " | ")
			for _, want := range wantSegments(t, body, "default") {
				if !strings.Contains(text, want) {
					t.Errorf("header lacks %q\nheader: %s", want, text)
				}
			}
			checkLatency(t, text, body, "default")
		})
	}
}

func TestMilliseconds(t *testing.T) {
	tests := []struct {
		us   float64
		want string
	}{
		{0, "0"}, {22, "0.022"}, {999, "0.999"}, {1990, "1.99"}, {7210, "7.21"},
		{10288, "10.3"}, {21000, "21.0"}, {150000, "150"}, {2500000, "2500"}, {-500, "-0.500"},
	}
	for _, tc := range tests {
		if got := ms(Float(tc.us)); got != tc.want {
			t.Errorf("ms(%v) = %q, want %q", tc.us, got, tc.want)
		}
	}
}

func TestTimeWindow(t *testing.T) {
	tests := []struct {
		start, length int64
		want          string
	}{
		// 1795795394 is 2026-11-27 16:03:14 UTC (date -u -d @1795795394).
		{1795795394, 78, "Time Window 4:03PM to 4:04PM, Period 78s"},
		{0, 300, "Time Window 12:00AM to 12:05AM, Period 300s"},
		{-5, 10, "Time Window ?, Period 10s"},
		{1 << 50, 10, "Time Window ?, Period 10s"},
	}
	for _, tc := range tests {
		s := Snapshot{HasPackets: true}
		s.Packets.Period = Period{StartTS: Int(tc.start), Length: Int(tc.length)}
		if got := timeWindow(&s, time.UTC); got != tc.want {
			t.Errorf("timeWindow(%d, %d) = %q, want %q", tc.start, tc.length, got, tc.want)
		}
	}
}

func TestVersionWarning(t *testing.T) {
	tests := []struct{ server, client, want string }{
		{"4.5.0-go", "4.5.0-go", ""},
		{"4.2.1", "4.5.0-go", ""},
		{"3.3.0", "4.5.0-go", "WARNING: this version of pktvisor-cli was written for a different major pktvisord version (server:3, client:4)"},
		{"v5.0.0", "4.5.0", "WARNING: this version of pktvisor-cli was written for a different major pktvisord version (server:5, client:4)"},
		{"garbage", "4.5.0", ""},
		{"", "4.5.0", ""},
	}
	for _, tc := range tests {
		if got := versionWarning(tc.server, tc.client); got != tc.want {
			t.Errorf("versionWarning(%q, %q) = %q, want %q", tc.server, tc.client, got, tc.want)
		}
	}
}
