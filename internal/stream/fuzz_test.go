package stream

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// The fuzz input is a small capture in a form the mutator can work on:
//
//	flags (1 byte) | base timestamp (8 bytes, big-endian int64 ns) | frame*
//	frame = link (1) | time delta (2, big-endian int16, × 10 ms) | caplen (2) | wire extra (1) | data
//
// The link byte indexes fuzzLinks, or is the link type itself past its end (so unsupported
// types are reached). Deltas may be negative: captures are not always in time order. Any
// int64 base is allowed because a pcapng timestamp with an offset option can be anything.
const (
	fuzzTwoPeriods = 1 << iota // 5 one-minute periods (shifts, closed buckets, windows) instead of 1
	fuzzHostSpec               // host addresses set: in/out directions
	fuzzBPF                    // a capture filter
	fuzzTinyLimits             // TCP and defragmentation limits small enough to evict
	fuzzAllGroups              // every metric group enabled
	fuzzHalfSample             // deep_sample_rate 50
)

const (
	fuzzPreamble  = 9
	fuzzFrameHdr  = 6
	fuzzMaxFrames = 1024
	fuzzTick      = 10_000_000 // ns per delta unit
)

var fuzzLinks = []decode.LinkType{decode.LinkEthernet, decode.LinkLinuxSLL, decode.LinkLinuxSLL2, decode.LinkNull,
	decode.LinkLoop, decode.LinkRaw, decode.LinkDLTRaw12, decode.LinkDLTRaw14, decode.LinkIPv4, decode.LinkIPv6}

type fuzzCase struct {
	flags  byte
	frames []frame
}

func parseFuzzInput(data []byte) fuzzCase {
	var c fuzzCase
	var pre [fuzzPreamble]byte
	copy(pre[:], data)
	data = data[min(len(data), fuzzPreamble):]
	c.flags = pre[0]
	ts := int64(binary.BigEndian.Uint64(pre[1:]))
	for len(data) >= fuzzFrameHdr && len(c.frames) < fuzzMaxFrames {
		lt := decode.LinkType(data[0])
		if int(data[0]) < len(fuzzLinks) {
			lt = fuzzLinks[data[0]]
		}
		ts += int64(int16(binary.BigEndian.Uint16(data[1:]))) * fuzzTick
		n := min(int(binary.BigEndian.Uint16(data[3:])), len(data)-fuzzFrameHdr)
		extra := int(data[5])
		frameData := data[fuzzFrameHdr : fuzzFrameHdr+n]
		data = data[fuzzFrameHdr+n:]
		c.frames = append(c.frames, frame{frameData, capture.PacketInfo{TS: ts, CapLen: n, WireLen: n + extra, Link: lt}})
	}
	return c
}

// encodeFuzzInput is parseFuzzInput's inverse, for seeds: timestamps are rounded to ticks, and
// a gap between frames beyond a delta's ±327 s is clamped (seeds have none).
func encodeFuzzInput(flags byte, frames []frame) []byte {
	out := make([]byte, fuzzPreamble)
	out[0] = flags
	var base int64
	if len(frames) > 0 {
		base = frames[0].info.TS / fuzzTick * fuzzTick
	}
	binary.BigEndian.PutUint64(out[1:], uint64(base))
	prev := base
	for _, f := range frames {
		sel := byte(f.info.Link)
		for i, lt := range fuzzLinks {
			if lt == f.info.Link {
				sel = byte(i)
			}
		}
		d := max(min((f.info.TS-prev)/fuzzTick, math.MaxInt16), math.MinInt16)
		prev += d * fuzzTick
		n := min(len(f.data), math.MaxUint16)
		out = append(out, sel, 0, 0, 0, 0, byte(min(f.info.WireLen-n, 255)))
		binary.BigEndian.PutUint16(out[len(out)-5:], uint16(int16(d)))
		binary.BigEndian.PutUint16(out[len(out)-3:], uint16(n))
		out = append(out, f.data[:n]...)
	}
	return out
}

// sliceSource replays frames as a capture source.
type sliceSource struct {
	frames []frame
	i      int
}

func (s *sliceSource) Next() ([]byte, capture.PacketInfo, error) {
	if s.i >= len(s.frames) {
		return nil, capture.PacketInfo{}, io.EOF
	}
	f := s.frames[s.i]
	s.i++
	return f.data, f.info, nil
}

func fuzzSpecs(t testing.TB, flags byte) []handler.Spec {
	t.Helper()
	cfg := config.Map{"num_periods": uint64(1), "recorded_stream": true}
	if flags&fuzzTwoPeriods != 0 {
		cfg["num_periods"] = uint64(5)
	}
	if flags&fuzzAllGroups != 0 {
		cfg["enable"] = []string{"all"}
	}
	if flags&fuzzHalfSample != 0 {
		cfg["deep_sample_rate"] = uint64(50)
	}
	var specs []handler.Spec
	for _, typ := range []string{"net", "dns", "pcap"} {
		f, ok := handler.Lookup(typ, handler.DefaultVersion)
		if !ok {
			t.Fatalf("handler %s not registered", typ)
		}
		sp, err := f(cfg)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		specs = append(specs, sp)
	}
	return specs
}

