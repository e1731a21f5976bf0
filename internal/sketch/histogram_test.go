package sketch

import (
	"errors"
	"math"
	"math/big"
	"slices"
	"testing"
)

func TestHistogramBounds(t *testing.T) {
	if NumHistogramBounds != 315 {
		t.Fatalf("%d bounds, want 315", NumHistogramBounds)
	}
	// The spec's listing of the first bounds (§7.3).
	prefix := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 14, 16, 18, 21, 24, 27, 31, 35, 40, 46, 52, 59, 68, 77, 87, 100, 113, 129}
	b := HistogramBounds()
	if !slices.Equal(b[:len(prefix)], prefix) {
		t.Fatalf("bounds start %v, want %v", b[:len(prefix)], prefix)
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Fatalf("bounds not increasing at %d", i)
		}
	}
	// Last bound: trunc(10^(17/18)·10^17) ≈ 8.799·10^17.
	if last := b[len(b)-1]; last < 879_900_000_000_000_000 || last > 880_000_000_000_000_000 {
		t.Fatalf("last bound %d", last)
	}
}

// rootPow10 computes 10^x for x = m/2^k (every float64 in [0, 1) is one)
// as (10^(1/2^k))^m: k correctly rounded square roots, then exponentiation
// by squaring, at a precision that absorbs the error growth — an oracle
// that shares nothing with the series the package uses.
func rootPow10(x float64) float64 {
	const prec = 600
	frac, exp := math.Frexp(x) // x = frac·2^exp, frac in [0.5, 1)
	if x == 0 {
		return 1
	}
	m := uint64(math.Ldexp(frac, 53)) // x = m / 2^(53−exp)
	k := 53 - exp
	for m%2 == 0 {
		m /= 2
		k--
	}
	r := new(big.Float).SetPrec(prec).SetInt64(10)
	for range k {
		r.Sqrt(r)
	}
	res := new(big.Float).SetPrec(prec).SetInt64(1)
	for ; m > 0; m >>= 1 {
		if m&1 == 1 {
			res.Mul(res, r)
		}
		r.Mul(r, r)
	}
	v, _ := res.Float64()
	return v
}

// TestHistogramPowCorrectlyRounded: the reference's bounds use glibc's
// correctly rounded pow; ours must produce the same float64 for the 18
// exponents, or large bounds (and their labels) would differ.
func TestHistogramPowCorrectlyRounded(t *testing.T) {
	mismatchPow := 0
	for b := 0; b < 18; b++ {
		x := float64(float32(b) / float32(18))
		want := rootPow10(x)
		if got := pow10Frac[b]; got != want {
			t.Errorf("b=%d: 10^%v = %v in the table, correctly rounded %v", b, x, got, want)
		}
		if math.Pow(10, x) != want {
			mismatchPow++
		}
	}
	t.Logf("math.Pow is misrounded for %d of the 18 exponents", mismatchPow)
	// The bounds follow from those values exactly.
	want := []uint64{}
	for e := 0; e <= 17; e++ {
		for b := 0; b < 18; b++ {
			p := new(big.Float).SetFloat64(rootPow10(float64(float32(b) / float32(18))))
			p.Mul(p, new(big.Float).SetFloat64(math.Pow(10, float64(e))))
			f, _ := p.Float64() // the reference rounds the product to double
			if v := uint64(f); len(want) == 0 || want[len(want)-1] != v {
				want = append(want, v)
			}
		}
	}
	want = append([]uint64{0}, want...)
	if got := HistogramBounds(); !slices.Equal(got, want) {
		t.Fatal("bounds differ from the oracle's")
	}
}

