package sketch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

type event struct {
	sec int64
	n   uint64
}

// rateOracle computes the per-second values a Rate must summarize for a
// time-ordered event list: the total of every second in [first, wm) with
// zero seconds counted at most RateMaxGap per silent run.
func rateOracle(events []event, wm int64) []float64 {
	if len(events) == 0 {
		return nil
	}
	per := map[int64]uint64{}
	for _, e := range events {
		per[e.sec] += e.n
	}
	var out []float64
	run := 0
	for s := events[0].sec; s < wm; s++ {
		if c := per[s]; c > 0 {
			for range min(run, RateMaxGap) {
				out = append(out, 0)
			}
			run = 0
			out = append(out, float64(c))
		} else {
			run++
		}
	}
	for range min(run, RateMaxGap) {
		out = append(out, 0)
	}
	return out
}

// genEvents produces a time-ordered stream of several events per second,
// with quiet seconds and occasional long gaps.
func genEvents(r *rand.Rand, seconds int) []event {
	var out []event
	sec := int64(1_700_000_000 + r.IntN(1000))
	for range seconds {
		switch x := r.IntN(100); {
		case x < 10:
			sec += int64(2 + r.IntN(5)) // a few silent seconds
		case x < 11:
			sec += int64(1000 + r.IntN(5000)) // long gap, may exceed the cap
		default:
			sec++
		}
		rate := 1 + r.IntN(50)
		for range 1 + r.IntN(4) {
			out = append(out, event{sec, uint64(1 + r.IntN(rate))})
		}
	}
	return out
}

func TestRateBasic(t *testing.T) {
	var r Rate
	if r.Count() != 0 || r.Live() != 0 || !math.IsNaN(r.Quantiles([]float64{0.5}, nil)[0]) {
		t.Fatal("zero value not empty")
	}
	r.Add(100, 5)
	r.Add(100, 3)
	r.Add(101, 2)
	r.Add(103, 1)
	// Complete: 100 → 8, 101 → 2, 102 → 0; 103 in progress.
	if r.Count() != 3 || r.Live() != 0 {
		t.Fatalf("count %d live %d, want 3 and 0", r.Count(), r.Live())
	}
	if got := r.Quantiles([]float64{0, 0.5, 1}, nil); !slices.Equal(got, []float64{0, 2, 8}) {
		t.Fatalf("quantiles %v, want [0 2 8]", got)
	}
	r.Add(104, 7)
	if r.Live() != 1 || r.Count() != 4 {
		t.Fatalf("live %d count %d, want 1 and 4", r.Live(), r.Count())
	}
	// An event older than the in-progress second counts in it.
	r.Add(90, 3)
	r.Add(105, 0)
	if r.Live() != 10 {
		t.Fatalf("late event: live %d, want 10", r.Live())
	}
	r.Flush()
	if r.Count() != 5 {
		t.Fatal("Flush changed the rate")
	}
	d := r.Distribution()
	if d.Sum() != 8+2+0+1+10 || d.Max() != 10 {
		t.Fatalf("distribution sum %v max %v", d.Sum(), d.Max())
	}
	r.Reset()
	if r.Count() != 0 || r.Live() != 0 {
		t.Fatal("Reset")
	}
}

func TestRateGapCapAndTick(t *testing.T) {
	var r Rate
	r.Add(0, 1)
	r.Add(10000, 1) // 9999 silent seconds count as RateMaxGap zeros
	if r.Count() != 1+RateMaxGap {
		t.Fatalf("count %d, want %d", r.Count(), 1+RateMaxGap)
	}
	var tick Rate
	tick.Tick(50)
	tick.Tick(49) // time never goes back
	tick.Tick(53)
	if tick.Count() != 3 || tick.Live() != 0 || tick.Quantiles([]float64{1}, nil)[0] != 0 {
		t.Fatalf("idle ticks: count %d", tick.Count())
	}
	tick.Add(53, 4)
	tick.Tick(54)
	if tick.Live() != 4 || tick.Count() != 4 {
		t.Fatalf("live %d count %d", tick.Live(), tick.Count())
	}
	// Absurd timestamps are clamped, not overflowed.
	var wild Rate
	wild.Add(math.MinInt64, 1)
	wild.Add(math.MaxInt64, 1)
	if wild.Count() != 1+RateMaxGap {
		t.Fatalf("clamped extremes: count %d", wild.Count())
	}
}

