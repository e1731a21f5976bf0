package export

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Kind is how a series is pushed.
type Kind uint8

const (
	// KindCounter is a running total since the agent started (OTLP cumulative monotonic Sum,
	// Prometheus counter), named <metric>_total.
	KindCounter Kind = iota
	// KindGauge is the value of the last closed bucket (OTLP Gauge, Prometheus gauge).
	KindGauge
	// KindExpHistogram is a cumulative exponential histogram of a quantile sketch (OTLP
	// ExponentialHistogram, Prometheus native histogram), named <metric>_histogram.
	KindExpHistogram
	// KindHistogram is a cumulative pktvisor fixed-bound histogram (OTLP Histogram, Prometheus
	// classic histogram), named <metric>_cumulative.
	KindHistogram
)

func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindExpHistogram:
		return "exponential_histogram"
	case KindHistogram:
		return "histogram"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Suffixes of the pushed names. Every cumulative family gets one, so that no pushed name is
// also a name of /metrics, whose families of the same base name are per-bucket gauges,
// summaries and histograms: dns_wire_packets_total (the reference's per-minute gauge) becomes
// dns_wire_packets_total_total, the running count.
const (
	counterSuffix   = "_total"
	expHistSuffix   = "_histogram"
	histogramSuffix = "_cumulative"
)

// levelCounters are the metrics handlers render through Sink.Counter that are levels, not
// event counts: summing them over buckets would be meaningless, so they are gauges. (The Sink
// interface has no gauge method; a Desc flag would be the durable fix.)
var levelCounters = map[string]bool{
	"resources_policy_count":  true,
	"resources_handler_count": true,
}

// DefaultMaxSeries is the default cap on the series an Accumulator holds.
const DefaultMaxSeries = 50000

// Label is one label (OTLP data point attribute) of a series.
type Label struct{ Name, Value string }

// Series is one pushed series: a snapshot copy, safe to keep.
type Series struct {
	Name   string
	Help   string
	Kind   Kind
	Labels []Label // sorted by Name, unique; policy, handler, tap and the metric's own
	// Int is a counter's total or an integer gauge's value; Float a real-valued gauge's
	// (IsFloat).
	Int     uint64
	Float   float64
	IsFloat bool
	Exp     *ExpHistogram      // KindExpHistogram
	Hist    *ExplicitHistogram // KindHistogram
}

// Stats are an Accumulator's counters.
type Stats struct {
	Series        int    // series held
	Buckets       uint64 // closed buckets accumulated
	DroppedSeries uint64 // new series refused because MaxSeries was reached
}

// Accumulator keeps, for every series rendered by the agent's closed buckets, its running
// total (counters, histograms) or last value (gauges). Feed it each closed bucket once, per
// unit (a handler on a tap, or a merged schema, identified by its labels), in period order:
// Batch collects a rendered bucket, Commit adds it when its period is newer than the unit's
// last one.
//
// Memory is bounded: at most MaxSeries series (new ones beyond are dropped and counted);
// gauge series not refreshed by their unit's newest bucket are deleted (a top-N qname seen
// once does not live forever); Retain deletes the series of units that no longer exist.
// Counters and histograms of a live unit are kept: their label sets are fixed by the
// handler's configuration.
//
// An Accumulator is safe for concurrent use.
type Accumulator struct {
	// Started is the start of every cumulative series (OTLP start_time_unix_nano).
	Started time.Time

	mu      sync.Mutex
	max     int
	series  map[string]*Series
	units   map[string]*unit
	buckets uint64
	dropped uint64
}

type unit struct {
	last    int64 // start (Unix seconds) of the newest bucket committed
	has     bool
	members map[string]*Series
}

// NewAccumulator returns an empty Accumulator holding at most maxSeries series
// (DefaultMaxSeries when maxSeries ≤ 0).
func NewAccumulator(maxSeries int) *Accumulator {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	return &Accumulator{Started: time.Now(), max: maxSeries, series: map[string]*Series{}, units: map[string]*unit{}}
}

// Stats returns the accumulator's counters.
func (a *Accumulator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Stats{Series: len(a.series), Buckets: a.buckets, DroppedSeries: a.dropped}
}

// UnitKey is the identity of a unit: its labels, sorted.
func UnitKey(labels map[string]string) string {
	ls := make([]Label, 0, len(labels))
	for k, v := range labels {
		ls = append(ls, Label{sanitizeLabelName(k), cleanValue(v)})
	}
	sortLabels(ls)
	return labelsKey(ls)
}

func labelsKey(ls []Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(l.Value)
		b.WriteByte(0)
	}
	return b.String()
}

func sortLabels(ls []Label) {
	slices.SortFunc(ls, func(a, b Label) int { return cmp.Compare(a.Name, b.Name) })
}

// IsNew reports whether a bucket of the unit starting at startTS (Unix seconds) would be
// committed: the unit has no bucket yet or only older ones.
func (a *Accumulator) IsNew(unitKey string, startTS int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.units[unitKey]
	return u == nil || !u.has || startTS > u.last
}

