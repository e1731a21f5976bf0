package agent

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/reader"
)

// unboundConf: authoritative for one static zone on 127.0.0.1 over UDP/TCP, DoT and DoH,
// nothing recursed, every client query and response logged by dnstap (the section is %[6]s),
// statistics readable by unbound-control over a unix socket.
const unboundConf = `server:
  directory: "%[1]s"
  chroot: ""
  username: ""
  pidfile: ""
  do-daemonize: no
  use-syslog: no
  logfile: ""
  verbosity: 1
  extended-statistics: yes
  num-threads: 1
  interface: 127.0.0.1@%[2]d
  interface: 127.0.0.1@%[3]d
  interface: 127.0.0.1@%[4]d
  tls-port: %[3]d
  https-port: %[4]d
  tls-service-key: "%[1]s/key.pem"
  tls-service-pem: "%[1]s/cert.pem"
  do-ip6: no
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-localhost: yes
  local-zone: "e2e.test." static
  local-data: "www.e2e.test. 300 IN A 192.0.2.1"
  local-zone: "." refuse
remote-control:
  control-enable: yes
  control-interface: "%[5]s"
  control-use-cert: no
dnstap:
  dnstap-enable: yes
%[6]s  dnstap-send-identity: yes
  dnstap-send-version: yes
  dnstap-log-client-query-messages: yes
  dnstap-log-client-response-messages: yes
`

// unbound is a running Debian unbound with dnstap on, and where it listens.
type unbound struct {
	conf                  string
	dns, tls, https       int
	cmd                   *exec.Cmd
	log                   *strings.Builder
	stopped               bool
	dnstapSock, dnstapTCP string
}

