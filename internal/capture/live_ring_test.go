package capture

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// kframe is a frame as the kernel stores it in a TPACKET_V3 block (an outer VLAN tag taken
// off into tci/tpid).
type kframe struct {
	data      []byte
	wire      uint32 // tp_len; 0 for len(data)
	sec, nsec uint32
	pkttype   byte
	status    uint32
	tci       uint32
	tpid      uint16
	mac       uint16 // tp_mac; 0 for 86, where the kernel puts an Ethernet frame with a 4-byte reserve
	next      uint32 // tp_next_offset override; 0 for the kernel's
	last      bool   // tp_next_offset 0: the kernel's mark of the block's last frame
}

// kernelMac is the kernel's tp_mac for a 14-byte link header and PACKET_RESERVE 4:
// TPACKET_ALIGN(TPACKET3_HDRLEN + 16) + 4 - 14.
const kernelMac = (frameHdrLen+16+15)&^15 + vlanTagLen - 14

// putBlock writes frames into the block at base the way the kernel does (frames from offset
// 48, each at an 8-byte aligned offset after the previous one's data, the last linked to 0)
// and hands the block to user space.
func putBlock(mem []byte, base int, frames []kframe) {
	ne.PutUint32(mem[base+blkNumPktsOff:], uint32(len(frames)))
	ne.PutUint32(mem[base+blkFirstOff:], blkHdrLen)
	off := base + blkHdrLen
	for i, f := range frames {
		mac := int(f.mac)
		if mac == 0 {
			mac = kernelMac
		}
		total := (mac + len(f.data) + 7) &^ 7
		next := uint32(total)
		if i == len(frames)-1 {
			next = 0
		}
		if f.next != 0 {
			next = f.next
		}
		if f.last {
			next = 0
		}
		wire := f.wire
		if wire == 0 {
			wire = uint32(len(f.data))
		}
		h := mem[off:]
		ne.PutUint32(h[pktNextOff:], next)
		ne.PutUint32(h[pktSecOff:], f.sec)
		ne.PutUint32(h[pktNsecOff:], f.nsec)
		ne.PutUint32(h[pktSnapOff:], uint32(len(f.data)))
		ne.PutUint32(h[pktLenOff:], wire)
		ne.PutUint32(h[pktStatusOff:], f.status|tpStatusUser)
		ne.PutUint16(h[pktMacOff:], uint16(mac))
		ne.PutUint32(h[pktVLANTCIOff:], f.tci)
		ne.PutUint16(h[pktVLANTPIDOff:], f.tpid)
		h[sllPkttypeOff] = f.pkttype
		copy(h[mac:], f.data)
		off += total
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[base+blkStatusOff])), tpStatusUser)
}

func uintptrOf(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }

type walked struct {
	data []byte
	info PacketInfo
}

// walk reads the ring as Next does, without waiting: frames until a block is not ours.
func walk(r *ring, limit int) []walked {
	var out []walked
	for steps := 0; steps < limit; steps++ {
		if r.held {
			if data, info, ok := r.frame(); ok {
				out = append(out, walked{bytes.Clone(data), info})
				continue
			}
			r.release()
			continue
		}
		if !r.take() {
			break
		}
	}
	return out
}

// eth is an untagged Ethernet frame: addresses, type 0x0800, then body.
func eth(body ...byte) []byte {
	b := []byte{1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x08, 0x00}
	return append(b, body...)
}

// tagged is eth with an 802.1Q-style tag (tpid, tci) between the addresses and the type.
func tagged(tpid, tci uint16, body ...byte) []byte {
	b := []byte{1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf}
	b = binary.BigEndian.AppendUint16(b, tpid)
	b = binary.BigEndian.AppendUint16(b, tci)
	b = append(b, 0x08, 0x00)
	return append(b, body...)
}

