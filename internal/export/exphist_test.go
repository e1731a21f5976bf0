package export

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Bucket indexes worked out by hand from the definition: bucket i of scale s is
// (2^(i/2^s), 2^((i+1)/2^s)].
func TestExpIndexByHand(t *testing.T) {
	for _, c := range []struct {
		v     float64
		scale int32
		want  int32
	}{
		{1, 0, -1},  // (0.5, 1]
		{1.5, 0, 0}, // (1, 2]
		{2, 0, 0},   // upper bound of (1, 2]
		{2.0001, 0, 1},
		{3, 0, 1}, // (2, 4]
		{4, 0, 1},
		{0.75, 0, -1},
		{0.5, 0, -2}, // (0.25, 0.5]
		{1, 1, -1},   // (2^-0.5, 1]
		{1.2, 1, 0},  // (1, 1.414]
		{1.5, 1, 1},  // (1.414, 2]
		{2, 1, 1},
		{1024, 1, 19}, // 2^10 = upper bound of bucket 19
		{1025, 1, 20},
		{2, -1, 0}, // (1, 4]
		{4, -1, 0},
		{5, -1, 1},  // (4, 16]
		{1, -1, -1}, // (1/4, 1]
		{16, -2, 0}, // (1, 16]
		{17, -2, 1},
		{1000, 5, 318}, // log2(1000)·32 = 318.9
		{1e6, 5, 637},  // log2(1e6)·32 = 637.8
	} {
		if got := ExpIndex(c.v, c.scale); got != c.want {
			t.Errorf("ExpIndex(%v, %d) = %d, want %d", c.v, c.scale, got, c.want)
		}
	}
}

// Every value lies inside the bucket its index names (within a relative 1e-12 at the bounds,
// where float rounding may pick the neighbour).
func TestExpIndexBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := math.Exp(rng.NormFloat64() * 30)
		scale := int32(rng.IntN(13)) - 4
		i := ExpIndex(v, scale)
		lo, hi := ExpLowerBound(i, scale), ExpLowerBound(i+1, scale)
		if !(v > lo*(1-1e-12) && v <= hi*(1+1e-12)) {
			t.Fatalf("v=%v scale %d: index %d covers (%v, %v]", v, scale, i, lo, hi)
		}
	}
}

// Adding values to one histogram equals adding them to two at different scales and merging.
func TestExpMergeAcrossScales(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all, a, b := NewExpHistogram(), NewExpHistogram(), NewExpHistogram()
	b.downscale(3) // scale 2
	for i := range 5000 {
		v := math.Exp(rng.NormFloat64() * 2)
		if i%7 == 0 {
			v = 0
		}
		all.Add(v, 1)
		if i%2 == 0 {
			a.Add(v, 1)
		} else {
			b.Add(v, 1)
		}
	}
	a.Merge(b)
	all.downscale(all.Scale - a.Scale)
	ao, ac := a.trimmed()
	wo, wc := all.trimmed()
	if a.Scale != 2 || ao != wo || !slices.Equal(ac, wc) || a.ZeroCount != all.ZeroCount || a.Count != all.Count {
		t.Fatalf("merged scale %d off %d zero %d count %d; want scale 2 off %d zero %d count %d", a.Scale, ao, a.ZeroCount, a.Count, wo, all.ZeroCount, all.Count)
	}
	if math.Abs(a.Sum-all.Sum) > 1e-9*all.Sum || a.Min != all.Min || a.Max != all.Max {
		t.Fatalf("sum/min/max %v %v %v, want %v %v %v", a.Sum, a.Min, a.Max, all.Sum, all.Min, all.Max)
	}
}

// A histogram never holds more than MaxBuckets buckets: a wide range is downscaled, counts kept.
func TestExpMaxBuckets(t *testing.T) {
	h := NewExpHistogram()
	var n uint64
	for e := -300; e <= 300; e += 3 {
		h.Add(math.Pow(10, float64(e)), 2)
		n += 2
	}
	h.Add(math.MaxFloat64, 1)
	h.Add(5e-324, 1) // smallest subnormal
	n += 2
	var sum uint64
	for _, c := range h.Counts {
		sum += c
	}
	if len(h.Counts) > MaxBuckets || h.Scale < minScale || sum != n || h.Count != n {
		t.Fatalf("%d buckets at scale %d, %d counted of %d (Count %d)", len(h.Counts), h.Scale, sum, n, h.Count)
	}
	if h.Scale >= 0 {
		t.Fatalf("scale %d: 2000 doublings cannot fit %d buckets at scale ≥ 0", h.Scale, MaxBuckets)
	}
}

