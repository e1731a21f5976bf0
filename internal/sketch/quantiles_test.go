package sketch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
)

// inclusiveQuantile is the spec's definition (§7.3): the ceil(q·n)-th
// smallest value, the smallest for q = 0.
func inclusiveQuantile(sorted []float64, q float64) float64 {
	w := int(math.Ceil(q * float64(len(sorted))))
	if w < 1 {
		w = 1
	}
	return sorted[w-1]
}

var testQs = []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

func TestQuantilesReferenceKLLExample(t *testing.T) {
	// test_sketches.cpp: KLL float 0..199 ⇒ inclusive (0, 0.5, 1) = (0, 99, 199).
	r := newRand(1)
	for _, order := range [][]int{nil, r.Perm(200)} {
		var q Quantiles
		for i := range 200 {
			v := i
			if order != nil {
				v = order[i]
			}
			q.Add(float64(v))
		}
		if !q.Exact() || q.Min() != 0 || q.Max() != 199 {
			t.Fatalf("exact %v min %v max %v", q.Exact(), q.Min(), q.Max())
		}
		got := q.Quantiles([]float64{0, 0.5, 1}, nil)
		if !slices.Equal(got, []float64{0, 99, 199}) {
			t.Fatalf("quantiles %v, want [0 99 199]", got)
		}
	}
	// One value: every quantile is it (test_metrics Quantile<int> 12).
	var one Quantiles
	one.Add(12)
	if got := one.Quantiles([]float64{0.5, 0.9, 0.95, 0.99}, nil); !slices.Equal(got, []float64{12, 12, 12, 12}) {
		t.Fatalf("single value: %v", got)
	}
	// n = 153: p50 is the 77th smallest value.
	var q153 Quantiles
	for i := 1; i <= 153; i++ {
		q153.Add(float64(1000 + i))
	}
	if got := q153.Quantile(0.5); got != 1077 {
		t.Fatalf("n=153 p50 = %v, want the 77th smallest 1077", got)
	}
}

func TestQuantilesExactUpTo200(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		r := newRand(seed)
		n := 1 + r.IntN(200)
		var q Quantiles
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = math.Floor(r.ExpFloat64() * 1000)
			q.Add(vals[i])
		}
		slices.Sort(vals)
		if !q.Exact() {
			t.Fatalf("n=%d not exact", n)
		}
		for _, p := range testQs {
			if got, want := q.Quantile(p), inclusiveQuantile(vals, p); got != want {
				t.Fatalf("seed %d n=%d q=%v: %v, want %v", seed, n, p, got, want)
			}
		}
	}
	var q Quantiles
	for i := range 201 {
		q.Add(float64(i))
	}
	if q.Exact() {
		t.Fatal("201 values still exact")
	}
}

type distribution struct {
	name string
	gen  func(r *rand.Rand) float64
}

var distributions = []distribution{
	{"uniform", func(r *rand.Rand) float64 { return r.Float64() * 1e6 }},
	{"exponential", func(r *rand.Rand) float64 { return r.ExpFloat64() * 1000 }},
	{"lognormal", func(r *rand.Rand) float64 { return math.Exp(5 + 2*r.NormFloat64()) }},
	{"pareto", func(r *rand.Rand) float64 { return 1 / math.Pow(1-r.Float64(), 1/1.2) }},
	{"integers", func(r *rand.Rand) float64 { return float64(r.IntN(1500)) }},
	{"with zeros", func(r *rand.Rand) float64 {
		if r.IntN(3) == 0 {
			return 0
		}
		return r.Float64() * 10
	}},
}

