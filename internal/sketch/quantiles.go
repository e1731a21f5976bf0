package sketch

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"

	"github.com/DataDog/sketches-go/ddsketch"
	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

const (
	// QuantilesExactLimit is the number of values a Quantiles keeps
	// verbatim; up to it every quantile is exact (as the reference's KLL
	// with k = 200 is exact up to 200 items).
	QuantilesExactLimit = 200

	// QuantilesRelativeAccuracy is the DDSketch guarantee beyond the exact
	// limit: a returned quantile v of true quantile x satisfies
	// |v − x| ≤ 0.01·x, as long as x lies within the 2048 highest bins
	// (a value range of about 6·10^17 below the maximum; lower values are
	// collapsed into the lowest bin).
	QuantilesRelativeAccuracy = 0.01

	quantilesMaxBins = 2048
)

// ddMapping is shared by every DDSketch of the package: a mapping is
// immutable, and a single value guarantees that all sketches merge.
var ddMapping = mustMapping()

func mustMapping() *mapping.CubicallyInterpolatedMapping {
	m, err := mapping.NewCubicallyInterpolatedMapping(QuantilesRelativeAccuracy)
	if err != nil {
		panic(err) // constant argument: cannot happen
	}
	return m
}

var (
	maxQuantileValue = ddMapping.MaxIndexableValue()
	minDDIndex       = ddMapping.Index(ddMapping.MinIndexableValue())
	maxDDIndex       = ddMapping.Index(maxQuantileValue)
)

func newDD() *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(ddMapping,
		store.NewCollapsingLowestDenseStore(quantilesMaxBins),
		store.NewCollapsingLowestDenseStore(quantilesMaxBins))
}

// Quantiles summarizes a distribution of non-negative values: exact while it
// holds at most QuantilesExactLimit values, then a DDSketch with 1 %
// relative accuracy. Quantile q is taken at inclusive rank: the
// ceil(q·n)-th smallest value (the smallest for q = 0), as DataSketches
// does.
//
// Results depend only on the multiset of values added, whatever the split
// across merged sketches: two exact sketches whose union fits stay exact,
// otherwise everything goes into the DDSketch, whose bin counts are sums.
// (Sum alone may differ in the last bits, float addition not being
// associative.)
//
// The zero value is an empty sketch. Add does not allocate once the exact
// buffer and the DDSketch bins exist (the first bucket warms them; Reset
// keeps them).
type Quantiles struct {
	n        uint64
	sum      float64
	min, max float64
	exact    []float64
	dd       *ddsketch.DDSketch // allocated on first use, kept by Reset
	sketched bool               // values live in dd, exact is empty
}

func validQuantileValue(v float64) bool { return v >= 0 && v <= maxQuantileValue }

func (q *Quantiles) note(v float64, k uint64) {
	if q.n == 0 {
		q.min, q.max = v, v
	} else {
		q.min = min(q.min, v)
		q.max = max(q.max, v)
	}
	q.n += k
	q.sum += v * float64(k)
}

// Add records v. NaN, negative, infinite and absurdly large values (above
// about 1.7e308, the sketch's indexable range) are ignored: every metric
// here is a size, a duration, a ratio or a count.
func (q *Quantiles) Add(v float64) {
	if !validQuantileValue(v) {
		return
	}
	q.note(v, 1)
	if !q.sketched {
		if len(q.exact) < QuantilesExactLimit {
			if q.exact == nil {
				q.exact = make([]float64, 0, QuantilesExactLimit)
			}
			q.exact = append(q.exact, v)
			return
		}
		q.toSketch()
	}
	q.ddAdd(v, 1)
}

// AddN records k copies of v (same filtering as Add).
func (q *Quantiles) AddN(v float64, k uint64) {
	if k == 0 || !validQuantileValue(v) {
		return
	}
	q.note(v, k)
	if !q.sketched {
		if uint64(len(q.exact))+k <= QuantilesExactLimit {
			if q.exact == nil {
				q.exact = make([]float64, 0, QuantilesExactLimit)
			}
			for ; k > 0; k-- {
				q.exact = append(q.exact, v)
			}
			return
		}
		q.toSketch()
	}
	q.ddAdd(v, float64(k))
}

func (q *Quantiles) ddAdd(v, k float64) {
	// The only errors are for NaN, out-of-range values or negative counts,
	// which the callers have filtered out.
	_ = q.dd.AddWithCount(v, k)
}

