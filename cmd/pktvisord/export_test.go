package main

import (
	"context"
	"encoding/json"
	"fmt"
	"go/build"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/gen"
)

// victoriaMetrics finds the binary scripts/build-tools.sh installs.
func victoriaMetrics(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("victoria-metrics"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "victoria-metrics")
	if _, err := os.Stat(p); err != nil {
		t.Skip("victoria-metrics is not installed: run scripts/build-tools.sh")
	}
	return p
}

// startVM runs VictoriaMetrics single-node on a loopback port with its storage in a temporary
// folder, and returns its base URL once healthy.
func startVM(t *testing.T, bin string) string {
	t.Helper()
	port := freePort(t)
	return startServer(t, "VictoriaMetrics", port, "/health", bin,
		"-storageDataPath="+t.TempDir(),
		"-retentionPeriod=100y",
		"-httpListenAddr=127.0.0.1:"+strconv.Itoa(port),
		"-search.latencyOffset=0s", // fresh samples are queryable at once
		"-search.disableCache",
		"-loggerLevel=ERROR")
}

// startServer runs a test server (stopped at cleanup) that listens on 127.0.0.1:port and
// returns its base URL once GET health answers 200.
func startServer(t *testing.T, name string, port int, health, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", name, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type vmSample struct {
	Metric map[string]string
	Value  float64
}

// vmQuery evaluates an instant PromQL query (on VictoriaMetrics, after flushing its buffers;
// the flush is a 404 on Prometheus).
func vmQuery(t *testing.T, base, q string) []vmSample {
	t.Helper()
	if resp, err := http.Get(base + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, body)
	}
	var out []vmSample
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		out = append(out, vmSample{s.Metric, v})
	}
	return out
}

