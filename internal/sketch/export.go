package sketch

import "math"

// ForEachValue calls fn with the distribution q holds, for export as a histogram: while q is
// exact, every recorded value with count 1 (in insertion order); once sketched, every
// non-empty DDSketch bin as its representative value and its count, the zero bin (values
// below the sketch's indexable minimum, about 1e-308) as value 0, then the bins in increasing
// order. Each representative value is within QuantilesRelativeAccuracy of every value of its
// bin. The counts add up to Count(). q is not modified; fn must not modify q.
func (q *Quantiles) ForEachValue(fn func(value float64, count uint64)) {
	if q.n == 0 {
		return
	}
	if !q.sketched {
		for _, v := range q.exact {
			fn(v, 1)
		}
		return
	}
	// Counts are whole numbers below 2^53 (Add and the decoder guarantee it).
	if z := q.dd.GetZeroCount(); z > 0 {
		fn(0, uint64(z))
	}
	q.dd.GetPositiveValueStore().ForEach(func(index int, count float64) bool {
		if count > 0 {
			fn(ddMapping.Value(index), uint64(math.Round(count)))
		}
		return false
	})
}
