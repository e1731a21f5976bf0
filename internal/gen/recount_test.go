package gen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/miekg/dns"
)

// This file re-reads a generated capture with gopacket (decoding, IPv4 defragmentation,
// checksum recomputation) and miekg/dns (message unpacking) and recounts the ground truth
// from what is on the wire, independently of the generator's bookkeeping. TCP streams are
// reassembled by sequence number, IPv6 fragments by offset.

type frame struct {
	ts   int64
	data []byte
}

// readCapture returns the frames of a pcap or pcapng capture and the timestamp resolution.
func readCapture(t testing.TB, data []byte) ([]frame, time.Duration) {
	t.Helper()
	type src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		LinkType() layers.LinkType
	}
	var s src
	res := time.Nanosecond
	if len(data) >= 4 && binary.LittleEndian.Uint32(data) == 0x0a0d0d0a {
		r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("pcapng reader: %v", err)
		}
		s = r
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("pcap reader: %v", err)
		}
		if r.Resolution() == gopacket.TimestampResolutionMicrosecond {
			res = time.Microsecond
		}
		s = r
	}
	if s.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", s.LinkType())
	}
	var out []frame
	for {
		d, ci, err := s.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read packet %d: %v", len(out), err)
		}
		if ci.CaptureLength != ci.Length || ci.CaptureLength != len(d) {
			t.Fatalf("packet %d: caplen %d len %d data %d", len(out), ci.CaptureLength, ci.Length, len(d))
		}
		out = append(out, frame{ts: ci.Timestamp.UnixNano(), data: d})
	}
	return out, res
}

type dnsRec struct {
	ts       int64
	idx      int
	tcp, v6  bool
	src, dst netip.AddrPort
	data     []byte
}

type halfKey struct{ src, dst netip.AddrPort }

type tcpSegRec struct {
	seq  uint32
	data []byte
	ts   int64
	idx  int
}

type half struct {
	v6     bool
	isn    uint32
	hasSYN bool
	segs   map[uint32]tcpSegRec
}

type v6fragKey struct {
	src, dst netip.Addr
	id       uint32
}

type v6frag struct {
	off  int
	more bool
	data []byte
}

type recountStats struct {
	orphans    int      // replies without a query
	keyReuse   int      // a query key reused while still open
	reserialOK int      // frames whose headers re-serialized identically
	msgs       []dnsRec // every DNS payload, in order of completion
}

// xkey identifies a transaction the way a matcher would.
type xkey struct {
	tcp            bool
	client, server netip.AddrPort
	id             uint16
}

