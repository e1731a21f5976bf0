package sketch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/axiomhq/hyperloglog"
)

func TestCardinalitySmallCountsExact(t *testing.T) {
	for _, n := range []uint64{0, 1, 2, 3, 9, 70, 100, 1000, CardinalityExactLimit} {
		for seed := uint64(0); seed < 5; seed++ {
			var c Cardinality
			for i := uint64(0); i < n; i++ {
				c.Insert(keyOf(seed, i))
				c.Insert(keyOf(seed, i)) // duplicates never count
			}
			if got := c.Estimate(); got != n {
				t.Errorf("n=%d seed=%d: estimate %d, want exact", n, seed, got)
			}
		}
	}
	// Hash 0 is a value like any other.
	var z Cardinality
	z.InsertHash(0)
	z.InsertHash(0)
	z.InsertHash(7)
	if z.Estimate() != 2 {
		t.Fatalf("hash 0: %d", z.Estimate())
	}
}

func TestCardinalityZeroValueAndEmptyKey(t *testing.T) {
	var c Cardinality
	if got := c.Estimate(); got != 0 {
		t.Fatalf("zero value estimate %d", got)
	}
	c.Insert(nil)
	c.Insert([]byte{})
	if got := c.Estimate(); got != 0 {
		t.Fatalf("empty keys counted: %d", got)
	}
	c.Insert([]byte("metric"))
	if got := c.Estimate(); got != 1 {
		t.Fatalf("one key: %d", got)
	}
	// Reference test_metrics: "metric" then 16 raw bytes ⇒ 2.
	c.Insert(bytes.Repeat([]byte{0xab}, 16))
	if got := c.Estimate(); got != 2 {
		t.Fatalf("two keys: %d", got)
	}
}

// TestCardinalityErrorBound checks the documented standard error: every
// estimate within 3σ, and the RMS error over the dense-range streams close
// to σ, for generated streams of sizes 1..1e6.
func TestCardinalityErrorBound(t *testing.T) {
	if testing.Short() {
		t.Skip("generates ~10M keys")
	}
	sizes := []uint64{1, 10, 100, 1000, 1537, 2000, 5000, 10000, 16384, 20000, 50000, 100000, 300000, 1000000}
	var sumSq float64
	var dense int
	for _, n := range sizes {
		seeds := uint64(6)
		if n >= 300000 {
			seeds = 3
		}
		for seed := uint64(0); seed < seeds; seed++ {
			var c Cardinality
			stream := n*100 + seed
			for i := uint64(0); i < n; i++ {
				c.Insert(keyOf(stream, i))
			}
			est := float64(c.Estimate())
			e := relErr(est, float64(n))
			if e > 3*CardinalityStdError {
				t.Errorf("n=%d seed=%d: estimate %.0f, relative error %.4f > 3σ", n, seed, est, e)
			}
			if n > CardinalityExactLimit {
				sumSq += e * e
				dense++
			}
		}
	}
	rms := math.Sqrt(sumSq / float64(dense))
	t.Logf("dense-range RMS relative error %.4f over %d streams (σ = %.4f)", rms, dense, CardinalityStdError)
	if rms > 1.5*CardinalityStdError {
		t.Errorf("RMS relative error %.4f, want about σ = %.4f", rms, CardinalityStdError)
	}
}