func (q *Quantiles) toSketch() {
	if q.dd == nil {
		q.dd = newDD()
	} else {
		q.dd.Clear()
	}
	for _, v := range q.exact {
		q.ddAdd(v, 1)
	}
	q.exact = q.exact[:0]
	q.sketched = true
}

// Count returns the number of values recorded.
func (q *Quantiles) Count() uint64 { return q.n }

// Sum returns the sum of the values recorded.
func (q *Quantiles) Sum() float64 { return q.sum }

// Max returns the largest value recorded (exact), 0 when empty.
func (q *Quantiles) Max() float64 { return q.max }

// Min returns the smallest value recorded (exact), 0 when empty.
func (q *Quantiles) Min() float64 { return q.min }

// Exact reports whether quantiles are exact (at most QuantilesExactLimit
// values recorded).
func (q *Quantiles) Exact() bool { return !q.sketched }

// Quantile returns the value at quantile p (clamped to [0, 1]), or NaN when
// the sketch is empty or p is NaN. It does not modify q.
func (q *Quantiles) Quantile(p float64) float64 {
	var out [1]float64
	return q.Quantiles([]float64{p}, out[:0])[0]
}

// Quantiles appends the values at the quantiles qs to dst (see Quantile).
// It reads the values or bins once for all of qs.
func (q *Quantiles) Quantiles(qs []float64, dst []float64) []float64 {
	if q.n == 0 {
		for range qs {
			dst = append(dst, math.NaN())
		}
		return dst
	}
	var sorted []float64
	var bins []cumBin
	if q.sketched {
		bins = q.cumBins()
	} else {
		sorted = slices.Sorted(slices.Values(q.exact))
	}
	for _, p := range qs {
		switch {
		case math.IsNaN(p):
			dst = append(dst, math.NaN())
		case q.sketched:
			dst = append(dst, q.binAt(bins, p))
		default:
			dst = append(dst, exactAt(sorted, p))
		}
	}
	return dst
}

// rankWeight is the inclusive rank of quantile p among n values, in
// [1, n]: ceil(p·n) computed in float64 like DataSketches.
func rankWeight(p float64, n float64) float64 {
	p = min(max(p, 0), 1)
	return max(math.Ceil(p*n), 1)
}

func exactAt(sorted []float64, p float64) float64 {
	w := int(rankWeight(p, float64(len(sorted))))
	return sorted[min(w, len(sorted))-1]
}

// cumBin is a non-empty DDSketch bin: its representative value and the
// count of values up to and including it.
type cumBin struct{ value, cum float64 }

// cumBins lists the bins in ascending value order, the zero bin first.
func (q *Quantiles) cumBins() []cumBin {
	var bins []cumBin
	cum := q.dd.GetZeroCount()
	if cum > 0 {
		bins = append(bins, cumBin{0, cum})
	}
	q.dd.GetPositiveValueStore().ForEach(func(index int, count float64) bool {
		cum += count
		bins = append(bins, cumBin{ddMapping.Value(index), cum})
		return false
	})
	return bins
}

// binAt returns the first bin whose cumulative count reaches the inclusive
// rank. The bin's representative value is within 1 % of every value in the
// bin, so of the true quantile; clamping to the exact extremes only moves it
// closer.
func (q *Quantiles) binAt(bins []cumBin, p float64) float64 {
	v := q.max
	if len(bins) > 0 {
		w := rankWeight(p, bins[len(bins)-1].cum)
		i, _ := slices.BinarySearchFunc(bins, w, func(b cumBin, w float64) int { return cmp.Compare(b.cum, w) })
		if i < len(bins) {
			v = bins[i].value
		}
	}
	return min(max(v, q.min), q.max)
}

// Merge adds other's values to q. other is not modified.
func (q *Quantiles) Merge(other *Quantiles) {
	if other == nil || other.n == 0 {
		return
	}
	if other == q {
		other = q.Clone()
	}
	if !q.sketched && !other.sketched && len(q.exact)+len(other.exact) <= QuantilesExactLimit {
		if q.exact == nil {
			q.exact = make([]float64, 0, QuantilesExactLimit)
		}
		q.exact = append(q.exact, other.exact...)
	} else {
		if !q.sketched {
			q.toSketch()
		}
		if other.sketched {
			// Cannot fail: both use ddMapping.
			_ = q.dd.MergeWith(other.dd)
		} else {
			for _, v := range other.exact {
				q.ddAdd(v, 1)
			}
		}
	}
	if q.n == 0 {
		q.min, q.max = other.min, other.max
	} else {
		q.min = min(q.min, other.min)
		q.max = max(q.max, other.max)
	}
	q.n += other.n
	q.sum += other.sum
}

