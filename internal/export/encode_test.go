package export

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// sampleAccumulator holds two buckets of one dns unit and one bucket of a unit of policy q.
func sampleAccumulator(t *testing.T) *Accumulator {
	a := NewAccumulator(0)
	commit(t, a, unitDNS, 60, bucket{total: 10, udp: 7, card: 4, top: []metrics.TopItem{{Name: "a.example", Estimate: 5}},
		lat: []float64{0, 100, 200, 300}, hist: []uint64{3, 10}})
	commit(t, a, unitDNS, 120, bucket{total: 5, udp: 5, card: 2, top: []metrics.TopItem{{Name: "a.example", Estimate: 4}},
		lat: []float64{400, 401}, hist: []uint64{10, 1 << 62}})
	commit(t, a, map[string]string{"policy": "q", "handler": "q-t-dns", "tap": "t"}, 60, bucket{total: 1})
	return a
}

// The OTLP body decodes with the official protobuf types, as ExportMetricsServiceRequest
// (MetricsData's wire twin), with one scope per policy and the documented shapes.
func TestEncodeOTLP(t *testing.T) {
	a := sampleAccumulator(t)
	start, now := time.Unix(1000, 0), time.Unix(2000, 5)
	body, err := EncodeOTLP(a.Snapshot(), Resource{ServiceName: "pktvisord", Instance: "node1", Version: "v9"}, start, now)
	if err != nil {
		t.Fatal(err)
	}
	// The request message has exactly one field, 1 = resource_metrics.
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if num != 1 || typ != protowire.BytesType {
			t.Fatalf("top-level field %d type %d", num, typ)
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatal("bad field")
		}
		b = b[m:]
	}
	var md metricspb.MetricsData
	if err := proto.Unmarshal(body, &md); err != nil {
		t.Fatal(err)
	}
	if len(md.ResourceMetrics) != 1 {
		t.Fatalf("%d resources", len(md.ResourceMetrics))
	}
	rm := md.ResourceMetrics[0]
	res := map[string]string{}
	for _, kv := range rm.Resource.Attributes {
		res[kv.Key] = kv.Value.GetStringValue()
	}
	if res["service.name"] != "pktvisord" || res["service.instance.id"] != "node1" || res["service.version"] != "v9" {
		t.Errorf("resource %v", res)
	}
	scopes := map[string]*metricspb.ScopeMetrics{}
	for _, sm := range rm.ScopeMetrics {
		scopes[sm.Scope.Name] = sm
		if len(sm.Scope.Attributes) != 1 || sm.Scope.Attributes[0].Key != "policy_name" ||
			"pktvisor/"+sm.Scope.Attributes[0].Value.GetStringValue() != sm.Scope.Name {
			t.Errorf("scope %s attributes %v", sm.Scope.Name, sm.Scope.Attributes)
		}
	}
	if len(scopes) != 2 || scopes["pktvisor/p"] == nil || scopes["pktvisor/q"] == nil {
		t.Fatalf("scopes %v", scopes)
	}
	byName := map[string]*metricspb.Metric{}
	for _, m := range scopes["pktvisor/p"].Metrics {
		byName[m.Name] = m
	}
	sum := byName["dns_wire_packets_total_total"].GetSum()
	if sum == nil || !sum.IsMonotonic || sum.AggregationTemporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE ||
		len(sum.DataPoints) != 1 || sum.DataPoints[0].GetAsInt() != 15 ||
		sum.DataPoints[0].StartTimeUnixNano != uint64(start.UnixNano()) || sum.DataPoints[0].TimeUnixNano != uint64(now.UnixNano()) {
		t.Fatalf("counter %v", byName["dns_wire_packets_total_total"])
	}
	attrs := map[string]string{}
	for _, kv := range sum.DataPoints[0].Attributes {
		attrs[kv.Key] = kv.Value.GetStringValue()
	}
	if attrs["policy"] != "p" || attrs["handler"] != "p-t-dns" || attrs["tap"] != "t" || len(attrs) != 3 {
		t.Errorf("attributes %v", attrs)
	}
	if g := byName["dns_top_qname2"].GetGauge(); g == nil || g.DataPoints[0].GetAsInt() != 4 {
		t.Errorf("top gauge %v", byName["dns_top_qname2"])
	}
	eh := byName["dns_xact_out_quantiles_us_histogram"].GetExponentialHistogram()
	if eh == nil || eh.AggregationTemporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
		t.Fatalf("exponential histogram %v", byName["dns_xact_out_quantiles_us_histogram"])
	}
	p := eh.DataPoints[0]
	if p.Count != 6 || p.GetSum() != 1401 || p.ZeroCount != 1 || p.Scale != DefaultScale || p.GetMin() != 0 || p.GetMax() != 401 {
		t.Fatalf("exp point %v", p)
	}
	// 100, 200, 300, 400, 401 at scale 5: buckets floor(log2(v)·32).
	want := map[int32]uint64{}
	for _, v := range []float64{100, 200, 300, 400, 401} {
		want[int32(math.Floor(math.Log2(v)*32))]++
	}
	got := map[int32]uint64{}
	var n uint64
	for k, c := range p.Positive.BucketCounts {
		if c != 0 {
			got[p.Positive.Offset+int32(k)] = c
		}
		n += c
	}
	if n != 5 || len(got) != len(want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	for i, c := range want {
		if got[i] != c {
			t.Errorf("bucket %d = %d, want %d", i, got[i], c)
		}
	}
	h := byName["dns_xact_out_histogram_us_cumulative"].GetHistogram()
	if h == nil || h.DataPoints[0].Count != 4 || !slices.Equal(h.DataPoints[0].ExplicitBounds, []float64{3, 10}) ||
		!slices.Equal(h.DataPoints[0].BucketCounts, []uint64{1, 2, 1}) || h.DataPoints[0].Sum != nil {
		t.Errorf("histogram %v", h)
	}
}