// recount recomputes a Truth from the capture.
func recount(t testing.TB, frames []frame) (Truth, recountStats) {
	t.Helper()
	var tr Truth
	var st recountStats
	tr.Rcodes = map[string]uint64{"NOERROR": 0, "NXDOMAIN": 0, "SRVFAIL": 0, "REFUSED": 0}
	tr.QTypes = map[string]uint64{}

	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		ip6f    layers.IPv6Fragment
		udp     layers.UDP
		tcp     layers.TCP
		payload gopacket.Payload
		decoded []gopacket.LayerType
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &ip6f, &udp, &tcp, &payload)
	parser.IgnoreUnsupported = true
	defrag := ip4defrag.NewIPv4Defragmenter()
	v6frags := map[v6fragKey][]v6frag{}
	halves := map[halfKey]*half{}
	var msgs []dnsRec
	sopts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	sbuf := gopacket.NewSerializeBuffer()

	for i, f := range frames {
		tr.Packets++
		tr.Bytes += uint64(len(f.data))
		if i == 0 || f.ts < tr.FirstTS {
			tr.FirstTS = f.ts
		}
		tr.LastTS = max(tr.LastTS, f.ts)
		if err := parser.DecodeLayers(f.data, &decoded); err != nil {
			t.Fatalf("frame %d: decode: %v", i, err)
		}
		var (
			v6      bool
			proto   layers.IPProtocol
			isFrag  bool
			src     netip.Addr
			dst     netip.Addr
			hasUDP  bool
			hasTCP  bool
			netLyr  gopacket.NetworkLayer
			ipLayer gopacket.SerializableLayer
		)
		for _, lt := range decoded {
			switch lt {
			case layers.LayerTypeIPv4:
				proto = ip4.Protocol
				isFrag = ip4.Flags&layers.IPv4MoreFragments != 0 || ip4.FragOffset != 0
				src, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
				dst, _ = netip.AddrFromSlice(ip4.DstIP.To4())
				netLyr, ipLayer = &ip4, &ip4
			case layers.LayerTypeIPv6:
				v6 = true
				proto = ip6.NextHeader
				src, _ = netip.AddrFromSlice(ip6.SrcIP)
				dst, _ = netip.AddrFromSlice(ip6.DstIP)
				netLyr, ipLayer = &ip6, &ip6
			case layers.LayerTypeIPv6Fragment:
				proto = ip6f.NextHeader
				isFrag = true
			case layers.LayerTypeUDP:
				hasUDP = true
			case layers.LayerTypeTCP:
				hasTCP = true
			}
		}
		if netLyr == nil {
			tr.Other++
			continue
		}
		if v6 {
			tr.IPv6++
		} else {
			tr.IPv4++
		}
		switch proto {
		case layers.IPProtocolUDP:
			tr.UDP++
		case layers.IPProtocolTCP:
			tr.TCP++
		default:
			tr.Other++
		}
		if isFrag {
			tr.IPFragments++
		}

		// Headers and checksums: gopacket re-serializes the decoded layers with fresh
		// lengths and checksums; the frame must be byte-identical (plus Ethernet padding).
		if !isFrag && (hasUDP || hasTCP) {
			var l4 gopacket.SerializableLayer = &udp
			pl := udp.Payload
			if hasTCP {
				if err := tcp.SetNetworkLayerForChecksum(netLyr); err != nil {
					t.Fatal(err)
				}
				l4, pl = &tcp, tcp.Payload
			} else if err := udp.SetNetworkLayerForChecksum(netLyr); err != nil {
				t.Fatal(err)
			}
			if err := gopacket.SerializeLayers(sbuf, sopts, &eth, ipLayer, l4, gopacket.Payload(pl)); err != nil {
				t.Fatalf("frame %d: serialize: %v", i, err)
			}
			want := sbuf.Bytes()
			if len(f.data) < len(want) || !bytes.Equal(f.data[:len(want)], want) ||
				len(f.data) > len(want) && (len(f.data) != 60 || !bytes.Equal(f.data[len(want):], make([]byte, 60-len(want)))) {
				t.Fatalf("frame %d: differs from its re-serialization\n got %x\nwant %x", i, f.data, want)
			}
			st.reserialOK++
		}

		switch {
		case hasTCP:
			if tcp.SYN {
				tr.TCPSyn++
			}
			k := halfKey{netip.AddrPortFrom(src, uint16(tcp.SrcPort)), netip.AddrPortFrom(dst, uint16(tcp.DstPort))}
			h := halves[k]
			if h != nil && tcp.SYN && h.hasSYN {
				msgs = finishHalf(t, k, h, msgs)
				h = nil
			}
			if h == nil {
				h = &half{v6: v6, segs: map[uint32]tcpSegRec{}}
				halves[k] = h
			}
			if tcp.SYN {
				h.isn, h.hasSYN = tcp.Seq, true
			}
			if len(tcp.Payload) > 0 {
				if old, ok := h.segs[tcp.Seq]; ok {
					if !bytes.Equal(old.data, tcp.Payload) {
						t.Fatalf("frame %d: segment %d resent with different bytes", i, tcp.Seq)
					}
					tr.TCPRetransmits++
				} else {
					h.segs[tcp.Seq] = tcpSegRec{seq: tcp.Seq, data: append([]byte(nil), tcp.Payload...), ts: f.ts, idx: i}
				}
			}
		case hasUDP && !isFrag:
			msgs = append(msgs, dnsRec{ts: f.ts, idx: i, v6: v6,
				src: netip.AddrPortFrom(src, uint16(udp.SrcPort)), dst: netip.AddrPortFrom(dst, uint16(udp.DstPort)),
				data: append([]byte(nil), udp.Payload...)})
		case isFrag && !v6:
			in := ip4
			in.Payload = append([]byte(nil), ip4.Payload...)
			out, err := defrag.DefragIPv4WithTimestamp(&in, time.Unix(0, f.ts))
			if err != nil {
				t.Fatalf("frame %d: defrag: %v", i, err)
			}
			if out != nil {
				msgs = append(msgs, udpFromDatagram(t, i, f.ts, out, out.Payload, src, dst, false))
			}
		case isFrag && v6:
			k := v6fragKey{src, dst, ip6f.Identification}
			v6frags[k] = append(v6frags[k], v6frag{off: int(ip6f.FragmentOffset) * 8, more: ip6f.MoreFragments, data: append([]byte(nil), ip6f.Payload...)})
			if d := reassemble6(v6frags[k]); d != nil {
				delete(v6frags, k)
				nl := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
				msgs = append(msgs, udpFromDatagram(t, i, f.ts, nl, d, src, dst, true))
			}
		}
	}
	if len(v6frags) > 0 {
		t.Errorf("%d IPv6 datagrams never completed", len(v6frags))
	}

	// TCP: per direction and connection (a SYN starts a new one: 4-tuples are reused).
	for k, h := range halves {
		msgs = finishHalf(t, k, h, msgs)
	}

	// DNS: unpack every message, in capture order of completion, and match transactions.
	sort.SliceStable(msgs, func(a, b int) bool {
		return msgs[a].ts < msgs[b].ts || msgs[a].ts == msgs[b].ts && msgs[a].idx < msgs[b].idx
	})
	st.msgs = msgs
	open := map[xkey]int64{}
	names := map[string]bool{}
	for _, m := range msgs {
		var msg dns.Msg
		if err := msg.Unpack(m.data); err != nil {
			if m.tcp || m.dst.Port() != 53 {
				t.Fatalf("frame %d: unpack: %v", m.idx, err)
			}
			tr.Malformed++
			continue
		}
		if len(msg.Question) != 1 {
			t.Fatalf("frame %d: %d questions", m.idx, len(msg.Question))
		}
		q := msg.Question[0]
		names[strings.ToLower(q.Name)] = true
		tr.QTypes[dns.TypeToString[q.Qtype]]++
		if m.tcp {
			tr.DNSTCP++
		} else {
			tr.DNSUDP++
		}
		if m.v6 {
			tr.DNSIPv6++
		} else {
			tr.DNSIPv4++
		}
		if !msg.Response {
			tr.DNSQueries++
			if strings.HasSuffix(strings.ToLower(q.Name), ".victim.example.") {
				tr.FloodQueries++
			}
			if opt := msg.IsEdns0(); opt != nil {
				if opt.Do() {
					tr.DOQueries++
				}
				for _, o := range opt.Option {
					if _, ok := o.(*dns.EDNS0_SUBNET); ok {
						tr.ECSQueries++
					}
				}
			}
			k := xkey{m.tcp, m.src, m.dst, msg.Id}
			if _, dup := open[k]; dup {
				st.keyReuse++
			}
			open[k] = m.ts
			continue
		}
		tr.DNSReplies++
		rc := dns.RcodeToString[msg.Rcode]
		if rc == "SERVFAIL" {
			rc = "SRVFAIL"
		}
		tr.Rcodes[rc]++
		if msg.Rcode == dns.RcodeSuccess && len(msg.Answer) == 0 {
			tr.NoData++
		}
		k := xkey{m.tcp, m.dst, m.src, msg.Id}
		qts, ok := open[k]
		if !ok {
			st.orphans++
			continue
		}
		delete(open, k)
		if m.ts-qts < int64(5*time.Second) {
			tr.Transactions++
		} else {
			tr.LateReplies++
		}
	}
	tr.Timeouts = uint64(len(open))
	tr.DistinctQNames = uint64(len(names))
	return tr, st
}