func TestQuantilesRelativeError(t *testing.T) {
	for _, d := range distributions {
		for _, n := range []int{201, 1000, 20000, 200000} {
			for seed := uint64(0); seed < 3; seed++ {
				r := newRand(seed*7 + uint64(n))
				var q Quantiles
				vals := make([]float64, n)
				var sum float64
				for i := range vals {
					vals[i] = d.gen(r)
					sum += vals[i]
					q.Add(vals[i])
				}
				slices.Sort(vals)
				if q.Count() != uint64(n) || q.Max() != vals[n-1] || q.Min() != vals[0] || relErr(q.Sum(), sum) > 1e-12 {
					t.Fatalf("%s n=%d: count %d max %v min %v sum %v", d.name, n, q.Count(), q.Max(), q.Min(), q.Sum())
				}
				for _, p := range testQs {
					got, want := q.Quantile(p), inclusiveQuantile(vals, p)
					if math.Abs(got-want) > QuantilesRelativeAccuracy*want+1e-9*want {
						t.Fatalf("%s n=%d seed=%d q=%v: %v, exact %v (relative error %.4f)", d.name, n, seed, p, got, want, relErr(got, want))
					}
				}
			}
		}
	}
}

// quantilesEqual compares everything but Sum bit for bit, Sum up to float
// association.
func quantilesEqual(t *testing.T, name string, got, want *Quantiles) {
	t.Helper()
	if got.Exact() != want.Exact() || got.Count() != want.Count() || got.Max() != want.Max() || got.Min() != want.Min() {
		t.Fatalf("%s: exact %v/%v count %d/%d max %v/%v min %v/%v", name, got.Exact(), want.Exact(),
			got.Count(), want.Count(), got.Max(), want.Max(), got.Min(), want.Min())
	}
	if relErr(got.Sum(), want.Sum()) > 1e-12 {
		t.Fatalf("%s: sum %v, want %v", name, got.Sum(), want.Sum())
	}
	grid := make([]float64, 1001)
	for i := range grid {
		grid[i] = float64(i) / 1000
	}
	a, b := got.Quantiles(grid, nil), want.Quantiles(grid, nil)
	for i, p := range grid {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			t.Fatalf("%s: q=%v: %v, single sketch %v", name, p, a[i], b[i])
		}
	}
}

func TestQuantilesMergeEqualsUnion(t *testing.T) {
	for _, d := range distributions {
		for _, n := range []int{1, 50, 200, 201, 350, 5000} {
			for seed := uint64(0); seed < 3; seed++ {
				r := newRand(seed + uint64(n)*13)
				vals := make([]float64, n)
				var whole Quantiles
				for i := range vals {
					vals[i] = d.gen(r)
					whole.Add(vals[i])
				}
				for _, k := range []int{2, 3, 7} {
					parts := make([]Quantiles, k)
					for i, p := range splitIndex(r, n, k) {
						parts[p].Add(vals[i])
					}
					var merged Quantiles
					for _, i := range r.Perm(k) {
						merged.Merge(&parts[i])
					}
					quantilesEqual(t, d.name, &merged, &whole)
					// Chain merge into a part.
					for i := 1; i < k; i++ {
						parts[0].Merge(&parts[i])
					}
					quantilesEqual(t, d.name+"/chain", &parts[0], &whole)
				}
			}
		}
	}
}

// TestQuantilesMergeWithCollapsedBins: values spanning more than the 2048
// bins collapse the lowest ones; the result still does not depend on the
// split, and high quantiles keep the accuracy.
func TestQuantilesMergeWithCollapsedBins(t *testing.T) {
	r := newRand(9)
	n := 20000
	vals := make([]float64, n)
	var whole Quantiles
	for i := range vals {
		vals[i] = math.Pow(10, -15+30*r.Float64())
		whole.Add(vals[i])
	}
	parts := make([]Quantiles, 4)
	for i, p := range splitIndex(r, n, 4) {
		parts[p].Add(vals[i])
	}
	var merged Quantiles
	for _, i := range []int{3, 1, 0, 2} {
		merged.Merge(&parts[i])
	}
	quantilesEqual(t, "collapsed", &merged, &whole)
	data, _ := merged.MarshalBinary()
	var dec Quantiles
	if err := dec.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	quantilesEqual(t, "collapsed decoded", &dec, &whole)
	// Collapsed-lowest bins only hurt the bottom: the top half keeps 1 %.
	slices.Sort(vals)
	for _, p := range []float64{0.5, 0.9, 0.99, 1} {
		if got, want := whole.Quantile(p), inclusiveQuantile(vals, p); relErr(got, want) > QuantilesRelativeAccuracy+1e-9 {
			t.Fatalf("q=%v: %v, exact %v", p, got, want)
		}
	}
}

