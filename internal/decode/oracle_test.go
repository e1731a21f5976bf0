package decode

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/miekg/dns"
)

// This file holds the test oracles: frames are built with gopacket's serializers (and, where
// gopacket has none, by hand from the RFC layouts) and decoded back with gopacket's full
// decoder, which the tests compare with ours field by field.

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	v4a  = net.IPv4(192, 168, 0, 10).To4()
	v4b  = net.IPv4(8, 8, 8, 8).To4()
	v6a  = net.ParseIP("2001:db8::1")
	v6b  = net.ParseIP("2001:4860:4860::8888")
)

// ser serializes layers with lengths fixed (checksums do not matter to the decoder).
func ser(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// dnsQuery returns a packed DNS query built by miekg/dns.
func dnsQuery(t testing.TB, name string, id uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dnsReply returns a packed DNS reply with n A records (n large ⇒ a message that fragments).
func dnsReply(t testing.TB, name string, n int) []byte {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m := new(dns.Msg)
	m.SetReply(q)
	for i := range n {
		rr, err := dns.NewRR(dns.Fqdn(name) + " 300 IN A 10.0." + itoa(i/250) + "." + itoa(i%250+1))
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	m.Compress = false
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func ethL(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}
}

func ip4L(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x1234, Protocol: proto, SrcIP: v4a, DstIP: v4b}
}

func ip6L(nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: nh, SrcIP: v6a, DstIP: v6b}
}

func udpL(sp, dp uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
}

func tcpL(sp, dp uint16, seq, ack uint32) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: seq, Ack: ack, Window: 1024}
}

// view is what gopacket's full decode says about a frame, in our Packet's terms.
type view struct {
	l3               L3
	src, dst         []byte
	proto            uint8
	l4               L4
	sport, dport     uint16
	flags            uint8
	seq, ack         uint32
	payload          []byte
	frag, more       bool
	fragOff          uint16
	fragID           uint32
	transportDecoded bool
}

// gopacketView decodes frame with gopacket (the first IP layer and the transport right above it;
// tunnels are not followed, as our decoder does not follow them either).
func gopacketView(lt layers.LinkType, frame []byte) view {
	pkt := gopacket.NewPacket(frame, lt, gopacket.DecodeOptions{NoCopy: true})
	var v view
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			if v.l3 != L3None {
				return v
			}
			v.l3 = L3IPv4
			v.src, v.dst = l.SrcIP.To4(), l.DstIP.To4()
			v.proto = uint8(l.Protocol)
			v.l4 = l4Of(v.proto)
			if l.Flags&layers.IPv4MoreFragments != 0 || l.FragOffset != 0 {
				v.frag, v.more, v.fragOff, v.fragID = true, l.Flags&layers.IPv4MoreFragments != 0, l.FragOffset*8, uint32(l.Id)
				if v.fragOff != 0 {
					v.payload = l.Payload
				}
			}
		case *layers.IPv6:
			if v.l3 != L3None {
				return v
			}
			v.l3 = L3IPv6
			v.src, v.dst = l.SrcIP.To16(), l.DstIP.To16()
			v.proto = uint8(l.NextHeader)
		case *layers.IPv6HopByHop:
			v.proto = uint8(l.NextHeader)
		case *layers.IPv6Destination:
			v.proto = uint8(l.NextHeader)
		case *layers.IPv6Routing:
			v.proto = uint8(l.NextHeader)
		case *layers.IPSecAH:
			v.proto = uint8(l.NextHeader)
		case *layers.IPv6Fragment:
			v.proto = uint8(l.NextHeader)
			if l.FragmentOffset != 0 || l.MoreFragments {
				v.frag, v.more, v.fragOff, v.fragID = true, l.MoreFragments, l.FragmentOffset*8, l.Identification
				if v.fragOff != 0 {
					v.payload = l.Payload
				}
			}
			v.l4 = l4Of(v.proto)
		case *layers.UDP:
			if v.transportDecoded || len(l.Contents) == 0 { // gopacket adds a layer that failed
				return v
			}
			v.transportDecoded = true
			v.proto, v.l4 = 17, L4UDP
			v.sport, v.dport = uint16(l.SrcPort), uint16(l.DstPort)
			v.payload = l.Payload
		case *layers.TCP:
			if v.transportDecoded || len(l.Contents) == 0 {
				return v
			}
			v.transportDecoded = true
			v.proto, v.l4 = 6, L4TCP
			v.sport, v.dport = uint16(l.SrcPort), uint16(l.DstPort)
			v.seq, v.ack = l.Seq, l.Ack
			v.flags = tcpFlagsOf(l)
			v.payload = l.Payload
		}
	}
	return v
}

