package decode

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/miekg/dns"
)

// fragmentUDP builds the frames of one UDP datagram (src port sp → dst port dp, payload msg)
// fragmented into pieces of size bytes (a multiple of 8), IPv4 or IPv6, with gopacket.
func fragmentUDP(t testing.TB, v6 bool, id uint32, sp, dp uint16, msg []byte, size int) [][]byte {
	t.Helper()
	dgram := ser(t, udpL(sp, dp), gopacket.Payload(msg))
	var frames [][]byte
	for off := 0; off < len(dgram); off += size {
		end := min(off+size, len(dgram))
		more := end < len(dgram)
		if v6 {
			frames = append(frames, ser(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolIPv6Fragment),
				&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: uint16(off / 8), MoreFragments: more, Identification: id},
				gopacket.Payload(dgram[off:end])))
			continue
		}
		ip := ip4L(layers.IPProtocolUDP)
		ip.Id, ip.FragOffset = uint16(id), uint16(off/8)
		if more {
			ip.Flags = layers.IPv4MoreFragments
		}
		frames = append(frames, ser(t, ethL(layers.EthernetTypeIPv4), ip, gopacket.Payload(dgram[off:end])))
	}
	return frames
}

// feed decodes frame and adds it to f; it reports completion.
func feed(t testing.TB, f *Defragmenter, ts int64, frame []byte, out *Packet) bool {
	t.Helper()
	var d Decoder
	p := Packet{TS: ts}
	if err := d.Decode(LinkEthernet, frame, &p); err != nil {
		t.Fatalf("decode fragment: %v", err)
	}
	if !p.Fragment {
		t.Fatalf("not a fragment")
	}
	return f.Add(&p, out)
}

func checkReassembled(t testing.TB, out *Packet, v6 bool, msg []byte) {
	t.Helper()
	if out.Fragment || out.L4 != L4UDP || out.IPProto != 17 || out.SrcPort != 53 || out.DstPort != 5353 {
		t.Fatalf("reassembled header: frag %v L4 %v proto %d ports %d>%d", out.Fragment, out.L4, out.IPProto, out.SrcPort, out.DstPort)
	}
	wantL3, src, dst := L3IPv4, []byte(v4a), []byte(v4b)
	if v6 {
		wantL3, src, dst = L3IPv6, v6a, v6b
	}
	if out.L3 != wantL3 || !bytes.Equal(out.SrcAddr(), src) || !bytes.Equal(out.DstAddr(), dst) {
		t.Fatalf("reassembled addresses %v %x > %x", out.L3, out.SrcAddr(), out.DstAddr())
	}
	if !bytes.Equal(out.Payload, msg) {
		t.Fatalf("reassembled payload differs: %d bytes, want %d", len(out.Payload), len(msg))
	}
	var m dns.Msg
	if err := m.Unpack(out.Payload); err != nil {
		t.Fatalf("reassembled DNS message does not parse: %v", err)
	}
}

