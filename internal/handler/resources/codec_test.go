package resources

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/handler/handlertest"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// The input_resources handler is fed by the agent from outside the packet path (Feeder), so
// the codec tests feed it the same way: worker 0's instance gets samples and policy counts,
// the other workers' instances stay idle, and every instance shifts at each period boundary.

func codecSpec(t testing.TB, periods uint64) *Spec {
	t.Helper()
	sp, err := New(config.Map{"num_periods": periods, "recorded_stream": true})
	if err != nil {
		t.Fatal(err)
	}
	return sp.(*Spec)
}

const period = 60 * int64(1e9)

// feedAgent runs `periods` periods of an agent with `workers` instances: a sample every
// `every` ns (CPU and memory varying with seed), and policy count changes now and then.
func feedAgent(s *Spec, workers, periods int, startNs, every int64, seed uint64) []handler.Handler {
	insts := make([]handler.Handler, workers)
	for i := range insts {
		insts[i] = s.NewInstance(&handler.Env{Worker: i})
		insts[i].Start(startNs)
	}
	f := insts[0].(*Instance)
	x := seed*0x9e3779b97f4a7c15 + 1
	end := startNs + int64(periods)*period - period/3 // the last period is partial
	next := startNs + period
	f.SetCounts(startNs, 1, 3)
	for ts := startNs; ts < end; ts += every {
		if ts >= next {
			for _, h := range insts {
				h.Shift(next)
			}
			next += period
		}
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		f.Sample(ts, float64(x%40000)/100, 50<<20+x%(200<<20))
		if x%23 == 0 {
			f.SetCounts(ts, 1+x%5, 3+x%11)
		}
	}
	for _, h := range insts {
		h.End(end)
	}
	return insts
}

// renderBucket renders a bucket through a fresh instance's live bucket.
func renderBucket(t testing.TB, s *Spec, b *bucket) string {
	t.Helper()
	h := s.NewInstance(&handler.Env{}).(*Instance)
	h.ring.Live().Merge(b)
	return handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{})
}

