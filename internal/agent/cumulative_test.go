package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pktvisor-go/pktvisor/internal/export"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// protoAccept is the Accept header of Prometheus 2.42 scraping with
// --enable-feature=native-histograms (scrape/scrape.go, scrapeAcceptHeaderWithProtobuf);
// textAccept is its header without the feature.
const (
	protoAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	textAccept  = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

// cumAgent runs policy default with modules on the minutes capture (4 closed one-minute
// buckets and a live one), behind the API, to the capture's end.
func cumAgent(t testing.TB, instance, config, modules string) (*Agent, *httptest.Server) {
	t.Helper()
	a := New(Options{Periods: 5, Workers: 2, Version: "test", PromInstance: instance})
	srv := httptest.NewServer(a.Handler(false, nil))
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	doc := fmt.Sprintf(`visor:
  taps:
    gen:
      input_type: pcap
      config:
        pcap_file: %q
        host_spec: 10.0.0.0/8,fd00::/8
  policies:
    default:
      kind: collection
      input: {tap: gen, input_type: pcap}
%s      handlers:
        modules:
%s`, minutesCapture(t), config, modules)
	if _, err := a.LoadConfig([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	waitInputsDone(t, a)
	return a, srv
}

const cumModules = "          net: {type: net}\n          dns: {type: dns}\n          pcap_stats: {type: pcap}\n"

// getMetrics fetches /metrics with an Accept header ("" for none).
func getMetrics(t testing.TB, base, accept string) (contentType string, body []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v %s", resp.StatusCode, err, body)
	}
	return resp.Header.Get("Content-Type"), body
}

func parseText(t testing.TB, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	return fams
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// bucketSums adds up, over the closed buckets 1…n of policy default, every number of the JSON
// API, keyed by handler instance and the path of JSON keys joined by "_" (schema first:
// dns_wire_packets_total), which is how a metric's Prometheus name is built. Periods are left
// out. It also returns every bucket's xact.out p50 of handler dns.
func bucketSums(t testing.TB, base string, n int) (sums map[string]map[string]float64, p50 []float64) {
	t.Helper()
	sums = map[string]map[string]float64{}
	var walk func(inst, prefix string, v any)
	walk = func(inst, prefix string, v any) {
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
				walk(inst, p, sub)
			}
		case float64:
			sums[inst][prefix] += v
		}
	}
	for k := 1; k <= n; k++ {
		st, body := do(t, "GET", fmt.Sprintf("%s/api/v1/policies/default/metrics/bucket/%d", base, k), "", "")
		if st != 200 {
			t.Fatalf("bucket %d: %d %s", k, st, body)
		}
		for inst, schemas := range decode(t, body)["default"].(map[string]any) {
			if sums[inst] == nil {
				sums[inst] = map[string]float64{}
			}
			walk(inst, "", schemas)
			if dns, ok := schemas.(map[string]any)["dns"].(map[string]any); ok && strings.HasSuffix(inst, "-dns") {
				q := dns["xact"].(map[string]any)["out"].(map[string]any)["quantiles_us"].(map[string]any)["p50"].(float64)
				p50 = append(p50, q)
			}
		}
	}
	if st, _ := do(t, "GET", fmt.Sprintf("%s/api/v1/policies/default/metrics/bucket/%d", base, n+1), "", ""); st != 425 {
		t.Fatalf("bucket %d answers %d: the capture closed more than %d buckets", n+1, st, n)
	}
	return sums, p50
}

// flat merges the per-handler sums into one map by name (names are unique across schemas).
func flat(sums map[string]map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, m := range sums {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

// Every _total family of /metrics is the sum of its counter over the closed buckets, as the
// JSON API shows them; it is a counter with the reference's labels (instance first, policy,
// tap); the reference's families are unchanged; the text is valid exposition.
func TestCumulativeTotalsEqualJSONSums(t *testing.T) {
	a, srv := cumAgent(t, `pop "1"`, "", cumModules)
	ctype, body := getMetrics(t, srv.URL, "")
	if !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ctype)
	}
	sums, _ := bucketSums(t, srv.URL, 4)
	want := flat(sums)

	// The reference's families come first, exactly as PolicyProm renders them.
	ref := metrics.NewProm(`pop "1"`)
	if err := a.PolicyProm("default", ref, false); err != nil {
		t.Fatal(err)
	}
	var rb bytes.Buffer
	ref.WriteTo(&rb)
	if rb.Len() == 0 || !bytes.HasPrefix(body, rb.Bytes()) {
		t.Errorf("/metrics does not start with the reference families")
	}

	fams := parseText(t, body)
	checked := 0
	for name, f := range fams {
		base, ok := strings.CutSuffix(name, "_total")
		if !ok || f.GetType() != dto.MetricType_COUNTER || strings.HasPrefix(name, "pktvisord_") {
			continue
		}
		w, ok := want[base]
		if !ok {
			t.Errorf("%s: no JSON counter %s", name, base)
			continue
		}
		if len(f.Metric) != 1 {
			t.Errorf("%s: %d series", name, len(f.Metric))
			continue
		}
		m := f.Metric[0]
		var names []string
		for _, l := range m.Label {
			names = append(names, l.GetName())
		}
		if got := strings.Join(names, ","); got != "instance,policy,tap" {
			t.Errorf("%s: labels %s", name, got)
		}
		if l := labelMap(m); l["instance"] != `pop "1"` || l["policy"] != "default" || l["tap"] != "gen" {
			t.Errorf("%s: labels %v", name, l)
		}
		if got := m.GetCounter().GetValue(); got != w {
			t.Errorf("%s = %v, JSON buckets 1-4 sum to %v", name, got, w)
		}
		checked++
	}
	// net, dns and pcap render dozens of counters; a few must be non-zero for the test to mean
	// anything.
	if checked < 30 {
		t.Errorf("only %d _total families checked", checked)
	}
	for _, n := range []string{"dns_wire_packets_total", "dns_xact_out_total", "packets_total", "packets_udp"} {
		if want[n] == 0 || fams[n+"_total"] == nil {
			t.Errorf("%s: JSON sum %v, family %v", n, want[n], fams[n+"_total"] != nil)
		}
	}
	// The reference's gauge of the same base name is bucket 1's value, not the total.
	if g := fams["dns_wire_packets_total"]; g == nil || g.GetType() != dto.MetricType_GAUGE || g.Metric[0].GetGauge().GetValue() >= want["dns_wire_packets_total"] {
		t.Errorf("reference gauge dns_wire_packets_total changed: %v", g)
	}
	if h := fams["pktvisord_cumulative_buckets_total"]; h == nil || h.Metric[0].GetCounter().GetValue() != 12 {
		t.Errorf("pktvisord_cumulative_buckets_total: %v, want 12 (4 buckets × 3 handlers)", h)
	}
	// No classic histogram and no native one in the text.
	for name, f := range fams {
		if strings.HasSuffix(name, "_histogram") || strings.HasSuffix(name, "_cumulative") {
			t.Errorf("text has %s (%v)", name, f.GetType())
		}
	}
	promtoolCheck(t, body)
}

// promtoolCheck runs `promtool check metrics` when it is installed: exit 0 (clean) or 3 (lint
// only) passes; the lint lines are logged. Any other exit is a parse error.
func promtoolCheck(t *testing.T, body []byte) {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Log("promtool not installed: skipping promtool check metrics")
		return
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		// The cumulative names end in _total only, as promtool wants of counters.
		if strings.Contains(line, "_total_total") && strings.Contains(line, "counter metrics should have") {
			t.Errorf("promtool: %s", line)
		}
	}
	t.Logf("promtool lint (reference names): %d lines", strings.Count(string(out), "\n"))
}

