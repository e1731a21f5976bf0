package bpf

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Test traffic: network-layer packets (IPv4, IPv6, ARP, others) built with gopacket, then
// wrapped in every supported link layer and written as pcap files for tcpdump to read.

type l3pkt struct {
	name      string
	etherType uint16
	data      []byte
	capLen    int // >0: the capture keeps only this many bytes of the network layer
	// Ethernet framing extras.
	dst, src net.HardwareAddr
	tags     []vlanTag
}

type vlanTag struct {
	tpid uint16
	vid  uint16
}

var (
	macA     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macB     = net.HardwareAddr{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}
	macBcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	macMDNS  = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}
	macV6All = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0x01}
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func dnsPayload(t testing.TB, id uint16, response bool, name string) []byte {
	d := &layers.DNS{ID: id, QR: response, RD: true, OpCode: layers.DNSOpCodeQuery,
		Questions: []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	if response {
		d.RA = true
		d.Answers = []layers.DNSResourceRecord{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 300, IP: net.IPv4(192, 0, 2, 7)}}
	}
	return serialize(t, d)
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

func ip6(src, dst string, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

func udpL(sp, dp uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
}

func tcpL(sp, dp uint16, syn, ack, psh bool) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), SYN: syn, ACK: ack, PSH: psh, Seq: 1000, Window: 65535, DataOffset: 5}
}

// rawIPv6 builds an IPv6 packet whose payload (extension headers included) is given as bytes.
func rawIPv6(t testing.TB, src, dst string, next layers.IPProtocol, payload []byte) []byte {
	return serialize(t, ip6(src, dst, next), gopacket.Payload(payload))
}