func rateEqual(t *testing.T, name string, got, want *Rate) {
	t.Helper()
	if got.Count() != want.Count() || got.Live() != want.Live() {
		t.Fatalf("%s: count %d live %d, want %d %d", name, got.Count(), got.Live(), want.Count(), want.Live())
	}
	quantilesEqual(t, name, got.Distribution(), want.Distribution())
}

func checkRateOracle(t *testing.T, name string, r *Rate, events []event) {
	t.Helper()
	vals := rateOracle(events, r.wm)
	d := r.Distribution()
	if d.Count() != uint64(len(vals)) {
		t.Fatalf("%s: %d seconds, oracle %d", name, d.Count(), len(vals))
	}
	if len(vals) == 0 {
		return
	}
	var sum float64
	for _, v := range vals {
		sum += v
	}
	slices.Sort(vals)
	if d.Sum() != sum || d.Max() != vals[len(vals)-1] {
		t.Fatalf("%s: sum %v max %v, oracle %v %v", name, d.Sum(), d.Max(), sum, vals[len(vals)-1])
	}
	for _, p := range testQs {
		got, want := d.Quantile(p), inclusiveQuantile(vals, p)
		if math.Abs(got-want) > QuantilesRelativeAccuracy*want+1e-9*want {
			t.Fatalf("%s: q=%v: %v, oracle %v", name, p, got, want)
		}
	}
}

// TestRateWorkerSplitIsExact: W workers each counting their share of one
// stream, merged, equal one worker counting it all.
func TestRateWorkerSplitIsExact(t *testing.T) {
	for seed := uint64(0); seed < 12; seed++ {
		r := newRand(seed)
		events := genEvents(r, 20+r.IntN(600))
		var whole Rate
		for _, e := range events {
			whole.Add(e.sec, e.n)
		}
		checkRateOracle(t, "single", &whole, events)
		for _, w := range []int{2, 4, 8} {
			workers := make([]Rate, w)
			for i, p := range splitIndex(r, len(events), w) {
				workers[p].Add(events[i].sec, events[i].n)
			}
			var merged Rate
			for _, i := range r.Perm(w) {
				merged.Merge(&workers[i])
			}
			rateEqual(t, "workers", &merged, &whole)
		}
	}
}

// TestRateBucketsAndWorkersMerge: buckets rotated every 60 s of event time
// (the rotating event opens the new bucket), each split across workers,
// merged into one window: equal to one rate over the whole stream — the
// rotation second gets both halves.
func TestRateBucketsAndWorkersMerge(t *testing.T) {
	for seed := uint64(0); seed < 8; seed++ {
		r := newRand(seed + 50)
		events := genEvents(r, 400)
		var whole Rate
		for _, e := range events {
			whole.Add(e.sec, e.n)
		}
		const w = 3
		var buckets [][]Rate
		next := int64(math.MinInt64)
		for _, e := range events {
			if e.sec >= next {
				buckets = append(buckets, make([]Rate, w))
				next = e.sec + 60
			}
			b := buckets[len(buckets)-1]
			b[r.IntN(w)].Add(e.sec, e.n)
		}
		var window Rate
		for _, bi := range r.Perm(len(buckets)) {
			for i := range buckets[bi] {
				buckets[bi][i].Flush()
				window.Merge(&buckets[bi][i])
			}
		}
		rateEqual(t, "window", &window, &whole)
	}
}

func TestRateLongStreamSpills(t *testing.T) {
	r := newRand(77)
	var events []event
	sec := int64(1000)
	for range 3 * RateMaxSeconds {
		sec += int64(1 + r.IntN(2))
		events = append(events, event{sec, uint64(1 + r.IntN(1000))})
	}
	var whole Rate
	parts := make([]Rate, 3)
	for _, e := range events {
		whole.Add(e.sec, e.n)
		parts[r.IntN(3)].Add(e.sec, e.n)
		if len(whole.secs) > RateMaxSeconds {
			t.Fatalf("%d seconds kept", len(whole.secs))
		}
	}
	if !whole.spilled {
		t.Fatal("long stream did not fold old seconds")
	}
	checkRateOracle(t, "spilled", &whole, events)
	// Merges of folded rates are approximate in their folded part, but
	// every completed event is still counted exactly once.
	var merged Rate
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if merged.Distribution().Sum() != whole.Distribution().Sum() {
		t.Fatalf("merged sum %v, want %v", merged.Distribution().Sum(), whole.Distribution().Sum())
	}
	// The folded parts merge as distributions of per-worker seconds: the
	// documented limit (each worker's quiet seconds count as zeros).
	t.Logf("merged folded workers: %d seconds, single rate %d", merged.Count(), whole.Count())
	data, _ := merged.MarshalBinary()
	var dec Rate
	if err := dec.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	rateEqual(t, "spilled decoded", &dec, &merged)
}

