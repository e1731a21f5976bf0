package decode

import "errors"

// ErrMalformed is wrapped by every error Decode returns for a corrupt frame: a header that
// contradicts itself or ends beyond the frame. Frames cut short by the snapshot length are not
// malformed: they decode as far as they go and set Packet.Truncated.
var ErrMalformed = errors.New("malformed frame")

// ErrUnsupportedLink is returned by Decode for a link type it does not understand.
var ErrUnsupportedLink = errors.New("unsupported link type")

// decodeError names the reason of a failure while wrapping a sentinel. All instances are
// package-level values, so returning one does not allocate: a flood of corrupt frames must not
// create garbage.
type decodeError struct {
	kind   error
	reason string
}

func (e *decodeError) Error() string { return e.kind.Error() + ": " + e.reason }
func (e *decodeError) Unwrap() error { return e.kind }

func malformed(reason string) error { return &decodeError{ErrMalformed, reason} }

var (
	errUnsupportedLink = &decodeError{ErrUnsupportedLink, "no decoder for this link type"}

	errShortEthernet = malformed("Ethernet header beyond frame")
	errShortVLAN     = malformed("802.1Q tag beyond frame")
	errShortLLC      = malformed("802.2 LLC/SNAP header beyond frame")
	errShortPPPoE    = malformed("PPPoE/PPP header beyond frame")
	errShortMPLS     = malformed("MPLS label stack beyond frame")
	errShortSLL      = malformed("Linux SLL header beyond frame")
	errShortSLL2     = malformed("Linux SLL2 header beyond frame")
	errShortLoopback = malformed("loopback family header beyond frame")
	errShortIP       = malformed("IP header beyond frame")
	errIPVersion     = malformed("bad IP version")
	errShortIPv4     = malformed("IPv4 header beyond frame")
	errIPv4IHL       = malformed("IPv4 IHL < 5")
	errIPv4TotalLen  = malformed("IPv4 total length < header length")
	errShortIPv6     = malformed("IPv6 header beyond frame")
	errIPv6ExtShort  = malformed("IPv6 extension header beyond payload")
	errIPv6ExtChain  = malformed("IPv6 extension header chain too long")
	errIPv6FragTwice = malformed("IPv6 Fragment header repeated")
	errShortUDP      = malformed("UDP header beyond IP payload")
	errUDPLength     = malformed("UDP length < 8")
	errShortTCP      = malformed("TCP header beyond IP payload")
	errTCPOffset     = malformed("TCP data offset < 5")
	errTCPOptions    = malformed("TCP data offset beyond IP payload")
)

// maxIPv6ExtHeaders bounds the extension header chain. A legitimate chain has at most six
// (RFC 8200 §4.1 order: Hop-by-Hop, Destination, Routing, Fragment, AH, Destination); anything
// longer is an evasion attempt or garbage and is refused.
const maxIPv6ExtHeaders = 8

// EtherTypes and IP protocol numbers the decoder dispatches on.
const (
	etherIPv4      = 0x0800
	etherIPv6      = 0x86DD
	etherDot1Q     = 0x8100
	etherDot1AD    = 0x88A8
	etherQinQOld   = 0x9100
	etherPPPoESess = 0x8864
	etherMPLS      = 0x8847
	etherMPLSMcast = 0x8848

	protoHopByHop = 0
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoNoNext   = 59
	protoDstOpts  = 60
)

// Decoder decodes frames into Packets. It holds no per-packet state; it exists so callers keep
// one per worker and future options (or scratch space) need no API change. The zero value is
// ready to use.
type Decoder struct{}