func testL3(t testing.TB) []l3pkt {
	v4 := func(name string, ls ...gopacket.SerializableLayer) l3pkt {
		return l3pkt{name: name, etherType: 0x0800, data: serialize(t, ls...)}
	}
	v6 := func(name string, ls ...gopacket.SerializableLayer) l3pkt {
		return l3pkt{name: name, etherType: 0x86dd, data: serialize(t, ls...)}
	}
	q := dnsPayload(t, 0x1234, false, "example.com")
	r := dnsPayload(t, 0x1234, true, "example.com")

	frag1 := ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP)
	frag1.Flags = layers.IPv4MoreFragments
	frag2 := ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP)
	frag2.FragOffset = 185
	withOpts := ip4("10.0.0.7", "10.0.0.2", layers.IPProtocolUDP)
	withOpts.IHL = 6
	withOpts.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	df := ip4("172.16.5.5", "172.16.9.9", layers.IPProtocolTCP)
	df.Flags = layers.IPv4DontFragment

	arpBody := func(op uint16, srcIP, dstIP string) *layers.ARP {
		return &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: macA, SourceProtAddress: net.ParseIP(srcIP).To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(dstIP).To4()}
	}
	// UDP header + DNS bytes used as the payload of extension-header tests.
	udpBytes := func(sp, dp uint16, payload []byte) []byte {
		b := make([]byte, 8, 8+len(payload))
		binary.BigEndian.PutUint16(b[0:], sp)
		binary.BigEndian.PutUint16(b[2:], dp)
		binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
		return append(b, payload...)
	}
	fragHdr := func(next byte, offset uint16, more bool) []byte {
		fo := offset << 3
		if more {
			fo |= 1
		}
		b := []byte{next, 0, 0, 0, 0, 0, 0x12, 0x34}
		binary.BigEndian.PutUint16(b[2:], fo)
		return b
	}
	hopByHop := []byte{17, 0, 1, 4, 0, 0, 0, 0}                    // next header UDP, PadN option
	sctp := []byte{0x13, 0x88, 0x00, 0x35, 0, 0, 0, 1, 0, 0, 0, 0} // 5000 -> 53

	big := make([]byte, 1200)
	copy(big, q)

	pk := []l3pkt{
		v4("v4 udp dns query", ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP), udpL(40000, 53), gopacket.Payload(q)),
		v4("v4 udp dns reply", ip4("10.0.0.2", "10.0.0.1", layers.IPProtocolUDP), udpL(53, 40000), gopacket.Payload(r)),
		v4("v4 tcp dns syn", ip4("10.0.0.1", "10.0.0.3", layers.IPProtocolTCP), tcpL(40001, 53, true, false, false)),
		v4("v4 tcp dns synack", ip4("10.0.0.3", "10.0.0.1", layers.IPProtocolTCP), tcpL(53, 40001, true, true, false)),
		v4("v4 tcp http", ip4("192.168.1.10", "192.168.1.1", layers.IPProtocolTCP), tcpL(51000, 80, false, true, true), gopacket.Payload("GET / HTTP/1.1\r\n\r\n")),
		v4("v4 mdns", ip4("192.168.1.20", "224.0.0.251", layers.IPProtocolUDP), udpL(5353, 5353), gopacket.Payload(q)),
		v4("v4 udp 53000", ip4("10.1.2.3", "10.1.2.4", layers.IPProtocolUDP), udpL(53000, 1053), gopacket.Payload(q)),
		v4("v4 dhcp broadcast", ip4("0.0.0.0", "255.255.255.255", layers.IPProtocolUDP), udpL(68, 67), gopacket.Payload(make([]byte, 40))),
		v4("v4 icmp echo", ip4("10.0.0.1", "8.8.8.8", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}),
		v4("v4 icmp reply", ip4("8.8.8.8", "10.0.0.1", layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0), Id: 1, Seq: 1}),
		v4("v4 igmp", ip4("192.168.1.20", "224.0.0.22", layers.IPProtocolIGMP), gopacket.Payload([]byte{0x22, 0, 0xf9, 0x02, 0, 0, 0, 0})),
		v4("v4 first fragment", frag1, udpL(40002, 53), gopacket.Payload(big[:600])),
		v4("v4 later fragment", frag2, gopacket.Payload([]byte{0, 53, 0, 53, 0, 20, 0, 0, 1, 2, 3, 4})),
		v4("v4 options udp", withOpts, udpL(40003, 53), gopacket.Payload(q)),
		v4("v4 sctp", ip4("10.0.0.9", "10.0.0.2", layers.IPProtocolSCTP), gopacket.Payload(sctp)),
		v4("v4 gre", ip4("10.9.9.9", "10.8.8.8", layers.IPProtocolGRE), gopacket.Payload([]byte{0, 0, 0x08, 0, 0x45, 0})),
		v4("v4 tcp https df", df, tcpL(44321, 443, false, true, false)),
		v4("v4 ntp", ip4("10.0.0.1", "10.0.0.5", layers.IPProtocolUDP), udpL(123, 123), gopacket.Payload(make([]byte, 48))),
		v4("v4 same src dst port 53", ip4("10.0.0.2", "10.0.0.2", layers.IPProtocolUDP), udpL(53, 53), gopacket.Payload(q)),
		v4("v4 big dns", ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP), udpL(40004, 53), gopacket.Payload(big)),
		v6("v6 udp dns query", ip6("2001:db8::1", "2001:db8::53", layers.IPProtocolUDP), udpL(40000, 53), gopacket.Payload(q)),
		v6("v6 udp dns reply", ip6("2001:db8::53", "2001:db8::1", layers.IPProtocolUDP), udpL(53, 40000), gopacket.Payload(r)),
		v6("v6 tcp dns syn", ip6("2001:db8::1", "2001:db8::53", layers.IPProtocolTCP), tcpL(40001, 53, true, false, false)),
		v6("v6 tcp https", ip6("2001:db8:1::10", "2001:db8:2::20", layers.IPProtocolTCP), tcpL(50000, 443, false, true, false)),
		v6("v6 icmp6 echo", ip6("fe80::1", "ff02::1", layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, gopacket.Payload([]byte{0, 1, 0, 1})),
		v6("v6 icmp6 ns", ip6("fe80::2", "ff02::1:ff00:1", layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)}, gopacket.Payload(make([]byte, 20))),
		v6("v6 mdns", ip6("fe80::3", "ff02::fb", layers.IPProtocolUDP), udpL(5353, 5353), gopacket.Payload(q)),
		{name: "v6 frag udp first", etherType: 0x86dd, data: rawIPv6(t, "2001:db8::1", "2001:db8::53", 44, append(fragHdr(17, 0, true), udpBytes(40005, 53, q)...))},
		{name: "v6 frag tcp later", etherType: 0x86dd, data: rawIPv6(t, "2001:db8::1", "2001:db8::53", 44, append(fragHdr(6, 100, false), 0, 53, 0, 53, 1, 2, 3, 4))},
		{name: "v6 hop-by-hop udp", etherType: 0x86dd, data: rawIPv6(t, "2001:db8::1", "2001:db8::53", 0, append(append([]byte(nil), hopByHop...), udpBytes(40006, 53, q)...))},
		{name: "v6 sctp", etherType: 0x86dd, data: rawIPv6(t, "2001:db8::9", "2001:db8::53", 132, sctp)},
		{name: "arp request", etherType: 0x0806, data: serialize(t, arpBody(1, "10.0.0.1", "10.0.0.2")), dst: macBcast},
		{name: "arp reply", etherType: 0x0806, data: serialize(t, arpBody(2, "10.0.0.2", "10.0.0.1"))},
		{name: "rarp", etherType: 0x8035, data: serialize(t, arpBody(3, "10.0.0.5", "10.0.0.1"))},
		{name: "lldp", etherType: 0x88cc, data: []byte{0x02, 0x07, 0x04, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0}},
	}
	// Truncated captures: the frame is cut inside the IPv4 header, the UDP header and the
	// IPv6 header (tcpdump rejects a frame as soon as a load falls outside it).
	cut := func(p l3pkt, n int) l3pkt {
		p.name += " cut"
		p.capLen = n
		return p
	}
	pk = append(pk, cut(byName(pk, "v4 udp dns query"), 16), cut(byName(pk, "v4 udp dns query"), 22),
		cut(byName(pk, "v6 udp dns query"), 30), cut(byName(pk, "v4 big dns"), 200))
	// Ethernet addressing variety.
	for i := range pk {
		switch {
		case pk[i].dst != nil:
		case pk[i].name == "v4 mdns":
			pk[i].dst = macMDNS
		case pk[i].name == "v4 dhcp broadcast":
			pk[i].dst = macBcast
		case pk[i].etherType == 0x86dd && pk[i].data[24] == 0xff:
			pk[i].dst = macV6All
		case i%2 == 0:
			pk[i].dst, pk[i].src = macB, macA
		default:
			pk[i].dst, pk[i].src = macA, macB
		}
		if pk[i].src == nil {
			pk[i].src = macA
		}
	}
	return pk
}

