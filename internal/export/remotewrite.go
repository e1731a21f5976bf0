package export

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Prometheus remote write 1.0 (prompb) field numbers.
const (
	wrTimeseries = 1 // WriteRequest.timeseries
	wrMetadata   = 3 // WriteRequest.metadata

	tsLabels     = 1 // TimeSeries.labels
	tsSamples    = 2 // TimeSeries.samples
	tsHistograms = 4 // TimeSeries.histograms

	pbLabelName  = 1
	pbLabelValue = 2

	sampleValue     = 1 // double
	sampleTimestamp = 2 // int64, milliseconds

	// Histogram (native).
	nhCountInt      = 1  // uint64
	nhSum           = 3  // double
	nhSchema        = 4  // sint32
	nhZeroThreshold = 5  // double
	nhZeroCountInt  = 6  // uint64
	nhPositiveSpans = 11 // BucketSpan
	nhPositiveDelta = 12 // packed sint64
	nhTimestamp     = 15 // int64

	spanOffset = 1 // sint32
	spanLength = 2 // uint32

	mdType = 1 // MetricMetadata.type
	mdName = 2 // metric_family_name
	mdHelp = 4

	mdCounter   = 1
	mdGauge     = 2
	mdHistogram = 3
)

// ClassicScale is the exponential scale of the quantile histograms pushed as classic
// histograms (EncodeRemoteWrite with classic): buckets grow by 2^(1/8) ≈ 1.09, 8 le series per
// doubling, and a quantile interpolated inside a bucket is off by at most about 9 % (plus the
// sketch's 1 %). Finer would multiply the series a classic histogram costs.
const ClassicScale = 3

// EncodeRemoteWrite returns the body of a Prometheus remote write 1.0 request: a
// snappy-compressed (block format) WriteRequest with one sample per series stamped now, and
// metadata (type, help) per family. Every series gets the labels job="<ServiceName>" and,
// when set, instance="<Instance>", so that agents pushing into one TSDB stay apart, as a scrape
// would label them.
//
//   - counters: <metric>_total, the running total;
//   - gauges: the last closed bucket's value;
//   - quantile sketches: native histograms (schema = the exponential scale, integer counts,
//     zero threshold 0), which VictoriaMetrics v1.154.1 ingests from remote write
//     (lib/prompb: it stores them as <name>_count, <name>_sum and <name>_bucket{vmrange});
//     Prometheus needs its native histograms feature on, or refuses the whole request (2.42:
//     HTTP 500 "native histograms are disabled"). With classic, they are classic cumulative
//     histograms instead: <name>_bucket{le} at ClassicScale over the buckets that ever held a
//     value (le="0" for zeros), +Inf, <name>_sum, <name>_count;
//   - pktvisor histograms: classic cumulative <name>_bucket{le}, _count (no _sum: it is not
//     known), le over the bounds that ever held a value, then +Inf.
func EncodeRemoteWrite(series []Series, res Resource, now time.Time, classic bool) []byte {
	ts := now.UnixMilli()
	var b []byte
	var msg, sub []byte
	var lbuf []Label
	base := []Label{{"job", res.ServiceName}}
	if res.Instance != "" {
		base = append(base, Label{"instance", res.Instance})
	}
	families := map[string]bool{}
	for i := range series {
		s := &series[i]
		if !families[s.Name] {
			families[s.Name] = true
			b = appendMetadata(b, s)
		}
		switch s.Kind {
		case KindCounter, KindGauge:
			v := float64(s.Int)
			if s.IsFloat {
				v = s.Float
			}
			lbuf = rwLabels(lbuf[:0], s.Name, base, s.Labels)
			b, msg = appendSampleSeries(b, msg, lbuf, v, ts)
		case KindExpHistogram:
			if classic {
				h := s.Exp
				if h.Scale > ClassicScale {
					h = h.Clone()
					h.downscale(h.Scale - ClassicScale)
				}
				bucket := func(le string, v uint64) {
					lbuf = rwLabels(lbuf[:0], s.Name+"_bucket", base, s.Labels, Label{"le", le})
					b, msg = appendSampleSeries(b, msg, lbuf, float64(v), ts)
				}
				cum := h.ZeroCount
				if cum > 0 {
					bucket("0", cum)
				}
				off, counts := h.trimmed()
				for k, c := range counts {
					if c != 0 {
						cum += c
						bucket(strconv.FormatFloat(ExpLowerBound(off+int32(k)+1, h.Scale), 'g', -1, 64), cum)
					}
				}
				bucket("+Inf", h.Count)
				lbuf = rwLabels(lbuf[:0], s.Name+"_sum", base, s.Labels)
				b, msg = appendSampleSeries(b, msg, lbuf, h.Sum, ts)
				lbuf = rwLabels(lbuf[:0], s.Name+"_count", base, s.Labels)
				b, msg = appendSampleSeries(b, msg, lbuf, float64(h.Count), ts)
				continue
			}
			lbuf = rwLabels(lbuf[:0], s.Name, base, s.Labels)
			msg = appendLabels(msg[:0], lbuf)
			sub = appendNativeHistogram(sub[:0], s.Exp, ts)
			msg = protowire.AppendTag(msg, tsHistograms, protowire.BytesType)
			msg = protowire.AppendBytes(msg, sub)
			b = protowire.AppendTag(b, wrTimeseries, protowire.BytesType)
			b = protowire.AppendBytes(b, msg)
		case KindHistogram:
			bounds, counts := s.Hist.Buckets()
			var cum uint64
			for j, c := range counts {
				cum += c
				le := "+Inf"
				if j < len(bounds) {
					le = strconv.FormatFloat(bounds[j], 'f', -1, 64)
				}
				lbuf = rwLabels(lbuf[:0], s.Name+"_bucket", base, s.Labels, Label{"le", le})
				b, msg = appendSampleSeries(b, msg, lbuf, float64(cum), ts)
			}
			lbuf = rwLabels(lbuf[:0], s.Name+"_count", base, s.Labels)
			b, msg = appendSampleSeries(b, msg, lbuf, float64(s.Hist.Count), ts)
		}
	}
	return snappy.Encode(nil, b)
}

