package gen

import (
	"encoding/binary"
	"math/bits"
)

// Frame building: Ethernet II, IPv4/IPv6, UDP/TCP, with real checksums. The capture point is
// the server's interface, so client frames come from the router's MAC.

const (
	ethLen  = 14
	ip4Len  = 20
	ip6Len  = 40
	udpLen  = 8
	frag6   = 8
	mtu     = 1500
	minEth  = 60 // frames shorter than this arrive padded
	maxSnap = 65535

	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpPSH = 0x08
	tcpACK = 0x10

	protoTCP = 6
	protoUDP = 17
	protoFrg = 44
)

var routerMAC = [6]byte{0x02, 0x00, 0x0a, 0x00, 0x00, 0x01}

// flow is one client/server 5-tuple with its per-direction constants.
type flow struct {
	v6           bool
	client       [16]byte
	server       [16]byte
	cport, sport uint16
	smac         [6]byte
	clientTTL    byte
	labelC       uint32 // IPv6 flow labels
	labelS       uint32
}

func clientAddrs(i int) (v4 [4]byte, v6 [16]byte) {
	// 10.0.0.0/8 without .0 and .255 host bytes.
	v := uint32(i/254)<<8 | uint32(i%254+1)
	v4 = [4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}
	v6[0] = 0xfd
	binary.BigEndian.PutUint32(v6[4:], uint32(i+1))
	v6[15] = 1
	return
}

func serverAddrs(j int) (v4 [4]byte, v6 [16]byte) {
	v4 = [4]byte{172, 16, 53, byte(j + 1)}
	v6[0], v6[1] = 0xfd, 0x53
	v6[15] = byte(j + 1)
	return
}

func (g *generator) setFlow(f *flow, v6 bool, client, server int, cport uint16) {
	f.v6 = v6
	f.cport, f.sport = cport, 53
	f.client, f.server = [16]byte{}, [16]byte{}
	c4, c6 := clientAddrs(client)
	s4, s6 := serverAddrs(server)
	if v6 {
		f.client, f.server = c6, s6
	} else {
		copy(f.client[:], c4[:])
		copy(f.server[:], s4[:])
	}
	f.smac = [6]byte{0x02, 0x00, 0xac, 0x10, 0x35, byte(server + 1)}
	f.clientTTL = 64 - byte(1+mix64(uint64(client))%12)
	f.labelC = uint32(g.r.next()) & 0xfffff
	f.labelS = uint32(g.r.next()) & 0xfffff
}

// csum accumulates b (starting at an even offset of the checksummed region) into a 64-bit
// one's-complement partial sum; 32-bit words are fine because 2^16 ≡ 1 (mod 2^16-1).
func csum(sum uint64, b []byte) uint64 {
	var c uint64
	for len(b) >= 8 {
		sum, c = bits.Add64(sum, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.BigEndian.Uint32(b)) << 32
		b = b[4:]
	}
	if len(b) >= 2 {
		tail |= uint64(binary.BigEndian.Uint16(b)) << 16
		b = b[2:]
	}
	if len(b) == 1 {
		tail |= uint64(b[0]) << 8
	}
	sum, c = bits.Add64(sum, tail, c)
	sum, c = bits.Add64(sum, 0, c)
	return sum + c // the end-around carry: 2^64 ≡ 1 (mod 2^16-1); sum is 0 when c is 1
}

func fold(sum uint64) uint16 {
	sum = (sum >> 32) + (sum & 0xffffffff)
	sum = (sum >> 32) + (sum & 0xffffffff)
	sum = (sum >> 16) + (sum & 0xffff)
	sum = (sum >> 16) + (sum & 0xffff)
	sum = (sum >> 16) + (sum & 0xffff)
	return ^uint16(sum)
}

// pseudo returns the partial sum of the IPv4/IPv6 pseudo-header.
func pseudo(f *flow, proto byte, l4len int) uint64 {
	var s uint64
	if f.v6 {
		s = csum(0, f.client[:16])
		s = csum(s, f.server[:16])
	} else {
		s = csum(0, f.client[:4])
		s = csum(s, f.server[:4])
	}
	s, c := bits.Add64(s, uint64(proto)+uint64(l4len), 0)
	return s + c
}

// l2l3 writes the Ethernet and IP headers for an l3payload-byte IP payload and returns the
// offset where the IP payload starts. frag is the IPv4 fragment field (flags|offset/8); for
// IPv6 fragments the caller writes the fragment header itself (proto = 44).
func (g *generator) l2l3(b []byte, f *flow, fromClient bool, proto byte, l3payload int, ipid uint16, frag uint16) int {
	if fromClient {
		copy(b[0:6], f.smac[:])
		copy(b[6:12], routerMAC[:])
	} else {
		copy(b[0:6], routerMAC[:])
		copy(b[6:12], f.smac[:])
	}
	src, dst := &f.client, &f.server
	if !fromClient {
		src, dst = dst, src
	}
	ttl := byte(64)
	if fromClient {
		ttl = f.clientTTL
	}
	if f.v6 {
		b[12], b[13] = 0x86, 0xdd
		label := f.labelS
		if fromClient {
			label = f.labelC
		}
		binary.BigEndian.PutUint32(b[14:], 6<<28|label)
		binary.BigEndian.PutUint16(b[18:], uint16(l3payload))
		b[20] = proto
		b[21] = ttl
		copy(b[22:38], src[:])
		copy(b[38:54], dst[:])
		return ethLen + ip6Len
	}
	b[12], b[13] = 0x08, 0x00
	ip := b[14:34]
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:], uint16(ip4Len+l3payload))
	binary.BigEndian.PutUint16(ip[4:], ipid)
	binary.BigEndian.PutUint16(ip[6:], frag)
	ip[8] = ttl
	ip[9] = proto
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], src[:4])
	copy(ip[16:20], dst[:4])
	binary.BigEndian.PutUint16(ip[10:], fold(csum(0, ip)))
	return ethLen + ip4Len
}

