package decode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// exp is what a test expects of a decoded frame, written from how the frame was built.
type exp struct {
	l3        L3
	l4        L4
	proto     uint8
	sport     uint16
	dport     uint16
	flags     uint8
	payload   []byte
	frag      bool
	fragOff   uint16
	fragMore  bool
	fragID    uint32
	truncated bool
}

type decodeCase struct {
	name  string
	lt    LinkType
	frame []byte
	// gp is the gopacket link type used for the cross-check; noOracle skips it (gopacket cannot
	// decode the framing, or decodes it differently by design, as noted per case).
	gp       layers.LinkType
	noOracle bool
	want     exp
	err      error // ErrMalformed / ErrUnsupportedLink, or nil
}

func decodeCases(t testing.TB) []decodeCase {
	q := dnsQuery(t, "www.example.com", 0xbeef)
	small := []byte{1, 2, 3, 4}
	tcpSyn := tcpL(40000, 53, 1000, 0)
	tcpSyn.SYN = true
	tcpSyn.Options = []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}
	tcpData := tcpL(53, 40000, 7777, 1001)
	tcpData.PSH, tcpData.ACK = true, true
	lenPrefixed := append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)

	ip4opt := ip4L(layers.IPProtocolTCP)
	ip4opt.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}

	udpFrame := ser(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q))
	udpIPv4 := ser(t, ip4L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q))
	udpIPv6 := ser(t, ip6L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q))

	// IPv6 extension headers by hand (RFC 8200 §4): Hop-by-Hop and Destination Options with a
	// PadN option, a type-4 (SRH-like) Routing header with no segments left, then AH (RFC 4302:
	// length in 4-byte units minus 2).
	hbh := []byte{60, 0, 1, 4, 0, 0, 0, 0}
	dst := []byte{43, 0, 1, 4, 0, 0, 0, 0}
	rt := []byte{51, 0, 4, 0, 0, 0, 0, 0}
	ah := []byte{17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	chain := cat(hbh, dst, rt, ah)
	udpBytes := ser(t, udpL(5353, 53), gopacket.Payload(q))
	ip6chain := ip6L(0)
	v6chain := ser(t, ethL(layers.EthernetTypeIPv6), ip6chain, gopacket.Payload(cat(chain, udpBytes)))

	// Fragments of one UDP datagram: 48 bytes (UDP header + 40) then the rest.
	dgram := ser(t, udpL(53, 5353), gopacket.Payload(dnsReply(t, "frag.example", 3)))
	f4a := ip4L(layers.IPProtocolUDP)
	f4a.Flags, f4a.Id = layers.IPv4MoreFragments, 0xabcd
	f4b := ip4L(layers.IPProtocolUDP)
	f4b.FragOffset, f4b.Id = 6, 0xabcd
	frag4first := ser(t, ethL(layers.EthernetTypeIPv4), f4a, gopacket.Payload(dgram[:48]))
	frag4last := ser(t, ethL(layers.EthernetTypeIPv4), f4b, gopacket.Payload(dgram[48:]))
	frag6first := ser(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolIPv6Fragment),
		&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, MoreFragments: true, Identification: 0xdeadbeef}, gopacket.Payload(dgram[:48]))
	frag6last := ser(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolIPv6Fragment),
		&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: 6, Identification: 0xdeadbeef}, gopacket.Payload(dgram[48:]))
	atomic := ser(t, ip6L(layers.IPProtocolIPv6Fragment),
		&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, Identification: 7}, udpL(5353, 53), gopacket.Payload(q))

	// UDP whose length field (8+4) is shorter than the IP payload (8+10): the field trims.
	udpShortLen := ser(t, ip4L(layers.IPProtocolUDP), gopacket.Payload([]byte{0x14, 0xe9, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))

	tso := ser(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), tcpData, gopacket.Payload(lenPrefixed))
	binary.BigEndian.PutUint16(tso[14+2:], 0)

	vlan3 := ser(t, ethL(layers.EthernetTypeQinQ),
		&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeQinQ},
		&layers.Dot1Q{VLANIdentifier: 200, Type: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 300, Type: layers.EthernetTypeIPv4},
		ip4L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q))
	// 0x9100 (pre-standard QinQ) is unknown to gopacket, so this frame has no oracle.
	vlan9100 := ser(t, ethL(0x9100),
		&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 20, Type: layers.EthernetTypeIPv4},
		ip4L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q))

	arp := ser(t, ethL(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: macA, SourceProtAddress: v4a,
		DstHwAddress: make([]byte, 6), DstProtAddress: v4b})
	lldp := cat(ser(t, ethL(layers.EthernetTypeLinkLayerDiscovery)), []byte{0x02, 0x07, 0x04})
	stp := ser(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeLLC},
		&layers.LLC{DSAP: 0x42, SSAP: 0x42, Control: 3}, gopacket.Payload(make([]byte, 35)))
	snap := ser(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeLLC},
		&layers.LLC{DSAP: 0xAA, SSAP: 0xAA, Control: 3}, &layers.SNAP{OrganizationalCode: []byte{0, 0, 0}, Type: layers.EthernetTypeIPv4},
		ip4L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q))

	pppoe := ser(t, ethL(layers.EthernetTypePPPoESession), &layers.PPPoE{Version: 1, Type: 1, Code: layers.PPPoECodeSession, SessionId: 9},
		&layers.PPP{PPPType: layers.PPPTypeIPv4}, ip4L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q))
	mpls := ser(t, ethL(layers.EthernetTypeMPLSUnicast), &layers.MPLS{Label: 100, TTL: 64}, &layers.MPLS{Label: 200, StackBottom: true, TTL: 64},
		ip6L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q))

	icmp4 := ser(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}, gopacket.Payload(small))
	icmp6 := ser(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, gopacket.Payload(small))
	esp := ser(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolESP), gopacket.Payload([]byte{0, 0, 1, 0, 0, 0, 0, 1, 9, 9, 9, 9}))
	noNext := ser(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolNoNextHeader))

	udpDNS := exp{l3: L3IPv4, l4: L4UDP, proto: 17, sport: 5353, dport: 53, payload: q}
	udpDNS6 := udpDNS
	udpDNS6.l3 = L3IPv6

	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	be32b := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

	return []decodeCase{
		{name: "eth/ipv4/udp dns", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: udpFrame, want: udpDNS},
		{name: "eth/ipv4/udp padded to 60 bytes", lt: LinkEthernet, gp: layers.LinkTypeEthernet,
			frame: ser(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolUDP), udpL(1, 2), gopacket.Payload(small)),
			want:  exp{l3: L3IPv4, l4: L4UDP, proto: 17, sport: 1, dport: 2, payload: small}},
		{name: "eth/ipv4 options/tcp syn options", lt: LinkEthernet, gp: layers.LinkTypeEthernet,
			frame: ser(t, ethL(layers.EthernetTypeIPv4), ip4opt, tcpSyn),
			want:  exp{l3: L3IPv4, l4: L4TCP, proto: 6, sport: 40000, dport: 53, flags: TCPSyn, payload: []byte{}}},
		{name: "eth/ipv4/tcp psh ack dns", lt: LinkEthernet, gp: layers.LinkTypeEthernet,
			frame: ser(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), tcpData, gopacket.Payload(lenPrefixed)),
			want:  exp{l3: L3IPv4, l4: L4TCP, proto: 6, sport: 53, dport: 40000, flags: TCPPsh | TCPAck, payload: lenPrefixed}},
		{name: "eth/ipv4 TSO total length 0", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: tso,
			want: exp{l3: L3IPv4, l4: L4TCP, proto: 6, sport: 53, dport: 40000, flags: TCPPsh | TCPAck, payload: lenPrefixed}},
		{name: "eth/dot1q/ipv6/udp", lt: LinkEthernet, gp: layers.LinkTypeEthernet,
			frame: ser(t, ethL(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeIPv6},
				ip6L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q)),
			want: udpDNS6},
		{name: "eth/qinq 88a8+8100/ipv4/tcp", lt: LinkEthernet, gp: layers.LinkTypeEthernet,
			frame: ser(t, ethL(layers.EthernetTypeQinQ), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeDot1Q},
				&layers.Dot1Q{VLANIdentifier: 8, Type: layers.EthernetTypeIPv4}, ip4L(layers.IPProtocolTCP), tcpData, gopacket.Payload(lenPrefixed)),
			want: exp{l3: L3IPv4, l4: L4TCP, proto: 6, sport: 53, dport: 40000, flags: TCPPsh | TCPAck, payload: lenPrefixed}},
		{name: "eth/three stacked tags", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: vlan3, want: udpDNS},
		{name: "eth/9100+8100 tags", lt: LinkEthernet, noOracle: true, frame: vlan9100, want: udpDNS},
		{name: "802.3/llc/snap/ipv4/udp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: snap, want: udpDNS},
		{name: "802.3/llc stp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: stp, want: exp{}},
		{name: "eth/arp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: arp, want: exp{}},
		{name: "eth/lldp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: lldp, want: exp{}},
		{name: "eth/pppoe/ppp/ipv4/udp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: pppoe, want: udpDNS},
		{name: "eth/mpls x2/ipv6/udp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: mpls, want: udpDNS6},
		{name: "eth/ipv4/icmp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: icmp4,
			want: exp{l3: L3IPv4, l4: L4Other, proto: 1, payload: icmp4[34 : 34+8+4]}},
		{name: "eth/ipv6/icmpv6", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: icmp6,
			want: exp{l3: L3IPv6, l4: L4Other, proto: 58, payload: icmp6[54:]}},
		{name: "eth/ipv6/esp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: esp,
			want: exp{l3: L3IPv6, l4: L4Other, proto: 50, payload: esp[54:]}},
		{name: "eth/ipv6/no next header", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: noNext,
			want: exp{l3: L3IPv6, l4: L4Other, proto: 59, payload: []byte{}}},
		{name: "eth/ipv6 hbh+dst+routing+ah/udp", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: v6chain, want: udpDNS6},
		{name: "sll/ipv4/udp", lt: LinkLinuxSLL, gp: layers.LinkTypeLinuxSLL, frame: cat(sllHeader(0x0800), udpIPv4), want: udpDNS},
		{name: "sll/vlan/ipv6/udp", lt: LinkLinuxSLL, gp: layers.LinkTypeLinuxSLL,
			frame: cat(sllHeader(0x8100), []byte{0, 5, 0x86, 0xdd}, udpIPv6), want: udpDNS6},
		{name: "sll/arp", lt: LinkLinuxSLL, gp: layers.LinkTypeLinuxSLL, frame: cat(sllHeader(0x0806), arp[14:]), want: exp{}},
		{name: "sll2/ipv6/udp", lt: LinkLinuxSLL2, gp: layers.LinkTypeLinuxSLL2, frame: cat(sll2Header(0x86dd), udpIPv6), want: udpDNS6},
		{name: "sll2/ipv4/udp", lt: LinkLinuxSLL2, gp: layers.LinkTypeLinuxSLL2, frame: cat(sll2Header(0x0800), udpIPv4), want: udpDNS},
		{name: "null little-endian AF_INET", lt: LinkNull, gp: layers.LinkTypeNull, frame: cat(le32(2), udpIPv4), want: udpDNS},
		{name: "null big-endian AF_INET", lt: LinkNull, gp: layers.LinkTypeNull, frame: cat(be32b(2), udpIPv4), want: udpDNS},
		{name: "null AF_INET6 linux 10", lt: LinkNull, gp: layers.LinkTypeNull, frame: cat(le32(10), udpIPv6), want: udpDNS6},
		{name: "null AF_INET6 bsd 24", lt: LinkNull, gp: layers.LinkTypeNull, frame: cat(le32(24), udpIPv6), want: udpDNS6},
		{name: "null AF_INET6 freebsd 28 big-endian", lt: LinkNull, gp: layers.LinkTypeNull, frame: cat(be32b(28), udpIPv6), want: udpDNS6},
		{name: "null AF_INET6 darwin 30", lt: LinkNull, gp: layers.LinkTypeNull, frame: cat(le32(30), udpIPv6), want: udpDNS6},
		{name: "null unknown family", lt: LinkNull, noOracle: true, frame: cat(le32(7), udpIPv4), want: exp{}},
		{name: "loop AF_INET network order", lt: LinkLoop, gp: layers.LinkTypeLoop, frame: cat(be32b(2), udpIPv4), want: udpDNS},
		{name: "loop AF_INET6 24", lt: LinkLoop, gp: layers.LinkTypeLoop, frame: cat(be32b(24), udpIPv6), want: udpDNS6},
		{name: "raw 101 ipv4", lt: LinkRaw, gp: layers.LinkTypeRaw, frame: udpIPv4, want: udpDNS},
		{name: "raw 101 ipv6", lt: LinkRaw, gp: layers.LinkTypeRaw, frame: udpIPv6, want: udpDNS6},
		{name: "raw DLT 12", lt: LinkDLTRaw12, gp: layers.LinkTypeRaw, frame: udpIPv6, want: udpDNS6},
		{name: "raw DLT 14", lt: LinkDLTRaw14, gp: layers.LinkTypeRaw, frame: udpIPv4, want: udpDNS},
		{name: "ipv4 228", lt: LinkIPv4, gp: layers.LinkTypeRaw, frame: udpIPv4, want: udpDNS},
		{name: "ipv6 229", lt: LinkIPv6, gp: layers.LinkTypeRaw, frame: udpIPv6, want: udpDNS6},
		{name: "udp length trims", lt: LinkRaw, gp: layers.LinkTypeRaw, frame: udpShortLen,
			want: exp{l3: L3IPv4, l4: L4UDP, proto: 17, sport: 5353, dport: 53, payload: []byte{1, 2, 3, 4}}},

		{name: "ipv4 first fragment", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: frag4first,
			want: exp{l3: L3IPv4, l4: L4UDP, proto: 17, sport: 53, dport: 5353, payload: dgram[8:48], frag: true, fragMore: true, fragID: 0xabcd}},
		{name: "ipv4 last fragment", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: frag4last,
			want: exp{l3: L3IPv4, l4: L4UDP, proto: 17, payload: dgram[48:], frag: true, fragOff: 48, fragID: 0xabcd}},
		{name: "ipv6 first fragment", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: frag6first,
			want: exp{l3: L3IPv6, l4: L4UDP, proto: 17, sport: 53, dport: 5353, payload: dgram[8:48], frag: true, fragMore: true, fragID: 0xdeadbeef}},
		{name: "ipv6 last fragment", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: frag6last,
			want: exp{l3: L3IPv6, l4: L4UDP, proto: 17, payload: dgram[48:], frag: true, fragOff: 48, fragID: 0xdeadbeef}},
		// gopacket treats an atomic fragment as a fragment; RFC 6946 says it is a whole packet.
		{name: "ipv6 atomic fragment", lt: LinkRaw, noOracle: true, frame: atomic, want: udpDNS6},

		{name: "snaplen cuts udp payload", lt: LinkEthernet, gp: layers.LinkTypeEthernet, frame: udpFrame[:60],
			want: exp{l3: L3IPv4, l4: L4UDP, proto: 17, sport: 5353, dport: 53, payload: udpFrame[42:60], truncated: true}},
		{name: "snaplen cuts tcp header", lt: LinkEthernet, gp: layers.LinkTypeEthernet,
			frame: ser(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), tcpData, gopacket.Payload(lenPrefixed))[:14+20+10],
			want:  exp{l3: L3IPv4, l4: L4TCP, proto: 6, sport: 53, dport: 40000, truncated: true}},
		// gopacket gives up on the chain without naming the header that did not fit.
		{name: "snaplen cuts ipv6 extension header", lt: LinkEthernet, noOracle: true, frame: v6chain[:14+40+12],
			want: exp{l3: L3IPv6, l4: L4Other, proto: 60, truncated: true}},
		{name: "snaplen cuts ipv6 udp payload", lt: LinkRaw, gp: layers.LinkTypeRaw, frame: udpIPv6[:50],
			want: exp{l3: L3IPv6, l4: L4UDP, proto: 17, sport: 5353, dport: 53, payload: udpIPv6[48:50], truncated: true}},

		{name: "short ethernet", lt: LinkEthernet, noOracle: true, frame: udpFrame[:13], err: ErrMalformed},
		{name: "short vlan tag", lt: LinkEthernet, noOracle: true, frame: vlan3[:16], err: ErrMalformed},
		{name: "short sll", lt: LinkLinuxSLL, noOracle: true, frame: sllHeader(0x0800)[:15], err: ErrMalformed},
		{name: "short sll2", lt: LinkLinuxSLL2, noOracle: true, frame: sll2Header(0x0800)[:19], err: ErrMalformed},
		{name: "short null", lt: LinkNull, noOracle: true, frame: []byte{2, 0}, err: ErrMalformed},
		{name: "short ipv4 header", lt: LinkEthernet, noOracle: true, frame: udpFrame[:14+19], err: ErrMalformed},
		{name: "ipv4 IHL < 5", lt: LinkRaw, noOracle: true, frame: patch(udpIPv4, 0, 0x44), err: ErrMalformed},
		{name: "ipv4 options beyond frame", lt: LinkRaw, noOracle: true, frame: patch(udpIPv4[:40], 0, 0x4f), err: ErrMalformed},
		{name: "ipv4 total length < IHL", lt: LinkRaw, noOracle: true, frame: patch(udpIPv4, 3, 10), err: ErrMalformed},
		{name: "bad ip version", lt: LinkRaw, noOracle: true, frame: patch(udpIPv4, 0, 0x55), err: ErrMalformed},
		{name: "ipv4 link with ipv6", lt: LinkIPv4, noOracle: true, frame: udpIPv6, err: ErrMalformed},
		{name: "empty raw frame", lt: LinkRaw, noOracle: true, frame: nil, err: ErrMalformed},
		{name: "short ipv6 header", lt: LinkRaw, noOracle: true, frame: udpIPv6[:39], err: ErrMalformed},
		{name: "udp length < 8", lt: LinkRaw, noOracle: true, frame: patch(udpIPv4, 20+5, 5), err: ErrMalformed},
		{name: "udp header beyond ip payload", lt: LinkRaw, noOracle: true,
			frame: ser(t, ip4L(layers.IPProtocolUDP), gopacket.Payload([]byte{0, 1, 0, 2})), err: ErrMalformed},
		{name: "tcp data offset < 5", lt: LinkEthernet, noOracle: true,
			frame: patch(ser(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), tcpData), 14+20+12, 0x40), err: ErrMalformed},
		{name: "tcp data offset beyond payload", lt: LinkEthernet, noOracle: true,
			frame: patch(ser(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), tcpData), 14+20+12, 0xf0), err: ErrMalformed},
		{name: "tcp header beyond ip payload", lt: LinkRaw, noOracle: true,
			frame: ser(t, ip4L(layers.IPProtocolTCP), gopacket.Payload(make([]byte, 12))), err: ErrMalformed},
		{name: "ipv6 extension beyond payload", lt: LinkRaw, noOracle: true,
			frame: ser(t, ip6L(layers.IPProtocolIPv6Destination), gopacket.Payload([]byte{17, 1, 0, 0, 0, 0, 0, 0})), err: ErrMalformed},
		{name: "ipv6 chain too long", lt: LinkRaw, noOracle: true,
			frame: ser(t, ip6L(layers.IPProtocolIPv6Destination), gopacket.Payload(repeatExt(9)), udpL(1, 2)), err: ErrMalformed},
		{name: "ipv6 two fragment headers", lt: LinkRaw, noOracle: true,
			frame: ser(t, ip6L(layers.IPProtocolIPv6Fragment),
				&layers.IPv6Fragment{NextHeader: layers.IPProtocolIPv6Fragment, MoreFragments: true, Identification: 1},
				&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, MoreFragments: true, Identification: 2}, udpL(1, 2)), err: ErrMalformed},
		{name: "unsupported link", lt: 147, noOracle: true, frame: udpFrame, err: ErrUnsupportedLink},
	}
}