// Decode fills p from frame. The caller may set p.TS, p.CapLen and p.WireLen beforehand; every
// other field is overwritten. A zero CapLen becomes len(frame) and a WireLen below CapLen
// becomes CapLen. Slices in p point into frame.
//
// Frames that are not IP (ARP, LLDP, STP, …) are valid: they return nil with L3None and L4Other.
// Errors wrap ErrMalformed (corrupt headers) or ErrUnsupportedLink; on error p holds whatever was
// decoded before the fault. Decode never allocates and never panics.
func (d *Decoder) Decode(lt LinkType, frame []byte, p *Packet) error {
	ts, capLen, wireLen := p.TS, p.CapLen, p.WireLen
	*p = Packet{TS: ts, CapLen: capLen, WireLen: wireLen}
	if p.CapLen == 0 {
		p.CapLen = len(frame)
	}
	if p.WireLen < p.CapLen {
		p.WireLen = p.CapLen
	}
	switch lt {
	case LinkEthernet:
		if len(frame) < 14 {
			return errShortEthernet
		}
		return decodeEtherType(be16(frame[12:]), frame[14:], p)
	case LinkRaw, LinkDLTRaw12, LinkDLTRaw14:
		return decodeIP(frame, p)
	case LinkIPv4:
		return decodeIPv4(frame, p)
	case LinkIPv6:
		return decodeIPv6(frame, p)
	case LinkLinuxSLL:
		// packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
		if len(frame) < 16 {
			return errShortSLL
		}
		return decodeEtherType(be16(frame[14:]), frame[16:], p)
	case LinkLinuxSLL2:
		// protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) address length(1) address(8)
		if len(frame) < 20 {
			return errShortSLL2
		}
		return decodeEtherType(be16(frame[0:]), frame[20:], p)
	case LinkNull, LinkLoop:
		return decodeLoopback(frame, p)
	}
	return errUnsupportedLink
}

// decodeLoopback handles DLT_NULL and DLT_LOOP. DLT_NULL stores the family in the capturing
// host's byte order and DLT_LOOP in network order, but files get moved between hosts, so both
// orders are accepted for both: a family is a small number, so the order whose value fits in the
// low 16 bits is the right one.
func decodeLoopback(b []byte, p *Packet) error {
	if len(b) < 4 {
		return errShortLoopback
	}
	fam := be32(b)
	if fam > 0xFFFF {
		fam = uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	}
	switch fam {
	case 2: // AF_INET everywhere
		return decodeIPv4(b[4:], p)
	case 10, 24, 28, 30: // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, Darwin
		return decodeIPv6(b[4:], p)
	}
	return nil // another family (e.g. AppleTalk, OSI): a valid non-IP packet
}

// decodeEtherType dispatches on an EtherType (or an 802.3 length / SLL pseudo-protocol ≤ 1500),
// peeling any number of VLAN tags. The loop terminates because every tag consumes 4 bytes.
func decodeEtherType(et uint16, b []byte, p *Packet) error {
	for {
		switch et {
		case etherIPv4:
			return decodeIPv4(b, p)
		case etherIPv6:
			return decodeIPv6(b, p)
		case etherDot1Q, etherDot1AD, etherQinQOld:
			if len(b) < 4 {
				return errShortVLAN
			}
			et = be16(b[2:])
			b = b[4:]
		case etherPPPoESess:
			// PPPoE: ver/type(1) code(1) session(2) length(2); then the PPP protocol(2).
			if len(b) < 8 {
				return errShortPPPoE
			}
			switch be16(b[6:]) {
			case 0x0021:
				return decodeIPv4(b[8:], p)
			case 0x0057:
				return decodeIPv6(b[8:], p)
			}
			return nil
		case etherMPLS, etherMPLSMcast:
			return decodeMPLS(b, p)
		default:
			if et > 1500 {
				return nil // ARP, LLDP, …: valid, not IP
			}
			// 802.3 length field (or SLL's 0x0004 "802.2 frame"): an LLC header follows.
			// Only SNAP with an EtherType-encapsulating OUI can carry IP.
			if len(b) < 3 {
				return errShortLLC
			}
			if b[0] != 0xAA || b[1] != 0xAA || b[2] != 0x03 {
				return nil // other LLC SAPs (STP, NetBIOS, …)
			}
			if len(b) < 8 {
				return errShortLLC
			}
			// OUI 00-00-00 is RFC 1042, 00-00-F8 is 802.1H bridge tunnel: both carry EtherTypes.
			if b[3] != 0 || b[4] != 0 || (b[5] != 0 && b[5] != 0xF8) {
				return nil
			}
			et = be16(b[6:])
			if et <= 1500 {
				return nil // refuse to loop on nested LLC
			}
			b = b[8:]
		}
	}
}

