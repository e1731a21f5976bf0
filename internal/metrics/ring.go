package metrics

import "fmt"

// Period is the time span of one bucket, in Unix nanoseconds of event time.
type Period struct {
	StartNs  int64
	EndNs    int64 // set when the bucket is closed (read-only)
	ReadOnly bool
}

// LengthSeconds is the bucket's length as the reference reports it: end − start in whole
// seconds for a closed (or recorded-stream) bucket, now − start for a live one.
func (p Period) LengthSeconds(nowNs int64, recorded bool) int64 {
	if p.ReadOnly || recorded {
		end := p.EndNs
		if !p.ReadOnly {
			end = nowNs
		}
		return end/1e9 - p.StartNs/1e9
	}
	return nowNs/1e9 - p.StartNs/1e9
}

// Bucket is what a handler keeps per period. Implementations must reset in place (keeping
// their memory) and merge another bucket of the same configuration into themselves.
type Bucket[B any] interface {
	*B
	Reset()
	Merge(other *B)
}

// Ring keeps a handler's buckets: index 0 is the live bucket, 1 the last closed one, and so
// on, at most n. Closed buckets are never written again; the oldest is recycled when a shift
// pushes it out, so a steady state allocates nothing.
type Ring[B any, PB Bucket[B]] struct {
	n       int
	buckets []PB
	periods []Period
	spare   PB
	newB    func() PB
}

// NewRing returns a ring of at most n buckets whose live bucket starts at startNs.
func NewRing[B any, PB Bucket[B]](n int, startNs int64, newB func() PB) *Ring[B, PB] {
	r := &Ring[B, PB]{n: max(n, 1), newB: newB}
	r.buckets = append(r.buckets, newB())
	r.periods = append(r.periods, Period{StartNs: startNs})
	return r
}

// Live returns bucket 0.
func (r *Ring[B, PB]) Live() PB { return r.buckets[0] }

// Len is the number of buckets held.
func (r *Ring[B, PB]) Len() int { return len(r.buckets) }

// NumPeriods is the configured maximum.
func (r *Ring[B, PB]) NumPeriods() int { return r.n }

// Bucket returns bucket i (0 = live) and its period.
func (r *Ring[B, PB]) Bucket(i int) (PB, Period) { return r.buckets[i], r.periods[i] }

// SetStart moves the live bucket's start (the first packet of a file defines it).
func (r *Ring[B, PB]) SetStart(startNs int64) { r.periods[0].StartNs = startNs }

// Shift closes the live bucket at tsNs and opens a new one starting there. With a single
// period the ring never shifts (one cumulative bucket), as in the reference.
func (r *Ring[B, PB]) Shift(tsNs int64) {
	if r.n <= 1 {
		return
	}
	r.periods[0].EndNs = tsNs
	r.periods[0].ReadOnly = true
	var nb PB
	if len(r.buckets) == r.n {
		nb = r.buckets[len(r.buckets)-1]
		r.buckets = r.buckets[:len(r.buckets)-1]
		r.periods = r.periods[:len(r.periods)-1]
		nb.Reset()
	} else if r.spare != nil {
		nb, r.spare = r.spare, nil
	} else {
		nb = r.newB()
	}
	r.buckets = append(r.buckets, nil)
	copy(r.buckets[1:], r.buckets)
	r.buckets[0] = nb
	r.periods = append(r.periods, Period{})
	copy(r.periods[1:], r.periods)
	r.periods[0] = Period{StartNs: tsNs}
}

// Close marks the live bucket read-only at tsNs (end of a recorded stream).
func (r *Ring[B, PB]) Close(tsNs int64) {
	r.periods[0].EndNs = tsNs
	r.periods[0].ReadOnly = true
}

// PeriodError is returned for a bucket or window request outside the configured range; its
// text is the reference's.
type PeriodError struct{ msg string }

func (e *PeriodError) Error() string { return e.msg }

// CheckBucket validates a single-bucket request.
func CheckBucket(i, numPeriods, have int) error {
	if i < 0 || i >= numPeriods {
		return &PeriodError{fmt.Sprintf("invalid metrics period, specify [0, %d]", numPeriods-1)}
	}
	if i >= have {
		return &PeriodError{fmt.Sprintf("requested metrics period has not yet accumulated, current range is [0, %d]", have-1)}
	}
	return nil
}

// CheckWindow validates a merged-window request.
func CheckWindow(n, numPeriods int) error {
	if n < 2 || n > numPeriods {
		return &PeriodError{fmt.Sprintf("invalid metrics period, specify [2, %d]", numPeriods)}
	}
	return nil
}