// Commit adds the batch as the unit's bucket starting at startTS (Unix seconds) and reports
// whether it did: a bucket not newer than the unit's last committed one is ignored (already
// counted).
func (a *Accumulator) Commit(b *Batch, startTS int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.units[b.unit]
	if u == nil {
		u = &unit{members: map[string]*Series{}}
		a.units[b.unit] = u
	}
	if u.has && startTS <= u.last {
		return false
	}
	u.has, u.last = true, startTS
	a.buckets++
	keys := make([]string, len(b.entries))
	fresh := make(map[string]bool, len(b.entries))
	for i := range b.entries {
		keys[i] = b.entries[i].Name + "\xff" + labelsKey(b.entries[i].Labels)
		fresh[keys[i]] = true
	}
	// Gauges this bucket does not refresh go first, so that their places serve new series.
	for key, s := range u.members {
		if s.Kind == KindGauge && !fresh[key] {
			delete(u.members, key)
			delete(a.series, key)
		}
	}
	for i := range b.entries {
		e, key := &b.entries[i], keys[i]
		s := a.series[key]
		if s != nil && s.Kind != e.Kind {
			continue // one name, one kind: the first wins
		}
		if s == nil {
			if len(a.series) >= a.max {
				a.dropped++
				continue
			}
			s = &Series{Name: e.Name, Help: e.Help, Kind: e.Kind, Labels: e.Labels}
			switch e.Kind {
			case KindExpHistogram:
				s.Exp = NewExpHistogram()
			case KindHistogram:
				s.Hist = new(ExplicitHistogram)
			}
			a.series[key] = s
			u.members[key] = s
		}
		switch e.Kind {
		case KindCounter:
			s.Int += e.Int
		case KindGauge:
			s.Int, s.Float, s.IsFloat = e.Int, e.Float, e.IsFloat
		case KindExpHistogram:
			s.Exp.Merge(e.Exp)
		case KindHistogram:
			s.Hist.Merge(e.Hist)
		}
	}
	return true
}

// Retain deletes the units (and their series) whose key keep rejects: policies that were
// removed. A unit that comes back later starts from zero, which a TSDB reads as a counter
// reset.
func (a *Accumulator) Retain(keep func(unitKey string) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, u := range a.units {
		if keep(key) {
			continue
		}
		for sk := range u.members {
			delete(a.series, sk)
		}
		delete(a.units, key)
	}
}

// Snapshot returns a copy of every series, sorted by name then labels.
func (a *Accumulator) Snapshot() []Series {
	a.mu.Lock()
	out := make([]Series, 0, len(a.series))
	for _, s := range a.series {
		c := *s
		c.Labels = slices.Clone(s.Labels)
		if s.Exp != nil {
			c.Exp = s.Exp.Clone()
		}
		if s.Hist != nil {
			h := *s.Hist
			c.Hist = &h
		}
		out = append(out, c)
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y Series) int {
		if c := cmp.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return slices.CompareFunc(x.Labels, y.Labels, func(p, q Label) int {
			return cmp.Or(cmp.Compare(p.Name, q.Name), cmp.Compare(p.Value, q.Value))
		})
	})
	return out
}

// Batch is a metrics.Sink that collects one rendered bucket of one unit for Commit. The
// sketches it is given are read during the call (a rendered bucket is reused afterwards).
type Batch struct {
	unit    string
	base    []Label
	entries []Series
	qs      []float64
	hb      []sketch.Bucket
}

// NewBatch returns an empty batch for the unit with these labels (policy, handler, tap).
func NewBatch(labels map[string]string) *Batch {
	b := &Batch{}
	for k, v := range labels {
		b.base = append(b.base, Label{sanitizeLabelName(k), cleanValue(v)})
	}
	sortLabels(b.base)
	b.unit = labelsKey(b.base)
	return b
}

// Unit is the batch's unit key (UnitKey of its labels).
func (b *Batch) Unit() string { return b.unit }

// Len is the number of series collected.
func (b *Batch) Len() int { return len(b.entries) }

// labels returns the base labels plus extra name/value pairs, sorted; an extra name that
// clashes with a taken one is renamed exported_<name>, as Prometheus does.
func (b *Batch) labels(kv ...string) []Label {
	ls := make([]Label, len(b.base), len(b.base)+len(kv)/2)
	copy(ls, b.base)
	for i := 0; i+1 < len(kv); i += 2 {
		name := sanitizeLabelName(kv[i])
		for slices.ContainsFunc(ls, func(l Label) bool { return l.Name == name }) {
			name = "exported_" + name
		}
		ls = append(ls, Label{name, cleanValue(kv[i+1])})
	}
	sortLabels(ls)
	return ls
}

func (b *Batch) add(s Series) { b.entries = append(b.entries, s) }

