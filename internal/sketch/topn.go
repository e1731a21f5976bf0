package sketch

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

const (
	// DefaultTopNMaxItems is pktvisor's tracked-item limit: DataSketches
	// frequent items with lg_max_map_size 13 (8192 slots) at load factor 0.75.
	DefaultTopNMaxItems = 6144

	// MaxTopNMaxItems bounds the capacity a TopN accepts (from a constructor
	// or from an encoding), so a hostile encoding cannot demand a huge table.
	MaxTopNMaxItems = 1 << 20

	// MaxKeyLen is the longest key a TopN stores. Longer keys are truncated
	// (and rehashed) so an attacker cannot make the key storage unbounded;
	// every key this product tracks (DNS names, addresses, ports) is shorter.
	MaxKeyLen = 1024

	topnInitialSlots = 16
)

// Item is one row of a TopN listing.
type Item struct {
	Key string
	// Estimate is the upper bound count + MaxError (what pktvisor reports).
	Estimate uint64
	// Lower is the lower bound: the weight counted while the key was tracked.
	Lower uint64
}

// topSlot is one cell of the open-addressing table. The key bytes live in
// the TopN's arena at [off, off+klen); count 0 marks an empty cell.
type topSlot struct {
	hash  uint64
	count uint64
	off   uint32
	klen  uint32
}

// TopN tracks the most frequent keys of a weighted stream with the
// semantics of the DataSketches frequent-items sketch (Misra-Gries with
// reverse purge), as pktvisor uses it:
//
//   - While at most MaxItems distinct keys were seen, every count is exact
//     and MaxError is 0.
//   - When a new key makes MaxItems+1 keys tracked, the sketch purges: it
//     subtracts the (upper) median δ of the tracked counts from every count,
//     drops counts that reach 0 and adds δ to MaxError.
//   - For every key, Lower ≤ true weight ≤ Lower + MaxError (= Estimate);
//     an untracked key has true weight ≤ MaxError.
//   - MaxError ≤ Total / ceil((MaxItems+1)/2), also after any merges (see
//     README for the derivation): 2·Total/MaxItems in round numbers, about
//     Total/3073 for the default capacity.
//
// Memory is bounded by the capacity: at most MaxItems+1 keys of at most
// MaxKeyLen bytes, in a table of at most 2^ceil(log2(MaxItems/0.75)) slots
// of 24 bytes that grows from 16 slots as keys arrive, plus a survivor
// buffer of MaxItems/2 slots used by purges. Updating a tracked key never
// allocates; a new key is copied into an arena that is compacted in place on
// purge, so a flood of distinct keys does not allocate in steady state
// either.
//
// The zero value is an empty sketch with DefaultTopNMaxItems.
type TopN struct {
	maxItems int
	slots    []topSlot
	arena    []byte
	n        int
	total    uint64
	offset   uint64

	keep []topSlot // survivors of a purge, reused so that purges do not allocate
}

// NewTopN returns an empty TopN that tracks at most maxItems keys.
// maxItems ≤ 0 selects DefaultTopNMaxItems; values above MaxTopNMaxItems are
// clamped.
func NewTopN(maxItems int) *TopN {
	t := &TopN{}
	t.setMaxItems(maxItems)
	return t
}

func (t *TopN) setMaxItems(m int) {
	switch {
	case m <= 0:
		m = DefaultTopNMaxItems
	case m > MaxTopNMaxItems:
		m = MaxTopNMaxItems
	}
	t.maxItems = m
}

// MaxItems returns the number of keys tracked before a purge.
func (t *TopN) MaxItems() int {
	if t.maxItems == 0 {
		return DefaultTopNMaxItems
	}
	return t.maxItems
}

// maxSlots is the final table size: load ≤ 0.75 at MaxItems keys (as in
// DataSketches), and always room for MaxItems+1 keys plus one empty slot so
// that probing for a missing key terminates.
func (t *TopN) maxSlots() int {
	m := t.MaxItems()
	need := max((m*4+2)/3, m+2)
	return 1 << bits.Len(uint(need-1))
}