func byName(ps []l3pkt, name string) l3pkt {
	for _, p := range ps {
		if p.name == name {
			return p
		}
	}
	panic("no test packet " + name)
}

// vlanL3 returns tagged Ethernet-only variants.
func vlanL3(base []l3pkt) []l3pkt {
	tagged := func(p l3pkt, tags ...vlanTag) l3pkt {
		p.name += " vlan"
		p.tags = tags
		return p
	}
	b := func(name string) l3pkt { return byName(base, name) }
	return []l3pkt{
		tagged(b("v4 udp dns query"), vlanTag{0x8100, 100}),
		tagged(b("v4 udp dns reply"), vlanTag{0x8100, 100}),
		tagged(b("v6 udp dns query"), vlanTag{0x8100, 200}),
		tagged(b("v4 tcp dns syn"), vlanTag{0x88a8, 300}, vlanTag{0x8100, 100}),
		tagged(b("arp request"), vlanTag{0x9100, 5}),
		tagged(b("v4 tcp http"), vlanTag{0x8100, 0}),
		tagged(b("v4 icmp echo"), vlanTag{0x8100, 4095}),
		tagged(b("v4 first fragment"), vlanTag{0x8100, 100}),
		tagged(b("v4 later fragment"), vlanTag{0x8100, 100}),
		tagged(b("v6 frag udp first"), vlanTag{0x8100, 200}, vlanTag{0x8100, 201}),
		tagged(b("v4 udp dns query cut"), vlanTag{0x8100, 100}),
	}
}

type frame struct {
	data    []byte
	wireLen int
}