func TestDefragOrders(t *testing.T) {
	msg := dnsReply(t, "big.example.com", 120) // ≈ 3.6 KB: several fragments
	rng := rand.New(rand.NewPCG(1, 2))
	for _, v6 := range []bool{false, true} {
		for _, size := range []int{8, 512, 1232, 1480} {
			frames := fragmentUDP(t, v6, 0x77, 53, 5353, msg, size)
			orders := map[string][]int{"in order": seq(len(frames)), "reverse": rev(seq(len(frames)))}
			for i := range 10 {
				orders["random "+itoa(i)] = rng.Perm(len(frames))
			}
			for name, order := range orders {
				t.Run(name, func(t *testing.T) {
					f := NewDefragmenter(DefragConfig{MaxFragments: 1024})
					var out Packet
					for i, idx := range order {
						done := feed(t, f, int64(i), frames[idx], &out)
						// Duplicate every other fragment right away: duplicates never complete
						// nor spoil a datagram.
						if !done && i%2 == 0 && feed(t, f, int64(i), frames[idx], &out) {
							t.Fatalf("duplicate completed the datagram")
						}
						if done != (i == len(order)-1) {
							t.Fatalf("fragment %d/%d: complete = %v", i+1, len(order), done)
						}
					}
					checkReassembled(t, &out, v6, msg)
					if out.TS != int64(len(order)-1) {
						t.Fatalf("TS = %d, want the last fragment's", out.TS)
					}
					s := f.Stats()
					if s.Completed != 1 || s.InProgress != 0 || s.DroppedOverlap+s.DroppedInvalid+s.DroppedTooBig+s.DroppedTableFull+s.TimedOut != 0 {
						t.Fatalf("stats %+v", s)
					}
				})
			}
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func rev(s []int) []int {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	return s
}

// TestDefragInterleaved reassembles many datagrams whose fragments are shuffled together, with
// IPv4 and IPv6 sharing identifiers (different keys).
func TestDefragInterleaved(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type frag struct {
		frame []byte
		dg    int
	}
	var all []frag
	msgs := map[int][]byte{}
	for i := range 40 {
		msgs[i] = dnsReply(t, "n"+itoa(i)+".example", 20+i*3)
		for _, fr := range fragmentUDP(t, i%2 == 1, uint32(i/2), 53, 5353, msgs[i], 256) {
			all = append(all, frag{fr, i})
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	f := NewDefragmenter(DefragConfig{})
	var out Packet
	done := 0
	for i, fr := range all {
		if feed(t, f, int64(i), fr.frame, &out) {
			checkReassembled(t, &out, fr.dg%2 == 1, msgs[fr.dg])
			done++
		}
	}
	if done != 40 || f.Stats().Completed != 40 || f.Stats().InProgress != 0 {
		t.Fatalf("completed %d, stats %+v", done, f.Stats())
	}
}

// rawFrag builds one fragment frame by hand: data at byte offset off of datagram id.
func rawFrag(t testing.TB, v6 bool, id uint32, off int, more bool, data []byte) []byte {
	t.Helper()
	if v6 {
		return ser(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolIPv6Fragment),
			&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: uint16(off / 8), MoreFragments: more, Identification: id},
			gopacket.Payload(data))
	}
	ip := ip4L(layers.IPProtocolUDP)
	ip.Id, ip.FragOffset = uint16(id), uint16(off/8)
	if more {
		ip.Flags = layers.IPv4MoreFragments
	}
	return ser(t, ethL(layers.EthernetTypeIPv4), ip, gopacket.Payload(data))
}

func TestDefragDrops(t *testing.T) {
	msg := dnsReply(t, "x.example", 30)
	dgram := ser(t, udpL(53, 5353), gopacket.Payload(msg))
	for _, v6 := range []bool{false, true} {
		tests := []struct {
			name  string
			cfg   DefragConfig
			steps func() [][]byte
			ts    []int64 // per step; default step index
			check func(s DefragStats) bool
		}{
			{
				name: "overlap drops the datagram",
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 0, true, dgram[:64]), rawFrag(t, v6, 1, 56, true, dgram[56:128]),
						rawFrag(t, v6, 1, 128, false, dgram[128:])}
				},
				check: func(s DefragStats) bool { return s.DroppedOverlap == 1 && s.Completed == 0 && s.InProgress == 1 },
			},
			{
				name: "overlap with different bytes",
				steps: func() [][]byte {
					evil := append([]byte(nil), dgram[:64]...)
					evil[20] ^= 0xff
					return [][]byte{rawFrag(t, v6, 1, 0, true, dgram[:64]), rawFrag(t, v6, 1, 8, true, evil[8:64]),
						rawFrag(t, v6, 1, 64, false, dgram[64:])}
				},
				check: func(s DefragStats) bool { return s.DroppedOverlap == 1 && s.Completed == 0 },
			},
			{
				name: "exact duplicate is ignored",
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 64, false, dgram[64:]), rawFrag(t, v6, 1, 64, false, dgram[64:]),
						rawFrag(t, v6, 1, 0, true, dgram[:64])}
				},
				check: func(s DefragStats) bool { return s.Duplicates == 1 && s.Completed == 1 },
			},
			{
				name: "beyond 65535 bytes",
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 0, true, dgram[:64]), rawFrag(t, v6, 1, 65528, false, make([]byte, 100))}
				},
				check: func(s DefragStats) bool { return s.DroppedTooBig == 1 && s.InProgress == 0 },
			},
			{
				name: "middle fragment not a multiple of 8",
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 0, true, dgram[:60])}
				},
				check: func(s DefragStats) bool { return s.DroppedInvalid == 1 && s.InProgress == 0 },
			},
			{
				name: "two different last fragments",
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 64, false, dgram[64:]), rawFrag(t, v6, 1, 64, false, dgram[64:100])}
				},
				check: func(s DefragStats) bool { return s.DroppedInvalid == 1 && s.InProgress == 0 },
			},
			{
				name: "data beyond the last fragment",
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 64, false, dgram[64:128]), rawFrag(t, v6, 1, 128, true, dgram[128:192])}
				},
				check: func(s DefragStats) bool { return s.DroppedInvalid == 1 && s.InProgress == 0 },
			},
			{
				name: "too many fragments",
				cfg:  DefragConfig{MaxFragments: 4},
				steps: func() [][]byte {
					var fs [][]byte
					for off := 0; off < 40; off += 8 {
						fs = append(fs, rawFrag(t, v6, 1, off, true, dgram[off:off+8]))
					}
					return fs
				},
				check: func(s DefragStats) bool { return s.DroppedInvalid == 1 && s.InProgress == 0 },
			},
			{
				name: "timeout in event time",
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 0, true, dgram[:64]), rawFrag(t, v6, 1, 64, false, dgram[64:])}
				},
				ts:    []int64{0, int64(31 * time.Second)},
				check: func(s DefragStats) bool { return s.TimedOut == 1 && s.Completed == 0 && s.InProgress == 1 },
			},
			{
				name: "within timeout completes",
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 0, true, dgram[:64]), rawFrag(t, v6, 1, 64, false, dgram[64:])}
				},
				ts:    []int64{0, int64(29 * time.Second)},
				check: func(s DefragStats) bool { return s.TimedOut == 0 && s.Completed == 1 },
			},
			{
				name: "table full evicts the oldest",
				cfg:  DefragConfig{MaxDatagrams: 4},
				steps: func() [][]byte {
					var fs [][]byte
					for id := range 5 {
						fs = append(fs, rawFrag(t, v6, uint32(id), 0, true, dgram[:64]))
					}
					// The second datagram is still there and completes, freeing a slot.
					fs = append(fs, rawFrag(t, v6, 1, 64, false, dgram[64:]))
					// The first was evicted: its tail starts a new, incomplete one.
					fs = append(fs, rawFrag(t, v6, 0, 64, false, dgram[64:]))
					return fs
				},
				check: func(s DefragStats) bool { return s.DroppedTableFull == 1 && s.Completed == 1 && s.InProgress == 4 },
			},
			{
				name: "memory cap evicts the oldest",
				cfg:  DefragConfig{MaxBytes: 8192},
				steps: func() [][]byte {
					var fs [][]byte
					for id := range 3 {
						fs = append(fs, rawFrag(t, v6, uint32(id), 2048, true, make([]byte, 2048)))
					}
					return fs
				},
				check: func(s DefragStats) bool {
					return s.DroppedTableFull == 1 && s.InProgress == 2 && s.BufferedBytes <= 8192
				},
			},
			{
				name: "datagram larger than the memory cap",
				cfg:  DefragConfig{MaxBytes: 4096},
				steps: func() [][]byte {
					return [][]byte{rawFrag(t, v6, 1, 8192, true, make([]byte, 8))}
				},
				check: func(s DefragStats) bool { return s.DroppedTooBig == 1 && s.InProgress == 0 && s.BufferedBytes == 0 },
			},
		}
		for _, tt := range tests {
			name := "ipv4 "
			if v6 {
				name = "ipv6 "
			}
			t.Run(name+tt.name, func(t *testing.T) {
				f := NewDefragmenter(tt.cfg)
				var out Packet
				for i, fr := range tt.steps() {
					ts := int64(i)
					if tt.ts != nil {
						ts = tt.ts[i]
					}
					if feed(t, f, ts, fr, &out) {
						checkReassembled(t, &out, v6, msg)
					}
				}
				if s := f.Stats(); !tt.check(s) {
					t.Fatalf("stats %+v", s)
				}
			})
		}
	}
}