func mergedBucket(t testing.TB, s *Spec, insts []handler.Handler, sel metrics.Selection) *bucket {
	t.Helper()
	b, _, err := handler.MergeInstances(insts, ringOf, sel, s.common.Recorded, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	s                      *Spec
	a, b, busyA, busyB, c1 []handler.Handler
}

func newFixture(t testing.TB) fixture {
	s := codecSpec(t, 5)
	start := int64(1_700_000_000) * 1e9
	return fixture{
		s:     s,
		a:     feedAgent(s, 3, 4, start, 5e9, 1), // the reference's 5 s: exact quantiles
		b:     feedAgent(s, 2, 4, start, 5e9, 2),
		busyA: feedAgent(s, 3, 4, start, 1e8, 3), // 10 samples a second: DDSketches
		busyB: feedAgent(s, 2, 4, start, 1e8, 4),
		c1:    feedAgent(codecSpec(t, 1), 1, 3, start, 1e9, 5),
	}
}

func TestEveryFieldCovered(t *testing.T) {
	fx := newFixture(t)
	states := handlertest.FieldStates(mergedBucket(t, fx.s, fx.a, metrics.Selection{Bucket: 1}))
	if len(states) != 8 {
		t.Errorf("bucket has %d fields, the codec covers 8: extend codec.go, docs/sketch-format.md and the version", len(states))
	}
	for k, v := range states {
		if !v {
			t.Errorf("field %s is empty", k)
		}
	}
	if n := mergedBucket(t, fx.s, fx.busyA, metrics.Selection{Bucket: 1}).cpu.Count(); n <= 200 {
		t.Errorf("busy bucket: %d samples, want a DDSketch", n)
	}
}

func TestRoundTrip(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct {
		name  string
		insts []handler.Handler
		sel   metrics.Selection
	}{
		{"bucket0", fx.a, metrics.Selection{Bucket: 0}},
		{"bucket2", fx.a, metrics.Selection{Bucket: 2}},
		{"window4", fx.a, metrics.Selection{Window: 4}},
		{"busy/bucket1", fx.busyA, metrics.Selection{Bucket: 1}},
		{"busy/window3", fx.busyA, metrics.Selection{Window: 3}},
		{"idle worker", fx.a[1:], metrics.Selection{Bucket: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fx.s
			enc, rp, err := s.AppendBucket([]byte("prefix"), tc.insts, tc.sel, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(enc, []byte("prefix")) {
				t.Fatal("AppendBucket did not append")
			}
			enc = enc[len("prefix"):]
			h := s.NewInstance(&handler.Env{}).(*Instance)
			h.Start(rp.StartTS * 1e9)
			if err := s.MergeBucket(h, enc); err != nil {
				t.Fatal(err)
			}
			h.End((rp.StartTS + rp.Length) * 1e9)
			if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{}), handlertest.Render(t, s, tc.insts, tc.sel)); d != "" {
				t.Error(d)
			}
			again, _, err := s.AppendBucket(nil, []handler.Handler{h}, metrics.Selection{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs: %d bytes vs %d", len(again), len(enc))
			}
		})
	}
	// The single cumulative bucket (num_periods 1) of a longer run.
	s1 := codecSpec(t, 1)
	enc, rp, err := s1.AppendBucket(nil, fx.c1, metrics.Selection{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := s1.NewInstance(&handler.Env{}).(*Instance)
	h.Start(rp.StartTS * 1e9)
	if err := s1.MergeBucket(h, enc); err != nil {
		t.Fatal(err)
	}
	h.End((rp.StartTS + rp.Length) * 1e9)
	if d := handlertest.Diff(handlertest.Render(t, s1, []handler.Handler{h}, metrics.Selection{}), handlertest.Render(t, s1, fx.c1, metrics.Selection{})); d != "" {
		t.Error(d)
	}
}

// TestMergeLaw: merging two agents' decoded buckets equals merging them in memory, in the
// same tree and flat (the resources sketches are order-independent; the policy counts are
// taken from the highest sequence number whatever the order).
func TestMergeLaw(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct {
		name string
		a, b []handler.Handler
		sel  metrics.Selection
	}{
		{"bucket1", fx.a, fx.b, metrics.Selection{Bucket: 1}},
		{"window3", fx.a, fx.b, metrics.Selection{Window: 3}},
		{"busy/bucket2", fx.busyA, fx.busyB, metrics.Selection{Bucket: 2}},
		{"busy/window4", fx.busyA, fx.busyB, metrics.Selection{Window: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fx.s
			h := s.NewInstance(&handler.Env{}).(*Instance)
			for _, insts := range [][]handler.Handler{tc.a, tc.b} {
				enc, _, err := s.AppendBucket(nil, insts, tc.sel, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.MergeBucket(h, enc); err != nil {
					t.Fatal(err)
				}
			}
			got := renderBucket(t, s, h.ring.Live())
			var tree bucket
			tree.Merge(mergedBucket(t, s, tc.a, tc.sel))
			tree.Merge(mergedBucket(t, s, tc.b, tc.sel))
			if d := handlertest.Diff(got, renderBucket(t, s, &tree)); d != "" {
				t.Errorf("decoded merge differs from the in-memory merge: %s", d)
			}
			if d := handlertest.Diff(got, renderBucket(t, s, mergedBucket(t, s, slices.Concat(tc.a, tc.b), tc.sel))); d != "" {
				t.Errorf("decoded merge differs from the flat merge: %s", d)
			}
		})
	}
}

// TestAggregatorSequence: a fresh (never fed) instance, Start, per period the agents' buckets
// merged and a Shift — which must not re-apply counts as a fed instance does — renders as the
// agents' instances together.
func TestAggregatorSequence(t *testing.T) {
	fx := newFixture(t)
	s := fx.s
	n := fx.a[0].(*Instance).ring.Len()
	h := s.NewInstance(&handler.Env{}).(*Instance)
	for k := n - 1; k >= 0; k-- {
		for i, insts := range [][]handler.Handler{fx.a, fx.b} {
			enc, rp, err := s.AppendBucket(nil, insts, metrics.Selection{Bucket: k}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if k == n-1 {
					h.Start(rp.StartTS * 1e9)
				} else {
					h.Shift(rp.StartTS * 1e9)
				}
			}
			if err := s.MergeBucket(h, enc); err != nil {
				t.Fatal(err)
			}
			if k == 0 && i == 1 {
				h.End((rp.StartTS + rp.Length) * 1e9)
			}
		}
	}
	all := slices.Concat(fx.a, fx.b)
	for _, sel := range []metrics.Selection{{Bucket: 0}, {Bucket: 1}, {Bucket: 3}, {Window: 2}, {Window: 3}, {Window: 4}} {
		if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{h}, sel), handlertest.Render(t, s, all, sel)); d != "" {
			t.Errorf("%+v: %s", sel, d)
		}
	}
}

func smallEncoding(t testing.TB) []byte {
	t.Helper()
	s := codecSpec(t, 2)
	insts := feedAgent(s, 1, 1, 1_700_000_000e9, 5e9, 7)
	enc, _, err := s.AppendBucket(nil, insts, metrics.Selection{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestDecodeErrors(t *testing.T) {
	enc := smallEncoding(t)
	var b bucket
	if err := b.unmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	for i := range len(enc) {
		if err := b.unmarshalBinary(enc[:i]); !errors.Is(err, handler.ErrBucketEncoding) {
			t.Fatalf("truncated at %d of %d: %v", i, len(enc), err)
		}
	}
	head := append([]byte{BucketTag, BucketVersion}, make([]byte, 5)...)
	huge := binary.AppendUvarint(slices.Clone(head), 1<<62)
	long := append([]byte{BucketTag, BucketVersion}, bytes.Repeat([]byte{0xff}, 10)...)
	long = append(long, 1)
	nonMinimal := append([]byte{BucketTag, BucketVersion, 0x80, 0x00}, enc[3:]...)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, handler.ErrBucketEncoding},
		{"wrong tag", append([]byte{'R'}, enc[1:]...), handler.ErrBucketEncoding},
		{"version 2", append([]byte{BucketTag, 2}, enc[2:]...), handler.ErrBucketVersion},
		{"trailing byte", append(slices.Clone(enc), 0), handler.ErrBucketEncoding},
		{"huge sketch length", huge, handler.ErrBucketEncoding},
		{"11-byte counter", long, handler.ErrBucketEncoding},
		{"non-minimal counter", nonMinimal, handler.ErrBucketEncoding},
		{"oversized", make([]byte, handler.MaxBucketSize+1), handler.ErrBucketEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.unmarshalBinary(tc.data); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	s := codecSpec(t, 2)
	h := s.NewInstance(&handler.Env{}).(*Instance)
	if err := s.MergeBucket(h, enc); err != nil {
		t.Fatal(err)
	}
	before := handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{})
	if err := s.MergeBucket(h, enc[:len(enc)-1]); err == nil {
		t.Fatal("truncated bucket merged")
	}
	if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{}), before); d != "" {
		t.Errorf("failed merge changed the instance: %s", d)
	}
	if err := s.MergeBucket(handlertest.Foreign{}, enc); err == nil {
		t.Error("merged into a foreign instance")
	}
}

func TestDecodeAllocBound(t *testing.T) {
	head := append([]byte{BucketTag, BucketVersion}, make([]byte, 5)...)
	var inputs [][]byte
	for _, n := range []uint64{1 << 20, 1<<64 - 1} {
		inputs = append(inputs, binary.AppendUvarint(slices.Clone(head), n))
	}
	// A Rate claiming 4096 seconds.
	rate := append([]byte{'R', 1, 1, 0, 0x80, 0x40, 0}, binary.AppendUvarint(nil, 4096)...)
	inputs = append(inputs, append(binary.AppendUvarint(slices.Clone(head), uint64(len(rate))), rate...))
	var b bucket
	for _, in := range inputs {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for range 10 {
			if err := b.unmarshalBinary(in); err == nil {
				t.Fatal("accepted")
			}
		}
		runtime.ReadMemStats(&m1)
		if per := (m1.TotalAlloc - m0.TotalAlloc) / 10; per > 16<<10 {
			t.Errorf("input of %d bytes: %d bytes allocated per decode", len(in), per)
		}
	}
}

func FuzzResourcesBucket(f *testing.F) {
	f.Add(smallEncoding(f))
	var empty bucket
	e, _ := empty.appendBinary(nil)
	f.Add(e)
	s := codecSpec(f, 2)
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bucket
		if err := b.unmarshalBinary(data); err != nil {
			if !errors.Is(err, handler.ErrBucketEncoding) && !errors.Is(err, handler.ErrBucketVersion) {
				t.Fatalf("error %v wraps neither bucket error", err)
			}
			return
		}
		enc, err := b.appendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		var c bucket
		if err := c.unmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		if again, _ := c.appendBinary(nil); !bytes.Equal(again, enc) {
			t.Fatal("re-encoding not stable")
		}
		h := s.NewInstance(&handler.Env{}).(*Instance)
		for range 2 {
			if err := s.MergeBucket(h, data); err != nil {
				t.Fatal(err)
			}
		}
		h.Shift(60e9)
		_ = handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{Window: 2})
	})
}

func TestEncodedSize(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct {
		name  string
		insts []handler.Handler
	}{{"samples every 5 s", fx.a}, {"samples every 0.1 s", fx.busyA}} {
		enc, rp, err := fx.s.AppendBucket(nil, tc.insts, metrics.Selection{Bucket: 1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d-s bucket: %d bytes", tc.name, rp.Length, len(enc))
	}
}
