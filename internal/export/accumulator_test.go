package export

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

var (
	dTotal   = &metrics.Desc{Schema: "dns", Name: []string{"wire_packets", "total"}, Help: "all"}
	dUDP     = &metrics.Desc{Schema: "dns", Name: []string{"wire_packets", "udp"}, Help: "udp"}
	dCard    = &metrics.Desc{Schema: "dns", Name: []string{"cardinality", "qname"}, Help: "names"}
	dTop     = &metrics.Desc{Schema: "dns", Name: []string{"top_qname2"}, Help: "top"}
	dLat     = &metrics.Desc{Schema: "dns", Name: []string{"xact", "out", "quantiles_us"}, Help: "lat"}
	dRate    = &metrics.Desc{Schema: "dns", Name: []string{"rates", "total"}, Help: "rate"}
	dHist    = &metrics.Desc{Schema: "dns", Name: []string{"xact", "out", "histogram_us"}, Help: "hist"}
	dPolicy  = &metrics.Desc{Schema: "resources", Name: []string{"policy_count"}, Help: "policies"}
	unitDNS  = map[string]string{"policy": "p", "handler": "p-t-dns", "tap": "t"}
	unitDNS2 = map[string]string{"policy": "p", "handler": "p-t2-dns", "tap": "t2"}
)

// bucket describes one closed bucket of a dns-like handler, rendered into a Batch.
type bucket struct {
	total, udp, card uint64
	top              []metrics.TopItem
	lat              []float64
	hist             []uint64
}

func (bk bucket) render(s metrics.Sink) {
	s.Counter(dTotal, bk.total)
	s.Counter(dUDP, bk.udp)
	s.Cardinality(dCard, bk.card)
	s.TopN(dTop, "qname", bk.top)
	var q sketch.Quantiles
	for _, v := range bk.lat {
		q.Add(v)
	}
	s.Quantiles(dLat, &q, false)
	var h sketch.Histogram
	for _, v := range bk.hist {
		h.Add(v)
	}
	s.Histogram(dHist, &h)
}

func commit(t *testing.T, a *Accumulator, labels map[string]string, start int64, bk bucket) bool {
	t.Helper()
	b := NewBatch(labels)
	bk.render(b)
	return a.Commit(b, start)
}

func find(ss []Series, name string, labels ...string) *Series {
	for i := range ss {
		if ss[i].Name != name {
			continue
		}
		ok := true
		for j := 0; j+1 < len(labels); j += 2 {
			if labelValue(ss[i].Labels, labels[j]) != labels[j+1] {
				ok = false
			}
		}
		if ok {
			return &ss[i]
		}
	}
	return nil
}

func names(ss []Series) []string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s%v", s.Name, s.Labels))
	}
	return out
}

// Counters add up over buckets, gauges keep the newest bucket, histograms merge; a bucket is
// counted once, and an older one is refused.
func TestAccumulatorTotals(t *testing.T) {
	a := NewAccumulator(0)
	b1 := bucket{total: 10, udp: 7, card: 4, top: []metrics.TopItem{{Name: "a.example", Estimate: 5}, {Name: "b.example", Estimate: 3}},
		lat: []float64{100, 200, 300}, hist: []uint64{3, 10}}
	b2 := bucket{total: 5, udp: 5, card: 2, top: []metrics.TopItem{{Name: "b.example", Estimate: 4}, {Name: "c.example", Estimate: 1}},
		lat: []float64{400}, hist: []uint64{10}}
	b3 := bucket{total: 1, udp: 0, card: 1}
	if !commit(t, a, unitDNS, 60, b1) || !commit(t, a, unitDNS, 120, b2) {
		t.Fatal("new buckets refused")
	}
	if commit(t, a, unitDNS, 120, b2) || commit(t, a, unitDNS, 60, b1) {
		t.Fatal("a bucket was counted twice")
	}
	ss := a.Snapshot()
	check := func(name string, want uint64, labels ...string) {
		t.Helper()
		s := find(ss, name, labels...)
		if s == nil {
			t.Fatalf("no %s%v in %v", name, labels, names(ss))
		}
		if s.Int != want {
			t.Errorf("%s%v = %d, want %d", name, labels, s.Int, want)
		}
	}
	check("dns_wire_packets_total_total", 15) // 10 + 5
	check("dns_wire_packets_udp_total", 12)   // 7 + 5
	check("dns_cardinality_qname", 2)         // newest
	check("dns_top_qname2", 4, "qname", "b.example")
	check("dns_top_qname2", 1, "qname", "c.example")
	if find(ss, "dns_top_qname2", "qname", "a.example") != nil {
		t.Error("a.example, absent from the newest bucket, is still pushed")
	}
	lat := find(ss, "dns_xact_out_quantiles_us_histogram")
	if lat == nil || lat.Kind != KindExpHistogram || lat.Exp.Count != 4 || lat.Exp.Sum != 1000 || lat.Exp.Min != 100 || lat.Exp.Max != 400 {
		t.Fatalf("latency histogram %+v", lat)
	}
	hist := find(ss, "dns_xact_out_histogram_us_cumulative")
	if bounds, counts := hist.Hist.Buckets(); !slices.Equal(bounds, []float64{3, 10}) || !slices.Equal(counts, []uint64{1, 2, 0}) {
		t.Fatalf("histogram %v %v", bounds, counts)
	}
	s := find(ss, "dns_wire_packets_total_total")
	wantLabels := []Label{{"handler", "p-t-dns"}, {"policy", "p"}, {"tap", "t"}}
	if !slices.Equal(s.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", s.Labels, wantLabels)
	}

	// A bucket without top items or latencies: the gauges go, the cumulative series stay.
	commit(t, a, unitDNS, 180, b3)
	ss = a.Snapshot()
	check("dns_wire_packets_total_total", 16)
	if find(ss, "dns_top_qname2") != nil {
		t.Error("top items of an older bucket are still pushed")
	}
	if s := find(ss, "dns_xact_out_quantiles_us_histogram"); s == nil || s.Exp.Count != 4 {
		t.Error("the latency histogram lost its counts")
	}
	if st := a.Stats(); st.Buckets != 3 || st.Series != len(ss) {
		t.Errorf("stats %+v, %d series", st, len(ss))
	}
}