// needProgs skips the test unless every program is installed (and without -short).
func needProgs(t testing.TB, progs ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no external processes")
	}
	for _, prog := range progs {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s not installed (.ci/run installs it)", prog)
		}
	}
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeSelfSigned writes key.pem and cert.pem (ECDSA P-256, localhost) into dir for DoT/DoH.
func writeSelfSigned(t testing.TB, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*pem.Block{"cert.pem": {Type: "CERTIFICATE", Bytes: der}, "key.pem": {Type: "EC PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// startUnbound starts unbound with dnstap to a unix socket (sock) or a TCP address (tcp,
// HOST:PORT), and waits until unbound-control answers.
func startUnbound(t testing.TB, ctx context.Context, dir, sock, tcp string) *unbound {
	t.Helper()
	writeSelfSigned(t, dir)
	u := &unbound{dns: freeTCPPort(t), tls: freeTCPPort(t), https: freeTCPPort(t), log: &strings.Builder{},
		conf: filepath.Join(dir, "unbound.conf"), dnstapSock: sock, dnstapTCP: tcp}
	section := fmt.Sprintf("  dnstap-socket-path: %q\n", sock)
	if tcp != "" {
		host, port, _ := net.SplitHostPort(tcp)
		section = fmt.Sprintf("  dnstap-ip: \"%s@%s\"\n  dnstap-tls: no\n", host, port)
	}
	conf := fmt.Appendf(nil, unboundConf, dir, u.dns, u.tls, u.https, filepath.Join(dir, "control.sock"), section)
	if err := os.WriteFile(u.conf, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	u.cmd = exec.CommandContext(ctx, "unbound", "-d", "-c", u.conf)
	u.cmd.Stdout, u.cmd.Stderr = u.log, u.log
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		u.stop()
		if t.Failed() {
			t.Logf("unbound log:\n%s", u.log.String())
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := exec.CommandContext(ctx, "unbound-control", "-c", u.conf, "status").Run(); err == nil {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("unbound-control status: no answer within 15 s")
		}
	}
}

// stop ends unbound with SIGTERM, so that it closes its dnstap connection cleanly.
func (u *unbound) stop() {
	if u.stopped {
		return
	}
	u.stopped = true
	u.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { u.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		u.cmd.Process.Kill()
		<-done
	}
}

// stats reads unbound-control stats_noreset into name → value.
func (u *unbound) stats(t testing.TB, ctx context.Context) map[string]float64 {
	t.Helper()
	out, err := exec.CommandContext(ctx, "unbound-control", "-c", u.conf, "stats_noreset").Output()
	if err != nil {
		t.Fatalf("unbound-control stats_noreset: %v", err)
	}
	st := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if f, err := strconv.ParseFloat(v, 64); ok && err == nil {
			st[k] = f
		}
	}
	return st
}

// perfRun is what dnsperf reported for one transport mode.
type perfRun struct {
	mode            string
	sent, completed int
	noerror, nx     int     // answers by rcode
	qps             float64 // dnsperf's "Queries per second"
}

// perfRate reads dnsperf's "Queries per second" (0 when absent).
func perfRate(out []byte) float64 {
	m := regexp.MustCompile(`Queries per second:\s+([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(string(m[1]), 64)
	return f
}

// dnsperf runs dnsperf in mode against u: 100 names that do not exist and one that does, each
// asked runs times (limit: -Q qps, 0 = as fast as it goes).
func (u *unbound) dnsperf(t testing.TB, ctx context.Context, dir, mode string, runs, qps int) perfRun {
	return u.dnsperfArgs(t, ctx, dir, mode, qps, "-n", strconv.Itoa(runs))
}

// dnsperfArgs runs dnsperf in mode with the run limit given by limit ("-n N" or "-l SECONDS").
func (u *unbound) dnsperfArgs(t testing.TB, ctx context.Context, dir, mode string, qps int, limit ...string) perfRun {
	t.Helper()
	queries := filepath.Join(dir, "queries.txt")
	var qf strings.Builder
	for i := range 100 {
		fmt.Fprintf(&qf, "n%d.e2e.test A\nwww.e2e.test A\n", i)
	}
	if err := os.WriteFile(queries, []byte(qf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := map[string]int{"udp": u.dns, "tcp": u.dns, "dot": u.tls, "doh": u.https}[mode]
	args := append([]string{"-m", mode, "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", queries, "-t", "5"}, limit...)
	if qps > 0 {
		args = append(args, "-Q", strconv.Itoa(qps))
	}
	out, err := exec.CommandContext(ctx, "dnsperf", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dnsperf %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r := perfRun{mode: mode, sent: perfCount(t, out, "Queries sent"), completed: perfCount(t, out, "Queries completed"),
		noerror: perfCount(t, out, "NOERROR"), nx: perfCount(t, out, "NXDOMAIN"), qps: perfRate(out)}
	if limit[0] == "-n" {
		if runs, _ := strconv.Atoi(limit[1]); r.sent != 200*runs {
			t.Fatalf("dnsperf %s sent %d queries, want %d\n%s", mode, r.sent, 200*runs, out)
		}
	}
	return r
}

// perfCount reads "<label>: N" or "<label> N" from dnsperf's statistics (0 when absent: an
// rcode dnsperf never saw is not listed).
func perfCount(t testing.TB, out []byte, label string) int {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `:?\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		if label == "Queries sent" || label == "Queries completed" {
			t.Fatalf("no %q in dnsperf output:\n%s", label, out)
		}
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// tapTotals are the numbers the resolver checks compare, from a dns handler's JSON.
type tapTotals struct {
	queries, replies, udp, tcp, dot, doh, noerror, nx, xacts, timedOut float64
	latency                                                            bool // xact.in.quantiles_us present
}

func totalsOf(dns map[string]any) tapTotals {
	w, _ := dns["wire_packets"].(map[string]any)
	x, _ := dns["xact"].(map[string]any)
	counts, _ := x["counts"].(map[string]any)
	in, _ := x["in"].(map[string]any)
	f := func(m map[string]any, k string) float64 { v, _ := m[k].(float64); return v }
	_, lat := in["quantiles_us"]
	return tapTotals{queries: f(w, "queries"), replies: f(w, "replies"), udp: f(w, "udp"), tcp: f(w, "tcp"),
		dot: f(w, "dot"), doh: f(w, "doh"), noerror: f(w, "noerror"), nx: f(w, "nxdomain"),
		xacts: f(counts, "total"), timedOut: f(counts, "timed_out"), latency: lat}
}

// checkAgainstResolver compares what the dnstap consumer counted (got) with dnsperf's reports
// and unbound's own statistics: queries and responses, rcodes, transports, and paired
// transactions (every answered query is one, none timed out, latency quantiles present).
func checkAgainstResolver(t testing.TB, got tapTotals, runs []perfRun, ub map[string]float64) {
	t.Helper()
	var sent, completed, noerror, nx, stream, datagram int
	for _, r := range runs {
		sent, completed, noerror, nx = sent+r.sent, completed+r.completed, noerror+r.noerror, nx+r.nx
		// Debian's unbound 1.17 reports DoT as socket_protocol TCP and DoH as UDP; a server
		// that reports DOT/DOH lands in those counters. The sums hold either way.
		switch r.mode {
		case "tcp", "dot":
			stream += r.sent + r.completed
		default:
			datagram += r.sent + r.completed
		}
	}
	if noerror+nx != completed {
		t.Errorf("dnsperf: %d NOERROR + %d NXDOMAIN != %d completed", noerror, nx, completed)
	}
	want := tapTotals{queries: float64(sent), replies: float64(completed), noerror: float64(noerror), nx: float64(nx),
		xacts: float64(completed), latency: true}
	have := got
	have.udp, have.tcp, have.dot, have.doh = 0, 0, 0, 0
	if have != want {
		t.Errorf("dnstap counted %+v\nwant (dnsperf)   %+v", have, want)
	}
	if got.tcp+got.dot != float64(stream) || got.udp+got.doh != float64(datagram) {
		t.Errorf("transports: tcp %v + dot %v, want %d; udp %v + doh %v, want %d", got.tcp, got.dot, stream, got.udp, got.doh, datagram)
	}
	for k, v := range map[string]float64{"total.num.queries": got.queries, "num.answer.rcode.NOERROR": got.noerror,
		"num.answer.rcode.NXDOMAIN": got.nx} {
		if ub[k] != v {
			t.Errorf("unbound-control %s = %v, dnstap counted %v", k, ub[k], v)
		}
	}
}

// Debian's unbound streams dnstap (its own bidirectional Frame Streams client) into a socket
// tap — a unix socket, then TCP — while dnsperf queries it over UDP, TCP, DoT and DoH: the
// policy's counts equal dnsperf's and unbound's own statistics, transactions pair up, and no
// frame is dropped. The rates are moderate so that the race detector's slowdown cannot make
// unbound drop messages (it drops what its queue cannot hold); BenchmarkDnstapUnbound runs
// dnsperf as fast as it goes.
func TestDnstapUnbound(t *testing.T) {
	needProgs(t, "unbound", "unbound-control", "dnsperf")
	for _, transport := range []string{"socket", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			_, srv := newTestAgent(t)
			sock, tcp, tapValue := filepath.Join(dir, "dnstap.sock"), "", ""
			tapValue = sock
			if transport == "tcp" {
				sock, tcp = "", fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
				tapValue = tcp
			}
			if st, body := do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", dnstapTapYAML("unbound", transport, tapValue)); st != 201 {
				t.Fatalf("POST tap: %d %s", st, body)
			}
			// Two periods and the window over both: the run may cross a minute boundary.
			policy := strings.Replace(dnstapPolicyYAML("p", "unbound", ""), "num_periods: 1", "num_periods: 2", 1)
			if st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", policy); st != 201 {
				t.Fatalf("POST policy: %d %s", st, body)
			}
			u := startUnbound(t, ctx, dir, sock, tcp)
			var runs []perfRun
			for _, m := range []struct {
				mode      string
				runs, qps int
			}{{"udp", 20, 10000}, {"tcp", 5, 5000}, {"dot", 5, 5000}, {"doh", 5, 5000}} {
				runs = append(runs, u.dnsperf(t, ctx, dir, m.mode, m.runs, m.qps))
			}
			ub := u.stats(t, ctx)
			var want int
			for _, r := range runs {
				want += r.sent + r.completed
			}
			window := func() tapTotals {
				st, body := do(t, "GET", srv.URL+"/api/v1/policies/p/metrics/window/2", "", "")
				if st != 200 {
					t.Fatalf("window/2: %d %s", st, body)
				}
				return totalsOf(schemaOf(t, decode(t, body)["p"].(map[string]any), "p-unbound-dns", "dns"))
			}
			var got tapTotals
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if got = window(); got.queries+got.replies >= float64(want) {
					break
				}
			}
			time.Sleep(300 * time.Millisecond) // anything beyond the expected count would show now
			got = window()
			t.Logf("dnsperf %+v; unbound total.num.queries %v; dnstap %+v", runs, ub["total.num.queries"], got)
			checkAgainstResolver(t, got, runs, ub)
			st, body := do(t, "GET", srv.URL+"/api/v1/policies/p", "", "")
			if st != 200 || !strings.Contains(body, `"dropped":0`) || !strings.Contains(body, `"connection_errors":0`) {
				t.Errorf("policy info: %d %s", st, body)
			}
		})
	}
}

