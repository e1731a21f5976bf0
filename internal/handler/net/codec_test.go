package net

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/handler/handlertest"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
	"github.com/pktvisor-go/pktvisor/internal/stream"
)

// ---- traffic: generated captures run through a real multi-worker stream ----

type frame = handlertest.Frame

// genFrames writes a generated capture into memory and reads its frames back, with an ICMP
// echo inserted every 97 frames (alternately from a geo-known address to a host address, and
// between two addresses outside the host set): the generator writes only UDP and TCP, and
// every address it uses is local to the host set or private.
func genFrames(t testing.TB, mod func(*gen.Config)) []frame {
	t.Helper()
	cfg := gen.DefaultConfig()
	mod(&cfg)
	var buf bytes.Buffer
	if _, err := gen.Write(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	r, err := capture.NewReader(&buf, "generated")
	if err != nil {
		t.Fatal(err)
	}
	var frames []frame
	for n := 0; ; n++ {
		data, info, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame{Data: append([]byte(nil), data...), Info: info})
		if n%97 == 96 {
			src, dst := [4]byte{81, 2, 69, 142}, [4]byte{172, 16, 53, 1}
			if n%194 == 96 {
				src, dst = [4]byte{192, 0, 2, 1}, [4]byte{198, 51, 100, 1}
			}
			if n%388 == 290 {
				src = [4]byte{1, 128, 0, 1} // in the ISP test database
			}
			icmp := icmpFrame(src, dst)
			frames = append(frames, frame{Data: icmp, Info: capture.PacketInfo{TS: info.TS, CapLen: len(icmp), WireLen: len(icmp), Link: decode.LinkRaw}})
		}
	}
	return frames
}

// icmpFrame is a raw IPv4 ICMP echo request (link type RAW).
func icmpFrame(src, dst [4]byte) []byte {
	b := make([]byte, 28)
	b[0], b[8], b[9] = 0x45, 64, 1
	binary.BigEndian.PutUint16(b[2:], 28)
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:20]))
	b[20] = 8
	binary.BigEndian.PutUint16(b[22:], checksum(b[20:]))
	return b
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func newSpec(t testing.TB, cfg config.Map) *Spec {
	t.Helper()
	sp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sp.(*Spec)
}

// agent is one simulated agent: a stream over a generated capture, with several workers.
type agent struct {
	specs []*Spec
	insts [][]handler.Handler // [spec][worker]
}

func runAgent(t testing.TB, workers int, withGeo bool, mod func(*gen.Config), cfgs ...config.Map) agent {
	t.Helper()
	hs, err := hostspec.Parse("172.16.53.0/24,fd53::/16")
	if err != nil {
		t.Fatal(err)
	}
	scfg := stream.Config{Workers: workers, HostSpec: hs}
	if withGeo {
		scfg.City, scfg.ASN = handlertest.GeoDBs(t)
	}
	var a agent
	var specs []handler.Spec
	for _, c := range cfgs {
		sp := newSpec(t, c)
		a.specs = append(a.specs, sp)
		specs = append(specs, sp)
	}
	s := stream.New(scfg, specs)
	if err := s.Run(context.Background(), &handlertest.SliceSource{Frames: genFrames(t, mod)}); err != nil {
		t.Fatal(err)
	}
	for i := range specs {
		a.insts = append(a.insts, s.Instances(i))
	}
	return a
}

// lightTraffic is ≈ 3.5 minutes of traffic (4 periods) with fewer distinct keys than a top-N
// sketch tracks, so every merge order gives identical sketches; heavyTraffic has enough
// distinct addresses to make the top-N sketches purge.
func lightTraffic(seed uint64) func(*gen.Config) {
	return func(c *gen.Config) {
		c.Seed, c.Packets, c.QPS, c.Names, c.Clients = seed, 90000, 150, 2000, 2500
		c.TCP, c.IPv6 = 0.1, 0.3
	}
}

func heavyTraffic(seed uint64) func(*gen.Config) {
	return func(c *gen.Config) {
		c.Seed, c.Packets, c.QPS, c.Names, c.Clients = seed, 200000, 1000, 5000, 400000
		c.TCP, c.IPv6 = 0.05, 0.5
	}
}

var cfgAll = config.Map{"num_periods": uint64(5), "recorded_stream": true, "topn_count": uint64(100000)}

// scenarios are built once: generating and running the captures dominates the tests' time.
type scenarioSet struct {
	once                   sync.Once
	ok                     bool
	lightA, lightB, heavyA agent
	heavyB, filtered       agent
}

var scen scenarioSet

