package agent

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pktvisor-go/pktvisor/internal/export"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Cumulative families of /metrics (README.md, "Cumulative families").
//
// The reference's families are per-bucket gauges and summaries: a TSDB cannot add them across
// time or agents. Beside them /metrics serves what the push export pushes (internal/export):
// running totals of the default policy's counters, <name>_total, and — in the protobuf
// exposition only — cumulative native histograms of its quantile sketches, <name>_histogram.
// Both come from one export.Collector/Accumulator pair per agent, fed with the policy's closed
// buckets only, each once: the same numbers the push export computes, under the same names, so
// a dashboard works on either.
//
// Only counters and sketches are accumulated (cumulativeSink drops the rest before the
// accumulator sees it), so the series are fixed by the policy's configuration: no top-N churn,
// and cumulativeMaxSeries bounds them anyway.

const (
	// metricsPolicy is the policy /metrics serves.
	metricsPolicy = "default"
	// cumulativeMaxSeries caps the accumulated series: net, dns and pcap render 38 counters
	// and sketches per tap.
	cumulativeMaxSeries = 10000
	// nativeZeroThreshold is the native histograms' zero bucket width, 2^-128 as client_golang
	// uses: a scraper that tells native from classic histograms by native buckets, zero count
	// or zero threshold then never mistakes one for a classic histogram. No value rendered
	// here lies in (0, 2^-128].
	nativeZeroThreshold = 0x1p-128
)

// cumulative accumulates the closed buckets of one policy of an agent.
type cumulative struct {
	a      *Agent
	policy string
	col    *export.Collector
	// stopped is closed when run returns.
	stopped chan struct{}

	logMu   sync.Mutex
	lastLog time.Time
}

// cumulative returns the agent's accumulator of the default policy's closed buckets, starting
// it (one per agent) on first use: the /metrics route asks for it when Handler builds the
// routes, so it runs from the agent's start. Its goroutine polls the ring every
// export.DefaultPoll, so that buckets are counted even when nobody scrapes for longer than the
// ring holds them, and ends with Agent.Close.
func (a *Agent) cumulative() *cumulative {
	a.cumOnce.Do(func() {
		a.cum = newCumulative(a, metricsPolicy, a.policySource(metricsPolicy))
		go a.cum.run(export.DefaultPoll, a.done)
	})
	return a.cum
}

func newCumulative(a *Agent, policy string, src export.Source) *cumulative {
	return &cumulative{a: a, policy: policy, col: export.NewCollector(src, export.NewAccumulator(cumulativeMaxSeries), a.log),
		stopped: make(chan struct{})}
}

// run collects every poll until done is closed (Agent.Close).
func (c *cumulative) run(poll time.Duration, done <-chan struct{}) {
	defer close(c.stopped)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		c.collect()
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// collect accumulates the buckets closed since the last call; a failure is logged at most
// once a minute (the totals stay as they were).
func (c *cumulative) collect() {
	if _, err := c.col.Collect(); err != nil {
		c.warn("metrics: accumulating closed buckets failed", err)
	}
}

// warn logs err at most once a minute.
func (c *cumulative) warn(msg string, err error) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	if time.Since(c.lastLog) >= time.Minute {
		c.lastLog = time.Now()
		c.a.log.Warn(msg, "policy", c.policy, "err", err)
	}
}

// policySource is export.Source for one policy: its units with ExportClosed's labels (policy,
// handler, tap; the handler label keeps units apart in the accumulator and is dropped when
// rendered, see view), rendering only counters and quantile sketches.
func (a *Agent) policySource(policy string) export.Source {
	return func(n int, each func(labels map[string]string, render export.RenderFunc) error) error {
		return a.exportPolicy(policy, n, func(s metrics.Sink) metrics.Sink { return cumulativeSink{s} }, each)
	}
}

// cumulativeSink passes counters and quantile sketches on and drops what /metrics does not
// accumulate (cardinalities, top-N lists, rates and fixed-bound histograms).
type cumulativeSink struct{ next metrics.Sink }

func (s cumulativeSink) Counter(d *metrics.Desc, v uint64) { s.next.Counter(d, v) }
func (s cumulativeSink) Quantiles(d *metrics.Desc, q *sketch.Quantiles, isFloat bool) {
	s.next.Quantiles(d, q, isFloat)
}
func (cumulativeSink) Cardinality(*metrics.Desc, uint64)             {}
func (cumulativeSink) TopN(*metrics.Desc, string, []metrics.TopItem) {}
func (cumulativeSink) Rate(*metrics.Desc, *sketch.Rate, bool)        {}
func (cumulativeSink) Histogram(*metrics.Desc, *sketch.Histogram)    {}