// Update adds weight to key. hash must be Hash(key); the caller computes it
// once per packet and reuses it for every sketch fed with that key. A zero
// weight is ignored.
func (t *TopN) Update(key []byte, hash uint64, weight uint64) {
	if weight == 0 {
		return
	}
	if len(key) > MaxKeyLen {
		key = key[:MaxKeyLen]
		hash = Hash(key)
	}
	if t.slots == nil {
		t.init()
	}
	t.total = satAdd(t.total, weight)
	mask := uint64(len(t.slots) - 1)
	i := hash & mask
	for {
		s := &t.slots[i]
		if s.count == 0 {
			break
		}
		if s.hash == hash && string(t.arena[s.off:s.off+s.klen]) == string(key) {
			s.count = satAdd(s.count, weight)
			return
		}
		i = (i + 1) & mask
	}
	t.slots[i] = topSlot{hash: hash, count: weight, off: uint32(len(t.arena)), klen: uint32(len(key))}
	t.arena = append(t.arena, key...)
	t.n++
	switch {
	case t.n > t.MaxItems():
		t.purge()
	case t.n*4 > len(t.slots)*3 && len(t.slots) < t.maxSlots():
		t.grow()
	}
}

func (t *TopN) init() {
	if t.maxItems == 0 {
		t.maxItems = DefaultTopNMaxItems
	}
	t.slots = make([]topSlot, min(topnInitialSlots, t.maxSlots()))
}

// place puts s into the first free slot of its probe sequence; the key must
// not be present.
func (t *TopN) place(s topSlot) {
	mask := uint64(len(t.slots) - 1)
	i := s.hash & mask
	for t.slots[i].count != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = s
}

func (t *TopN) grow() {
	old := t.slots
	t.slots = make([]topSlot, min(len(old)*2, t.maxSlots()))
	for _, s := range old {
		if s.count != 0 {
			t.place(s)
		}
	}
}

// purge is DataSketches' reverse purge with an exact median instead of a
// sampled one: δ = the upper median of the tracked counts. It works inside
// the table and the arena (both are rebuilt), with one scratch slice for
// the survivors, so it neither allocates nor doubles the memory.
func (t *TopN) purge() {
	n := 0
	for i := range t.slots {
		if t.slots[i].count != 0 {
			t.slots[n] = t.slots[i]
			n++
		}
	}
	all := t.slots[:n]
	mid := n / 2
	selectByCount(all, mid)
	delta := all[mid].count
	t.offset = satAdd(t.offset, delta)

	// Counts before mid are ≤ δ and after it ≥ δ: survivors are after.
	keep := t.keep[:0]
	for _, s := range all[mid+1:] {
		if s.count > delta {
			s.count -= delta
			keep = append(keep, s)
		}
	}
	// Compact the arena in place: moving keys in offset order only ever
	// copies them towards the start.
	slices.SortFunc(keep, func(a, b topSlot) int { return cmp.Compare(a.off, b.off) })
	var w uint32
	for i := range keep {
		s := &keep[i]
		copy(t.arena[w:], t.arena[s.off:s.off+s.klen])
		s.off = w
		w += s.klen
	}
	t.arena = t.arena[:w]
	clear(t.slots)
	for _, s := range keep {
		t.place(s)
	}
	t.n = len(keep)
	t.keep = keep
}

// selectByCount reorders a so that a[k] holds the element of rank k by
// count, with counts ≤ a[k].count before it and ≥ after it: quickselect
// with a median-of-three pivot, falling back to a sort when the recursion
// gets deep so that adversarial counts cannot make it quadratic.
func selectByCount(a []topSlot, k int) {
	lo, hi := 0, len(a)-1
	depth := 2 * bits.Len(uint(len(a)))
	for hi > lo {
		if depth == 0 {
			slices.SortFunc(a[lo:hi+1], func(x, y topSlot) int { return cmp.Compare(x.count, y.count) })
			return
		}
		depth--
		m := lo + (hi-lo)/2
		if a[m].count < a[lo].count {
			a[m], a[lo] = a[lo], a[m]
		}
		if a[hi].count < a[lo].count {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi].count < a[m].count {
			a[hi], a[m] = a[m], a[hi]
		}
		pivot := a[m].count
		i, j := lo, hi
		for i <= j {
			for a[i].count < pivot {
				i++
			}
			for a[j].count > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		// Now a[lo..j] ≤ pivot, a[i..hi] ≥ pivot and everything strictly
		// between j and i equals pivot.
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return
		}
	}
}

