package reader

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/gen"
)

// The cross-check holds the reader's exact counters against tshark's count of the same
// capture. tshark is run so that it is right for DNS (DESIGN.md §7): TCP segments reassembled
// out of order, IP fragments reassembled, and port 53000 decoded as DNS.

var tsharkArgs = []string{"-n",
	"-o", "tcp.reassemble_out_of_order:TRUE", "-o", "tcp.desegment_tcp_streams:TRUE",
	"-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE",
	"-d", "udp.port==53000,dns", "-d", "tcp.port==53000,dns",
}

// counts are the exact counters both sides must agree on.
type counts map[string]uint64

func tsharkCount(t *testing.T, file string, ttl time.Duration) counts {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not installed (.ci/run installs it): cannot cross-check")
	}
	args := append([]string{"-r", file}, tsharkArgs...)
	args = append(args, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "ip.proto", "-e", "ipv6.nxt", "-e", "ipv6.fraghdr.nxt", "-e", "tcp.flags.syn",
		"-e", "dns.flags.response", "-e", "dns.flags.rcode", "-e", "dns.qry.type", "-e", "dns.time",
		"-e", "dns.count.answers")
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v: %s", err, stderr.String())
	}
	c := counts{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		for len(f) < 9 {
			f = append(f, "")
		}
		c["packets"]++
		proto := first(f[0])
		switch {
		case f[0] != "":
			c["ipv4"]++
		case f[1] != "":
			c["ipv6"]++
			proto = first(f[1])
			if f[2] != "" {
				proto = first(f[2])
			}
		}
		switch proto {
		case "17":
			c["udp"]++
		case "6":
			c["tcp"]++
			if first(f[3]) == "1" || first(f[3]) == "True" {
				c["syn"]++
			}
		}
		resp, rcodes, qtypes, answers := list(f[4]), list(f[5]), list(f[6]), list(f[8])
		for i, r := range resp {
			isReply := r == "1" || r == "True"
			if isReply {
				c["replies"]++
				if i < len(rcodes) {
					c["rcode:"+rcodes[i]]++
					if rcodes[i] == "0" && i < len(answers) && answers[i] == "0" {
						c["nodata"]++
					}
				}
			} else {
				c["queries"]++
			}
			if i < len(qtypes) {
				c["qtype:"+qtypes[i]]++
			}
			if f[0] != "" {
				c["dns_ipv4"]++
			} else {
				c["dns_ipv6"]++
			}
		}
		for _, d := range list(f[7]) {
			if v, err := strconv.ParseFloat(d, 64); err == nil && v < ttl.Seconds() {
				c["xacts"]++
			}
		}
	}
	return c
}