// decodeMPLS skips the label stack up to the bottom-of-stack bit. MPLS does not say what it
// carries, so like tcpdump the payload is guessed from the IP version nibble.
func decodeMPLS(b []byte, p *Packet) error {
	for {
		if len(b) < 4 {
			return errShortMPLS
		}
		bottom := b[2]&0x01 != 0
		b = b[4:]
		if bottom {
			break
		}
	}
	if len(b) == 0 {
		return nil
	}
	switch b[0] >> 4 {
	case 4:
		return decodeIPv4(b, p)
	case 6:
		return decodeIPv6(b, p)
	}
	return nil // pseudowire or other payload
}

// decodeIP decodes raw IP whose version comes from the first nibble.
func decodeIP(b []byte, p *Packet) error {
	if len(b) == 0 {
		return errShortIP
	}
	switch b[0] >> 4 {
	case 4:
		return decodeIPv4(b, p)
	case 6:
		return decodeIPv6(b, p)
	}
	return errIPVersion
}

func decodeIPv4(b []byte, p *Packet) error {
	if len(b) < 20 {
		return errShortIPv4
	}
	if b[0]>>4 != 4 {
		return errIPVersion
	}
	ihl := int(b[0]&0x0F) * 4
	if ihl < 20 {
		return errIPv4IHL
	}
	if ihl > len(b) {
		return errShortIPv4
	}
	total := int(be16(b[2:]))
	switch {
	case total == 0:
		// TCP segmentation offload: the sending host's capture sees the super-segment before the
		// NIC fills in the length. Wireshark and gopacket use the captured length; so do we.
		total = len(b)
	case total < ihl:
		return errIPv4TotalLen
	case total > len(b):
		p.Truncated = true
		total = len(b)
	}
	p.L3 = L3IPv4
	copy(p.Src[:4], b[12:16])
	copy(p.Dst[:4], b[16:20])
	proto := b[9]
	p.IPProto = proto
	data := b[ihl:total] // trimmed: Ethernet padding must not become payload

	flags := be16(b[6:])
	more := flags&0x2000 != 0
	off := (flags & 0x1FFF) * 8
	if more || off != 0 {
		p.Fragment = true
		p.FragMore = more
		p.FragOffset = off
		p.FragID = uint32(be16(b[4:]))
		p.FragData = data
		p.FragProto = proto
		if off != 0 {
			p.L4 = l4Of(proto)
			p.Payload = data
			return nil
		}
		return decodeTransport(proto, data, p, true)
	}
	return decodeTransport(proto, data, p, false)
}

func decodeIPv6(b []byte, p *Packet) error {
	if len(b) < 40 {
		return errShortIPv6
	}
	if b[0]>>4 != 6 {
		return errIPVersion
	}
	p.L3 = L3IPv6
	copy(p.Src[:], b[8:24])
	copy(p.Dst[:], b[24:40])
	nh := b[6]
	plen := int(be16(b[4:]))
	data := b[40:]
	switch {
	case plen == 0 && nh == protoHopByHop:
		// A jumbogram (RFC 2675) carries its length in a Hop-by-Hop option; the frame's end is
		// the best bound we have.
	case plen > len(data):
		p.Truncated = true
	default:
		data = data[:plen]
	}
	return decodeIPv6Chain(nh, data, p, 0)
}