// decodeSnappy is an independent snappy block decoder (format_description.txt): the test's
// oracle for the compressed body.
func decodeSnappy(src []byte) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 {
		return nil, errors.New("bad length")
	}
	src = src[k:]
	out := make([]byte, 0, n)
	for len(src) > 0 {
		tag := src[0]
		var length, offset int
		switch tag & 3 {
		case 0:
			length = int(tag>>2) + 1
			src = src[1:]
			if extra := int(tag>>2) - 59; extra > 0 {
				if len(src) < extra {
					return nil, errors.New("short literal length")
				}
				l := 0
				for i := range extra {
					l |= int(src[i]) << (8 * i)
				}
				length, src = l+1, src[extra:]
			}
			if len(src) < length {
				return nil, errors.New("short literal")
			}
			out, src = append(out, src[:length]...), src[length:]
			continue
		case 1:
			length, offset = 4+int(tag>>2&7), int(tag&0xe0)<<3|int(src[1])
			src = src[2:]
		case 2:
			length, offset = 1+int(tag>>2), int(binary.LittleEndian.Uint16(src[1:]))
			src = src[3:]
		case 3:
			length, offset = 1+int(tag>>2), int(binary.LittleEndian.Uint32(src[1:]))
			src = src[5:]
		}
		if offset <= 0 || offset > len(out) {
			return nil, errors.New("bad offset")
		}
		for range length { // copies may overlap their own output
			out = append(out, out[len(out)-offset])
		}
	}
	if uint64(len(out)) != n {
		return nil, errors.New("length mismatch")
	}
	return out, nil
}

type pbField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

func parsePB(t *testing.T, b []byte) []pbField {
	t.Helper()
	var out []pbField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal("bad tag")
		}
		b = b[n:]
		f := pbField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("unexpected wire type %d", typ)
		}
		if n < 0 {
			t.Fatal("bad value")
		}
		b = b[n:]
		out = append(out, f)
	}
	return out
}

type rwSeries struct {
	labels  []Label
	value   float64
	ts      int64
	hist    []pbField
	samples int
}