func TestRateSelfMergeAndClone(t *testing.T) {
	var r Rate
	for s := int64(0); s < 10; s++ {
		r.Add(s, uint64(s))
	}
	c := r.Clone()
	r.Merge(&r)
	c.Merge(c.Clone())
	rateEqual(t, "self", &r, c)
	if r.Live() != 16 {
		t.Fatalf("self merge live %d, want 16", r.Live())
	}
}

func TestRateEncodingRoundTrip(t *testing.T) {
	r := newRand(8)
	cases := []*Rate{{}}
	var started Rate
	started.Tick(5)
	cases = append(cases, &started)
	for _, n := range []int{3, 300} {
		var x Rate
		for _, e := range genEvents(r, n) {
			x.Add(e.sec, e.n)
		}
		cases = append(cases, &x)
	}
	for i, c := range cases {
		data, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var dec Rate
		dec.Add(1, 1)
		if err := dec.UnmarshalBinary(data); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		rateEqual(t, "decoded", &dec, c)
		again, _ := dec.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatalf("case %d: re-encoding differs", i)
		}
		// The decoded rate keeps counting like the original.
		c2 := c.Clone()
		dec.Add(2_000_000_000, 3)
		c2.Add(2_000_000_000, 3)
		rateEqual(t, "continued", &dec, c2)
	}
}

func TestRateDecodeRejects(t *testing.T) {
	enc := func(flags byte, ints ...int64) []byte {
		b := []byte{tagRate, encVersion1, flags}
		for i, v := range ints {
			// first [base] wm as signed, the rest unsigned
			signed := 2
			if flags&rateFlagSpilled != 0 {
				signed = 3
			}
			if i < signed {
				b = binary.AppendVarint(b, v)
			} else {
				b = binary.AppendUvarint(b, uint64(v))
			}
		}
		return append(b, qModeEmpty)
	}
	var ok Rate
	if err := ok.UnmarshalBinary(enc(1, 10, 20, 5, 2, 1, 4, 3, 6)); err != nil {
		t.Fatalf("valid encoding rejected: %v", err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"bad flags", []byte{tagRate, 1, 4}},
		{"spilled not started", []byte{tagRate, 1, 2}},
		{"empty trailing", []byte{tagRate, 1, 0, 0}},
		{"first after wm", enc(1, 30, 20, 0, 0)},
		{"first out of range", enc(1, -(1 << 62), 20, 0, 0)},
		{"base before first", enc(3, 10, 5, 20, 0, 0)},
		{"base after wm", enc(3, 10, 25, 20, 0, 0)},
		{"zero gap", enc(1, 10, 20, 0, 1, 0, 3)},
		{"second at wm", enc(1, 10, 20, 0, 1, 11, 3)},
		{"empty second", enc(1, 10, 20, 0, 1, 1, 0)},
		{"too many seconds", enc(1, 10, 20, 0, RateMaxSeconds+1)},
		{"truncated", enc(1, 10, 20, 0, 2, 1, 4)[:9]},
		{"spill without fold", append(enc(1, 10, 20, 0, 0)[:7], qModeExact, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f)},
		{"bad spill", append(enc(3, 10, 12, 20, 0, 0)[:8], 9)},
		{"trailing", append(enc(1, 10, 20, 0, 0), 0)},
	}
	for _, tt := range tests {
		var r Rate
		r.Add(1, 1)
		r.Add(2, 1)
		err := r.UnmarshalBinary(tt.in)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !errors.Is(err, ErrInvalidEncoding) {
			t.Errorf("%s: %v", tt.name, err)
		}
		if r.Count() != 1 || r.Live() != 1 {
			t.Errorf("%s: failed decode modified the rate", tt.name)
		}
	}
}

func TestRateAddAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	var r Rate
	sec := int64(1000)
	for range 200 {
		sec++
		r.Add(sec, 3)
	}
	r.Reset()
	i := 0
	if n := testing.AllocsPerRun(10000, func() {
		if i%50 == 0 {
			sec++
		}
		i++
		r.Add(sec, 1)
		if sec%60 == 0 && i%50 == 1 {
			r.Reset() // a bucket rotation reuses the buffer
		}
	}); n != 0 {
		t.Fatalf("Add: %v allocs", n)
	}
}
