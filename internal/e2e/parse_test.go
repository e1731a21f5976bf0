package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// The harness's parsers, checked on real tool output (testdata/dnsperf-*.out are dnsperf
// 2.10.0's own output; the tshark lines are tshark 4.0's) against counts read off that output
// by hand. They need no root and no tools, so they run everywhere.

func TestParseDNSPerf(t *testing.T) {
	for _, tc := range []struct {
		file string
		want dnsperfResult
	}{
		{"dnsperf-udp.out", dnsperfResult{Sent: 5000, Completed: 5000, Lost: 0, RCodes: map[string]int64{"NOERROR": 3000, "NXDOMAIN": 2000}}},
		{"dnsperf-tcp.out", dnsperfResult{Sent: 5000, Completed: 5000, Lost: 0, RCodes: map[string]int64{"NOERROR": 3000, "NXDOMAIN": 2000}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseDNSPerf(string(b))
			if err != nil {
				t.Fatal(err)
			}
			if got.Sent != tc.want.Sent || got.Completed != tc.want.Completed || got.Lost != tc.want.Lost || len(got.RCodes) != len(tc.want.RCodes) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.want.RCodes {
				if got.RCodes[k] != v {
					t.Errorf("rcode %s: got %d, want %d", k, got.RCodes[k], v)
				}
			}
		})
	}
}

func TestParseDNSPerfErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":      "",
		"no lost":    "  Queries sent:         5\n  Queries completed:    5 (100.00%)\n",
		"bad rcodes": "  Queries sent: 1\n  Queries completed: 1 (100.00%)\n  Queries lost: 0 (0.00%)\n  Response codes:       weird\n",
	} {
		if _, err := parseDNSPerf(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseTsharkFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		wire   wireTruth
		frames frameTruth
	}{
		{
			name: "udp query and replies",
			in: "eth:ethertype:ip:udp:dns\t0\t\t0\n" +
				"eth:ethertype:ip:udp:dns\t1\t0\t1\n" +
				"eth:ethertype:ip:udp:dns\t1\t3\t0\n",
			wire:   wireTruth{Queries: 1, Replies: 2, NoError: 1, NXDomain: 1, UDP: 3, IPv4: 3, Total: 3},
			frames: frameTruth{Total: 3, UDP: 3, IPv4: 3},
		},
		{
			name: "tcp segments carrying several messages, and bare segments",
			in: "eth:ethertype:ipv6:tcp:dns\t1,1,1\t0,0,3\t1,1,0\n" +
				"eth:ethertype:ipv6:tcp:dns\t1,1,1,1,1,1,1\t3,0,0,0,3,3,0\t0,1,1,1,0,0,1\n" +
				"eth:ethertype:ipv6:tcp:dns\t0,0,0\t\t0,0,0\n" +
				"eth:ethertype:ipv6:tcp\t\t\t\n" +
				"eth:ethertype:ipv6:tcp\n",
			// Replies 3 + 7 = 10; RCODE 0: 2 + 4 = 6, each with an answer (the ANCOUNT zeros
			// sit at the NXDOMAIN positions), so no NODATA; RCODE 3: 1 + 3 = 4.
			wire:   wireTruth{Queries: 3, Replies: 10, NoError: 6, NXDomain: 4, NoData: 0, TCP: 13, IPv6: 13, Total: 13},
			frames: frameTruth{Total: 5, TCP: 5, IPv6: 5},
		},
		{
			name:   "nodata: NOERROR without answers",
			in:     "eth:ethertype:ip:tcp:dns\t1,1\t0,0\t0,2\n",
			wire:   wireTruth{Replies: 2, NoError: 2, NoData: 1, TCP: 2, IPv4: 2, Total: 2},
			frames: frameTruth{Total: 1, TCP: 1, IPv4: 1},
		},
		{
			name:   "non-IP frame",
			in:     "eth:ethertype:arp\t\t\t\n",
			frames: frameTruth{Total: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, f, err := parseTsharkFields(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if w != tc.wire {
				t.Errorf("wire: got %+v, want %+v", w, tc.wire)
			}
			if f != tc.frames {
				t.Errorf("frames: got %+v, want %+v", f, tc.frames)
			}
		})
	}
}

func TestParseTsharkFieldsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"answer counts misaligned": "eth:ethertype:ip:tcp:dns\t1,1\t0,0\t0\n",
		"rcodes misaligned":        "eth:ethertype:ip:tcp:dns\t1,1\t0\t0,0\n",
		"bad flag":                 "eth:ethertype:ip:udp:dns\tx\t\t0\n",
	} {
		if _, _, err := parseTsharkFields(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestTcpdumpKernelDrops(t *testing.T) {
	// tcpdump 4.99's closing lines.
	log := "tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n" +
		"19943 packets captured\n39886 packets received by filter\n7 packets dropped by kernel\n"
	if n, err := tcpdumpKernelDrops(log); err != nil || n != 7 {
		t.Errorf("got %d, %v; want 7", n, err)
	}
	if _, err := tcpdumpKernelDrops("tcpdump: listening on lo\n"); err == nil {
		t.Error("no error without the closing lines")
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"-b", "port 53", "lo"}, "-b 'port 53' lo"},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{""}, "''"},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestPromLintAllowed(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		// promtool 2.42's own lines for the agent's /metrics.
		{`dns_wire_packets_total non-counter metrics should not have "_total" suffix`, true},
		{`dns_xact_out_quantiles_us metric names should not contain abbreviated units`, true},
		{`packets_top_geoLoc metric names should be written in 'snake_case' not 'camelCase'`, true},
		// Problems that are not about the reference's naming fail the test.
		{`dns_rates_total no help text`, false},
		{`error while linting: text format parsing error in line 3: expected float as value, got "x"`, false},
	} {
		if got := promLintAllowed(tc.line); got != tc.want {
			t.Errorf("promLintAllowed(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestPromLabels(t *testing.T) {
	got := promLabels(map[string]string{"__name__": "up", "tap": "default", "instance": "e2e", "policy": `a"b`})
	if want := `{instance="e2e",policy="a\"b",tap="default"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