// fuzzResult is what one run of the pipeline printed, decoded as a consumer would.
type fuzzResult struct {
	stats   Stats
	buckets int              // buckets the handlers hold at the end
	doc     map[string]any   // selection name → schema → rendered object
	raw     []byte           // doc as JSON
	totals  map[string]int64 // selection name → packets.total
}

// runFuzzStream runs the frames through a stream of the net, dns and pcap handlers and renders
// every spec for every selection a client can ask for: each bucket and the merged window.
func runFuzzStream(t *testing.T, c fuzzCase, workers int) fuzzResult {
	t.Helper()
	cfg := Config{Workers: workers}
	if c.flags&fuzzHostSpec != 0 {
		hs, err := hostspec.Parse("10.0.0.0/8,127.0.0.0/8,fd00::/8,::1/128")
		if err != nil {
			t.Fatal(err)
		}
		cfg.HostSpec = hs
	}
	if c.flags&fuzzBPF != 0 {
		cfg.BPF = "udp or tcp port 53"
	}
	if c.flags&fuzzTinyLimits != 0 {
		cfg.TCP.MaxFlows, cfg.TCP.MaxSideBytes, cfg.TCP.MaxTotalBytes, cfg.TCP.MaxOOOSegments = 2, 512, 1024, 2
		cfg.Defrag.MaxDatagrams, cfg.Defrag.MaxBytes, cfg.Defrag.MaxFragments = 2, 2048, 3
	}
	specs := fuzzSpecs(t, c.flags)
	s := New(cfg, specs)
	if err := s.Run(context.Background(), &sliceSource{frames: c.frames}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	res := fuzzResult{stats: s.Stats(), doc: map[string]any{}}

	periods := specs[0].Window().NumPeriods
	var sels []metrics.Selection
	var names []string
	for b := range periods {
		sels, names = append(sels, metrics.Selection{Bucket: b}), append(names, fmt.Sprintf("bucket%d", b))
	}
	if periods > 1 {
		sels, names = append(sels, metrics.Selection{Window: periods}), append(names, "window")
	}
	for j, sel := range sels {
		out := map[string]any{}
		for i, sp := range specs {
			sink := metrics.NewJSON()
			rp, err := s.Render(i, sel, sink, res.stats.LastTS)
			var pe *metrics.PeriodError
			if errors.As(err, &pe) && sel.Window == 0 {
				continue // that bucket has not accumulated
			}
			if err != nil {
				t.Fatalf("render %s %+v: %v", sp.Schema(), sel, err)
			}
			sink.Root["period"] = rp.JSON()
			out[sp.Schema()] = sink.Root
		}
		if len(out) == 0 {
			continue
		}
		if len(out) != len(specs) {
			t.Fatalf("%s: only %d of %d handlers rendered", names[j], len(out), len(specs))
		}
		if sel.Window == 0 {
			res.buckets++
		}
		res.doc[names[j]] = out
	}

	raw, err := json.Marshal(res.doc)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if !json.Valid(raw) {
		t.Fatalf("invalid JSON: %q", raw)
	}
	res.raw = raw
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var back map[string]map[string]map[string]any
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("decoding the output: %v", err)
	}
	res.totals = map[string]int64{}
	for name, schemas := range back {
		n, ok := schemas["packets"]["total"].(json.Number)
		if !ok {
			t.Fatalf("%s: packets.total missing: %v", name, schemas["packets"])
		}
		v, err := n.Int64()
		if err != nil || v < 0 {
			t.Fatalf("%s: packets.total = %v", name, n)
		}
		res.totals[name] = v
	}
	return res
}

