package tcpflow

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

const (
	fSYN = decode.TCPSyn
	fACK = decode.TCPAck
	fFIN = decode.TCPFin
	fRST = decode.TCPRst
	fPSH = decode.TCPPsh
)

// conn builds the packets of one TCP connection, filling decode.Packet directly.
type conn struct {
	v6           bool
	caddr, saddr [16]byte
	cport, sport uint16
}

func newConn(clientLast byte, cport uint16) conn {
	c := conn{cport: cport, sport: 53}
	copy(c.caddr[:], []byte{192, 168, 0, clientLast})
	copy(c.saddr[:], []byte{8, 8, 8, 8})
	return c
}

func newConn6(clientLast byte, cport uint16) conn {
	c := conn{v6: true, cport: cport, sport: 53}
	c.caddr = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: clientLast}
	c.saddr = [16]byte{0x20, 0x01, 0x48, 0x60, 15: 0x88}
	return c
}

// pkt returns a packet of the connection sent by the client (fromClient) or the server.
func (c conn) pkt(ts int64, fromClient bool, flags uint8, seq uint32, payload []byte) *decode.Packet {
	p := new(decode.Packet)
	c.fill(p, ts, fromClient, flags, seq, payload)
	return p
}

// fill is pkt without allocation, for the zero-allocation tests and benchmarks.
func (c *conn) fill(p *decode.Packet, ts int64, fromClient bool, flags uint8, seq uint32, payload []byte) {
	*p = decode.Packet{
		TS:       ts,
		L3:       decode.L3IPv4,
		L4:       decode.L4TCP,
		IPProto:  6,
		TCPFlags: flags,
		TCPSeq:   seq,
		Payload:  payload,
	}
	if c.v6 {
		p.L3 = decode.L3IPv6
	}
	if fromClient {
		p.Src, p.Dst, p.SrcPort, p.DstPort = c.caddr, c.saddr, c.cport, c.sport
	} else {
		p.Src, p.Dst, p.SrcPort, p.DstPort = c.saddr, c.caddr, c.sport, c.cport
	}
}

// feed sends p to r with its flow hash, as the dispatcher would.
func feed(r *Reassembler, p *decode.Packet) { r.Segment(p, p.FlowHash()) }

// got is one emitted message, copied.
type got struct {
	data       string
	fromClient bool
	ts         int64
}

type collector struct{ msgs []got }

func (c *collector) emit(m *Message) {
	c.msgs = append(c.msgs, got{string(m.Data), m.FromClient, m.Packet.TS})
}

func (c *collector) side(fromClient bool) []string {
	var out []string
	for _, m := range c.msgs {
		if m.fromClient == fromClient {
			out = append(out, m.data)
		}
	}
	return out
}

// message returns a DNS-looking message of n bytes (n ≥ 12) whose bytes identify it.
func message(id uint16, n int) []byte {
	m := make([]byte, n)
	binary.BigEndian.PutUint16(m, id)
	for i := 2; i < n; i++ {
		m[i] = byte(int(id)*7 + i)
	}
	return m
}

// stream concatenates the messages, each with its two-byte length prefix.
func stream(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

func strs(msgs [][]byte) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m)
	}
	return out
}

// seg is a piece of a stream: offset (relative to the first data byte) and bytes.
type seg struct {
	off  int
	data []byte
}

// cut splits b at the given offsets.
func cut(b []byte, at ...int) []seg {
	var out []seg
	prev := 0
	for _, a := range at {
		out = append(out, seg{prev, b[prev:a]})
		prev = a
	}
	return append(out, seg{prev, b[prev:]})
}

func randomMessages(rng *rand.Rand, n, maxLen int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = message(uint16(rng.IntN(65536)), minMessage+rng.IntN(maxLen-minMessage+1))
	}
	return out
}

