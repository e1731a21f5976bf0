package export

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
	"unicode/utf8"

	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// FuzzEncode: whatever the label names, item names (any bytes) and values, accumulating and
// encoding never fail or panic, the OTLP body decodes, every label value is valid UTF-8, and
// histograms stay consistent and bounded.
func FuzzEncode(f *testing.F) {
	f.Add("qname", "a.example", "policy", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add("9bad key", "\xff\xfe", "x\x00y", []byte{0x7f, 0xf0, 0, 0, 0, 0, 0, 0})
	f.Add("", "", "", []byte{})
	f.Fuzz(func(t *testing.T, label, name, key string, raw []byte) {
		a := NewAccumulator(64)
		var q sketch.Quantiles
		h := NewExpHistogram()
		for i := 0; i+8 <= len(raw); i += 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(raw[i:]))
			q.Add(v)
			h.Add(v, uint64(raw[i])+1)
		}
		for start := int64(1); start <= 3; start++ {
			b := NewBatch(map[string]string{"policy": name, key: label})
			b.TopN(&metrics.Desc{Schema: key, Name: []string{name}}, label, []metrics.TopItem{{Name: name, Estimate: uint64(len(raw))}, {Name: label, Estimate: 1}})
			b.Counter(&metrics.Desc{Schema: "s", Name: []string{label}}, uint64(len(name)))
			b.Quantiles(&metrics.Desc{Schema: "s", Name: []string{"q"}}, &q, false)
			a.Commit(b, start)
		}
		series := a.Snapshot()
		for _, s := range series {
			for _, l := range s.Labels {
				if !utf8.ValidString(l.Value) || l.Name == "" {
					t.Fatalf("label %q=%q", l.Name, l.Value)
				}
			}
			if s.Exp != nil {
				checkExp(t, s.Exp)
			}
		}
		checkExp(t, h)
		body, err := EncodeOTLP(series, Resource{ServiceName: "pktvisord", Instance: label}, time.Unix(1, 0), time.Unix(2, 0))
		if err != nil && utf8.ValidString(label) {
			t.Fatal(err)
		}
		if err == nil {
			if err := proto.Unmarshal(body, new(metricspb.MetricsData)); err != nil {
				t.Fatal(err)
			}
		}
		rw := EncodeRemoteWrite(series, Resource{ServiceName: "pktvisord"}, time.Unix(2, 0), len(raw)%2 == 1)
		if _, err := decodeSnappy(rw); err != nil {
			t.Fatal(err)
		}
	})
}

func checkExp(t *testing.T, h *ExpHistogram) {
	t.Helper()
	n := h.ZeroCount
	for _, c := range h.Counts {
		n += c
	}
	if n != h.Count || len(h.Counts) > MaxBuckets || h.Scale < minScale || h.Scale > DefaultScale {
		t.Fatalf("histogram: %d counted, Count %d, %d buckets, scale %d", n, h.Count, len(h.Counts), h.Scale)
	}
}