func TestQuantilesIgnoresInvalidValues(t *testing.T) {
	var q Quantiles
	for _, v := range []float64{math.NaN(), -1, math.Inf(1), math.Inf(-1), -0.0001, math.MaxFloat64} {
		q.Add(v)
		q.AddN(v, 5)
	}
	if q.Count() != 0 || !math.IsNaN(q.Quantile(0.5)) {
		t.Fatalf("invalid values recorded: count %d", q.Count())
	}
	q.Add(3)
	if q.Count() != 1 || !math.IsNaN(q.Quantile(math.NaN())) || q.Quantile(-1) != 3 || q.Quantile(2) != 3 {
		t.Fatal("quantile argument handling")
	}
}

func TestQuantilesAddN(t *testing.T) {
	for _, k := range []uint64{1, 150, 199, 200, 201, 5000} {
		var a, b Quantiles
		a.Add(7)
		b.Add(7)
		a.AddN(0, k)
		for range k {
			b.Add(0)
		}
		quantilesEqual(t, "AddN", &a, &b)
	}
}

func TestQuantilesResetAndExactUnion(t *testing.T) {
	var a, b Quantiles
	for i := range 150 {
		a.Add(float64(i))
	}
	for i := range 50 {
		b.Add(float64(i))
	}
	a.Merge(&b)
	if !a.Exact() || a.Count() != 200 {
		t.Fatal("union of 200 exact values must stay exact")
	}
	a.Merge(&b)
	if a.Exact() {
		t.Fatal("250 values must be sketched")
	}
	a.Reset()
	if !a.Exact() || a.Count() != 0 || a.Max() != 0 || !math.IsNaN(a.Quantile(0.5)) {
		t.Fatal("Reset left state")
	}
	a.Add(5)
	if a.Quantile(1) != 5 {
		t.Fatal("after Reset")
	}
	a.Merge(&a)
	if a.Count() != 2 {
		t.Fatal("self merge must double")
	}
}

func TestQuantilesEncodingRoundTrip(t *testing.T) {
	r := newRand(4)
	for _, n := range []int{0, 1, 200, 201, 10000} {
		var q Quantiles
		for range n {
			q.Add(r.ExpFloat64() * 100)
		}
		data, err := q.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var dec Quantiles
		dec.Add(1)
		if err := dec.UnmarshalBinary(data); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if n == 0 {
			if dec.Count() != 0 {
				t.Fatal("empty decoded not empty")
			}
			continue
		}
		quantilesEqual(t, "decoded", &dec, &q)
		if dec.Sum() != q.Sum() {
			t.Fatal("sum not preserved exactly")
		}
		again, _ := dec.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatalf("n=%d: re-encoding differs", n)
		}
	}
}

