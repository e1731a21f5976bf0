package sketch

import (
	"cmp"
	"encoding/binary"
	"slices"
)

const (
	// RateMaxGap is the most zero seconds one silent gap contributes: a
	// second without events is a real rate of 0, but a capture with a gap
	// of days must not drown its distribution in zeros.
	RateMaxGap = 3600

	// RateMaxSeconds is the number of non-empty seconds a Rate keeps
	// individually (64 KiB). Older seconds are folded into a distribution
	// (a Quantiles); see Rate.
	RateMaxSeconds = 4096

	// Timestamps are clamped to ±2^60 s so that differences of seconds
	// never overflow (2^60 s is 36 billion years).
	rateMinSec = -(1 << 60)
	rateMaxSec = 1 << 60
)

type secCount struct {
	sec int64
	n   uint64
}

// Rate summarizes a per-second event count as quantiles over seconds.
//
// Time is event time: Add takes the event's Unix second, so replaying a
// file gives the same result at any speed. A second is complete once an
// event (or a Tick) of a later second arrives; the in-progress second never
// enters the quantiles. Completed seconds without events count as 0, at most
// RateMaxGap of them per silent gap. An event older than the in-progress
// second is counted in the in-progress second.
//
// Merging is exact by second, not by distribution: the rate keeps the count
// of each non-empty second, and merging adds counts of the same second.
// Merging the buckets of W workers that saw one stream therefore gives the
// stream's own per-second rates, whatever W (merging their distributions
// would give per-worker rates, W times too low); merging consecutive
// buckets joins them, and the second in which a bucket was rotated gets
// both halves. Only beyond RateMaxSeconds non-empty seconds (about 68
// minutes of traffic in one bucket) are the oldest seconds folded into a
// distribution; those merge as distributions.
//
// The zero value is an empty rate. Add does not allocate in steady state.
type Rate struct {
	started bool
	spilled bool  // seconds before base are folded into spill
	first   int64 // first second covered
	base    int64 // first second kept individually, when spilled
	wm      int64 // the in-progress second; [lo, wm) are complete
	cur     uint64
	secs    []secCount // non-empty completed seconds in [lo, wm), ascending
	spill   Quantiles
}

func clampSec(s int64) int64 { return min(max(s, rateMinSec), rateMaxSec) }

// lo is the first second kept individually.
func (r *Rate) lo() int64 {
	if r.spilled {
		return r.base
	}
	return r.first
}

func (r *Rate) start(sec int64) {
	r.started = true
	r.first, r.wm, r.cur = sec, sec, 0
}

// Add counts n events at Unix second sec.
func (r *Rate) Add(sec int64, n uint64) {
	sec = clampSec(sec)
	if !r.started {
		r.start(sec)
	} else if sec > r.wm {
		r.advance(sec)
	}
	r.cur = satAdd(r.cur, n)
}

// Tick tells the rate that wall-clock second now has begun, completing the
// seconds before it even without traffic (live capture). On a rate without
// data yet it starts coverage at now, so idle seconds count as zeros as in
// the reference's wall-clock sampling. Replays of files should not tick.
func (r *Rate) Tick(now int64) {
	now = clampSec(now)
	if !r.started {
		r.start(now)
	} else if now > r.wm {
		r.advance(now)
	}
}

// Flush is the bucket-close hook. It deliberately leaves the in-progress
// second pending instead of recording it as complete: it is a partial
// second (the bucket closed inside it), and keeping it pending lets a merge
// with the next bucket, which holds the rest of that second, complete it
// with its full count. The reference likewise never samples a partial
// second of a closed bucket. Calling Flush is therefore optional.
func (r *Rate) Flush() {}

func (r *Rate) advance(sec int64) {
	if r.cur > 0 {
		if r.secs == nil {
			r.secs = make([]secCount, 0, 64)
		}
		r.secs = append(r.secs, secCount{r.wm, r.cur})
		r.cur = 0
	}
	r.wm = sec
	if len(r.secs) > RateMaxSeconds {
		r.spillTo(r.secs[len(r.secs)/2].sec)
	}
}

// gapZeros is the number of zero seconds a silent run [a, b) contributes.
func gapZeros(a, b int64) uint64 {
	if b <= a {
		return 0
	}
	return min(uint64(b-a), RateMaxGap)
}

