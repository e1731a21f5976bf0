package gen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/netip"
	"time"
)

const (
	xactTTL      = 5 * int64(time.Second)  // transaction window of the ground truth
	unrepliedTTL = 65 * int64(time.Second) // key guard for queries without a (timely) reply
	connGuard    = 10 * int64(time.Second) // 4-tuple guard after a TCP connection ends
	tcpGiveUp    = 2 * int64(time.Second)  // a TCP client closes this long after an unanswered query
	delayedAck   = 40 * int64(time.Millisecond)
	clientZipf   = 0.6 // client activity skew
	portBase     = 49152
	portRange    = 16384
	maxTCPQ      = 5
)

// ErrExhausted is returned when no free (client, server, port, DNS ID) combination can be
// found, i.e. the address pools are too small for the rate of transactions.
var ErrExhausted = errors.New("gen: client/server address pool exhausted (raise --clients or --servers, or lower --qps)")

type tcpQuery struct {
	q        query
	qmsg     [maxQueryLen + 2]byte
	qlen     int // with the 2-byte prefix
	tq       int64
	seq      uint32
	key      uint64
	hasReply bool
	rp       reply
	rmsg     [maxReplyLen + 2]byte
	rlen     int // with the 2-byte prefix
	an       int
	trStart  int64
	nseg     int
	segOff   [3]int
	segLen   [3]int
	segTs    [3]int64
	sseq     uint32
	end      int64 // completion (max segment time)
	ackTs    int64 // client ACK of the reply
}

type retrans struct {
	ts   int64
	q    int // query index
	seg  int // -1: the query segment, else a reply segment
	orig int64
}

type generator struct {
	cfg       Config
	r         rng
	zones     []zoneWire
	revZone   zoneWire
	floodZone zoneWire
	names     zipf
	clients   zipf
	qtCum     []float64
	qtTypes   []uint16
	startSec  uint64
	start     int64
	res       int64 // timestamp resolution in ns
	clock     float64
	now       int64

	out   *output
	pend  pendHeap
	seq   uint64
	store slotStore
	keys  keyTable
	err   error

	f     flow
	frame [2048]byte
	qbuf  [maxQueryLen]byte
	rbuf  [maxReplyLen]byte
	dgram [maxReplyLen + udpLen]byte
	tcpq  [maxTCPQ]tcpQuery
	order [maxTCPQ]int
	rtx   []retrans
	seg   tcpSeg

	// counters
	t          Truth
	rcodes     [16]uint64
	qtypes     [256]uint64
	fwdSeen    []uint64
	revSeen    []uint64
	normalPkts int
	floodDone  uint64
	malDone    int
}

// Write generates the capture described by cfg into w and returns its ground truth. Output is
// buffered internally (1 MiB); w receives complete writes and is not closed.
func Write(w io.Writer, cfg Config) (Truth, error) {
	if err := cfg.Validate(); err != nil {
		return Truth{}, err
	}
	g := newGenerator(cfg)
	out, err := newOutput(bufio.NewWriterSize(w, 1<<20), cfg.Format)
	if err != nil {
		return Truth{}, err
	}
	g.out = out
	for g.err == nil && g.arrival() {
	}
	g.flushUntil(math.MaxInt64)
	if g.err == nil {
		if err := out.flush(); err != nil {
			g.err = fmt.Errorf("gen: flush: %w", err)
		}
	}
	return g.truth(), g.err
}