// Clone returns a deep copy of q.
func (q *Quantiles) Clone() *Quantiles {
	c := *q
	c.exact = slices.Clone(q.exact)
	if q.dd != nil {
		c.dd = q.dd.Copy()
	}
	return &c
}

// Reset empties q, keeping its buffers.
func (q *Quantiles) Reset() {
	q.n, q.sum, q.min, q.max = 0, 0, 0, 0
	q.exact = q.exact[:0]
	q.sketched = false
}

// Encoding modes of a Quantiles.
const (
	qModeEmpty  = 0
	qModeExact  = 1
	qModeSketch = 2
)

// MarshalBinary encodes q; see AppendBinary.
func (q *Quantiles) MarshalBinary() ([]byte, error) { return q.AppendBinary(nil) }

// AppendBinary appends the encoding of q to dst:
//
//	'Q' 0x01 0x00                                      empty
//	'Q' 0x01 0x01 n sum v1 … vn                         exact, 1 ≤ n ≤ 200
//	'Q' 0x01 0x02 n sum min max len dd[len]             DDSketch, n > 200
//
// n and len are unsigned varints, floats are IEEE-754 little-endian, dd is
// the DDSketch binary encoding (sketches-go Encode, index mapping omitted:
// it is fixed, cubically interpolated with 1 % relative accuracy, for format version 1).
func (q *Quantiles) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, tagQuantiles, encVersion1)
	switch {
	case q.n == 0:
		return append(dst, qModeEmpty), nil
	case !q.sketched:
		dst = append(dst, qModeExact)
		dst = binary.AppendUvarint(dst, q.n)
		dst = appendFloat64(dst, q.sum)
		for _, v := range q.exact {
			dst = appendFloat64(dst, v)
		}
		return dst, nil
	}
	dst = append(dst, qModeSketch)
	dst = binary.AppendUvarint(dst, q.n)
	dst = appendFloat64(dst, q.sum)
	dst = appendFloat64(dst, q.min)
	dst = appendFloat64(dst, q.max)
	var dd []byte
	q.dd.Encode(&dd, true)
	dst = binary.AppendUvarint(dst, uint64(len(dd)))
	return append(dst, dd...), nil
}

// UnmarshalBinary replaces q with the decoded sketch. Malformed input
// returns an error wrapping ErrInvalidEncoding and leaves q unchanged.
func (q *Quantiles) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(tagQuantiles, "quantiles")
	var tmp Quantiles
	if err := tmp.decode(&d); err != nil {
		return err
	}
	if err := d.finish(); err != nil {
		return err
	}
	// Keep q's buffers when they exist (decoding into a reused bucket).
	q.Reset()
	q.Merge(&tmp)
	q.sum = tmp.sum
	return nil
}

// decode reads a Quantiles body (after the envelope) into an empty q.
func (q *Quantiles) decode(d *decoder) error {
	mode := d.byte()
	if d.err != nil {
		return d.err
	}
	switch mode {
	case qModeEmpty:
		return nil
	case qModeExact:
		n := d.uvarint()
		sum := d.float64()
		if d.err != nil {
			return d.err
		}
		if n < 1 || n > QuantilesExactLimit {
			return invalidf("quantiles: %d exact values", n)
		}
		for range n {
			v := d.float64()
			if d.err != nil {
				return d.err
			}
			if !validQuantileValue(v) {
				return invalidf("quantiles: value %v", v)
			}
			q.Add(v)
		}
		if !validSum(sum) {
			return invalidf("quantiles: sum %v", sum)
		}
		q.sum = sum
		return nil
	case qModeSketch:
		n := d.uvarint()
		sum, lo, hi := d.float64(), d.float64(), d.float64()
		ddb := d.bytes(d.uvarint())
		if d.err != nil {
			return d.err
		}
		if n <= QuantilesExactLimit {
			return invalidf("quantiles: sketch of %d values", n)
		}
		if !validQuantileValue(lo) || !validQuantileValue(hi) || lo > hi || !validSum(sum) {
			return invalidf("quantiles: min %v max %v sum %v", lo, hi, sum)
		}
		dd, err := decodeDD(ddb)
		if err != nil {
			return err
		}
		if dd.GetCount() != float64(n) {
			return invalidf("quantiles: sketch holds %v values, header says %d", dd.GetCount(), n)
		}
		*q = Quantiles{n: n, sum: sum, min: lo, max: hi, dd: dd, sketched: true}
		return nil
	}
	return invalidf("quantiles: mode %d", mode)
}