// zeroRuns counts the zero seconds of [lo, hi) given its non-empty seconds.
func zeroRuns(lo, hi int64, secs []secCount) uint64 {
	var z uint64
	next := lo
	for _, s := range secs {
		z += gapZeros(next, s.sec)
		next = s.sec + 1
	}
	return z + gapZeros(next, hi)
}

// spillTo folds every second before newBase into the spill distribution.
// When newBase is past the in-progress second (only during a merge, where
// the other rate has seen later time), that second counts as complete.
func (r *Rate) spillTo(newBase int64) {
	lo := r.lo()
	if newBase <= lo {
		return
	}
	k, _ := slices.BinarySearchFunc(r.secs, newBase, func(s secCount, t int64) int { return cmp.Compare(s.sec, t) })
	done := r.secs[:k]
	zeros := zeroRuns(lo, min(newBase, r.wm), done)
	for _, s := range done {
		r.spill.Add(float64(s.n))
	}
	if r.wm < newBase {
		if r.cur > 0 {
			r.spill.Add(float64(r.cur))
		} else {
			zeros++
		}
		r.cur = 0
		r.wm = newBase
	}
	r.spill.AddN(0, zeros)
	r.secs = r.secs[:copy(r.secs, r.secs[k:])]
	r.base = newBase
	r.spilled = true
}

// Live returns the count of the last completed second (0 when none).
func (r *Rate) Live() uint64 {
	if !r.started || len(r.secs) == 0 {
		return 0
	}
	if last := r.secs[len(r.secs)-1]; last.sec == r.wm-1 {
		return last.n
	}
	return 0
}

// Count returns the number of completed seconds summarized.
func (r *Rate) Count() uint64 {
	if !r.started {
		return 0
	}
	return r.spill.Count() + uint64(len(r.secs)) + zeroRuns(r.lo(), r.wm, r.secs)
}

// Distribution returns a new Quantiles holding the count of every completed
// second (its Count, Max, Sum and quantiles are the rate's). It does not
// modify r.
func (r *Rate) Distribution() *Quantiles {
	q := &Quantiles{}
	if !r.started {
		return q
	}
	q.Merge(&r.spill)
	for _, s := range r.secs {
		q.Add(float64(s.n))
	}
	q.AddN(0, zeroRuns(r.lo(), r.wm, r.secs))
	return q
}

// Quantiles appends the per-second rates at quantiles qs to dst (NaN when
// no second is complete); see Quantiles.Quantile.
func (r *Rate) Quantiles(qs []float64, dst []float64) []float64 {
	return r.Distribution().Quantiles(qs, dst)
}

// Merge adds other's events to r, second by second (see Rate). other is not
// modified.
func (r *Rate) Merge(other *Rate) {
	if other == nil || !other.started {
		return
	}
	if !r.started {
		*r = *other.Clone()
		return
	}
	o := other
	if o == r {
		o = r.Clone()
	}
	if r.spilled || o.spilled {
		base := int64(rateMinSec)
		for _, x := range [2]*Rate{r, o} {
			if x.spilled {
				base = max(base, x.base)
			}
		}
		if o.lo() < base {
			o = o.Clone()
			o.spillTo(base)
		}
		r.spillTo(base)
		r.spilled, r.base = true, base
	}
	w := max(r.wm, o.wm)
	ents := make([]secCount, 0, len(r.secs)+len(o.secs)+2)
	ents = append(ents, r.secs...)
	ents = append(ents, o.secs...)
	var cur uint64
	for _, x := range [2]*Rate{r, o} {
		switch {
		case x.cur == 0:
		case x.wm == w:
			cur = satAdd(cur, x.cur)
		default:
			ents = append(ents, secCount{x.wm, x.cur})
		}
	}
	slices.SortFunc(ents, func(a, b secCount) int { return cmp.Compare(a.sec, b.sec) })
	out := ents[:0]
	for _, e := range ents {
		if len(out) > 0 && out[len(out)-1].sec == e.sec {
			out[len(out)-1].n = satAdd(out[len(out)-1].n, e.n)
		} else {
			out = append(out, e)
		}
	}
	r.secs = out
	r.cur = cur
	r.wm = w
	r.first = min(r.first, o.first)
	r.spill.Merge(&o.spill)
	for len(r.secs) > RateMaxSeconds {
		r.spillTo(r.secs[len(r.secs)/2].sec)
	}
}

// Clone returns a deep copy of r.
func (r *Rate) Clone() *Rate {
	c := *r
	c.secs = slices.Clone(r.secs)
	c.spill = *r.spill.Clone()
	return &c
}