func TestRingWalk(t *testing.T) {
	const bs = 4096
	type want struct {
		data []byte
		wire int
		ts   int64
	}
	tests := []struct {
		name     string
		blocks   [][]kframe // block i is handed over when not nil
		skipOut  bool
		vlan     bool
		snapLen  int
		want     []want
		corrupt  uint64
		outgoing uint64
	}{
		{
			name:   "two blocks in order",
			blocks: [][]kframe{{{data: eth(1, 2, 3), sec: 10, nsec: 5}, {data: eth(4), sec: 11}}, {{data: eth(5, 6), wire: 1500, sec: 12, nsec: 999999999}}},
			want:   []want{{eth(1, 2, 3), 17, 10e9 + 5}, {eth(4), 15, 11e9}, {eth(5, 6), 1500, 12e9 + 999999999}},
		},
		{
			name:   "second block not handed over yet",
			blocks: [][]kframe{{{data: eth(1)}}, nil, {{data: eth(2)}}},
			want:   []want{{eth(1), 15, 0}},
		},
		{
			name:     "loopback: outgoing copies skipped",
			blocks:   [][]kframe{{{data: eth(1), pkttype: packetOutgoing}, {data: eth(1)}, {data: eth(2), pkttype: packetOutgoing}, {data: eth(2)}}},
			skipOut:  true,
			want:     []want{{eth(1), 15, 0}, {eth(2), 15, 0}},
			outgoing: 2,
		},
		{
			name:   "outgoing kept elsewhere",
			blocks: [][]kframe{{{data: eth(1), pkttype: packetOutgoing}, {data: eth(2)}}},
			want:   []want{{eth(1), 15, 0}, {eth(2), 15, 0}},
		},
		{
			name:   "802.1Q tag put back",
			blocks: [][]kframe{{{data: eth(9, 9), status: tpStatusVLANValid, tci: 0x6064}}},
			vlan:   true,
			want:   []want{{tagged(0x8100, 0x6064, 9, 9), 20, 0}},
		},
		{
			name:   "802.1ad tag with its TPID",
			blocks: [][]kframe{{{data: eth(7), status: tpStatusVLANValid | tpStatusVLANTPIDValid, tci: 200, tpid: 0x88a8}}},
			vlan:   true,
			want:   []want{{tagged(0x88a8, 200, 7), 19, 0}},
		},
		{
			name:   "VID 0 priority tag: the valid bit alone",
			blocks: [][]kframe{{{data: eth(7), status: tpStatusVLANValid}}},
			vlan:   true,
			want:   []want{{tagged(0x8100, 0, 7), 19, 0}},
		},
		{
			name:   "a TCI without the valid bit (old kernels)",
			blocks: [][]kframe{{{data: eth(7), tci: 5}}},
			vlan:   true,
			want:   []want{{tagged(0x8100, 5, 7), 19, 0}},
		},
		{
			name:   "no tag put back on a raw IP link",
			blocks: [][]kframe{{{data: []byte{0x45, 0, 0, 20}, status: tpStatusVLANValid, tci: 5}}},
			want:   []want{{[]byte{0x45, 0, 0, 20}, 4, 0}},
		},
		{
			name:   "no tag put back without room before the frame",
			blocks: [][]kframe{{{data: eth(7), status: tpStatusVLANValid, tci: 5, mac: frameHdrLen + 2}}},
			vlan:   true,
			want:   []want{{eth(7), 15, 0}},
		},
		{
			name:   "no tag put back into a frame shorter than the addresses",
			blocks: [][]kframe{{{data: []byte{1, 2, 3}, status: tpStatusVLANValid, tci: 5}}},
			vlan:   true,
			want:   []want{{[]byte{1, 2, 3}, 3, 0}},
		},
		{
			name:    "snap length cut, tag included",
			blocks:  [][]kframe{{{data: eth(1, 2, 3, 4, 5, 6), status: tpStatusVLANValid, tci: 1}, {data: eth(1, 2, 3, 4, 5, 6)}}},
			vlan:    true,
			snapLen: 16,
			want:    []want{{tagged(0x8100, 1)[:16], 24, 0}, {eth(1, 2)[:16], 20, 0}},
		},
		{
			name:    "frame header before the sockaddr's end",
			blocks:  [][]kframe{{{data: eth(1), mac: frameHdrLen - 1}, {data: eth(2)}}},
			want:    []want{{eth(2), 15, 0}},
			corrupt: 1,
		},
		{
			name:    "next offset past the block",
			blocks:  [][]kframe{{{data: eth(1), next: bs}, {data: eth(2)}}},
			want:    []want{{eth(1), 15, 0}},
			corrupt: 1,
		},
		{
			name:    "snap length past the block",
			blocks:  [][]kframe{{{data: eth(1), mac: bs - blkHdrLen - 10}}},
			want:    nil,
			corrupt: 1,
		},
		{
			name:   "next offset 0 ends the block early",
			blocks: [][]kframe{{{data: eth(1), last: true}, {data: eth(2)}}, {{data: eth(3)}}},
			want:   []want{{eth(1), 15, 0}, {eth(3), 15, 0}},
		},
		{
			name:   "wire length under the captured length",
			blocks: [][]kframe{{{data: eth(1, 2, 3), wire: 3}}},
			want:   []want{{eth(1, 2, 3), 17, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nb := max(len(tt.blocks), 2)
			mem := make([]byte, nb*bs)
			for i, b := range tt.blocks {
				if b != nil {
					putBlock(mem, i*bs, b)
				}
			}
			r := &ring{mem: mem, blockSize: bs, numBlocks: nb, snapLen: 1 << 20, link: decode.LinkEthernet,
				skipOutgoing: tt.skipOut, vlan: tt.vlan}
			if tt.snapLen > 0 {
				r.snapLen = tt.snapLen
			}
			got := walk(r, 1000)
			if len(got) != len(tt.want) {
				t.Fatalf("%d frames, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if !bytes.Equal(g.data, w.data) || g.info.CapLen != len(w.data) || g.info.WireLen != w.wire ||
					g.info.TS != w.ts || g.info.Link != decode.LinkEthernet {
					t.Errorf("frame %d: % x %+v\nwant % x wire %d ts %d", i, g.data, g.info, w.data, w.wire, w.ts)
				}
			}
			if r.corrupt != tt.corrupt || r.outgoing != tt.outgoing {
				t.Errorf("corrupt %d outgoing %d, want %d and %d", r.corrupt, r.outgoing, tt.corrupt, tt.outgoing)
			}
			// Every walked block went back to the kernel; the walk stopped at the first block
			// not handed over.
			for i := 0; i < r.blk; i++ {
				if st := ne.Uint32(mem[i*bs+blkStatusOff:]); st != tpStatusKernel {
					t.Errorf("block %d status %#x after the walk", i, st)
				}
			}
		})
	}
}

// TestRingWraps: after the last block the walk goes back to the first, in order.
func TestRingWraps(t *testing.T) {
	const bs, nb = 4096, 3
	mem := make([]byte, nb*bs)
	r := &ring{mem: mem, blockSize: bs, numBlocks: nb, snapLen: 1 << 20, link: decode.LinkEthernet}
	for round := 0; round < 3*nb; round++ {
		putBlock(mem, (round%nb)*bs, []kframe{{data: eth(byte(round)), sec: uint32(round)}})
		got := walk(r, 100)
		if len(got) != 1 || got[0].data[14] != byte(round) || got[0].info.TS != int64(round)*1e9 {
			t.Fatalf("round %d: %v", round, got)
		}
		if r.held || r.blk != (round+1)%nb {
			t.Fatalf("round %d: held %v next block %d", round, r.held, r.blk)
		}
	}
}

// TestRingBadBlockHeader: a block whose first-frame offset does not fit is skipped whole.
func TestRingBadBlockHeader(t *testing.T) {
	const bs = 4096
	for _, first := range []uint32{0, blkHdrLen - 1, bs + 1, 1 << 31} {
		mem := make([]byte, 2*bs)
		putBlock(mem, 0, []kframe{{data: eth(1)}})
		ne.PutUint32(mem[blkFirstOff:], first)
		putBlock(mem, bs, []kframe{{data: eth(2)}})
		r := &ring{mem: mem, blockSize: bs, numBlocks: 2, snapLen: 1 << 20}
		got := walk(r, 100)
		if len(got) != 1 || !bytes.Equal(got[0].data, eth(2)) || r.corrupt != 1 {
			t.Errorf("first frame at %d: %d frames, corrupt %d", first, len(got), r.corrupt)
		}
	}
}

func TestRingWalkAllocs(t *testing.T) {
	const bs = 1 << 16
	mem := make([]byte, 2*bs)
	var frames []kframe
	for i := 0; i < 100; i++ {
		frames = append(frames, kframe{data: eth(byte(i), 1, 2, 3), status: tpStatusVLANValid, tci: uint32(i)})
	}
	r := &ring{mem: mem, blockSize: bs, numBlocks: 2, snapLen: 1 << 20, vlan: true}
	allocs := testing.AllocsPerRun(20, func() {
		putBlock(mem, r.blk*bs, frames)
		if !r.take() {
			t.Fatal("block not taken")
		}
		n := 0
		for {
			if _, _, ok := r.frame(); !ok {
				break
			}
			n++
		}
		r.release()
		if n != len(frames) {
			t.Fatalf("%d frames", n)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per block", allocs)
	}
}

// FuzzRingWalk walks two blocks made of fuzz bytes (kernel memory gone wrong): the walk must
// end, never panic, and return only frames inside the ring, at most snapLen long.
func FuzzRingWalk(f *testing.F) {
	const bs = 1024
	seed := func(flags byte, blocks ...[]kframe) {
		mem := make([]byte, 2*bs)
		for i, b := range blocks {
			putBlock(mem, i*bs, b)
		}
		f.Add(append([]byte{flags, 0, bs/64 - 1}, mem...))
	}
	seed(3, []kframe{{data: eth(1, 2, 3)}, {data: eth(4), status: tpStatusVLANValid, tci: 7}}, []kframe{{data: eth(5), pkttype: packetOutgoing}})
	seed(2, []kframe{{data: tagged(0x8100, 9, 1, 2, 3), status: tpStatusVLANValid | tpStatusVLANTPIDValid, tpid: 0x88a8}})
	seed(1, []kframe{{data: eth(1), next: 1}, {data: eth(2)}})
	seed(0, []kframe{{data: eth(1), mac: 1}, {data: make([]byte, 900)}})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 3 {
			return
		}
		flags, snap, sizeSel := in[0], int(in[1])*8, in[2]
		blockSize := 64 * (1 + int(sizeSel%32)) // multiples of 8 keep the status words aligned
		mem := make([]byte, 2*blockSize)
		copy(mem, in[3:])
		// Both blocks are ours whatever the bytes say: the walk must cope with their contents.
		for b := 0; b < 2; b++ {
			ne.PutUint32(mem[b*blockSize+blkStatusOff:], ne.Uint32(mem[b*blockSize+blkStatusOff:])|tpStatusUser)
		}
		if snap == 0 {
			snap = 1 << 20
		}
		r := &ring{mem: mem, blockSize: blockSize, numBlocks: 2, snapLen: snap, link: decode.LinkEthernet,
			skipOutgoing: flags&1 != 0, vlan: flags&2 != 0}
		lo, hi := &mem[0], &mem[len(mem)-1]
		for steps := 0; steps < 4*blockSize; steps++ {
			if r.held {
				data, info, ok := r.frame()
				if !ok {
					r.release()
					if r.blk == 0 {
						return // both blocks walked
					}
					continue
				}
				if len(data) != info.CapLen || info.CapLen > snap || info.WireLen < info.CapLen {
					t.Fatalf("frame of %d bytes: %+v (snap %d)", len(data), info, snap)
				}
				if len(data) > 0 && (uintptrOf(&data[0]) < uintptrOf(lo) || uintptrOf(&data[len(data)-1]) > uintptrOf(hi)) {
					t.Fatal("frame outside the ring")
				}
				continue
			}
			if !r.take() {
				t.Fatalf("block %d not taken", r.blk)
			}
		}
		t.Fatalf("walk of two %d-byte blocks did not end", blockSize)
	})
}

// BenchmarkRingWalk: the per-frame cost of the ring walk (Next without its poll), 100-byte
// frames, 1 in 4 with a VLAN tag to put back.
func BenchmarkRingWalk(b *testing.B) {
	const bs = 1 << 16
	var frames []kframe
	for i := 0; i < 300; i++ { // 192 bytes each in the ring: 300 fill most of a 64 KiB block
		f := kframe{data: eth(make([]byte, 86)...)}
		if i%4 == 0 {
			f.status, f.tci = tpStatusVLANValid, 100
		}
		frames = append(frames, f)
	}
	mem := make([]byte, 2*bs)
	r := &ring{mem: mem, blockSize: bs, numBlocks: 2, snapLen: 1 << 20, vlan: true}
	b.ReportAllocs()
	b.SetBytes(100)
	b.ResetTimer()
	for n := 0; n < b.N; {
		b.StopTimer()
		putBlock(mem, r.blk*bs, frames)
		b.StartTimer()
		r.take()
		for n < b.N {
			if _, _, ok := r.frame(); !ok {
				break
			}
			n++
		}
		r.release()
	}
}
