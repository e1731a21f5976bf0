package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/export"
	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// minutesCapture writes a generated DNS capture spanning about 4.7 minutes of event time, so
// that a replay closes 4 one-minute buckets and leaves a fifth, partial, live one.
func minutesCapture(t testing.TB) string {
	t.Helper()
	cfg := gen.DefaultConfig()
	cfg.Packets = 4000
	cfg.QPS = 7
	cfg.Clients = 300
	cfg.Names = 500
	path := filepath.Join(t.TempDir(), "minutes.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Write(f, cfg); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// exportAgent runs policy x (net, dns, pcap) and policy m (two dns handlers merged) on the
// capture, to its end.
func exportAgent(t testing.TB) *Agent {
	t.Helper()
	a := New(Options{Periods: 5, Workers: 2, Version: "test"})
	t.Cleanup(a.Close)
	doc := fmt.Sprintf(`visor:
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
          pcap_stats: {type: pcap}
    m:
      kind: collection
      config: {merge_like_handlers: true}
      input: {tap: gen, input_type: pcap}
      handlers:
        modules:
          d1: {type: dns}
          d2: {type: dns}
`, minutesCapture(t))
	if _, err := a.LoadConfig([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	waitInputsDone(t, a)
	return a
}

type exportedUnit struct {
	labels map[string]string
	rp     metrics.RenderedPeriod
	err    error
}

func exportAll(t testing.TB, a *Agent, n int, sink func(labels map[string]string) metrics.Sink) []exportedUnit {
	t.Helper()
	var out []exportedUnit
	err := a.ExportClosed(n, func(labels map[string]string, render func(metrics.Sink) (metrics.RenderedPeriod, error)) error {
		s := metrics.Sink(metrics.NewJSON())
		if sink != nil {
			s = sink(labels)
		}
		rp, err := render(s)
		out = append(out, exportedUnit{labels, rp, err})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ExportClosed renders exactly what PolicyProm renders for bucket 1, unit by unit with the
// same labels; each bucket n has the period the JSON API shows for it; there is nothing beyond
// the ring, and the merged policy is one unit per schema without a tap.
func TestExportClosedMatchesPolicyProm(t *testing.T) {
	a := exportAgent(t)
	for _, policy := range []string{"x", "m"} {
		want := metrics.NewProm("")
		if err := a.PolicyProm(policy, want, true); err != nil {
			t.Fatal(err)
		}
		got := metrics.NewProm("")
		var units []map[string]string
		exportAll(t, a, 1, func(labels map[string]string) metrics.Sink {
			if labels["policy"] != policy {
				return metrics.NewJSON()
			}
			units = append(units, labels)
			got.SetLabels(labels)
			return got
		})
		var wb, gb bytes.Buffer
		want.WriteTo(&wb)
		got.WriteTo(&gb)
		if wb.String() != gb.String() || wb.Len() == 0 {
			t.Errorf("policy %s: ExportClosed(1) renders\n%.2000s\nPolicyProm renders\n%.2000s", policy, gb.String(), wb.String())
		}
		wantUnits := map[string][]string{
			"x": {"x-gen-net gen", "x-gen-dns gen", "x-gen-pcap_stats gen"},
			"m": {"dns_merged "},
		}[policy]
		var gotUnits []string
		for _, l := range units {
			gotUnits = append(gotUnits, l["handler"]+" "+l["tap"])
		}
		if strings.Join(gotUnits, ",") != strings.Join(wantUnits, ",") {
			t.Errorf("policy %s units %v, want %v", policy, gotUnits, wantUnits)
		}
	}

	prev := int64(1 << 62)
	for n := 1; n <= 4; n++ {
		body, err := a.PolicyJSON("x", metrics.Selection{Bucket: n})
		if err != nil {
			t.Fatal(err)
		}
		wantStart := body["x-gen-dns"].(map[string]any)["dns"].(map[string]any)["period"].(map[string]any)["start_ts"].(int64)
		for _, u := range exportAll(t, a, n, nil) {
			if u.err != nil {
				t.Fatalf("bucket %d of %v: %v", n, u.labels, u.err)
			}
			if u.labels["policy"] == "x" && u.rp.StartTS != wantStart {
				t.Errorf("bucket %d of %v starts at %d, JSON says %d", n, u.labels, u.rp.StartTS, wantStart)
			}
		}
		if wantStart >= prev {
			t.Errorf("bucket %d starts at %d, not before bucket %d (%d)", n, wantStart, n-1, prev)
		}
		prev = wantStart
	}
	for _, u := range exportAll(t, a, 5, nil) {
		var pe *metrics.PeriodError
		if !errors.As(u.err, &pe) {
			t.Errorf("bucket 5 of %v: %v, want a period error", u.labels, u.err)
		}
	}
}

// Fed by ExportClosed, the export accumulator's counters are the sums of the closed buckets'
// counters as the JSON API shows them, its gauges bucket 1's, and its latency histogram
// counts every transaction of the closed buckets.
func TestExportAccumulatesClosedBuckets(t *testing.T) {
	a := exportAgent(t)
	c := export.NewCollector(a.ExportClosed, export.NewAccumulator(0), nil)
	if _, err := c.Collect(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Collect(); n != 0 || err != nil {
		t.Fatalf("second collection committed %d, %v", n, err)
	}
	num := func(m map[string]any, path ...string) uint64 {
		var v any = m
		for _, k := range path {
			v = v.(map[string]any)[k]
		}
		return v.(uint64)
	}
	var wantTotal, wantPackets, wantXact uint64
	var wantCard uint64
	for n := 1; n <= 4; n++ {
		body, err := a.PolicyJSON("x", metrics.Selection{Bucket: n})
		if err != nil {
			t.Fatal(err)
		}
		dns := body["x-gen-dns"].(map[string]any)["dns"].(map[string]any)
		wantTotal += num(dns, "wire_packets", "total")
		wantXact += num(dns, "xact", "out", "total")
		wantPackets += num(body["x-gen-net"].(map[string]any)["packets"].(map[string]any), "total")
		if n == 1 {
			wantCard = num(dns, "cardinality", "qname")
		}
	}
	if wantTotal == 0 || wantXact == 0 {
		t.Fatal("the capture closed no bucket with DNS")
	}
	get := func(name, handler string) *export.Series {
		for _, s := range c.Accumulator().Snapshot() {
			for _, l := range s.Labels {
				if s.Name == name && l.Name == "handler" && l.Value == handler {
					return &s
				}
			}
		}
		t.Fatalf("no %s of %s", name, handler)
		return nil
	}
	if got := get("dns_wire_packets_total_total", "x-gen-dns").Int; got != wantTotal {
		t.Errorf("dns total %d, want %d", got, wantTotal)
	}
	if got := get("packets_total_total", "x-gen-net").Int; got != wantPackets {
		t.Errorf("packets total %d, want %d", got, wantPackets)
	}
	if got := get("dns_cardinality_qname", "x-gen-dns").Int; got != wantCard {
		t.Errorf("qname cardinality %d, want bucket 1's %d", got, wantCard)
	}
	if got := get("dns_xact_out_quantiles_us_histogram", "x-gen-dns").Exp.Count; got != wantXact {
		t.Errorf("latency histogram count %d, want %d transactions", got, wantXact)
	}
	if got := get("dns_xact_out_histogram_us_cumulative", "x-gen-dns").Hist.Count; got != wantXact {
		t.Errorf("latency explicit histogram count %d, want %d", got, wantXact)
	}
	// The merged policy: two dns handlers on one input count everything twice.
	if got := get("dns_wire_packets_total_total", "dns_merged").Int; got != 2*wantTotal {
		t.Errorf("merged total %d, want %d", got, 2*wantTotal)
	}
}

// BenchmarkExportPoll: what one poll of the push export costs when nothing closed since the
// last one: bucket 1 of every handler rendered (merged over the workers) into a batch.
func BenchmarkExportPoll(b *testing.B) {
	a := exportAgent(b)
	c := export.NewCollector(a.ExportClosed, export.NewAccumulator(0), nil)
	if _, err := c.Collect(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if n, err := c.Collect(); n != 0 || err != nil {
			b.Fatal(n, err)
		}
	}
}