// checkFuzzResult checks what any input must give: every frame is accounted for once, as a
// packet counted by the net handler or as filtered, malformed or of an unsupported link.
func checkFuzzResult(t *testing.T, c fuzzCase, r fuzzResult, workers int) {
	t.Helper()
	st := r.stats
	fed := uint64(len(c.frames))
	if st.Frames != fed {
		t.Fatalf("workers=%d: Stats.Frames = %d, fed %d", workers, st.Frames, fed)
	}
	if fed == st.BPFFiltered {
		return // the handlers never started: nothing to count
	}
	counted := fed - st.BPFFiltered - st.Malformed - st.UnknownLink
	if st.BPFFiltered+st.Malformed+st.UnknownLink > fed {
		t.Fatalf("workers=%d: %+v: more frames rejected than fed", workers, st)
	}
	var sum int64
	for b := range r.buckets {
		sum += r.totals[fmt.Sprintf("bucket%d", b)]
	}
	periods := 1
	if c.flags&fuzzTwoPeriods != 0 {
		periods = 5
		if w := r.totals["window"]; w != sum {
			t.Errorf("workers=%d: window packets.total = %d, buckets add up to %d", workers, w, sum)
		}
	}
	// While no bucket has been pushed out of the ring, the buckets hold every counted frame.
	if r.buckets < periods && uint64(sum) != counted {
		t.Errorf("workers=%d: packets.total over %d buckets = %d, want %d (frames %d − filtered %d − malformed %d − unsupported %d)",
			workers, r.buckets, sum, counted, fed, st.BPFFiltered, st.Malformed, st.UnknownLink)
	}
	if uint64(sum) > counted {
		t.Errorf("workers=%d: packets.total %d exceeds the %d frames counted", workers, sum, counted)
	}
}

func FuzzStream(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := parseFuzzInput(data)
		one := runFuzzStream(t, c, 1)
		checkFuzzResult(t, c, one, 1)
		two := runFuzzStream(t, c, 2)
		checkFuzzResult(t, c, two, 2)
		// Flows are routed whole to a worker, so the split changes nothing — unless the per-
		// worker TCP limits are tiny, when two workers hold twice the flows before evicting.
		if c.flags&fuzzTinyLimits == 0 {
			// Buffer memory kept for reuse is per worker, and idle flows are dropped lazily when
			// their worker sees traffic (Expired) or at the end (Closed): memory bookkeeping, not
			// results. What the output shows of them is compared below.
			for _, st := range []*Stats{&one.stats, &two.stats} {
				st.TCP.BufferedBytes, st.TCP.Expired, st.TCP.Closed = 0, 0, 0
			}
			if one.stats != two.stats {
				t.Errorf("stats differ:\n1 worker:  %+v\n2 workers: %+v", one.stats, two.stats)
			}
			if !reflect.DeepEqual(one.doc, two.doc) {
				t.Errorf("output differs between 1 and 2 workers:\n1: %s\n2: %s", one.raw, two.raw)
			}
		}
	})
}

// fuzzSeeds: frames of the repository's sample capture, generated traffic with IP fragments
// and DNS over TCP, and hand-built frames (fragments, TCP to port 53, garbage).
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	src, err := capture.OpenFile(filepath.Join("..", "..", "testdata", "sample.pcap"))
	if err != nil {
		t.Fatalf("the repository's sample capture: %v", err)
	}
	var sample []frame
	for len(sample) < 300 {
		data, info, err := src.Next()
		if err != nil {
			break
		}
		sample = append(sample, frame{append([]byte(nil), data...), info})
	}
	src.Close()
	seeds = append(seeds, encodeFuzzInput(0, sample), encodeFuzzInput(fuzzTwoPeriods|fuzzHostSpec|fuzzAllGroups, sample[:100]))

	generated := loadGenerated(t, func(c *gen.Config) {
		c.Packets, c.Seed, c.QPS = 200, 3, 2
		c.TCP, c.IPv6, c.Fragment, c.TCPSplit, c.TCPReorder, c.TCPMulti = 0.3, 0.3, 0.2, 0.5, 0.5, 0.3
	})
	seeds = append(seeds, encodeFuzzInput(fuzzTwoPeriods, generated), encodeFuzzInput(fuzzBPF|fuzzTinyLimits, generated))

	hand := handFrames(t)
	seeds = append(seeds, encodeFuzzInput(0, hand), encodeFuzzInput(fuzzTinyLimits|fuzzHalfSample, hand))
	return seeds
}