func newGenerator(cfg Config) *generator {
	g := &generator{cfg: cfg, r: newRNG(cfg.Seed)}
	for _, z := range cfg.Zones {
		g.zones = append(g.zones, makeZone(z))
	}
	g.revZone = makeZone("10.in-addr.arpa")
	g.floodZone = makeZone(cfg.FloodZone)
	g.names = newZipf(cfg.Names, cfg.Zipf)
	g.clients = newZipf(cfg.Clients, clientZipf)
	total := 0.0
	for _, q := range cfg.QTypes {
		total += q.Weight
		g.qtCum = append(g.qtCum, total)
		g.qtTypes = append(g.qtTypes, q.Type)
	}
	g.res = 1
	if cfg.Format == FormatPcap {
		g.res = 1000
	}
	g.start = cfg.Start.UnixNano() / g.res * g.res
	g.startSec = uint64(cfg.Start.Unix())
	g.fwdSeen = make([]uint64, (cfg.Names+63)/64)
	g.revSeen = make([]uint64, (cfg.Names+63)/64)

	// Size the key table for the keys expected to be live at once so that steady state never
	// grows it: unanswered/late queries (65 s), TCP 4-tuples (10 s after close), in-flight ones.
	med := float64(cfg.LatencyMedian) / 1e9
	pLate := 0.5 * math.Erfc(math.Log(5/med)/(math.Max(cfg.LatencySigma, 1e-9)*math.Sqrt2))
	meanLat := math.Min(med*math.Exp(cfg.LatencySigma*cfg.LatencySigma/2), 30)
	live := cfg.QPS * (65*(cfg.Timeout+pLate) + cfg.TCP*11 + meanLat + 0.01)
	g.keys = newKeyTable(int(math.Min(4*live, 1<<20))) // grows on demand beyond 16 MiB
	g.pend = make(pendHeap, 0, 1024)
	g.rtx = make([]retrans, 0, 64)
	return g
}

// dur converts a positive duration in ns to a multiple of the resolution, at least one unit,
// so that causally ordered packets never share a timestamp.
func (g *generator) dur(ns float64) int64 {
	d := int64(ns)
	if d < g.res {
		return g.res
	}
	return (d + g.res - 1) / g.res * g.res
}

// arrival generates the next client-initiated event and reports whether there was one.
func (g *generator) arrival() bool {
	cfg := &g.cfg
	normalDone := g.normalPkts >= cfg.Packets
	floodTotal := uint64(cfg.RandomSubdomain)
	malTotal := int(math.Round(cfg.Malformed * float64(cfg.Packets)))
	if normalDone && g.floodDone >= floodTotal && g.malDone >= malTotal {
		return false
	}
	progress := 1.0
	if !normalDone {
		progress = float64(g.normalPkts) / float64(cfg.Packets)
	}
	g.now = g.start + int64(g.clock)/g.res*g.res
	g.flushUntil(g.now)

	nq := 1
	switch {
	case g.floodDone < floodTotal && (normalDone || float64(g.floodDone) < progress*float64(floodTotal)):
		g.udpTxn(true)
	case !normalDone:
		before := g.t.Packets
		if g.r.chance(cfg.TCP) {
			nq = g.tcpConn()
		} else {
			g.udpTxn(false)
		}
		g.normalPkts += int(g.t.Packets - before)
	}
	onlyMalformed := normalDone && g.floodDone >= floodTotal
	meanGap := 1e9 / cfg.QPS
	for g.malDone < malTotal && (onlyMalformed || float64(g.malDone) < progress*float64(malTotal)) {
		ts := g.now + int64(g.r.float64()*meanGap)/g.res*g.res
		g.malformed(ts)
		g.malDone++
		if onlyMalformed {
			break
		}
	}
	for ; nq > 0; nq-- {
		g.clock += g.r.exp() * meanGap
	}
	return true
}

// emit counts a frame in the truth and writes it now or queues it for its time.
func (g *generator) emit(ts int64, frame []byte, v6, tcp, syn, frag bool) {
	t := &g.t
	t.Packets++
	t.Bytes += uint64(len(frame))
	if v6 {
		t.IPv6++
	} else {
		t.IPv4++
	}
	if tcp {
		t.TCP++
	} else {
		t.UDP++
	}
	if syn {
		t.TCPSyn++
	}
	if frag {
		t.IPFragments++
	}
	if t.Packets == 1 || ts < t.FirstTS {
		t.FirstTS = ts
	}
	if ts > t.LastTS {
		t.LastTS = ts
	}
	if ts <= g.now {
		g.write(ts, frame)
		return
	}
	id, buf := g.store.alloc(len(frame))
	copy(buf, frame)
	g.seq++
	g.pend.push(pending{ts: ts, seq: g.seq, slot: id, n: uint32(len(frame))})
}

