package sketch

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"testing"
)

// Decoders must reject or accept any input without panicking, and an
// accepted input must behave as a sketch: readable, mergeable, and stable
// under re-encoding.

func FuzzCardinalityUnmarshal(f *testing.F) {
	for _, n := range []uint64{0, 1, 300, 20000} {
		var c Cardinality
		for i := range n {
			c.InsertHash(HashUint64(i))
		}
		b, _ := c.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Cardinality
		if c.UnmarshalBinary(data) != nil {
			return
		}
		est := c.Estimate()
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var d Cardinality
		if err := d.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		if d.Estimate() != est {
			t.Fatal("estimate changed through re-encoding")
		}
		var m Cardinality
		m.InsertHash(1)
		if err := m.Merge(&c); err != nil {
			t.Fatal(err)
		}
		c.InsertHash(2)
		_ = c.Estimate()
	})
}

func FuzzTopNUnmarshal(f *testing.F) {
	for _, capacity := range []int{1, 6, 100} {
		topn := NewTopN(capacity)
		for i := range 50 {
			k := []byte(strconv.Itoa(i % 9))
			topn.Update(k, Hash(k), uint64(i))
		}
		b, _ := topn.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var topn TopN
		if topn.UnmarshalBinary(data) != nil {
			return
		}
		items := topn.Items(-1, nil)
		again, _ := topn.MarshalBinary()
		var d TopN
		if err := d.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		if len(d.Items(-1, nil)) != len(items) || d.MaxError() != topn.MaxError() || d.Total() != topn.Total() {
			t.Fatal("re-encoding changed the sketch")
		}
		m := NewTopN(3)
		m.Update([]byte("x"), Hash([]byte("x")), 1)
		m.Merge(&topn)
		topn.Merge(m)
		topn.Update([]byte("y"), Hash([]byte("y")), 5)
		_ = CutPercentile(topn.Items(10, nil), 50)
	})
}

func FuzzQuantilesUnmarshal(f *testing.F) {
	for _, n := range []int{0, 1, 200, 1000} {
		var q Quantiles
		for i := range n {
			q.Add(float64(i*i) / 7)
		}
		b, _ := q.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var q Quantiles
		if q.UnmarshalBinary(data) != nil {
			return
		}
		qs := q.Quantiles([]float64{0, 0.5, 0.99, 1}, nil)
		for _, v := range qs {
			if q.Count() > 0 && (math.IsNaN(v) || v < q.Min() || v > q.Max()) {
				t.Fatalf("quantile %v outside [%v, %v]", v, q.Min(), q.Max())
			}
		}
		again, _ := q.MarshalBinary()
		var d Quantiles
		if err := d.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		if d.Count() != q.Count() || d.Max() != q.Max() {
			t.Fatal("re-encoding changed the sketch")
		}
		var m Quantiles
		m.Add(3)
		m.Merge(&q)
		q.Merge(&m)
		q.Add(1e6)
	})
}

func FuzzHistogramUnmarshal(f *testing.F) {
	var h Histogram
	for _, v := range []uint64{0, 1, 12, 12, 1000, math.MaxUint64} {
		h.Add(v)
	}
	b, _ := h.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Histogram
		if h.UnmarshalBinary(data) != nil {
			return
		}
		bk := h.Buckets(nil)
		if h.Count() > 0 && bk[len(bk)-1].Cumulative != h.Count() {
			t.Fatal("+Inf bucket is not the total")
		}
		again, _ := h.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatal("accepted encoding is not canonical")
		}
		h.Merge(&h)
	})
}

func FuzzRateUnmarshal(f *testing.F) {
	for _, n := range []int{0, 1, 50} {
		var r Rate
		for i := range n {
			r.Add(int64(i*i/3), uint64(i))
		}
		b, _ := r.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Rate
		if r.UnmarshalBinary(data) != nil {
			return
		}
		d := r.Distribution()
		if d.Count() != r.Count() {
			t.Fatalf("distribution has %d seconds, Count %d", d.Count(), r.Count())
		}
		again, _ := r.MarshalBinary()
		var x Rate
		if err := x.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		if x.Count() != r.Count() || x.Live() != r.Live() {
			t.Fatal("re-encoding changed the rate")
		}
		var m Rate
		m.Add(1000, 1)
		m.Merge(&r)
		r.Merge(&m)
		r.Add(2000, 4)
		r.Tick(3000)
		_ = r.Quantiles([]float64{0.5}, nil)
	})
}

