package decode

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func benchFrames(b *testing.B) map[string][]byte {
	q := dnsQuery(b, "www.example.com", 1)
	tcp := tcpL(40000, 53, 1, 2)
	tcp.PSH, tcp.ACK = true, true
	return map[string][]byte{
		"eth-ipv4-udp-dns": ser(b, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q)),
		"eth-qinq-ipv4-udp-dns": ser(b, ethL(layers.EthernetTypeQinQ), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 8, Type: layers.EthernetTypeIPv4}, ip4L(layers.IPProtocolUDP), udpL(5353, 53), gopacket.Payload(q)),
		"eth-ipv6-tcp-dns": ser(b, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolTCP), tcp, gopacket.Payload(append([]byte{0, byte(len(q))}, q...))),
	}
}

func BenchmarkDecode(b *testing.B) {
	for name, frame := range benchFrames(b) {
		b.Run(name, func(b *testing.B) {
			var d Decoder
			var p Packet
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if err := d.Decode(LinkEthernet, frame, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGopacketParser is the baseline: gopacket's fastest decoding path
// (DecodingLayerParser, preallocated layers) on the same frames.
func BenchmarkGopacketParser(b *testing.B) {
	for name, frame := range benchFrames(b) {
		b.Run(name, func(b *testing.B) {
			var eth layers.Ethernet
			var d1 layers.Dot1Q // reused for stacked tags
			var ip4 layers.IPv4
			var ip6 layers.IPv6
			var udp layers.UDP
			var tcp layers.TCP
			var payload gopacket.Payload
			parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &d1, &ip4, &ip6, &udp, &tcp, &payload)
			parser.IgnoreUnsupported = true
			decoded := make([]gopacket.LayerType, 0, 8)
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				_ = parser.DecodeLayers(frame, &decoded)
			}
		})
	}
}

// BenchmarkDecodeCapture decodes every packet of the large reference capture from memory.
func BenchmarkDecodeCapture(b *testing.B) {
	lt, pkts := readRef(b, "dns_udp_tcp_random.pcap")
	var d Decoder
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		for i := range pkts {
			if err := d.Decode(LinkType(lt), pkts[i].data, &p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(pkts))/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N*len(pkts)), "ns/pkt")
}

// BenchmarkDefrag reassembles a 3-fragment IPv4 DNS reply (≈ 3.6 KB) per op, steady state.
func BenchmarkDefrag(b *testing.B) {
	frames := fragmentUDP(b, false, 1, 53, 5353, dnsReply(b, "bench.example", 120), 1480)
	ps := make([]Packet, len(frames))
	var d Decoder
	for i, fr := range frames {
		if err := d.Decode(LinkEthernet, fr, &ps[i]); err != nil {
			b.Fatal(err)
		}
	}
	f := NewDefragmenter(DefragConfig{})
	var out Packet
	b.ReportAllocs()
	for b.Loop() {
		for i := range ps {
			f.Add(&ps[i], &out)
		}
	}
	if f.Stats().Completed == 0 {
		b.Fatal("nothing reassembled")
	}
}