// shiftSource shows the policy's ring as it was `shift` rotations ago: its bucket n is the
// real bucket n+shift. Lowering shift one by one replays the rotations of a live agent.
func shiftSource(a *Agent, shift *int) export.Source {
	src := a.policySource("default")
	return func(n int, each func(map[string]string, export.RenderFunc) error) error {
		return src(n+*shift, each)
	}
}

// Across bucket rotations, every running total only grows, and after each rotation it is the
// sum of the buckets closed so far (JSON API); the latency histogram counts their transactions.
func TestCumulativeMonotonicAcrossRotations(t *testing.T) {
	a, srv := cumAgent(t, "", "", cumModules)
	shift := 4
	c := newCumulative(a, "default", shiftSource(a, &shift))
	prev := map[string]float64{}
	for shift = 4; shift >= 0; shift-- {
		v := c.view("")
		fams := parseText(t, v.appendText(nil, nil))
		if shift == 4 {
			if len(fams) != 0 {
				t.Fatalf("no bucket closed yet, but %d families", len(fams))
			}
			continue
		}
		// Buckets shift+1…4 are closed now: the sum of real buckets shift+1…4.
		want := map[string]float64{}
		for k := shift + 1; k <= 4; k++ {
			_, body := do(t, "GET", fmt.Sprintf("%s/api/v1/policies/default/metrics/bucket/%d", srv.URL, k), "", "")
			pol := decode(t, body)["default"].(map[string]any)
			dns := pol["default-gen-dns"].(map[string]any)["dns"].(map[string]any)
			want["dns_wire_packets_total_total"] += dns["wire_packets"].(map[string]any)["total"].(float64)
			want["dns_xact_out_total_total"] += dns["xact"].(map[string]any)["out"].(map[string]any)["total"].(float64)
			want["packets_total_total"] += pol["default-gen-net"].(map[string]any)["packets"].(map[string]any)["total"].(float64)
		}
		for name, w := range want {
			if got := fams[name].GetMetric()[0].GetCounter().GetValue(); got != w {
				t.Errorf("after rotation to shift %d: %s = %v, want %v", shift, name, got, w)
			}
		}
		for name, f := range fams {
			got := f.Metric[0].GetCounter().GetValue()
			if got < prev[name] {
				t.Errorf("shift %d: %s went down from %v to %v", shift, name, prev[name], got)
			}
			prev[name] = got
		}
		var xact uint64
		for _, f := range v.nativeFamilies(func(string) bool { return false }) {
			if f.GetName() == "dns_xact_out_quantiles_us_histogram" {
				xact = f.Metric[0].GetHistogram().GetSampleCount()
			}
		}
		if float64(xact) != want["dns_xact_out_total_total"] {
			t.Errorf("shift %d: histogram count %d, want %v transactions", shift, xact, want["dns_xact_out_total_total"])
		}
		// A second look without a rotation changes nothing.
		if again := c.view(""); !slices.EqualFunc(again.series, v.series, func(x, y export.Series) bool { return x.Name == y.Name && x.Int == y.Int }) {
			t.Errorf("shift %d: totals changed without a rotation", shift)
		}
	}
}