func first(s string) string {
	if i := strings.IndexByte(s, ','); i >= 0 {
		return s[:i]
	}
	return s
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// ourCounts runs the reader and extracts the same counters from its JSON.
func ourCounts(t *testing.T, file string, workers int) counts {
	t.Helper()
	yaml := "handlers:\n  window_config:\n    num_periods: 1\n    topn_count: 1000\n  modules:\n" +
		"    net:\n      type: net\n    dns:\n      type: dns\n"
	doc := summarize(t, Options{File: file, Periods: 1, Workers: workers, ConfigYAML: []byte(yaml),
		HostSpec: "0.0.0.0/0"})["1m"]
	get := func(path string) uint64 {
		v, ok := lookup(doc, path)
		if !ok {
			t.Fatalf("%s missing", path)
		}
		return uint64(num(v))
	}
	c := counts{
		"packets": get("packets.total"), "ipv4": get("packets.ipv4"), "ipv6": get("packets.ipv6"),
		"udp": get("packets.udp"), "tcp": get("packets.tcp"), "syn": get("packets.protocol.tcp.syn"),
		"queries": get("dns.wire_packets.queries"), "replies": get("dns.wire_packets.replies"),
		"dns_ipv4": get("dns.wire_packets.ipv4"), "dns_ipv6": get("dns.wire_packets.ipv6"),
		"nodata": get("dns.wire_packets.nodata"), "xacts": get("dns.xact.counts.total"),
	}
	timedOut := get("dns.xact.counts.timed_out")
	for _, list := range []struct{ path, prefix string }{{"dns.top_rcode", "rcode:"}, {"dns.top_qtype", "qtype:"}} {
		rows, _ := lookup(doc, list.path)
		for _, r := range rows.([]any) {
			row := r.(map[string]any)
			c[list.prefix+codeOf(row["name"].(string), list.prefix)] = uint64(num(row["estimate"]))
		}
	}
	for k, v := range c {
		if v == 0 {
			delete(c, k)
		}
	}
	c["timed_out"] = timedOut // compared with the generator only (tshark has no TTL)
	return c
}

// codeOf maps our rcode/qtype names back to the numbers tshark prints.
func codeOf(name, prefix string) string {
	if _, err := strconv.Atoi(name); err == nil {
		return name
	}
	if prefix == "rcode:" {
		return strconv.Itoa(int(rcodeNumbers[name]))
	}
	return strconv.Itoa(int(qtypeNumbers[name]))
}

var rcodeNumbers = map[string]int{"NOERROR": 0, "FORMERR": 1, "SRVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}
var qtypeNumbers = map[string]int{"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16,
	"AAAA": 28, "SRV": 33, "DS": 43, "RRSIG": 46, "DNSKEY": 48, "SVCB": 64, "HTTPS": 65, "ANY": 255}

func compareCounts(t *testing.T, ours, theirs counts) {
	t.Helper()
	ours = maps.Clone(ours)
	delete(ours, "timed_out")
	for k, v := range theirs {
		if v == 0 {
			delete(theirs, k)
		}
	}
	for k := range union(ours, theirs) {
		if ours[k] != theirs[k] {
			t.Errorf("%s: ours %d, tshark %d", k, ours[k], theirs[k])
		}
	}
}

func union(a, b counts) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

func TestCrossCheckTsharkReference(t *testing.T) {
	for _, name := range []string{"dns_ipv4_udp.pcap", "dns_ipv4_tcp.pcap", "dns_ipv6_udp.pcap", "dns_ipv6_tcp.pcap",
		"dns_udp_tcp_random.pcap", "dns_udp_mixed_rcode.pcap", "dnssec.pcap", "ecs.pcap"} {
		t.Run(name, func(t *testing.T) {
			file := fixture(t, name)
			theirs := tsharkCount(t, file, 5*time.Second)
			compareCounts(t, ourCounts(t, file, 2), theirs)
		})
	}
}

// generated returns a capture written by the generator into the test's temp dir, with the
// generator's own exact counts.
func generated(t *testing.T, name string, mod func(*gen.Config)) (string, gen.Truth) {
	t.Helper()
	cfg := gen.DefaultConfig()
	mod(&cfg)
	path := filepath.Join(t.TempDir(), name+".pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	truth, err := gen.Write(w, cfg)
	if err != nil {
		t.Fatalf("gen: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, truth
}

var generatedMixes = []struct {
	name string
	mod  func(*gen.Config)
}{
	{"mix", func(c *gen.Config) {
		c.Packets, c.Seed, c.TCP, c.IPv6, c.ECS, c.DO = 60000, 7, 0.2, 0.3, 0.1, 0.2
		c.TCPSplit, c.TCPReorder, c.TCPRetransmit, c.TCPMulti = 0.4, 0.3, 0.05, 0.3
		c.Fragment, c.NXDomain, c.Refused, c.ServFail = 0.03, 0.1, 0.02, 0.02
	}},
	{"slow", func(c *gen.Config) {
		c.Packets, c.Seed, c.QPS, c.LatencyMedian, c.LatencySigma, c.Timeout = 20000, 11, 500, 800*time.Millisecond, 1.5, 0.05
	}},
	{"flood", func(c *gen.Config) {
		c.Packets, c.Seed, c.RandomSubdomain, c.Names = 10000, 3, 30000, 200
	}},
}

func TestCrossCheckTsharkGenerated(t *testing.T) {
	for _, m := range generatedMixes {
		t.Run(m.name, func(t *testing.T) {
			file, truth := generated(t, m.name, m.mod)
			ours := ourCounts(t, file, 2)
			compareCounts(t, ours, tsharkCount(t, file, 5*time.Second))
			// The generator's own exact counts are a second, independent oracle.
			want := counts{"packets": truth.Packets, "ipv4": truth.IPv4, "ipv6": truth.IPv6, "udp": truth.UDP,
				"tcp": truth.TCP, "syn": truth.TCPSyn, "queries": truth.DNSQueries, "replies": truth.DNSReplies,
				"dns_ipv4": truth.DNSIPv4, "dns_ipv6": truth.DNSIPv6, "nodata": truth.NoData, "xacts": truth.Transactions}
			for k, v := range want {
				if ours[k] != v {
					t.Errorf("truth %s: ours %d, generator %d", k, ours[k], v)
				}
			}
			// Timeouts: every late reply, and every unanswered query whose TTL elapsed before the
			// end of the capture (the generator counts all unanswered queries, including those of
			// the last seconds, which had not timed out yet when the capture ended).
			if to := ours["timed_out"]; to < truth.LateReplies || to > truth.LateReplies+truth.Timeouts {
				t.Errorf("timed_out %d, want within [%d, %d]", to, truth.LateReplies, truth.LateReplies+truth.Timeouts)
			}
			for name, n := range truth.Rcodes {
				if got := ours["rcode:"+codeOf(name, "rcode:")]; got != n {
					t.Errorf("truth rcode %s: ours %d, generator %d", name, got, n)
				}
			}
			for name, n := range truth.QTypes {
				if got := ours["qtype:"+codeOf(name, "qtype:")]; got != n {
					t.Errorf("truth qtype %s: ours %d, generator %d", name, got, n)
				}
			}
		})
	}
}

var _ = fmt.Sprint
