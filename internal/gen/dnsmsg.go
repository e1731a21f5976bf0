package gen

import "encoding/binary"

// DNS message packing. Messages are laid out by hand: the generator knows where the question
// name and its zone sit, so compression pointers are written directly without a dictionary.

const (
	typeA     = 1
	typeNS    = 2
	typeCNAME = 5
	typeSOA   = 6
	typePTR   = 12
	typeMX    = 15
	typeTXT   = 16
	typeAAAA  = 28
	typeSRV   = 33
	typeOPT   = 41
	typeRRSIG = 46
	typeHTTPS = 65

	rcodeNoError  = 0
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeRefused  = 5

	optECS    = 8
	optCookie = 10

	maxQueryLen = 512
	maxReplyLen = 8192
)

// nameKind tells which family a query name belongs to.
type nameKind uint8

const (
	kindForward nameKind = iota
	kindReverse
	kindFlood
)

// query holds everything needed to write one query and, later, its reply.
type query struct {
	id      uint16
	qtype   uint16
	kind    nameKind
	idx     uint64 // name index (forward/reverse) or flood counter
	mixCase bool
	ad      bool

	edns    bool
	udpSize uint16
	do      bool
	ecs     bool
	ecsV6   bool
	ecsLen  uint8 // source prefix length
	ecsAddr [16]byte
	cookie  bool
	cookieV uint64

	// Filled by buildQuery.
	qEnd    int // end of the question (after QCLASS)
	zoneOff int // offset of the zone's first label inside the message
	zone    *zoneWire
	zoneLab int // labels in the zone
}

// reply holds the server's decisions for one reply.
type reply struct {
	rcode  int
	nodata bool
	bigTXT bool
}

type wbuf struct {
	b []byte
	n int
}

func (w *wbuf) u8(v byte) { w.b[w.n] = v; w.n++ }
func (w *wbuf) u16(v uint16) {
	binary.BigEndian.PutUint16(w.b[w.n:], v)
	w.n += 2
}
func (w *wbuf) u32(v uint32) {
	binary.BigEndian.PutUint32(w.b[w.n:], v)
	w.n += 4
}
func (w *wbuf) raw(p []byte)   { w.n += copy(w.b[w.n:], p) }
func (w *wbuf) str(s string)   { w.n += copy(w.b[w.n:], s) }
func (w *wbuf) ptr(off int)    { w.u16(0xC000 | uint16(off)) }
func (w *wbuf) label(s string) { w.u8(byte(len(s))); w.str(s) }
func (w *wbuf) patch16(at int, v uint16) {
	binary.BigEndian.PutUint16(w.b[at:], v)
}

// rr writes an owner pointer, type, class IN and TTL, and returns where RDLENGTH goes.
func (w *wbuf) rr(owner int, typ uint16, ttl uint32) int {
	w.ptr(owner)
	w.u16(typ)
	w.u16(1)
	w.u32(ttl)
	at := w.n
	w.n += 2
	return at
}

func (w *wbuf) endRR(at int) { w.patch16(at, uint16(w.n-at-2)) }

// buildQuery writes q into b and returns the message length.
func (g *generator) buildQuery(b []byte, q *query) int {
	w := wbuf{b: b}
	w.u16(q.id)
	flags := uint16(0x0100) // RD
	if q.ad {
		flags |= 0x0020
	}
	w.u16(flags)
	w.u16(1)
	w.u16(0)
	w.u16(0)
	if q.edns {
		w.u16(1)
	} else {
		w.u16(0)
	}
	start := w.n
	switch q.kind {
	case kindForward:
		end, zoff, zi := putForwardName(b, w.n, uint32(q.idx), g.zones)
		w.n, q.zoneOff, q.zone = end, zoff, &g.zones[zi]
		q.zoneLab = q.zone.labels
	case kindReverse:
		w.n, q.zoneOff = putReverseName(b, w.n, uint32(q.idx))
		q.zone = &g.revZone
		q.zoneLab = 3
	case kindFlood:
		w.n, q.zoneOff = putFloodName(b, w.n, q.idx, &g.floodZone)
		q.zone = &g.floodZone
		q.zoneLab = g.floodZone.labels
	}
	if q.mixCase {
		mixCase(b, start, w.n, &g.r)
	}
	w.u16(q.qtype)
	w.u16(1)
	q.qEnd = w.n
	if q.edns {
		g.putOPT(&w, q, q.udpSize, false)
	}
	return w.n
}