// decodeProto reads a delimited protobuf answer with the official decoder.
func decodeProto(t testing.TB, ctype string, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	h := http.Header{}
	h.Set("Content-Type", ctype)
	if f := expfmt.ResponseFormat(h); f.FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("content type %q is not delimited protobuf (%q)", ctype, f)
	}
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.ResponseFormat(h))
	out := map[string]*dto.MetricFamily{}
	for {
		var f dto.MetricFamily
		if err := dec.Decode(&f); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if out[f.GetName()] != nil {
			t.Errorf("family %s twice", f.GetName())
		}
		out[f.GetName()] = &f
	}
	return out
}

// promBuckets rebuilds a native histogram's buckets, by Prometheus index, from spans and
// deltas (the format's definition: the first span's offset is absolute, the next ones are
// gaps; each count is the previous one plus its delta).
func promBuckets(t testing.TB, h *dto.Histogram) map[int32]uint64 {
	t.Helper()
	out := map[int32]uint64{}
	var idx int32
	var count int64
	d := 0
	for i, s := range h.GetPositiveSpan() {
		if i == 0 {
			idx = s.GetOffset()
		} else {
			idx += s.GetOffset()
		}
		for range s.GetLength() {
			count += h.GetPositiveDelta()[d]
			d++
			if count <= 0 {
				t.Fatalf("bucket %d has count %d", idx, count)
			}
			out[idx] = uint64(count)
			idx++
		}
	}
	if d != len(h.GetPositiveDelta()) {
		t.Fatalf("%d deltas for %d span buckets", len(h.GetPositiveDelta()), d)
	}
	return out
}

