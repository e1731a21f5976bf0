package sketch

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

func updateStr(t *TopN, key string, w uint64) { t.Update([]byte(key), Hash([]byte(key)), w) }

// oracleSorted returns the exact counts in listing order.
func oracleSorted(truth map[string]uint64) []Item {
	var out []Item
	for k, v := range truth {
		out = append(out, Item{Key: k, Estimate: v, Lower: v})
	}
	slices.SortFunc(out, func(a, b Item) int {
		if c := cmp.Compare(b.Estimate, a.Estimate); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out
}

func TestTopNExactBelowCapacity(t *testing.T) {
	for seed := uint64(0); seed < 10; seed++ {
		r := newRand(seed)
		capacity := 1 + r.IntN(300)
		topn := NewTopN(capacity)
		truth := map[string]uint64{}
		for range 5000 {
			k := strconv.Itoa(r.IntN(capacity))
			w := 1 + r.Uint64N(1500)
			updateStr(topn, k, w)
			truth[k] += w
		}
		if topn.MaxError() != 0 {
			t.Fatalf("seed %d: max error %d below capacity", seed, topn.MaxError())
		}
		got := topn.Items(-1, nil)
		want := oracleSorted(truth)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: items differ from exact counts\n got %v\nwant %v", seed, got[:min(5, len(got))], want[:min(5, len(want))])
		}
		if got := topn.Items(3, nil); !slices.Equal(got, want[:min(3, len(want))]) {
			t.Fatalf("seed %d: Items(3) = %v", seed, got)
		}
		var total uint64
		for _, v := range truth {
			total += v
		}
		if topn.Total() != total || topn.Len() != len(truth) {
			t.Fatalf("seed %d: total %d len %d, want %d %d", seed, topn.Total(), topn.Len(), total, len(truth))
		}
	}
}

// TestTopNReferenceSketchTest replays pktvisor's test_sketches.cpp frequent
// items case with lg_max_map_size 3 (8 slots, 6 items).
func TestTopNReferenceSketchTest(t *testing.T) {
	topn := NewTopN(6)
	key := func(i int) string { return strconv.Itoa(i) }
	updateStr(topn, key(1), 10)
	for i := 2; i <= 6; i++ {
		updateStr(topn, key(i), 1)
	}
	updateStr(topn, key(7), 15)
	for i := 8; i <= 12; i++ {
		updateStr(topn, key(i), 1)
	}
	if topn.MaxError() == 0 {
		t.Fatal("max error 0, want > 0")
	}
	if topn.Total() != 35 {
		t.Fatalf("total %d, want 35", topn.Total())
	}
	all := topn.Items(-1, nil)
	// NO_FALSE_POSITIVES: lower bound above the maximum error.
	var noFP []Item
	for _, it := range all {
		if it.Lower > topn.MaxError() {
			noFP = append(noFP, it)
		}
	}
	if len(noFP) != 2 || noFP[0].Key != "7" || noFP[0].Estimate != 15 || noFP[1].Key != "1" || noFP[1].Estimate != 10 {
		t.Fatalf("NO_FALSE_POSITIVES = %v, want [7 (15), 1 (10)]", noFP)
	}
	// NO_FALSE_NEGATIVES: upper bound above the maximum error.
	var noFN int
	for _, it := range all {
		if it.Estimate > topn.MaxError() {
			noFN++
		}
	}
	if noFN < 2 || noFN > 12 {
		t.Fatalf("NO_FALSE_NEGATIVES has %d items, want 2..12", noFN)
	}
}

// checkTopNBounds checks every documented guarantee against exact counts.
func checkTopNBounds(t *testing.T, name string, topn *TopN, truth map[string]uint64) {
	t.Helper()
	var total uint64
	for _, v := range truth {
		total += v
	}
	if topn.Total() != total {
		t.Fatalf("%s: total %d, want %d", name, topn.Total(), total)
	}
	m := uint64(topn.MaxItems())
	bound := total / ((m + 2) / 2) // Total / ceil((M+1)/2)
	if topn.MaxError() > bound {
		t.Fatalf("%s: max error %d > Total/ceil((M+1)/2) = %d", name, topn.MaxError(), bound)
	}
	if topn.Len() > int(m) {
		t.Fatalf("%s: %d items tracked, capacity %d", name, topn.Len(), m)
	}
	items := topn.Items(-1, nil)
	tracked := make(map[string]Item, len(items))
	var sumLower uint64
	for _, it := range items {
		tracked[it.Key] = it
		sumLower += it.Lower
		tv := truth[it.Key]
		if it.Lower > tv || tv > it.Estimate || it.Estimate-it.Lower != topn.MaxError() {
			t.Fatalf("%s: key %q true %d outside [%d, %d]", name, it.Key, tv, it.Lower, it.Estimate)
		}
	}
	if sumLower+topn.MaxError() > total {
		t.Fatalf("%s: counts %d + max error %d exceed total %d", name, sumLower, topn.MaxError(), total)
	}
	for k, v := range truth {
		if _, ok := tracked[k]; ok {
			continue
		}
		if v > topn.MaxError() {
			t.Fatalf("%s: untracked key %q has true count %d > max error %d", name, k, v, topn.MaxError())
		}
		if v > bound {
			t.Fatalf("%s: heavy hitter %q (%d > %d) missing", name, k, v, bound)
		}
	}
}

type topnStream struct {
	name string
	gen  func(r *rand.Rand) []uint64
}

var topnStreams = []topnStream{
	{"zipf1.1", func(r *rand.Rand) []uint64 { return zipfStream(r, 1.1, 1e6, 60000) }},
	{"zipf1.5", func(r *rand.Rand) []uint64 { return zipfStream(r, 1.5, 1e6, 60000) }},
	{"uniform", func(r *rand.Rand) []uint64 { return uniformStream(r, 5000, 60000) }},
	{"flood", func(r *rand.Rand) []uint64 { return uniformStream(r, 1<<62, 30000) }},
}

func TestTopNBoundsAboveCapacity(t *testing.T) {
	for _, st := range topnStreams {
		for seed := uint64(0); seed < 6; seed++ {
			r := newRand(seed + 100)
			for _, capacity := range []int{16, 100, 1000} {
				weighted := seed%2 == 1
				topn := NewTopN(capacity)
				truth := map[string]uint64{}
				for _, v := range st.gen(r) {
					k := strconv.FormatUint(v, 10)
					w := uint64(1)
					if weighted {
						w = 1 + r.Uint64N(500)
					}
					updateStr(topn, k, w)
					truth[k] += w
				}
				checkTopNBounds(t, st.name+"/cap"+strconv.Itoa(capacity), topn, truth)
			}
		}
	}
}

func TestTopNMergeBounds(t *testing.T) {
	for _, st := range topnStreams {
		for seed := uint64(0); seed < 4; seed++ {
			r := newRand(seed + 200)
			stream := st.gen(r)
			for _, k := range []int{2, 5} {
				capacity := 64 << seed
				parts := make([]*TopN, k)
				for i := range parts {
					parts[i] = NewTopN(capacity)
				}
				truth := map[string]uint64{}
				for i, p := range splitIndex(r, len(stream), k) {
					key := strconv.FormatUint(stream[i], 10)
					parts[p].Update([]byte(key), Hash([]byte(key)), 1)
					truth[key]++
				}
				merged := NewTopN(capacity)
				for _, i := range r.Perm(k) {
					merged.Merge(parts[i])
				}
				checkTopNBounds(t, st.name+"/merge", merged, truth)
				// Tree merge.
				for len(parts) > 1 {
					parts[1].Merge(parts[0])
					parts = parts[1:]
				}
				checkTopNBounds(t, st.name+"/chain", parts[0], truth)
			}
		}
	}
}

// TestTopNMergeExactBelowCapacity: without purges a merge is exact and
// does not depend on the split.
func TestTopNMergeExactBelowCapacity(t *testing.T) {
	r := newRand(3)
	stream := zipfStream(r, 1.2, 2000, 20000)
	truth := map[string]uint64{}
	parts := []*TopN{NewTopN(0), NewTopN(0), NewTopN(0)}
	for i, p := range splitIndex(r, len(stream), 3) {
		key := strconv.FormatUint(stream[i], 10)
		updateStr(parts[p], key, 2)
		truth[key] += 2
	}
	var merged TopN
	for _, p := range parts {
		merged.Merge(p)
	}
	if got, want := merged.Items(-1, nil), oracleSorted(truth); !slices.Equal(got, want) || merged.MaxError() != 0 {
		t.Fatal("merge below capacity is not exact")
	}
}

func TestTopNMergeSelfDoubles(t *testing.T) {
	topn := NewTopN(4)
	for i := range 10 {
		updateStr(topn, strconv.Itoa(i%6), uint64(i+1))
	}
	before := topn.Items(-1, nil)
	total, maxErr := topn.Total(), topn.MaxError()
	clone := topn.Clone()
	clone.Merge(topn)
	topn.Merge(topn)
	if !slices.Equal(topn.Items(-1, nil), clone.Items(-1, nil)) || topn.Total() != 2*total || topn.MaxError() < 2*maxErr {
		t.Fatalf("self merge: %v (before %v)", topn.Items(-1, nil), before)
	}
}

func TestTopNListingOrderTies(t *testing.T) {
	topn := NewTopN(0)
	for _, k := range []string{"b", "a", "c", "aa", "\xff", "\x00"} {
		updateStr(topn, k, 5)
	}
	updateStr(topn, "z", 7)
	var keys []string
	for _, it := range topn.Items(-1, nil) {
		keys = append(keys, it.Key)
	}
	want := []string{"z", "\x00", "a", "aa", "b", "c", "\xff"}
	if !slices.Equal(keys, want) {
		t.Fatalf("order %q, want %q", keys, want)
	}
	if got := topn.Items(0, nil); len(got) != 0 {
		t.Fatalf("Items(0) = %v", got)
	}
}

// TestTopNReferenceMetricsExample: pktvisor test_metrics TopN<string>.
func TestTopNReferenceMetricsExample(t *testing.T) {
	var topn TopN
	for _, k := range []string{"top1", "top2", "top1"} {
		updateStr(&topn, k, 1)
	}
	got := topn.Items(10, nil)
	want := []Item{{"top1", 2, 2}, {"top2", 1, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	if got := topn.Items(1, nil); !slices.Equal(got, want[:1]) {
		t.Fatalf("topn_count 1: %v", got)
	}
}

func TestCutPercentile(t *testing.T) {
	mk := func(est ...uint64) []Item {
		out := make([]Item, len(est))
		for i, e := range est {
			out[i] = Item{Key: strconv.Itoa(i), Estimate: e}
		}
		return out
	}
	five := mk(10, 8, 8, 5, 1)
	tests := []struct {
		pct  uint64
		want int
	}{
		{0, 5},   // rank 0 ⇒ the minimum ⇒ keep all
		{20, 5},  // ceil(1.0) = 1st smallest = 1
		{21, 4},  // ceil(1.05) = 2nd smallest = 5
		{50, 3},  // ceil(2.5) = 3rd smallest = 8
		{60, 3},  // ceil(3.0) = 3rd smallest = 8
		{61, 3},  // ceil(3.05) = 4th smallest = 8
		{90, 1},  // ceil(4.5) = 5th smallest = 10
		{100, 1}, // the maximum
		{150, 1}, // clamped to 100
	}
	for _, tt := range tests {
		if got := CutPercentile(five, tt.pct); len(got) != tt.want {
			t.Errorf("pct %d: kept %d items, want %d", tt.pct, len(got), tt.want)
		}
	}
	if got := CutPercentile(nil, 50); len(got) != 0 {
		t.Fatal("empty list")
	}
	// Estimates 100..1: in float64, 7/100·100 = 7.000000000000001 (0.07 is
	// stored slightly above 0.07 and the product rounds up), so the rank is
	// 8, not 7, as in the reference's double arithmetic: the threshold is
	// the 8th smallest estimate, 8, and the 93 items ≥ 8 stay.
	var hundred []uint64
	for e := uint64(100); e >= 1; e-- {
		hundred = append(hundred, e)
	}
	if got := CutPercentile(mk(hundred...), 7); len(got) != 93 {
		t.Fatalf("pct 7 of 100: kept %d, want 93", len(got))
	}
}

func TestTopNMemoryBoundedUnderFlood(t *testing.T) {
	topn := NewTopN(0)
	r := newRand(11)
	key := make([]byte, 40)
	for i := 0; i < 1_000_000; i++ {
		binary.LittleEndian.PutUint64(key, r.Uint64())
		topn.Update(key, Hash(key), 1)
		if i%100000 == 0 || i == 999999 {
			if len(topn.slots) > 8192 {
				t.Fatalf("table grew to %d slots", len(topn.slots))
			}
			if cap(topn.arena) > (DefaultTopNMaxItems+1)*40*2 || cap(topn.keep) > DefaultTopNMaxItems {
				t.Fatalf("key arena grew to %d bytes", cap(topn.arena))
			}
		}
	}
	if topn.Len() > DefaultTopNMaxItems {
		t.Fatalf("%d items tracked", topn.Len())
	}
	long := bytes.Repeat([]byte("x"), 3*MaxKeyLen)
	topn.Update(long, Hash(long), 1<<40)
	if it := topn.Items(1, nil)[0]; len(it.Key) != MaxKeyLen {
		t.Fatalf("long key stored with %d bytes", len(it.Key))
	}
}

func TestTopNZeroWeightAndZeroValue(t *testing.T) {
	var topn TopN
	if topn.MaxItems() != DefaultTopNMaxItems || topn.Len() != 0 || len(topn.Items(-1, nil)) != 0 {
		t.Fatal("zero value not empty with default capacity")
	}
	updateStr(&topn, "a", 0)
	if topn.Total() != 0 || topn.Len() != 0 {
		t.Fatal("zero weight counted")
	}
	if NewTopN(-5).MaxItems() != DefaultTopNMaxItems || NewTopN(MaxTopNMaxItems*2).MaxItems() != MaxTopNMaxItems {
		t.Fatal("capacity not clamped")
	}
	topn.Merge(nil)
	topn.Merge(&TopN{})
	updateStr(&topn, "a", 1<<63)
	updateStr(&topn, "a", 1<<63)
	if it := topn.Items(1, nil)[0]; it.Lower != 1<<64-1 {
		t.Fatalf("count did not saturate: %d", it.Lower)
	}
}

func TestTopNResetReuses(t *testing.T) {
	topn := NewTopN(50)
	for i := range 1000 {
		updateStr(topn, strconv.Itoa(i), 1)
	}
	topn.Reset()
	if topn.Len() != 0 || topn.Total() != 0 || topn.MaxError() != 0 {
		t.Fatal("Reset left state")
	}
	updateStr(topn, "x", 3)
	if got := topn.Items(-1, nil); !slices.Equal(got, []Item{{"x", 3, 3}}) {
		t.Fatalf("after reset: %v", got)
	}
}

func TestTopNEncodingRoundTrip(t *testing.T) {
	r := newRand(5)
	for _, capacity := range []int{1, 7, 300, 0} {
		topn := NewTopN(capacity)
		for _, v := range zipfStream(r, 1.3, 10000, 20000) {
			k := strconv.FormatUint(v, 10)
			updateStr(topn, k, 1+v%3)
		}
		data, err := topn.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var dec TopN
		updateStr(&dec, "old", 1)
		if err := dec.UnmarshalBinary(data); err != nil {
			t.Fatalf("cap %d: %v", capacity, err)
		}
		if !slices.Equal(dec.Items(-1, nil), topn.Items(-1, nil)) || dec.MaxError() != topn.MaxError() ||
			dec.Total() != topn.Total() || dec.MaxItems() != topn.MaxItems() {
			t.Fatalf("cap %d: decoded sketch differs", capacity)
		}
		again, _ := dec.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatalf("cap %d: encoding not canonical", capacity)
		}
		// Merging the decoded copy gives the same result as the original.
		a, b := NewTopN(capacity), NewTopN(capacity)
		for i := range 500 {
			k := strconv.Itoa(i * 7)
			updateStr(a, k, 2)
			updateStr(b, k, 2)
		}
		a.Merge(topn)
		b.Merge(&dec)
		if !slices.Equal(a.Items(-1, nil), b.Items(-1, nil)) || a.MaxError() != b.MaxError() {
			t.Fatalf("cap %d: merging decoded copy differs", capacity)
		}
	}
}

func TestTopNDecodeRejects(t *testing.T) {
	enc := func(maxItems, total, offset uint64, items ...any) []byte {
		b := []byte{tagTopN, encVersion1}
		b = binary.AppendUvarint(b, maxItems)
		b = binary.AppendUvarint(b, total)
		b = binary.AppendUvarint(b, offset)
		b = binary.AppendUvarint(b, uint64(len(items)/2))
		for i := 0; i < len(items); i += 2 {
			b = binary.AppendUvarint(b, items[i].(uint64))
			k := items[i+1].(string)
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
		}
		return b
	}
	var ok TopN
	if err := ok.UnmarshalBinary(enc(10, 5, 1, uint64(3), "a", uint64(1), "b")); err != nil {
		t.Fatalf("valid encoding rejected: %v", err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"tag only", enc(10, 5, 0)[0:1]},
		{"wrong tag", append([]byte{tagRate}, enc(10, 5, 0)[1:]...)},
		{"bad version", append([]byte{tagTopN, 2}, enc(10, 5, 0)[2:]...)},
		{"capacity 0", enc(0, 0, 0)},
		{"capacity huge", enc(MaxTopNMaxItems+1, 0, 0)},
		{"more items than capacity", enc(1, 5, 0, uint64(1), "a", uint64(1), "b")},
		{"zero count", enc(10, 5, 0, uint64(0), "a")},
		{"duplicate key", enc(10, 5, 0, uint64(1), "a", uint64(1), "a")},
		{"counts exceed total", enc(10, 3, 0, uint64(3), "a", uint64(1), "b")},
		{"offset exceeds total", enc(10, 4, 1, uint64(3), "a", uint64(1), "b")},
		{"key too long", enc(10, 5, 0, uint64(1), string(make([]byte, MaxKeyLen+1)))},
		{"truncated", enc(10, 5, 0, uint64(1), "abc")[:12]},
		{"trailing", append(enc(10, 5, 0, uint64(1), "a"), 0)},
		{"claims many items", append(enc(10, 5, 0)[:5], 0x09)},
	}
	for _, tt := range tests {
		topn := NewTopN(3)
		updateStr(topn, "keep", 1)
		err := topn.UnmarshalBinary(tt.in)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if !errors.Is(err, ErrInvalidEncoding) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("%s: %v does not wrap a package error", tt.name, err)
		}
		if got := topn.Items(-1, nil); len(got) != 1 || got[0].Key != "keep" {
			t.Errorf("%s: failed decode modified the sketch", tt.name)
		}
	}
}

func TestTopNAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	topn := NewTopN(0)
	keys := make([][]byte, 1000)
	hashes := make([]uint64, len(keys))
	for i := range keys {
		keys[i] = []byte("qname-" + strconv.Itoa(i) + ".example.com")
		hashes[i] = Hash(keys[i])
		topn.Update(keys[i], hashes[i], 1)
	}
	i := 0
	if n := testing.AllocsPerRun(10000, func() {
		topn.Update(keys[i%len(keys)], hashes[i%len(keys)], 1)
		i++
	}); n != 0 {
		t.Errorf("known key update: %v allocs", n)
	}
	// Flood: table full and arena warm, new keys of a fixed length.
	flood := NewTopN(0)
	key := make([]byte, 24)
	r := newRand(1)
	for range 50000 {
		binary.LittleEndian.PutUint64(key, r.Uint64())
		flood.Update(key, Hash(key), 1)
	}
	if n := testing.AllocsPerRun(20000, func() {
		binary.LittleEndian.PutUint64(key, r.Uint64())
		flood.Update(key, Hash(key), 1)
	}); n != 0 {
		t.Errorf("flood update: %v allocs", n)
	}
}