// The same resolver traffic captured by fstrm_capture into a file: pktvisor-reader -i dnstap
// counts what dnsperf and unbound report, and the file replayed by fstrm_replay into the
// agent's socket gives the agent the reader's numbers.
func TestDnstapFstrmCaptureFile(t *testing.T) {
	needProgs(t, "unbound", "unbound-control", "dnsperf", "fstrm_capture", "fstrm_replay")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	capSock, file := filepath.Join(dir, "capture.sock"), filepath.Join(dir, "unbound.dnstap")
	fc := exec.CommandContext(ctx, "fstrm_capture", "-t", "protobuf:dnstap.Dnstap", "-u", capSock, "-w", file)
	var fcLog strings.Builder
	fc.Stdout, fc.Stderr = &fcLog, &fcLog
	if err := fc.Start(); err != nil {
		t.Fatal(err)
	}
	defer fc.Process.Kill()
	for deadline := time.Now().Add(10 * time.Second); !fileExists(capSock); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fstrm_capture made no socket: %s", fcLog.String())
		}
	}
	// unbound queues dnstap messages until its connection is up, so everything it answered
	// reaches the file.
	u := startUnbound(t, ctx, dir, capSock, "")
	var runs []perfRun
	for _, mode := range []string{"udp", "tcp", "dot"} {
		runs = append(runs, u.dnsperf(t, ctx, dir, mode, 5, 5000))
	}
	ub := u.stats(t, ctx)
	// unbound's dnstap thread writes its queue out in its own time and, stopped, drops what is
	// still queued (it does not drain on exit): give it a second. Stopping it then closes the
	// connection, so every frame it wrote is with fstrm_capture.
	time.Sleep(time.Second)
	u.stop()
	fc.Process.Signal(os.Interrupt)
	if err := fc.Wait(); err != nil {
		t.Fatalf("fstrm_capture: %v\n%s", err, fcLog.String())
	}
	t.Logf("fstrm_capture: %s", strings.TrimSpace(fcLog.String()))

	res, err := reader.Run(ctx, reader.Options{File: file, InputType: "dnstap", Periods: 5, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := json.Marshal(res.Output)
	var out map[string]map[string]map[string]any
	if err := json.Unmarshal(rt, &out); err != nil {
		t.Fatal(err)
	}
	var fromFile map[string]any
	for _, w := range out { // the one window the reader printed
		fromFile = w["dns"]
	}
	got := totalsOf(fromFile)
	t.Logf("reader on the fstrm_capture file: %+v", got)
	checkAgainstResolver(t, got, runs, ub)

	// fstrm_replay into the agent's socket: the agent's window equals the reader's.
	_, srv := newTestAgent(t)
	sock := filepath.Join(dir, "agent.sock")
	if st, body := do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", dnstapTapYAML("replay", "socket", sock)); st != 201 {
		t.Fatalf("POST tap: %d %s", st, body)
	}
	policy := strings.Replace(dnstapPolicyYAML("p", "replay", ""), "num_periods: 1", "num_periods: 2", 1)
	if st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", policy); st != 201 {
		t.Fatalf("POST policy: %d %s", st, body)
	}
	if out, err := exec.CommandContext(ctx, "fstrm_replay", "-t", "protobuf:dnstap.Dnstap", "-u", sock, "-r", file).CombinedOutput(); err != nil {
		t.Fatalf("fstrm_replay: %v\n%s", err, out)
	}
	var agentGot tapTotals
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, body := do(t, "GET", srv.URL+"/api/v1/policies/p/metrics/window/2", "", "")
		if st != 200 {
			t.Fatalf("window/2: %d %s", st, body)
		}
		if agentGot = totalsOf(schemaOf(t, decode(t, body)["p"].(map[string]any), "p-replay-dns", "dns")); agentGot == got {
			break
		}
	}
	if agentGot != got {
		t.Errorf("agent after fstrm_replay %+v, reader %+v", agentGot, got)
	}
}