// getJSON fetches a JSON document from the agent.
func getJSON(base, path string) (map[string]any, error) {
	resp, err := http.Get(base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	var m map[string]any
	err = json.NewDecoder(resp.Body).Decode(&m)
	return m, err
}

func jnum(m any, path ...string) float64 {
	for _, k := range path {
		m = m.(map[string]any)[k]
	}
	return m.(float64)
}

// pushAgent is a running pktvisord replaying a generated capture of about 4.7 minutes (4
// closed buckets and a partial fifth) into policy x (net; dns with histograms), and what its
// own JSON API says of the closed buckets.
type pushAgent struct {
	cmd     *exec.Cmd
	log     *strings.Builder
	stopped bool
	base    string
	buckets [5]map[string]any // 1..4: policy x's bucket n

	total, packets, xact float64 // summed over the closed buckets
	minP50, maxP50       float64 // of the closed buckets' transaction times
}

// startPushAgent builds pktvisord with go build and runs it with the given extra arguments;
// it returns once the capture is read (bucket 4 closed).
func startPushAgent(t *testing.T, args ...string) *pushAgent {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build pktvisord")
	}
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "pktvisord")
	if out, err := exec.Command(goBin, "build", "-o", agentBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := gen.DefaultConfig()
	cfg.Packets, cfg.QPS, cfg.Clients, cfg.Names = 4000, 7, 300, 500
	capture := filepath.Join(dir, "minutes.pcap")
	f, err := os.Create(capture)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Write(f, cfg); err != nil {
		t.Fatal(err)
	}
	f.Close()
	config := filepath.Join(dir, "pktvisord.yaml")
	os.WriteFile(config, []byte(fmt.Sprintf(`visor:
  taps:
    gen:
      input_type: pcap
      config:
        pcap_file: %q
        host_spec: 10.0.0.0/8,fd00::/8
  policies:
    x:
      kind: collection
      input: {tap: gen, input_type: pcap}
      handlers:
        modules:
          net: {type: net}
          dns: {type: dns, metric_groups: {enable: [histograms]}}
`, capture)), 0o644)
	port := freePort(t)
	a := &pushAgent{log: &strings.Builder{}, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	a.cmd = exec.Command(agentBin, append([]string{"--config", config, "-l", "127.0.0.1", "-p", strconv.Itoa(port)}, args...)...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !a.stopped {
			a.cmd.Process.Kill()
			a.cmd.Wait()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for a.buckets[4] == nil {
		if m, err := getJSON(a.base, "/api/v1/policies/x/metrics/bucket/4"); err == nil {
			a.buckets[4] = m["x"].(map[string]any)
		} else if time.Now().After(deadline) {
			t.Fatalf("bucket 4 never closed: %v\n%s", err, a.log.String())
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	a.minP50 = math.Inf(1)
	for n := 1; n <= 4; n++ {
		if a.buckets[n] == nil {
			m, err := getJSON(a.base, fmt.Sprintf("/api/v1/policies/x/metrics/bucket/%d", n))
			if err != nil {
				t.Fatal(err)
			}
			a.buckets[n] = m["x"].(map[string]any)
		}
		dns := a.buckets[n]["x-gen-dns"].(map[string]any)["dns"]
		a.total += jnum(dns, "wire_packets", "total")
		a.xact += jnum(dns, "xact", "out", "total")
		a.packets += jnum(a.buckets[n]["x-gen-net"].(map[string]any)["packets"], "total")
		p50 := jnum(dns, "xact", "out", "quantiles_us", "p50")
		a.minP50, a.maxP50 = min(a.minP50, p50), max(a.maxP50, p50)
	}
	if a.total == 0 || a.xact == 0 {
		t.Fatal("no DNS in the closed buckets")
	}
	return a
}

// stop sends SIGTERM: the agent pushes its last state and exits 0, without failed pushes.
func (a *pushAgent) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("pktvisord exit: %v\n%s", err, a.log.String())
	}
	a.stopped = true
	if strings.Contains(a.log.String(), "push failed") {
		t.Errorf("pushes failed:\n%s", a.log.String())
	}
}

// The agent pushes to a real VictoriaMetrics over OTLP/HTTP and remote write at once; the
// series found there equal the agent's own JSON numbers of the closed buckets: counters
// summed over them, gauges those of the last one, histogram counts the transactions.
func TestPushToVictoriaMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VictoriaMetrics and pktvisord (-short)")
	}
	vm := startVM(t, victoriaMetrics(t))
	vmPort := strings.TrimPrefix(vm, "http://127.0.0.1:")
	a := startPushAgent(t, "--prom-instance", "e2e",
		"--otel", "--otel-host", "127.0.0.1", "--otel-port", vmPort, "--otel-path", "/opentelemetry/v1/metrics", "--otel-interval", "1",
		"--remote-write", vm+"/api/v1/write")
	buckets, total, packets, xact, minP50, maxP50 := a.buckets, a.total, a.packets, a.xact, a.minP50, a.maxP50
	dns1 := buckets[1]["x-gen-dns"].(map[string]any)["dns"].(map[string]any)
	card := jnum(dns1, "cardinality", "qname")
	top := dns1["top_qname2"].([]any)[0].(map[string]any)
	topName, topEst := top["name"].(string), top["estimate"].(float64)

	type check struct {
		query string
		want  float64
	}
	checks := []check{
		{`dns_wire_packets_total_total{handler="x-gen-dns"}`, total},
		{`packets_total_total{handler="x-gen-net"}`, packets},
		{`dns_cardinality_qname{handler="x-gen-dns"}`, card},
		{fmt.Sprintf(`dns_top_qname2{handler="x-gen-dns",qname=%q}`, topName), topEst},
		{`dns_xact_out_quantiles_us_histogram_count{handler="x-gen-dns"}`, xact},
		{`sum(dns_xact_out_quantiles_us_histogram_bucket{handler="x-gen-dns"}) without (vmrange)`, xact},
		{`dns_xact_out_histogram_us_cumulative_bucket{handler="x-gen-dns",le="+Inf"}`, xact},
	}
	// Each check is met by the remote write series (job and instance labels) and by the OTLP
	// series (service.instance.id from the resource, scope labels).
	kinds := map[string]func(map[string]string) bool{
		"remote write": func(m map[string]string) bool { return m["job"] == "pktvisord" && m["instance"] == "e2e" },
		"otlp":         func(m map[string]string) bool { return m["service.instance.id"] == "e2e" && m["job"] == "" },
	}
	var failures []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		failures = failures[:0]
		for _, c := range checks {
			got := vmQuery(t, vm, c.query)
			for kind, match := range kinds {
				found := false
				for _, s := range got {
					if match(s.Metric) {
						found = true
						if s.Value != c.want {
							failures = append(failures, fmt.Sprintf("%s: %s = %v, want %v", kind, c.query, s.Value, c.want))
						}
					}
				}
				if !found {
					failures = append(failures, fmt.Sprintf("%s: no %s (got %v)", kind, c.query, got))
				}
			}
		}
		if len(failures) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, f := range failures {
		t.Error(f)
	}
	// The exporters' own counters are on the agent's /metrics.
	resp, err := http.Get(a.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	health, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^pktvisord_export_pushes_total\{[^}]*\} [1-9]`).Match(health) {
		t.Errorf("/metrics has no pktvisord_export_pushes_total > 0:\n%s", health[max(0, len(health)-3000):])
	}
	t.Logf("closed buckets 1-4: dns total %v, packets %v, transactions %v, bucket 1 qnames %v, top %s %v; p50 %v…%v",
		total, packets, xact, card, topName, topEst, minP50, maxP50)

	// The median over the four minutes, read from the exponential histogram, lies between the
	// smallest and the largest per-minute median (± the sketch's 1 % and one bucket, 2.2 %, and
	// VictoriaMetrics' interpolation inside a bucket).
	for kind, sel := range map[string]string{"remote write": `job="pktvisord"`, "otlp": `job=""`} {
		q := fmt.Sprintf(`histogram_quantile(0.5, sum(dns_xact_out_quantiles_us_histogram_bucket{handler="x-gen-dns",%s}) by (vmrange))`, sel)
		got := vmQuery(t, vm, q)
		t.Logf("%s: median %v", kind, got)
		if len(got) != 1 || got[0].Value < minP50*0.96 || got[0].Value > maxP50*1.04 {
			t.Errorf("%s: %s = %v, want within [%v, %v] ± 4 %%", kind, q, got, minP50, maxP50)
		}
	}

	a.stop(t)
}

// startPrometheus runs Debian's Prometheus with its remote write receiver on a loopback port
// (native histograms off, as by default) and returns its base URL once ready.
func startPrometheus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (Debian package prometheus)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte("global: {}\n"), 0o644)
	port := freePort(t)
	return startServer(t, "Prometheus", port, "/-/ready", bin, "--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port), "--web.enable-remote-write-receiver")
}

// Remote write with --remote-write-classic-histograms into a stock Prometheus (which refuses
// native histograms): the counters and the classic latency histogram arrive with the agent's
// numbers, and histogram_quantile lands between the per-minute medians.
func TestRemoteWriteToPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus and pktvisord (-short)")
	}
	prom := startPrometheus(t)
	a := startPushAgent(t, "--prom-instance", "e2e", "--remote-write", prom+"/api/v1/write", "--remote-write-classic-histograms")
	checks := map[string]float64{
		`dns_wire_packets_total_total{handler="x-gen-dns",job="pktvisord",instance="e2e"}`: a.total,
		`packets_total_total{handler="x-gen-net"}`:                                         a.packets,
		`dns_xact_out_quantiles_us_histogram_count{handler="x-gen-dns"}`:                   a.xact,
		`dns_xact_out_quantiles_us_histogram_bucket{handler="x-gen-dns",le="+Inf"}`:        a.xact,
		`dns_xact_out_histogram_us_cumulative_bucket{handler="x-gen-dns",le="+Inf"}`:       a.xact,
		`count(dns_xact_out_quantiles_us_histogram_bucket{handler="x-gen-dns"}) > bool 10`: 1,
		`dns_cardinality_qname{handler="x-gen-dns"}`:                                       jnum(a.buckets[1]["x-gen-dns"], "dns", "cardinality", "qname"),
	}
	var failures []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		failures = failures[:0]
		for q, want := range checks {
			got := vmQuery(t, prom, q)
			if len(got) != 1 || got[0].Value != want {
				failures = append(failures, fmt.Sprintf("%s = %v, want %v", q, got, want))
			}
		}
		if len(failures) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, f := range failures {
		t.Error(f)
	}
	// Classic buckets grow by 2^(1/8): linear interpolation inside one is off by at most 9 %.
	q := `histogram_quantile(0.5, dns_xact_out_quantiles_us_histogram_bucket{handler="x-gen-dns"})`
	got := vmQuery(t, prom, q)
	t.Logf("%s = %v; per-minute medians %v…%v", q, got, a.minP50, a.maxP50)
	if len(got) != 1 || got[0].Value < a.minP50*0.9 || got[0].Value > a.maxP50*1.1 {
		t.Errorf("%s = %v, want within [%v, %v] ± 10 %%", q, got, a.minP50, a.maxP50)
	}
	a.stop(t)
}

// Bad export options, from the command line or visor.config, stop the agent at start-up.
func TestExportOptionErrors(t *testing.T) {
	dir := t.TempDir()
	vc := func(body string) string {
		p := filepath.Join(dir, fmt.Sprintf("c%d.yaml", len(body)))
		os.WriteFile(p, []byte("visor:\n  config:\n"+body), 0o644)
		return p
	}
	for _, c := range []struct {
		args []string
		out  string
	}{
		{[]string{"--otel", "--otel-interval", "0"}, "--otel-interval must be positive"},
		{[]string{"--otel", "--otel-tls-cert", "c.pem"}, "--otel-tls-cert and --otel-tls-key go together"},
		{[]string{"--otel", "--otel-tls", "--otel-tls-cert", "/nonexistent.pem", "--otel-tls-key", "/nonexistent.key"}, "client certificate"},
		{[]string{"--remote-write", "localhost:8428/api/v1/write"}, "bad URL"},
		{[]string{"--remote-write", "http://h/w", "--remote-write-user", "u", "--remote-write-bearer", "t"}, "give one of basic auth"},
		{[]string{"--remote-write", "http://h/w", "--remote-write-interval", "-1"}, "must not be negative"},
		{[]string{"--config", vc("    remote_write: ftp://h/w\n")}, "bad URL"},
		{[]string{"--config", vc("    otel: true\n    otel_interval: 0\n")}, "--otel-interval must be positive"},
		{[]string{"--otel", "--config", vc("    otel_tls_cert: c.pem\n")}, "go together"},
		// The command line wins over visor.config.
		{[]string{"--remote-write", "gopher://h/w", "--config", vc("    remote_write: http://h/w\n")}, "gopher"},
	} {
		var out, errOut strings.Builder
		args := append([]string{"--admin-api", "-l", "127.0.0.1", "-p", "0"}, c.args...)
		code := run(args, &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), c.out) {
			t.Errorf("pktvisord %v: exit %d, output %q lacks %q", c.args, code, errOut.String(), c.out)
		}
	}
}
