package gen

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func generate(t testing.TB, cfg Config) ([]byte, Truth) {
	t.Helper()
	var buf bytes.Buffer
	tr, err := Write(&buf, cfg)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes(), tr
}

// everything turns on every feature at rates high enough to show up in a small capture.
func everything() Config {
	c := DefaultConfig()
	c.Packets = 40000
	c.Seed = 7
	c.Names = 3000
	c.TCP = 0.3
	c.IPv6 = 0.4
	c.Timeout = 0.02
	c.ECS = 0.3
	c.DO = 0.3
	c.MixedCase = 0.3
	c.TCPMulti = 0.5
	c.TCPSplit = 0.5
	c.TCPReorder = 0.3
	c.TCPRetransmit = 0.05
	c.Fragment = 0.05
	c.RandomSubdomain = 2000
	c.Malformed = 0.02
	c.QTypes, _ = ParseQTypes("A:30,AAAA:20,HTTPS:10,MX:8,TXT:8,NS:5,PTR:5,SOA:4,SRV:4,CNAME:6")
	return c
}

func testConfigs() map[string]Config {
	def := DefaultConfig()
	def.Packets = 30000

	late := everything()
	late.Packets = 20000
	late.RandomSubdomain = 0
	late.QPS = 2000
	late.LatencyMedian = 300 * time.Millisecond
	late.LatencySigma = 2 // about 8% of replies come 5 s or more after their query

	tiny := DefaultConfig()
	tiny.Packets = 20000
	tiny.Clients, tiny.Servers = 1, 1
	tiny.TCP = 0.3
	tiny.QPS = 3000
	tiny.Timeout = 0.05

	ns := everything()
	ns.Packets = 15000
	ns.Format = FormatPcapNano

	ng := everything()
	ng.Packets = 15000
	ng.Format = FormatPcapNG

	flood := DefaultConfig()
	flood.Packets = 0
	flood.RandomSubdomain = 5000
	flood.Malformed = 0.5 // of 0 packets: none

	return map[string]Config{"defaults": def, "everything": everything(), "late": late, "tiny-pools": tiny,
		"pcap-ns": ns, "pcapng": ng, "flood-only": flood}
}

// TestTruthMatchesRecount is the main oracle test: every frame decodes and re-serializes
// identically in gopacket, every DNS message unpacks in miekg/dns, and the truth recounted
// from the wire equals the truth the generator returned.
func TestTruthMatchesRecount(t *testing.T) {
	for name, cfg := range testConfigs() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, want := generate(t, cfg)
			frames, res := readCapture(t, data)
			wantRes := time.Nanosecond
			if cfg.Format == FormatPcap {
				wantRes = time.Microsecond
			}
			if res != wantRes {
				t.Errorf("resolution %v, want %v", res, wantRes)
			}
			for i := 1; i < len(frames); i++ {
				if frames[i].ts < frames[i-1].ts {
					t.Fatalf("frame %d: timestamp goes back (%d < %d)", i, frames[i].ts, frames[i-1].ts)
				}
			}
			for i, f := range frames {
				if len(f.data) > 1514 {
					t.Fatalf("frame %d: %d bytes > 1514", i, len(f.data))
				}
			}
			got, st := recount(t, frames)
			got.TCPConnections = want.TCPConnections // not visible per se; checked below via SYNs
			got.Servers = want.Servers
			if want.TCPSyn != 2*want.TCPConnections {
				t.Errorf("tcp_syn %d, want 2×%d connections", want.TCPSyn, want.TCPConnections)
			}
			if st.orphans != 0 || st.keyReuse != 0 {
				t.Errorf("orphan replies %d, query keys reused while open %d", st.orphans, st.keyReuse)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("recount differs from truth:\n got %+v\nwant %+v", got, want)
			}
			if want.DNSQueries != want.Transactions+want.LateReplies+want.Timeouts {
				t.Errorf("queries %d != transactions %d + late %d + timeouts %d", want.DNSQueries, want.Transactions, want.LateReplies, want.Timeouts)
			}
			t.Logf("%d frames (%d re-serialized), %d queries, %d replies, %d late, %d timeouts, %d retransmits, %d fragments, %d malformed",
				len(frames), st.reserialOK, want.DNSQueries, want.DNSReplies, want.LateReplies, want.Timeouts, want.TCPRetransmits, want.IPFragments, want.Malformed)
		})
	}
}