// check verifies the Reassembler's internal invariants.
func (r *Reassembler) check() error {
	// LRU list and states.
	n, open := 0, 0
	prev := int32(-1)
	for fi := r.head; fi >= 0; fi = r.flows[fi].next {
		f := &r.flows[fi]
		if f.prev != prev {
			return fmt.Errorf("flow %d: prev %d, want %d", fi, f.prev, prev)
		}
		if f.state == stateFree {
			return fmt.Errorf("free flow %d in LRU", fi)
		}
		if f.state == stateOpen {
			open++
		}
		if prev >= 0 && r.flows[prev].lastTS < f.lastTS {
			return fmt.Errorf("LRU not ordered by time at flow %d", fi)
		}
		prev = fi
		n++
		if n > len(r.flows) {
			return fmt.Errorf("LRU cycle")
		}
	}
	if prev != r.tail {
		return fmt.Errorf("tail %d, want %d", r.tail, prev)
	}
	if n != r.tracked || open != r.open {
		return fmt.Errorf("tracked %d/%d open %d/%d", n, r.tracked, open, r.open)
	}
	if r.tracked > r.cfg.MaxFlows {
		return fmt.Errorf("tracked %d > MaxFlows %d", r.tracked, r.cfg.MaxFlows)
	}
	// Hash chains hold exactly the tracked flows, each in its bucket, chains bounded.
	inChain := 0
	for b, h := range r.buckets {
		l := 0
		for fi := h - 1; fi >= 0; fi = r.flows[fi].hnext {
			if r.bucket(r.flows[fi].hash) != uint64(b) || r.flows[fi].state == stateFree {
				return fmt.Errorf("flow %d in wrong bucket or free", fi)
			}
			inChain++
			l++
			if l > maxChain {
				return fmt.Errorf("chain %d longer than %d", b, maxChain)
			}
		}
	}
	if inChain != r.tracked {
		return fmt.Errorf("%d flows in chains, %d tracked", inChain, r.tracked)
	}
	// Pends: in-use ones belong to an open flow's side that points back; memory accounted.
	var held int64
	inUse := 0
	for i := range r.pends {
		pd := &r.pends[i]
		held += int64(cap(pd.buf)) + 8*int64(cap(pd.spans))
	}
	if held != r.held {
		return fmt.Errorf("held %d, accounted %d", held, r.held)
	}
	if r.held > int64(r.cfg.MaxTotalBytes) {
		return fmt.Errorf("held %d > MaxTotalBytes %d", r.held, r.cfg.MaxTotalBytes)
	}
	for i := r.pendHead; i >= 0; i = r.pends[i].next {
		pd := &r.pends[i]
		inUse++
		f := &r.flows[pd.owner]
		if f.state != stateOpen || f.dir[pd.dir].pend != i+1 {
			return fmt.Errorf("pend %d: owner %d state %d does not point back", i, pd.owner, f.state)
		}
		if cap(pd.buf) > r.cfg.MaxSideBytes || len(pd.spans) > r.cfg.MaxOOOSegments {
			return fmt.Errorf("pend %d over caps: cap %d spans %d", i, cap(pd.buf), len(pd.spans))
		}
		ext := pd.contig
		last := int32(pd.contig)
		for _, sp := range pd.spans {
			if sp.start <= last || sp.end <= sp.start {
				return fmt.Errorf("pend %d: bad spans %v (contig %d)", i, pd.spans, pd.contig)
			}
			last = sp.end
			ext = int(sp.end)
		}
		if len(pd.buf) != ext {
			return fmt.Errorf("pend %d: len %d, extent %d", i, len(pd.buf), ext)
		}
		if pd.contig == 0 && len(pd.spans) == 0 {
			return fmt.Errorf("pend %d empty but in use", i)
		}
		if pd.contig >= 2 {
			if l := int(pd.buf[0])<<8 | int(pd.buf[1]); 2+l <= pd.contig {
				return fmt.Errorf("pend %d holds a complete message", i)
			}
		}
		if inUse > len(r.pends) {
			return fmt.Errorf("pend LRU cycle")
		}
	}
	sides := 0
	for fi := r.head; fi >= 0; fi = r.flows[fi].next {
		for d := range 2 {
			if p := r.flows[fi].dir[d].pend; p != 0 {
				sides++
				if r.pends[p-1].owner != fi || int(r.pends[p-1].dir) != d {
					return fmt.Errorf("flow %d side %d pend %d owned elsewhere", fi, d, p-1)
				}
			}
		}
	}
	if sides != inUse {
		return fmt.Errorf("%d sides hold pends, %d pends in use", sides, inUse)
	}
	return nil
}