func scenarios(t *testing.T) *scenarioSet {
	t.Helper()
	scen.once.Do(func() {
		scen.lightA = runAgent(t, 3, true, lightTraffic(1), cfgAll)
		scen.lightB = runAgent(t, 2, true, lightTraffic(2), cfgAll)
		scen.heavyA = runAgent(t, 3, false, heavyTraffic(3), cfgAll)
		scen.heavyB = runAgent(t, 2, false, heavyTraffic(4), cfgAll)
		scen.filtered = runAgent(t, 2, true, lightTraffic(5),
			config.Map{"num_periods": uint64(5), "recorded_stream": true, "geoloc_notfound": true})
		scen.ok = true
	})
	if !scen.ok {
		t.Fatal("scenario setup failed")
	}
	return &scen
}

// ---- rendering ----

// renderBucket renders a bucket directly (as Render does after merging).
func renderBucket(t testing.TB, s *Spec, b *bucket) string {
	t.Helper()
	j := metrics.NewJSON()
	s.render(b, false, j)
	p := metrics.NewProm("test")
	s.render(b, false, p)
	var prom bytes.Buffer
	if _, err := p.WriteTo(&prom); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(j.Root)
	if err != nil {
		t.Fatal(err)
	}
	return string(js) + "\n" + prom.String()
}

// ---- field coverage ----

func mergedBucket(t testing.TB, s *Spec, insts []handler.Handler, sel metrics.Selection) *bucket {
	t.Helper()
	b, _, err := handler.MergeInstances(insts, ringOf, sel, s.common.Recorded, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEveryFieldCovered checks that the test buckets hold data in every field, so that the
// round-trip tests below exercise every field of the format.
func TestEveryFieldCovered(t *testing.T) {
	if c, _ := handlertest.GeoDBs(t); c == nil {
		t.Skip("GeoIP test databases not available in " + handlertest.TestdataDir + ": top_geoLoc/top_ASN stay empty")
	}
	sc := scenarios(t)
	filled := map[string]bool{}
	for _, a := range []agent{sc.lightA, sc.filtered, sc.heavyA} {
		for k, v := range handlertest.FieldStates(mergedBucket(t, a.specs[0], a.insts[0], metrics.Selection{Window: 5})) {
			filled[k] = filled[k] || v
		}
	}
	if len(filled) != 27 {
		t.Errorf("bucket has %d fields, the codec covers 27: extend codec.go, docs/sketch-format.md and the version", len(filled))
	}
	for k, v := range filled {
		if !v {
			t.Errorf("field %s is empty in every test bucket", k)
		}
	}
	// The light scenario exercises the exact cardinality and quantile modes too.
	b := mergedBucket(t, sc.lightA.specs[0], sc.lightA.insts[0], metrics.Selection{Bucket: 0})
	if b.srcIPsIn.Estimate() < 1536 || b.payloadSize.Count() <= 200 {
		t.Errorf("light bucket: cardinality %d, payload sizes %d: want a dense sketch and a DDSketch",
			b.srcIPsIn.Estimate(), b.payloadSize.Count())
	}
	if b.topIPv4.MaxError() != 0 {
		t.Errorf("light bucket: top IPv4 purged (error %d)", b.topIPv4.MaxError())
	}
	h := mergedBucket(t, sc.heavyA.specs[0], sc.heavyA.insts[0], metrics.Selection{Bucket: 1})
	if h.topIPv6.MaxError() == 0 {
		t.Error("heavy bucket: top IPv6 never purged")
	}
}

// ---- round trip ----

// fresh returns an aggregator-style instance whose live bucket covers [startS, startS+lenS).
func fresh(s *Spec, rp metrics.RenderedPeriod) *Instance {
	h := s.NewInstance(&handler.Env{}).(*Instance)
	h.Start(rp.StartTS * 1e9)
	return h
}

func TestRoundTrip(t *testing.T) {
	sc := scenarios(t)
	for _, tc := range []struct {
		name string
		a    agent
		sel  metrics.Selection
	}{
		{"light/bucket0", sc.lightA, metrics.Selection{Bucket: 0}},
		{"light/bucket2", sc.lightA, metrics.Selection{Bucket: 2}},
		{"light/window4", sc.lightA, metrics.Selection{Window: 4}},
		{"heavy/bucket1", sc.heavyA, metrics.Selection{Bucket: 1}},
		{"heavy/window3", sc.heavyA, metrics.Selection{Window: 3}},
		{"filtered/bucket1", sc.filtered, metrics.Selection{Bucket: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.a.specs[0]
			enc, rp, err := s.AppendBucket([]byte("prefix"), tc.a.insts[0], tc.sel, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(enc, []byte("prefix")) {
				t.Fatal("AppendBucket did not append")
			}
			enc = enc[len("prefix"):]
			h := fresh(s, rp)
			if err := s.MergeBucket(h, enc); err != nil {
				t.Fatal(err)
			}
			h.End((rp.StartTS + rp.Length) * 1e9)
			want := handlertest.Render(t, s, tc.a.insts[0], tc.sel)
			got := handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{Bucket: 0})
			if d := handlertest.Diff(got, want); d != "" {
				t.Error(d)
			}
			// The decoded bucket encodes to the same bytes: nothing is lost or reordered.
			again, _, err := s.AppendBucket(nil, []handler.Handler{h}, metrics.Selection{Bucket: 0}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs: %d bytes vs %d", len(again), len(enc))
			}
		})
	}
}

// TestRoundTripEmpty covers the empty bucket (every sketch in its empty mode) and a bucket with
// a handful of packets (exact modes).
func TestRoundTripSmall(t *testing.T) {
	s := newSpec(t, cfgAll)
	for _, n := range []int{0, 1, 7, 150} {
		var frames []frame
		if n > 0 {
			frames = genFrames(t, func(c *gen.Config) { c.Packets, c.QPS = n, 10 })
		}
		hs, _ := hostspec.Parse("172.16.53.0/24,fd53::/16")
		st := stream.New(stream.Config{Workers: 2, HostSpec: hs}, []handler.Spec{s})
		if err := st.Run(context.Background(), &handlertest.SliceSource{Frames: frames}); err != nil {
			t.Fatal(err)
		}
		insts := st.Instances(0)
		enc, rp, err := s.AppendBucket(nil, insts, metrics.Selection{Bucket: 0}, 0)
		if err != nil {
			t.Fatal(err)
		}
		h := fresh(s, rp)
		if err := s.MergeBucket(h, enc); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			h.End((rp.StartTS + rp.Length) * 1e9)
		}
		if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{}), handlertest.Render(t, s, insts, metrics.Selection{})); d != "" {
			t.Errorf("%d packets: %s", n, d)
		}
		// Empty: header, 13 one-byte counters, then each sketch's length byte and its empty
		// form: 3 bytes for a Rate, Cardinality or Quantiles (tag, version, flags or mode), 7
		// for a TopN (tag, version, capacity 6144 in 2 bytes, total, offset, count).
		if want := 2 + 13 + 7*4 + 2*4 + 4*8 + 4; n == 0 && len(enc) != want {
			t.Errorf("empty bucket: %d bytes, want %d", len(enc), want)
		}
	}
}