func (g *generator) write(ts int64, frame []byte) {
	if g.err != nil {
		return
	}
	if err := g.out.write(ts, frame); err != nil {
		g.err = fmt.Errorf("gen: write: %w", err)
	}
}

func (g *generator) flushUntil(t int64) {
	for len(g.pend) > 0 && g.pend[0].ts <= t {
		p := g.pend.pop()
		g.write(p.ts, g.store.get(p.slot, int(p.n)))
		g.store.release(p.slot)
	}
}

func flowKey(tcp, v6, conn bool, client, server int, portOff, id uint16) uint64 {
	var k uint64
	if tcp {
		k |= 1 << 63
	}
	if v6 {
		k |= 1 << 62
	}
	if conn {
		k |= 1 << 61
	}
	return k | uint64(client)<<38 | uint64(server)<<30 | uint64(portOff)<<16 | uint64(id)
}

// pick draws a client, server, port and DNS ID whose key is free now.
func (g *generator) pick(tcp, v6, conn bool) (client, server int, portOff, id uint16, key uint64, ok bool) {
	for attempt := 0; attempt < 4096; attempt++ {
		if attempt%64 == 0 {
			client = g.clients.sample(&g.r) - 1
			server = g.r.intn(g.cfg.Servers)
		}
		v := g.r.next()
		portOff = uint16(v % portRange)
		if !conn {
			id = uint16(v >> 32)
		}
		key = flowKey(tcp, v6, conn, client, server, portOff, id)
		if g.keys.free(key, g.now) {
			return client, server, portOff, id, key, true
		}
	}
	g.err = ErrExhausted
	return
}

func (g *generator) drawQType() uint16 {
	u := g.r.float64() * g.qtCum[len(g.qtCum)-1]
	for i, c := range g.qtCum {
		if u < c {
			return g.qtTypes[i]
		}
	}
	return g.qtTypes[len(g.qtTypes)-1]
}

// pickName draws a name by popularity; PTR queries ask for the reverse name of the same rank.
func (g *generator) pickName(q *query) {
	rank := uint64(g.names.sample(&g.r) - 1)
	q.idx = rank
	if q.qtype == typePTR {
		q.kind = kindReverse
	} else {
		q.kind = kindForward
	}
}

// queryOptions draws the EDNS features of a query.
func (g *generator) queryOptions(q *query, v6 bool, client int, big bool) {
	cfg := &g.cfg
	q.ecs = g.r.chance(cfg.ECS)
	q.do = g.r.chance(cfg.DO)
	q.edns = big || q.ecs || q.do || g.r.chance(cfg.EDNS)
	q.mixCase = g.r.chance(cfg.MixedCase)
	if q.edns {
		q.udpSize = 1232
		if big || g.r.chance(0.3) {
			q.udpSize = 4096
		}
		q.ad = g.r.chance(0.5)
		q.cookie = g.r.chance(0.3)
		if q.cookie {
			q.cookieV = g.r.next()
		}
	}
	if q.ecs {
		// The subnet is a stable function of the client, as a resolver forwarding for it would send.
		h := mix64(uint64(client) ^ 0xec5)
		q.ecsV6 = v6
		q.ecsAddr = [16]byte{}
		if v6 {
			a := publicV6(h)
			q.ecsLen = 56
			copy(q.ecsAddr[:7], a[:7])
		} else {
			a := publicV4(h)
			q.ecsLen = 24
			copy(q.ecsAddr[:3], a[:3])
		}
	}
}

