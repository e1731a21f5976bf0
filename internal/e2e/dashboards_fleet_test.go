package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pktvisor-go/pktvisor/internal/gen"
)

// fleetDashboardPath is the dashboard on the cumulative families (dashboards/README.md, "The
// fleet dashboard").
var fleetDashboardPath = filepath.Join("..", "..", "dashboards", "pktvisor-fleet.json")

// The agents of TestFleetDashboard. Each reads a generated capture of 3 to 5 minutes of event
// time at once (no realtime), so its buckets 1..N (N ≤ 4, all still in the default ring of 5)
// close at once and feed the cumulative families. The host specs take one server and one /24
// of clients, as dashAgents do, so that both xact in and xact out have transactions.
var fleetAgents = []struct {
	instance string
	seed     uint64
	packets  int
	qps      float64
	hostSpec string
}{
	{"a", 1, 6000, 10, "172.16.53.1/32,fd53::1/128,10.0.0.0/24"},
	{"b", 2, 5000, 8, "172.16.53.2/32,fd53::2/128,10.0.1.0/24"},
}

// fleetHandlers is the number of handlers of fleetAddPolicy's policy (net, dns, pcap): each
// adds one to pktvisord_cumulative_buckets_total per closed minute.
const fleetHandlers = 3

// cumulativeProblems lists what makes an expression of the fleet dashboard something other
// than a query on the cumulative families: a selector read without a range (only the agent's
// own pktvisord_* gauges may be, never a running total), or a range over a name that is neither
// a `_total` counter nor a `_histogram` (a per-minute gauge of pktvisor.json under rate()). The
// types themselves are checked against Prometheus' metadata in the live part.
func cumulativeProblems(expr string) (probs []string, ranged, instant []string) {
	expr = grafanaVarRe.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVarRe.FindStringSubmatch(m)
		return "$" + sm[1] + sm[3] + sm[4]
	})
	for _, loc := range promSelectorRe.FindAllStringSubmatchIndex(expr, -1) {
		name := ""
		if loc[2] >= 0 {
			name = expr[loc[2]:loc[3]]
		}
		if name == "" {
			probs = append(probs, fmt.Sprintf("selector %s has no metric name", expr[loc[0]:loc[1]]))
			continue
		}
		if strings.HasPrefix(strings.TrimLeft(expr[loc[1]:], " \t\n"), "[") {
			if !strings.HasSuffix(name, "_total") && !strings.HasSuffix(name, "_histogram") {
				probs = append(probs, fmt.Sprintf("%s under a range is neither a _total counter nor a _histogram", name))
			}
			if !slices.Contains(ranged, name) {
				ranged = append(ranged, name)
			}
			continue
		}
		if !strings.HasPrefix(name, "pktvisord_") || strings.HasSuffix(name, "_total") {
			probs = append(probs, fmt.Sprintf("%s read without rate()/increase(): only the agent's pktvisord_* gauges may be", name))
		}
		if !slices.Contains(instant, name) {
			instant = append(instant, name)
		}
	}
	return probs, ranged, instant
}

func TestCumulativeProblems(t *testing.T) {
	tests := []struct {
		expr string
		want int
	}{
		{`sum(rate(packets_total_total{instance=~"$instance",policy=~"$policy"}[$__rate_interval]))`, 0},
		{`histogram_quantile(0.99, sum by (instance) (rate(dns_xact_in_quantiles_us_histogram{instance=~"$instance",policy=~"$policy"}[$__rate_interval])))`, 0},
		{`sum(increase(pktvisord_input_os_drops_total{instance=~"$instance"}[$__range]))`, 0},
		{`count(pktvisord_build_info{instance=~"$instance"})`, 0},
		{`sum(packets_total{instance=~"$instance",policy=~"$policy"}) / 60`, 1},                      // per-minute gauge
		{`sum(rate(dns_wire_packets_queries{instance=~"$instance",policy=~"$policy"}[5m]))`, 1},      // rate() of a gauge
		{`sum(dns_wire_packets_queries_total{instance=~"$instance",policy=~"$policy"})`, 1},          // a raw running total
		{`sum(pktvisord_input_packets_total{instance=~"$instance"})`, 1},                             // same, agent health
		{`sum(rate({__name__=~"packets_.*_total",instance=~"$instance",policy=~"$policy"}[1m]))`, 1}, // no name
		{`sum(rate(x_total{instance=~"$instance"}[1m])) / sum(y{instance=~"$instance",policy=~"$policy"})`, 1},
	}
	for _, tc := range tests {
		if got, _, _ := cumulativeProblems(tc.expr); len(got) != tc.want {
			t.Errorf("cumulativeProblems(%q) = %q, want %d problems", tc.expr, got, tc.want)
		}
	}
}

