package metrics

import (
	"encoding/json"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Output formats of the reference's test_metrics.cpp (spec §6.17), JSON side.

func render(t *testing.T, f func(j *JSON)) string {
	t.Helper()
	j := NewJSON()
	f(j)
	out, err := json.Marshal(j.Root)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

var dTest = &Desc{Schema: "root", Name: []string{"test", "metric"}, Help: "A test metric"}

func TestJSONFormats(t *testing.T) {
	var q sketch.Quantiles
	q.Add(12)
	var h sketch.Histogram
	for _, v := range []uint64{12, 12, 12, 8} {
		h.Add(v)
	}
	var top sketch.TopN
	for _, k := range []string{"top1", "top2", "top1"} {
		top.Update([]byte(k), sketch.Hash([]byte(k)), 1)
	}
	var card sketch.Cardinality
	card.Insert([]byte("metric"))
	var card2 sketch.Cardinality
	card2.Insert([]byte("metric"))
	card2.Insert([]byte("0123456789abcdef"))
	var rate sketch.Rate
	var ratio sketch.Quantiles
	ratio.Add(1.5)

	// A 2-item sketch fed a, a, a, b, c, a: the third distinct key forces a purge whose count
	// (1) becomes the sketch's maximum error: any estimate may exceed its true count by 1.
	purged := sketch.NewTopN(2)
	for _, k := range []string{"a", "a", "a", "b", "c", "a"} {
		purged.Update([]byte(k), sketch.Hash([]byte(k)), 1)
	}
	cases := []struct {
		name string
		f    func(j *JSON)
		want string
	}{
		{"counter", func(j *JSON) { j.Counter(dTest, 5) }, `{"test":{"metric":5}}`},
		{"quantile one value", func(j *JSON) { j.Quantiles(dTest, &q, false) }, `{"test":{"metric":{"p50":12,"p90":12,"p95":12,"p99":12}}}`},
		{"quantile float", func(j *JSON) { j.Quantiles(dTest, &ratio, true) }, `{"test":{"metric":{"p50":1.5,"p90":1.5,"p95":1.5,"p99":1.5}}}`},
		{"quantile empty", func(j *JSON) { j.Quantiles(dTest, &sketch.Quantiles{}, false) }, `{}`},
		{"histogram", func(j *JSON) { j.Histogram(dTest, &h) }, `{"test":{"metric":{"buckets":{"+Inf":4.0,"12":4.0,"8":1.0}}}}`},
		{"topn", func(j *JSON) {
			j.TopN(dTest, "string", TopItems(&top, DefaultWindow, StringKey))
		}, `{"test":{"metric":[{"estimate":2,"name":"top1"},{"estimate":1,"name":"top2"}]}}`},
		{"topn count 1", func(j *JSON) {
			j.TopN(dTest, "string", TopItems(&top, Window{TopNCount: 1}, StringKey))
		}, `{"test":{"metric":[{"estimate":2,"name":"top1"}]}}`},
		{"topn error bound", func(j *JSON) {
			j.ErrorBounds = true
			j.TopN(dTest, "string", TopItems(purged, Window{TopNCount: 1}, StringKey))
		}, `{"test":{"metric":[{"estimate":4,"name":"a"}],"metric_max_error":1}}`},
		{"topn error bound empty", func(j *JSON) {
			j.ErrorBounds = true
			j.TopN(dTest, "string", TopItems(&sketch.TopN{}, DefaultWindow, StringKey))
		}, `{"test":{"metric":[],"metric_max_error":0}}`},
		{"topn empty", func(j *JSON) { j.TopN(dTest, "string", TopItems(&sketch.TopN{}, DefaultWindow, StringKey)) }, `{"test":{"metric":[]}}`},
		{"cardinality", func(j *JSON) { j.Cardinality(dTest, card.Estimate()) }, `{"test":{"metric":1}}`},
		{"cardinality two", func(j *JSON) { j.Cardinality(dTest, card2.Estimate()) }, `{"test":{"metric":2}}`},
		{"fresh rate live", func(j *JSON) { j.Rate(dTest, &rate, true) }, `{"test":{"metric":{"live":0}}}`},
		{"fresh rate recorded", func(j *JSON) { j.Rate(dTest, &rate, false) }, `{}`},
		{"geo row", func(j *JSON) {
			j.TopN(dTest, "geo_loc", []TopItem{{Name: "EU/Russia", Estimate: 3, Lat: "60.000000", Lon: "100.000000"}, {Name: "Unknown", Estimate: 1}})
		}, `{"test":{"metric":[{"estimate":3,"lat":"60.000000","lon":"100.000000","name":"EU/Russia"},{"estimate":1,"name":"Unknown"}]}}`},
	}
	for _, tc := range cases {
		if got := render(t, tc.f); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestWindowNormalize(t *testing.T) {
	cases := []struct {
		in, want Window
		err      string
	}{
		{Window{NumPeriods: 1, DeepSampleRate: 102}, Window{NumPeriods: 1, DeepSampleRate: 100, TopNCount: 10}, ""},
		{Window{NumPeriods: 0, DeepSampleRate: 0}, Window{NumPeriods: 1, DeepSampleRate: 1, TopNCount: 10}, ""},
		{Window{NumPeriods: 11, DeepSampleRate: 50, TopNCount: 3}, Window{NumPeriods: 10, DeepSampleRate: 50, TopNCount: 3}, ""},
		{Window{NumPeriods: 5, DeepSampleRate: 100, TopNPercentile: 101}, Window{}, "threshold must be between 0 and 100 but has value 101"},
	}
	for _, tc := range cases {
		w := tc.in
		err := w.Normalize()
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%+v: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || w != tc.want {
			t.Errorf("%+v: got %+v, %v; want %+v", tc.in, w, err, tc.want)
		}
	}
}

func TestPeriodErrors(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{CheckBucket(2, 1, 1), "invalid metrics period, specify [0, 0]"},
		{CheckWindow(0, 1), "invalid metrics period, specify [2, 1]"},
		{CheckWindow(6, 5), "invalid metrics period, specify [2, 5]"},
		{CheckBucket(3, 5, 2), "requested metrics period has not yet accumulated, current range is [0, 1]"},
	}
	for _, tc := range cases {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("got %v, want %q", tc.err, tc.want)
		}
	}
	if err := CheckBucket(1, 5, 2); err != nil {
		t.Errorf("bucket 1 of 2: %v", err)
	}
	if err := CheckWindow(5, 5); err != nil {
		t.Errorf("window 5 of 5: %v", err)
	}
}

type testBucket struct{ n int }

func (b *testBucket) Reset()              { b.n = 0 }
func (b *testBucket) Merge(o *testBucket) { b.n += o.n }

// A ring shifts on event time, keeps at most N buckets, recycles the oldest, and windows merge
// the newest buckets with start = the oldest start and length = the sum of their lengths.
func TestRingShiftAndWindow(t *testing.T) {
	newB := func() *testBucket { return &testBucket{} }
	r := NewRing[testBucket](3, 100e9, newB)
	r2 := NewRing[testBucket](3, 100e9, newB)
	for i, ts := range []int64{160e9, 220e9, 281e9} {
		r.Live().n += i + 1
		r2.Live().n += 10
		r.Shift(ts)
		r2.Shift(ts)
	}
	r.Live().n += 100
	r.Close(300e9)
	r2.Close(300e9)
	if r.Len() != 3 {
		t.Fatalf("len %d, want 3", r.Len())
	}
	// Buckets now: [281..300] n=100, [220..281] n=3, [160..220] n=2 (the first was recycled).
	var b testBucket
	rp, err := MergeRings([]*Ring[testBucket, *testBucket]{r, r2}, Selection{Window: 3}, true, 0, &b)
	if err != nil {
		t.Fatal(err)
	}
	if b.n != 100+3+2+0+10+10 || rp.StartTS != 160 || rp.Length != 19+61+60 {
		t.Errorf("window: n=%d start=%d length=%d", b.n, rp.StartTS, rp.Length)
	}
	var b1 testBucket
	rp, err = MergeRings([]*Ring[testBucket, *testBucket]{r, r2}, Selection{Bucket: 1}, true, 0, &b1)
	if err != nil || b1.n != 3+10 || rp.StartTS != 220 || rp.Length != 61 {
		t.Errorf("bucket 1: n=%d start=%d length=%d err=%v", b1.n, rp.StartTS, rp.Length, err)
	}
	single := NewRing[testBucket](1, 0, newB)
	single.Shift(10e9)
	if single.Len() != 1 {
		t.Errorf("one period must never shift")
	}
}

func TestJSF32(t *testing.T) {
	// Bob Jenkins' small PRNG, seed 1: a generator built the same way in the test.
	a, b, c, d := uint32(0xf1ea5eed), uint32(1), uint32(1), uint32(1)
	next := func() uint32 {
		e := a - (b<<27 | b>>5)
		a = b ^ (c<<17 | c>>15)
		b = c + d
		c = d + e
		d = e + a
		return d
	}
	for range 20 {
		next()
	}
	r := NewJSF32(1)
	for i := range 1000 {
		if got, want := r.Next(), next(); got != want {
			t.Fatalf("value %d: %d, want %d", i, got, want)
		}
	}
}

func TestGroups(t *testing.T) {
	g := Groups{Names: []string{"b", "a", "c"}, Defaults: []string{"a"}}
	cases := []struct {
		enable, disable []string
		want            uint32
		err             string
	}{
		{nil, nil, 2, ""},
		{[]string{"c"}, []string{"a"}, 4, ""},
		{[]string{"all"}, nil, 7, ""},
		{nil, []string{"all"}, 0, ""},
		{[]string{"a"}, []string{"all"}, 2, ""},
		{[]string{"x"}, nil, 0, "x is an invalid/unsupported metric group. The valid groups are: all, a, b, c"},
	}
	for _, tc := range cases {
		got, err := g.Resolve(tc.enable, tc.disable)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%v/%v: error %v, want %q", tc.enable, tc.disable, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v/%v: %b %v, want %b", tc.enable, tc.disable, got, err, tc.want)
		}
	}
}
