package metrics

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Prom is a Sink that renders buckets as Prometheus text exposition format 0.0.4, with the
// reference's metric names, types and label order (spec §2.0, §3):
//
//   - name = Desc.Schema + "_" + Desc.Name joined by "_";
//   - labels: instance="<--prom-instance>" first, then every other label (the SetLabels ones,
//     a top-N item label with lat/lon, quantile, le) sorted by key, as the reference's
//     std::map did;
//   - Counter, Cardinality and TopN are gauges, Quantiles and Rate summaries, Histogram a
//     histogram.
//
// One Prom collects the renders of many handlers (call SetLabels before each) and WriteTo
// prints them grouped by family: one # HELP and one # TYPE per name, families in first-seen
// order, samples of a family in call order. The reference printed HELP/TYPE again for every
// handler instance, which the exposition format forbids (the official parser rejects a second
// TYPE line for a name); grouping is the one deliberate difference in layout.
//
// Output is always valid exposition text, where the reference's was not:
//
//   - label values are escaped (\\, \", \n); the reference wrote qnames raw, so a name with a
//     quote broke the scrape;
//   - label values must be UTF-8: each byte that is not part of a valid UTF-8 sequence is
//     written as the four characters \xNN (hex), so distinct byte strings stay distinct series
//     (a U+FFFD replacement would merge them into duplicate samples). DNS names never need
//     this (dnswire prints non-printable bytes as \DDD); only external strings could;
//   - metric and label names are reduced to [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':'),
//     other bytes become '_';
//   - a label key that collides with an earlier one (instance, a SetLabels key, another
//     label of the sample) is renamed exported_<key>, as Prometheus itself does for target
//     label conflicts, so a sample never repeats a label name;
//   - a name already used by a family of another type keeps the first type; the later
//     samples are dropped (one name cannot carry two types).
//
// Numbers: integers (counters, estimates, counts, integer quantiles) are printed exactly.
// Real-valued quantiles (ratios) are printed like C++ ostream defaults, %g with 6 significant
// digits (1.23457e+06, 1e-05, 0.333333), which strconv 'g' with precision 6 reproduces digit
// for digit; NaN and ±Inf are printed NaN/+Inf/-Inf (C++ would print nan/inf, which the
// format does not accept). Histogram bucket counts are exact integers: the reference derived
// them as doubles (CDF × n) and so printed 6 significant digits, lossy beyond 999999.
//
// A Prom is not safe for concurrent use. Its buffers are kept by Reset, so a scrape handler
// can reuse one Prom.
type Prom struct {
	instance string // rendered `instance="…"`, or "" for none
	base     []promLabel
	fams     []*promFamily
	byName   map[string]*promFamily

	name  []byte
	num   []byte
	extra []promLabel
	merge []promLabel
	qs    []float64
	hb    []sketch.Bucket
	out   []byte
}

// promLabel is a label key and its value; pair is the rendered `key="escaped value"`.
type promLabel struct {
	key, value string
	pair       []byte
}

type promFamily struct {
	name, help, typ string
	body            []byte
}

const promInstanceLabel = "instance"

// NewProm returns an empty Prom. A non-empty instance (--prom-instance) is added as the
// first label, instance="<id>", of every sample.
func NewProm(instance string) *Prom {
	p := &Prom{byName: map[string]*promFamily{}}
	if instance != "" {
		p.instance = string(appendPair(nil, promInstanceLabel, instance))
	}
	return p
}

// SetLabels sets the labels (policy, handler, tap, direction…) of the samples rendered by the
// following calls, replacing the previous ones. The map is copied.
func (p *Prom) SetLabels(l map[string]string) {
	p.base = p.base[:0]
	// Sort by the original key first so that, when two keys sanitize to the same name, which
	// one is renamed does not depend on map order.
	sorted := make([]promLabel, 0, len(l))
	for k, v := range l {
		sorted = append(sorted, promLabel{key: k, value: v})
	}
	slices.SortFunc(sorted, func(a, b promLabel) int { return strings.Compare(a.key, b.key) })
	for i := range sorted {
		sorted[i].key = sanitizeName(sorted[i].key, false)
	}
	for _, lb := range sorted {
		lb.key = p.uniqueKey(lb.key, p.base)
		lb.pair = appendPair(nil, lb.key, lb.value)
		p.base = insertSorted(p.base, lb)
	}
}

// Reset forgets every family (labels and buffers are kept).
func (p *Prom) Reset() {
	p.fams = p.fams[:0]
	clear(p.byName)
}

// uniqueKey renames key to exported_<key> (repeatedly) while it collides with instance or a
// key of taken.
func (p *Prom) uniqueKey(key string, taken []promLabel) string {
	for {
		clash := p.instance != "" && key == promInstanceLabel
		for i := range taken {
			if taken[i].key == key {
				clash = true
				break
			}
		}
		if !clash {
			return key
		}
		key = "exported_" + key
	}
}

