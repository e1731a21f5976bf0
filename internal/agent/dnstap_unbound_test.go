package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// unboundDnstapConf: authoritative for one static zone on 127.0.0.1, nothing recursed, every
// client query and response logged to the tap's unix socket.
const unboundDnstapConf = `server:
  directory: "%[1]s"
  chroot: ""
  username: ""
  pidfile: ""
  do-daemonize: no
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  interface: 127.0.0.1
  port: %[2]d
  do-ip6: no
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-localhost: yes
  local-zone: "e2e.test." static
  local-data: "www.e2e.test. 300 IN A 192.0.2.1"
  local-zone: "." refuse
remote-control:
  control-enable: no
dnstap:
  dnstap-enable: yes
  dnstap-socket-path: "%[3]s"
  dnstap-send-identity: yes
  dnstap-send-version: yes
  dnstap-log-client-query-messages: yes
  dnstap-log-client-response-messages: yes
`

// Debian's unbound streams dnstap (its own bidirectional Frame Streams client) into a socket
// tap while dnsperf queries it: the policy counts one CLIENT_QUERY per query unbound received
// and one CLIENT_RESPONSE per answer, as dnsperf reports them. Skipped without unbound or
// dnsperf, and with -short.
func TestDnstapUnboundDnsperf(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no external processes")
	}
	for _, prog := range []string{"unbound", "dnsperf"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s not installed", prog)
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "dnstap.sock")
	_, srv := newTestAgent(t)
	if st, body := do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", dnstapTapYAML("unbound", "socket", sock)); st != 201 {
		t.Fatalf("POST tap: %d %s", st, body)
	}
	if st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", dnstapPolicyYAML("p", "unbound", "")); st != 201 {
		t.Fatalf("POST policy: %d %s", st, body)
	}

	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, unboundDnstapConf, dir, port, sock), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ub := exec.CommandContext(ctx, "unbound", "-d", "-c", conf)
	var ubLog strings.Builder
	ub.Stdout, ub.Stderr = &ubLog, &ubLog
	if err := ub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ub.Process.Kill()
		ub.Wait()
		if t.Failed() {
			t.Logf("unbound log:\n%s", ubLog.String())
		}
	}()

	server := fmt.Sprintf("127.0.0.1:%d", port)
	counts := func() (q, r float64) {
		w, _ := schemaOf(t, policyBucket(t, srv.URL, "p"), "p-unbound-dns", "dns")["wire_packets"].(map[string]any)
		q, _ = w["queries"].(float64)
		r, _ = w["replies"].(float64)
		return q, r
	}
	// Query until unbound answers and its dnstap connection delivers (it connects in its own
	// time): then every later message is counted.
	// A long timeout: a warm-up query abandoned and answered late would land after the baseline.
	c := &dns.Client{Timeout: 3 * time.Second}
	ready := false
	for deadline := time.Now().Add(15 * time.Second); !ready && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		m := new(dns.Msg)
		m.SetQuestion("www.e2e.test.", dns.TypeA)
		if _, _, err := c.Exchange(m, server); err != nil {
			continue
		}
		q, r := counts()
		ready = q > 0 && r > 0
	}
	if !ready {
		t.Fatal("no dnstap message from unbound within 15 s")
	}
	// The warm-up messages reach the stream in their own time (a retried exchange may even be
	// answered late): take the baseline once the counts stop moving.
	q0, r0 := counts()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(time.Second)
		q, r := counts()
		if q == q0 && r == r0 {
			break
		}
		q0, r0 = q, r
	}

	queries := filepath.Join(dir, "queries.txt")
	var qf strings.Builder
	for i := range 100 {
		fmt.Fprintf(&qf, "n%d.e2e.test A\nwww.e2e.test A\n", i)
	}
	if err := os.WriteFile(queries, []byte(qf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", queries,
		"-n", "10", "-Q", "5000", "-t", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("dnsperf: %v\n%s", err, out)
	}
	sent, completed := perfCount(t, out, "Queries sent"), perfCount(t, out, "Queries completed")
	if sent != 2000 {
		t.Fatalf("dnsperf sent %d queries, want 2000\n%s", sent, out)
	}
	var q, r float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if q, r = counts(); q-q0 >= float64(sent) && r-r0 >= float64(completed) {
			break
		}
	}
	t.Logf("dnsperf: %d sent, %d completed; dnstap: %v CLIENT_QUERY, %v CLIENT_RESPONSE", sent, completed, q-q0, r-r0)
	if q-q0 != float64(sent) || r-r0 != float64(completed) {
		t.Errorf("dnstap counted %v queries and %v responses, dnsperf sent %d and got %d answers\n%s", q-q0, r-r0, sent, completed, out)
	}
	st, body := do(t, "GET", srv.URL+"/api/v1/policies/p", "", "")
	if st != 200 || !strings.Contains(body, `"dropped":0`) || !strings.Contains(body, `"connection_errors":0`) {
		t.Errorf("policy info: %d %s", st, body)
	}
}

// perfCount reads "<label>: N" from dnsperf's statistics.
func perfCount(t *testing.T, out []byte, label string) int {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `:\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in dnsperf output:\n%s", label, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