func (g *generator) drawRcode(rp *reply) {
	cfg := &g.cfg
	u := g.r.float64()
	switch {
	case u < cfg.NXDomain:
		rp.rcode = rcodeNXDomain
	case u < cfg.NXDomain+cfg.Refused:
		rp.rcode = rcodeRefused
	case u < cfg.NXDomain+cfg.Refused+cfg.ServFail:
		rp.rcode = rcodeServFail
	default:
		rp.rcode = rcodeNoError
		rp.nodata = g.r.chance(cfg.NoData)
	}
}

func (g *generator) latency() int64 {
	ns := g.r.lognormal(float64(g.cfg.LatencyMedian), g.cfg.LatencySigma)
	ns = math.Max(10e3, math.Min(ns, float64(maxLatency)))
	return g.dur(ns)
}

func (g *generator) countQuery(q *query, v6, tcp bool) {
	t := &g.t
	t.DNSQueries++
	g.qtypes[q.qtype&0xff]++
	g.countMsg(v6, tcp)
	if q.ecs {
		t.ECSQueries++
	}
	if q.do {
		t.DOQueries++
	}
	switch q.kind {
	case kindForward:
		g.fwdSeen[q.idx/64] |= 1 << (q.idx % 64)
	case kindReverse:
		g.revSeen[q.idx/64] |= 1 << (q.idx % 64)
	case kindFlood:
		t.FloodQueries++
	}
}

func (g *generator) countMsg(v6, tcp bool) {
	if tcp {
		g.t.DNSTCP++
	} else {
		g.t.DNSUDP++
	}
	if v6 {
		g.t.DNSIPv6++
	} else {
		g.t.DNSIPv4++
	}
}

func (g *generator) countReply(q *query, rp *reply, an int, v6, tcp bool, latency int64) {
	t := &g.t
	t.DNSReplies++
	g.rcodes[rp.rcode]++
	g.qtypes[q.qtype&0xff]++
	g.countMsg(v6, tcp)
	if rp.rcode == rcodeNoError && an == 0 {
		t.NoData++
	}
	if latency < xactTTL {
		t.Transactions++
	} else {
		t.LateReplies++
	}
}

// udpTxn writes one UDP query and (unless it times out) its reply.
func (g *generator) udpTxn(flood bool) {
	cfg := &g.cfg
	v6 := g.r.chance(cfg.IPv6)
	client, server, portOff, id, key, ok := g.pick(false, v6, false)
	if !ok {
		return
	}
	q := query{id: id}
	big := false
	if flood {
		q.kind, q.idx, q.qtype = kindFlood, g.floodDone, typeA
		g.floodDone++
	} else {
		big = g.r.chance(cfg.Fragment)
		if big {
			q.qtype = typeTXT
		} else {
			q.qtype = g.drawQType()
		}
		g.pickName(&q)
	}
	g.queryOptions(&q, v6, client, big)
	qlen := g.buildQuery(g.qbuf[:], &q)
	g.countQuery(&q, v6, false)
	f := &g.f
	g.setFlow(f, v6, client, server, portBase+portOff)
	n := g.udpFrame(g.frame[:], f, true, g.qbuf[:qlen])
	g.emit(g.now, g.frame[:n], v6, false, false, false)

	if !flood && !big && g.r.chance(cfg.Timeout) {
		g.t.Timeouts++
		g.keys.put(key, g.now+unrepliedTTL, g.now)
		return
	}
	lat := g.latency()
	var rp reply
	switch {
	case flood:
		rp.rcode = rcodeNXDomain
	case big:
		rp.bigTXT = true
	default:
		g.drawRcode(&rp)
	}
	rlen, an := g.buildReply(g.rbuf[:], g.qbuf[:qlen], &q, &rp)
	end := g.now + lat
	hdr := ip4Len
	per := mtu - ip4Len
	if v6 {
		hdr, per = ip6Len, mtu-ip6Len-frag6
	}
	per &^= 7
	if hdr+udpLen+rlen <= mtu {
		n = g.udpFrame(g.frame[:], f, false, g.rbuf[:rlen])
		g.emit(end, g.frame[:n], v6, false, false, false)
	} else {
		dl := udpDatagram(g.dgram[:], f, false, g.rbuf[:rlen])
		fid := uint32(g.r.next())
		if !v6 {
			fid &= 0xffff
		}
		for off := 0; ; off += per {
			n, more := g.fragFrame(g.frame[:], f, false, g.dgram[:dl], off, per, fid)
			g.emit(end, g.frame[:n], v6, false, false, true)
			if !more {
				break
			}
			end += g.dur(1.2e3)
		}
	}
	g.countReply(&q, &rp, an, v6, false, end-g.now)
	until := end
	if end-g.now >= xactTTL {
		until = g.now + unrepliedTTL
	}
	g.keys.put(key, until, g.now)
}