// finishHalf orders one direction of a connection by sequence number from ISN+1 and cuts
// messages by their length prefix; a message completes with the latest segment carrying its
// bytes.
func finishHalf(t testing.TB, k halfKey, h *half, msgs []dnsRec) []dnsRec {
	t.Helper()
	if !h.hasSYN {
		t.Fatalf("TCP %v→%v: no SYN", k.src, k.dst)
	}
	segs := make([]tcpSegRec, 0, len(h.segs))
	for _, s := range h.segs {
		segs = append(segs, s)
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a].seq-h.isn < segs[b].seq-h.isn })
	var stream []byte
	var endTs []int64 // per byte: timestamp and frame of the segment that carried it
	var endIdx []int
	next := h.isn + 1
	for _, s := range segs {
		if s.seq != next {
			t.Fatalf("TCP %v→%v: gap or overlap at seq %d (want %d)", k.src, k.dst, s.seq-h.isn, next-h.isn)
		}
		stream = append(stream, s.data...)
		for range s.data {
			endTs = append(endTs, s.ts)
			endIdx = append(endIdx, s.idx)
		}
		next += uint32(len(s.data))
	}
	for off := 0; off < len(stream); {
		if off+2 > len(stream) {
			t.Fatalf("TCP %v→%v: dangling bytes", k.src, k.dst)
		}
		l := int(binary.BigEndian.Uint16(stream[off:]))
		if off+2+l > len(stream) {
			t.Fatalf("TCP %v→%v: truncated message", k.src, k.dst)
		}
		var ts int64
		idx := 0
		for b := off; b < off+2+l; b++ {
			if endTs[b] > ts || endTs[b] == ts && endIdx[b] > idx {
				ts, idx = endTs[b], endIdx[b]
			}
		}
		msgs = append(msgs, dnsRec{ts: ts, idx: idx, tcp: true, v6: h.v6, src: k.src, dst: k.dst, data: stream[off+2 : off+2+l]})
		off += 2 + l
	}
	return msgs
}