// Counter implements metrics.Sink: a running total (a gauge for the few level metrics).
func (b *Batch) Counter(d *metrics.Desc, v uint64) {
	name := metricName(d)
	if levelCounters[name] {
		b.add(Series{Name: name, Help: d.Help, Kind: KindGauge, Labels: b.labels(), Int: v})
		return
	}
	b.add(Series{Name: name + counterSuffix, Help: d.Help, Kind: KindCounter, Labels: b.labels(), Int: v})
}

// Cardinality implements metrics.Sink: a gauge.
func (b *Batch) Cardinality(d *metrics.Desc, v uint64) {
	b.add(Series{Name: metricName(d), Help: d.Help, Kind: KindGauge, Labels: b.labels(), Int: v})
}

// TopN implements metrics.Sink: one gauge per item, labelled <label>="<name>" (with lat and
// lon when the item has both). Items with an empty name are skipped, as the reference's OTLP
// export did.
func (b *Batch) TopN(d *metrics.Desc, label string, items []metrics.TopItem) {
	name := metricName(d)
	for _, it := range items {
		if it.Name == "" {
			continue
		}
		var ls []Label
		if it.Lat != "" && it.Lon != "" {
			ls = b.labels(label, it.Name, "lat", it.Lat, "lon", it.Lon)
		} else {
			ls = b.labels(label, it.Name)
		}
		b.add(Series{Name: name, Help: d.Help, Kind: KindGauge, Labels: ls, Int: it.Estimate})
	}
}

// Quantiles implements metrics.Sink: the sketch's values into a cumulative exponential
// histogram. isFloat does not matter: a histogram has no rounding.
func (b *Batch) Quantiles(d *metrics.Desc, q *sketch.Quantiles, _ bool) {
	if q == nil || q.Count() == 0 {
		return
	}
	h := NewExpHistogram()
	h.AddQuantiles(q)
	b.add(Series{Name: metricName(d) + expHistSuffix, Help: d.Help, Kind: KindExpHistogram, Labels: b.labels(), Exp: h})
}

// Rate implements metrics.Sink: the bucket's per-second rate quantiles as gauges labelled
// quantile="0.5"…"0.99", integers as /metrics gives them. Nothing when no second completed.
func (b *Batch) Rate(d *metrics.Desc, r *sketch.Rate, _ bool) {
	if r == nil || r.Count() == 0 {
		return
	}
	name := metricName(d)
	b.qs = r.Quantiles(metrics.QuantileFractions, b.qs[:0])
	for i, v := range b.qs {
		b.add(Series{Name: name, Help: d.Help, Kind: KindGauge, Labels: b.labels("quantile", metrics.QuantileLabels[i]),
			Int: roundCount(v)})
	}
}

// Histogram implements metrics.Sink: counts per pktvisor bound, cumulated over buckets.
func (b *Batch) Histogram(d *metrics.Desc, h *sketch.Histogram) {
	if h == nil || h.Count() == 0 {
		return
	}
	var eh ExplicitHistogram
	b.hb = h.Buckets(b.hb[:0])
	eh.AddBuckets(b.hb)
	b.add(Series{Name: metricName(d) + histogramSuffix, Help: d.Help, Kind: KindHistogram, Labels: b.labels(), Hist: &eh})
}

// roundCount rounds a non-negative quantile to an integer as /metrics prints it.
func roundCount(v float64) uint64 {
	if !(v > 0) {
		return 0
	}
	if v >= 1<<63 {
		return 1 << 63
	}
	return uint64(math.Round(v))
}

// metricName is Desc.Schema and Desc.Name joined by "_" (the Prometheus name of /metrics),
// reduced to [a-zA-Z_:][a-zA-Z0-9_:]*.
func metricName(d *metrics.Desc) string {
	parts := make([]string, 0, len(d.Name)+1)
	if d.Schema != "" {
		parts = append(parts, d.Schema)
	}
	parts = append(parts, d.Name...)
	return sanitizeName(strings.Join(parts, "_"), true)
}

func sanitizeLabelName(s string) string { return sanitizeName(s, false) }

// sanitizeName maps s onto a legacy Prometheus name: other bytes become '_', a leading digit
// gets a '_' prefix, "" becomes "_". ':' is allowed in metric names only.
func sanitizeName(s string, metric bool) string {
	ok := s != "" && !(s[0] >= '0' && s[0] <= '9')
	for i := 0; ok && i < len(s); i++ {
		ok = nameByte(s[i], metric)
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i := range b {
		if !nameByte(b[i], metric) {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		b = append([]byte{'_'}, b...)
	}
	return string(b)
}

func nameByte(c byte, metric bool) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || '0' <= c && c <= '9' || metric && c == ':'
}

// cleanValue returns s with each byte that is not part of valid UTF-8 written as the text
// \xNN, as /metrics does: protobuf strings must be UTF-8, and distinct byte strings must stay
// distinct series.
func cleanValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(`\x`)
			b.WriteByte(hex[s[i]>>4])
			b.WriteByte(hex[s[i]&0xf])
			i++
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}