// ---- merge law ----

// TestMergeLaw: merging two agents' decoded buckets is the same operation as merging the
// buckets in memory. Both sides merge in the same tree (A's workers, then B's workers, then
// A with B): a top-N sketch over its capacity purges, and a purge depends on the merge order
// (its error bound does not), so only an identical tree gives identical top-N lists. Every
// other sketch gives the same result for any order, which the flat comparison checks.
func TestMergeLaw(t *testing.T) {
	sc := scenarios(t)
	for _, tc := range []struct {
		name  string
		a, b  agent
		sel   metrics.Selection
		exact bool // no purges: the flat merge over all workers is identical too
	}{
		{"light/bucket1", sc.lightA, sc.lightB, metrics.Selection{Bucket: 1}, true},
		{"light/window3", sc.lightA, sc.lightB, metrics.Selection{Window: 3}, true},
		{"heavy/bucket1", sc.heavyA, sc.heavyB, metrics.Selection{Bucket: 1}, false},
		{"heavy/window2", sc.heavyA, sc.heavyB, metrics.Selection{Window: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.a.specs[0]
			encA, rp, err := s.AppendBucket(nil, tc.a.insts[0], tc.sel, 0)
			if err != nil {
				t.Fatal(err)
			}
			encB, _, err := s.AppendBucket(nil, tc.b.insts[0], tc.sel, 0)
			if err != nil {
				t.Fatal(err)
			}
			h := fresh(s, rp)
			for _, enc := range [][]byte{encA, encB} {
				if err := s.MergeBucket(h, enc); err != nil {
					t.Fatal(err)
				}
			}
			got := renderBucket(t, s, h.ring.Live())

			var tree bucket
			tree.Merge(mergedBucket(t, s, tc.a.insts[0], tc.sel))
			tree.Merge(mergedBucket(t, s, tc.b.insts[0], tc.sel))
			if d := handlertest.Diff(got, renderBucket(t, s, &tree)); d != "" {
				t.Errorf("decoded merge differs from the in-memory merge: %s", d)
			}

			flat := mergedBucket(t, s, slices.Concat(tc.a.insts[0], tc.b.insts[0]), tc.sel)
			if tc.exact {
				if d := handlertest.Diff(got, renderBucket(t, s, flat)); d != "" {
					t.Errorf("decoded merge differs from the flat merge: %s", d)
				}
				return
			}
			// Over capacity: identical except the top-N lists, which stay within their bounds.
			g := h.ring.Live()
			for i, pair := range [][2]*sketch.TopN{{&g.topIPv4, &flat.topIPv4}, {&g.topIPv6, &flat.topIPv6}} {
				handlertest.CheckTopBound(t, i, pair[0], pair[1])
			}
			g2, f2 := *g, *flat
			for _, b := range []*bucket{&g2, &f2} {
				b.topIPv4, b.topIPv6 = sketch.TopN{}, sketch.TopN{}
			}
			if d := handlertest.Diff(renderBucket(t, s, &g2), renderBucket(t, s, &f2)); d != "" {
				t.Errorf("decoded merge differs from the flat merge outside the top-N lists: %s", d)
			}
		})
	}
}