// ambiguousHandlers returns the handler instances of the policy that share their tap and
// schema with another one: their series keep the handler label, which /metrics otherwise
// omits (the reference's labels), so that no two series are the same.
func (a *Agent) ambiguousHandlers(policy string) map[string]bool {
	ps, binds, ok := a.snapshot(policy)
	if !ok || ps.merge {
		return nil
	}
	byKey := map[string][]string{}
	for _, b := range binds {
		for i, sp := range b.att.Specs() {
			k := b.tap + "\x00" + sp.Schema()
			byKey[k] = append(byKey[k], b.names[i])
		}
	}
	var out map[string]bool
	for _, names := range byKey {
		if len(names) > 1 {
			if out == nil {
				out = map[string]bool{}
			}
			for _, n := range names {
				out[n] = true
			}
		}
	}
	return out
}

// cumulativeView is one consistent snapshot of the accumulator, as /metrics renders it.
type cumulativeView struct {
	instance string          // --prom-instance, "" for none
	series   []export.Series // sorted by name, then labels
	keep     map[string]bool // handler instances whose series keep the handler label
	stats    export.Stats
}

// view collects the buckets closed since the last poll and snapshots the totals.
func (c *cumulative) view(instance string) *cumulativeView {
	c.collect()
	acc := c.col.Accumulator()
	return &cumulativeView{instance: instance, series: acc.Snapshot(), keep: c.a.ambiguousHandlers(c.policy), stats: acc.Stats()}
}

// labels returns a series' labels as /metrics gives them: instance first, then the series'
// own (sorted) without handler unless it is needed.
func (v *cumulativeView) labels(s *export.Series) []export.Label {
	out := make([]export.Label, 0, len(s.Labels)+1)
	if v.instance != "" {
		out = append(out, export.Label{Name: "instance", Value: utf8Text(v.instance)})
	}
	for _, l := range s.Labels {
		if l.Name == "handler" && !v.keep[l.Value] {
			continue
		}
		if l.Name == "instance" && v.instance != "" {
			l.Name = "exported_instance" // as Prom renames a clashing label
		}
		out = append(out, l)
	}
	return out
}

// each calls fn for every series of the kind whose family name is not taken, once per label
// set (a repeated one is skipped: the exposition forbids duplicates).
func (v *cumulativeView) each(kind export.Kind, taken func(name string) bool, fn func(s *export.Series, labels []export.Label)) {
	seen := map[string]bool{}
	for i := range v.series {
		s := &v.series[i]
		if s.Kind != kind || taken(s.Name) {
			continue
		}
		ls := v.labels(s)
		var key strings.Builder
		key.WriteString(s.Name)
		for _, l := range ls {
			key.WriteString("\x00" + l.Name + "\x00" + l.Value)
		}
		if seen[key.String()] {
			continue
		}
		seen[key.String()] = true
		fn(s, ls)
	}
}

// appendText appends to out the _total counter families in text format 0.0.4, leaving out a
// name that a family of the text before already has (none does: see internal/export's names).
func (v *cumulativeView) appendText(out, before []byte) []byte {
	taken := typeNames(before)
	last := ""
	v.each(export.KindCounter, func(n string) bool { return taken[n] }, func(s *export.Series, ls []export.Label) {
		if s.Name != last {
			last = s.Name
			out = fmt.Appendf(out, "# HELP %s %s\n# TYPE %s counter\n", s.Name, escapeHelp(s.Help+" (running total since the agent started, closed buckets)"), s.Name)
		}
		out = append(out, s.Name...)
		out = appendTextLabels(out, ls)
		out = append(out, ' ')
		out = strconv.AppendUint(out, s.Int, 10)
		out = append(out, '\n')
	})
	return out
}

// appendHealth appends the accumulator's own counters.
func (v *cumulativeView) appendHealth(out []byte) []byte {
	var ls []export.Label
	if v.instance != "" {
		ls = []export.Label{{Name: "instance", Value: utf8Text(v.instance)}}
	}
	for _, m := range []struct {
		name, typ, help string
		v               uint64
	}{
		{"pktvisord_cumulative_buckets_total", "counter", "Closed buckets of the default policy's units added to the cumulative families", v.stats.Buckets},
		{"pktvisord_cumulative_series", "gauge", "Series held for the cumulative families", uint64(v.stats.Series)},
		{"pktvisord_cumulative_series_dropped_total", "counter", "Cumulative series refused because the series cap was reached", v.stats.DroppedSeries},
	} {
		out = fmt.Appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s", m.name, m.help, m.name, m.typ, m.name)
		out = appendTextLabels(out, ls)
		out = fmt.Appendf(out, " %d\n", m.v)
	}
	return out
}

