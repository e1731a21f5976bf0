package reader

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Results must not depend on the number of workers: packets are routed by flow, counters add,
// cardinality, quantile and rate sketches merge exactly (the same state whatever the split).
// Top-N lists are exact below their capacity; beyond it (this capture has more distinct client
// ports than a top-N tracks) a merge of per-worker lists may differ from the single list, but
// only within the sketch's bound E ≤ W/⌈(M+1)/2⌉ (internal/sketch/README.md). The capture spans
// several periods so that shifts, closed buckets and the merged window are all exercised.
func TestWorkersDoNotChangeResults(t *testing.T) {
	file, _ := generated(t, "workers", func(c *gen.Config) {
		c.Packets, c.Seed, c.QPS = 40000, 5, 60 // several minutes of traffic
		c.TCP, c.IPv6, c.Fragment, c.TCPSplit, c.TCPReorder = 0.2, 0.3, 0.02, 0.3, 0.2
		c.LatencyMedian, c.Timeout = 20*time.Millisecond, 0.01
	})
	yaml := "handlers:\n  modules:\n    net:\n      type: net\n    dns:\n      type: dns\n" +
		"      metric_groups:\n        enable: [all]\n    pcap:\n      type: pcap\n"
	run := func(workers, periods int) map[string]any {
		return summarize(t, Options{File: file, Periods: periods, Workers: workers,
			HostSpec: "10.0.0.0/8,fd00::/8", ConfigYAML: []byte(yaml)})
	}
	for _, periods := range []int{1, 5} {
		want := run(1, periods)
		for _, workers := range []int{2, 3, 4} {
			got := run(workers, periods)
			compareOutputs(t, "", got, want, 0)
		}
	}
}

// compareOutputs requires equal documents, except that top-N lists may differ within the
// top-N error bound for the handler's event count.
func compareOutputs(t *testing.T, path string, got, want any, events float64) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			t.Errorf("%s: keys differ: got %v want %v", path, keysOf(got), keysOf(want))
			return
		}
		if ev, ok := w["events"]; ok {
			events = num(ev)
		}
		if wp, ok := w["wire_packets"].(map[string]any); ok {
			events = num(wp["events"])
		}
		for k, v := range w {
			compareOutputs(t, path+"."+k, g[k], v, events)
		}
	case []any:
		g, _ := got.([]any)
		if strings.HasSuffix(path, "top_qname_by_resp_bytes") {
			// Weighted by bytes: its total weight is not in the output, compare names only.
			if len(g) != len(w) {
				t.Errorf("%s: %d rows, want %d", path, len(g), len(w))
			}
			return
		}
		bound := math.Ceil(events / math.Ceil(float64(sketch.DefaultTopNMaxItems+1)/2))
		compareTop(t, path, g, w, bound)
	default:
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("%s = %s, want %s", path, gj, wj)
		}
	}
}

func compareTop(t *testing.T, path string, got, want []any, bound float64) {
	t.Helper()
	est := func(rows []any) map[string]float64 {
		m := map[string]float64{}
		for _, r := range rows {
			row := r.(map[string]any)
			m[row["name"].(string)] = num(row["estimate"])
		}
		return m
	}
	g, w := est(got), est(want)
	last := func(rows []any) float64 {
		if len(rows) == 0 {
			return 0
		}
		return num(rows[len(rows)-1].(map[string]any)["estimate"])
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", path, len(got), len(want))
	}
	for name, we := range w {
		ge, ok := g[name]
		switch {
		case ok && math.Abs(ge-we) > bound:
			t.Errorf("%s[%s] = %v, want %v ± %v", path, name, ge, we, bound)
		case !ok && we > last(got)+bound:
			t.Errorf("%s: %s (%v) missing, list ends at %v (bound %v)", path, name, we, last(got), bound)
		}
	}
	if bound == 0 {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("%s = %s, want %s", path, gj, wj)
		}
	}
}

func keysOf(v any) []string {
	m, _ := v.(map[string]any)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