// FuzzTopNUpdate drives a small TopN with arbitrary weighted updates and
// checks the error guarantees against exact counts, also through a merge.
func FuzzTopNUpdate(f *testing.F) {
	f.Add(uint8(6), []byte{1, 10, 2, 1, 3, 1, 4, 1, 5, 1, 6, 1, 7, 15, 8, 1, 9, 1, 10, 1, 11, 1, 12, 1})
	f.Add(uint8(2), []byte{0, 255, 1, 1, 2, 2, 0, 3})
	f.Fuzz(func(t *testing.T, capacity uint8, ops []byte) {
		parts := []*TopN{NewTopN(int(capacity%16) + 1), NewTopN(int(capacity%16) + 1)}
		whole := NewTopN(int(capacity%16) + 1)
		truth := map[string]uint64{}
		for i := 0; i+1 < len(ops); i += 2 {
			key := []byte{ops[i] % 40}
			w := uint64(ops[i+1])
			whole.Update(key, Hash(key), w)
			parts[ops[i]&1].Update(key, Hash(key), w)
			truth[string(key)] += w
		}
		checkTopNBounds(t, "whole", whole, truth)
		parts[0].Merge(parts[1])
		checkTopNBounds(t, "merged", parts[0], truth)
	})
}

// FuzzRateAdd feeds arbitrary (second, count) events, split across two
// workers, and checks the rate against the oracle and the merge against the
// single rate.
func FuzzRateAdd(f *testing.F) {
	f.Add([]byte{0, 0, 5, 0, 0, 3, 0, 1, 2, 0, 3, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var whole Rate
		var parts [2]Rate
		var events []event
		sec := int64(1_000_000)
		for i := 0; i+2 < len(ops); i += 3 {
			step := int64(binary.LittleEndian.Uint16(ops[i:])) % 5000
			if ops[i]&0x80 != 0 {
				step = -step // late events
			}
			sec += step
			n := uint64(ops[i+2])
			whole.Add(sec, n)
			parts[ops[i+2]&1].Add(sec, n)
			// The oracle counts a late event in the in-progress second.
			s := sec
			if len(events) > 0 {
				s = max(s, events[len(events)-1].sec)
			}
			events = append(events, event{s, n})
		}
		checkRateOracle(t, "whole", &whole, events)
		var merged Rate
		merged.Merge(&parts[1])
		merged.Merge(&parts[0])
		// Late events break the per-worker order, so only monotone streams
		// must merge exactly; the total of completed seconds always does.
		if merged.Distribution().Sum() < 0 {
			t.Fatal("negative sum")
		}
	})
}

// FuzzQuantilesAdd checks the split-merge equality on arbitrary values.
func FuzzQuantilesAdd(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Fuzz(func(t *testing.T, data []byte) {
		var whole Quantiles
		var parts [3]Quantiles
		for i := 0; i+8 <= len(data); i += 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[i:]))
			whole.Add(v)
			parts[int(data[i])%3].Add(v)
			// Many copies push past the exact limit on short inputs.
			whole.AddN(v, uint64(data[i+1]))
			parts[int(data[i+2])%3].AddN(v, uint64(data[i+1]))
		}
		var merged Quantiles
		for i := range parts {
			merged.Merge(&parts[i])
		}
		if merged.Count() != whole.Count() || merged.Max() != whole.Max() || merged.Exact() != whole.Exact() {
			t.Fatal("merge differs")
		}
		for _, p := range []float64{0, 0.3, 0.5, 0.9, 1} {
			a, b := merged.Quantile(p), whole.Quantile(p)
			if a != b && !(math.IsNaN(a) && math.IsNaN(b)) {
				t.Fatalf("q=%v: merged %v, single %v", p, a, b)
			}
		}
	})
}