// TestFleetDashboard checks dashboards/pktvisor-fleet.json with the schema checks of
// TestDashboards, then evaluates every expression against Prometheus 2.42 with native
// histograms scraping two agents, and holds the counters and histograms the panels are built on
// against the agents' JSON buckets and against the capture files themselves.
func TestFleetDashboard(t *testing.T) {
	raw, err := os.ReadFile(fleetDashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	exprs, errs := checkDashboard(filepath.Base(fleetDashboardPath), raw)
	for _, e := range errs {
		t.Errorf("schema: %v", e)
	}
	var ranged, instant []string
	for _, e := range exprs {
		if e.section == "variable" {
			continue
		}
		probs, r, i := cumulativeProblems(e.expr)
		for _, p := range probs {
			t.Errorf("%s: %s in %q", e.where, p, e.expr)
		}
		for _, n := range r {
			if !slices.Contains(ranged, n) {
				ranged = append(ranged, n)
			}
		}
		for _, n := range i {
			if !slices.Contains(instant, n) {
				instant = append(instant, n)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	sort.Strings(ranged)
	t.Logf("%d expressions over %d counters and histograms", len(exprs), len(ranged))

	if testing.Short() {
		t.Skip("Prometheus part skipped in -short mode")
	}
	for _, tool := range []string{"prometheus", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package prometheus; .ci/run installs it): %v", tool, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	dir := t.TempDir()
	mustRun(ctx, t, "go", "build", "-o", dir+string(filepath.Separator), "github.com/pktvisor-go/pktvisor/cmd/pktvisord")
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))

	type agentRun struct {
		instance string
		base     string // the agent's API
		packets  uint64 // frames in the capture
		closed   pcapMinutes
		proc     *proc
		json     map[string]float64 // JSON buckets 1..N summed, keyed as metric base names
		p50      map[string][]float64
	}
	var agents []*agentRun
	var targets []string
	var watch []*proc
	for _, a := range fleetAgents {
		pcap := filepath.Join(dir, "fleet-"+a.instance+".pcap")
		cfg := gen.DefaultConfig()
		cfg.Packets, cfg.QPS, cfg.Seed = a.packets, a.qps, a.seed
		truth, err := writeCapture(pcap, cfg)
		if err != nil {
			t.Fatal(err)
		}
		closed, err := readPcapMinutes(pcap)
		if err != nil {
			t.Fatal(err)
		}
		// 3 to 4 closed minutes: enough for a fleet view, and every one of them still in the
		// ring of 5 (one live bucket + 4), so none is lost before the accumulator sees it and the
		// JSON buckets 1..N hold all it added.
		if closed.minutes < 3 || closed.minutes > 4 {
			t.Fatalf("%s: the capture spans %d closed minutes, want 3 or 4 (%d packets)", pcap, closed.minutes, truth.Packets)
		}
		port := freePort(t, "127.0.0.1")
		bin := filepath.Join(dir, "pktvisord-fleet-"+a.instance)
		if err := os.Symlink(filepath.Join(dir, "pktvisord"), bin); err != nil {
			t.Fatal(err)
		}
		ar := &agentRun{instance: a.instance, base: "http://127.0.0.1:" + strconv.Itoa(port), packets: truth.Packets, closed: closed}
		ar.proc = startProc(t, dir, bin, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "--prom-instance", a.instance, "--admin-api")
		// The capture is read when the policy is created, right after the API (and with it the
		// accumulator's first poll) is up: the whole read falls between two of its 2 s polls.
		// (A poll while buckets rotate can lose one: see fleetAddPolicy.)
		waitFor(t, a.instance+"'s API", 15*time.Second, 20*time.Millisecond, []*proc{ar.proc}, func() (bool, error) {
			_, err := httpGet(ctx, ar.base+"/api/v1/metrics/app")
			return err == nil, err
		})
		if err := fleetAddPolicy(ctx, ar.base, pcap, a.hostSpec); err != nil {
			t.Fatalf("%s: %v", a.instance, err)
		}
		agents = append(agents, ar)
		targets = append(targets, "127.0.0.1:"+strconv.Itoa(port))
		watch = append(watch, ar.proc)
	}
	// Prometheus starts once both files are read: its scrapes poll the accumulator too.
	for _, a := range agents {
		waitFor(t, a.instance+" to read its capture", 30*time.Second, 50*time.Millisecond, watch, func() (bool, error) {
			return fleetInputDone(ctx, a.base, a.packets)
		})
		body, err := httpGet(ctx, a.base+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		want := float64(a.closed.minutes * fleetHandlers)
		if got, err := exposedValue(body, `pktvisord_cumulative_buckets_total{instance="`+a.instance+`"}`); err != nil || got != want {
			t.Fatalf("%s: pktvisord_cumulative_buckets_total = %v (%v), want %v (%d closed minutes × %d handlers): the accumulator lost a closed bucket\n%s",
				a.instance, got, err, want, a.closed.minutes, fleetHandlers, cumulativeLines(body))
		}
	}
	prom, promBase := startPrometheusTargets(t, dir, targets,
		// Native histograms (2.40+): Prometheus then asks for the protobuf exposition.
		"--enable-feature=native-histograms")
	watch = append(watch, prom)

	// Ready when Prometheus holds 3 scrapes of each agent's final totals (the minimum over the
	// last 4 s is the final count: the counter only grows), native histograms included.
	waitFor(t, "Prometheus to hold 3 scrapes of both agents' final totals", 40*time.Second, 500*time.Millisecond, watch, func() (bool, error) {
		for _, a := range agents {
			sel := `{instance="` + a.instance + `"}`
			checks := []struct {
				query string
				want  float64
			}{
				{"min_over_time(pktvisord_cumulative_buckets_total" + sel + "[4s])", float64(a.closed.minutes * fleetHandlers)},
				{"count_over_time(pktvisord_cumulative_buckets_total" + sel + "[4s]) >= bool 3", 1},
				{"count(histogram_count(dns_xact_in_quantiles_us_histogram" + sel + "))", 1},
			}
			for _, c := range checks {
				v, err := promScalar(ctx, promBase, c.query)
				if err != nil {
					return false, err
				}
				if v != c.want {
					return false, fmt.Errorf("%s = %v, want %v", c.query, v, c.want)
				}
			}
		}
		return true, nil
	})
	t.Logf("both agents read and scraped after %v", time.Since(start).Round(time.Millisecond))

	// The JSON API's buckets 1..N of each agent: exactly what the accumulator added.
	for _, a := range agents {
		a.json, a.p50, err = fleetBucketSums(ctx, a.base, a.closed.minutes)
		if err != nil {
			t.Fatalf("%s: %v", a.instance, err)
		}
	}

	// The metric types, as Prometheus recorded them from the agents: every name under a range
	// is a counter or a native histogram, every other one a gauge.
	types, err := promMetadata(ctx, promBase)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ranged {
		if ty := types[n]; ty != "counter" && ty != "histogram" {
			t.Errorf("%s is under rate()/increase() but Prometheus has it as %q", n, ty)
		}
	}
	for _, n := range instant {
		if ty := types[n]; ty != "gauge" {
			t.Errorf("%s is read as a value but Prometheus has it as %q", n, ty)
		}
	}

	names := make([]string, len(agents))
	for i, a := range agents {
		names[i] = a.instance
	}
	checkDashboardExprs(ctx, t, promBase, exprs, names)

	// Values. check compares an instant query, by instance ("" for a fleet-wide value), with
	// the truth; with nonZero a zero truth fails too (a check that cannot tell anything) and
	// the values are logged.
	check := func(query string, want map[string]float64, what string, nonZero bool) {
		t.Helper()
		res, err := promQuery(ctx, promBase, query)
		if err != nil {
			t.Error(err)
			return
		}
		got := map[string]float64{}
		for _, r := range res {
			v, err := r.float()
			if err != nil {
				t.Errorf("%s: %v", query, err)
			}
			got[r.Metric["instance"]] = v
		}
		if len(got) != len(want) {
			t.Errorf("%s = %v, want %v (%s)", query, got, want, what)
			return
		}
		for k, w := range want {
			if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) || (nonZero && w == 0) {
				t.Errorf("%s: instance %q = %v, want %v (%s)", query, k, got[k], w, what)
			}
		}
		if nonZero {
			t.Logf("%s = %v (%s)", query, got, what)
		}
	}
	fleet := func(per func(a *agentRun) float64) (byInst, total map[string]float64) {
		byInst, total = map[string]float64{}, map[string]float64{"": 0}
		for _, a := range agents {
			byInst[a.instance] = per(a)
			total[""] += per(a)
		}
		return byInst, total
	}

	// Every counter the dashboard uses is the sum of the agents' JSON buckets 1..N.
	for _, n := range ranged {
		base, ok := strings.CutSuffix(n, "_total")
		if !ok || strings.HasPrefix(n, "pktvisord_") {
			continue
		}
		for _, a := range agents {
			if _, ok := a.json[base]; !ok {
				t.Errorf("%s: no counter %s in %s's JSON buckets", n, base, a.instance)
			}
		}
		by, all := fleet(func(a *agentRun) float64 { return a.json[base] })
		check(fmt.Sprintf("sum by (instance) (%s)", n), by, "JSON buckets 1..N", false)
		check(fmt.Sprintf("sum(%s)", n), all, "JSON buckets 1..N of both agents", false)
	}
	// The headline numbers, which must not be zero.
	_, q := fleet(func(a *agentRun) float64 { return a.json["dns_wire_packets_queries"] })
	check("sum(dns_wire_packets_queries_total)", q, "Σ JSON queries", true)
	for _, dir := range []string{"in", "out"} {
		by, all := fleet(func(a *agentRun) float64 { return a.json["dns_xact_"+dir+"_total"] })
		h := "dns_xact_" + dir + "_quantiles_us_histogram"
		check("histogram_count(sum("+h+"))", all, "Σ JSON xact."+dir+".total", true)
		check("histogram_count(sum by (instance) ("+h+"))", by, "JSON xact."+dir+".total", true)
	}
	// The packet counters and the payload-size histogram against the capture files: frames and
	// captured bytes of the closed periods (the last, live one is never counted).
	byPkts, allPkts := fleet(func(a *agentRun) float64 { return float64(a.closed.frames) })
	byBytes, allBytes := fleet(func(a *agentRun) float64 { return float64(a.closed.bytes) })
	check("sum by (instance) (packets_total_total)", byPkts, "frames of the closed periods", true)
	check("histogram_count(sum by (instance) (packets_payload_size_histogram))", byPkts, "frames of the closed periods", false)
	check("histogram_count(sum(packets_payload_size_histogram))", allPkts, "frames of the closed periods", false)
	check("histogram_sum(sum by (instance) (packets_payload_size_histogram))", byBytes, "captured bytes of the closed periods", true)
	check("histogram_sum(sum(packets_payload_size_histogram))", allBytes, "captured bytes of the closed periods", false)

	// The fleet median of all transactions lies between the smallest and the largest median of
	// the buckets it merges; the bound allows the JSON quantiles' 1 % (sketch), the merged
	// sketch's 1 % and one native bucket (2^(1/32), 2.2 %).
	const slack = 1.01 * 1.01 * 1.022
	for _, dir := range []string{"in", "out"} {
		var meds []float64
		for _, a := range agents {
			meds = append(meds, a.p50[dir]...)
		}
		if len(meds) == 0 {
			t.Errorf("xact %s: no bucket median", dir)
			continue
		}
		qry := "histogram_quantile(0.5, sum(dns_xact_" + dir + "_quantiles_us_histogram))"
		med, err := promScalar(ctx, promBase, qry)
		if err != nil {
			t.Error(err)
			continue
		}
		if lo, hi := slices.Min(meds), slices.Max(meds); !(med >= lo/slack && med <= hi*slack) {
			t.Errorf("%s = %v, outside the bucket medians' range [%v, %v] (×%.3f)", qry, med, lo, hi, slack)
		} else {
			t.Logf("fleet xact %s median %.0f µs, bucket medians %v", dir, med, meds)
		}
	}
	t.Logf("%d expressions checked in %v total", len(exprs), time.Since(start).Round(time.Millisecond))
}

// fleetAddPolicy creates, through the admin API, the tap "replay" reading pcap as fast as
// possible (event time drives the buckets) and the policy "default" with the net, dns and pcap
// modules, which starts the read.
//
// The policy is created over the API instead of from --config so that no accumulator poll runs
// while the buckets rotate: a poll that sees a handler's ring shift between two of its bucket
// reads can stage a newer closed bucket without the older one and never count the older one
// (export.Collector stops at the first depth without a new bucket). Reading from --config
// starts with the API, and about one run in five then lost a bucket.
func fleetAddPolicy(ctx context.Context, base, pcap, hostSpec string) error {
	tap := fmt.Sprintf(`visor:
  taps:
    replay:
      input_type: pcap
      config:
        pcap_file: %q
        host_spec: %q
`, pcap, hostSpec)
	policy := `visor:
  policies:
    default:
      kind: collection
      input:
        tap: replay
        input_type: pcap
      handlers:
        modules:
          net:
            type: net
          dns:
            type: dns
          pcap_stats:
            type: pcap
`
	for _, r := range []struct{ path, body string }{{"/api/v1/taps", tap}, {"/api/v1/policies", policy}} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+r.path, strings.NewReader(r.body))
		if err != nil {
			return fmt.Errorf("POST %s: %w", r.path, err)
		}
		req.Header.Set("Content-Type", "application/x-yaml")
		resp, err := httpClient.Do(req)
		if err != nil {
			return fmt.Errorf("POST %s: %w", r.path, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST %s: status %s: %.300s", r.path, resp.Status, body)
		}
	}
	return nil
}

// fleetInputDone reports whether policy default's input has read all its frames and stopped
// (GET /api/v1/policies/default, which, unlike /metrics, does not poll the accumulator).
func fleetInputDone(ctx context.Context, base string, frames uint64) (bool, error) {
	body, err := httpGet(ctx, base+"/api/v1/policies/default")
	if err != nil {
		return false, err
	}
	var info map[string]struct {
		Input map[string]struct {
			Input struct {
				Running bool `json:"running"`
			} `json:"input"`
			Stats struct {
				Frames uint64 `json:"frames"`
			} `json:"stats"`
		} `json:"input"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return false, fmt.Errorf("policy info: %w", err)
	}
	in := info["default"].Input
	if len(in) != 1 {
		return false, fmt.Errorf("policy default has %d inputs", len(in))
	}
	for _, i := range in {
		if i.Input.Running || i.Stats.Frames != frames {
			return false, fmt.Errorf("input running %v, %d of %d frames", i.Input.Running, i.Stats.Frames, frames)
		}
	}
	return true, nil
}

// exposedValue returns the value of the series written exactly as series in a text exposition.
func exposedValue(body []byte, series string) (float64, error) {
	for line := range strings.Lines(string(body)) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("no series %s", series)
}

// cumulativeLines are the exposition's lines of the counters the fleet dashboard reads, for a
// failure message.
func cumulativeLines(body []byte) string {
	var b strings.Builder
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "pktvisord_cumulative") || strings.Contains(line, "_total_total{") || strings.HasPrefix(line, "dns_wire_packets_queries_total{") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// writeCapture writes a generated capture to path.
func writeCapture(path string, cfg gen.Config) (gen.Truth, error) {
	f, err := os.Create(path)
	if err != nil {
		return gen.Truth{}, fmt.Errorf("create capture: %w", err)
	}
	truth, err := gen.Write(f, cfg)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return truth, fmt.Errorf("write %s: %w", path, err)
	}
	return truth, nil
}

// pcapMinutes is what the closed buckets of a capture read in event time hold: the frames (and
// their captured bytes) of every period but the last, live one, and how many periods closed.
type pcapMinutes struct {
	minutes int
	frames  uint64
	bytes   uint64
}

// readPcapMinutes reads a capture with gopacket's pcapgo (not the agent's reader) and splits it
// into periods as the reference's spec defines them for a file: the first starts at the first
// frame, and a frame whose whole second is at or past the period's start second + 60 closes it
// and starts the next one.
func readPcapMinutes(path string) (pcapMinutes, error) {
	f, err := os.Open(path)
	if err != nil {
		return pcapMinutes{}, fmt.Errorf("open capture: %w", err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return pcapMinutes{}, fmt.Errorf("%s: %w", path, err)
	}
	var m pcapMinutes
	var live struct{ frames, bytes uint64 }
	var next int64
	for i := 0; ; i++ {
		_, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return pcapMinutes{}, fmt.Errorf("%s: frame %d: %w", path, i+1, err)
		}
		sec := ci.Timestamp.Unix()
		switch {
		case i == 0:
			next = sec + 60
		case sec >= next:
			m.minutes++
			m.frames += live.frames
			m.bytes += live.bytes
			live.frames, live.bytes = 0, 0
			next = sec + 60
		}
		live.frames++
		live.bytes += uint64(ci.CaptureLength)
	}
	if m.frames+live.frames == 0 {
		return pcapMinutes{}, fmt.Errorf("%s: no frames", path)
	}
	return m, nil
}

// fleetBucketSums adds up every number of the JSON buckets 1..n of policy default, keyed by the
// path of JSON keys joined by "_" with the schema first (dns_wire_packets_queries), which is
// how a metric's name is built, and collects each bucket's xact in/out p50. Bucket n+1 must not
// exist: then buckets 1..n are all the closed ones.
func fleetBucketSums(ctx context.Context, base string, n int) (sums map[string]float64, p50 map[string][]float64, err error) {
	sums, p50 = map[string]float64{}, map[string][]float64{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				if k == "period" {
					continue
				}
				p := k
				if prefix != "" {
					p = prefix + "_" + k
				}
				walk(p, sub)
			}
		case float64:
			sums[prefix] += v
		}
	}
	for k := 1; k <= n+1; k++ {
		status, body, err := getStatus(ctx, fmt.Sprintf("%s/api/v1/policies/default/metrics/bucket/%d", base, k))
		if err != nil {
			return nil, nil, err
		}
		if k == n+1 {
			if status == http.StatusOK {
				return nil, nil, fmt.Errorf("bucket %d exists: more than %d closed minutes", k, n)
			}
			break
		}
		if status != http.StatusOK {
			return nil, nil, fmt.Errorf("bucket %d: status %d: %.300s", k, status, body)
		}
		var doc map[string]map[string]map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, nil, fmt.Errorf("bucket %d: %w", k, err)
		}
		for _, schemas := range doc["default"] {
			walk("", schemas)
			dns, _ := schemas["dns"].(map[string]any)
			xact, _ := dns["xact"].(map[string]any)
			for _, dir := range []string{"in", "out"} {
				d, _ := xact[dir].(map[string]any)
				q, _ := d["quantiles_us"].(map[string]any)
				if v, ok := q["p50"].(float64); ok {
					p50[dir] = append(p50[dir], v)
				}
			}
		}
	}
	return sums, p50, nil
}

// getStatus is httpGet that returns the status instead of failing on it.
func getStatus(ctx context.Context, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: read body: %w", u, err)
	}
	return resp.StatusCode, body, nil
}

// promScalar runs an instant query that must give exactly one series and returns its value.
func promScalar(ctx context.Context, base, query string) (float64, error) {
	res, err := promQuery(ctx, base, query)
	if err != nil {
		return 0, err
	}
	if len(res) != 1 {
		return 0, fmt.Errorf("%s: %d series, want 1", query, len(res))
	}
	return res[0].float()
}

// promMetadata returns the type Prometheus recorded for each metric name of its targets.
func promMetadata(ctx context.Context, base string) (map[string]string, error) {
	body, err := httpGet(ctx, base+"/api/v1/metadata")
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Data   map[string][]struct {
			Type string `json:"type"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("metadata: status %q: %w", r.Status, err)
	}
	out := map[string]string{}
	for name, ms := range r.Data {
		if len(ms) > 0 {
			out[name] = ms[0].Type
		}
	}
	return out, nil
}
