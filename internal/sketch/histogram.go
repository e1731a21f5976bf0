package sketch

import (
	"encoding/binary"
	"strconv"
)

// histogramBounds are pktvisor v1's histogram_us bounds for uint64:
// T(pow(10, float(b)/18.0f) · pow(10, e)) for e in −9..17 and b in 0..17,
// consecutive duplicates removed — 315 values 0, 1, 2, …, 8, 10, 11, 12, 14, …
var histogramBounds = computeHistogramBounds()

// NumHistogramBounds is the number of finite bounds.
const NumHistogramBounds = 315

// pow10 holds 10^e exactly for e in 0..17 (every such power is a float64
// without rounding); e < 0 makes every bound truncate to 0 and is handled
// without a table.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17}

func computeHistogramBounds() []uint64 {
	var out []uint64
	for e := -9; e <= 17; e++ {
		for b := 0; b < 18; b++ {
			var bound uint64
			if e >= 0 {
				bound = uint64(pow10Frac[b] * pow10[e])
			} // else frac·10^e < 10^(17/18)/10 < 1: truncates to 0
			if len(out) == 0 || out[len(out)-1] != bound {
				out = append(out, bound)
			}
		}
	}
	return out
}

// pow10Frac[b] is 10^x for x = float64(float32(b)/18), written with 30
// significant digits so that the compiler rounds each to the nearest
// float64. The reference evaluates these with glibc's pow, which returns
// exactly these values (checked against glibc 2.36); Go's math.Pow is one
// ulp off for b = 5, 8 and 13, which would
// change bounds of 10^16 and more. The test recomputes every entry with an
// independent 600-bit method.
var pow10Frac = [18]float64{
	1,
	1.13646366746887537608684744637,
	1.29154966747680654776716963704,
	1.46779928440938362043001718472,
	1.66810054355944956521155956051,
	1.89573571022410935703684650811,
	2.15443473931269862606460894037,
	2.44843678415946392301528547923,
	2.78255942342333109633401664154,
	3.16227766016837933199889354443,
	3.59381388301890832221000442635,
	4.08423859039225710793178110846,
	4.64158904595737568676010914991,
	5.27499690282134519465129009274,
	5.99484268602513732568856706596,
	6.81292037890038345551059826546,
	7.74263694488198079148548673982,
	8.79922489895880196320147855994,
}

// HistogramBounds returns a copy of the finite bucket upper bounds, in
// increasing order.
func HistogramBounds() []uint64 { return append([]uint64(nil), histogramBounds...) }

// Histogram counts uint64 values into pktvisor's fixed histogram_us
// intervals: a value v is counted in the first bound ≥ v, values above the
// last bound only in +Inf. Counts are exact and merge by addition (the
// reference derives them from a KLL sketch, which is exact only up to 200
// values).
//
// The zero value is an empty histogram; it holds its counters inline
// (about 2.5 KiB) and never allocates.
type Histogram struct {
	counts [NumHistogramBounds + 1]uint64 // per bound interval, then values above the last bound
	total  uint64
}

func init() {
	// The counters are an array so that the zero value needs no allocation;
	// fail at start-up, not at the first Add, if the computed bounds ever
	// disagree with its length.
	if len(histogramBounds) != NumHistogramBounds {
		panic("sketch: histogram bound count changed")
	}
}

// histogramIndex is the index of the first bound ≥ v, or len(bounds) for
// values above the last bound.
func histogramIndex(v uint64) int {
	lo, hi := 0, len(histogramBounds)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if histogramBounds[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Add counts v.
func (h *Histogram) Add(v uint64) {
	h.counts[histogramIndex(v)]++
	h.total++
}

// Count returns the number of values counted.
func (h *Histogram) Count() uint64 { return h.total }

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	// UpperBound is the inclusive upper bound (ignored when Inf).
	UpperBound uint64
	// Inf marks the +Inf bucket.
	Inf bool
	// Cumulative is the number of values ≤ UpperBound (all values for +Inf).
	Cumulative uint64
}

// AppendLabel appends the bucket's label text: the bound in decimal, or
// "+Inf".
func (b Bucket) AppendLabel(dst []byte) []byte {
	if b.Inf {
		return append(dst, "+Inf"...)
	}
	return strconv.AppendUint(dst, b.UpperBound, 10)
}

// Label returns the bucket's label text (see AppendLabel).
func (b Bucket) Label() string { return string(b.AppendLabel(nil)) }

// Buckets appends, in increasing bound order, one bucket per bound whose
// interval holds at least one value, with the cumulative count up to and
// including that bound, then the +Inf bucket with the total. It appends
// nothing for an empty histogram.
func (h *Histogram) Buckets(dst []Bucket) []Bucket {
	if h.total == 0 {
		return dst
	}
	var cum uint64
	for i, bound := range histogramBounds {
		if c := h.counts[i]; c != 0 {
			cum += c
			dst = append(dst, Bucket{UpperBound: bound, Cumulative: cum})
		}
	}
	return append(dst, Bucket{Inf: true, Cumulative: h.total})
}

// Merge adds other's counts to h.
func (h *Histogram) Merge(other *Histogram) {
	if other == nil {
		return
	}
	for i, c := range other.counts {
		h.counts[i] = satAdd(h.counts[i], c)
	}
	h.total = satAdd(h.total, other.total)
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// MarshalBinary encodes h; see AppendBinary.
func (h *Histogram) MarshalBinary() ([]byte, error) { return h.AppendBinary(nil) }

// AppendBinary appends the encoding of h to dst:
//
//	'H' 0x01 k { gap count }×k
//
// unsigned varints: k non-empty intervals in increasing order, each as the
// distance from the previous non-empty interval index (from −1 for the
// first; interval 315 is +Inf) and its count.
func (h *Histogram) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, tagHistogram, encVersion1)
	k := 0
	for _, c := range h.counts {
		if c != 0 {
			k++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(k))
	prev := -1
	for i, c := range h.counts {
		if c != 0 {
			dst = binary.AppendUvarint(dst, uint64(i-prev))
			dst = binary.AppendUvarint(dst, c)
			prev = i
		}
	}
	return dst, nil
}

// UnmarshalBinary replaces h with the decoded histogram. Malformed input
// returns an error wrapping ErrInvalidEncoding and leaves h unchanged.
func (h *Histogram) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(tagHistogram, "histogram")
	k := d.uvarint()
	if d.err != nil {
		return d.err
	}
	var tmp Histogram
	if k > uint64(len(tmp.counts)) {
		return invalidf("histogram: %d intervals", k)
	}
	idx := -1
	for range k {
		gap := d.uvarint()
		c := d.uvarint()
		if d.err != nil {
			return d.err
		}
		if gap == 0 || gap > uint64(len(tmp.counts)-1-idx) {
			return invalidf("histogram: interval gap %d after %d", gap, idx)
		}
		idx += int(gap)
		if c == 0 {
			return invalidf("histogram: empty interval %d encoded", idx)
		}
		tmp.counts[idx] = c
		if tmp.total+c < tmp.total {
			return invalidf("histogram: total overflows")
		}
		tmp.total += c
	}
	if err := d.finish(); err != nil {
		return err
	}
	*h = tmp
	return nil
}
