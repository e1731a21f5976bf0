package bpf

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Link types (pcap LINKTYPE_* values, as stored in capture files).
const (
	LinkTypeNull     uint32 = 0   // BSD loopback: 4-byte address family in the writer's byte order
	LinkTypeEthernet uint32 = 1   // Ethernet II / 802.3
	LinkTypeRaw      uint32 = 101 // raw IPv4 or IPv6, no link header
	LinkTypeLoop     uint32 = 108 // OpenBSD loopback: 4-byte address family, network byte order
	LinkTypeLinuxSLL uint32 = 113 // Linux cooked capture v1 (16-byte header)
	LinkTypeIPv4     uint32 = 228 // raw IPv4 only
	LinkTypeIPv6     uint32 = 229 // raw IPv6 only
	LinkTypeSLL2     uint32 = 276 // Linux cooked capture v2 (20-byte header)
)

// Ethernet types and IP protocol numbers used by the code generator.
const (
	etherTypeIPv4   = 0x0800
	etherTypeARP    = 0x0806
	etherTypeRARP   = 0x8035
	etherTypeIPv6   = 0x86dd
	etherType8021Q  = 0x8100
	etherType8021AD = 0x88a8
	etherTypeQinQ   = 0x9100
	etherMTU        = 1500

	protoICMP     = 1
	protoIGMP     = 2
	protoTCP      = 6
	protoUDP      = 17
	protoFragment = 44 // IPv6 fragment extension header
	protoICMPv6   = 58
	protoSCTP     = 132
)

// BSD address-family values libpcap accepts for IPv6 on NULL/LOOP links (NetBSD/OpenBSD,
// FreeBSD, Darwin). Linux's AF_INET6 (10) is not among them, as in libpcap.
var bsdAFInet6 = []uint32{24, 28, 30}

const bsdAFInet = 2

// linkKind groups link types whose code generation is identical.
type linkKind uint8

const (
	lkEthernet linkKind = iota // ethertype at offLinkType, payload after a fixed header
	lkRaw                      // IP version nibble decides
	lkNull                     // 4-byte AF, either byte order (see README)
	lkLoop                     // 4-byte AF, network byte order
	lkIPv4                     // always IPv4
	lkIPv6                     // always IPv6
)

// link holds the offsets the generator uses. offLinkType and offNL move by 4 after each
// "vlan" keyword, exactly as libpcap shifts them for the rest of the expression.
type link struct {
	linkType    uint32
	kind        linkKind
	name        string
	offLinkType uint32 // offset of the 16-bit ethertype (lkEthernet only)
	offNL       uint32 // offset of the network-layer header
	vlanOK      bool
	macOK       bool // link-layer (MAC) addresses present at offsets 0 and 6
}

func newLink(linkType uint32) (*link, error) {
	switch linkType {
	case LinkTypeEthernet:
		return &link{linkType: linkType, kind: lkEthernet, name: "Ethernet", offLinkType: 12, offNL: 14, vlanOK: true, macOK: true}, nil
	case LinkTypeLinuxSLL:
		return &link{linkType: linkType, kind: lkEthernet, name: "Linux cooked v1", offLinkType: 14, offNL: 16}, nil
	case LinkTypeSLL2:
		return &link{linkType: linkType, kind: lkEthernet, name: "Linux cooked v2", offLinkType: 0, offNL: 20}, nil
	case LinkTypeRaw:
		return &link{linkType: linkType, kind: lkRaw, name: "Raw IP"}, nil
	case LinkTypeNull:
		return &link{linkType: linkType, kind: lkNull, name: "BSD loopback", offNL: 4}, nil
	case LinkTypeLoop:
		return &link{linkType: linkType, kind: lkLoop, name: "OpenBSD loopback", offNL: 4}, nil
	case LinkTypeIPv4:
		return &link{linkType: linkType, kind: lkIPv4, name: "Raw IPv4"}, nil
	case LinkTypeIPv6:
		return &link{linkType: linkType, kind: lkIPv6, name: "Raw IPv6"}, nil
	}
	return nil, fmt.Errorf("bpf: unsupported link type %d", linkType)
}