// rwLabels builds the sorted label set __name__, base, the series' labels and extra; a series
// or extra label that clashes with an earlier one is renamed exported_<name>.
func rwLabels(dst []Label, name string, base, ls []Label, extra ...Label) []Label {
	dst = append(dst, Label{"__name__", name})
	dst = append(dst, base...)
	for _, group := range [][]Label{ls, extra} {
		for _, l := range group {
			for slices.ContainsFunc(dst, func(x Label) bool { return x.Name == l.Name }) {
				l.Name = "exported_" + l.Name
			}
			dst = append(dst, l)
		}
	}
	sortLabels(dst)
	return dst
}

func appendLabels(msg []byte, ls []Label) []byte {
	var lb []byte
	for _, l := range ls {
		lb = protowire.AppendTag(lb[:0], pbLabelName, protowire.BytesType)
		lb = protowire.AppendString(lb, l.Name)
		lb = protowire.AppendTag(lb, pbLabelValue, protowire.BytesType)
		lb = protowire.AppendString(lb, l.Value)
		msg = protowire.AppendTag(msg, tsLabels, protowire.BytesType)
		msg = protowire.AppendBytes(msg, lb)
	}
	return msg
}

// appendSampleSeries appends a TimeSeries with one sample to b; msg is scratch.
func appendSampleSeries(b, msg []byte, ls []Label, v float64, ts int64) ([]byte, []byte) {
	msg = appendLabels(msg[:0], ls)
	var sm [20]byte
	s := protowire.AppendTag(sm[:0], sampleValue, protowire.Fixed64Type)
	s = protowire.AppendFixed64(s, math.Float64bits(v))
	s = protowire.AppendTag(s, sampleTimestamp, protowire.VarintType)
	s = protowire.AppendVarint(s, uint64(ts))
	msg = protowire.AppendTag(msg, tsSamples, protowire.BytesType)
	msg = protowire.AppendBytes(msg, s)
	b = protowire.AppendTag(b, wrTimeseries, protowire.BytesType)
	return protowire.AppendBytes(b, msg), msg
}

// appendNativeHistogram encodes h as a prompb Histogram. Prometheus numbers buckets by their
// upper bound (bucket i is (base^(i-1), base^i]), OTLP by their lower bound, hence the +1.
// Runs of empty buckets split spans; counts are deltas from the previous bucket.
func appendNativeHistogram(b []byte, h *ExpHistogram, ts int64) []byte {
	b = protowire.AppendTag(b, nhCountInt, protowire.VarintType)
	b = protowire.AppendVarint(b, h.Count)
	b = protowire.AppendTag(b, nhSum, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(h.Sum))
	b = protowire.AppendTag(b, nhSchema, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(h.Scale)))
	b = protowire.AppendTag(b, nhZeroThreshold, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 0)
	b = protowire.AppendTag(b, nhZeroCountInt, protowire.VarintType)
	b = protowire.AppendVarint(b, h.ZeroCount)

	off, counts := h.trimmed()
	var deltas []byte
	var prev int64
	// The first span's offset is its start index, each next one's the gap after the previous.
	var next int32
	for i := 0; i < len(counts); {
		if counts[i] == 0 {
			i++
			continue
		}
		j := i
		for j < len(counts) && counts[j] != 0 {
			d := int64(counts[j]) - prev
			prev = int64(counts[j])
			deltas = protowire.AppendVarint(deltas, protowire.EncodeZigZag(d))
			j++
		}
		start := off + int32(i) + 1
		var span []byte
		span = protowire.AppendTag(span, spanOffset, protowire.VarintType)
		span = protowire.AppendVarint(span, protowire.EncodeZigZag(int64(start-next)))
		span = protowire.AppendTag(span, spanLength, protowire.VarintType)
		span = protowire.AppendVarint(span, uint64(j-i))
		b = protowire.AppendTag(b, nhPositiveSpans, protowire.BytesType)
		b = protowire.AppendBytes(b, span)
		next = off + int32(j) + 1
		i = j
	}
	if len(deltas) > 0 {
		b = protowire.AppendTag(b, nhPositiveDelta, protowire.BytesType)
		b = protowire.AppendBytes(b, deltas)
	}
	b = protowire.AppendTag(b, nhTimestamp, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(ts))
}

func appendMetadata(b []byte, s *Series) []byte {
	typ := uint64(mdGauge)
	switch s.Kind {
	case KindCounter:
		typ = mdCounter
	case KindExpHistogram, KindHistogram:
		typ = mdHistogram
	}
	var m []byte
	m = protowire.AppendTag(m, mdType, protowire.VarintType)
	m = protowire.AppendVarint(m, typ)
	m = protowire.AppendTag(m, mdName, protowire.BytesType)
	m = protowire.AppendString(m, s.Name)
	if s.Help != "" {
		m = protowire.AppendTag(m, mdHelp, protowire.BytesType)
		m = protowire.AppendString(m, s.Help)
	}
	b = protowire.AppendTag(b, wrMetadata, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}