// decodeIPv6Chain walks the extension headers from next header nh over data (the IPv6 payload)
// and decodes the transport. n is the number of extension headers already walked. It also serves
// the Defragmenter, which resumes the chain after a reassembled Fragment header.
func decodeIPv6Chain(nh uint8, data []byte, p *Packet, n int) error {
	for ; ; n++ {
		switch nh {
		case protoHopByHop, protoRouting, protoDstOpts, protoAH, protoFragment:
		default:
			p.IPProto = nh
			if p.Fragment {
				return decodeTransport(nh, data, p, true)
			}
			return decodeTransport(nh, data, p, false)
		}
		if n >= maxIPv6ExtHeaders {
			return errIPv6ExtChain
		}
		if len(data) < 8 {
			return extTruncated(nh, p)
		}
		if nh == protoFragment {
			if p.Fragment {
				return errIPv6FragTwice
			}
			fo := be16(data[2:])
			off := fo &^ 7
			more := fo&1 != 0
			next := data[0]
			id := be32(data[4:])
			data = data[8:]
			if off == 0 && !more {
				// An atomic fragment (RFC 6946) is a whole packet: process it as such.
				nh = next
				continue
			}
			p.Fragment = true
			p.FragOffset = off
			p.FragMore = more
			p.FragID = id
			p.FragData = data
			p.FragProto = next
			nh = next
			if off != 0 {
				p.IPProto = next
				p.L4 = l4Of(next)
				p.Payload = data
				return nil
			}
			continue
		}
		var hl int
		if nh == protoAH {
			hl = (int(data[1]) + 2) * 4
		} else {
			hl = (int(data[1]) + 1) * 8
		}
		if hl > len(data) {
			return extTruncated(nh, p)
		}
		nh = data[0]
		data = data[hl:]
	}
}

// extTruncated ends the chain at an extension header that does not fit: snaplen truncation if the
// captured payload is shorter than the declared one, or a first fragment whose chain continues in
// the next fragment; corruption otherwise.
func extTruncated(nh uint8, p *Packet) error {
	if !p.Truncated && !p.Fragment {
		return errIPv6ExtShort
	}
	p.IPProto = nh
	p.L4 = L4Other
	return nil
}

// l4Of maps an IP protocol to the L4 classes the metrics count.
func l4Of(proto uint8) L4 {
	switch proto {
	case protoUDP:
		return L4UDP
	case protoTCP:
		return L4TCP
	}
	return L4Other
}

// decodeTransport decodes UDP or TCP from data, the IP payload after all IP headers (trimmed to
// the declared length; p.Truncated says whether the capture cut it). first is set for a first
// fragment: its transport header may be cut by the fragment end (not an error, ports stay 0 if
// they are not there) and the UDP length describes the whole datagram, so it cannot trim.
func decodeTransport(proto uint8, data []byte, p *Packet, first bool) error {
	p.IPProto = proto
	p.L4 = l4Of(proto)
	switch proto {
	case protoUDP:
		if len(data) < 8 {
			if p.Truncated || first {
				return nil
			}
			return errShortUDP
		}
		p.SrcPort = be16(data[0:])
		p.DstPort = be16(data[2:])
		ulen := int(be16(data[4:]))
		switch {
		case first:
			p.Payload = data[8:]
		case ulen >= 8 && ulen <= len(data):
			p.Payload = data[8:ulen]
		case ulen >= 8:
			// The datagram claims more than the IP payload holds: keep what is there and say
			// the payload is incomplete (gopacket and Wireshark do the same).
			p.Payload = data[8:]
			p.Truncated = true
		case ulen == 0:
			p.Payload = data[8:] // jumbogram (RFC 2675): the length lives elsewhere
		default:
			return errUDPLength
		}
		return nil
	case protoTCP:
		if len(data) < 20 {
			if p.Truncated || first {
				if len(data) >= 4 {
					p.SrcPort = be16(data[0:])
					p.DstPort = be16(data[2:])
				}
				return nil
			}
			return errShortTCP
		}
		p.SrcPort = be16(data[0:])
		p.DstPort = be16(data[2:])
		p.TCPSeq = be32(data[4:])
		p.TCPAck = be32(data[8:])
		p.TCPFlags = data[13]
		off := int(data[12]>>4) * 4
		if off < 20 {
			return errTCPOffset
		}
		if off > len(data) {
			if p.Truncated || first {
				return nil
			}
			return errTCPOptions
		}
		p.Payload = data[off:]
		return nil
	}
	// ICMP, ICMPv6, ESP, No Next Header, GRE, …: counted as other L4; the payload is kept for
	// whoever wants to look.
	p.Payload = data
	return nil
}

func be16(b []byte) uint16 {
	_ = b[1]
	return uint16(b[0])<<8 | uint16(b[1])
}

func be32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