// repeatExt returns n Destination Options headers, each pointing at the next and the last at UDP.
func repeatExt(n int) []byte {
	var b []byte
	for i := range n {
		next := byte(60)
		if i == n-1 {
			next = 17
		}
		b = append(b, next, 0, 1, 4, 0, 0, 0, 0)
	}
	return b
}

func patch(b []byte, at int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[at] = v
	return c
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			p := Packet{TS: 42, WireLen: 0}
			err := d.Decode(tc.lt, tc.frame, &p)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if p.TS != 42 || p.CapLen != len(tc.frame) || p.WireLen != len(tc.frame) {
				t.Fatalf("TS/CapLen/WireLen = %d/%d/%d", p.TS, p.CapLen, p.WireLen)
			}
			w := tc.want
			if p.L3 != w.l3 || p.L4 != w.l4 || p.IPProto != w.proto {
				t.Fatalf("L3/L4/proto = %v/%v/%d, want %v/%v/%d", p.L3, p.L4, p.IPProto, w.l3, w.l4, w.proto)
			}
			switch w.l3 {
			case L3IPv4:
				if !bytes.Equal(p.SrcAddr(), v4a) || !bytes.Equal(p.DstAddr(), v4b) {
					t.Fatalf("addresses %x > %x", p.SrcAddr(), p.DstAddr())
				}
			case L3IPv6:
				if !bytes.Equal(p.SrcAddr(), v6a) || !bytes.Equal(p.DstAddr(), v6b) {
					t.Fatalf("addresses %x > %x", p.SrcAddr(), p.DstAddr())
				}
			}
			if p.SrcPort != w.sport || p.DstPort != w.dport || p.TCPFlags != w.flags {
				t.Fatalf("ports %d>%d flags %#x, want %d>%d %#x", p.SrcPort, p.DstPort, p.TCPFlags, w.sport, w.dport, w.flags)
			}
			if !bytes.Equal(p.Payload, w.payload) {
				t.Fatalf("payload %x\nwant    %x", p.Payload, w.payload)
			}
			if p.Fragment != w.frag || p.FragOffset != w.fragOff || p.FragMore != w.fragMore || p.FragID != w.fragID {
				t.Fatalf("fragment %v off %d more %v id %#x, want %v %d %v %#x", p.Fragment, p.FragOffset, p.FragMore, p.FragID, w.frag, w.fragOff, w.fragMore, w.fragID)
			}
			if p.Truncated != w.truncated {
				t.Fatalf("Truncated = %v", p.Truncated)
			}
			if !tc.noOracle {
				compareView(t, gopacketView(tc.gp, tc.frame), &p)
			}
		})
	}
}

