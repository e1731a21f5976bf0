package gen

import "encoding/binary"

// tcpConn writes one DNS-over-TCP connection: handshake, 1-5 pipelined length-prefixed
// queries, replies (possibly split, reordered in the capture, retransmitted), ACKs and a
// client-initiated close. Timing is planned first, then every segment is built, because
// sequence and acknowledgment numbers depend on what each side has seen by then. It returns
// the number of queries, which is how far the arrival clock advances.
func (g *generator) tcpConn() int {
	cfg := &g.cfg
	r := &g.r
	v6 := r.chance(cfg.IPv6)
	client, server, portOff, _, connKey, ok := g.pick(true, v6, true)
	if !ok {
		return 1
	}
	m := 1
	if r.chance(cfg.TCPMulti) {
		m = r.between(2, maxTCPQ)
	}
	g.t.TCPConnections++
	t0 := g.now
	rtt := g.dur(r.lognormal(300e3, 0.5))
	turn := g.dur(8e3 + r.float64()*32e3)
	isnC, isnS := uint32(r.next()), uint32(r.next())
	tsC, tsS := uint32(r.next()), uint32(r.next())
	tSA := t0 + turn
	tACK := tSA + rtt

	// Queries, each with a DNS ID unused on this 4-tuple, and the server's decisions.
	cseq := isnC + 1
	t := tACK
	lastTimeout := int64(-1)
	for k := 0; k < m; k++ {
		tq := &g.tcpq[k]
		t += g.dur(1e3 + r.float64()*30e3)
		tq.tq = t
		tq.q = query{}
		for attempt := 0; ; attempt++ {
			if attempt == 4096 {
				g.err = ErrExhausted
				return 1
			}
			id := uint16(r.next())
			key := flowKey(true, v6, false, client, server, portOff, id)
			dup := false
			for j := 0; j < k; j++ {
				dup = dup || g.tcpq[j].q.id == id
			}
			if !dup && g.keys.free(key, g.now) {
				tq.q.id, tq.key = id, key
				break
			}
		}
		tq.q.qtype = g.drawQType()
		g.pickName(&tq.q)
		g.queryOptions(&tq.q, v6, client, false)
		n := g.buildQuery(tq.qmsg[2:], &tq.q)
		binary.BigEndian.PutUint16(tq.qmsg[:], uint16(n))
		tq.qlen = n + 2
		tq.seq = cseq
		cseq += uint32(tq.qlen)
		g.countQuery(&tq.q, v6, true)

		tq.hasReply = !r.chance(cfg.Timeout)
		if !tq.hasReply {
			g.t.Timeouts++
			lastTimeout = t
			continue
		}
		tq.trStart = t + g.latency()
		tq.rp = reply{}
		g.drawRcode(&tq.rp)
		n, tq.an = g.buildReply(tq.rmsg[2:], tq.qmsg[2:], &tq.q, &tq.rp)
		binary.BigEndian.PutUint16(tq.rmsg[:], uint16(n))
		tq.rlen = n + 2
	}
	cEnd := cseq

	// The server answers in completion order (RFC 7766 allows it); one segment at a time.
	nr := 0
	for k := 0; k < m; k++ {
		if g.tcpq[k].hasReply {
			j := nr
			for j > 0 && g.tcpq[g.order[j-1]].trStart > g.tcpq[k].trStart {
				g.order[j] = g.order[j-1]
				j--
			}
			g.order[j] = k
			nr++
		}
	}
	sseq := isnS + 1
	last := tSA
	closeAt := g.tcpq[m-1].tq
	if lastTimeout >= 0 {
		closeAt = max(closeAt, lastTimeout+tcpGiveUp)
	}
	g.rtx = g.rtx[:0]
	for o := 0; o < nr; o++ {
		tq := &g.tcpq[g.order[o]]
		ts := max(tq.trStart, last+g.res)
		tq.nseg = 1
		if r.chance(cfg.TCPSplit) {
			tq.nseg = r.between(2, 3)
		}
		switch tq.nseg {
		case 1:
			tq.segOff[0], tq.segLen[0] = 0, tq.rlen
		case 2:
			c := 2 // the length prefix alone, as some servers write it
			if !r.chance(0.25) {
				c = r.between(1, tq.rlen-1)
			}
			tq.segOff[0], tq.segLen[0] = 0, c
			tq.segOff[1], tq.segLen[1] = c, tq.rlen-c
		case 3:
			a := r.between(1, tq.rlen-2)
			b := r.between(a+1, tq.rlen-1)
			tq.segOff[0], tq.segLen[0] = 0, a
			tq.segOff[1], tq.segLen[1] = a, b-a
			tq.segOff[2], tq.segLen[2] = b, tq.rlen-b
		}
		for s := 0; s < tq.nseg; s++ {
			if s > 0 {
				ts += g.dur(1e3 + r.float64()*4e3)
			}
			tq.segTs[s] = ts
		}
		if tq.nseg > 1 && r.chance(cfg.TCPReorder) {
			// The later segment overtakes the earlier one: same sequence numbers, captured in
			// swapped order, timestamps still increasing in file order.
			p := r.intn(tq.nseg - 1)
			tq.segTs[p], tq.segTs[p+1] = tq.segTs[p+1], tq.segTs[p]
		}
		tq.sseq = sseq
		sseq += uint32(tq.rlen)
		tq.end = ts
		last = ts
		tq.ackTs = ts + rtt
		closeAt = max(closeAt, tq.ackTs)
		lat := tq.end - tq.tq
		g.countReply(&tq.q, &tq.rp, tq.an, v6, true, lat)
		until := tq.end
		if lat >= xactTTL {
			until = tq.tq + unrepliedTTL
		}
		g.keys.put(tq.key, until, g.now)
	}
	sEnd := sseq
	for k := 0; k < m; k++ {
		if tq := &g.tcpq[k]; !tq.hasReply {
			g.keys.put(tq.key, tq.tq+unrepliedTTL, g.now)
		}
	}

	// Retransmissions: a data segment seen again after a retransmission timeout.
	for k := 0; k < m; k++ {
		tq := &g.tcpq[k]
		if r.chance(cfg.TCPRetransmit) {
			g.rtx = append(g.rtx, retrans{ts: tq.tq + g.dur(200e6+r.float64()*50e6), q: k, seg: -1, orig: tq.tq})
		}
		if !tq.hasReply {
			continue
		}
		for s := 0; s < tq.nseg; s++ {
			if r.chance(cfg.TCPRetransmit) {
				g.rtx = append(g.rtx, retrans{ts: tq.segTs[s] + g.dur(200e6+r.float64()*50e6), q: k, seg: s, orig: tq.segTs[s]})
			}
		}
	}
	for _, x := range g.rtx {
		closeAt = max(closeAt, x.ts)
	}
	// Delayed ACKs from the server for queries not answered within 40 ms.
	for k := 0; k < m; k++ {
		tq := &g.tcpq[k]
		if !tq.hasReply || tq.end-tq.tq > delayedAck {
			closeAt = max(closeAt, tq.tq+delayedAck)
		}
	}
	tFin := closeAt + g.dur(10e3+r.float64()*90e3)
	tFinS := tFin + turn
	tLast := tFinS + rtt
	g.keys.put(connKey, tLast+connGuard, g.now)

	// What each side has sent/seen by time x.
	ackByServer := func(x int64) uint32 { // client bytes received (+1 for its FIN)
		a := isnC + 1
		for k := 0; k < m; k++ {
			if g.tcpq[k].tq <= x {
				a += uint32(g.tcpq[k].qlen)
			}
		}
		if x >= tFin {
			a++
		}
		return a
	}
	ackByClient := func(x int64) uint32 { // whole replies received one RTT ago
		a := isnS + 1
		for o := 0; o < nr; o++ {
			if tq := &g.tcpq[g.order[o]]; tq.end+rtt <= x {
				a += uint32(tq.rlen)
			}
		}
		return a
	}
	serverNext := func(x int64) uint32 { // highest sequence sent by x
		a := isnS + 1
		for o := 0; o < nr; o++ {
			tq := &g.tcpq[g.order[o]]
			for s := 0; s < tq.nseg; s++ {
				if tq.segTs[s] <= x {
					a = max(a, tq.sseq+uint32(tq.segOff[s]+tq.segLen[s]))
				}
			}
		}
		return a
	}
	tsv := func(base uint32, x int64) uint32 { return base + uint32((x-t0)/1e6) }

	f := &g.f
	g.setFlow(f, v6, client, server, portBase+portOff)
	seg := tcpSeg{fromClient: true, flags: tcpSYN, seq: isnC, tsval: tsv(tsC, t0)}
	g.emitTCP(t0, &seg, v6)
	seg = tcpSeg{flags: tcpSYN | tcpACK, seq: isnS, ack: isnC + 1, tsval: tsv(tsS, tSA), tsecr: tsv(tsC, tSA)}
	g.emitTCP(tSA, &seg, v6)
	seg = tcpSeg{fromClient: true, flags: tcpACK, seq: isnC + 1, ack: isnS + 1, tsval: tsv(tsC, tACK), tsecr: tsv(tsS, tACK)}
	g.emitTCP(tACK, &seg, v6)
	lastDelayed := isnC
	for k := 0; k < m; k++ {
		tq := &g.tcpq[k]
		g.emitTCP(tq.tq, g.querySeg(tq, ackByClient(tq.tq), tsv(tsC, tq.tq), tsv(tsS, tq.tq)), v6)
		// One delayed ACK covers every query that arrived before it.
		if x := tq.tq + delayedAck; (!tq.hasReply || tq.end-tq.tq > delayedAck) && ackByServer(x) != lastDelayed {
			lastDelayed = ackByServer(x)
			seg = tcpSeg{flags: tcpACK, seq: serverNext(x), ack: lastDelayed, tsval: tsv(tsS, x), tsecr: tsv(tsC, x)}
			g.emitTCP(x, &seg, v6)
		}
	}
	for o := 0; o < nr; o++ {
		tq := &g.tcpq[g.order[o]]
		for s := 0; s < tq.nseg; s++ {
			x := tq.segTs[s]
			g.emitTCP(x, g.replySeg(tq, s, ackByServer(x), tsv(tsS, x), tsv(tsC, x)), v6)
		}
		seg = tcpSeg{fromClient: true, flags: tcpACK, seq: cseqAt(g, isnC, m, tq.ackTs), ack: ackByClient(tq.ackTs), tsval: tsv(tsC, tq.ackTs), tsecr: tsv(tsS, tq.ackTs)}
		g.emitTCP(tq.ackTs, &seg, v6)
	}
	for _, x := range g.rtx {
		tq := &g.tcpq[x.q]
		var s *tcpSeg
		if x.seg < 0 {
			s = g.querySeg(tq, ackByClient(x.orig), tsv(tsC, x.ts), tsv(tsS, x.ts))
		} else {
			s = g.replySeg(tq, x.seg, ackByServer(x.orig), tsv(tsS, x.ts), tsv(tsC, x.ts))
		}
		g.emitTCP(x.ts, s, v6)
		g.t.TCPRetransmits++
	}
	seg = tcpSeg{fromClient: true, flags: tcpFIN | tcpACK, seq: cEnd, ack: sEnd, tsval: tsv(tsC, tFin), tsecr: tsv(tsS, tFin)}
	g.emitTCP(tFin, &seg, v6)
	seg = tcpSeg{flags: tcpFIN | tcpACK, seq: sEnd, ack: cEnd + 1, tsval: tsv(tsS, tFinS), tsecr: tsv(tsC, tFinS)}
	g.emitTCP(tFinS, &seg, v6)
	seg = tcpSeg{fromClient: true, flags: tcpACK, seq: cEnd + 1, ack: sEnd + 1, tsval: tsv(tsC, tLast), tsecr: tsv(tsS, tLast)}
	g.emitTCP(tLast, &seg, v6)
	return m
}