// handFrames builds, byte by byte, a DNS query in two IPv4 fragments and a query over TCP to
// port 53 with its handshake, then some frames that are not packets at all.
func handFrames(t testing.TB) []frame {
	q := new(dns.Msg)
	q.SetQuestion("fragmented.example.com.", dns.TypeTXT)
	q.Id = 0x4242
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	const ts = int64(1_700_000_000) * 1e9
	var frames []frame
	add := func(lt decode.LinkType, dt int64, data []byte) {
		frames = append(frames, frame{data, capture.PacketInfo{TS: ts + dt*fuzzTick, CapLen: len(data), WireLen: len(data), Link: lt}})
	}
	cli, srv := [4]byte{10, 0, 0, 1}, [4]byte{192, 0, 2, 53}

	// UDP query split after 16 bytes of UDP payload (fragment offsets count 8-byte units).
	udp := udpHeader(40000, 53, wire)
	add(decode.LinkRaw, 0, ipv4(cli, srv, 17, 7, 0, true, udp[:24]))
	add(decode.LinkRaw, 1, ipv4(cli, srv, 17, 7, 3, false, udp[24:]))
	// The same fragments again in reverse order, and one that overlaps.
	add(decode.LinkRaw, 2, ipv4(cli, srv, 17, 8, 3, false, udp[24:]))
	add(decode.LinkRaw, 3, ipv4(cli, srv, 17, 8, 0, true, udp[:24]))
	add(decode.LinkRaw, 4, ipv4(cli, srv, 17, 9, 2, false, udp[16:]))

	// DNS over TCP: handshake, the length-prefixed query in two segments, FIN.
	msg := append(binary.BigEndian.AppendUint16(nil, uint16(len(wire))), wire...)
	const isn, rsn = 1000, 5000
	add(decode.LinkRaw, 10, ipv4(cli, srv, 6, 1, 0, false, tcpHeader(40001, 53, isn, 0, tcpSYN, nil)))
	add(decode.LinkRaw, 11, ipv4(srv, cli, 6, 2, 0, false, tcpHeader(53, 40001, rsn, isn+1, tcpSYN|tcpACK, nil)))
	add(decode.LinkRaw, 12, ipv4(cli, srv, 6, 3, 0, false, tcpHeader(40001, 53, isn+1, rsn+1, tcpACK|tcpPSH, msg[:5])))
	add(decode.LinkRaw, 13, ipv4(cli, srv, 6, 4, 0, false, tcpHeader(40001, 53, isn+6, rsn+1, tcpACK|tcpPSH, msg[5:])))
	add(decode.LinkRaw, 14, ipv4(cli, srv, 6, 5, 0, false, tcpHeader(40001, 53, isn+1+uint32(len(msg)), rsn+1, tcpFIN|tcpACK, nil)))

	// Not packets: empty, one byte, an IPv4 header claiming more than it has, an unsupported
	// link type, and bytes that are nothing.
	add(decode.LinkEthernet, 20, nil)
	add(decode.LinkRaw, 20, []byte{0x45})
	add(decode.LinkRaw, 20, []byte{0x45, 0, 0xff, 0xff, 0, 0, 0, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	add(147, 21, []byte("not a frame"))
	add(decode.LinkLinuxSLL2, -50, []byte("\x00\x01\x02\x03garbage garbage garbage garbage"))
	return frames
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpPSH = 0x08
	tcpACK = 0x10
)

// ipv4 builds an IPv4 header (with its checksum) in front of payload; off is in 8-byte units.
func ipv4(src, dst [4]byte, proto byte, id uint16, off uint16, more bool, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], id)
	frag := off
	if more {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8], h[9] = 64, proto
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	return append(h, payload...)
}

// udpHeader prefixes payload with a UDP header (checksum 0: none, allowed over IPv4).
func udpHeader(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// tcpHeader prefixes payload with a 20-byte TCP header (checksum left 0: nothing checks it).
func tcpHeader(sport, dport uint16, seq, ack uint32, flags byte, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = 5 << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	return append(h, payload...)
}

// TestHandFramesReachFragmentsAndTCP makes sure the hand-built seeds exercise what they are
// for. Expected counts by hand: 5 fragments; datagrams 7 and 8 are whole (in order, then
// reversed), 9 is a lone tail; the TCP connection carries one DNS message; of the last five
// frames the empty Ethernet one and the 1-byte IPv4 one are malformed, link type 147 is
// unsupported, while the IPv4 header claiming 65535 bytes is a snaplen-cut packet (decode's
// rule) and the SLL2 frame a non-IP packet, both counted.
func TestHandFramesReachFragmentsAndTCP(t *testing.T) {
	frames := handFrames(t)
	for _, workers := range []int{1, 2} {
		c := parseFuzzInput(encodeFuzzInput(0, frames))
		if len(c.frames) != len(frames) {
			t.Fatalf("round trip: %d frames, want %d", len(c.frames), len(frames))
		}
		for i := range frames {
			if string(c.frames[i].data) != string(frames[i].data) || c.frames[i].info != frames[i].info {
				t.Fatalf("frame %d: round trip %+v, want %+v", i, c.frames[i].info, frames[i].info)
			}
		}
		r := runFuzzStream(t, c, workers)
		checkFuzzResult(t, c, r, workers)
		st := r.stats
		if st.Fragments != 5 || st.Reassembled != 2 {
			t.Errorf("workers=%d: fragments %d, reassembled %d; want 5, 2", workers, st.Fragments, st.Reassembled)
		}
		if st.TCP.Messages != 1 {
			t.Errorf("workers=%d: TCP DNS messages %d, want 1", workers, st.TCP.Messages)
		}
		if st.UnknownLink != 1 || st.Malformed != 2 {
			t.Errorf("workers=%d: unsupported %d, malformed %d; want 1, 2", workers, st.UnknownLink, st.Malformed)
		}
	}
}