// The protobuf answer (what Prometheus with native histograms asks for) decodes with the
// official decoder; it holds every family of the text answer with the same samples, plus one
// native histogram per quantile sketch, whose count is the transactions of the closed buckets
// and whose median bucket lies within the sketch's bound of the buckets' medians.
func TestCumulativeProtobuf(t *testing.T) {
	_, srv := cumAgent(t, "pop1", "", cumModules)
	for _, accept := range []string{"", textAccept, "text/plain"} {
		if ctype, _ := getMetrics(t, srv.URL, accept); !strings.HasPrefix(ctype, "text/plain; version=0.0.4") {
			t.Errorf("Accept %q: content type %q, want text", accept, ctype)
		}
	}
	ctype, pb := getMetrics(t, srv.URL, protoAccept)
	_, text := getMetrics(t, srv.URL, "")
	got := decodeProto(t, ctype, pb)
	want := parseText(t, text)
	sums, p50 := bucketSums(t, srv.URL, 4)
	xact := flat(sums)["dns_xact_out_total"]

	native := 0
	var nativeNames []string
	for name, f := range got {
		w := want[name]
		if w == nil {
			if f.GetType() != dto.MetricType_HISTOGRAM || !strings.HasSuffix(name, "_histogram") {
				t.Errorf("protobuf has %s (%v), not in the text", name, f.GetType())
			}
			native++
			nativeNames = append(nativeNames, name)
			continue
		}
		if f.GetType() != w.GetType() || len(f.Metric) != len(w.Metric) || f.GetHelp() != w.GetHelp() {
			t.Errorf("%s: protobuf %v × %d, text %v × %d", name, f.GetType(), len(f.Metric), w.GetType(), len(w.Metric))
			continue
		}
		for i := range f.Metric {
			// Uptime and goroutines move between the two requests.
			if !strings.HasPrefix(name, "pktvisord_") && f.Metric[i].String() != w.Metric[i].String() {
				t.Errorf("%s[%d]: protobuf %v, text %v", name, i, f.Metric[i], w.Metric[i])
			}
		}
	}
	for name := range want {
		if got[name] == nil {
			t.Errorf("protobuf lacks %s", name)
		}
	}
	t.Logf("native histograms: %v", nativeNames)
	if native < 3 {
		t.Errorf("%d native histogram families", native)
	}

	f := got["dns_xact_out_quantiles_us_histogram"]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("dns_xact_out_quantiles_us_histogram: %v", f)
	}
	if l := labelMap(f.Metric[0]); len(l) != 3 || l["instance"] != "pop1" || l["policy"] != "default" || l["tap"] != "gen" {
		t.Errorf("labels %v", l)
	}
	h := f.Metric[0].GetHistogram()
	if h.GetSchema() != export.DefaultScale || h.GetZeroThreshold() <= 0 || len(h.GetBucket()) != 0 {
		t.Errorf("schema %d, zero threshold %v, %d classic buckets", h.GetSchema(), h.GetZeroThreshold(), len(h.GetBucket()))
	}
	if float64(h.GetSampleCount()) != xact || xact == 0 {
		t.Errorf("sample count %d, want %v transactions", h.GetSampleCount(), xact)
	}
	buckets := promBuckets(t, h)
	total := h.GetZeroCount()
	for _, c := range buckets {
		total += c
	}
	if total != h.GetSampleCount() {
		t.Errorf("buckets add up to %d, sample count %d", total, h.GetSampleCount())
	}
	// The bucket holding the median: Prometheus bucket i is (2^((i-1)/2^s), 2^(i/2^s)]. The
	// median of all transactions lies between the smallest and largest per-bucket median; the
	// JSON p50s are within the sketch's 1 % of those, the sketch bins within 1 % of their
	// values.
	idx := slices.Sorted(maps.Keys(buckets))
	var cum uint64
	var lo, hi float64
	for _, i := range idx {
		cum += buckets[i]
		if float64(cum) >= float64(h.GetSampleCount())/2 {
			scale := math.Ldexp(1, -int(h.GetSchema()))
			lo, hi = math.Exp2(float64(i-1)*scale), math.Exp2(float64(i)*scale)
			break
		}
	}
	minMed, maxMed := slices.Min(p50), slices.Max(p50)
	if hi < minMed*0.98 || lo > maxMed*1.02 {
		t.Errorf("median bucket (%v, %v], per-bucket medians %v", lo, hi, p50)
	}
	if h.GetSampleSum() <= 0 {
		t.Errorf("sample sum %v", h.GetSampleSum())
	}
}

