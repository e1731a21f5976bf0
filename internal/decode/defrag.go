package decode

import (
	"math/rand/v2"
	"time"
)

// DefragConfig bounds the Defragmenter. Zero fields take the defaults.
type DefragConfig struct {
	// MaxDatagrams is the number of datagrams reassembled at once (default 1024). When the
	// table is full the oldest datagram is dropped to make room.
	MaxDatagrams int
	// MaxBytes caps the reassembly buffers, in use or kept for reuse (default 4 MiB). When a
	// datagram needs more, free buffers are released, then the oldest datagrams dropped.
	MaxBytes int
	// Timeout is how long, in event time (packet timestamps), a datagram may wait for its
	// missing fragments after its first fragment arrived (default 30 s, as Linux's
	// ipfrag_time).
	Timeout time.Duration
	// MaxFragments is the number of fragments one datagram may have (default 64). Real stacks
	// send a handful; tiny-fragment floods are dropped.
	MaxFragments int
}

// Defaults of DefragConfig.
const (
	DefaultDefragMaxDatagrams = 1024
	DefaultDefragMaxBytes     = 4 << 20
	DefaultDefragTimeout      = 30 * time.Second
	DefaultDefragMaxFragments = 64
)

// DefragStats counts what the Defragmenter did. Every datagram started ends in exactly one of
// Completed, TimedOut and the Dropped* counters, or is still InProgress; a fragment refused
// before any datagram was started for it (too big, invalid) counts once in a Dropped* counter.
type DefragStats struct {
	Completed uint64 // datagrams reassembled and returned
	TimedOut  uint64 // datagrams still incomplete after Timeout
	// DroppedOverlap counts datagrams dropped because two fragments overlapped (RFC 5722 for
	// IPv6; applied to IPv4 too, as Linux does since the FragmentSmack fixes: overlaps serve
	// only to evade inspection). Exact duplicates are not overlaps: see Duplicates.
	DroppedOverlap uint64
	// DroppedTooBig counts datagrams that would exceed 65535 bytes (or MaxBytes).
	DroppedTooBig uint64
	// DroppedTableFull counts datagrams evicted, oldest first, to make room for new ones
	// (MaxDatagrams reached) or for more data (MaxBytes reached).
	DroppedTableFull uint64
	// DroppedInvalid counts fragments or datagrams that cannot be reassembled: truncated by the
	// snapshot length, a middle fragment whose length is not a multiple of 8, contradicting
	// last fragments, too many fragments, not a fragment at all, or a reassembled datagram
	// whose transport header is corrupt.
	DroppedInvalid uint64
	// Duplicates counts fragments ignored because the same range had already arrived.
	Duplicates uint64

	InProgress    int // datagrams waiting for fragments now
	BufferedBytes int // bytes of reassembly buffers held now (≤ MaxBytes)
}

// fragKey identifies a datagram: RFC 791 keys IPv4 on (src, dst, protocol, id); RFC 8200 keys
// IPv6 on (src, dst, id) only, so proto stays 0 for IPv6.
type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	l3       L3
}

type fragRange struct{ start, end int }

// datagram is one reassembly in progress. Slots are recycled with their buffers, so the steady
// state allocates nothing.
type datagram struct {
	key       fragKey
	hash      uint64
	head      Packet // the first fragment's headers (slices cleared)
	haveFirst bool
	total     int // length of the fragmented data, -1 until the last fragment arrives
	got       int // bytes received; ranges never overlap, so got == total means complete
	maxEnd    int
	ranges    []fragRange // capacity MaxFragments, carved from one shared array
	buf       []byte      // len == cap; bytes at received ranges are valid
	created   int64
	prev      int32 // creation-order list, -1 ends it
	next      int32
	used      bool
}

// Defragmenter reassembles IPv4 and IPv6 fragments. It is not safe for concurrent use: keep
// one per worker, and route fragments to workers by addresses only: later fragments have no
// ports, so a hash over the 5-tuple would scatter one datagram over several workers.
type Defragmenter struct {
	maxBytes   int
	timeout    int64
	slots      []datagram
	free       []int32 // stack of unused slots; LIFO keeps warm buffers in use
	index      []int32 // open addressing with linear probing: slot+1, 0 = empty
	mask       uint64
	seed       uint64
	oldest     int32
	newest     int32
	bufBytes   int // sum of cap(buf) over all slots
	stats      DefragStats
	inProgress int
}