func (t *TopN) key(s topSlot) []byte { return t.arena[s.off : s.off+s.klen] }

// tracked returns the occupied slots (a fresh slice: callers may sort it
// while others read t).
func (t *TopN) tracked() []topSlot {
	out := make([]topSlot, 0, t.n)
	for _, s := range t.slots {
		if s.count != 0 {
			out = append(out, s)
		}
	}
	return out
}

// byEstimate orders by count descending, then key ascending (bytewise): the
// deterministic listing order.
func (t *TopN) byEstimate(a, b topSlot) int {
	if c := cmp.Compare(b.count, a.count); c != 0 {
		return c
	}
	return bytes.Compare(t.key(a), t.key(b))
}

// Merge adds other's items and maximum error into t (DataSketches merge:
// every item of other is an update of t with its count, purging as needed,
// then the offsets add up). other is not modified. t keeps its own capacity.
func (t *TopN) Merge(other *TopN) {
	if other == nil || (other.total == 0 && other.offset == 0) {
		return
	}
	if other == t {
		other = t.Clone()
	}
	items := other.tracked()
	if t.n+len(items) > t.MaxItems() {
		// A purge may happen, and then the result depends on the order of
		// the updates: use an order that depends only on other's content,
		// not on its table layout, so merging an original or its decoded
		// copy gives identical results.
		slices.SortFunc(items, func(a, b topSlot) int {
			if c := cmp.Compare(b.count, a.count); c != 0 {
				return c
			}
			if c := cmp.Compare(a.hash, b.hash); c != 0 {
				return c
			}
			return bytes.Compare(other.key(a), other.key(b))
		})
	}
	total := satAdd(t.total, other.total)
	for _, s := range items {
		t.Update(other.key(s), s.hash, s.count)
	}
	t.total = total
	t.offset = satAdd(t.offset, other.offset)
}

// Clone returns a deep copy of t.
func (t *TopN) Clone() *TopN {
	c := &TopN{maxItems: t.maxItems, n: t.n, total: t.total, offset: t.offset}
	c.slots = slices.Clone(t.slots)
	c.arena = slices.Clone(t.arena)
	return c
}

// Reset empties t, keeping its capacity and allocated memory.
func (t *TopN) Reset() {
	clear(t.slots)
	t.arena = t.arena[:0]
	t.n = 0
	t.total = 0
	t.offset = 0
}

// MaxError returns the maximum amount by which an Estimate can exceed the
// true weight (the DataSketches offset).
func (t *TopN) MaxError() uint64 { return t.offset }

// Total returns the total weight of all updates (merged sketches included).
func (t *TopN) Total() uint64 { return t.total }

// Len returns the number of tracked keys.
func (t *TopN) Len() int { return t.n }

// Items appends to dst at most n tracked items (all of them if n < 0),
// ordered by Estimate descending and, for equal estimates, by key ascending
// bytewise. Like pktvisor's NO_FALSE_NEGATIVES listing it returns every
// tracked key with its upper-bound estimate before truncation. Items does not
// modify t.
func (t *TopN) Items(n int, dst []Item) []Item {
	if n == 0 || t.n == 0 {
		return dst
	}
	items := t.tracked()
	slices.SortFunc(items, t.byEstimate)
	if n > 0 && n < len(items) {
		items = items[:n]
	}
	for _, s := range items {
		dst = append(dst, Item{Key: string(t.key(s)), Estimate: satAdd(s.count, t.offset), Lower: s.count})
	}
	return dst
}

