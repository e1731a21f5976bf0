package export

import (
	"fmt"
	"math"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// Resource describes the pushing agent (OTLP resource attributes; remote write job and
// instance labels).
type Resource struct {
	ServiceName string // service.name, "pktvisord"
	Instance    string // service.instance.id (OTLP), instance (remote write)
	Version     string // service.version
}

// EncodeOTLP returns the body of an OTLP/HTTP protobuf export: an ExportMetricsServiceRequest
// with one ResourceMetrics (the agent) holding one ScopeMetrics per policy, named
// pktvisor/<policy> with attribute policy_name (as the reference), whose metrics carry the
// series in data points (labels become attributes; policy stays one too, so a backend that
// ignores scopes still tells policies apart). Counters are cumulative monotonic Sums,
// exponential and explicit histograms cumulative, all starting at start; every point is
// stamped now.
//
// The body is encoded as MetricsData, which is wire-identical to ExportMetricsServiceRequest
// (field 1, repeated ResourceMetrics): that keeps the collector package, and with it gRPC, out
// of the build.
func EncodeOTLP(series []Series, res Resource, start, now time.Time) ([]byte, error) {
	startNs, nowNs := unixNano(start), unixNano(now)
	rattrs := []*commonpb.KeyValue{strAttr("service.name", res.ServiceName)}
	if res.Instance != "" {
		rattrs = append(rattrs, strAttr("service.instance.id", res.Instance))
	}
	if res.Version != "" {
		rattrs = append(rattrs, strAttr("service.version", res.Version))
	}
	rm := &metricspb.ResourceMetrics{Resource: &resourcepb.Resource{Attributes: rattrs}}
	scopes := map[string]*metricspb.ScopeMetrics{}
	metricsOf := map[*metricspb.ScopeMetrics]map[string]*metricspb.Metric{}
	for i := range series {
		s := &series[i]
		policy := labelValue(s.Labels, "policy")
		sm := scopes[policy]
		if sm == nil {
			sm = &metricspb.ScopeMetrics{Scope: &commonpb.InstrumentationScope{
				Name: "pktvisor/" + policy, Version: res.Version,
				Attributes: []*commonpb.KeyValue{strAttr("policy_name", policy)},
			}}
			scopes[policy] = sm
			metricsOf[sm] = map[string]*metricspb.Metric{}
			rm.ScopeMetrics = append(rm.ScopeMetrics, sm)
		}
		m := metricsOf[sm][s.Name]
		if m == nil {
			m = newOTLPMetric(s)
			metricsOf[sm][s.Name] = m
			sm.Metrics = append(sm.Metrics, m)
		}
		if err := addOTLPPoint(m, s, attrs(s.Labels), startNs, nowNs); err != nil {
			return nil, err
		}
	}
	body, err := proto.Marshal(&metricspb.MetricsData{ResourceMetrics: []*metricspb.ResourceMetrics{rm}})
	if err != nil {
		return nil, fmt.Errorf("export: encoding OTLP: %w", err)
	}
	return body, nil
}

func newOTLPMetric(s *Series) *metricspb.Metric {
	m := &metricspb.Metric{Name: s.Name, Description: s.Help}
	cum := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	switch s.Kind {
	case KindCounter:
		m.Data = &metricspb.Metric_Sum{Sum: &metricspb.Sum{AggregationTemporality: cum, IsMonotonic: true}}
	case KindGauge:
		m.Data = &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{}}
	case KindExpHistogram:
		m.Data = &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: &metricspb.ExponentialHistogram{AggregationTemporality: cum}}
	case KindHistogram:
		m.Data = &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{AggregationTemporality: cum}}
	}
	return m
}

// addOTLPPoint appends s's data point to m (created for s's name: same kind, as the
// Accumulator keeps one kind per name).
func addOTLPPoint(m *metricspb.Metric, s *Series, attrs []*commonpb.KeyValue, startNs, nowNs uint64) error {
	switch d := m.Data.(type) {
	case *metricspb.Metric_Sum:
		d.Sum.DataPoints = append(d.Sum.DataPoints, &metricspb.NumberDataPoint{Attributes: attrs,
			StartTimeUnixNano: startNs, TimeUnixNano: nowNs, Value: &metricspb.NumberDataPoint_AsInt{AsInt: clampInt(s.Int)}})
	case *metricspb.Metric_Gauge:
		p := &metricspb.NumberDataPoint{Attributes: attrs, TimeUnixNano: nowNs}
		if s.IsFloat {
			p.Value = &metricspb.NumberDataPoint_AsDouble{AsDouble: s.Float}
		} else {
			p.Value = &metricspb.NumberDataPoint_AsInt{AsInt: clampInt(s.Int)}
		}
		d.Gauge.DataPoints = append(d.Gauge.DataPoints, p)
	case *metricspb.Metric_ExponentialHistogram:
		h := s.Exp
		off, counts := h.trimmed()
		p := &metricspb.ExponentialHistogramDataPoint{Attributes: attrs, StartTimeUnixNano: startNs, TimeUnixNano: nowNs,
			Count: h.Count, Sum: finite(h.Sum), Scale: h.Scale, ZeroCount: h.ZeroCount,
			Positive: &metricspb.ExponentialHistogramDataPoint_Buckets{Offset: off, BucketCounts: counts}}
		if h.Count > 0 {
			p.Min, p.Max = ptr(h.Min), ptr(h.Max)
		}
		d.ExponentialHistogram.DataPoints = append(d.ExponentialHistogram.DataPoints, p)
	case *metricspb.Metric_Histogram:
		bounds, counts := s.Hist.Buckets()
		d.Histogram.DataPoints = append(d.Histogram.DataPoints, &metricspb.HistogramDataPoint{Attributes: attrs,
			StartTimeUnixNano: startNs, TimeUnixNano: nowNs, Count: s.Hist.Count, BucketCounts: counts, ExplicitBounds: bounds})
	default:
		return fmt.Errorf("export: series %s: unknown kind %v", s.Name, s.Kind)
	}
	return nil
}

func attrs(ls []Label) []*commonpb.KeyValue {
	out := make([]*commonpb.KeyValue, len(ls))
	for i, l := range ls {
		out[i] = strAttr(l.Name, l.Value)
	}
	return out
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func labelValue(ls []Label, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func clampInt(v uint64) int64 { return int64(min(v, math.MaxInt64)) }

func ptr(v float64) *float64 { return &v }

// finite returns v, or nil (no sum) for an overflowed +Inf sum.
func finite(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return &v
}