func decodeRW(t *testing.T, body []byte) ([]rwSeries, map[string]uint64) {
	t.Helper()
	raw, err := decodeSnappy(body)
	if err != nil {
		t.Fatal(err)
	}
	if lib, err := snappy.Decode(nil, body); err != nil || string(lib) != string(raw) {
		t.Fatalf("golang/snappy disagrees: %v", err)
	}
	var out []rwSeries
	meta := map[string]uint64{}
	for _, f := range parsePB(t, raw) {
		switch f.num {
		case 1:
			var s rwSeries
			for _, g := range parsePB(t, f.b) {
				switch g.num {
				case 1:
					lf := parsePB(t, g.b)
					s.labels = append(s.labels, Label{string(lf[0].b), string(lf[1].b)})
				case 2:
					s.samples++
					for _, h := range parsePB(t, g.b) {
						if h.num == 1 {
							s.value = math.Float64frombits(h.v)
						} else {
							s.ts = int64(h.v)
						}
					}
				case 4:
					s.hist = parsePB(t, g.b)
				}
			}
			out = append(out, s)
		case 3:
			var name string
			var typ uint64
			for _, g := range parsePB(t, f.b) {
				switch g.num {
				case 1:
					typ = g.v
				case 2:
					name = string(g.b)
				}
			}
			meta[name] = typ
		default:
			t.Fatalf("WriteRequest field %d", f.num)
		}
	}
	return out, meta
}

func (s rwSeries) label(name string) string { return labelValue(s.labels, name) }

// The remote write body is snappy (block) over a WriteRequest that an independent protowire
// decoder reads back: sorted labels with __name__, job and instance, one sample per series
// stamped now, native histograms whose spans and deltas give back the bucket counts.
func TestEncodeRemoteWrite(t *testing.T) {
	a := sampleAccumulator(t)
	now := time.UnixMilli(1_700_000_000_123)
	series, meta := decodeRW(t, EncodeRemoteWrite(a.Snapshot(), Resource{ServiceName: "pktvisord", Instance: "node1"}, now, false))
	get := func(name string, kv ...string) *rwSeries {
		for i := range series {
			if series[i].label("__name__") != name {
				continue
			}
			ok := true
			for j := 0; j+1 < len(kv); j += 2 {
				ok = ok && series[i].label(kv[j]) == kv[j+1]
			}
			if ok {
				return &series[i]
			}
		}
		t.Fatalf("no %s %v", name, kv)
		return nil
	}
	for _, s := range series {
		if !slices.IsSortedFunc(s.labels, func(x, y Label) int { return strings.Compare(x.Name, y.Name) }) {
			t.Errorf("labels not sorted: %v", s.labels)
		}
		if s.label("job") != "pktvisord" || s.label("instance") != "node1" {
			t.Errorf("job/instance missing: %v", s.labels)
		}
		if s.hist == nil && (s.samples != 1 || s.ts != now.UnixMilli()) {
			t.Errorf("%v: %d samples at %d", s.labels, s.samples, s.ts)
		}
	}
	if s := get("dns_wire_packets_total_total", "policy", "p"); s.value != 15 {
		t.Errorf("counter %v", s.value)
	}
	if s := get("dns_wire_packets_total_total", "policy", "q"); s.value != 1 {
		t.Errorf("counter q %v", s.value)
	}
	if s := get("dns_top_qname2", "qname", "a.example"); s.value != 4 {
		t.Errorf("top %v", s.value)
	}
	// Classic histogram: le 3 → 1, le 10 → 3, +Inf → 4 (1<<62 is above every bound).
	for le, want := range map[string]float64{"3": 1, "10": 3, "+Inf": 4} {
		if s := get("dns_xact_out_histogram_us_cumulative_bucket", "le", le); s.value != want {
			t.Errorf("le=%s: %v, want %v", le, s.value, want)
		}
	}
	if s := get("dns_xact_out_histogram_us_cumulative_count"); s.value != 4 {
		t.Errorf("histogram count %v", s.value)
	}
	if meta["dns_wire_packets_total_total"] != 1 || meta["dns_top_qname2"] != 2 || meta["dns_xact_out_quantiles_us_histogram"] != 3 {
		t.Errorf("metadata %v", meta)
	}

	// Native histogram: rebuild the buckets as a receiver does (Prometheus index i is the
	// bucket (base^(i-1), base^i]) and compare with the values' own buckets.
	nh := get("dns_xact_out_quantiles_us_histogram")
	var count, zero uint64
	var schema int32
	var sumv float64
	var spans [][2]int64
	var deltas []int64
	for _, f := range nh.hist {
		switch f.num {
		case 1:
			count = f.v
		case 3:
			sumv = math.Float64frombits(f.v)
		case 4:
			schema = int32(protowire.DecodeZigZag(f.v))
		case 6:
			zero = f.v
		case 11:
			sp := parsePB(t, f.b)
			var off, length int64
			for _, g := range sp {
				if g.num == 1 {
					off = protowire.DecodeZigZag(g.v)
				} else {
					length = int64(g.v)
				}
			}
			spans = append(spans, [2]int64{off, length})
		case 12:
			for b := f.b; len(b) > 0; {
				v, n := protowire.ConsumeVarint(b)
				deltas = append(deltas, protowire.DecodeZigZag(v))
				b = b[n:]
			}
		case 15:
			if int64(f.v) != now.UnixMilli() {
				t.Errorf("histogram timestamp %d", f.v)
			}
		}
	}
	if count != 6 || zero != 1 || sumv != 1401 || schema != DefaultScale {
		t.Fatalf("count %d zero %d sum %v schema %d", count, zero, sumv, schema)
	}
	got := map[int64]int64{}
	idx, cur, d := int64(0), int64(0), 0
	for _, sp := range spans {
		idx += sp[0]
		for range sp[1] {
			cur += deltas[d]
			d++
			got[idx] = cur
			idx++
		}
	}
	base := math.Pow(2, math.Pow(2, -float64(schema)))
	want := map[int64]int64{}
	for _, v := range []float64{100, 200, 300, 400, 401} {
		i := int64(math.Ceil(math.Log(v) / math.Log(base))) // upper bound base^i ≥ v
		want[i]++
	}
	if len(got) != len(want) || d != len(deltas) {
		t.Fatalf("native buckets %v, want %v", got, want)
	}
	for i, c := range want {
		if got[i] != c {
			t.Errorf("native bucket %d = %d, want %d (all %v)", i, got[i], c, got)
		}
	}
}