// TestDefragIPv6ChainAfterFragment reassembles a datagram whose fragmentable part starts with a
// Destination Options header (RFC 8200 allows it): the chain is walked after reassembly.
func TestDefragIPv6ChainAfterFragment(t *testing.T) {
	msg := dnsReply(t, "dst.example", 10)
	data := cat([]byte{17, 0, 1, 4, 0, 0, 0, 0}, ser(t, udpL(53, 5353), gopacket.Payload(msg)))
	mk := func(off int, more bool, b []byte) []byte {
		return ser(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolIPv6Fragment),
			&layers.IPv6Fragment{NextHeader: layers.IPProtocolIPv6Destination, FragmentOffset: uint16(off / 8), MoreFragments: more, Identification: 9},
			gopacket.Payload(b))
	}
	f := NewDefragmenter(DefragConfig{})
	var out Packet
	if feed(t, f, 1, mk(64, false, data[64:]), &out) || !feed(t, f, 2, mk(0, true, data[:64]), &out) {
		t.Fatal("not completed")
	}
	checkReassembled(t, &out, true, msg)
}

func TestDefragRefusesNonFragments(t *testing.T) {
	f := NewDefragmenter(DefragConfig{})
	var out Packet
	p := Packet{L3: L3IPv4}
	if f.Add(&p, &out) || f.Stats().DroppedInvalid != 1 {
		t.Fatal("a non-fragment was accepted")
	}
	var d Decoder
	frame := rawFrag(t, false, 5, 0, true, make([]byte, 64))
	if err := d.Decode(LinkEthernet, frame[:50], &p); err != nil || !p.Truncated {
		t.Fatalf("decode: %v truncated %v", err, p.Truncated)
	}
	if f.Add(&p, &out) || f.Stats().DroppedInvalid != 2 || f.Stats().InProgress != 0 {
		t.Fatalf("truncated fragment accepted: %+v", f.Stats())
	}
}