func insertSorted(ls []promLabel, lb promLabel) []promLabel {
	i, _ := slices.BinarySearchFunc(ls, lb.key, func(a promLabel, k string) int { return strings.Compare(a.key, k) })
	return slices.Insert(ls, i, lb)
}

// family returns the family of d, creating it (first-seen order) with type typ; nil when the
// name already belongs to a family of another type.
func (p *Prom) family(d *Desc, typ string) *promFamily {
	p.name = appendMetricName(p.name[:0], d)
	if f, ok := p.byName[string(p.name)]; ok {
		if f.typ != typ {
			return nil
		}
		return f
	}
	f := &promFamily{name: string(p.name), help: d.Help, typ: typ}
	p.byName[f.name] = f
	p.fams = append(p.fams, f)
	return f
}

// sample appends one sample line to f: name+suffix, the labels (instance, then SetLabels and
// extra merged by key) and the value in p.num.
func (p *Prom) sample(f *promFamily, suffix string, extra []promLabel) {
	// Extra keys that clash with instance, SetLabels or an earlier extra are renamed; then the
	// few extras are sorted in among the (sorted) SetLabels.
	p.merge = append(p.merge[:0], p.base...)
	for i := range extra {
		e := &extra[i]
		e.key = p.uniqueKey(sanitizeName(e.key, false), p.merge)
		e.pair = appendPair(e.pair[:0], e.key, e.value)
		p.merge = insertSorted(p.merge, *e)
	}
	b := append(f.body, f.name...)
	b = append(b, suffix...)
	if p.instance != "" || len(p.merge) > 0 {
		b = append(b, '{')
		sep := false
		if p.instance != "" {
			b = append(b, p.instance...)
			sep = true
		}
		for _, lb := range p.merge {
			if sep {
				b = append(b, ',')
			}
			b = append(b, lb.pair...)
			sep = true
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = append(b, p.num...)
	f.body = append(b, '\n')
}

// extras returns p's scratch extra-label slice holding the given key/value pairs (its pair
// buffers are reused).
func (p *Prom) extras(kv ...string) []promLabel {
	n := len(kv) / 2
	if cap(p.extra) < n {
		p.extra = append(p.extra[:cap(p.extra)], make([]promLabel, n-cap(p.extra))...)
	}
	p.extra = p.extra[:n]
	for i := range n {
		p.extra[i].key, p.extra[i].value = kv[2*i], kv[2*i+1]
	}
	return p.extra
}

func (p *Prom) gauge(d *Desc, v uint64) {
	f := p.family(d, "gauge")
	if f == nil {
		return
	}
	p.num = strconv.AppendUint(p.num[:0], v, 10)
	p.sample(f, "", nil)
}

// Counter renders a counter as a gauge, always (even 0), as the reference did.
func (p *Prom) Counter(d *Desc, v uint64) { p.gauge(d, v) }

// Cardinality renders a distinct-count estimate as a gauge.
func (p *Prom) Cardinality(d *Desc, v uint64) { p.gauge(d, v) }

// TopN renders one gauge sample per item, labelled <label>="<name>" (plus lat and lon for
// geo rows that have both); nothing when items is empty.
func (p *Prom) TopN(d *Desc, label string, items []TopItem) {
	if len(items) == 0 {
		return
	}
	f := p.family(d, "gauge")
	if f == nil {
		return
	}
	for _, it := range items {
		var extra []promLabel
		if it.Lat != "" && it.Lon != "" {
			extra = p.extras(label, it.Name, "lat", it.Lat, "lon", it.Lon)
		} else {
			extra = p.extras(label, it.Name)
		}
		p.num = strconv.AppendUint(p.num[:0], it.Estimate, 10)
		p.sample(f, "", extra)
	}
}

// Quantiles renders a summary: quantile "0.5", "0.9", "0.95", "0.99", then _sum and _count;
// nothing when q is empty. isFloat selects real-valued printing (else values are rounded to
// integers, the reference's Quantile<uint64>).
func (p *Prom) Quantiles(d *Desc, q *sketch.Quantiles, isFloat bool) {
	if q == nil || q.Count() == 0 {
		return
	}
	p.summary(d, q, isFloat)
}

// Rate renders the per-second rate quantiles as a summary (integers); the live value is not
// exported (the reference's Prometheus output had none). Nothing when no second completed.
func (p *Prom) Rate(d *Desc, r *sketch.Rate, _ bool) {
	if r == nil || r.Count() == 0 {
		return
	}
	p.summary(d, r.Distribution(), false)
}

func (p *Prom) summary(d *Desc, q *sketch.Quantiles, isFloat bool) {
	f := p.family(d, "summary")
	if f == nil {
		return
	}
	p.qs = q.Quantiles(QuantileFractions, p.qs[:0])
	for i, v := range p.qs {
		p.num = appendQuantileValue(p.num[:0], v, isFloat)
		p.sample(f, "", p.extras("quantile", QuantileLabels[i]))
	}
	// Reference quirk kept for compatibility: _sum is the largest value recorded
	// (DataSketches' get_max_item()), not the sum, so dashboards built on pktvisor keep their
	// meaning. sum/count is therefore not a mean.
	p.num = appendQuantileValue(p.num[:0], q.Max(), isFloat)
	p.sample(f, "_sum", nil)
	p.num = strconv.AppendUint(p.num[:0], q.Count(), 10)
	p.sample(f, "_count", nil)
}

// Histogram renders cumulative _bucket samples for the non-empty bounds, then le="+Inf", then
// _count; nothing when h is empty. There is no _sum, as in the reference: sketch.Histogram
// keeps counts per bound only, so the sum is unknown (the format allows omitting it).
func (p *Prom) Histogram(d *Desc, h *sketch.Histogram) {
	if h == nil || h.Count() == 0 {
		return
	}
	f := p.family(d, "histogram")
	if f == nil {
		return
	}
	p.hb = h.Buckets(p.hb[:0])
	for _, bk := range p.hb {
		le := "+Inf"
		if !bk.Inf {
			le = strconv.FormatUint(bk.UpperBound, 10)
		}
		p.num = strconv.AppendUint(p.num[:0], bk.Cumulative, 10)
		p.sample(f, "_bucket", p.extras("le", le))
	}
	p.num = strconv.AppendUint(p.num[:0], h.Count(), 10)
	p.sample(f, "_count", nil)
}

// WriteTo writes every family collected so far in one Write. It implements io.WriterTo.
func (p *Prom) WriteTo(w io.Writer) (int64, error) {
	b := p.out[:0]
	for _, f := range p.fams {
		if len(f.body) == 0 {
			continue
		}
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = appendHelp(b, f.help)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = append(b, f.typ...)
		b = append(b, '\n')
		b = append(b, f.body...)
	}
	p.out = b
	n, err := w.Write(b)
	if err != nil {
		return int64(n), fmt.Errorf("metrics: writing prometheus text: %w", err)
	}
	return int64(n), nil
}

// appendMetricName appends Schema_Name[0]_Name[1]… sanitized to a legacy metric name.
func appendMetricName(dst []byte, d *Desc) []byte {
	start := len(dst)
	dst = append(dst, d.Schema...)
	for _, n := range d.Name {
		if len(dst) > start {
			dst = append(dst, '_')
		}
		dst = append(dst, n...)
	}
	return sanitizeBytes(dst, start, true)
}

// sanitizeName maps s onto a legacy Prometheus name: [a-zA-Z_][a-zA-Z0-9_]* (':' allowed too
// in metric names); other bytes become '_', a leading digit gets a '_' prefix, "" becomes "_".
func sanitizeName(s string, metric bool) string {
	if validName(s, metric) {
		return s
	}
	return string(sanitizeBytes([]byte(s), 0, metric))
}

func validName(s string, metric bool) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i], metric) {
			return false
		}
	}
	return true
}

