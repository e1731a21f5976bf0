package resources

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

const sec = int64(1e9)

func newSpec(t testing.TB, cfg config.Map) *Spec {
	t.Helper()
	sp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sp.(*Spec)
}

func newInst(s *Spec, startNs int64) *Instance {
	h := s.NewInstance(&handler.Env{}).(*Instance)
	h.Start(startNs)
	return h
}

// renderJSON renders the selection of the given instances and round-trips it through
// encoding/json, as the REST API would print it.
func renderJSON(t *testing.T, s *Spec, sel metrics.Selection, nowNs int64, hs ...handler.Handler) map[string]any {
	t.Helper()
	sink := metrics.NewJSON()
	if _, err := s.Render(hs, sel, sink, nowNs); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(sink.Root)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func renderProm(t *testing.T, s *Spec, sel metrics.Selection, labels map[string]string, hs ...handler.Handler) string {
	t.Helper()
	p := metrics.NewProm("")
	p.SetLabels(labels)
	if _, err := s.Render(hs, sel, p, 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := p.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func num(t *testing.T, j map[string]any, path ...string) float64 {
	t.Helper()
	var cur any = j
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%v: %q is not below an object", path, p)
		}
		if cur, ok = m[p]; !ok {
			t.Fatalf("%v: key %q absent in %v", path, p, m)
		}
	}
	f, ok := cur.(float64)
	if !ok {
		t.Fatalf("%v = %v (%T), not a number", path, cur, cur)
	}
	return f
}

func TestRegistered(t *testing.T) {
	f, ok := handler.Lookup("input_resources", "1.0")
	if !ok {
		t.Fatal("input_resources 1.0 is not registered")
	}
	sp, err := f(config.Map{})
	if err != nil {
		t.Fatal(err)
	}
	if sp.Schema() != "input_resources" {
		t.Errorf("Schema() = %q", sp.Schema())
	}
	if w := sp.Window(); w != metrics.DefaultWindow {
		t.Errorf("default window = %+v, want %+v", w, metrics.DefaultWindow)
	}
	if got := sp.NewInstance(&handler.Env{}).Wants(); got != 0 {
		t.Errorf("Wants() = %v, want 0 (no packet events)", got)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     config.Map
		periods int
		wantErr string
	}{
		{"defaults", config.Map{}, 5, ""},
		{"one period", config.Map{"num_periods": uint64(1)}, 1, ""},
		{"clamped", config.Map{"num_periods": uint64(50)}, 10, ""},
		{"recorded", config.Map{"recorded_stream": true, "deep_sample_rate": uint64(50)}, 5, ""},
		{"unknown key", config.Map{"only_rcode": uint64(2)}, 0,
			"only_rcode is an invalid/unsupported config or filter. The valid configs/filters are: recorded_stream, deep_sample_rate, num_periods, topn_count, topn_percentile_threshold"},
		{"bad threshold", config.Map{"topn_percentile_threshold": uint64(101)}, 0, "threshold must be between 0 and 100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := New(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sp.Window().NumPeriods; got != tc.periods {
				t.Errorf("num_periods = %d, want %d", got, tc.periods)
			}
		})
	}
}

type sample struct {
	cpu float64
	rss uint64
}