// BenchmarkDnstapUnbound: dnsperf over UDP as fast as it goes (5 s per iteration) against
// unbound, whose dnstap streams into a unix socket tap. Reports dnsperf's rate, the dnstap
// messages/s the agent took in, the messages missing against unbound's own count (unbound drops
// what its queue cannot hold when its consumer is slow) and the frames the agent dropped. Not a
// test: it never fails on speed. go test -run '^$' -bench DnstapUnbound -benchtime 1x ./internal/agent/
func BenchmarkDnstapUnbound(b *testing.B) {
	needProgs(b, "unbound", "unbound-control", "dnsperf")
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, srv := newTestAgent(b)
	sock := filepath.Join(dir, "dnstap.sock")
	if st, body := do(b, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", dnstapTapYAML("unbound", "socket", sock)); st != 201 {
		b.Fatalf("POST tap: %d %s", st, body)
	}
	policy := strings.Replace(dnstapPolicyYAML("p", "unbound", ""), "num_periods: 1", "num_periods: 5", 1)
	if st, body := do(b, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", policy); st != 201 {
		b.Fatalf("POST policy: %d %s", st, body)
	}
	u := startUnbound(b, ctx, dir, sock, "")
	count := func() float64 {
		st, body := do(b, "GET", srv.URL+"/api/v1/policies/p/metrics/window/5", "", "")
		if st != 200 {
			b.Fatalf("window/5: %d %s", st, body)
		}
		got := totalsOf(schemaOf(b, decode(b, body)["p"].(map[string]any), "p-unbound-dns", "dns"))
		return got.queries + got.replies
	}
	var qps, msgs float64
	b.ResetTimer()
	for range b.N {
		r := u.dnsperfArgs(b, ctx, dir, "udp", 0, "-l", "5")
		qps += r.qps
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if c := count(); c == msgs {
				break
			} else {
				msgs = c
			}
		}
	}
	b.StopTimer()
	ub := u.stats(b, ctx)
	st, body := do(b, "GET", srv.URL+"/api/v1/policies/p", "", "")
	dropped := -1.0
	if st == 200 {
		if m := regexp.MustCompile(`"dropped":(\d+)`).FindStringSubmatch(body); m != nil {
			dropped, _ = strconv.ParseFloat(m[1], 64)
		}
	}
	b.ReportMetric(qps/float64(b.N), "dnsperf_qps")
	b.ReportMetric(msgs/(5*float64(b.N)), "dnstap_msgs/s")
	b.ReportMetric(2*ub["total.num.queries"]-msgs, "missing_msgs")
	b.ReportMetric(dropped, "agent_dropped")
}