// The conversion to Prometheus' bucket numbering, by hand: at scale 5, 1 = 2^0 is the upper
// bound of bucket 0, 2 = 2^(32/32) of bucket 32, and 3 lies in bucket ceil(32·log2 3) = 51.
func TestNativeHistogramByHand(t *testing.T) {
	h := export.NewExpHistogram()
	h.Add(1, 2)
	h.Add(2, 1)
	h.Add(3, 5)
	h.Add(0, 4)
	nh := nativeHistogram(h)
	if nh.GetSchema() != 5 || nh.GetSampleCount() != 12 || nh.GetSampleSum() != 2+2+15 || nh.GetZeroCount() != 4 {
		t.Errorf("header %v", nh)
	}
	var spans []string
	for _, s := range nh.GetPositiveSpan() {
		spans = append(spans, fmt.Sprintf("%d:%d", s.GetOffset(), s.GetLength()))
	}
	// Buckets 0, 32, 51: spans at 0 (length 1), then a gap of 31, then a gap of 18.
	if got := strings.Join(spans, " "); got != "0:1 31:1 18:1" {
		t.Errorf("spans %s", got)
	}
	if got := fmt.Sprint(nh.GetPositiveDelta()); got != "[2 -1 4]" {
		t.Errorf("deltas %s", got)
	}
	// Adjacent buckets share a span.
	h = export.NewExpHistogram()
	h.Add(1, 1)
	h.Add(math.Exp2(0.5/32), 3) // inside bucket 1
	h.Add(math.Exp2(1.5/32), 2) // inside bucket 2
	nh = nativeHistogram(h)
	if s := nh.GetPositiveSpan(); len(s) != 1 || s[0].GetOffset() != 0 || s[0].GetLength() != 3 || fmt.Sprint(nh.GetPositiveDelta()) != "[1 2 -1]" {
		t.Errorf("spans %v deltas %v", s, nh.GetPositiveDelta())
	}
}