func TestDefragZeroValue(t *testing.T) {
	var f Defragmenter
	var out Packet
	frames := fragmentUDP(t, false, 1, 53, 5353, dnsReply(t, "z.example", 5), 64)
	for i, fr := range frames {
		if feed(t, &f, 0, fr, &out) != (i == len(frames)-1) {
			t.Fatal("zero-value Defragmenter did not reassemble")
		}
	}
}

// TestDefragAllocs proves the steady state allocates nothing: after a warm-up, reassembling
// datagram after datagram (new ids, out of order) reuses slots and buffers.
func TestDefragAllocs(t *testing.T) {
	msg := dnsReply(t, "alloc.example", 100)
	var pkts [][]Packet
	var d Decoder
	for id := range 8 {
		frames := fragmentUDP(t, id%2 == 1, uint32(id), 53, 5353, msg, 1232)
		ps := make([]Packet, len(frames))
		for i := range frames {
			// Last fragment first: the buffer must grow to full size at once.
			if err := d.Decode(LinkEthernet, frames[len(frames)-1-i], &ps[i]); err != nil {
				t.Fatal(err)
			}
		}
		pkts = append(pkts, ps)
	}
	f := NewDefragmenter(DefragConfig{})
	var out Packet
	run := func() {
		for _, ps := range pkts {
			for i := range ps {
				f.Add(&ps[i], &out)
			}
		}
	}
	run()
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Fatalf("%v allocs per round", allocs)
	}
	if s := f.Stats(); s.Completed != 102*8 {
		t.Fatalf("stats %+v", s)
	}
}

// TestDefragIndex exercises the hash index with many keys coming and going (backward-shift
// deletion must keep every live key findable).
func TestDefragIndex(t *testing.T) {
	f := NewDefragmenter(DefragConfig{MaxDatagrams: 64})
	rng := rand.New(rand.NewPCG(5, 6))
	live := map[uint32]bool{}
	data := make([]byte, 16)
	p := Packet{L3: L3IPv4, Fragment: true, FragMore: true, FragProto: 17, FragData: data}
	var out Packet
	for range 20000 {
		id := uint32(rng.IntN(100))
		p.FragID = id
		if live[id] {
			// Completing fragment: the datagram leaves the table.
			p.FragOffset, p.FragMore = 16, false
			if !f.Add(&p, &out) {
				t.Fatalf("id %d not found", id)
			}
			delete(live, id)
			continue
		}
		if len(live) == 64 {
			continue
		}
		p.FragOffset, p.FragMore = 0, true
		copy(data, []byte{0, 1, 0, 2, 0, 16, 0, 0})
		if f.Add(&p, &out) {
			t.Fatal("first fragment completed")
		}
		live[id] = true
	}
	if s := f.Stats(); s.DroppedTableFull != 0 || s.InProgress != len(live) {
		t.Fatalf("stats %+v, live %d", s, len(live))
	}
}
