package capture

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// TPACKET_V3 ring layout (linux/if_packet.h). The offsets are the kernel ABI; the fields are
// in host byte order.
const (
	tpStatusKernel        = 0
	tpStatusUser          = 1
	tpStatusVLANValid     = 0x10
	tpStatusVLANTPIDValid = 0x40

	// struct tpacket_block_desc: version, offset_to_priv, then struct tpacket_hdr_v1.
	blkStatusOff  = 8
	blkNumPktsOff = 12
	blkFirstOff   = 16
	blkHdrLen     = 48

	// struct tpacket3_hdr, then struct sockaddr_ll at TPACKET_ALIGN(sizeof(tpacket3_hdr)).
	pktNextOff     = 0
	pktSecOff      = 4
	pktNsecOff     = 8
	pktSnapOff     = 12
	pktLenOff      = 16
	pktStatusOff   = 20
	pktMacOff      = 24
	pktVLANTCIOff  = 32
	pktVLANTPIDOff = 36
	sllOff         = 48
	sllPkttypeOff  = sllOff + 10
	frameHdrLen    = sllOff + 20 // TPACKET3_HDRLEN

	packetOutgoing = 4 // PACKET_OUTGOING
	vlanTagLen     = 4
	etherType8021Q = 0x8100
)

var ne = binary.NativeEndian

// ring walks the blocks of a TPACKET_V3 receive ring in order. A block belongs to the kernel
// until it sets TP_STATUS_USER in the block header, and goes back when we store
// TP_STATUS_KERNEL; the frames inside are then read in place. Every offset and length read
// from the ring is checked against the block before use, so a damaged ring (or the zero
// pages that replace it when the source is closed under a reader) yields no frame rather
// than a fault. Only the reading goroutine touches a ring.
type ring struct {
	mem       []byte
	blockSize int
	numBlocks int

	blk  int    // index of the block being walked, or the next one to take
	held bool   // block blk is ours and being walked
	left uint32 // frames of the held block not yet walked
	off  int    // offset in mem of the next frame header
	end  int    // end of the held block

	snapLen      int
	link         decode.LinkType
	skipOutgoing bool // loopback: every packet also shows up once as outgoing
	vlan         bool // Ethernet: put back the 802.1Q tag the kernel took off

	outgoing uint64 // outgoing frames skipped
	corrupt  uint64 // frames or blocks whose headers did not fit their block
}

// status points at the status word of the block at base, which the kernel writes.
func (r *ring) status(base int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[base+blkStatusOff]))
}

// take makes block blk the held block if the kernel has handed it over.
func (r *ring) take() bool {
	base := r.blk * r.blockSize
	if base+r.blockSize > len(r.mem) || r.blockSize < blkHdrLen {
		return false
	}
	if atomic.LoadUint32(r.status(base))&tpStatusUser == 0 {
		return false
	}
	r.held = true
	r.end = base + r.blockSize
	r.left = ne.Uint32(r.mem[base+blkNumPktsOff:])
	first := ne.Uint32(r.mem[base+blkFirstOff:])
	if first < blkHdrLen || first > uint32(r.blockSize) {
		if r.left > 0 {
			r.corrupt++
		}
		r.left = 0
		return true
	}
	r.off = base + int(first)
	return true
}

// release hands the held block back to the kernel; frames returned from it become invalid.
func (r *ring) release() {
	atomic.StoreUint32(r.status(r.blk*r.blockSize), tpStatusKernel)
	r.held = false
	r.left = 0
	r.blk++
	if r.blk == r.numBlocks {
		r.blk = 0
	}
}

// frame returns the next frame of the held block, ok false once the block is done.
func (r *ring) frame() (data []byte, info PacketInfo, ok bool) {
	for r.left > 0 {
		r.left--
		p := r.off
		if p > r.end-frameHdrLen {
			r.corrupt++
			r.left = 0
			break
		}
		h := r.mem[p : p+frameHdrLen : p+frameHdrLen]
		// The kernel links every frame but the last; a missing link ends the walk.
		if next := ne.Uint32(h[pktNextOff:]); next == 0 {
			r.left = 0
		} else if next > uint32(r.end-p) {
			r.corrupt++
			r.left = 0
		} else {
			r.off = p + int(next)
		}
		if r.skipOutgoing && h[sllPkttypeOff] == packetOutgoing {
			r.outgoing++
			continue
		}
		mac := int(ne.Uint16(h[pktMacOff:]))
		snap := ne.Uint32(h[pktSnapOff:])
		start := p + mac
		if mac < frameHdrLen || start > r.end || snap > uint32(r.end-start) {
			r.corrupt++
			continue
		}
		stop := start + int(snap)
		wire := int(min(ne.Uint32(h[pktLenOff:]), 1<<30))
		if r.vlan && snap >= 12 && mac >= frameHdrLen+vlanTagLen {
			status := ne.Uint32(h[pktStatusOff:])
			tci := ne.Uint32(h[pktVLANTCIOff:])
			if status&tpStatusVLANValid != 0 || tci != 0 {
				// The kernel strips the tag before any tap sees the frame; libpcap puts it
				// back between the MAC addresses and the type, in place: the slack before the
				// frame (PACKET_RESERVE) takes the 12 address bytes moved forward.
				tpid := ne.Uint16(h[pktVLANTPIDOff:])
				if tpid == 0 && status&tpStatusVLANTPIDValid == 0 {
					tpid = etherType8021Q
				}
				copy(r.mem[start-vlanTagLen:start+12-vlanTagLen], r.mem[start:start+12])
				binary.BigEndian.PutUint16(r.mem[start+12-vlanTagLen:], tpid)
				binary.BigEndian.PutUint16(r.mem[start+14-vlanTagLen:], uint16(tci))
				start -= vlanTagLen
				wire += vlanTagLen
			}
		}
		if stop-start > r.snapLen {
			stop = start + r.snapLen
		}
		data = r.mem[start:stop:stop]
		info = PacketInfo{
			TS:      int64(ne.Uint32(h[pktSecOff:]))*1e9 + int64(ne.Uint32(h[pktNsecOff:])),
			CapLen:  len(data),
			WireLen: max(wire, len(data)),
			Link:    r.link,
		}
		return data, info, true
	}
	return nil, PacketInfo{}, false
}