// linkProto is libpcap's gen_linktype for Ethernet types above 1500: is the network-layer
// protocol of this frame ethertype et?
func (l *link) linkProto(et uint32) *cond {
	switch l.kind {
	case lkEthernet:
		return test(bpf.JumpEqual, et, bpf.LoadAbsolute{Off: l.offLinkType, Size: 2})
	case lkRaw:
		var v uint32
		switch et {
		case etherTypeIPv4:
			v = 0x40
		case etherTypeIPv6:
			v = 0x60
		default:
			return condFalse
		}
		return test(bpf.JumpEqual, v, bpf.LoadAbsolute{Off: 0, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	case lkNull, lkLoop:
		var afs []uint32
		switch et {
		case etherTypeIPv4:
			afs = []uint32{bsdAFInet}
		case etherTypeIPv6:
			afs = bsdAFInet6
		default:
			return condFalse
		}
		if l.kind == lkLoop {
			return inSet([]bpf.Instruction{ldAbs(0, 4)}, afs...)
		}
		// libpcap compares in the byte order of the file's writer, which the caller does not
		// tell us. AF values are < 256, so accept both orders: bytes 1-2 zero and byte 0 |
		// byte 3 equal to the AF. One value names the family whatever the order, so the
		// optimizer can still tell, after the first test, that a frame is IPv4.
		return and(test(bpf.JumpEqual, 0, ldAbs(1, 2)),
			inSet([]bpf.Instruction{ldAbs(3, 1), bpf.TAX{}, ldAbs(0, 1), bpf.ALUOpX{Op: bpf.ALUOpOr}}, afs...))
	case lkIPv4:
		return constCond(et == etherTypeIPv4)
	case lkIPv6:
		return constCond(et == etherTypeIPv6)
	}
	return condFalse
}

func ldAbs(off uint32, size int) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: size} }