func TestHistogramReferenceExamples(t *testing.T) {
	tests := []struct {
		vals   []uint64
		labels []string
		cums   []uint64
	}{
		{[]uint64{12, 12, 12, 8}, []string{"8", "12", "+Inf"}, []uint64{1, 4, 4}},
		{[]uint64{12, 12, 1, 8, 12}, []string{"1", "8", "12", "+Inf"}, []uint64{1, 2, 5, 5}},
		{[]uint64{0, 9, 9}, []string{"0", "10", "+Inf"}, []uint64{1, 3, 3}},
		{[]uint64{math.MaxUint64, 1}, []string{"1", "+Inf"}, []uint64{1, 2}},
		{nil, nil, nil},
	}
	for _, tt := range tests {
		var h Histogram
		for _, v := range tt.vals {
			h.Add(v)
		}
		var labels []string
		var cums []uint64
		for _, b := range h.Buckets(nil) {
			labels = append(labels, b.Label())
			cums = append(cums, b.Cumulative)
		}
		if !slices.Equal(labels, tt.labels) || !slices.Equal(cums, tt.cums) || h.Count() != uint64(len(tt.vals)) {
			t.Errorf("values %v: buckets %v %v, want %v %v", tt.vals, labels, cums, tt.labels, tt.cums)
		}
	}
}

func TestHistogramAgainstBruteForce(t *testing.T) {
	bounds := HistogramBounds()
	for seed := uint64(0); seed < 10; seed++ {
		r := newRand(seed)
		var h Histogram
		var vals []uint64
		for range 2000 {
			var v uint64
			switch r.IntN(4) {
			case 0:
				v = r.Uint64N(100)
			case 1:
				v = uint64(math.Exp(r.Float64() * 40))
			case 2:
				v = bounds[r.IntN(len(bounds))] + uint64(r.IntN(3)) - 1 // around a bound
			default:
				v = r.Uint64()
			}
			vals = append(vals, v)
			h.Add(v)
		}
		got := h.Buckets(nil)
		var want []Bucket
		prev := uint64(0)
		for i, bound := range bounds {
			var inInterval, cum uint64
			for _, v := range vals {
				if v <= bound {
					cum++
					if i == 0 || v > prev {
						inInterval++
					}
				}
			}
			if inInterval > 0 {
				want = append(want, Bucket{UpperBound: bound, Cumulative: cum})
			}
			prev = bound
		}
		want = append(want, Bucket{Inf: true, Cumulative: uint64(len(vals))})
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: buckets differ from brute force", seed)
		}
	}
}

func TestHistogramMergeAndEncoding(t *testing.T) {
	r := newRand(3)
	var whole Histogram
	parts := make([]Histogram, 3)
	for range 5000 {
		v := uint64(math.Exp(r.Float64() * 30))
		whole.Add(v)
		parts[r.IntN(3)].Add(v)
	}
	var merged Histogram
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if merged != whole {
		t.Fatal("merge differs from single histogram")
	}
	for _, h := range []*Histogram{&whole, {}} {
		data, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var dec Histogram
		dec.Add(5)
		if err := dec.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		if dec != *h {
			t.Fatal("decoded histogram differs")
		}
	}
	merged.Reset()
	if merged.Count() != 0 || len(merged.Buckets(nil)) != 0 {
		t.Fatal("Reset")
	}
}

func TestHistogramDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"wrong tag", []byte{tagRate, 1, 0}},
		{"bad version", []byte{tagHistogram, 0, 0}},
		{"too many intervals", []byte{tagHistogram, 1, 0xff, 0x02}},
		{"zero gap", []byte{tagHistogram, 1, 1, 0, 1}},
		{"index past +Inf", []byte{tagHistogram, 1, 1, 0xbe, 0x02, 1}}, // gap 318
		{"empty interval", []byte{tagHistogram, 1, 1, 1, 0}},
		{"truncated", []byte{tagHistogram, 1, 2, 1, 1}},
		{"trailing", []byte{tagHistogram, 1, 0, 0}},
		{"overflow", []byte{tagHistogram, 1, 2, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 1}},
	}
	for _, tt := range tests {
		var h Histogram
		h.Add(3)
		err := h.UnmarshalBinary(tt.in)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !errors.Is(err, ErrInvalidEncoding) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("%s: %v", tt.name, err)
		}
		if h.Count() != 1 {
			t.Errorf("%s: failed decode modified the histogram", tt.name)
		}
	}
}

func TestHistogramAddAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	h := new(Histogram)
	v := uint64(0)
	if n := testing.AllocsPerRun(1000, func() { h.Add(v); v = v*3 + 7 }); n != 0 {
		t.Fatalf("Add: %v allocs", n)
	}
}