// TestDecodeResetsPacket checks that a reused Packet carries nothing over from the previous frame.
func TestDecodeResetsPacket(t *testing.T) {
	var d Decoder
	cases := decodeCases(t)
	var p Packet
	for _, tc := range cases {
		for _, tc2 := range cases[:5] {
			p = Packet{}
			_ = d.Decode(tc.lt, tc.frame, &p)
			_ = d.Decode(tc2.lt, tc2.frame, &p)
			var fresh Packet
			_ = d.Decode(tc2.lt, tc2.frame, &fresh)
			p.CapLen, p.WireLen, fresh.CapLen, fresh.WireLen = 0, 0, 0, 0
			if p.L3 != fresh.L3 || p.L4 != fresh.L4 || p.Src != fresh.Src || p.Dst != fresh.Dst || p.SrcPort != fresh.SrcPort ||
				p.Fragment != fresh.Fragment || p.Truncated != fresh.Truncated || !bytes.Equal(p.Payload, fresh.Payload) {
				t.Fatalf("%s then %s: stale fields", tc.name, tc2.name)
			}
		}
	}
}

func TestDecodeKeepsCallerLengths(t *testing.T) {
	var d Decoder
	frame := ser(t, ip4L(layers.IPProtocolUDP), udpL(1, 2), gopacket.Payload([]byte{1}))
	p := Packet{TS: 1, CapLen: 1000, WireLen: 1500}
	if err := d.Decode(LinkRaw, frame, &p); err != nil {
		t.Fatal(err)
	}
	if p.CapLen != 1000 || p.WireLen != 1500 {
		t.Fatalf("CapLen/WireLen overwritten: %d/%d", p.CapLen, p.WireLen)
	}
}

