package export

import (
	"math"
	"slices"

	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Exponential histogram parameters (see ExpHistogram).
const (
	// DefaultScale is the scale every exponential histogram starts at: buckets grow by a factor
	// 2^(2^-5) = 2^(1/32) ≈ 1.0219, the width of the quantile sketch's own bins (DDSketch with
	// 1 % relative accuracy: factor 1.01/0.99 ≈ 1.0202). Scale 6 would halve the bucket width
	// but not the sketch's error, and double the series a Prometheus-style backend stores.
	DefaultScale = 5
	// MaxBuckets bounds the buckets of one histogram: a distribution spanning more than
	// MaxBuckets at the current scale (10 doublings at scale 5, so 1 ms to 1 s) is downscaled,
	// as OpenTelemetry SDKs do. Downscaling merges pairs of buckets, so cumulative counts stay
	// additive; a histogram never scales back up.
	MaxBuckets = 320
	// minScale is the lowest scale downscaling reaches: at −4 (factor 65536 per bucket) the
	// whole float64 range fits 128 buckets, and −4 is the lowest Prometheus native schema.
	minScale = -4
)

// ExpHistogram is a cumulative base-2 exponential histogram, the data model of OTLP's
// ExponentialHistogram and of Prometheus native histograms: at scale s, bucket i counts the
// values in (2^(i·2^-s), 2^((i+1)·2^-s)]; ZeroCount counts the values equal to 0 (zero
// threshold 0). Only non-negative values exist here (every quantile metric is a size, a
// duration, a ratio or a count). Counts[k] is bucket Offset+k.
//
// Filled from a quantile sketch (AddQuantiles), a bucket's count is the sketch's: exact values
// land in their own bucket; a DDSketch bin lands, whole, in the bucket of its representative
// value, which is within 1 % of every value of the bin. A quantile read from the histogram
// (by a backend interpolating within a bucket) is therefore within 1 % plus one bucket width
// (2.2 % at scale 5) of the true value.
type ExpHistogram struct {
	Scale     int32
	ZeroCount uint64
	Offset    int32
	Counts    []uint64
	Count     uint64
	Sum       float64
	Min, Max  float64 // of all values added; meaningful when Count > 0
}

// NewExpHistogram returns an empty histogram at DefaultScale.
func NewExpHistogram() *ExpHistogram { return &ExpHistogram{Scale: DefaultScale} }

// ExpIndex is the index of the bucket holding v > 0 at the given scale.
func ExpIndex(v float64, scale int32) int32 {
	frac, exp := math.Frexp(v) // v = frac·2^exp, frac in [0.5, 1)
	if scale <= 0 {
		// Bucket of 2^e < v ≤ 2^(e+1) at scale 0, then merged 2^-scale at a time.
		e := int32(exp - 1)
		if frac == 0.5 {
			e-- // an exact power of two is the upper bound of the bucket below
		}
		return e >> uint(-scale)
	}
	if frac == 0.5 {
		// Exact powers of two are bucket boundaries: computed exactly, not through Log2.
		return int32(exp-1)<<uint(scale) - 1
	}
	// floor(log2(v)·2^s) is the bucket for a v strictly inside it; a v within rounding of an
	// inner boundary may land one bucket off, which the bucket width already bounds.
	idx := math.Floor(math.Log2(v) * math.Ldexp(1, int(scale)))
	return int32(idx)
}

// ExpLowerBound is the lower (exclusive) bound of bucket i at the given scale.
func ExpLowerBound(i, scale int32) float64 {
	return math.Exp2(float64(i) * math.Ldexp(1, -int(scale)))
}

// Add counts n copies of v. Negative, NaN and infinite values are ignored.
func (h *ExpHistogram) Add(v float64, n uint64) {
	if n == 0 || !(v >= 0) || math.IsInf(v, 1) {
		return
	}
	h.note(v, v, n)
	h.Sum += v * float64(n)
	h.addCount(v, n)
}

// note updates Count, Min and Max for n values between lo and hi.
func (h *ExpHistogram) note(lo, hi float64, n uint64) {
	if h.Count == 0 {
		h.Min, h.Max = lo, hi
	} else {
		h.Min = min(h.Min, lo)
		h.Max = max(h.Max, hi)
	}
	h.Count += n
}

// addCount adds n to the bucket of v (the zero count for 0), leaving Count, Sum, Min and Max.
func (h *ExpHistogram) addCount(v float64, n uint64) {
	if v == 0 {
		h.ZeroCount += n
		return
	}
	idx := ExpIndex(v, h.Scale)
	h.fit(idx, idx)
	idx = ExpIndex(v, h.Scale) // the scale may have dropped
	h.Counts[idx-h.Offset] += n
}

// AddQuantiles adds every value of q (see ExpHistogram for the precision) with q's exact sum,
// minimum and maximum.
func (h *ExpHistogram) AddQuantiles(q *sketch.Quantiles) {
	if q == nil || q.Count() == 0 {
		return
	}
	var n uint64
	q.ForEachValue(func(v float64, c uint64) {
		if v >= 0 && !math.IsInf(v, 1) {
			h.addCount(v, c)
			n += c
		}
	})
	if n == 0 {
		return
	}
	// The sketch's sum, minimum and maximum are exact where the bins' values are not.
	h.note(q.Min(), q.Max(), n)
	h.Sum += q.Sum()
}

// Merge adds o's counts to h, at the lower of the two scales.
func (h *ExpHistogram) Merge(o *ExpHistogram) {
	if o == nil || o.Count == 0 {
		return
	}
	if o.Scale < h.Scale {
		h.downscale(h.Scale - o.Scale)
	}
	shift := uint(o.Scale - h.Scale)
	if len(o.Counts) > 0 {
		lo, hi := o.Offset>>shift, (o.Offset+int32(len(o.Counts))-1)>>shift
		h.fit(lo, hi)
		shift = uint(o.Scale - h.Scale)
		for k, c := range o.Counts {
			if c != 0 {
				h.Counts[(o.Offset+int32(k))>>shift-h.Offset] += c
			}
		}
	}
	if h.Count == 0 {
		h.Min, h.Max = o.Min, o.Max
	} else {
		h.Min = min(h.Min, o.Min)
		h.Max = max(h.Max, o.Max)
	}
	h.ZeroCount += o.ZeroCount
	h.Count += o.Count
	h.Sum += o.Sum
}

// fit makes Counts cover buckets lo..hi (indexes at the current scale), downscaling first
// when the covered span would exceed MaxBuckets.
func (h *ExpHistogram) fit(lo, hi int32) {
	if len(h.Counts) > 0 {
		lo = min(lo, h.Offset)
		hi = max(hi, h.Offset+int32(len(h.Counts))-1)
	}
	var k int32
	for h.Scale-k > minScale && int64(hi>>uint(k))-int64(lo>>uint(k))+1 > MaxBuckets {
		k++
	}
	if k > 0 {
		h.downscale(k)
		lo, hi = lo>>uint(k), hi>>uint(k)
	}
	if len(h.Counts) == 0 {
		h.Offset = lo
		h.Counts = make([]uint64, hi-lo+1)
		return
	}
	if lo < h.Offset {
		h.Counts = slices.Insert(h.Counts, 0, make([]uint64, h.Offset-lo)...)
		h.Offset = lo
	}
	if end := h.Offset + int32(len(h.Counts)) - 1; hi > end {
		h.Counts = append(h.Counts, make([]uint64, hi-end)...)
	}
}

// downscale lowers the scale by k, merging 2^k adjacent buckets into one.
func (h *ExpHistogram) downscale(k int32) {
	if k <= 0 {
		return
	}
	h.Scale -= k
	if len(h.Counts) == 0 {
		return
	}
	newOff := h.Offset >> uint(k)
	last := (h.Offset + int32(len(h.Counts)) - 1) >> uint(k)
	out := make([]uint64, last-newOff+1)
	for j, c := range h.Counts {
		out[(h.Offset+int32(j))>>uint(k)-newOff] += c
	}
	h.Offset, h.Counts = newOff, out
}

// Clone returns a deep copy.
func (h *ExpHistogram) Clone() *ExpHistogram {
	c := *h
	c.Counts = slices.Clone(h.Counts)
	return &c
}

// trimmed returns the offset and counts without the leading and trailing empty buckets.
func (h *ExpHistogram) trimmed() (int32, []uint64) {
	lo, hi := 0, len(h.Counts)
	for lo < hi && h.Counts[lo] == 0 {
		lo++
	}
	for hi > lo && h.Counts[hi-1] == 0 {
		hi--
	}
	return h.Offset + int32(lo), h.Counts[lo:hi]
}

// ExplicitHistogram accumulates pktvisor's fixed-bound histograms (sketch.Histogram, bounds
// sketch.HistogramBounds) as counts per bound interval, cumulated over buckets.
type ExplicitHistogram struct {
	counts [sketch.NumHistogramBounds + 1]uint64 // per interval, then above the last bound
	Count  uint64
}

var histogramBounds = sketch.HistogramBounds()

// AddBuckets adds one rendered histogram, given as sketch.Histogram.Buckets gives it:
// cumulative counts of its non-empty intervals, then +Inf with the total.
func (h *ExplicitHistogram) AddBuckets(bs []sketch.Bucket) {
	var prev uint64
	for _, b := range bs {
		c := b.Cumulative - prev
		prev = b.Cumulative
		if b.Inf {
			h.counts[len(h.counts)-1] += c
			h.Count += b.Cumulative
			continue
		}
		if i, ok := slices.BinarySearch(histogramBounds, b.UpperBound); ok {
			h.counts[i] += c
		}
	}
}

// Merge adds o's counts.
func (h *ExplicitHistogram) Merge(o *ExplicitHistogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.Count += o.Count
}

// Buckets returns the upper bounds of the intervals that ever held a value and their counts,
// then the count above the last bound: OTLP's explicit_bounds and bucket_counts. Intervals
// that never held a value are left out (their count, zero, changes nothing), so a series'
// bounds only grow. The counts add up to Count.
func (h *ExplicitHistogram) Buckets() (bounds []float64, counts []uint64) {
	for i, c := range h.counts[:len(h.counts)-1] {
		if c != 0 {
			bounds = append(bounds, float64(histogramBounds[i]))
			counts = append(counts, c)
		}
	}
	return bounds, append(counts, h.counts[len(h.counts)-1])
}