// TestBucketJSON feeds known samples and checks the rendered bucket against quantiles worked
// out by hand: with at most 200 samples the sketch is exact, and a quantile p is the value of
// inclusive rank ⌈p·n⌉ among the sorted samples.
func TestBucketJSON(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name               string
		samples            []sample
		counts             [][2]uint64 // SetCounts calls, in order
		wantCPU            [4]float64  // p50 p90 p95 p99
		wantMem            [4]float64
		policies, handlers float64
	}{
		{
			name: "four samples",
			// sorted cpu 12.5 25 50 100: ranks ⌈2⌉=2, ⌈3.6⌉=4, ⌈3.8⌉=4, ⌈3.96⌉=4
			samples: []sample{{50, 3 * mib}, {12.5, 1 * mib}, {100, 4 * mib}, {25, 2 * mib}},
			counts:  [][2]uint64{{1, 2}},
			wantCPU: [4]float64{25, 100, 100, 100},
			wantMem: [4]float64{2 * mib, 4 * mib, 4 * mib, 4 * mib},
			// one policy with two handlers
			policies: 1, handlers: 2,
		},
		{
			name: "ten samples",
			// values 1..10 shuffled: ranks 5, 9, ⌈9.5⌉=10, ⌈9.9⌉=10
			samples: []sample{{7, 70}, {3, 30}, {10, 100}, {1, 10}, {9, 90}, {2, 20}, {8, 80}, {4, 40}, {6, 60}, {5, 50}},
			counts:  [][2]uint64{{1, 3}, {2, 4}, {1, 1}},
			wantCPU: [4]float64{5, 9, 10, 10},
			wantMem: [4]float64{50, 90, 100, 100},
			// the last totals win: the counts are totals, not deltas
			policies: 1, handlers: 1,
		},
		{
			name:    "invalid cpu values are dropped",
			samples: []sample{{math.NaN(), 5}, {-1, 5}, {math.Inf(1), 5}, {0.25, 5}},
			wantCPU: [4]float64{0.25, 0.25, 0.25, 0.25},
			wantMem: [4]float64{5, 5, 5, 5},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpec(t, config.Map{"num_periods": uint64(1)})
			h := newInst(s, 1000*sec)
			ts := 1000 * sec
			for _, c := range tc.counts {
				h.SetCounts(ts, c[0], c[1])
			}
			for _, smp := range tc.samples {
				h.Sample(ts, smp.cpu, smp.rss)
			}
			j := renderJSON(t, s, metrics.Selection{}, ts, h)
			events := float64(len(tc.samples) + len(tc.counts))
			if got := num(t, j, "total"); got != events {
				t.Errorf("total = %v, want %v", got, events)
			}
			if got := num(t, j, "deep_samples"); got != events {
				t.Errorf("deep_samples = %v, want %v (deep_sample_rate 100)", got, events)
			}
			for i, k := range metrics.QuantileKeys {
				if got := num(t, j, "cpu_usage", k); got != tc.wantCPU[i] {
					t.Errorf("cpu_usage.%s = %v, want %v", k, got, tc.wantCPU[i])
				}
				if got := num(t, j, "memory_bytes", k); got != tc.wantMem[i] {
					t.Errorf("memory_bytes.%s = %v, want %v", k, got, tc.wantMem[i])
				}
			}
			if got := num(t, j, "policy_count"); got != tc.policies {
				t.Errorf("policy_count = %v, want %v", got, tc.policies)
			}
			if got := num(t, j, "handler_count"); got != tc.handlers {
				t.Errorf("handler_count = %v, want %v", got, tc.handlers)
			}
			// All events fell in one second, still in progress: no completed rate second, so
			// only the live value of a live bucket is shown.
			if got, want := j["event_rate"], map[string]any{"live": 0.0}; !jsonEqual(got, want) {
				t.Errorf("event_rate = %v, want %v", got, want)
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestManySamples goes past the exact buffer (200 values): the quantiles then come from a
// sketch with 1 % relative accuracy, checked against the sorted samples.
func TestManySamples(t *testing.T) {
	s := newSpec(t, config.Map{"num_periods": uint64(1)})
	h := newInst(s, 0)
	var cpus, mems []float64
	x := uint64(12345)
	for i := range 5000 {
		x = x*6364136223846793005 + 1442695040888963407 // LCG, for spread-out values
		cpu := float64(x>>40) / float64(1<<24) * 400    // [0, 400) %: several cores
		mem := uint64(50<<20) + (x>>20)%(200<<20)
		cpus = append(cpus, cpu)
		mems = append(mems, float64(mem))
		h.Sample(int64(i)*5*sec, cpu, mem)
	}
	slices.Sort(cpus)
	slices.Sort(mems)
	j := renderJSON(t, s, metrics.Selection{}, 0, h)
	for i, p := range metrics.QuantileFractions {
		rank := int(math.Ceil(p * float64(len(cpus))))
		k := metrics.QuantileKeys[i]
		for _, c := range []struct {
			name string
			want float64
		}{{"cpu_usage", cpus[rank-1]}, {"memory_bytes", mems[rank-1]}} {
			got := num(t, j, c.name, k)
			if math.Abs(got-c.want) > 0.01*c.want+0.5 {
				t.Errorf("%s.%s = %v, want %v ± 1 %%", c.name, k, got, c.want)
			}
		}
	}
	if got := num(t, j, "total"); got != 5000 {
		t.Errorf("total = %v, want 5000", got)
	}
}

// TestWindowNewestCounts checks periods: a shift re-applies the running totals in the new
// bucket (one event), each bucket keeps its own totals, and a merged window shows the newest
// bucket's counts while events add up.
func TestWindowNewestCounts(t *testing.T) {
	s := newSpec(t, config.Map{"num_periods": uint64(3)})
	h := newInst(s, 0)
	h.SetCounts(1*sec, 2, 5) // two policies, five handlers
	h.Sample(5*sec, 10, 100)
	h.Sample(10*sec, 30, 300)
	h.Shift(60 * sec) // re-applies 2/5
	h.Sample(65*sec, 20, 200)
	h.SetCounts(70*sec, 1, 1) // a policy was removed
	h.Shift(120 * sec)        // re-applies 1/1
	h.Sample(125*sec, 40, 400)

	tests := []struct {
		name               string
		sel                metrics.Selection
		events             float64
		policies, handlers float64
		cpuP50             float64
		start, length      float64
	}{
		// bucket 2: SetCounts + 2 samples; cpu {10, 30}: rank ⌈1⌉ = 1 ⇒ 10
		{"oldest bucket", metrics.Selection{Bucket: 2}, 3, 2, 5, 10, 0, 60},
		// bucket 1: shift re-application + sample + SetCounts
		{"previous bucket", metrics.Selection{Bucket: 1}, 3, 1, 1, 20, 60, 60},
		// live bucket: shift re-application + sample
		{"live bucket", metrics.Selection{Bucket: 0}, 2, 1, 1, 40, 120, 10},
		// window of 2: 3 + 2 events, counts of the newest bucket, cpu {20, 40} ⇒ 20
		{"window 2", metrics.Selection{Window: 2}, 5, 1, 1, 20, 60, 70},
		// window of 3: cpu {10, 30, 20, 40}: rank 2 ⇒ 20
		{"window 3", metrics.Selection{Window: 3}, 8, 1, 1, 20, 0, 130},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := renderJSON(t, s, tc.sel, 130*sec, h)
			if got := num(t, j, "total"); got != tc.events {
				t.Errorf("total = %v, want %v", got, tc.events)
			}
			if got := num(t, j, "policy_count"); got != tc.policies {
				t.Errorf("policy_count = %v, want %v", got, tc.policies)
			}
			if got := num(t, j, "handler_count"); got != tc.handlers {
				t.Errorf("handler_count = %v, want %v", got, tc.handlers)
			}
			if got := num(t, j, "cpu_usage", "p50"); got != tc.cpuP50 {
				t.Errorf("cpu_usage.p50 = %v, want %v", got, tc.cpuP50)
			}
			sink := metrics.NewJSON()
			rp, err := s.Render([]handler.Handler{h}, tc.sel, sink, 130*sec)
			if err != nil {
				t.Fatal(err)
			}
			if float64(rp.StartTS) != tc.start || float64(rp.Length) != tc.length {
				t.Errorf("period start %d length %d, want %v %v", rp.StartTS, rp.Length, tc.start, tc.length)
			}
		})
	}
}

// TestWorkers: the agent feeds worker 0 only; the other workers' instances are shifted too
// but must add neither events nor counts, whatever the order instances are merged in.
func TestWorkers(t *testing.T) {
	s := newSpec(t, config.Map{"num_periods": uint64(2)})
	w0, w1, w2 := newInst(s, 0), newInst(s, 0), newInst(s, 0)
	w0.SetCounts(1*sec, 3, 7)
	w0.Sample(2*sec, 50, 1<<20)
	for _, h := range []*Instance{w0, w1, w2} {
		h.Shift(60 * sec)
	}
	w0.Sample(61*sec, 70, 2<<20)
	orders := [][]handler.Handler{{w0, w1, w2}, {w2, w1, w0}, {w1, w0, w2}}
	for _, hs := range orders {
		for _, sel := range []metrics.Selection{{Bucket: 0}, {Bucket: 1}, {Window: 2}} {
			j := renderJSON(t, s, sel, 62*sec, hs...)
			if got := num(t, j, "policy_count"); got != 3 {
				t.Errorf("%+v: policy_count = %v, want 3", sel, got)
			}
			if got := num(t, j, "handler_count"); got != 7 {
				t.Errorf("%+v: handler_count = %v, want 7", sel, got)
			}
			// bucket 1: SetCounts + sample; bucket 0: shift + sample (worker 0 only)
			want := map[metrics.Selection]float64{{Bucket: 0}: 2, {Bucket: 1}: 2, {Window: 2}: 4}[sel]
			if got := num(t, j, "total"); got != want {
				t.Errorf("%+v: total = %v, want %v", sel, got, want)
			}
		}
	}
}

// TestSinglePeriod: with num_periods 1 there is no shift (one cumulative bucket) and a
// Shift call adds no event, as in the reference.
func TestSinglePeriod(t *testing.T) {
	s := newSpec(t, config.Map{"num_periods": uint64(1)})
	h := newInst(s, 0)
	h.SetCounts(1*sec, 1, 1)
	h.SetCounts(2*sec, 0, 0) // the policy was removed again (§6.15)
	h.Sample(3*sec, 1, 1)
	h.Shift(60 * sec)
	j := renderJSON(t, s, metrics.Selection{}, 61*sec, h)
	for k, want := range map[string]float64{"total": 3, "policy_count": 0, "handler_count": 0} {
		if got := num(t, j, k); got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if _, err := s.Render([]handler.Handler{h}, metrics.Selection{Bucket: 1}, metrics.NewJSON(), 0); err == nil ||
		err.Error() != "invalid metrics period, specify [0, 0]" {
		t.Errorf("bucket 1 error = %v", err)
	}
}

// TestDeepSampling: below 100 %, each event draws from the reference's generator (jsf32, seed
// 1); deep_samples counts the draws below the rate, and every sample is still recorded.
func TestDeepSampling(t *testing.T) {
	for _, rate := range []int{1, 30, 99} {
		s := newSpec(t, config.Map{"num_periods": uint64(1), "deep_sample_rate": uint64(rate)})
		h := newInst(s, 0)
		rng := metrics.NewJSF32(1)
		var want float64
		for i := range 1000 {
			if int(rng.Next()%100) < rate {
				want++
			}
			if i%10 == 0 {
				h.SetCounts(0, 1, 1)
			} else {
				h.Sample(0, 1, 1)
			}
		}
		j := renderJSON(t, s, metrics.Selection{}, 0, h)
		if got := num(t, j, "deep_samples"); got != want {
			t.Errorf("rate %d: deep_samples = %v, want %v", rate, got, want)
		}
		if got := num(t, j, "total"); got != 1000 {
			t.Errorf("rate %d: total = %v, want 1000", rate, got)
		}
	}
}

// TestEventRate: events per second of the stream clock; Tick completes idle seconds on a
// live input, and "live" is shown only for a live bucket.
func TestEventRate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    config.Map
		events []int64 // event times, seconds
		tick   int64   // 0: none
		end    bool
		want   map[string]any
	}{
		{
			// seconds 100: 2, 101: 0, 102: 1, 103: 0 (103 completed by the tick at 104);
			// sorted {0,0,1,2}: ranks 2, 4, 4, 4 ⇒ p50 0, p90 2; live = second 103 = 0
			name: "ticked", cfg: config.Map{"num_periods": uint64(1)},
			events: []int64{100, 100, 102}, tick: 104,
			want: map[string]any{"p50": 0.0, "p90": 2.0, "p95": 2.0, "p99": 2.0, "live": 0.0},
		},
		{
			// seconds 10: 1, 11: 3 (completed by the event at 12); live = 3
			name: "no tick", cfg: config.Map{"num_periods": uint64(1)},
			events: []int64{10, 11, 11, 11, 12},
			want:   map[string]any{"p50": 1.0, "p90": 3.0, "p95": 3.0, "p99": 3.0, "live": 3.0},
		},
		{
			name: "closed bucket has no live value", cfg: config.Map{"num_periods": uint64(1)},
			events: []int64{10, 11, 11, 11, 12}, end: true,
			want: map[string]any{"p50": 1.0, "p90": 3.0, "p95": 3.0, "p99": 3.0},
		},
		{
			name: "recorded stream has no live value", cfg: config.Map{"num_periods": uint64(1), "recorded_stream": true},
			events: []int64{10, 11},
			want:   map[string]any{"p50": 1.0, "p90": 1.0, "p95": 1.0, "p99": 1.0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpec(t, tc.cfg)
			h := newInst(s, tc.events[0]*sec)
			for _, e := range tc.events {
				h.Sample(e*sec, 1, 1)
			}
			if tc.tick != 0 {
				h.Tick(tc.tick * sec)
			}
			if tc.end {
				h.End(tc.events[len(tc.events)-1] * sec)
			}
			j := renderJSON(t, s, metrics.Selection{}, 200*sec, h)
			if got := j["event_rate"]; !jsonEqual(got, tc.want) {
				t.Errorf("event_rate = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPrometheus checks the names and types of the families with the official parser, the
// complete text of a small bucket, and the reference's assertion (§6.15) that the output of
// a file input starts with base_total.
func TestPrometheus(t *testing.T) {
	s := newSpec(t, config.Map{"num_periods": uint64(1)})
	h := newInst(s, 100*sec)
	h.SetCounts(100*sec, 2, 3)
	h.Sample(100*sec, 12.5, 1<<20)
	labels := map[string]string{"policy": "default"}
	text := renderProm(t, s, metrics.Selection{}, labels, h)

	want := `# HELP base_total Total number of events
# TYPE base_total gauge
base_total{policy="default"} 2
# HELP base_deep_samples Total number of deep samples
# TYPE base_deep_samples gauge
base_deep_samples{policy="default"} 2
# HELP resources_cpu_usage Quantiles of 5s averages of percent cpu usage by the input stream
# TYPE resources_cpu_usage summary
resources_cpu_usage{policy="default",quantile="0.5"} 12.5
resources_cpu_usage{policy="default",quantile="0.9"} 12.5
resources_cpu_usage{policy="default",quantile="0.95"} 12.5
resources_cpu_usage{policy="default",quantile="0.99"} 12.5
resources_cpu_usage_sum{policy="default"} 12.5
resources_cpu_usage_count{policy="default"} 1
# HELP resources_memory_bytes Quantiles of 5s averages of memory usage (in bytes) by the input stream
# TYPE resources_memory_bytes summary
resources_memory_bytes{policy="default",quantile="0.5"} 1048576
resources_memory_bytes{policy="default",quantile="0.9"} 1048576
resources_memory_bytes{policy="default",quantile="0.95"} 1048576
resources_memory_bytes{policy="default",quantile="0.99"} 1048576
resources_memory_bytes_sum{policy="default"} 1048576
resources_memory_bytes_count{policy="default"} 1
# HELP resources_policy_count Total number of policies attached to the input stream
# TYPE resources_policy_count gauge
resources_policy_count{policy="default"} 2
# HELP resources_handler_count Total number of handlers attached to the input stream
# TYPE resources_handler_count gauge
resources_handler_count{policy="default"} 3
`
	if text != want {
		t.Errorf("prometheus text:\n%s\nwant:\n%s", text, want)
	}
	lines := strings.SplitN(text, "\n", 3)
	if lines[0] != "# HELP base_total Total number of events" || lines[1] != "# TYPE base_total gauge" {
		t.Errorf("first two lines %q, want the reference's base_total HELP and TYPE", lines[:2])
	}

	// With completed seconds the event rate comes first, as a summary.
	h.Sample(101*sec, 12.5, 1<<20)
	h.Sample(102*sec, 12.5, 1<<20)
	text = renderProm(t, s, metrics.Selection{}, labels, h)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("official parser rejects the output: %v\n%s", err, text)
	}
	wantTypes := map[string]dto.MetricType{
		"base_event_rate":         dto.MetricType_SUMMARY,
		"base_total":              dto.MetricType_GAUGE,
		"base_deep_samples":       dto.MetricType_GAUGE,
		"resources_cpu_usage":     dto.MetricType_SUMMARY,
		"resources_memory_bytes":  dto.MetricType_SUMMARY,
		"resources_policy_count":  dto.MetricType_GAUGE,
		"resources_handler_count": dto.MetricType_GAUGE,
	}
	for name, typ := range wantTypes {
		f, ok := fams[name]
		if !ok {
			t.Errorf("family %s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s: type %v, want %v", name, f.GetType(), typ)
		}
	}
	if len(fams) != len(wantTypes) {
		t.Errorf("%d families, want %d:\n%s", len(fams), len(wantTypes), text)
	}
	if !strings.HasPrefix(text, "# HELP base_event_rate Rate of events\n# TYPE base_event_rate summary\n") {
		t.Errorf("rate does not come first:\n%s", text)
	}
	if got := fams["base_total"].GetMetric()[0].GetGauge().GetValue(); got != 4 {
		t.Errorf("base_total = %v, want 4", got)
	}
}

// TestReadProcess checks the live /proc values for plausibility: this test binary holds more
// than 1 MiB resident, and its CPU time grows while it spins.
func TestReadProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		_, _, err := ReadProcess()
		if err == nil {
			t.Fatal("ReadProcess succeeded without /proc")
		}
		t.Skipf("no /proc on %s: %v", runtime.GOOS, err)
	}
	cpu0, rss, err := ReadProcess()
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 1<<20 || rss > 1<<40 {
		t.Errorf("rss = %d bytes, want more than 1 MiB and less than 1 TiB", rss)
	}
	if cpu0 < 0 {
		t.Errorf("cpu = %v s", cpu0)
	}
	// Spin until the kernel has accounted 100 ms more (10 ticks); a busy machine may give
	// the spinning thread less than its wall time, hence the generous deadline.
	deadline := time.Now().Add(20 * time.Second)
	var m CPUMeter
	m.Percent(time.Now())
	x := uint64(1)
	for {
		for range 1_000_000 {
			x = x*2862933555777941757 + 3037000493
		}
		cpu, _, err := ReadProcess()
		if err != nil {
			t.Fatal(err)
		}
		if cpu >= cpu0+0.1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time did not grow: %v s then %v s", cpu0, cpu)
		}
	}
	if p := m.Percent(time.Now()); p <= 0 || p > float64(100*runtime.NumCPU())*1.5 {
		t.Errorf("Percent after spinning = %v, want in (0, %d]", p, 100*runtime.NumCPU())
	}
	if x == 0 {
		t.Log(x) // keep the loop
	}
}

// TestReadProcessFixtures reads fixture files through the same code path as /proc.
func TestReadProcessFixtures(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldStat, oldStatm := statPath, statmPath
	t.Cleanup(func() { statPath, statmPath = oldStat, oldStatm })

	// utime 250 + stime 75 ticks = 3.25 s; 1000 resident pages
	statPath = write("stat", "4242 (pktvisord) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 1000000 500 18446744073709551615\n")
	statmPath = write("statm", "5000 1000 300 10 0 2000 0\n")
	cpu, rss, err := ReadProcess()
	if err != nil {
		t.Fatal(err)
	}
	if cpu != 3.25 {
		t.Errorf("cpu = %v s, want 3.25", cpu)
	}
	if want := uint64(1000 * os.Getpagesize()); rss != want {
		t.Errorf("rss = %d, want %d", rss, want)
	}

	statmPath = filepath.Join(dir, "absent")
	if _, _, err := ReadProcess(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing statm: err = %v, want fs.ErrNotExist", err)
	}
	statmPath = write("statm2", "5000\n")
	if _, _, err := ReadProcess(); !errors.Is(err, ErrMalformed) {
		t.Errorf("short statm: err = %v, want ErrMalformed", err)
	}
}

func TestParseStat(t *testing.T) {
	tail := " S 1 2 3 0 -1 0 0 0 0 0 %s 0 0 20 0 1 0 5 100 10"
	tests := []struct {
		name    string
		line    string
		want    uint64
		wantErr bool
	}{
		{"plain", "1 (go) S 1 2 3 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 100 10", 10, false},
		// A command name with spaces and parentheses must not shift the fields.
		{"tricky name", "77 (a) b (c) d)" + strings.Replace(tail, "%s", "12 30", 1), 42, false},
		{"only utime and stime after name", "1 (x) S 1 2 3 0 -1 0 0 0 0 0 1 2", 3, false},
		{"no name", "1 go S 1 2", 0, true},
		{"too short", "1 (go) S 1 2 3", 0, true},
		{"not a number", "1 (go) S 1 2 3 0 -1 0 0 0 0 0 x 3", 0, true},
		{"negative", "1 (go) S 1 2 3 0 -1 0 0 0 0 0 -7 3", 0, true},
		{"saturates", "1 (go) S 1 2 3 0 -1 0 0 0 0 0 18446744073709551615 1", math.MaxUint64, false},
		{"empty", "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.line))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v does not wrap ErrMalformed", err)
			}
			if got != tc.want {
				t.Errorf("ticks = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestParseStatm(t *testing.T) {
	tests := []struct {
		line    string
		want    uint64
		wantErr bool
	}{
		{"100 20 3 4 0 5 0\n", 20, false},
		{"1 0", 0, false},
		{"1", 0, true},
		{"", 0, true},
		{"1 -2", 0, true},
		{"1 99999999999999999999", 0, true},
	}
	for _, tc := range tests {
		got, err := parseStatm([]byte(tc.line))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseStatm(%q) = %d, %v; want %d, err %v", tc.line, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestCPUMeter checks the percentage arithmetic with a fake CPU clock.
func TestCPUMeter(t *testing.T) {
	base := processStart
	type step struct {
		at   time.Duration // after process start
		cpu  float64       // cumulative CPU seconds
		want float64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		// first call: 1 s of CPU over the 4 s since start = 25 %; then 2.5 s over 5 s = 50 %
		{"average then interval", []step{{4 * time.Second, 1, 25}, {9 * time.Second, 3.5, 50}}},
		// three cores busy for 5 s = 300 % of one CPU
		{"several cores", []step{{5 * time.Second, 0, 0}, {10 * time.Second, 15, 300}}},
		// the same instant again keeps the previous result; going back in time too
		{"no time passed", []step{{2 * time.Second, 1, 50}, {2 * time.Second, 5, 50}, {time.Second, 5, 50}}},
		// a decreasing counter counts as no use
		{"counter went back", []step{{2 * time.Second, 1, 50}, {4 * time.Second, 0.5, 0}, {6 * time.Second, 1.5, 50}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cur float64
			m := CPUMeter{read: func() (float64, uint64, error) { return cur, 0, nil }}
			for i, st := range tc.steps {
				cur = st.cpu
				if got := m.Percent(base.Add(st.at)); math.Abs(got-st.want) > 1e-9 {
					t.Errorf("step %d: %v %%, want %v %%", i, got, st.want)
				}
			}
		})
	}
	m := CPUMeter{read: func() (float64, uint64, error) { return 0, 0, fs.ErrNotExist }}
	if got := m.Percent(time.Now()); got != 0 {
		t.Errorf("Percent without /proc = %v, want 0", got)
	}
}

// TestNoAllocs: feeding a warmed-up instance allocates nothing.
func TestNoAllocs(t *testing.T) {
	s := newSpec(t, config.Map{"num_periods": uint64(2), "deep_sample_rate": uint64(50)})
	h := newInst(s, 0)
	for i := range 300 { // past the exact buffer, into the sketch
		h.Sample(sec, float64(i%50), uint64(100+i%50)<<20)
		h.SetCounts(sec, 1, 2)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		h.Sample(sec, float64(i%50), uint64(100+i%50)<<20)
		h.SetCounts(sec, 1, uint64(i))
	}); n != 0 {
		t.Errorf("%v allocations per Sample+SetCounts, want 0", n)
	}
}

// FuzzParseProc: the /proc parsers never panic and agree with a plain re-parse when they
// accept a line.
func FuzzParseProc(f *testing.F) {
	f.Add([]byte("4242 (pktvisord) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 1000000 500\n"))
	f.Add([]byte("1 (a) b (c) d) S 1 2 3 0 -1 0 0 0 0 0 12 30"))
	f.Add([]byte("5000 1000 300 10 0 2000 0\n"))
	f.Add([]byte(")))"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ticks, err := parseStat(b); err == nil {
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || len(bytes.Fields(b[i+1:])) < 13 {
				t.Fatalf("accepted %q (%d ticks) without 13 fields after the name", b, ticks)
			}
		}
		if _, err := parseStatm(b); err == nil && len(bytes.Fields(b)) < 2 {
			t.Fatalf("statm accepted %q", b)
		}
	})
}

// FuzzFeed drives an instance with arbitrary calls and checks that rendering never fails or
// panics and that the counts shown are the last totals given.
func FuzzFeed(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, uint8(3), uint8(100))
	f.Add([]byte{255, 254, 0, 0, 0, 0, 0, 0, 0, 128, 1, 2, 3}, uint8(1), uint8(7))
	f.Fuzz(func(t *testing.T, ops []byte, periods, rate uint8) {
		s := newSpec(t, config.Map{"num_periods": uint64(periods), "deep_sample_rate": uint64(rate)})
		h := newInst(s, 0)
		ts := int64(0)
		var lastP, lastH uint64
		for len(ops) >= 9 {
			op := ops[0]
			v := uint64(0)
			for _, b := range ops[1:9] {
				v = v<<8 | uint64(b)
			}
			ops = ops[9:]
			ts += int64(op&0x0f) * sec / 2
			switch (op >> 4) % 5 {
			case 0:
				h.Sample(ts, math.Float64frombits(v), v)
			case 1:
				lastP, lastH = v>>32, v&0xffffffff
				h.SetCounts(ts, lastP, lastH)
			case 2:
				h.Shift(ts)
			case 3:
				h.Tick(ts)
			case 4:
				h.Sample(int64(v), float64(v%1000)/7, v) // arbitrary clock
			}
		}
		sels := []metrics.Selection{{}}
		if n := s.Window().NumPeriods; n >= 2 {
			sels = append(sels, metrics.Selection{Window: n})
		}
		for _, sel := range sels {
			sink := metrics.NewJSON()
			if _, err := s.Render([]handler.Handler{h}, sel, sink, ts); err != nil {
				t.Fatal(err)
			}
			if got := sink.Root["policy_count"].(uint64); got != lastP {
				t.Fatalf("policy_count %d, want %d", got, lastP)
			}
			if got := sink.Root["handler_count"].(uint64); got != lastH {
				t.Fatalf("handler_count %d, want %d", got, lastH)
			}
			if _, err := json.Marshal(sink.Root); err != nil {
				t.Fatal(err)
			}
			p := metrics.NewProm("x")
			if _, err := s.Render([]handler.Handler{h}, sel, p, ts); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := p.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func BenchmarkSample(b *testing.B) {
	s := newSpec(b, config.Map{})
	h := newInst(s, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		h.Sample(int64(i)*5*sec, float64(i%97), uint64(100+i%97)<<20)
	}
}

func BenchmarkSetCounts(b *testing.B) {
	s := newSpec(b, config.Map{})
	h := newInst(s, 0)
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		h.SetCounts(sec, i, i)
	}
}

func BenchmarkReadProcess(b *testing.B) {
	if _, _, err := ReadProcess(); err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ReadProcess(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderJSON(b *testing.B) {
	s := newSpec(b, config.Map{})
	h := newInst(s, 0)
	for i := range 12 { // one minute of samples
		h.Sample(int64(i)*5*sec, float64(i), uint64(i)<<20)
	}
	h.SetCounts(60*sec, 2, 4)
	hs := []handler.Handler{h}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Render(hs, metrics.Selection{}, metrics.NewJSON(), 60*sec); err != nil {
			b.Fatal(err)
		}
	}
}