func TestDecodeAllocs(t *testing.T) {
	var d Decoder
	var p Packet
	for _, tc := range decodeCases(t) {
		allocs := testing.AllocsPerRun(100, func() {
			_ = d.Decode(tc.lt, tc.frame, &p)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per Decode", tc.name, allocs)
		}
	}
}

func TestLinkType(t *testing.T) {
	tests := []struct {
		lt   LinkType
		ok   bool
		name string
	}{
		{LinkNull, true, "NULL(0)"}, {LinkEthernet, true, "ETHERNET(1)"}, {LinkDLTRaw12, true, "RAW(12)"},
		{LinkDLTRaw14, true, "RAW(14)"}, {LinkRaw, true, "RAW(101)"}, {LinkLoop, true, "LOOP(108)"},
		{LinkLinuxSLL, true, "LINUX_SLL(113)"}, {LinkIPv4, true, "IPV4(228)"}, {LinkIPv6, true, "IPV6(229)"},
		{LinkLinuxSLL2, true, "LINUX_SLL2(276)"}, {105, false, "link type 105"}, {1 << 20, false, "link type 1048576"},
	}
	for _, tt := range tests {
		if tt.lt.Supported() != tt.ok || tt.lt.String() != tt.name {
			t.Errorf("%d: Supported %v String %q", uint32(tt.lt), tt.lt.Supported(), tt.lt.String())
		}
		// The numbers must be the pcap ones gopacket knows too.
		if tt.ok && tt.lt != 12 && tt.lt != 14 && uint32(layers.LinkType(tt.lt)) != uint32(tt.lt) {
			t.Errorf("%d differs from gopacket", tt.lt)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	var d Decoder
	var p Packet
	err := d.Decode(LinkRaw, patch(ser(t, ip4L(layers.IPProtocolUDP), udpL(1, 2)), 0, 0x44), &p)
	if err == nil || err.Error() != "malformed frame: IPv4 IHL < 5" {
		t.Fatalf("err = %v", err)
	}
	err = d.Decode(147, nil, &p)
	if !errors.Is(err, ErrUnsupportedLink) || errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}
