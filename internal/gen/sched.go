package gen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Packets of a transaction are built when the transaction starts and held until the capture
// clock reaches them: a min-heap ordered by (timestamp, creation sequence) over frames stored
// in size-classed slots. Memory is proportional to the packets in flight (arrival rate × mean
// transaction lifetime), and the latency tail is clamped to keep that bounded.

// slot classes: frame sizes up to 128, 256, 512 and 2048 bytes (an Ethernet frame is ≤ 1514).
var slotSizes = [...]int{128, 256, 512, 2048}

const slotChunk = 64 << 10

type slotStore struct {
	chunks [len(slotSizes)][][]byte
	free   [len(slotSizes)][]uint32
	next   [len(slotSizes)]uint32 // slots handed out so far in each class
}

func classOf(n int) int {
	for c, s := range slotSizes {
		if n <= s {
			return c
		}
	}
	return -1
}

// alloc returns a slot id and its buffer for an n-byte frame.
func (s *slotStore) alloc(n int) (uint32, []byte) {
	c := classOf(n)
	size := slotSizes[c]
	per := uint32(slotChunk / size)
	var idx uint32
	if f := s.free[c]; len(f) > 0 {
		idx = f[len(f)-1]
		s.free[c] = f[:len(f)-1]
	} else {
		idx = s.next[c]
		s.next[c]++
		if int(idx/per) == len(s.chunks[c]) {
			s.chunks[c] = append(s.chunks[c], make([]byte, slotChunk))
		}
	}
	off := int(idx%per) * size
	return uint32(c)<<28 | idx, s.chunks[c][idx/per][off : off+size]
}

func (s *slotStore) get(id uint32, n int) []byte {
	c := id >> 28
	idx := id & (1<<28 - 1)
	size := slotSizes[c]
	per := uint32(slotChunk / size)
	off := int(idx%per) * size
	return s.chunks[c][idx/per][off : off+n]
}

func (s *slotStore) release(id uint32) {
	c := id >> 28
	s.free[c] = append(s.free[c], id&(1<<28-1))
}

type pending struct {
	ts   int64
	seq  uint64
	slot uint32
	n    uint32
}

func (a *pending) less(b *pending) bool {
	return a.ts < b.ts || a.ts == b.ts && a.seq < b.seq
}

// pendHeap is a binary min-heap written out for the concrete type (container/heap would box
// every element in an interface).
type pendHeap []pending

func (h *pendHeap) push(p pending) {
	*h = append(*h, p)
	s := *h
	i := len(s) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !s[i].less(&s[parent]) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *pendHeap) pop() pending {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s[r].less(&s[l]) {
			m = r
		}
		if !s[m].less(&s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// keyTable remembers which (transport, family, client, server, port, DNS ID) keys are in use,
// each until a time, so that no two transactions a matcher could confuse ever share a key:
// the ground truth stays exact for any matcher keyed on the 5-tuple and DNS ID. Open
// addressing with linear probing; an entry whose time has passed is reusable, and the table is
// rebuilt (and only then grown) when too few never-used slots remain.
type keyTable struct {
	slots []keySlot
	used  int // slots with until != 0
	spare []keySlot
}

// keySlot keeps the key and its deadline together: one cache line per probe.
type keySlot struct {
	key   uint64
	until int64 // 0: never used
}

func newKeyTable(capacity int) keyTable {
	n := 1024
	for n < capacity {
		n <<= 1
	}
	return keyTable{slots: make([]keySlot, n)}
}

// free reports whether key is unused at time now.
func (t *keyTable) free(key uint64, now int64) bool {
	mask := uint64(len(t.slots) - 1)
	for i := mix64(key) & mask; t.slots[i].until != 0; i = (i + 1) & mask {
		if s := &t.slots[i]; s.key == key && s.until >= now {
			return false
		}
	}
	return true
}

// put reserves key until the given time; the caller checked free(key, now) first.
func (t *keyTable) put(key uint64, until, now int64) {
	if (t.used+1)*2 > len(t.slots) {
		t.rebuild(now)
	}
	mask := uint64(len(t.slots) - 1)
	i := mix64(key) & mask
	for t.slots[i].until != 0 && t.slots[i].until >= now {
		i = (i + 1) & mask
	}
	if t.slots[i].until == 0 {
		t.used++
	}
	t.slots[i] = keySlot{key, until}
}

func (t *keyTable) rebuild(now int64) {
	live := 0
	for i := range t.slots {
		if t.slots[i].until >= now {
			live++
		}
	}
	n := len(t.slots)
	for (live+1)*4 > n {
		n <<= 1
	}
	if len(t.spare) != n {
		t.spare = make([]keySlot, n)
	} else {
		clear(t.spare)
	}
	old := t.slots
	t.slots = t.spare
	t.used = 0
	mask := uint64(n - 1)
	for _, s := range old {
		if s.until < now { // unused or expired
			continue
		}
		i := mix64(s.key) & mask
		for t.slots[i].until != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
		t.used++
	}
	if len(old) == n {
		t.spare = old
	} else {
		t.spare = nil
	}
}

// output writes records in the chosen format to a large buffered writer.
type output struct {
	bw   *bufio.Writer
	ng   *pcapgo.NgWriter
	nano bool
	hdr  [16]byte
}

func newOutput(bw *bufio.Writer, f Format) (*output, error) {
	o := &output{bw: bw, nano: f == FormatPcapNano}
	switch f {
	case FormatPcap, FormatPcapNano:
		var h [24]byte
		magic := uint32(0xa1b2c3d4)
		if o.nano {
			magic = 0xa1b23c4d
		}
		binary.LittleEndian.PutUint32(h[0:], magic)
		binary.LittleEndian.PutUint16(h[4:], 2)
		binary.LittleEndian.PutUint16(h[6:], 4)
		binary.LittleEndian.PutUint32(h[16:], maxSnap)
		binary.LittleEndian.PutUint32(h[20:], uint32(layers.LinkTypeEthernet))
		if _, err := bw.Write(h[:]); err != nil {
			return nil, fmt.Errorf("gen: write pcap header: %w", err)
		}
	case FormatPcapNG:
		// Fixed section/interface options: pcapgo's defaults name the host OS and CPU, which
		// would make the bytes depend on the machine.
		intf := pcapgo.NgInterface{Name: "gen0", LinkType: layers.LinkTypeEthernet, SnapLength: maxSnap, TimestampResolution: 9}
		opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "pktvisor-gen"}}
		ng, err := pcapgo.NewNgWriterInterface(bw, intf, opts)
		if err != nil {
			return nil, fmt.Errorf("gen: write pcapng header: %w", err)
		}
		o.ng = ng
	}
	return o, nil
}

func (o *output) write(ts int64, frame []byte) error {
	if o.ng != nil {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, ts).UTC(), CaptureLength: len(frame), Length: len(frame)}
		return o.ng.WritePacket(ci, frame)
	}
	sec := ts / 1e9
	frac := ts % 1e9
	if !o.nano {
		frac /= 1000
	}
	binary.LittleEndian.PutUint32(o.hdr[0:], uint32(sec))
	binary.LittleEndian.PutUint32(o.hdr[4:], uint32(frac))
	binary.LittleEndian.PutUint32(o.hdr[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(o.hdr[12:], uint32(len(frame)))
	if _, err := o.bw.Write(o.hdr[:]); err != nil {
		return err
	}
	_, err := o.bw.Write(frame)
	return err
}

func (o *output) flush() error {
	if o.ng != nil {
		if err := o.ng.Flush(); err != nil {
			return err
		}
	}
	return o.bw.Flush()
}