// ---- the aggregator sequence ----

// TestAggregatorSequence runs what the aggregator does: one fresh instance, Start at the
// oldest period, then for each period the agents' buckets merged and a Shift to the next
// period; its renders equal the agents' instances rendered together.
func TestAggregatorSequence(t *testing.T) {
	sc := scenarios(t)
	a, b := sc.lightA, sc.lightB
	s := a.specs[0]
	n := a.insts[0][0].(*Instance).ring.Len()
	if m := b.insts[0][0].(*Instance).ring.Len(); n != m || n < 4 {
		t.Fatalf("agents hold %d and %d periods, want the same number ≥ 4", n, m)
	}
	h := s.NewInstance(&handler.Env{}).(*Instance)
	for k := n - 1; k >= 0; k-- {
		encA, rp, err := s.AppendBucket(nil, a.insts[0], metrics.Selection{Bucket: k}, 0)
		if err != nil {
			t.Fatal(err)
		}
		encB, _, err := s.AppendBucket(nil, b.insts[0], metrics.Selection{Bucket: k}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if k == n-1 {
			h.Start(rp.StartTS * 1e9)
		} else {
			h.Shift(rp.StartTS * 1e9)
		}
		for _, enc := range [][]byte{encA, encB} {
			if err := s.MergeBucket(h, enc); err != nil {
				t.Fatal(err)
			}
		}
		if k == 0 {
			h.End((rp.StartTS + rp.Length) * 1e9)
		}
	}
	all := slices.Concat(a.insts[0], b.insts[0])
	for _, sel := range []metrics.Selection{{Bucket: 0}, {Bucket: 1}, {Bucket: 3}, {Window: 2}, {Window: 3}, {Window: 5}} {
		if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{h}, sel), handlertest.Render(t, s, all, sel)); d != "" {
			t.Errorf("%+v: %s", sel, d)
		}
	}
}

// ---- errors ----