func ethFrame(p l3pkt) []byte {
	b := append(append([]byte(nil), p.dst...), p.src...)
	for _, tg := range p.tags {
		b = binary.BigEndian.AppendUint16(b, tg.tpid)
		b = binary.BigEndian.AppendUint16(b, 0x2000|tg.vid) // PCP 1, so the mask matters
	}
	b = binary.BigEndian.AppendUint16(b, p.etherType)
	return append(b, p.data...)
}

func sllFrame(p l3pkt) []byte {
	b := []byte{0, 0, 0, 1, 0, 6}
	b = append(b, p.src...)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, p.etherType)
	return append(b, p.data...)
}

func sll2Frame(p l3pkt) []byte {
	b := binary.BigEndian.AppendUint16(nil, p.etherType)
	b = append(b, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6)
	b = append(b, p.src...)
	b = append(b, 0, 0)
	return append(b, p.data...)
}

// linkCapture describes one generated capture file.
type linkCapture struct {
	name     string
	linkType uint32
	frames   []frame
}

func wrap(ps []l3pkt, hdr func(l3pkt) []byte, keep func(l3pkt) bool) []frame {
	var out []frame
	for _, p := range ps {
		if keep != nil && !keep(p) {
			continue
		}
		full := hdr(p)
		fr := frame{data: full, wireLen: len(full)}
		if p.capLen > 0 {
			fr.data = full[:len(full)-len(p.data)+p.capLen]
		}
		out = append(out, fr)
	}
	return out
}

func isIP(p l3pkt) bool { return p.etherType == 0x0800 || p.etherType == 0x86dd }

// generatedCaptures builds one capture per supported link type.
func generatedCaptures(t testing.TB) []linkCapture {
	base := testL3(t)
	eth := append(append([]l3pkt(nil), base...), vlanL3(base)...)
	afFrame := func(order binary.AppendByteOrder, v6afs []uint32) func(l3pkt) []byte {
		n := 0
		return func(p l3pkt) []byte {
			af := uint32(2)
			if p.etherType == 0x86dd {
				af = v6afs[n%len(v6afs)]
				n++
			}
			return append(order.AppendUint32(nil, af), p.data...)
		}
	}
	raw := func(p l3pkt) []byte { return append([]byte(nil), p.data...) }
	return []linkCapture{
		{"ethernet", LinkTypeEthernet, wrap(eth, ethFrame, nil)},
		{"sll", LinkTypeLinuxSLL, wrap(base, sllFrame, nil)},
		{"sll2", LinkTypeSLL2, wrap(base, sll2Frame, nil)},
		{"raw", LinkTypeRaw, wrap(base, raw, isIP)},
		// Little-endian AF values (the file is little-endian), including Linux's AF_INET6 (10),
		// which tcpdump does not treat as IPv6.
		{"null", LinkTypeNull, wrap(base, afFrame(binary.LittleEndian, []uint32{24, 28, 30, 10}), isIP)},
		{"loop", LinkTypeLoop, wrap(base, afFrame(binary.BigEndian, []uint32{24, 28, 30, 10}), isIP)},
		{"ipv4", LinkTypeIPv4, wrap(base, raw, func(p l3pkt) bool { return p.etherType == 0x0800 })},
		{"ipv6", LinkTypeIPv6, wrap(base, raw, func(p l3pkt) bool { return p.etherType == 0x86dd })},
	}
}

// frameTime gives frame i a unique timestamp so tcpdump's output can be mapped back to input
// frame numbers.
func frameTime(i int) time.Time { return time.Unix(1_600_000_000+int64(i), 0) }

func writeCapture(t testing.TB, path string, c linkCapture) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(262144, layers.LinkType(c.linkType)); err != nil {
		t.Fatal(err)
	}
	for i, fr := range c.frames {
		ci := gopacket.CaptureInfo{Timestamp: frameTime(i), CaptureLength: len(fr.data), Length: fr.wireLen}
		if err := w.WritePacket(ci, fr.data); err != nil {
			t.Fatal(err)
		}
	}
}

// readCapture reads a pcap file; frames keep their wire length.
func readCapture(t testing.TB, path string) (uint32, []frame) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	var out []frame
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, frame{data: append([]byte(nil), data...), wireLen: ci.Length})
	}
	return uint32(r.LinkType()), out
}
