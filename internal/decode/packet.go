// Package decode turns raw captured frames into Packet values: link layer (Ethernet, 802.1Q/QinQ,
// Linux SLL/SLL2, BSD NULL/LOOP, raw IP), IPv4 (with fragment reassembly) and IPv6 (with extension
// headers), then UDP/TCP. It is the first stage of the hot path, so it never allocates per packet:
// a Packet is a plain value whose byte slices point into the caller's frame buffer.
//
// Design choices: the decoder is hand-written over the standard library only. gopacket's
// DecodingLayerParser is general (interfaces per layer, every field parsed) and 4–10× slower
// for the few fields the metrics need; gopacket and miekg/dns serve as test oracles only.
// Errors are preallocated values so that a flood of corrupt frames creates no garbage. The
// Defragmenter keeps its own fixed-size open-addressing table and recycles its buffers, so its
// memory is bounded by configuration and its steady state allocates nothing. See README.md.
package decode

// L3 is the network-layer protocol of a packet.
type L3 uint8

const (
	L3None L3 = iota // not IP (ARP, LLDP, …) or undecodable
	L3IPv4
	L3IPv6
)

// L4 is the transport protocol of a packet, as far as the pktvisor metrics care.
type L4 uint8

const (
	L4Other L4 = iota // neither UDP nor TCP (ICMP, non-first fragments of unknown L4, non-IP)
	L4UDP
	L4TCP
)

// TCP flag bits as they appear in the TCP header's flags byte.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
)

// Packet is one decoded frame. Slices reference the frame buffer given to the decoder and are
// valid only as long as that buffer is.
type Packet struct {
	TS      int64 // capture timestamp, Unix nanoseconds
	CapLen  int   // captured length of the whole frame, link header included
	WireLen int   // original length on the wire (>= CapLen)

	L3 L3
	L4 L4
	// IPProto is the IP protocol number of the transport payload (after IPv6 extension headers).
	IPProto uint8
	// Src and Dst hold the addresses: IPv4 in the first 4 bytes (rest zero), IPv6 in all 16.
	Src, Dst [16]byte

	SrcPort, DstPort uint16
	TCPFlags         uint8
	TCPSeq, TCPAck   uint32

	// Payload is the transport payload (UDP/TCP data) as captured (may be shorter than the
	// datagram if the capture was truncated by snaplen).
	Payload []byte

	// Fragment describes an IP fragment. A first fragment (offset 0) still has L4, ports and
	// the start of the payload; a later fragment has L4 from the IP header's protocol field but
	// no ports and no transport header.
	Fragment   bool
	FragOffset uint16 // in bytes
	FragMore   bool
	FragID     uint32

	// Truncated is set when the frame ended before a header it announced (the packet is still
	// counted by its outer layers, but its payload is incomplete).
	Truncated bool

	// FragData is, for a fragment, its share of the fragmented data: the IPv4 payload, or what
	// follows the IPv6 Fragment header (a first fragment's transport header included). The
	// Defragmenter reassembles these; Payload cannot serve, as it starts after the transport
	// header.
	FragData []byte
	// FragProto is the protocol of the fragmented data: the IPv4 protocol field, or the IPv6
	// Fragment header's Next Header (which may name further extension headers).
	FragProto uint8
}

// AddrLen is 4 for IPv4 and 16 for IPv6 (0 otherwise): the meaningful prefix of Src/Dst.
func (p *Packet) AddrLen() int {
	switch p.L3 {
	case L3IPv4:
		return 4
	case L3IPv6:
		return 16
	}
	return 0
}

// SrcAddr and DstAddr return the meaningful bytes of the addresses.
func (p *Packet) SrcAddr() []byte { return p.Src[:p.AddrLen()] }
func (p *Packet) DstAddr() []byte { return p.Dst[:p.AddrLen()] }

// FlowHash is a direction-independent hash of the 5-tuple (addresses, ports, protocol): a query
// and its reply, or both sides of a TCP connection, hash the same. It routes packets to workers
// and keys DNS transactions (where the question confirms a match, so a crafted collision costs
// nothing but a missed pairing), so it must above all be cheap: each endpoint is folded with
// multiplications, the two are added (symmetric) and the sum gets one full mix.
func (p *Packet) FlowHash() uint64 {
	ea := load64(p.Src[0:8])*0x9e3779b97f4a7c15 ^ load64(p.Src[8:16])*0xc2b2ae3d27d4eb4f ^ uint64(p.SrcPort)*0x165667b19e3779f9
	eb := load64(p.Dst[0:8])*0x9e3779b97f4a7c15 ^ load64(p.Dst[8:16])*0xc2b2ae3d27d4eb4f ^ uint64(p.DstPort)*0x165667b19e3779f9
	return mix(ea + eb + uint64(p.IPProto)*0x27d4eb2f165667c5)
}

func load64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// mix is the SplitMix64 finalizer: a good, fast 64-bit avalanche.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