func validSum(s float64) bool { return s >= 0 } // NaN fails; +Inf can be a real overflow

// maxExactCount is the largest integer a float64 count holds exactly.
const maxExactCount = 1 << 53

func validBinCount(c float64) bool {
	return c >= 0 && c <= maxExactCount && c == math.Trunc(c)
}

// decodeDD parses the sketches-go binary format itself, with the library's
// primitives, instead of calling ddsketch.DecodeDDSketch: the library trusts
// its input (negative, NaN or fractional counts, indexes far outside the
// mapping's range, ignored store errors), and hostile bytes must produce an
// error, not a poisoned or panicking sketch. Only what this package writes
// is accepted: a zero count and a positive store, no index mapping, no
// negative store.
func decodeDD(b []byte) (*ddsketch.DDSketch, error) {
	dd := newDD()
	pos := dd.GetPositiveValueStore()
	var total float64
	add := func(index int64, count float64) error {
		if !validBinCount(count) {
			return invalidf("quantiles: bin count %v", count)
		}
		if count == 0 {
			return nil
		}
		if index < int64(minDDIndex) || index > int64(maxDDIndex) {
			return invalidf("quantiles: bin index %d out of range", index)
		}
		total += count
		if total > maxExactCount {
			return invalidf("quantiles: too many values")
		}
		pos.AddWithCount(int(index), count)
		return nil
	}
	for len(b) > 0 {
		flag, err := enc.DecodeFlag(&b)
		if err != nil {
			return nil, invalidf("quantiles: %v", err)
		}
		if flag == enc.FlagZeroCountVarFloat {
			c, err := enc.DecodeVarfloat64(&b)
			if err != nil || !validBinCount(c) {
				return nil, invalidf("quantiles: zero count")
			}
			total += c
			if total > maxExactCount {
				return nil, invalidf("quantiles: too many values")
			}
			_ = dd.AddWithCount(0, c) // 0 and a valid count: cannot fail
			continue
		}
		if flag.Type() != enc.FlagTypePositiveStore {
			return nil, invalidf("quantiles: unexpected DDSketch flag %#x", flag)
		}
		if err := decodeDDBins(&b, flag.SubFlag(), add); err != nil {
			return nil, err
		}
	}
	return dd, nil
}

func decodeDDBins(b *[]byte, mode enc.SubFlag, add func(int64, float64) error) error {
	n, err := enc.DecodeUvarint64(b)
	if err != nil {
		return invalidf("quantiles: bin count: %v", err)
	}
	// Every bin takes at least one byte: a count beyond the input is a lie.
	if n > uint64(len(*b)) {
		return invalidf("quantiles: %d bins in %d bytes", n, len(*b))
	}
	switch mode {
	case enc.BinEncodingIndexDeltasAndCounts, enc.BinEncodingIndexDeltas:
		index := int64(0)
		for range n {
			delta, err := enc.DecodeVarint64(b)
			if err != nil {
				return invalidf("quantiles: bin index: %v", err)
			}
			index += delta
			count := 1.0
			if mode == enc.BinEncodingIndexDeltasAndCounts {
				if count, err = enc.DecodeVarfloat64(b); err != nil {
					return invalidf("quantiles: bin count: %v", err)
				}
			}
			if err := add(index, count); err != nil {
				return err
			}
		}
	case enc.BinEncodingContiguousCounts:
		index, err1 := enc.DecodeVarint64(b)
		delta, err2 := enc.DecodeVarint64(b)
		if err1 != nil || err2 != nil {
			return invalidf("quantiles: contiguous bins header")
		}
		for range n {
			count, err := enc.DecodeVarfloat64(b)
			if err != nil {
				return invalidf("quantiles: bin count: %v", err)
			}
			if err := add(index, count); err != nil {
				return err
			}
			index += delta
		}
	default:
		return invalidf("quantiles: bin encoding %#x", mode)
	}
	return nil
}