// TestFeaturesPresent guards against a feature silently switching off: the truth of the
// all-features capture must show each of them.
func TestFeaturesPresent(t *testing.T) {
	_, tr := generate(t, everything())
	for name, v := range map[string]uint64{
		"ipv6": tr.IPv6, "tcp": tr.TCP, "fragments": tr.IPFragments, "retransmits": tr.TCPRetransmits,
		"timeouts": tr.Timeouts, "ecs": tr.ECSQueries, "do": tr.DOQueries, "flood": tr.FloodQueries,
		"malformed": tr.Malformed, "nodata": tr.NoData, "NXDOMAIN": tr.Rcodes["NXDOMAIN"],
		"REFUSED": tr.Rcodes["REFUSED"], "SRVFAIL": tr.Rcodes["SRVFAIL"], "SOA": tr.QTypes["SOA"],
	} {
		if v == 0 {
			t.Errorf("%s: 0", name)
		}
	}
	if tr.FloodQueries != 2000 {
		t.Errorf("flood queries %d, want exactly 2000", tr.FloodQueries)
	}
	if want := uint64(0.02 * 40000); tr.Malformed != want {
		t.Errorf("malformed %d, want %d", tr.Malformed, want)
	}
}

// TestShares checks the realized shares against the configured ones on a larger capture
// (binomial 5-sigma bounds).
func TestShares(t *testing.T) {
	if testing.Short() {
		t.Skip("200k-packet capture")
	}
	cfg := DefaultConfig()
	cfg.Packets = 200000
	cfg.Timeout = 0.01
	data, tr := generate(t, cfg)
	within := func(name string, k, n uint64, p float64) {
		t.Helper()
		mean := p * float64(n)
		sd := math.Sqrt(float64(n) * p * (1 - p))
		if d := float64(k) - mean; d > 5*sd+1 || d < -5*sd-1 {
			t.Errorf("%s: %d of %d, expected %.0f ± %.0f", name, k, n, mean, 5*sd)
		}
	}
	within("nxdomain", tr.Rcodes["NXDOMAIN"], tr.DNSReplies, cfg.NXDomain)
	within("refused", tr.Rcodes["REFUSED"], tr.DNSReplies, cfg.Refused)
	within("servfail", tr.Rcodes["SRVFAIL"], tr.DNSReplies, cfg.ServFail)
	noerr := tr.Rcodes["NOERROR"]
	within("nodata", tr.NoData, noerr, cfg.NoData)
	within("timeout", tr.Timeouts, tr.DNSQueries, cfg.Timeout)
	within("do", tr.DOQueries, tr.DNSQueries, cfg.DO)
	dnsV6 := tr.DNSIPv6
	within("ipv6 messages", dnsV6, tr.DNSIPv4+tr.DNSIPv6, cfg.IPv6) // messages are not independent: loose
	// Arrivals follow the query rate: the UDP queries span queries/qps seconds (the capture
	// itself runs on for the tail of replies and TCP closes).
	frames, _ := readCapture(t, data)
	var first, last int64 = -1, 0
	for _, f := range frames {
		p := gopacket.NewPacket(f.data, layers.LayerTypeEthernet, gopacket.NoCopy)
		if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && u.DstPort == 53 {
			if first < 0 {
				first = f.ts
			}
			last = f.ts
		}
	}
	span := float64(last-first) / 1e9
	if want := float64(tr.DNSQueries) / cfg.QPS; span < 0.97*want || span > 1.03*want {
		t.Errorf("queries span %.3fs, want about %.3fs", span, want)
	}
}