// udpFromDatagram checks a reassembled UDP datagram's checksum through gopacket and returns
// its DNS payload.
func udpFromDatagram(t testing.TB, idx int, ts int64, nl gopacket.NetworkLayer, d []byte, src, dst netip.Addr, v6 bool) dnsRec {
	t.Helper()
	var u layers.UDP
	if err := u.DecodeFromBytes(d, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("frame %d: reassembled UDP: %v", idx, err)
	}
	if int(u.Length) != len(d) {
		t.Fatalf("frame %d: UDP length %d, datagram %d", idx, u.Length, len(d))
	}
	want := u.Checksum
	if err := u.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, &u, gopacket.Payload(u.Payload)); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(buf.Bytes()[6:]); got != want {
		t.Fatalf("frame %d: reassembled UDP checksum %04x, recomputed %04x", idx, want, got)
	}
	return dnsRec{ts: ts, idx: idx, v6: v6, src: netip.AddrPortFrom(src, uint16(u.SrcPort)), dst: netip.AddrPortFrom(dst, uint16(u.DstPort)),
		data: append([]byte(nil), u.Payload...)}
}

// reassemble6 returns the datagram once the fragments cover it contiguously, else nil.
func reassemble6(fs []v6frag) []byte {
	s := append([]v6frag(nil), fs...)
	sort.Slice(s, func(a, b int) bool { return s[a].off < s[b].off })
	var d []byte
	for i, f := range s {
		if f.off != len(d) {
			return nil
		}
		d = append(d, f.data...)
		if !f.more {
			if i != len(s)-1 {
				return nil
			}
			return d
		}
	}
	return nil
}