// putOPT writes the OPT pseudo-RR. In a reply the ECS option is echoed with a scope and the
// cookie gets a server part.
func (g *generator) putOPT(w *wbuf, q *query, size uint16, isReply bool) {
	w.u8(0)
	w.u16(typeOPT)
	w.u16(size)
	w.u8(0) // extended rcode
	w.u8(0) // version
	if q.do {
		w.u16(0x8000)
	} else {
		w.u16(0)
	}
	at := w.n
	w.n += 2
	if q.ecs {
		alen := (int(q.ecsLen) + 7) / 8
		w.u16(optECS)
		w.u16(uint16(4 + alen))
		if q.ecsV6 {
			w.u16(2)
		} else {
			w.u16(1)
		}
		w.u8(q.ecsLen)
		if isReply && q.kind == kindForward {
			w.u8(q.ecsLen)
		} else {
			w.u8(0)
		}
		w.raw(q.ecsAddr[:alen])
	}
	if q.cookie {
		w.u16(optCookie)
		if isReply {
			w.u16(24)
		} else {
			w.u16(8)
		}
		binary.BigEndian.PutUint64(w.b[w.n:], q.cookieV)
		w.n += 8
		if isReply {
			binary.BigEndian.PutUint64(w.b[w.n:], 1<<56|uint64(uint32(g.startSec)))
			binary.BigEndian.PutUint64(w.b[w.n+8:], mix64(q.cookieV))
			w.n += 16
		}
	}
	w.endRR(at)
}

// nameHash identifies a name so that its answers are the same every time it is asked.
func (q *query) nameHash() uint64 { return mix64(uint64(q.kind)<<56 ^ q.idx ^ 0x616e73) }

// buildReply writes the reply to the query in qmsg (its question is copied byte for byte, so
// the 0x20 case pattern is echoed) and returns its length and answer count.
func (g *generator) buildReply(b []byte, qmsg []byte, q *query, rp *reply) (n int, ancount int) {
	w := wbuf{b: b}
	copy(b, qmsg[:q.qEnd])
	w.n = q.qEnd
	flags := uint16(0x8000 | 0x0100 | 0x0080) // QR RD RA
	if q.ad && q.do && rp.rcode == rcodeNoError {
		flags |= 0x0020
	}
	if rp.rcode == rcodeNoError || rp.rcode == rcodeNXDomain {
		flags |= 0x0400 // AA
	}
	flags |= uint16(rp.rcode)
	binary.BigEndian.PutUint16(b[2:], flags)
	h := q.nameHash()
	ttl := uint32(60 + h%3540)
	var ns int
	switch {
	case rp.rcode == rcodeNoError && rp.bigTXT:
		ancount = g.bigTXT(&w, q, ttl)
	case rp.rcode == rcodeNoError && !rp.nodata:
		ancount = g.answers(&w, q, h, ttl)
	}
	if ancount == 0 && (rp.rcode == rcodeNXDomain || rp.rcode == rcodeNoError) {
		g.soa(&w, q.zoneOff, q, h)
		ns = 1
		if q.do {
			g.rrsig(&w, q.zoneOff, typeSOA, q.zoneLab, 3600, q)
			ns++
		}
	}
	ar := 0
	if q.edns {
		g.putOPT(&w, q, 1232, true)
		ar = 1
	}
	binary.BigEndian.PutUint16(b[6:], uint16(ancount))
	binary.BigEndian.PutUint16(b[8:], uint16(ns))
	binary.BigEndian.PutUint16(b[10:], uint16(ar))
	return w.n, ancount
}

// soa writes the zone's SOA record owned by the name at owner.
func (g *generator) soa(w *wbuf, owner int, q *query, h uint64) {
	at := w.rr(owner, typeSOA, 3600)
	w.label("ns1")
	w.ptr(q.zoneOff)
	w.label("hostmaster")
	w.ptr(q.zoneOff)
	w.u32(2024010100 + uint32(h%99))
	w.u32(7200)
	w.u32(3600)
	w.u32(1209600)
	w.u32(300)
	w.endRR(at)
}