// Two handlers of one schema on one tap keep the handler label (else their series would be
// the same); merge_like_handlers gives one series per schema without it, twice the counts.
func TestCumulativeLabels(t *testing.T) {
	_, srv := cumAgent(t, "", "", "          d1: {type: dns}\n          d2: {type: dns}\n          net: {type: net}\n")
	_, body := getMetrics(t, srv.URL, "")
	fams := parseText(t, body)
	promtoolCheck(t, body)
	sums, _ := bucketSums(t, srv.URL, 4)
	f := fams["dns_wire_packets_total_total"]
	if f == nil || len(f.Metric) != 2 {
		t.Fatalf("dns_wire_packets_total_total: %v", f)
	}
	for _, m := range f.Metric {
		l := labelMap(m)
		if want := sums[l["handler"]]["dns_wire_packets_total"]; m.GetCounter().GetValue() != want || want == 0 {
			t.Errorf("%v = %v, want %v", l, m.GetCounter().GetValue(), want)
		}
	}
	if p := fams["packets_total_total"]; p == nil || len(p.Metric) != 1 || labelMap(p.Metric[0])["handler"] != "" {
		t.Errorf("packets_total_total (one net handler) has a handler label: %v", p)
	}
	single := sums["default-gen-d1"]["dns_wire_packets_total"]

	_, srv = cumAgent(t, "", "      config: {merge_like_handlers: true}\n", "          d1: {type: dns}\n          d2: {type: dns}\n")
	_, body = getMetrics(t, srv.URL, "")
	fams = parseText(t, body)
	f = fams["dns_wire_packets_total_total"]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("merged dns_wire_packets_total_total: %v", f)
	}
	if l := labelMap(f.Metric[0]); len(l) != 1 || l["policy"] != "default" {
		t.Errorf("merged labels %v", l)
	}
	if got := f.Metric[0].GetCounter().GetValue(); got != 2*single {
		t.Errorf("merged total %v, want 2 × %v", got, single)
	}
	_, pb := getMetrics(t, srv.URL, protoAccept)
	if len(pb) == 0 {
		t.Error("empty protobuf answer")
	}
}

// Without a default policy /metrics has no cumulative family and both formats still answer;
// the collector's goroutine ends after Agent.Close.
func TestCumulativeNoPolicyAndClose(t *testing.T) {
	a, srv := newTestAgent(t)
	_, body := getMetrics(t, srv.URL, "")
	for name := range parseText(t, body) {
		if !strings.HasPrefix(name, "pktvisord_") {
			t.Errorf("family %s without a policy", name)
		}
	}
	ctype, pb := getMetrics(t, srv.URL, protoAccept)
	if len(decodeProto(t, ctype, pb)) == 0 {
		t.Error("no family in the protobuf answer")
	}
	if a.cum == nil {
		t.Fatal("no cumulative collector started")
	}
	a.Close()
	select {
	case <-a.cum.stopped:
	case <-time.After(time.Second):
		t.Fatal("the cumulative collector still runs after Close")
	}
}

// BenchmarkMetricsScrape: one /metrics scrape of policy default (3 handlers) in each format,
// nothing closed since the last one.
func BenchmarkMetricsScrape(b *testing.B) {
	_, srv := cumAgent(b, "pop1", "", cumModules)
	for _, accept := range []string{"", protoAccept} {
		name := map[string]string{"": "text", protoAccept: "protobuf"}[accept]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				getMetrics(b, srv.URL, accept)
			}
		})
	}
}