// NewDefragmenter returns a Defragmenter with cfg's bounds (defaults for zero fields). All the
// bookkeeping is allocated here; buffers grow on demand up to MaxBytes and are then reused.
func NewDefragmenter(cfg DefragConfig) *Defragmenter {
	f := &Defragmenter{}
	f.init(cfg)
	return f
}

func (f *Defragmenter) init(cfg DefragConfig) {
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = DefaultDefragMaxDatagrams
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultDefragMaxBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultDefragTimeout
	}
	if cfg.MaxFragments <= 0 {
		cfg.MaxFragments = DefaultDefragMaxFragments
	}
	f.maxBytes = cfg.MaxBytes
	f.timeout = int64(cfg.Timeout)
	n := cfg.MaxDatagrams
	f.slots = make([]datagram, n)
	f.free = make([]int32, 0, n)
	ranges := make([]fragRange, n*cfg.MaxFragments)
	for i := n - 1; i >= 0; i-- {
		f.slots[i].ranges = ranges[i*cfg.MaxFragments : i*cfg.MaxFragments : (i+1)*cfg.MaxFragments]
		f.free = append(f.free, int32(i))
	}
	size := 8
	for size < 2*n {
		size <<= 1
	}
	f.index = make([]int32, size)
	f.mask = uint64(size - 1)
	// A per-instance seed keeps an attacker from precomputing keys that collide in the table.
	f.seed = rand.Uint64()
	f.oldest, f.newest = -1, -1
}

// Stats returns the counters and the current occupancy.
func (f *Defragmenter) Stats() DefragStats {
	s := f.stats
	s.InProgress = f.inProgress
	s.BufferedBytes = f.bufBytes
	return s
}

// Expire drops the datagrams whose first fragment is older than Timeout at event time now
// (Unix ns). Add does this itself; call Expire when no fragments arrive for a while.
func (f *Defragmenter) Expire(now int64) {
	for f.oldest >= 0 {
		d := &f.slots[f.oldest]
		if now-d.created <= f.timeout {
			return
		}
		f.release(f.oldest)
		f.stats.TimedOut++
	}
}