// With classic histograms, the quantile histogram is <name>_bucket{le} at ClassicScale:
// cumulative counts at the upper bounds 2^((i+1)/8) of the values' buckets, le="0" for the
// zero, +Inf, _sum and _count, and no native histogram.
func TestEncodeRemoteWriteClassic(t *testing.T) {
	a := sampleAccumulator(t)
	series, _ := decodeRW(t, EncodeRemoteWrite(a.Snapshot(), Resource{ServiceName: "pktvisord"}, time.Unix(5, 0), true))
	got := map[string]float64{}
	for _, s := range series {
		if s.hist != nil {
			t.Fatalf("native histogram in classic mode: %v", s.labels)
		}
		switch s.label("__name__") {
		case "dns_xact_out_quantiles_us_histogram_bucket":
			got[s.label("le")] = s.value
		case "dns_xact_out_quantiles_us_histogram_sum":
			got["sum"] = s.value
		case "dns_xact_out_quantiles_us_histogram_count":
			got["count"] = s.value
		}
	}
	// Values 0, 100, 200, 300, 400, 401; bucket i at scale 3 is (2^(i/8), 2^((i+1)/8)].
	want := map[string]float64{"0": 1, "+Inf": 6, "sum": 1401, "count": 6}
	cum := 1.0
	prev := -1
	for _, v := range []float64{100, 200, 300, 400, 401} {
		i := int(math.Floor(math.Log2(v) * 8))
		cum++
		le := strconv.FormatFloat(math.Exp2(float64(i+1)/8), 'g', -1, 64)
		want[le] = cum
		if i == prev {
			t.Logf("values share bucket %d", i)
		}
		prev = i
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all %v)", k, got[k], v, got)
		}
	}
}