// Reset empties r, keeping its buffers.
func (r *Rate) Reset() {
	r.started, r.spilled = false, false
	r.first, r.base, r.wm, r.cur = 0, 0, 0, 0
	r.secs = r.secs[:0]
	r.spill.Reset()
}

const (
	rateFlagStarted = 1 << iota
	rateFlagSpilled
)

// MarshalBinary encodes r; see AppendBinary.
func (r *Rate) MarshalBinary() ([]byte, error) { return r.AppendBinary(nil) }

// AppendBinary appends the encoding of r to dst:
//
//	'R' 0x01 flags                                              not started
//	'R' 0x01 flags first [base] wm cur k {gap n}×k spill        started
//
// flags bit 0 = started, bit 1 = spilled (base present). first, base and
// wm are signed varints (Unix seconds), cur, k, gap and n unsigned varints.
// The k non-empty seconds ascend; each is gap seconds after the previous
// one, the first after lo−1 (lo = base if spilled, else first). spill is a
// Quantiles body (its encoding without the 'Q' 0x01 envelope).
func (r *Rate) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, tagRate, encVersion1)
	var flags byte
	if r.started {
		flags |= rateFlagStarted
		if r.spilled {
			flags |= rateFlagSpilled
		}
	}
	dst = append(dst, flags)
	if !r.started {
		return dst, nil
	}
	dst = binary.AppendVarint(dst, r.first)
	if r.spilled {
		dst = binary.AppendVarint(dst, r.base)
	}
	dst = binary.AppendVarint(dst, r.wm)
	dst = binary.AppendUvarint(dst, r.cur)
	dst = binary.AppendUvarint(dst, uint64(len(r.secs)))
	prev := r.lo() - 1
	for _, s := range r.secs {
		dst = binary.AppendUvarint(dst, uint64(s.sec-prev))
		dst = binary.AppendUvarint(dst, s.n)
		prev = s.sec
	}
	spill, err := r.spill.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	return append(dst, spill[2:]...), nil
}

// UnmarshalBinary replaces r with the decoded rate. Malformed input returns
// an error wrapping ErrInvalidEncoding and leaves r unchanged.
func (r *Rate) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(tagRate, "rate")
	flags := d.byte()
	if d.err != nil {
		return d.err
	}
	var tmp Rate
	switch flags {
	case 0:
		if err := d.finish(); err != nil {
			return err
		}
		r.Reset()
		return nil
	case rateFlagStarted, rateFlagStarted | rateFlagSpilled:
	default:
		return invalidf("rate: flags %#x", flags)
	}
	tmp.started = true
	tmp.spilled = flags&rateFlagSpilled != 0
	tmp.first = d.varint()
	if tmp.spilled {
		tmp.base = d.varint()
	}
	tmp.wm = d.varint()
	tmp.cur = d.uvarint()
	k := d.uvarint()
	if d.err != nil {
		return d.err
	}
	inRange := func(s int64) bool { return s >= rateMinSec && s <= rateMaxSec }
	if !inRange(tmp.first) || !inRange(tmp.wm) || tmp.first > tmp.wm ||
		(tmp.spilled && (!inRange(tmp.base) || tmp.base < tmp.first || tmp.base > tmp.wm)) {
		return invalidf("rate: seconds first %d base %d wm %d", tmp.first, tmp.base, tmp.wm)
	}
	if k > RateMaxSeconds || k > uint64(len(d.b)) {
		return invalidf("rate: %d seconds", k)
	}
	tmp.secs = make([]secCount, 0, k)
	prev := tmp.lo() - 1
	for range k {
		gap := d.uvarint()
		n := d.uvarint()
		if d.err != nil {
			return d.err
		}
		if gap == 0 || gap >= uint64(tmp.wm-prev) {
			return invalidf("rate: second gap %d after %d (in-progress second %d)", gap, prev, tmp.wm)
		}
		if n == 0 {
			return invalidf("rate: empty second encoded")
		}
		prev += int64(gap)
		tmp.secs = append(tmp.secs, secCount{prev, n})
	}
	if err := tmp.spill.decode(&d); err != nil {
		return err
	}
	if err := d.finish(); err != nil {
		return err
	}
	if !tmp.spilled && tmp.spill.Count() != 0 {
		return invalidf("rate: folded seconds without a fold point")
	}
	*r = tmp
	return nil
}