// padFrame pads short frames the way they arrive from the wire and returns the frame length.
func padFrame(b []byte, n int, fromClient bool) int {
	if fromClient && n < minEth {
		clear(b[n:minEth])
		return minEth
	}
	return n
}

// udpFrame writes a complete UDP frame carrying payload and returns its length.
func (g *generator) udpFrame(b []byte, f *flow, fromClient bool, payload []byte) int {
	ipid := uint16(g.r.next())
	off := g.l2l3(b, f, fromClient, protoUDP, udpLen+len(payload), ipid, 0)
	u := b[off:]
	sp, dp := f.cport, f.sport
	if !fromClient {
		sp, dp = dp, sp
	}
	l := udpLen + len(payload)
	binary.BigEndian.PutUint16(u[0:], sp)
	binary.BigEndian.PutUint16(u[2:], dp)
	binary.BigEndian.PutUint16(u[4:], uint16(l))
	u[6], u[7] = 0, 0
	copy(u[8:], payload)
	c := fold(csum(pseudo(f, protoUDP, l), u[:l]))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return padFrame(b, off+l, fromClient)
}

// udpDatagram writes the UDP header and payload into d and returns the datagram length (used
// for replies that are then fragmented).
func udpDatagram(d []byte, f *flow, fromClient bool, payload []byte) int {
	sp, dp := f.cport, f.sport
	if !fromClient {
		sp, dp = dp, sp
	}
	l := udpLen + len(payload)
	binary.BigEndian.PutUint16(d[0:], sp)
	binary.BigEndian.PutUint16(d[2:], dp)
	binary.BigEndian.PutUint16(d[4:], uint16(l))
	d[6], d[7] = 0, 0
	copy(d[8:], payload)
	c := fold(csum(pseudo(f, protoUDP, l), d[:l]))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(d[6:], c)
	return l
}

// fragFrame writes IP fragment number k of datagram d (fragment payload size per) and returns
// the frame length and whether more fragments follow.
func (g *generator) fragFrame(b []byte, f *flow, fromClient bool, d []byte, off, per int, id uint32) (int, bool) {
	end := min(off+per, len(d))
	more := end < len(d)
	chunk := d[off:end]
	if f.v6 {
		p := g.l2l3(b, f, fromClient, protoFrg, frag6+len(chunk), 0, 0)
		b[p] = protoUDP
		b[p+1] = 0
		fo := uint16(off/8) << 3
		if more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(b[p+2:], fo)
		binary.BigEndian.PutUint32(b[p+4:], id)
		n := copy(b[p+frag6:], chunk)
		return p + frag6 + n, more
	}
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	p := g.l2l3(b, f, fromClient, protoUDP, len(chunk), uint16(id), fo)
	n := copy(b[p:], chunk)
	return padFrame(b, p+n, fromClient), more
}

// tcpSeg describes one TCP segment to build.
type tcpSeg struct {
	fromClient bool
	flags      byte
	seq, ack   uint32
	tsval      uint32
	tsecr      uint32
	payload    []byte
}

// tcpFrame writes a TCP frame (timestamps option always; SYNs also carry MSS, SACK-permitted
// and window scale, in Linux's order) and returns its length.
func (g *generator) tcpFrame(b []byte, f *flow, s *tcpSeg) int {
	hl := 20 + 12
	syn := s.flags&tcpSYN != 0
	if syn {
		hl = 20 + 20
	}
	l := hl + len(s.payload)
	off := g.l2l3(b, f, s.fromClient, protoTCP, l, uint16(g.r.next()), 0x4000)
	t := b[off:]
	sp, dp := f.cport, f.sport
	if !s.fromClient {
		sp, dp = dp, sp
	}
	binary.BigEndian.PutUint16(t[0:], sp)
	binary.BigEndian.PutUint16(t[2:], dp)
	binary.BigEndian.PutUint32(t[4:], s.seq)
	binary.BigEndian.PutUint32(t[8:], s.ack)
	t[12] = byte(hl/4) << 4
	t[13] = s.flags
	var win uint16
	switch {
	case syn && s.fromClient:
		win = 64240
	case syn:
		win = 65160
	case s.fromClient:
		win = 502
	default:
		win = 509
	}
	binary.BigEndian.PutUint16(t[14:], win)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0
	o := t[20:hl]
	if syn {
		mss := uint16(1460)
		if f.v6 {
			mss = 1440
		}
		o[0], o[1] = 2, 4
		binary.BigEndian.PutUint16(o[2:], mss)
		o[4], o[5] = 4, 2 // SACK permitted
		o[6], o[7] = 8, 10
		binary.BigEndian.PutUint32(o[8:], s.tsval)
		binary.BigEndian.PutUint32(o[12:], s.tsecr)
		o[16] = 1                     // NOP
		o[17], o[18], o[19] = 3, 3, 7 // window scale 7
	} else {
		o[0], o[1], o[2], o[3] = 1, 1, 8, 10
		binary.BigEndian.PutUint32(o[4:], s.tsval)
		binary.BigEndian.PutUint32(o[8:], s.tsecr)
	}
	copy(t[hl:], s.payload)
	binary.BigEndian.PutUint16(t[16:], fold(csum(pseudo(f, protoTCP, l), t[:l])))
	return padFrame(b, off+l, s.fromClient)
}
