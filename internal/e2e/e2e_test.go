package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/miekg/dns"
)

const (
	// childEnv marks the copy of the test binary that runs inside the private namespace.
	childEnv = "PKTVISOR_E2E_NETNS_CHILD"
	// agentEnv carries the path of the pktvisord binary built by the parent (the child has no
	// network, so it cannot fetch modules to build it).
	agentEnv = "PKTVISOR_E2E_AGENT"

	// dnsPort is where unbound listens: the agent recognises DNS only on 53, 5353, 5355 and
	// 53000 (spec §1.7), and the private namespace makes 53 free.
	dnsPort = 53
	// passes through queries.txt per dnsperf run: 10 lines × 500 = 5000 queries.
	passes = 500
	// qps keeps the 2-core machine far from drops: each run lasts 2.5 s.
	qps = 2000
)

// tools the test needs; .ci/run installs them.
var tools = []string{"unbound", "unbound-checkconf", "dnsperf", "tshark", "tcpdump", "unshare", "ip", "prometheus", "promtool"}

// queryOutcome is what unbound answers for a line of testdata/queries.txt, worked out by hand
// from testdata/unbound.conf.tmpl's static zone: local-data answers, NOERROR without answers
// (NODATA) for another type of an existing name, NXDOMAIN for any other name in the zone.
type queryOutcome struct {
	rcode  string // "NOERROR" or "NXDOMAIN"
	nodata bool
}

var expectedOutcomes = map[string]queryOutcome{
	"www.e2e.test A":        {rcode: "NOERROR"},
	"www.e2e.test AAAA":     {rcode: "NOERROR"},
	"mail.e2e.test A":       {rcode: "NOERROR"},
	"txt.e2e.test TXT":      {rcode: "NOERROR"},
	"WWW.E2E.Test A":        {rcode: "NOERROR"},
	"www.e2e.test MX":       {rcode: "NOERROR", nodata: true},
	"nope.e2e.test A":       {rcode: "NXDOMAIN"},
	"missing.e2e.test AAAA": {rcode: "NXDOMAIN"},
	"deep.sub.e2e.test TXT": {rcode: "NXDOMAIN"},
	"mail.e2e.test AAAA":    {rcode: "NOERROR", nodata: true},
}

// TestLiveAgentAgainstResolver runs pktvisord live on the loopback interface of a private
// network namespace while dnsperf queries unbound, and checks its counters against tshark,
// dnsperf and arithmetic, then has a real Prometheus scrape it. See README.md.
func TestLiveAgentAgainstResolver(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runChild(t)
		return
	}
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux (network namespaces, AF_PACKET)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare -n, packet capture on lo, unbound on port 53")
	}
	// unbound and ip live in sbin, which a non-login PATH may lack; the child inherits this.
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if !slices.Contains(filepath.SplitList(os.Getenv("PATH")), d) {
			t.Setenv("PATH", os.Getenv("PATH")+string(filepath.ListSeparator)+d)
		}
	}
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Skipf("missing tools %v (installed by .ci/run: apt-get install unbound dnsperf prometheus tcpdump tshark iproute2 util-linux)", missing)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "cmd", "pktvisord")); err != nil {
		t.Skipf("the agent is not in this tree yet: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	agent := filepath.Join(t.TempDir(), "pktvisord")
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not in PATH: %v", err)
	}
	mustRun(ctx, t, gotool, "build", "-o", agent, "github.com/pktvisor-go/pktvisor/cmd/pktvisord")

	self, err := os.Executable()
	if err != nil {
		t.Fatalf("own executable: %v", err)
	}
	unshare, _ := exec.LookPath("unshare")
	args := []string{"-n", "--", self,
		"-test.run=^TestLiveAgentAgainstResolver$", "-test.v", "-test.count=1", "-test.timeout=3m"}
	t.Logf("re-exec in a private network namespace: unshare %s", shellQuote(args))
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1", agentEnv+"="+agent)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 10 * time.Second
	runErr := cmd.Run()
	// The child's own -v output, indented so that test2json does not take its "=== RUN" and
	// "--- PASS" lines for the parent's.
	var indented strings.Builder
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	skipped := ""
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "--- SKIP: TestLiveAgentAgainstResolver") {
			skipped = line
		}
		indented.WriteString("    | " + line + "\n")
	}
	t.Logf("namespace child output:\n%s", indented.String())
	if runErr != nil {
		t.Fatalf("namespace child failed: %v", runErr)
	}
	if skipped != "" {
		t.Skipf("namespace child skipped (reason in its output above): %s", skipped)
	}
}