// rrsig writes an RRSIG (ECDSA P-256 sized) covering typ at owner. The signer name is written
// uncompressed, as RFC 4034 §3.1.7 requires.
func (g *generator) rrsig(w *wbuf, owner int, typ uint16, labels int, ttl uint32, q *query) {
	at := w.rr(owner, typeRRSIG, ttl)
	w.u16(typ)
	w.u8(13)
	w.u8(byte(labels))
	w.u32(ttl)
	w.u32(uint32(g.startSec + 14*86400))
	w.u32(uint32(g.startSec - 86400))
	w.u16(q.zone.keyTag)
	w.raw(q.zone.wire)
	w.u8(0)
	for k := 0; k < 8; k++ {
		binary.BigEndian.PutUint64(w.b[w.n:], g.r.next())
		w.n += 8
	}
	w.endRR(at)
}

// publicV4 derives a plausible global unicast IPv4 address from h.
func publicV4(h uint64) [4]byte {
	firsts := [...]byte{23, 31, 37, 45, 52, 62, 77, 81, 89, 91, 93, 104, 142, 151, 176, 185, 195, 203, 212, 217}
	return [4]byte{firsts[h%uint64(len(firsts))], byte(h >> 8), byte(h >> 16), 1 + byte(h>>24)%254}
}

func publicV6(h uint64) [16]byte {
	prefixes := [...]uint16{0x2001, 0x2a00, 0x2a02, 0x2a03, 0x2600, 0x2606, 0x2404, 0x2800}
	var a [16]byte
	binary.BigEndian.PutUint16(a[0:], prefixes[h%uint64(len(prefixes))])
	binary.BigEndian.PutUint32(a[2:], uint32(h>>8))
	a[6] = byte(h >> 40)
	a[15] = 1 + byte(h>>48)%250
	return a
}