func TestQuantilesDecodeRejects(t *testing.T) {
	head := func(mode byte) []byte { return []byte{tagQuantiles, encVersion1, mode} }
	exact := func(n uint64, vals ...float64) []byte {
		b := binary.AppendUvarint(head(qModeExact), n)
		b = appendFloat64(b, 1)
		for _, v := range vals {
			b = appendFloat64(b, v)
		}
		return b
	}
	sketch := func(n uint64, lo, hi float64, dd []byte) []byte {
		b := binary.AppendUvarint(head(qModeSketch), n)
		b = appendFloat64(b, 1)
		b = appendFloat64(b, lo)
		b = appendFloat64(b, hi)
		b = binary.AppendUvarint(b, uint64(len(dd)))
		return append(b, dd...)
	}
	// A DDSketch of 300 values in bin 100, written with the library's
	// primitives in its sparse bin layout.
	bins := func(flag enc.Flag, index int64, count float64) []byte {
		var b []byte
		enc.EncodeFlag(&b, flag)
		enc.EncodeUvarint64(&b, 1)
		enc.EncodeVarint64(&b, index)
		enc.EncodeVarfloat64(&b, count)
		return b
	}
	posFlag := enc.NewFlag(enc.FlagTypePositiveStore, enc.BinEncodingIndexDeltasAndCounts)
	negFlag := enc.NewFlag(enc.FlagTypeNegativeStore, enc.BinEncodingIndexDeltasAndCounts)
	good := bins(posFlag, 100, 300)
	var lying []byte // claims 127 bins, holds none
	enc.EncodeFlag(&lying, posFlag)
	enc.EncodeUvarint64(&lying, 127)
	var ok Quantiles
	if err := ok.UnmarshalBinary(sketch(300, 1, 10, good)); err != nil {
		t.Fatalf("valid sketch rejected: %v", err)
	}
	if err := ok.UnmarshalBinary(exact(2, 1, 2)); err != nil {
		t.Fatalf("valid exact rejected: %v", err)
	}
	var mappingFlag []byte
	ddMapping.Encode(&mappingFlag)
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"no mode", []byte{tagQuantiles, encVersion1}},
		{"bad mode", head(7)},
		{"empty trailing", append(head(qModeEmpty), 0)},
		{"exact zero values", exact(0)},
		{"exact 201 values", exact(201)},
		{"exact truncated", exact(3, 1, 2)},
		{"exact NaN", exact(1, math.NaN())},
		{"exact negative", exact(1, -2)},
		{"exact inf", exact(1, math.Inf(1))},
		{"sketch with few values", sketch(200, 1, 10, bins(posFlag, 100, 200))},
		{"sketch count mismatch", sketch(301, 1, 10, good)},
		{"sketch min > max", sketch(300, 10, 1, good)},
		{"sketch NaN max", sketch(300, 1, math.NaN(), good)},
		{"fractional bin count", sketch(300, 1, 10, bins(posFlag, 100, 299.5))},
		{"negative bin count", sketch(300, 1, 10, append(bins(posFlag, 100, 600), bins(posFlag, 101, -300)...))},
		{"index out of range", sketch(300, 1, 10, bins(posFlag, 1<<40, 300))},
		{"negative store", sketch(300, 1, 10, bins(negFlag, 100, 300))},
		{"index mapping", sketch(300, 1, 10, append(mappingFlag, good...))},
		{"bins beyond input", sketch(300, 1, 10, lying)},
		{"dd truncated", sketch(300, 1, 10, good[:len(good)-1])},
		{"trailing", append(sketch(300, 1, 10, good), 1)},
	}
	for _, tt := range tests {
		var q Quantiles
		q.Add(42)
		err := q.UnmarshalBinary(tt.in)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !errors.Is(err, ErrInvalidEncoding) {
			t.Errorf("%s: %v does not wrap ErrInvalidEncoding", tt.name, err)
		}
		if q.Count() != 1 || q.Quantile(0.5) != 42 {
			t.Errorf("%s: failed decode modified the sketch", tt.name)
		}
	}
}

func TestQuantilesAddAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	var q Quantiles
	r := newRand(2)
	for range 10000 {
		q.Add(r.ExpFloat64() * 1000)
	}
	q.Reset()
	for range 10000 {
		q.Add(r.ExpFloat64() * 1000)
	}
	vals := make([]float64, 1000)
	for i := range vals {
		vals[i] = 1 + r.Float64()*5000
	}
	i := 0
	if n := testing.AllocsPerRun(5000, func() { q.Add(vals[i%len(vals)]); i++ }); n != 0 {
		t.Errorf("Add: %v allocs", n)
	}
	// A reused bucket: Reset, then the exact phase and the switch to the
	// sketch reuse the buffers.
	if n := testing.AllocsPerRun(20, func() {
		q.Reset()
		for j := range 300 {
			q.Add(vals[j])
		}
	}); n != 0 {
		t.Errorf("reused bucket: %v allocs", n)
	}
}