// Add takes a fragment (p.Fragment set, as Decode leaves it). When the fragment completes its
// datagram, Add returns true and fills out with the reassembled packet: the first fragment's
// headers (addresses, ports, L4), TS/CapLen/WireLen of p, Fragment false and Payload the whole
// transport payload (UDP: after the header, trimmed to the UDP length). out.Payload points into
// the Defragmenter's memory and is valid until the next call to Add. Add does not allocate once
// its buffers have grown, and never panics.
func (f *Defragmenter) Add(p *Packet, out *Packet) (complete bool) {
	if f.slots == nil {
		f.init(DefragConfig{})
	}
	if !p.Fragment || (p.L3 != L3IPv4 && p.L3 != L3IPv6) {
		f.stats.DroppedInvalid++
		return false
	}
	f.Expire(p.TS)

	var k fragKey
	k.src, k.dst, k.id, k.l3 = p.Src, p.Dst, p.FragID, p.L3
	// The largest reassembled payload: the IP total/payload length is 16 bits and the fixed
	// header (IPv4, at least 20 bytes) or the Fragment header (IPv6, 8 bytes) counts in it.
	limit := 65535 - 8
	if p.L3 == L3IPv4 {
		k.proto = p.FragProto
		limit = 65535 - 20
	}
	h := f.hashKey(&k)
	si := f.lookup(&k, h)

	start := int(p.FragOffset)
	n := len(p.FragData)
	end := start + n
	if end > limit {
		f.stats.DroppedTooBig++
		f.drop(si)
		return false
	}
	if p.Truncated || (p.FragMore && (n == 0 || n%8 != 0)) {
		f.stats.DroppedInvalid++
		f.drop(si)
		return false
	}
	if si < 0 {
		si = f.alloc(&k, h, p.TS)
	}
	d := &f.slots[si]
	if p.FragMore {
		if d.total >= 0 && end > d.total {
			f.stats.DroppedInvalid++ // data beyond the announced end
			f.release(si)
			return false
		}
	} else if (d.total >= 0 && d.total != end) || d.maxEnd > end {
		f.stats.DroppedInvalid++ // two different ends
		f.release(si)
		return false
	}
	for _, r := range d.ranges {
		if r.start == start && r.end == end {
			f.stats.Duplicates++
			return false
		}
		if start < r.end && r.start < end {
			f.stats.DroppedOverlap++
			f.release(si)
			return false
		}
	}
	if n > 0 {
		if len(d.ranges) == cap(d.ranges) {
			f.stats.DroppedInvalid++ // too many fragments
			f.release(si)
			return false
		}
		if end > len(d.buf) && !f.grow(si, end) {
			f.stats.DroppedTooBig++
			f.release(si)
			return false
		}
		copy(d.buf[start:end], p.FragData)
		d.ranges = append(d.ranges, fragRange{start, end})
		d.got += n
		if end > d.maxEnd {
			d.maxEnd = end
		}
	}
	if start == 0 {
		d.head = *p
		// The caller reuses its frame buffer: keep no references into it.
		d.head.Payload, d.head.FragData = nil, nil
		d.haveFirst = true
	}
	if !p.FragMore {
		d.total = end
	}
	if d.total < 0 || d.got != d.total || !d.haveFirst {
		return false
	}
	return f.complete(si, p, out)
}

// complete decodes the reassembled datagram into out and frees its slot (keeping the buffer,
// which out.Payload references until the slot is reused).
func (f *Defragmenter) complete(si int32, p *Packet, out *Packet) bool {
	d := &f.slots[si]
	*out = Packet{
		TS: p.TS, CapLen: p.CapLen, WireLen: p.WireLen,
		L3: d.head.L3, Src: d.head.Src, Dst: d.head.Dst,
	}
	data := d.buf[:d.total]
	var err error
	if out.L3 == L3IPv6 {
		// RFC 8200 §4.5: the first fragment's Next Header is the one that counts. The chain
		// already holds one extension header (the Fragment header itself).
		err = decodeIPv6Chain(d.head.FragProto, data, out, 1)
	} else {
		err = decodeTransport(d.head.FragProto, data, out, false)
	}
	f.release(si)
	if err != nil || out.Fragment {
		f.stats.DroppedInvalid++
		return false
	}
	f.stats.Completed++
	return true
}

// grow makes slot si's buffer hold at least end bytes within the MaxBytes budget.
func (f *Defragmenter) grow(si int32, end int) bool {
	d := &f.slots[si]
	old := len(d.buf)
	want := roundUp(max(end, 2*old))
	if want > 65536 {
		want = 65536
	}
	if f.bufBytes-old+want > f.maxBytes {
		want = roundUp(end)
		if f.bufBytes-old+want > f.maxBytes {
			f.releaseFreeBuffers()
		}
		for f.bufBytes-old+want > f.maxBytes {
			victim := f.oldest
			if victim == si {
				victim = f.slots[si].next
			}
			if victim < 0 {
				return false // this datagram alone exceeds MaxBytes
			}
			f.release(victim)
			f.dropBuffer(victim)
			f.stats.DroppedTableFull++
		}
	}
	buf := make([]byte, want)
	copy(buf, d.buf[:d.maxEnd])
	f.bufBytes += want - old
	d.buf = buf
	return true
}

// roundUp rounds a buffer size to 2 KiB so that sizes repeat and buffers get reused.
func roundUp(n int) int { return (n + 2047) &^ 2047 }

func (f *Defragmenter) releaseFreeBuffers() {
	for _, s := range f.free {
		f.dropBuffer(s)
	}
}

func (f *Defragmenter) dropBuffer(si int32) {
	d := &f.slots[si]
	f.bufBytes -= len(d.buf)
	d.buf = nil
}