// answers writes the answer section for a NOERROR reply and returns ANCOUNT.
func (g *generator) answers(w *wbuf, q *query, h uint64, ttl uint32) int {
	owner := 12
	qlabels := countLabels(w.b, 12)
	an := 0
	switch q.qtype {
	case typeA, typeAAAA:
		ownerLabels := qlabels
		if q.kind == kindForward && (h>>8)%100 < 15 {
			at := w.rr(12, typeCNAME, ttl)
			target := w.n
			var lab [9]byte
			copy(lab[:], "edge-")
			v := (h >> 20) % 1000
			lab[5], lab[6], lab[7] = base36[v/100], base36[v/10%10], base36[v%10]
			w.u8(8)
			w.raw(lab[:8])
			w.label("cdn")
			w.ptr(q.zoneOff)
			w.endRR(at)
			an++
			if q.do {
				g.rrsig(w, 12, typeCNAME, qlabels, ttl, q)
				an++
			}
			owner = target
			ownerLabels = 2 + q.zoneLab
		}
		n := 1 + int((h>>12)%3)
		for k := 0; k < n; k++ {
			a := mix64(h + uint64(k))
			if q.qtype == typeA {
				at := w.rr(owner, typeA, ttl)
				ip := publicV4(a)
				w.raw(ip[:])
				w.endRR(at)
			} else {
				at := w.rr(owner, typeAAAA, ttl)
				ip := publicV6(a)
				w.raw(ip[:])
				w.endRR(at)
			}
			an++
		}
		if q.do {
			g.rrsig(w, owner, q.qtype, ownerLabels, ttl, q)
			an++
		}
		return an
	case typeCNAME:
		at := w.rr(12, typeCNAME, ttl)
		w.label("origin")
		w.ptr(q.zoneOff)
		w.endRR(at)
		an = 1
	case typeMX:
		n := 1 + int(h>>12&1)
		for k := 0; k < n; k++ {
			at := w.rr(12, typeMX, ttl)
			w.u16(uint16(10 * (k + 1)))
			w.label([...]string{"mx1", "mx2"}[k])
			w.ptr(q.zoneOff)
			w.endRR(at)
		}
		an = n
	case typeTXT:
		at := w.rr(12, typeTXT, ttl)
		if h>>12&1 == 0 {
			// "v=spf1 include:_spf.<zone> ~all"
			l := len("v=spf1 include:_spf.") + len(q.zone.text) + len(" ~all")
			w.u8(byte(l))
			w.str("v=spf1 include:_spf.")
			w.str(q.zone.text)
			w.str(" ~all")
		} else {
			w.u8(byte(len("site-verification=") + 22))
			w.str("site-verification=")
			v := h
			for k := 0; k < 22; k++ {
				if k%12 == 0 {
					v = mix64(v)
				}
				w.u8(base36[v%36])
				v /= 36
			}
		}
		w.endRR(at)
		an = 1
	case typeNS:
		for k := 0; k < 2; k++ {
			at := w.rr(12, typeNS, 86400)
			w.label([...]string{"ns1", "ns2"}[k])
			w.ptr(q.zoneOff)
			w.endRR(at)
		}
		an = 2
		ttl = 86400
	case typePTR:
		at := w.rr(12, typePTR, ttl)
		// host-a-b-c.<first zone>, written in full: nothing in the message to point at.
		i := uint32(q.idx)
		var lab [16]byte
		n := copy(lab[:], "host-")
		for k, v := range [3]uint32{i >> 16 & 255, i >> 8 & 255, i & 255} {
			if k > 0 {
				lab[n] = '-'
				n++
			}
			if v >= 100 {
				lab[n] = byte('0' + v/100)
				n++
			}
			if v >= 10 {
				lab[n] = byte('0' + v/10%10)
				n++
			}
			lab[n] = byte('0' + v%10)
			n++
		}
		w.u8(byte(n))
		w.raw(lab[:n])
		w.raw(g.zones[0].wire)
		w.u8(0)
		w.endRR(at)
		an = 1
	case typeSOA:
		g.soa(w, 12, q, h)
		an = 1
		ttl = 3600
	case typeSRV:
		n := 1 + int(h>>12&1)
		for k := 0; k < n; k++ {
			at := w.rr(12, typeSRV, ttl)
			w.u16(10)
			w.u16(uint16(50 + 10*k))
			w.u16([...]uint16{443, 5060, 389}[(h>>14)%3])
			w.label([...]string{"srv1", "srv2"}[k])
			w.ptr(q.zoneOff)
			w.endRR(at)
		}
		an = n
	case typeHTTPS:
		at := w.rr(12, typeHTTPS, ttl)
		w.u16(1) // SvcPriority
		w.u8(0)  // TargetName "." (the owner)
		w.u16(1) // alpn
		w.u16(6)
		w.str("\x02h2\x02h3")
		n := 1 + int(h>>12&1)
		w.u16(4) // ipv4hint
		w.u16(uint16(4 * n))
		for k := 0; k < n; k++ {
			ip := publicV4(mix64(h + uint64(k)))
			w.raw(ip[:])
		}
		w.endRR(at)
		an = 1
	}
	if q.do && an > 0 {
		g.rrsig(w, 12, q.qtype, qlabels, ttl, q)
		an++
	}
	return an
}

// bigTXT writes a TXT RRset that makes the message target bytes long (1.7-3.9 kB), large
// enough to need IP fragmentation yet within the 4096-byte EDNS buffer the query offered.
func (g *generator) bigTXT(w *wbuf, q *query, ttl uint32) int {
	target := g.r.between(1700, 3900)
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	const dkim = "v=DKIM1; k=rsa; p="
	an := 0
	for w.n < target {
		at := w.rr(12, typeTXT, ttl)
		for s := 0; s < 4 && w.n < target; s++ {
			l := g.r.between(200, 255)
			if rem := target - w.n - 1; rem < l {
				l = max(rem, 1)
			}
			w.u8(byte(l))
			if s == 0 && l > 2*len(dkim) {
				w.str(dkim)
				l -= len(dkim)
			}
			for k := 0; k < l; k += 10 {
				v := g.r.next()
				for j := k; j < k+10 && j < l; j++ {
					w.u8(b64[v&63])
					v >>= 6
				}
			}
		}
		w.endRR(at)
		an++
	}
	if q.do {
		g.rrsig(w, 12, typeTXT, countLabels(w.b, 12), ttl, q)
		an++
	}
	return an
}