// CutPercentile applies pktvisor's topn_percentile_threshold to a listing
// sorted by Estimate descending (as Items returns it): the threshold is the
// pct-th percentile of the listed estimates at inclusive rank (the
// ceil(pct/100·n)-th smallest, the smallest for pct 0; pct above 100 counts
// as 100), and the listing is cut before the first item whose estimate is
// below it. The rank is computed in float64 exactly as the reference does, so
// borderline percentages round the same way. It returns a prefix of items.
func CutPercentile(items []Item, pct uint64) []Item {
	n := len(items)
	if n == 0 {
		return items
	}
	pct = min(pct, 100)
	w := int(math.Ceil(float64(pct) / 100 * float64(n)))
	w = max(w, 1)
	est := make([]uint64, n)
	for i, it := range items {
		est[i] = it.Estimate
	}
	slices.Sort(est)
	threshold := est[w-1]
	for i, it := range items {
		if it.Estimate < threshold {
			return items[:i]
		}
	}
	return items
}

// MarshalBinary encodes t; see AppendBinary.
func (t *TopN) MarshalBinary() ([]byte, error) { return t.AppendBinary(nil) }

// AppendBinary appends the encoding of t to dst:
//
//	'T' 0x01 maxItems total offset n { count klen key[klen] }×n
//
// all integers unsigned varints; items in listing order (count descending,
// key ascending), so equal sketches encode to equal bytes.
func (t *TopN) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, tagTopN, encVersion1)
	dst = binary.AppendUvarint(dst, uint64(t.MaxItems()))
	dst = binary.AppendUvarint(dst, t.total)
	dst = binary.AppendUvarint(dst, t.offset)
	dst = binary.AppendUvarint(dst, uint64(t.n))
	items := t.tracked()
	slices.SortFunc(items, t.byEstimate)
	for _, s := range items {
		dst = binary.AppendUvarint(dst, s.count)
		dst = binary.AppendUvarint(dst, uint64(s.klen))
		dst = append(dst, t.key(s)...)
	}
	return dst, nil
}

// UnmarshalBinary replaces t with the decoded sketch. Malformed input
// returns an error wrapping ErrInvalidEncoding and leaves t unchanged.
func (t *TopN) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(tagTopN, "topn")
	maxItems := d.uvarint()
	total := d.uvarint()
	offset := d.uvarint()
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if maxItems < 1 || maxItems > MaxTopNMaxItems {
		return invalidf("topn: capacity %d", maxItems)
	}
	if n > maxItems {
		return invalidf("topn: %d items exceed capacity %d", n, maxItems)
	}
	tmp := TopN{maxItems: int(maxItems)}
	tmp.init()
	var sum uint64
	for i := uint64(0); i < n; i++ {
		count := d.uvarint()
		klen := d.uvarint()
		if d.err == nil && klen > MaxKeyLen {
			return invalidf("topn: key of %d bytes", klen)
		}
		key := d.bytes(klen)
		if d.err != nil {
			return d.err
		}
		if count == 0 {
			return invalidf("topn: item with count 0")
		}
		sum = satAdd(sum, count)
		if !tmp.insertNew(key, Hash(key), count) {
			return invalidf("topn: duplicate key")
		}
	}
	if err := d.finish(); err != nil {
		return err
	}
	// Every purge removes at least as much counted weight as it adds to the
	// offset, so counts plus offset never exceed the total weight.
	if satAdd(sum, offset) > total {
		return invalidf("topn: item counts %d plus offset %d exceed total %d", sum, offset, total)
	}
	tmp.total = total
	tmp.offset = offset
	*t = tmp
	return nil
}

// insertNew adds a key that must not be tracked yet, without purging (the
// caller guarantees the capacity). It reports false if the key is present.
func (t *TopN) insertNew(key []byte, hash uint64, count uint64) bool {
	mask := uint64(len(t.slots) - 1)
	i := hash & mask
	for {
		s := &t.slots[i]
		if s.count == 0 {
			break
		}
		if s.hash == hash && string(t.key(*s)) == string(key) {
			return false
		}
		i = (i + 1) & mask
	}
	t.slots[i] = topSlot{hash: hash, count: count, off: uint32(len(t.arena)), klen: uint32(len(key))}
	t.arena = append(t.arena, key...)
	t.n++
	if t.n*4 > len(t.slots)*3 && len(t.slots) < t.maxSlots() {
		t.grow()
	}
	return true
}
