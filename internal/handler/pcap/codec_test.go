package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/handler/handlertest"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// The pcap handler counts what the stream reports outside the packets (reassembly errors
// per worker, drops on worker 0), so the tests report them the same way, directly.

func codecSpec(t testing.TB) *Spec {
	t.Helper()
	sp, err := New(config.Map{"num_periods": uint64(5), "recorded_stream": true})
	if err != nil {
		t.Fatal(err)
	}
	return sp.(*Spec)
}

const period = 60 * int64(1e9)

func feedAgent(s *Spec, workers, periods int, startNs int64, seed uint64) []handler.Handler {
	insts := make([]handler.Handler, workers)
	for i := range insts {
		insts[i] = s.NewInstance(&handler.Env{Worker: i})
		insts[i].Start(startNs)
	}
	x := seed*0x9e3779b97f4a7c15 + 1
	for p := range periods {
		if p > 0 {
			for _, h := range insts {
				h.Shift(startNs + int64(p)*period)
			}
		}
		for i := range 50 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			insts[i%workers].TCPReassemblyErrors(x % 3)
			if i%10 == 0 {
				insts[0].Drops(x%1000, x%7)
			}
		}
	}
	for _, h := range insts {
		h.End(startNs + int64(periods)*period - period/2)
	}
	return insts
}

func TestRoundTrip(t *testing.T) {
	s := codecSpec(t)
	a := feedAgent(s, 3, 4, 1_700_000_000e9, 1)
	for _, sel := range []metrics.Selection{{Bucket: 0}, {Bucket: 3}, {Window: 4}} {
		enc, rp, err := s.AppendBucket([]byte{9}, a, sel, 0)
		if err != nil {
			t.Fatal(err)
		}
		if enc[0] != 9 {
			t.Fatal("AppendBucket did not append")
		}
		enc = enc[1:]
		var b bucket
		if err := b.unmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
		if b.reassemblyErrors == 0 || b.osDrops == 0 || b.ifDrops == 0 {
			t.Fatalf("%+v: a field is empty: %+v", sel, b)
		}
		// The layout by hand: tag, version, three uvarints.
		want := binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint([]byte{'P', 1}, b.reassemblyErrors), b.osDrops), b.ifDrops)
		if !bytes.Equal(enc, want) {
			t.Errorf("%+v: encoding % x, want % x", sel, enc, want)
		}
		h := s.NewInstance(&handler.Env{})
		h.Start(rp.StartTS * 1e9)
		if err := s.MergeBucket(h, enc); err != nil {
			t.Fatal(err)
		}
		h.End((rp.StartTS + rp.Length) * 1e9)
		if got, want := handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{}), handlertest.Render(t, s, a, sel); got != want {
			t.Errorf("%+v: got\n%s\nwant\n%s", sel, got, want)
		}
	}
}

// TestAggregatorSequence also covers the merge law: counters add up, so the aggregator's
// buckets equal the two agents' instances merged in memory.
func TestAggregatorSequence(t *testing.T) {
	s := codecSpec(t)
	start := int64(1_700_000_000e9)
	a, b := feedAgent(s, 3, 4, start, 1), feedAgent(s, 2, 4, start, 2)
	h := s.NewInstance(&handler.Env{})
	for k := 3; k >= 0; k-- {
		for i, insts := range [][]handler.Handler{a, b} {
			enc, rp, err := s.AppendBucket(nil, insts, metrics.Selection{Bucket: k}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if k == 3 {
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
	all := slices.Concat(a, b)
	for _, sel := range []metrics.Selection{{Bucket: 0}, {Bucket: 1}, {Bucket: 3}, {Window: 3}, {Window: 4}} {
		if got, want := handlertest.Render(t, s, []handler.Handler{h}, sel), handlertest.Render(t, s, all, sel); got != want {
			t.Errorf("%+v: got\n%s\nwant\n%s", sel, got, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	enc := []byte{'P', 1, 0x96, 0x01, 7, 0}
	var b bucket
	if err := b.unmarshalBinary(enc); err != nil || b != (bucket{150, 7, 0}) {
		t.Fatalf("%v %+v", err, b)
	}
	for i := range len(enc) {
		if err := b.unmarshalBinary(enc[:i]); !errors.Is(err, handler.ErrBucketEncoding) {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"wrong tag", []byte{'N', 1, 0, 0, 0}, handler.ErrBucketEncoding},
		{"version 2", []byte{'P', 2, 0, 0, 0}, handler.ErrBucketVersion},
		{"trailing", []byte{'P', 1, 0, 0, 0, 0}, handler.ErrBucketEncoding},
		{"non-minimal", []byte{'P', 1, 0x80, 0, 0, 0}, handler.ErrBucketEncoding},
		{"11-byte counter", append(append([]byte{'P', 1}, bytes.Repeat([]byte{0xff}, 10)...), 1, 0, 0), handler.ErrBucketEncoding},
		{"oversized", make([]byte, handler.MaxBucketSize+1), handler.ErrBucketEncoding},
	} {
		if err := b.unmarshalBinary(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	s := codecSpec(t)
	if err := s.MergeBucket(handlertest.Foreign{}, enc); err == nil {
		t.Error("merged into a foreign instance")
	}
	h := s.NewInstance(&handler.Env{})
	if err := s.MergeBucket(h, enc[:4]); err == nil || h.(*Instance).ring.Live().reassemblyErrors != 0 {
		t.Error("a failed merge changed the instance")
	}
}

func FuzzPcapBucket(f *testing.F) {
	s := codecSpec(f)
	enc, _, _ := s.AppendBucket(nil, feedAgent(s, 2, 2, 0, 3), metrics.Selection{Window: 2}, 0)
	f.Add(enc)
	f.Add([]byte{'P', 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bucket
		if err := b.unmarshalBinary(data); err != nil {
			if !errors.Is(err, handler.ErrBucketEncoding) && !errors.Is(err, handler.ErrBucketVersion) {
				t.Fatalf("error %v wraps neither bucket error", err)
			}
			return
		}
		// Accepted input is canonical: it re-encodes to itself.
		if enc, _ := b.appendBinary(nil); !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding % x of % x", enc, data)
		}
		h := s.NewInstance(&handler.Env{})
		if err := s.MergeBucket(h, data); err != nil {
			t.Fatal(err)
		}
		_ = handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{})
	})
}