// Units are independent: each has its own series and its own last bucket.
func TestAccumulatorUnits(t *testing.T) {
	a := NewAccumulator(0)
	commit(t, a, unitDNS, 60, bucket{total: 3})
	if !commit(t, a, unitDNS2, 60, bucket{total: 4}) {
		t.Fatal("the same period of another unit was refused")
	}
	ss := a.Snapshot()
	if find(ss, "dns_wire_packets_total_total", "tap", "t").Int != 3 || find(ss, "dns_wire_packets_total_total", "tap", "t2").Int != 4 {
		t.Fatalf("per-unit totals wrong: %v", names(ss))
	}
	a.Retain(func(u string) bool { return u == UnitKey(unitDNS) })
	ss = a.Snapshot()
	if find(ss, "dns_wire_packets_total_total", "tap", "t2") != nil || find(ss, "dns_wire_packets_total_total", "tap", "t") == nil {
		t.Fatalf("Retain kept %v", names(ss))
	}
	// A retained-away unit that comes back starts from zero.
	commit(t, a, unitDNS2, 60, bucket{total: 2})
	if got := find(a.Snapshot(), "dns_wire_packets_total_total", "tap", "t2").Int; got != 2 {
		t.Errorf("returning unit total %d, want 2", got)
	}
}

// New series beyond the cap are dropped and counted; deleted gauges free their place.
func TestAccumulatorSeriesCap(t *testing.T) {
	a := NewAccumulator(4)
	b := NewBatch(unitDNS)
	items := []metrics.TopItem{{Name: "a", Estimate: 1}, {Name: "b", Estimate: 1}, {Name: "c", Estimate: 1}, {Name: "d", Estimate: 1}, {Name: "e", Estimate: 1}, {Name: "f", Estimate: 1}}
	b.TopN(dTop, "qname", items)
	a.Commit(b, 60)
	if st := a.Stats(); st.Series != 4 || st.DroppedSeries != 2 {
		t.Fatalf("stats %+v, want 4 series and 2 dropped", st)
	}
	b = NewBatch(unitDNS)
	b.TopN(dTop, "qname", items[4:])
	a.Commit(b, 120)
	ss := a.Snapshot()
	if len(ss) != 2 || find(ss, "dns_top_qname2", "qname", "e") == nil || find(ss, "dns_top_qname2", "qname", "f") == nil {
		t.Fatalf("after churn: %v", names(ss))
	}
}

// Level metrics rendered through Counter are gauges; rates are gauges per quantile; label
// clashes are renamed; invalid UTF-8 is escaped; empty top-N names are skipped.
func TestAccumulatorShapes(t *testing.T) {
	a := NewAccumulator(0)
	b := NewBatch(map[string]string{"policy": "p", "handler": "h"})
	b.Counter(dPolicy, 3)
	var r sketch.Rate
	for sec := int64(100); sec < 110; sec++ {
		r.Add(sec, uint64(sec-99)) // 1..10 events per second
	}
	r.Add(110, 0) // completes second 109
	b.Rate(dRate, &r, false)
	b.TopN(dTop, "policy", []metrics.TopItem{{Name: "x\xff", Estimate: 2}, {Name: "", Estimate: 9}})
	a.Commit(b, 60)
	b = NewBatch(map[string]string{"policy": "p", "handler": "h"})
	b.Counter(dPolicy, 2)
	b.Rate(dRate, &r, false)
	a.Commit(b, 120)
	ss := a.Snapshot()
	if s := find(ss, "resources_policy_count"); s == nil || s.Kind != KindGauge || s.Int != 2 {
		t.Errorf("policy_count %+v, want gauge 2", s)
	}
	// Rates of seconds 1..10: p50 is the 5th value, p90 the 9th, p99 the 10th (inclusive rank).
	for q, want := range map[string]uint64{"0.5": 5, "0.9": 9, "0.95": 10, "0.99": 10} {
		if s := find(ss, "dns_rates_total", "quantile", q); s == nil || s.Kind != KindGauge || s.Int != want {
			t.Errorf("rate quantile %s: %+v, want %d", q, s, want)
		}
	}
	if find(ss, "dns_top_qname2") != nil {
		t.Error("top items of the older bucket survived")
	}
	a2 := NewAccumulator(0)
	b = NewBatch(map[string]string{"policy": "p"})
	b.TopN(dTop, "policy", []metrics.TopItem{{Name: "x\xff", Estimate: 2}, {Name: "", Estimate: 9}})
	a2.Commit(b, 1)
	ss = a2.Snapshot()
	want := []Label{{"exported_policy", `x\xff`}, {"policy", "p"}}
	if len(ss) != 1 || !slices.Equal(ss[0].Labels, want) {
		t.Errorf("got %v, want one series with %v", names(ss), want)
	}
}