func TestDeterminism(t *testing.T) {
	cfgs := testConfigs()
	for _, name := range []string{"everything", "pcapng"} {
		cfg := cfgs[name]
		cfg.Packets = 8000
		a, ta := generate(t, cfg)
		b, tb := generate(t, cfg)
		if !bytes.Equal(a, b) || !reflect.DeepEqual(ta, tb) {
			t.Errorf("%s: same seed gave different output", name)
		}
		cfg.Seed++
		c, _ := generate(t, cfg)
		if bytes.Equal(a, c) {
			t.Errorf("%s: different seeds gave identical output", name)
		}
	}
}

// TestTshark compares DNS message counts with tshark, reassembling TCP out of order and IP
// fragments, when tshark is installed.
func TestTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	if testing.Short() {
		t.Skip("tshark is slow")
	}
	for _, name := range []string{"everything", "pcapng", "late"} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfigs()[name]
			cfg.Packets = 15000
			data, tr := generate(t, cfg)
			path := filepath.Join(t.TempDir(), "cap")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("tshark", "-r", path, "-n",
				"-o", "tcp.reassemble_out_of_order:TRUE", "-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE",
				"-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
				"-Y", "dns || _ws.malformed || ip.checksum.status == 0 || udp.checksum.status == 0 || tcp.checksum.status == 0",
				"-T", "fields", "-E", "separator=|",
				"-e", "dns.flags.response", "-e", "dns.qry.name", "-e", "_ws.malformed",
				"-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "tcp.checksum.status").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			var queries, replies, bad, malformed uint64
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Split(line, "|")
				if len(f) < 6 {
					continue
				}
				for _, cs := range f[3:6] {
					if strings.Contains(cs, "0") { // 0 = bad (1 = good, 2 = unverified)
						bad++
					}
				}
				// Malformed garbage: tshark flags it, except a question name that is a
				// compression pointer loop, which it shows as a name instead.
				if f[2] != "" || strings.Contains(f[1], "pointer that loops") {
					malformed++
					continue
				}
				// One frame may complete several TCP messages: values are comma-separated.
				for _, r := range strings.Split(f[0], ",") {
					switch r {
					case "0", "False":
						queries++
					case "1", "True":
						replies++
					}
				}
			}
			if bad != 0 {
				t.Errorf("tshark found %d bad checksums", bad)
			}
			if queries != tr.DNSQueries || replies != tr.DNSReplies || malformed != tr.Malformed {
				t.Errorf("tshark: %d queries, %d replies, %d malformed; truth %d, %d, %d",
					queries, replies, malformed, tr.DNSQueries, tr.DNSReplies, tr.Malformed)
			}
		})
	}
}

func TestExhaustedPools(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clients, cfg.Servers = 1, 1
	cfg.TCP = 1
	cfg.QPS = 1e6
	cfg.Packets = 1 << 20
	_, err := Write(io.Discard, cfg)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("err = %v, want ErrExhausted", err)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Packets = 50000
	_, err := Write(&failWriter{n: 3 << 20}, cfg)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want the writer's error", err)
	}
}