// malformed writes one garbage UDP/53 packet at ts.
func (g *generator) malformed(ts int64) {
	v6 := g.r.chance(g.cfg.IPv6)
	client, server, portOff, id, _, ok := g.pick(false, v6, false)
	if !ok {
		return
	}
	b := g.qbuf[:]
	hdr := func() int {
		b[0], b[1] = byte(id>>8), byte(id)
		b[2], b[3] = 0x01, 0x00
		b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11] = 0, 1, 0, 0, 0, 0, 0, 0
		return 12
	}
	var n int
	switch g.r.intn(4) {
	case 0: // shorter than a DNS header
		n = g.r.between(1, 11)
		for k := 0; k < n; k++ {
			b[k] = byte(g.r.next())
		}
	case 1: // a label running past the end
		n = hdr()
		l := g.r.between(20, 63)
		b[n] = byte(l)
		n++
		for k := g.r.between(0, 10); k > 0; k-- {
			b[n] = 'a' + byte(g.r.intn(26))
			n++
		}
	case 2: // compression pointer loop in the question
		n = hdr()
		b[n], b[n+1], b[n+2], b[n+3], b[n+4], b[n+5] = 0xc0, 12, 0, 1, 0, 1
		n += 6
	default: // reserved label type (0b01)
		n = hdr()
		b[n] = 0x40 | byte(g.r.intn(64))
		n++
		for k := 0; k < 8; k++ {
			b[n] = 'a' + byte(g.r.intn(26))
			n++
		}
		b[n], b[n+1], b[n+2], b[n+3], b[n+4] = 0, 0, 1, 0, 1
		n += 5
	}
	f := &g.f
	g.setFlow(f, v6, client, server, portBase+portOff)
	fl := g.udpFrame(g.frame[:], f, true, b[:n])
	g.emit(ts, g.frame[:fl], v6, false, false, false)
	g.t.Malformed++
}

func (g *generator) truth() Truth {
	t := g.t
	t.Rcodes = map[string]uint64{}
	for rc, name := range rcodeNames {
		t.Rcodes[name] = g.rcodes[rc]
	}
	t.QTypes = map[string]uint64{}
	for qt, name := range qtypeNames {
		if g.qtypes[qt&0xff] > 0 {
			t.QTypes[name] = g.qtypes[qt&0xff]
		}
	}
	var d uint64
	for _, w := range g.fwdSeen {
		d += uint64(bits.OnesCount64(w))
	}
	for _, w := range g.revSeen {
		d += uint64(bits.OnesCount64(w))
	}
	t.DistinctQNames = d + t.FloodQueries
	for j := 0; j < g.cfg.Servers; j++ {
		v4, _ := serverAddrs(j)
		t.Servers = append(t.Servers, netip.AddrFrom4(v4).String())
	}
	for j := 0; j < g.cfg.Servers; j++ {
		_, v6 := serverAddrs(j)
		t.Servers = append(t.Servers, netip.AddrFrom16(v6).String())
	}
	return t
}
