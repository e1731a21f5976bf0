package tcpflow

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// established returns a Reassembler with one open connection and the client's next sequence.
func established(cfg Config) (*Reassembler, conn, *int) {
	n := 0
	r := New(cfg, func(*Message) { n++ })
	c := newConn(1, 40000)
	for _, e := range handshake() {
		feed(r, c.pkt(1, e.client, e.flags, uint32(1+e.off), nil))
	}
	return r, c, &n
}

// steady sends msgs one packet pattern at a time; pattern says how the stream is cut and ordered.
type pattern func(r *Reassembler, c conn, seq uint32, ts int64) uint32

var (
	scratch    decode.Packet
	lifeEvents = []ev{{true, fSYN, -1, nil}, {false, fSYN | fACK, -1, nil}, {true, fACK | fPSH, 0, twoMessages[:47]},
		{false, fACK | fPSH, 0, oneMessage}, {false, fFIN | fACK, len(oneMessage), nil}, {true, fFIN | fACK, 47, nil}, {false, fACK, len(oneMessage) + 1, nil}}
	twoMessages = stream(message(1, 45), message(2, 60))
	oneMessage  = stream(message(3, 300))
)

func wholeMessages(r *Reassembler, c conn, seq uint32, ts int64) uint32 {
	p := &scratch
	c.fill(p, ts, true, fACK|fPSH, seq, twoMessages)
	r.Segment(p, p.FlowHash())
	return seq + uint32(len(twoMessages))
}

func splitMessage(r *Reassembler, c conn, seq uint32, ts int64) uint32 {
	p := &scratch
	c.fill(p, ts, true, fACK|fPSH, seq, oneMessage[:100])
	r.Segment(p, p.FlowHash())
	c.fill(p, ts, true, fACK|fPSH, seq+100, oneMessage[100:])
	r.Segment(p, p.FlowHash())
	return seq + uint32(len(oneMessage))
}

func reversedPair(r *Reassembler, c conn, seq uint32, ts int64) uint32 {
	p := &scratch
	c.fill(p, ts, true, fACK|fPSH, seq+100, oneMessage[100:])
	r.Segment(p, p.FlowHash())
	c.fill(p, ts, true, fACK|fPSH, seq, oneMessage[:100])
	r.Segment(p, p.FlowHash())
	return seq + uint32(len(oneMessage))
}

// lifecycle runs a whole short connection on a fresh port: handshake, query, reply, FINs.
func lifecycle(r *Reassembler, c conn, seq uint32, ts int64) uint32 {
	c.cport = uint16(seq)
	for _, e := range lifeEvents {
		p := &scratch
		c.fill(p, ts, e.client, e.flags, uint32(1000+1+e.off), e.data)
		r.Segment(p, p.FlowHash())
	}
	return seq + 1
}

func synFlood(r *Reassembler, c conn, seq uint32, ts int64) uint32 {
	c.caddr[0], c.caddr[1], c.caddr[2], c.caddr[3] = byte(seq>>24), byte(seq>>16), byte(seq>>8), byte(seq)
	p := &scratch
	c.fill(p, ts, true, fSYN, seq, nil)
	r.Segment(p, p.FlowHash())
	return seq + 1
}

var patterns = []struct {
	name     string
	f        pattern
	messages int
	cfg      Config
}{
	{"WholeMessages", wholeMessages, 2, Config{}},
	{"SplitMessage", splitMessage, 1, Config{}},
	{"OutOfOrder", reversedPair, 1, Config{}},
	{"ConnectionLifecycle", lifecycle, 2, Config{MaxFlows: 1000}},
	{"SYNFlood", synFlood, 0, Config{MaxFlows: 1000}},
}

// TestZeroAllocs proves the steady state allocates nothing per packet.
func TestZeroAllocs(t *testing.T) {
	for _, pt := range patterns {
		t.Run(pt.name, func(t *testing.T) {
			r, c, n := established(pt.cfg)
			seq := uint32(1)
			ts := int64(1)
			for range 5000 { // warm-up: arenas and pools reach their working size
				seq = pt.f(r, c, seq, ts)
				ts++
			}
			*n = 0
			allocs := testing.AllocsPerRun(1000, func() {
				seq = pt.f(r, c, seq, ts)
				ts++
			})
			if allocs != 0 {
				t.Errorf("%v allocations per run, want 0", allocs)
			}
			if *n != 1001*pt.messages {
				t.Errorf("%d messages, want %d", *n, 1001*pt.messages)
			}
			if err := r.check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func BenchmarkSegment(b *testing.B) {
	for _, pt := range patterns {
		b.Run(pt.name, func(b *testing.B) {
			r, c, _ := established(pt.cfg)
			seq := uint32(1)
			ts := int64(1)
			b.ReportAllocs()
			for b.Loop() {
				seq = pt.f(r, c, seq, ts)
				ts++
			}
		})
	}
}

// BenchmarkCapture replays the TCP DNS packets of the reference's mixed capture; one op is one
// packet.
func BenchmarkCapture(b *testing.B) {
	pkts := dnsOnly(loadTCP(b, "dns_udp_tcp_random.pcap"))
	hashes := make([]uint64, len(pkts))
	for i := range pkts {
		hashes[i] = pkts[i].FlowHash()
	}
	n := 0
	r := New(Config{}, func(*Message) { n++ })
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Segment(&pkts[i], hashes[i])
		if i++; i == len(pkts) {
			r.FlushAll()
			i = 0
		}
	}
	if b.N >= len(pkts) && n == 0 {
		b.Fatal("no message reassembled")
	}
}

// TestSYNFloodMemory: 2 million SYNs from random sources must not grow memory beyond the flow
// cap, and the per-flow state must be small.
func TestSYNFloodMemory(t *testing.T) {
	n := 2_000_000
	if testing.Short() {
		n = 400_000
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := New(Config{}, func(*Message) { t.Fatal("message from a SYN") })
	rng := rand.New(rand.NewPCG(3, 4))
	p := decode.Packet{L3: decode.L3IPv4, L4: decode.L4TCP, IPProto: 6, TCPFlags: fSYN, DstPort: 53}
	copy(p.Dst[:], []byte{10, 0, 0, 53})
	for i := range n {
		v := rng.Uint64()
		p.Src[0], p.Src[1], p.Src[2], p.Src[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		p.SrcPort = uint16(v >> 32)
		p.TCPSeq = uint32(v >> 40)
		p.TS = int64(i) * 1000 // 1 µs apart: nothing idles out
		r.Segment(&p, p.FlowHash())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := r.Stats()
	if st.Flows != DefaultMaxFlows || st.Open != DefaultMaxFlows || st.Evicted != uint64(n-DefaultMaxFlows) {
		t.Errorf("stats %+v", st)
	}
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	perFlow := float64(growth) / DefaultMaxFlows
	t.Logf("%d SYNs: heap +%.1f MiB, %.0f bytes per tracked flow", n, float64(growth)/(1<<20), perFlow)
	if perFlow > 200 {
		t.Errorf("%.0f bytes per tracked flow, want ≤ 200", perFlow)
	}
	if err := r.check(); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(r)
}