// typeNames returns the family names of the # TYPE lines of an exposition text.
func typeNames(text []byte) map[string]bool {
	names := map[string]bool{}
	for line := range bytes.Lines(text) {
		if rest, ok := bytes.CutPrefix(line, []byte("# TYPE ")); ok {
			if f := bytes.Fields(rest); len(f) > 0 {
				names[string(f[0])] = true
			}
		}
	}
	return names
}

func appendTextLabels(out []byte, ls []export.Label) []byte {
	if len(ls) == 0 {
		return out
	}
	out = append(out, '{')
	for i, l := range ls {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, l.Name...)
		out = append(out, '=', '"')
		out = append(out, labelValueEscaper.Replace(l.Value)...)
		out = append(out, '"')
	}
	return append(out, '}')
}

var (
	labelValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper       = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeHelp(s string) string { return helpEscaper.Replace(utf8Text(s)) }

// utf8Text writes each byte of s that is not part of valid UTF-8 as the text \xNN, as
// metrics.Prom and internal/export do, so the instance label is the same string everywhere.
func utf8Text(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return b.String()
}

// encode converts a /metrics text answer into format (a MetricFamily format: protobuf
// delimited, text or compact text) by parsing it with the official parser, so that there is
// one renderer, and adds the native histograms, which the text format cannot carry. Families
// are sorted by name.
func (v *cumulativeView) encode(text []byte, format expfmt.Format) ([]byte, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("metrics: re-reading the text exposition: %w", err)
	}
	for _, f := range v.nativeFamilies(func(n string) bool { return fams[n] != nil }) {
		fams[f.GetName()] = f
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		if err := enc.Encode(fams[name]); err != nil {
			return nil, fmt.Errorf("metrics: encoding %s: %w", name, err)
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			return nil, fmt.Errorf("metrics: encoding: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// nativeFamilies returns a HISTOGRAM family of native histograms per accumulated sketch.
func (v *cumulativeView) nativeFamilies(taken func(name string) bool) []*dto.MetricFamily {
	var out []*dto.MetricFamily
	v.each(export.KindExpHistogram, taken, func(s *export.Series, ls []export.Label) {
		if len(out) == 0 || out[len(out)-1].GetName() != s.Name {
			out = append(out, &dto.MetricFamily{Name: proto.String(s.Name), Type: dto.MetricType_HISTOGRAM.Enum(),
				Help: proto.String(utf8Text(s.Help) + " (cumulative native histogram since the agent started, closed buckets)")})
		}
		m := &dto.Metric{Histogram: nativeHistogram(s.Exp)}
		for _, l := range ls {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
		}
		f := out[len(out)-1]
		f.Metric = append(f.Metric, m)
	})
	return out
}

// nativeHistogram converts an exponential histogram into a Prometheus native histogram. The
// schema is the scale; Prometheus numbers a bucket by its upper bound (bucket i is
// (2^((i-1)·2^-s), 2^(i·2^-s)]) where OTLP and ExpHistogram number it by its lower bound, hence
// the +1. Runs of empty buckets split the spans; counts are deltas from the previous bucket.
func nativeHistogram(h *export.ExpHistogram) *dto.Histogram {
	out := &dto.Histogram{
		SampleCount:   proto.Uint64(h.Count),
		SampleSum:     proto.Float64(h.Sum),
		Schema:        proto.Int32(h.Scale),
		ZeroThreshold: proto.Float64(nativeZeroThreshold),
		ZeroCount:     proto.Uint64(h.ZeroCount),
	}
	if math.IsNaN(h.Sum) || math.IsInf(h.Sum, 0) {
		out.SampleSum = proto.Float64(0)
	}
	var prev int64
	next := int32(0) // the index after the previous span (the first span's offset is absolute)
	for i := 0; i < len(h.Counts); {
		if h.Counts[i] == 0 {
			i++
			continue
		}
		j := i
		for j < len(h.Counts) && h.Counts[j] != 0 {
			c := int64(min(h.Counts[j], math.MaxInt64))
			out.PositiveDelta = append(out.PositiveDelta, c-prev)
			prev = c
			j++
		}
		start := h.Offset + int32(i) + 1
		out.PositiveSpan = append(out.PositiveSpan, &dto.BucketSpan{Offset: proto.Int32(start - next), Length: proto.Uint32(uint32(j - i))})
		next = h.Offset + int32(j) + 1
		i = j
	}
	return out
}