func TestValidate(t *testing.T) {
	mod := func(f func(*Config)) Config { c := DefaultConfig(); f(&c); return c }
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", DefaultConfig(), true},
		{"share>1", mod(func(c *Config) { c.TCP = 1.5 }), false},
		{"share NaN", mod(func(c *Config) { c.IPv6 = math.NaN() }), false},
		{"rcodes sum>1", mod(func(c *Config) { c.NXDomain, c.Refused = 0.6, 0.5 }), false},
		{"negative packets", mod(func(c *Config) { c.Packets = -1 }), false},
		{"no names", mod(func(c *Config) { c.Names = 0 }), false},
		{"too many names", mod(func(c *Config) { c.Names = MaxNames + 1 }), false},
		{"zipf 0", mod(func(c *Config) { c.Zipf = 0 }), false},
		{"qps 0", mod(func(c *Config) { c.QPS = 0 }), false},
		{"latency 0", mod(func(c *Config) { c.LatencyMedian = 0 }), false},
		{"servers 255", mod(func(c *Config) { c.Servers = 255 }), false},
		{"clients 0", mod(func(c *Config) { c.Clients = 0 }), false},
		{"zone upper", mod(func(c *Config) { c.Zones = []string{"Example.com"} }), false},
		{"zone empty label", mod(func(c *Config) { c.Zones = []string{"a..b"} }), false},
		{"zone = flood zone", mod(func(c *Config) { c.Zones = []string{"victim.example"} }), false},
		{"zone under flood zone", mod(func(c *Config) { c.Zones = []string{"x.victim.example"} }), false},
		{"zone above flood zone", mod(func(c *Config) { c.Zones = []string{"example"} }), false},
		{"zone in-addr.arpa", mod(func(c *Config) { c.Zones = []string{"10.in-addr.arpa"} }), false},
		{"flood zone arpa", mod(func(c *Config) { c.FloodZone = "arpa" }), false},
		{"one zone", mod(func(c *Config) { c.Zones = []string{"a"} }), true},
		{"no qtypes", mod(func(c *Config) { c.QTypes = nil }), false},
		{"bad format", mod(func(c *Config) { c.Format = 9 }), false},
		{"start 1970", mod(func(c *Config) { c.Start = time.Unix(0, 0) }), false},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestParseQTypes(t *testing.T) {
	tests := []struct {
		in   string
		want []QTypeWeight
		ok   bool
	}{
		{"A:60,AAAA:25", []QTypeWeight{{1, 60}, {28, 25}}, true},
		{" a : 1 , https:2.5 ", []QTypeWeight{{1, 1}, {65, 2.5}}, true},
		{"MX", []QTypeWeight{{15, 1}}, true},
		{"TYPE65:3", []QTypeWeight{{65, 3}}, true},
		{"A:0,NS:0", nil, false},
		{"A:-1", nil, false},
		{"A:x", nil, false},
		{"A:1,A:2", nil, false},
		{"CAA:1", nil, false},
		{"TYPE99:1", nil, false},
		{"", nil, false},
		{"A:NaN", nil, false},
		{"A:Inf", nil, false},
	}
	for _, tt := range tests {
		got, err := ParseQTypes(tt.in)
		if (err == nil) != tt.ok || tt.ok && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseQTypes(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"pcap": FormatPcap, "PCAP-NS": FormatPcapNano, "pcapng": FormatPcapNG} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
		if got, _ := ParseFormat(want.String()); got != want {
			t.Errorf("round trip of %v", want)
		}
	}
	if _, err := ParseFormat("erf"); err == nil {
		t.Error("ParseFormat(erf) accepted")
	}
}

func TestParseZones(t *testing.T) {
	got := ParseZones(" Example.COM., ,test.org")
	if !reflect.DeepEqual(got, []string{"example.com", "test.org"}) {
		t.Errorf("ParseZones = %q", got)
	}
}

// TestNamesInjective: the three name families never produce the same name twice, which the
// distinct_qnames truth relies on.
func TestNamesInjective(t *testing.T) {
	var zones []zoneWire
	for _, z := range DefaultZones {
		zones = append(zones, makeZone(z))
	}
	flood := makeZone("victim.example")
	seen := map[string]string{}
	var b [300]byte
	add := func(kind string, end int) {
		s := strings.ToLower(string(b[:end]))
		if prev, dup := seen[s]; dup {
			t.Fatalf("%s name %q repeats %s", kind, s, prev)
		}
		seen[s] = kind
	}
	for i := uint32(0); i < 200000; i++ {
		end, _, _ := putForwardName(b[:], 0, i, zones)
		add("forward "+strconv.Itoa(int(i)), end)
		end, _ = putReverseName(b[:], 0, i*83)
		add("reverse "+strconv.Itoa(int(i)), end)
		end, _ = putFloodName(b[:], 0, uint64(i)*1_000_003, &flood)
		add("flood "+strconv.Itoa(int(i)), end)
	}
	// The largest index still fits the name length limit.
	end, _, _ := putForwardName(b[:], 0, MaxNames-1, zones)
	if end > 255 {
		t.Errorf("name %d is %d bytes", MaxNames-1, end)
	}
}