func tcpFlagsOf(l *layers.TCP) uint8 {
	var f uint8
	for _, b := range []struct {
		on  bool
		bit uint8
	}{{l.FIN, 0x01}, {l.SYN, 0x02}, {l.RST, 0x04}, {l.PSH, 0x08}, {l.ACK, 0x10}, {l.URG, 0x20}, {l.ECE, 0x40}, {l.CWR, 0x80}} {
		if b.on {
			f |= b.bit
		}
	}
	return f
}

// compareView checks p against gopacket's view of the same frame. Fragments are compared on
// their IP fields only (gopacket does not decode a first fragment's transport header).
func compareView(t testing.TB, v view, p *Packet) {
	t.Helper()
	if p.L3 != v.l3 {
		t.Fatalf("L3 = %v, gopacket %v", p.L3, v.l3)
	}
	if v.l3 == L3None {
		if p.L4 != L4Other {
			t.Fatalf("non-IP frame has L4 %v", p.L4)
		}
		return
	}
	if !bytes.Equal(p.SrcAddr(), v.src) || !bytes.Equal(p.DstAddr(), v.dst) {
		t.Fatalf("addresses %x > %x, gopacket %x > %x", p.SrcAddr(), p.DstAddr(), v.src, v.dst)
	}
	if p.Fragment != v.frag || p.FragMore != v.more || p.FragOffset != v.fragOff || (v.frag && p.FragID != v.fragID) {
		t.Fatalf("fragment %v/%v/%d/%#x, gopacket %v/%v/%d/%#x", p.Fragment, p.FragMore, p.FragOffset, p.FragID, v.frag, v.more, v.fragOff, v.fragID)
	}
	if v.frag {
		if p.FragProto != v.proto && p.FragOffset != 0 {
			t.Fatalf("FragProto %d, gopacket %d", p.FragProto, v.proto)
		}
		if p.FragOffset != 0 && (p.L4 != v.l4 || !bytes.Equal(p.Payload, v.payload)) {
			t.Fatalf("later fragment L4 %v payload %d bytes, gopacket %v %d bytes", p.L4, len(p.Payload), v.l4, len(v.payload))
		}
		return
	}
	if p.IPProto != v.proto || p.L4 != v.l4 {
		t.Fatalf("proto %d L4 %v, gopacket %d %v", p.IPProto, p.L4, v.proto, v.l4)
	}
	if !v.transportDecoded {
		return
	}
	if p.SrcPort != v.sport || p.DstPort != v.dport {
		t.Fatalf("ports %d > %d, gopacket %d > %d", p.SrcPort, p.DstPort, v.sport, v.dport)
	}
	if p.L4 == L4TCP && (p.TCPFlags != v.flags || p.TCPSeq != v.seq || p.TCPAck != v.ack) {
		t.Fatalf("tcp flags %#x seq %d ack %d, gopacket %#x %d %d", p.TCPFlags, p.TCPSeq, p.TCPAck, v.flags, v.seq, v.ack)
	}
	if !bytes.Equal(p.Payload, v.payload) {
		t.Fatalf("payload %d bytes %x, gopacket %d bytes %x", len(p.Payload), p.Payload, len(v.payload), v.payload)
	}
}

// Hand-built headers for what gopacket cannot serialize.

func sllHeader(proto uint16) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[0:], 0) // to us
	binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(h[4:], 6) // address length
	copy(h[6:], macA)                    // address, padded to 8
	binary.BigEndian.PutUint16(h[14:], proto)
	return h
}

func sll2Header(proto uint16) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], proto)
	binary.BigEndian.PutUint32(h[4:], 3) // ifindex
	binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
	h[10] = 4                            // outgoing
	h[11] = 6
	copy(h[12:], macA)
	return h
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