// The exponential histogram of a quantile sketch locates every quantile of the exact values:
// the true value at a rank lies in the histogram's bucket for that rank, widened by the
// sketch's 1 % (a DDSketch bin lands whole in the bucket of its representative value).
func TestExpFromQuantilesVsExact(t *testing.T) {
	for _, n := range []int{50, 200, 201, 20000} {
		rng := rand.New(rand.NewPCG(uint64(n), 9))
		var q sketch.Quantiles
		vals := make([]float64, 0, n)
		for range n {
			v := math.Round(math.Exp(7+rng.NormFloat64()*1.5)) + float64(rng.IntN(2)) // µs, some 0 … many
			if rng.IntN(50) == 0 {
				v = 0
			}
			q.Add(v)
			vals = append(vals, v)
		}
		slices.Sort(vals)
		h := NewExpHistogram()
		h.AddQuantiles(&q)
		if h.Count != uint64(n) {
			t.Fatalf("n=%d: count %d", n, h.Count)
		}
		var exactSum float64
		for _, v := range vals {
			exactSum += v
		}
		if math.Abs(h.Sum-exactSum) > 1e-9*exactSum || h.Min != vals[0] || h.Max != vals[n-1] {
			t.Fatalf("n=%d: sum %v min %v max %v, want %v %v %v", n, h.Sum, h.Min, h.Max, exactSum, vals[0], vals[n-1])
		}
		acc := 0.0
		if !q.Exact() {
			acc = sketch.QuantilesRelativeAccuracy
		}
		for _, p := range []float64{0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1} {
			rank := uint64(max(math.Ceil(p*float64(n)), 1))
			x := vals[rank-1]
			// Walk the histogram to the bucket holding the rank.
			cum := h.ZeroCount
			if rank <= cum {
				if x != 0 {
					t.Errorf("n=%d p=%v: rank %d in the zero bucket, true value %v", n, p, rank, x)
				}
				continue
			}
			found := false
			for k, c := range h.Counts {
				cum += c
				if cum >= rank {
					i := h.Offset + int32(k)
					lo, hi := ExpLowerBound(i, h.Scale), ExpLowerBound(i+1, h.Scale)
					if !(x > lo*(1-acc)*(1-1e-12) && x <= hi*(1+acc)*(1+1e-12)) {
						t.Errorf("n=%d p=%v: true %v outside bucket (%v, %v] ± %v", n, p, x, lo, hi, acc)
					}
					found = true
					break
				}
			}
			if !found {
				t.Errorf("n=%d p=%v: rank %d beyond the histogram", n, p, rank)
			}
		}
	}
}

// ExplicitHistogram cumulates pktvisor histograms bound by bound, by hand.
func TestExplicitHistogram(t *testing.T) {
	var h1, h2 sketch.Histogram
	for _, v := range []uint64{0, 3, 3, 10, 1000} {
		h1.Add(v)
	}
	for _, v := range []uint64{3, 11, 1e18} { // 1e18 is above the last bound (8.8e17)
		h2.Add(v)
	}
	var e ExplicitHistogram
	e.AddBuckets(h1.Buckets(nil))
	e.AddBuckets(h2.Buckets(nil))
	bounds, counts := e.Buckets()
	// Bounds are 0..8 then 10, 11, 12…: 0 → [0], 3 → [3], 10 → [10], 11 → [11], 1000 → [1000].
	wantB := []float64{0, 3, 10, 11, 1000}
	wantC := []uint64{1, 3, 1, 1, 1, 1}
	if !slices.Equal(bounds, wantB) || !slices.Equal(counts, wantC) || e.Count != 8 {
		t.Fatalf("bounds %v counts %v count %d; want %v %v 8", bounds, counts, e.Count, wantB, wantC)
	}
}