// TestCardinalitySplitInvariance is the product's hard requirement: the
// estimate of a stream is identical however it is split across sketches
// and in whatever order (or tree shape) they are merged.
func TestCardinalitySplitInvariance(t *testing.T) {
	sizes := []int{1, 5, 100, 1500, 2000, 2100, 3000, 16000, 40000, 200000}
	if testing.Short() {
		sizes = sizes[:6]
	}
	for _, n := range sizes {
		for seed := uint64(0); seed < 4; seed++ {
			r := newRand(uint64(n)*31 + seed)
			// Keys with repeats: n draws among 3n/4 distinct keys.
			hashes := make([]uint64, n)
			for i := range hashes {
				hashes[i] = HashUint64(r.Uint64N(uint64(n)*3/4 + 1))
			}
			var whole Cardinality
			for _, h := range hashes {
				whole.InsertHash(h)
			}
			want := whole.Estimate()
			for _, k := range []int{2, 3, 8} {
				parts := make([]*Cardinality, k)
				for i := range parts {
					parts[i] = &Cardinality{}
				}
				for i, p := range splitIndex(r, n, k) {
					parts[p].InsertHash(hashes[i])
				}
				// Linear merge in a random order.
				var lin Cardinality
				for _, i := range r.Perm(k) {
					if err := lin.Merge(parts[i]); err != nil {
						t.Fatal(err)
					}
				}
				// Tree merge: pairs first.
				for len(parts) > 1 {
					var next []*Cardinality
					for i := 0; i+1 < len(parts); i += 2 {
						if err := parts[i+1].Merge(parts[i]); err != nil {
							t.Fatal(err)
						}
						next = append(next, parts[i+1])
					}
					if len(parts)%2 == 1 {
						next = append(next, parts[len(parts)-1])
					}
					parts = next
				}
				if got := lin.Estimate(); got != want {
					t.Errorf("n=%d seed=%d k=%d linear merge: %d, single sketch %d", n, seed, k, got, want)
				}
				if got := parts[0].Estimate(); got != want {
					t.Errorf("n=%d seed=%d k=%d tree merge: %d, single sketch %d", n, seed, k, got, want)
				}
			}
		}
	}
}

func TestCardinalityResetBehavesFresh(t *testing.T) {
	var c Cardinality
	for i := uint64(0); i < 100000; i++ {
		c.InsertHash(HashUint64(i))
	}
	c.Reset()
	if got := c.Estimate(); got != 0 {
		t.Fatalf("after Reset: %d", got)
	}
	for i := uint64(0); i < 9; i++ {
		c.InsertHash(HashUint64(i))
	}
	var fresh Cardinality
	for i := uint64(0); i < 9; i++ {
		fresh.InsertHash(HashUint64(i))
	}
	if got, want := c.Estimate(), fresh.Estimate(); got != want || got != 9 {
		t.Fatalf("after Reset: %d, fresh sketch %d, want 9", got, want)
	}
}

func TestCardinalityEstimateIsReadOnly(t *testing.T) {
	var c Cardinality
	for i := uint64(0); i < 1000; i++ {
		c.InsertHash(HashUint64(i))
	}
	before, _ := c.MarshalBinary()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if got := c.Estimate(); got < 990 || got > 1010 {
				t.Errorf("estimate %d", got)
			}
			var m Cardinality
			if err := m.Merge(&c); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	after, _ := c.MarshalBinary()
	if !bytes.Equal(before, after) {
		t.Fatal("Estimate or being merged modified the sketch")
	}
}

func TestCardinalityEncodingRoundTrip(t *testing.T) {
	for _, n := range []uint64{0, 1, 50, 3000, 30000} {
		var c Cardinality
		for i := uint64(0); i < n; i++ {
			c.InsertHash(HashUint64(i))
		}
		data, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var d Cardinality
		d.InsertHash(12345) // decoding replaces, not merges
		if err := d.UnmarshalBinary(data); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if got, want := d.Estimate(), c.Estimate(); got != want {
			t.Fatalf("n=%d: decoded estimate %d, want %d", n, got, want)
		}
		// A decoded sketch merges like the original.
		var x, y Cardinality
		for i := n; i < n+20000; i++ {
			x.InsertHash(HashUint64(i))
			y.InsertHash(HashUint64(i))
		}
		if err := x.Merge(&c); err != nil {
			t.Fatal(err)
		}
		if err := y.Merge(&d); err != nil {
			t.Fatal(err)
		}
		if x.Estimate() != y.Estimate() {
			t.Fatalf("n=%d: merge of decoded sketch differs", n)
		}
		// AppendBinary appends.
		pre := []byte("xyz")
		out, _ := c.AppendBinary(pre)
		if !bytes.Equal(out[:3], pre) || !bytes.Equal(out[3:], data) {
			t.Fatal("AppendBinary does not append the same encoding")
		}
	}
}