func sanitizeBytes(b []byte, start int, metric bool) []byte {
	if len(b) == start || isDigit(b[start]) {
		b = slices.Insert(b, start, '_')
	}
	for i := start; i < len(b); i++ {
		if !nameByte(b[i], metric) {
			b[i] = '_'
		}
	}
	return b
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func nameByte(c byte, metric bool) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || isDigit(c) || metric && c == ':'
}

// appendPair appends key="value" with the value escaped.
func appendPair(dst []byte, key, value string) []byte {
	dst = append(dst, key...)
	dst = append(dst, '=', '"')
	dst = appendLabelValue(dst, value)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendLabelValue escapes a label value: \\, \", \n as the format requires, and each byte of
// invalid UTF-8 as the text \xNN (whose backslash is itself escaped).
func appendLabelValue(dst []byte, s string) []byte { return appendEscaped(dst, s, true) }

// appendHelp escapes HELP text: the same, except that quotes are literal there.
func appendHelp(dst []byte, s string) []byte { return appendEscaped(dst, s, false) }

func appendEscaped(dst []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\\':
				dst = append(dst, '\\', '\\')
			case c == '"' && quote:
				dst = append(dst, '\\', '"')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, '\\', '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			i++
			continue
		}
		dst = append(dst, s[i:i+size]...)
		i += size
	}
	return dst
}

// appendQuantileValue prints a quantile: rounded to an integer for integer metrics (the
// reference's Quantile<uint64>, and the same rounding as the JSON sink), else as C++ ostream
// would (see Prom).
func appendQuantileValue(dst []byte, v float64, isFloat bool) []byte {
	if !isFloat {
		switch {
		case v < 0 || math.IsNaN(v):
			return append(dst, '0')
		case v < 1<<64:
			return strconv.AppendUint(dst, uint64(math.Round(v)), 10)
		}
		// Beyond uint64 (values are clamped near 1.7e308): fall through to %g.
	}
	return appendDouble(dst, v)
}

// appendDouble prints v as C++ `ostream << double` with default flags (%g, precision 6),
// except that NaN and infinities use the exposition format's spelling.
func appendDouble(dst []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	}
	return strconv.AppendFloat(dst, v, 'g', 6, 64)
}