// End to end: Debian's Prometheus 2.42 with native histograms scrapes an agent every second;
// its stored counter is the sum of the closed buckets, histogram_count of the latency native
// histogram the transactions, and histogram_quantile(0.5) lies within the sketch's bound of
// the buckets' medians.
func TestCumulativePrometheusE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no Prometheus end-to-end run")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus)")
	}
	_, srv := cumAgent(t, "", "", cumModules)
	sums, p50 := bucketSums(t, srv.URL, 4)
	want := flat(sums)

	dir := t.TempDir()
	target := strings.TrimPrefix(srv.URL, "http://")
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pktvisord\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freeTCPPort(t)
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--enable-feature=native-histograms")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", log)
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)

	query := func(q string) (float64, error) {
		resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" || len(r.Data.Result) != 1 {
			return 0, fmt.Errorf("%s: status %s %s, %d results", q, r.Status, r.Error, len(r.Data.Result))
		}
		s, _ := r.Data.Result[0].Value[1].(string)
		return strconv.ParseFloat(s, 64)
	}
	wait := func(q string) float64 {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for {
			select {
			case <-exited:
				t.Fatalf("prometheus exited")
			default:
			}
			v, err := query(q)
			if err == nil {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", q, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	if got, w := wait(`dns_wire_packets_total_total{policy="default",tap="gen"}`), want["dns_wire_packets_total"]; got != w || w == 0 {
		t.Errorf("dns_wire_packets_total_total = %v, JSON buckets sum to %v", got, w)
	}
	if got, w := wait(`packets_total_total`), want["packets_total"]; got != w || w == 0 {
		t.Errorf("packets_total_total = %v, want %v", got, w)
	}
	xact := want["dns_xact_out_total"]
	if got := wait(`histogram_count(dns_xact_out_quantiles_us_histogram)`); got != xact || xact == 0 {
		t.Errorf("histogram_count = %v, want %v transactions", got, xact)
	}
	// The median of all transactions lies between the per-bucket medians; the bound: the JSON
	// p50s' 1 % (sketch), the sketch bins' 1 %, one native bucket (2^(1/32), 2.2 %).
	med := wait(`histogram_quantile(0.5, dns_xact_out_quantiles_us_histogram)`)
	const slack = 1.01 * 1.01 * 1.022
	if minMed, maxMed := slices.Min(p50), slices.Max(p50); med < minMed/slack || med > maxMed*slack {
		t.Errorf("histogram_quantile(0.5) = %v, per-bucket medians %v (bound ×%.3f)", med, p50, slack)
	}
	t.Logf("Prometheus: %v DNS packets, %v transactions, median %v µs (bucket medians %v)", want["dns_wire_packets_total"], xact, med, p50)
}

// Label values come from the network (qnames): whatever bytes a top-N item holds, the text
// metrics.Prom renders re-reads into protobuf with the value Prom meant (invalid UTF-8 as
// \xNN), so the protobuf answer never fails on traffic.
func FuzzCumulativeEncode(f *testing.F) {
	for _, s := range []string{"example.com", `a"b\c`, "line\nbreak", "\xff\xfe", "ünïcødé", "", "\x00", `\x41`, "{}=,"} {
		f.Add(s, "pop1")
	}
	f.Fuzz(func(t *testing.T, item, instance string) {
		p := metrics.NewProm(instance)
		p.SetLabels(map[string]string{"policy": "default", "tap": "gen"})
		d := &metrics.Desc{Schema: "dns", Name: []string{"top_qname2"}, Help: "Top qnames " + item}
		p.TopN(d, "qname", []metrics.TopItem{{Name: item, Estimate: 7}})
		var text bytes.Buffer
		p.WriteTo(&text)
		v := &cumulativeView{instance: instance}
		text.Write(v.appendHealth(nil))
		body, err := v.encode(text.Bytes(), expfmt.NewFormat(expfmt.TypeProtoDelim))
		if err != nil {
			t.Fatalf("encode: %v\n%q", err, text.String())
		}
		dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
		found := false
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			for _, m := range mf.Metric {
				l := labelMap(m)
				if instance != "" && l["instance"] != utf8Text(instance) {
					t.Errorf("%s: instance %q, want %q", mf.GetName(), l["instance"], utf8Text(instance))
				}
				if mf.GetName() == "dns_top_qname2" {
					found = true
					if l["qname"] != utf8Text(item) || m.GetGauge().GetValue() != 7 {
						t.Errorf("qname %q = %v, want %q", l["qname"], m.GetGauge().GetValue(), utf8Text(item))
					}
				}
			}
		}
		if !found {
			t.Error("dns_top_qname2 lost")
		}
	})
}

// BenchmarkCumulativePoll: what one background poll costs when nothing closed since the last
// one: bucket 1 of the default policy's 3 handlers rendered (merged over the workers).
func BenchmarkCumulativePoll(b *testing.B) {
	a, _ := cumAgent(b, "", "", cumModules)
	c := newCumulative(a, "default", a.policySource("default"))
	c.collect()
	b.ReportAllocs()
	for b.Loop() {
		if n, err := c.col.Collect(); n != 0 || err != nil {
			b.Fatal(n, err)
		}
	}
}