func TestSelectByCount(t *testing.T) {
	r := newRand(12)
	for trial := range 2000 {
		n := 1 + r.IntN(300)
		a := make([]topSlot, n)
		spread := []uint64{1, 2, 5, 1000}[trial%4] // many ties to none
		for i := range a {
			a[i] = topSlot{count: 1 + r.Uint64N(spread), off: uint32(i)}
		}
		if trial%7 == 0 {
			slices.SortFunc(a, func(x, y topSlot) int { return cmp.Compare(y.count, x.count) })
		}
		sorted := slices.Clone(a)
		slices.SortFunc(sorted, func(x, y topSlot) int { return cmp.Compare(x.count, y.count) })
		k := r.IntN(n)
		selectByCount(a, k)
		if a[k].count != sorted[k].count {
			t.Fatalf("n=%d k=%d: got %d, want %d", n, k, a[k].count, sorted[k].count)
		}
		for i := range a {
			if (i < k && a[i].count > a[k].count) || (i > k && a[i].count < a[k].count) {
				t.Fatalf("n=%d k=%d: not partitioned at %d", n, k, i)
			}
		}
		offs := make([]uint32, n)
		for i := range a {
			offs[i] = a[i].off
		}
		slices.Sort(offs)
		for i := range offs {
			if offs[i] != uint32(i) {
				t.Fatal("elements lost or duplicated")
			}
		}
	}
}