func smallEncoding(t testing.TB) []byte {
	t.Helper()
	s := newSpec(t, cfgAll)
	hs, _ := hostspec.Parse("172.16.53.0/24,fd53::/16")
	st := stream.New(stream.Config{Workers: 1, HostSpec: hs}, []handler.Spec{s})
	frames := genFrames(t, func(c *gen.Config) { c.Packets, c.QPS, c.TCP = 120, 20, 0.2 })
	if err := st.Run(context.Background(), &handlertest.SliceSource{Frames: frames}); err != nil {
		t.Fatal(err)
	}
	enc, _, err := s.AppendBucket(nil, st.Instances(0), metrics.Selection{}, 0)
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
	// A sketch length of 2^62, a counter of 11 bytes, a non-minimal counter.
	head := append([]byte{BucketTag, BucketVersion}, make([]byte, 13)...)
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
		{"tag only", []byte{BucketTag}, handler.ErrBucketEncoding},
		{"wrong tag", append([]byte{'D'}, enc[1:]...), handler.ErrBucketEncoding},
		{"version 0", append([]byte{BucketTag, 0}, enc[2:]...), handler.ErrBucketVersion},
		{"version 2", append([]byte{BucketTag, 2}, enc[2:]...), handler.ErrBucketVersion},
		{"trailing byte", append(slices.Clone(enc), 0), handler.ErrBucketEncoding},
		{"trailing sketch", append(slices.Clone(enc), 1, 0), handler.ErrBucketEncoding},
		{"huge sketch length", huge, handler.ErrBucketEncoding},
		{"11-byte counter", long, handler.ErrBucketEncoding},
		{"non-minimal counter", nonMinimal, handler.ErrBucketEncoding},
		{"sketch of another type", swapFirstSketch(t, enc), sketch.ErrInvalidEncoding},
		{"oversized", make([]byte, handler.MaxBucketSize+1), handler.ErrBucketEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.unmarshalBinary(tc.data); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}

	// A failed MergeBucket leaves the instance as it was.
	s := newSpec(t, cfgAll)
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

// swapFirstSketch replaces the first sketch (a Rate) of an encoding with an empty TopN.
func swapFirstSketch(t testing.TB, enc []byte) []byte {
	t.Helper()
	var b bucket
	if err := b.unmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	out := handler.AppendBucketHeader(nil, BucketTag, BucketVersion)
	for _, c := range b.Fields().Counters {
		out = handler.AppendCounter(out, *c)
	}
	var err error
	for i, f := range b.Fields().Sketches {
		if i == 0 {
			f = &sketch.TopN{}
		}
		if out, err = handler.AppendSketch(out, f); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestDecodeAllocBound: what a decoder allocates follows the input's size, not its length
// fields.
func TestDecodeAllocBound(t *testing.T) {
	head := append([]byte{BucketTag, BucketVersion}, make([]byte, 13)...)
	var inputs [][]byte
	for _, n := range []uint64{1 << 20, 1 << 40, 1<<64 - 1} {
		inputs = append(inputs, binary.AppendUvarint(slices.Clone(head), n))
	}
	// Length fields inside sketches: a TopN claiming 2^20 items, a Rate claiming 4096 seconds.
	top := append([]byte{'T', 1}, binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(
		binary.AppendUvarint(nil, 1<<20), 1<<40), 0), 1<<20)...)
	inputs = append(inputs, append(binary.AppendUvarint(slices.Clone(head), uint64(len(top))), top...))
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
		if per := (m1.TotalAlloc - m0.TotalAlloc) / 10; per > 64<<10 {
			t.Errorf("input of %d bytes: %d bytes allocated per decode", len(in), per)
		}
	}
}

// ---- fuzzing ----

func FuzzNetBucket(f *testing.F) {
	f.Add(smallEncoding(f))
	var empty bucket
	e, _ := empty.appendBinary(nil)
	f.Add(e)
	s := newSpec(f, cfgAll)
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
		_ = renderBucket(t, s, &b)
		h := s.NewInstance(&handler.Env{}).(*Instance)
		for range 2 {
			if err := s.MergeBucket(h, data); err != nil {
				t.Fatal(err)
			}
		}
		_ = handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{})
	})
}

// ---- sizes and speed ----

var sketchNames = [...]string{"ppsIn", "ppsOut", "ppsTotal", "ppsEvents", "bytesIn", "bytesOut", "bytesTotal",
	"srcIPsIn", "dstIPsOut", "topIPv4", "topIPv6", "topGeoLoc", "topASN", "payloadSize"}

// TestEncodedSize logs the size of busy buckets (run with -v).
func TestEncodedSize(t *testing.T) {
	sc := scenarios(t)
	for _, tc := range []struct {
		name string
		a    agent
	}{{"light (150 q/s)", sc.lightA}, {"heavy (1000 q/s, 400k clients)", sc.heavyA}} {
		s := tc.a.specs[0]
		enc, rp, err := s.AppendBucket(nil, tc.a.insts[0], metrics.Selection{Bucket: 1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := mergedBucket(t, s, tc.a.insts[0], metrics.Selection{Bucket: 1})
		var parts []string
		for i, f := range b.Fields().Sketches {
			x, _ := f.AppendBinary(nil)
			parts = append(parts, sketchNames[i]+"="+strconv.Itoa(len(x)))
		}
		t.Logf("%s: %d-s bucket, %d packets: %d bytes (%s)", tc.name, rp.Length, b.total, len(enc), strings.Join(parts, " "))
	}
}

func BenchmarkAppendBucket(b *testing.B) {
	a := runAgent(b, 2, false, heavyTraffic(3), cfgAll)
	s := a.specs[0]
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = s.AppendBucket(buf[:0], a.insts[0], metrics.Selection{Bucket: 1}, 0)
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

func BenchmarkMergeBucket(b *testing.B) {
	a := runAgent(b, 2, false, heavyTraffic(3), cfgAll)
	s := a.specs[0]
	enc, _, _ := s.AppendBucket(nil, a.insts[0], metrics.Selection{Bucket: 1}, 0)
	h := s.NewInstance(&handler.Env{}).(*Instance)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.MergeBucket(h, enc); err != nil {
			b.Fatal(err)
		}
		h.ring.Live().Reset()
	}
}