// cseqAt is the client's next sequence number at time x.
func cseqAt(g *generator, isnC uint32, m int, x int64) uint32 {
	a := isnC + 1
	for k := 0; k < m; k++ {
		if g.tcpq[k].tq <= x {
			a += uint32(g.tcpq[k].qlen)
		}
	}
	return a
}

func (g *generator) querySeg(tq *tcpQuery, ack, tsval, tsecr uint32) *tcpSeg {
	g.seg = tcpSeg{fromClient: true, flags: tcpPSH | tcpACK, seq: tq.seq, ack: ack, tsval: tsval, tsecr: tsecr, payload: tq.qmsg[:tq.qlen]}
	return &g.seg
}

func (g *generator) replySeg(tq *tcpQuery, s int, ack, tsval, tsecr uint32) *tcpSeg {
	flags := byte(tcpACK)
	if tq.segOff[s]+tq.segLen[s] == tq.rlen {
		flags |= tcpPSH
	}
	g.seg = tcpSeg{flags: flags, seq: tq.sseq + uint32(tq.segOff[s]), ack: ack, tsval: tsval, tsecr: tsecr,
		payload: tq.rmsg[tq.segOff[s] : tq.segOff[s]+tq.segLen[s]]}
	return &g.seg
}

func (g *generator) emitTCP(ts int64, s *tcpSeg, v6 bool) {
	n := g.tcpFrame(g.frame[:], &g.f, s)
	g.emit(ts, g.frame[:n], v6, true, s.flags&tcpSYN != 0, false)
}