// dnsperfRun is one dnsperf invocation: transport and server address.
type dnsperfRun struct {
	mode, server string
}

var runs = []dnsperfRun{
	{"udp", "127.0.0.1"},
	{"udp", "::1"},
	{"tcp", "127.0.0.1"},
	{"tcp", "::1"},
}

// runChild is the test proper, inside the private network namespace.
func runChild(t *testing.T) {
	agentBin := os.Getenv(agentEnv)
	if agentBin == "" {
		t.Fatalf("%s is not set", agentEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	start := time.Now()
	dir := t.TempDir()

	// 1. Loopback up; both families and port 53 usable.
	mustRun(ctx, t, "ip", "link", "set", "lo", "up")
	for _, addr := range []string{"127.0.0.1", "::1"} {
		for _, network := range []string{"tcp", "udp"} {
			if err := probeBind(network, addr, dnsPort); err != nil {
				if addr == "::1" {
					t.Skipf("IPv6 loopback unusable in the namespace (IPv6 disabled?): %v", err)
				}
				t.Fatalf("bind %s %s port %d: %v", network, addr, dnsPort, err)
			}
		}
	}
	queries := filepath.Join("testdata", "queries.txt")
	perPass := checkQueryFile(t, queries)

	// 2. unbound, answering over UDP and TCP on both families.
	ubConf := filepath.Join(dir, "unbound.conf")
	renderTemplate(t, filepath.Join("testdata", "unbound.conf.tmpl"), ubConf, map[string]any{"Dir": dir, "Port": dnsPort})
	mustRun(ctx, t, "unbound-checkconf", ubConf)
	unbound := startProc(t, dir, "unbound", "-d", "-c", ubConf)
	for _, addr := range []string{"127.0.0.1", "::1"} {
		for _, network := range []string{"udp", "tcp"} {
			server := net.JoinHostPort(addr, strconv.Itoa(dnsPort))
			waitFor(t, "unbound on "+network+" "+server, 15*time.Second, 100*time.Millisecond, []*proc{unbound}, func() (bool, error) {
				return dnsAnswers(network, server)
			})
		}
	}

	// 3. The agent, live on lo. Only port 53 (see the package comment for why the filter).
	apiPort := freePort(t, "127.0.0.1")
	apiBase := "http://127.0.0.1:" + strconv.Itoa(apiPort)
	agent := startProc(t, dir, agentBin,
		"-l", "127.0.0.1", "-p", strconv.Itoa(apiPort),
		"-H", "127.0.0.1/32,::1/128", "--prom-instance", "e2e",
		// One period: the bucket never shifts, however slow the machine.
		"--periods", "1",
		"-b", "port 53",
		"lo")
	watch := []*proc{unbound, agent}
	waitFor(t, "the agent's API", 30*time.Second, 200*time.Millisecond, watch, func() (bool, error) {
		_, err := fetchCounts(ctx, apiBase)
		return err == nil, err
	})
	// The API may be up before the capture: probe until the agent has seen a reply.
	waitFor(t, "the agent to capture a probe query", 30*time.Second, 200*time.Millisecond, watch, func() (bool, error) {
		if _, err := dnsAnswers("udp", "127.0.0.1:53"); err != nil {
			return false, err
		}
		c, err := fetchCounts(ctx, apiBase)
		if err != nil {
			return false, err
		}
		return c.DNS.WirePackets["replies"] > 0, nil
	})
	base := waitStable(ctx, t, apiBase, watch)
	t.Logf("baseline after probes: %s", base.key())

	// 4. tcpdump, then the load.
	pcapPath := filepath.Join(dir, "truth.pcap")
	tcpdump := startProc(t, dir, "tcpdump", "-i", "lo", "-n", "-U", "-B", "8192", "-w", pcapPath, "port", strconv.Itoa(dnsPort))
	watch = append(watch, tcpdump)
	waitFor(t, "tcpdump to listen", 15*time.Second, 50*time.Millisecond, watch, func() (bool, error) {
		return strings.Contains(tcpdump.log(), "listening on"), nil
	})

	var perf dnsperfResult
	perf.RCodes = map[string]int64{}
	for _, r := range runs {
		args := []string{"-s", r.server, "-p", strconv.Itoa(dnsPort), "-m", r.mode, "-d", queries,
			"-n", strconv.Itoa(passes), "-Q", strconv.Itoa(qps), "-c", "1", "-t", "5"}
		t.Logf("run: dnsperf %s", shellQuote(args))
		out := mustRun(ctx, t, "dnsperf", args...)
		res, err := parseDNSPerf(out)
		if err != nil {
			t.Fatalf("dnsperf %s %s: %v\n%s", r.mode, r.server, err, out)
		}
		t.Logf("dnsperf %s %s: sent %d completed %d lost %d rcodes %v", r.mode, r.server, res.Sent, res.Completed, res.Lost, res.RCodes)
		// Arithmetic on the query file is the third truth: dnsperf must agree with it.
		want := int64(passes * perPass.total)
		if res.Sent != want || res.Completed != want || res.Lost != 0 {
			t.Errorf("dnsperf %s %s: sent %d completed %d lost %d, want %d sent and completed, 0 lost", r.mode, r.server, res.Sent, res.Completed, res.Lost, want)
		}
		if got, w := res.RCodes["NOERROR"], int64(passes*perPass.noerror); got != w {
			t.Errorf("dnsperf %s %s: NOERROR %d, want %d", r.mode, r.server, got, w)
		}
		if got, w := res.RCodes["NXDOMAIN"], int64(passes*perPass.nxdomain); got != w {
			t.Errorf("dnsperf %s %s: NXDOMAIN %d, want %d", r.mode, r.server, got, w)
		}
		perf.Sent += res.Sent
		perf.Completed += res.Completed
		perf.Lost += res.Lost
		for k, v := range res.RCodes {
			perf.RCodes[k] += v
		}
	}

	// 5. The agent settles; the truth from the capture.
	final := waitStable(ctx, t, apiBase, watch)
	t.Logf("final: %s", final.key())
	watch = watch[:len(watch)-1]
	if err := tcpdump.stop(10 * time.Second); err != nil {
		t.Fatalf("stop tcpdump: %v", err)
	}
	drops, err := tcpdumpKernelDrops(tcpdump.log())
	if err != nil || drops != 0 {
		t.Fatalf("tcpdump's capture is incomplete (kernel drops %d, %v): no truth\n%s", drops, err, tcpdump.log())
	}
	wire, frames, err := tsharkTruth(ctx, pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tshark: %+v %+v", wire, frames)

	// The capture agrees with dnsperf and arithmetic, or it is not the truth it claims to be.
	nRuns := int64(len(runs))
	if wire.Queries != perf.Sent || wire.Replies != perf.Completed {
		t.Errorf("tshark saw %d queries / %d replies, dnsperf sent %d / completed %d", wire.Queries, wire.Replies, perf.Sent, perf.Completed)
	}
	if wire.NoError != perf.RCodes["NOERROR"] || wire.NXDomain != perf.RCodes["NXDOMAIN"] {
		t.Errorf("tshark NOERROR %d NXDOMAIN %d, dnsperf %v", wire.NoError, wire.NXDomain, perf.RCodes)
	}
	if w := nRuns * passes * int64(perPass.nodata); wire.NoData != w {
		t.Errorf("tshark NODATA %d, want %d by the query file", wire.NoData, w)
	}

	d := func(name string) int64 { return final.DNS.WirePackets[name] - base.DNS.WirePackets[name] }
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"dns.wire_packets.queries", d("queries"), wire.Queries},
		{"dns.wire_packets.replies", d("replies"), wire.Replies},
		{"dns.wire_packets.noerror", d("noerror"), wire.NoError},
		{"dns.wire_packets.nxdomain", d("nxdomain"), wire.NXDomain},
		{"dns.wire_packets.nodata", d("nodata"), wire.NoData},
		{"dns.wire_packets.udp", d("udp"), wire.UDP},
		{"dns.wire_packets.tcp", d("tcp"), wire.TCP},
		{"dns.wire_packets.ipv4", d("ipv4"), wire.IPv4},
		{"dns.wire_packets.ipv6", d("ipv6"), wire.IPv6},
		{"dns.wire_packets.total", d("total"), wire.Total},
		{"dns.wire_packets.filtered", d("filtered"), 0},
		{"dns.wire_packets.srvfail", d("srvfail"), 0},
		{"dns.wire_packets.refused", d("refused"), 0},
		// Each completed dnsperf query is one query/reply pair; -H holds both ends, so every
		// reply travels toHost and the host counts as the client (spec §1.6): xact.out.
		{"dns.xact.counts.total", final.DNS.Xact.Counts.Total - base.DNS.Xact.Counts.Total, perf.Completed},
		{"dns.xact.out.total", final.DNS.Xact.Out.Total - base.DNS.Xact.Out.Total, perf.Completed},
		{"dns.xact.in.total", final.DNS.Xact.In.Total - base.DNS.Xact.In.Total, 0},
		{"dns.xact.counts.timed_out (absolute)", final.DNS.Xact.Counts.TimedOut, 0},
		{"packets.total", final.Packets.Total - base.Packets.Total, frames.Total},
		{"packets.udp", final.Packets.UDP - base.Packets.UDP, frames.UDP},
		{"packets.tcp", final.Packets.TCP - base.Packets.TCP, frames.TCP},
		{"packets.ipv4", final.Packets.IPv4 - base.Packets.IPv4, frames.IPv4},
		{"packets.ipv6", final.Packets.IPv6 - base.Packets.IPv6, frames.IPv6},
		{"packets.other_l4", final.Packets.OtherL4 - base.Packets.OtherL4, 0},
		{"pcap.os_drops (absolute)", final.Pcap.OSDrops, 0},
		{"pcap.if_drops (absolute)", final.Pcap.IfDrops, 0},
		{"pcap.tcp_reassembly_errors (absolute)", final.Pcap.TCPReassemblyErrors, 0},
	} {
		if c.got != c.want {
			t.Errorf("agent %s = %d, truth %d", c.name, c.got, c.want)
		} else {
			t.Logf("agent %s = %d = truth", c.name, c.got)
		}
	}

	// 6. A real Prometheus scrapes the agent; promtool checks the exposition.
	checkPrometheus(ctx, t, dir, apiBase, final, watch)

	// 7. The agent shuts down cleanly on SIGTERM, as under a service manager.
	if err := agent.stop(10 * time.Second); err != nil {
		t.Errorf("agent did not stop on SIGTERM: %v", err)
	} else if _, err := agent.exited(); err != nil {
		t.Errorf("agent exit after SIGTERM: %v (want status 0; its log is below)", err)
	}
	t.Logf("end-to-end test took %v", time.Since(start).Round(time.Millisecond))
}

// checkPrometheus scrapes the agent with a real Prometheus and lints its /metrics body.
func checkPrometheus(ctx context.Context, t *testing.T, dir, apiBase string, final agentCounts, watch []*proc) {
	body, err := httpGet(ctx, apiBase+"/metrics")
	if err != nil {
		t.Fatalf("agent /metrics: %v", err)
	}
	lint, err := promtoolCheckMetrics(ctx, body)
	if err != nil {
		t.Errorf("%v", err)
	}
	for _, l := range lint {
		if promLintAllowed(l) {
			t.Logf("promtool (naming of the reference, accepted): %s", l)
		} else {
			t.Errorf("promtool check metrics: %s", l)
		}
	}

	target := strings.TrimPrefix(apiBase, "http://")
	prom, promBase := startPrometheus(t, dir, target)
	waitScrape(ctx, t, prom, promBase, watch)
	watch = append(watch, prom)

	want := map[string]string{"instance": "e2e", "policy": "default", "tap": "default"}
	var found promSample
	waitFor(t, "dns_wire_packets_total in Prometheus", 30*time.Second, 500*time.Millisecond, watch, func() (bool, error) {
		res, err := promQuery(ctx, promBase, "dns_wire_packets_total")
		if err != nil {
			return false, err
		}
		for _, s := range res {
			if labelsMatch(s.Metric, want) {
				found = s
				return true, nil
			}
		}
		return false, fmt.Errorf("no series with labels %v in %+v", want, res)
	})
	if v, err := found.float(); err != nil || int64(v) != final.DNS.WirePackets["total"] {
		t.Errorf("Prometheus dns_wire_packets_total%s = %v (%v), agent JSON %d", promLabels(found.Metric), found.Value[1], err, final.DNS.WirePackets["total"])
	} else {
		t.Logf("Prometheus dns_wire_packets_total%s = %v", promLabels(found.Metric), v)
	}
	ups, err := promQuery(ctx, promBase, `up{job="pktvisor-e2e"}`)
	if err != nil {
		t.Fatalf("Prometheus up: %v", err)
	}
	if len(ups) != 1 {
		t.Fatalf("Prometheus up: %d series, want 1: %+v", len(ups), ups)
	}
	if v, err := ups[0].float(); err != nil || v != 1 {
		t.Errorf("Prometheus up%s = %v (%v), want 1", promLabels(ups[0].Metric), ups[0].Value[1], err)
	} else {
		t.Logf("Prometheus up%s = %v", promLabels(ups[0].Metric), v)
	}
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// waitStable polls the agent until none of the compared counters changes for 2 s.
func waitStable(ctx context.Context, t *testing.T, apiBase string, watch []*proc) agentCounts {
	t.Helper()
	var last agentCounts
	lastKey, since := "", time.Now()
	waitFor(t, "the agent's counters to stop changing", 45*time.Second, 250*time.Millisecond, watch, func() (bool, error) {
		c, err := fetchCounts(ctx, apiBase)
		if err != nil {
			return false, err
		}
		if k := c.key(); k != lastKey {
			lastKey, last, since = k, c, time.Now()
			return false, nil
		}
		return time.Since(since) >= 2*time.Second, nil
	})
	return last
}

// perPassCounts are the expected outcomes of one pass through the query file.
type perPassCounts struct {
	total, noerror, nxdomain, nodata int
}

// checkQueryFile checks that every line of the dnsperf query file has a hand-worked outcome
// and sums them.
func checkQueryFile(t *testing.T, path string) perPassCounts {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var c perPassCounts
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		o, ok := expectedOutcomes[strings.TrimSpace(line)]
		if !ok {
			t.Fatalf("%s: line %q has no expected outcome in expectedOutcomes", path, line)
		}
		c.total++
		switch o.rcode {
		case "NOERROR":
			c.noerror++
		case "NXDOMAIN":
			c.nxdomain++
		}
		if o.nodata {
			c.nodata++
		}
	}
	return c
}

func renderTemplate(t *testing.T, src, dst string, data any) {
	t.Helper()
	tmpl := template.Must(template.ParseFiles(src))
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		t.Fatalf("render %s: %v", src, err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatalf("write %s: %v", dst, err)
	}
}

// probeBind checks that addr:port can be bound (nothing else serves DNS in the namespace).
func probeBind(network, addr string, port int) error {
	hp := net.JoinHostPort(addr, strconv.Itoa(port))
	if network == "udp" {
		c, err := net.ListenPacket("udp", hp)
		if err != nil {
			return fmt.Errorf("listen udp %s: %w", hp, err)
		}
		return c.Close()
	}
	l, err := net.Listen("tcp", hp)
	if err != nil {
		return fmt.Errorf("listen tcp %s: %w", hp, err)
	}
	return l.Close()
}

// dnsAnswers asks server for www.e2e.test A and checks unbound's local data came back.
func dnsAnswers(network, server string) (bool, error) {
	c := &dns.Client{Net: network, Timeout: time.Second}
	m := new(dns.Msg)
	m.SetQuestion("www.e2e.test.", dns.TypeA)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return false, fmt.Errorf("query %s %s: %w", network, server, err)
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return false, fmt.Errorf("query %s %s: rcode %s, %d answers", network, server, dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok || !a.A.Equal(net.ParseIP("192.0.2.1")) {
		return false, errors.New("unexpected answer " + r.Answer[0].String())
	}
	return true, nil
}