// cmpNL compares the size-byte field at offset off of the network header with v under mask.
func (l *link) cmpNL(off uint32, size int, v, mask uint32) *cond {
	switch {
	case mask == 0:
		return condTrue
	case mask == 0xffffffff:
		return test(bpf.JumpEqual, v, ldAbs(l.offNL+off, size))
	}
	return test(bpf.JumpEqual, v&mask, ldAbs(l.offNL+off, size), bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
}

// Direction qualifiers.
const (
	dirDefault = iota // src or dst
	dirSrc
	dirDst
	dirOr
	dirAnd
)

func combineDir(dir int, src, dst func() *cond) *cond {
	switch dir {
	case dirSrc:
		return src()
	case dirDst:
		return dst()
	case dirAnd:
		return and(src(), dst())
	}
	return or(src(), dst())
}

// hostV4 matches an IPv4 address (under mask) in a protocol whose header carries the source
// at srcOff and the destination at dstOff (IP 12/16, ARP and RARP 14/24).
func (l *link) hostV4(addr, mask uint32, dir int, et uint32, srcOff, dstOff uint32) *cond {
	lt := l.linkProto(et)
	if lt.kind == cFalse {
		return condFalse
	}
	return and(lt, combineDir(dir,
		func() *cond { return l.cmpNL(srcOff, 4, addr, mask) },
		func() *cond { return l.cmpNL(dstOff, 4, addr, mask) }))
}

// hostV6 matches an IPv6 address under mask, word by word; words with an all-zero mask need
// no load (libpcap's optimizer removes them too).
func (l *link) hostV6(addr, mask [16]byte, dir int) *cond {
	lt := l.linkProto(etherTypeIPv6)
	if lt.kind == cFalse {
		return condFalse
	}
	words := func(base uint32) *cond {
		r := condTrue
		for w := 0; w < 4; w++ {
			a := be32(addr[w*4:])
			m := be32(mask[w*4:])
			r = and(r, l.cmpNL(base+uint32(w)*4, 4, a, m))
		}
		return r
	}
	return and(lt, combineDir(dir, func() *cond { return words(8) }, func() *cond { return words(24) }))
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// ipv4Proto is "ip proto p": no fragment check, as in libpcap.
func (l *link) ipv4Proto(p uint32) *cond {
	return and(l.linkProto(etherTypeIPv4), test(bpf.JumpEqual, p, ldAbs(l.offNL+9, 1)))
}

// ipv6Proto is "ip6 proto p": the next header of the fixed header, or of a fragment header
// that directly follows it (libpcap looks no further).
func (l *link) ipv6Proto(p uint32) *cond {
	lt := l.linkProto(etherTypeIPv6)
	if lt.kind == cFalse {
		return condFalse
	}
	direct := test(bpf.JumpEqual, p, ldAbs(l.offNL+6, 1))
	if p == protoFragment {
		return and(lt, direct)
	}
	// The fragment-header branch reuses A (the next-header byte) loaded by the first test.
	viaFrag := and(test(bpf.JumpEqual, protoFragment), test(bpf.JumpEqual, p, ldAbs(l.offNL+40, 1)))
	return and(lt, or(direct, viaFrag))
}

// notFragment is true for unfragmented IPv4 packets and first fragments (offset 0).
func (l *link) notFragment() *cond {
	return not(test(bpf.JumpBitsSet, 0x1fff, ldAbs(l.offNL+6, 2)))
}

// loadIPv4HeaderLen sets X to the IPv4 header length.
func (l *link) loadIPv4HeaderLen() bpf.Instruction {
	return bpf.LoadMemShift{Off: l.offNL}
}

// portCond builds libpcap's gen_port|gen_port6 with the same shape: IPv6 first, then IPv4,
// and for each a separate alternative per transport (sctp, tcp, udp order) — the optimizer
// then sees which transport a port test was reached through, as libpcap's does. match
// compares a loaded port.
func (l *link) portCond(protos []uint32, dir int, match func(load []bpf.Instruction) *cond) *cond {
	v6, v4 := condFalse, condFalse
	if lt := l.linkProto(etherTypeIPv6); lt.kind != cFalse {
		for _, p := range protos {
			v6 = or(v6, and(test(bpf.JumpEqual, p, ldAbs(l.offNL+6, 1)),
				combineDir(dir,
					func() *cond { return match([]bpf.Instruction{ldAbs(l.offNL+40, 2)}) },
					func() *cond { return match([]bpf.Instruction{ldAbs(l.offNL+42, 2)}) })))
		}
		v6 = and(lt, v6)
	}
	if lt := l.linkProto(etherTypeIPv4); lt.kind != cFalse {
		hl := l.loadIPv4HeaderLen()
		for _, p := range protos {
			v4 = or(v4, andAll(test(bpf.JumpEqual, p, ldAbs(l.offNL+9, 1)),
				l.notFragment(),
				combineDir(dir,
					func() *cond {
						return match([]bpf.Instruction{hl, bpf.LoadIndirect{Off: l.offNL, Size: 2}})
					},
					func() *cond {
						return match([]bpf.Instruction{hl, bpf.LoadIndirect{Off: l.offNL + 2, Size: 2}})
					})))
		}
		v4 = and(lt, v4)
	}
	return or(v6, v4)
}

func (l *link) port(protos []uint32, port uint32, dir int) *cond {
	return l.portCond(protos, dir, func(load []bpf.Instruction) *cond {
		return test(bpf.JumpEqual, port, load...)
	})
}

func (l *link) portRange(protos []uint32, lo, hi uint32, dir int) *cond {
	return l.portCond(protos, dir, func(load []bpf.Instruction) *cond {
		return inRange(load, lo, hi)
	})
}

// vlan is libpcap's gen_vlan without BPF extensions (what it uses for capture files): the
// frame's ethertype is one of the VLAN TPIDs and, if given, the VID matches; then every later
// primitive sees the encapsulated frame.
func (l *link) vlan(vid uint32, hasVID bool) *cond {
	c := inSet([]bpf.Instruction{ldAbs(l.offLinkType, 2)}, etherType8021Q, etherType8021AD, etherTypeQinQ)
	if hasVID {
		c = and(c, test(bpf.JumpEqual, vid, ldAbs(l.offNL, 2), bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0fff}))
	}
	l.offLinkType += 4
	l.offNL += 4
	return c
}

// etherHost matches a MAC address (Ethernet only): source at 6, destination at 0.
func etherAddr(off uint32, mac [6]byte) *cond {
	return and(test(bpf.JumpEqual, be32(mac[2:]), ldAbs(off+2, 4)),
		test(bpf.JumpEqual, uint32(mac[0])<<8|uint32(mac[1]), ldAbs(off, 2)))
}

func etherHost(mac [6]byte, dir int) *cond {
	return combineDir(dir, func() *cond { return etherAddr(6, mac) }, func() *cond { return etherAddr(0, mac) })
}

func lenCond(le bool, n uint32) *cond {
	if le {
		return not(test(bpf.JumpGreaterThan, n, bpf.LoadExtension{Num: bpf.ExtLen}))
	}
	return test(bpf.JumpGreaterOrEqual, n, bpf.LoadExtension{Num: bpf.ExtLen})
}