func TestCardinalityDecodeRejects(t *testing.T) {
	exact := func(hs ...uint64) []byte {
		b := binary.AppendUvarint([]byte{tagCardinality, 1, cardModeExact}, uint64(len(hs)))
		for _, h := range hs {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
		return b
	}
	var ok Cardinality
	if err := ok.UnmarshalBinary(exact(0, 5, 9)); err != nil || ok.Estimate() != 3 {
		t.Fatalf("valid exact encoding: %v", err)
	}
	var big Cardinality
	for i := range uint64(5000) {
		big.InsertHash(HashUint64(i))
	}
	dense, _ := big.MarshalBinary()
	tooMany := make([]uint64, CardinalityExactLimit+1)
	for i := range tooMany {
		tooMany[i] = uint64(i)
	}
	sparse, _ := hyperloglog.New14().MarshalBinary()
	p16 := hyperloglog.New16NoSparse()
	p16.InsertHash(1)
	p16b, _ := p16.MarshalBinary()
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"tag only", []byte{tagCardinality}},
		{"wrong tag", append([]byte{tagTopN}, dense[1:]...)},
		{"bad version", append([]byte{tagCardinality, 9}, dense[2:]...)},
		{"bad mode", []byte{tagCardinality, 1, 3}},
		{"empty with trailing", []byte{tagCardinality, 1, 0, 0}},
		{"exact zero hashes", exact()},
		{"exact too many", exact(tooMany...)},
		{"exact unsorted", exact(9, 5)},
		{"exact duplicate", exact(5, 5)},
		{"exact truncated", exact(1, 2)[:15]},
		{"exact trailing", append(exact(1, 2), 0)},
		{"dense no payload", []byte{tagCardinality, 1, cardModeDense}},
		{"dense sparse payload", append([]byte{tagCardinality, 1, cardModeDense}, sparse...)},
		{"dense precision 16", append([]byte{tagCardinality, 1, cardModeDense}, p16b...)},
		{"dense truncated", dense[:len(dense)-1]},
		{"dense trailing", append(append([]byte{}, dense...), 0)},
		{"dense bad register", append(append([]byte{}, dense[:len(dense)-1]...), 60)},
	}
	for _, tt := range tests {
		var c Cardinality
		c.InsertHash(99)
		err := c.UnmarshalBinary(tt.in)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !errors.Is(err, ErrInvalidEncoding) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("%s: error %v does not wrap a package error", tt.name, err)
		}
		if c.Estimate() != 1 {
			t.Errorf("%s: failed decode modified the sketch", tt.name)
		}
	}
}

func TestCardinalityInsertAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	tests := []struct {
		name string
		warm uint64 // distinct keys inserted first
		key  func(i uint64) uint64
	}{
		{"exact known", 1000, func(i uint64) uint64 { return HashUint64(i % 1000) }},
		{"dense new", 50000, func(i uint64) uint64 { return HashUint64(1<<40 + i) }},
	}
	for _, tt := range tests {
		var c Cardinality
		for i := uint64(0); i < tt.warm; i++ {
			c.InsertHash(HashUint64(i))
		}
		var i uint64
		if n := testing.AllocsPerRun(1000, func() { c.InsertHash(tt.key(i)); i++ }); n != 0 {
			t.Errorf("%s: %v allocs per insert", tt.name, n)
		}
		key := []byte(fmt.Sprint("k", tt.warm))
		if n := testing.AllocsPerRun(1000, func() { c.Insert(key) }); n != 0 {
			t.Errorf("%s: Insert: %v allocs", tt.name, n)
		}
	}
	// A reused bucket: Reset keeps the set and the registers.
	var c Cardinality
	for i := range uint64(5000) {
		c.InsertHash(HashUint64(i))
	}
	if n := testing.AllocsPerRun(10, func() {
		c.Reset()
		for i := range uint64(3000) {
			c.InsertHash(HashUint64(i))
		}
	}); n != 0 {
		t.Errorf("reused bucket: %v allocs", n)
	}
}