// alloc takes a free slot for key k, evicting the oldest datagram if the table is full.
func (f *Defragmenter) alloc(k *fragKey, h uint64, now int64) int32 {
	if len(f.free) == 0 {
		f.release(f.oldest)
		f.stats.DroppedTableFull++
	}
	si := f.free[len(f.free)-1]
	f.free = f.free[:len(f.free)-1]
	d := &f.slots[si]
	d.key, d.hash = *k, h
	d.head = Packet{}
	d.haveFirst = false
	d.total, d.got, d.maxEnd = -1, 0, 0
	d.ranges = d.ranges[:0]
	d.created = now
	d.used = true
	d.prev, d.next = f.newest, -1
	if f.newest >= 0 {
		f.slots[f.newest].next = si
	} else {
		f.oldest = si
	}
	f.newest = si
	f.insert(si)
	f.inProgress++
	return si
}

// drop releases slot si if it is in use (si < 0: nothing to drop).
func (f *Defragmenter) drop(si int32) {
	if si >= 0 {
		f.release(si)
	}
}

// release frees slot si, keeping its buffer for reuse.
func (f *Defragmenter) release(si int32) {
	d := &f.slots[si]
	if !d.used {
		return
	}
	f.remove(si)
	if d.prev >= 0 {
		f.slots[d.prev].next = d.next
	} else {
		f.oldest = d.next
	}
	if d.next >= 0 {
		f.slots[d.next].prev = d.prev
	} else {
		f.newest = d.prev
	}
	d.used = false
	d.head = Packet{} // do not pin the first fragment's frame buffer
	f.free = append(f.free, si)
	f.inProgress--
}

func (f *Defragmenter) hashKey(k *fragKey) uint64 {
	h := f.seed
	h = mix(h ^ load64(k.src[0:8]))
	h = mix(h ^ load64(k.src[8:16]))
	h = mix(h ^ load64(k.dst[0:8]))
	h = mix(h ^ load64(k.dst[8:16]))
	return mix(h ^ uint64(k.id)<<16 ^ uint64(k.proto)<<8 ^ uint64(k.l3))
}

// lookup returns the slot holding key k, or -1. The index is at most half full, so probing
// always reaches an empty cell.
func (f *Defragmenter) lookup(k *fragKey, h uint64) int32 {
	for i := h & f.mask; ; i = (i + 1) & f.mask {
		v := f.index[i]
		if v == 0 {
			return -1
		}
		if d := &f.slots[v-1]; d.hash == h && d.key == *k {
			return v - 1
		}
	}
}

func (f *Defragmenter) insert(si int32) {
	for i := f.slots[si].hash & f.mask; ; i = (i + 1) & f.mask {
		if f.index[i] == 0 {
			f.index[i] = si + 1
			return
		}
	}
}

// remove deletes slot si from the index with backward-shift deletion, which keeps probe
// sequences intact without tombstones (so the table never degrades).
func (f *Defragmenter) remove(si int32) {
	i := f.slots[si].hash & f.mask
	for f.index[i] != si+1 {
		i = (i + 1) & f.mask
	}
	for j := (i + 1) & f.mask; ; j = (j + 1) & f.mask {
		v := f.index[j]
		if v == 0 {
			break
		}
		home := f.slots[v-1].hash & f.mask
		// The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
		if (j-home)&f.mask >= (j-i)&f.mask {
			f.index[i] = v
			i = j
		}
	}
	f.index[i] = 0
}

// Add returns the sum of two defragmenters' statistics (several capture lanes).
func (s DefragStats) Add(o DefragStats) DefragStats {
	s.Completed += o.Completed
	s.TimedOut += o.TimedOut
	s.DroppedOverlap += o.DroppedOverlap
	s.DroppedTooBig += o.DroppedTooBig
	s.DroppedTableFull += o.DroppedTableFull
	s.DroppedInvalid += o.DroppedInvalid
	s.Duplicates += o.Duplicates
	s.InProgress += o.InProgress
	s.BufferedBytes += o.BufferedBytes
	return s
}
