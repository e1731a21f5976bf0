package tcpflow

import (
	"slices"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// fuzzConns are the connections FuzzReassemble plays with; few, so that ops hit the same flows.
var fuzzConns = [4]conn{newConn(1, 1111), newConn(2, 2222), newConn6(3, 3333), newConn(4, 53)}

// FuzzReassemble drives a small Reassembler with arbitrary segment streams: any flags, sequence
// numbers, payloads (often framed), times. It must never panic, its caps and internal invariants
// must hold after every packet, and every message must be well-formed.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte{0x00, fSYN, 0, 0, 0, 0, 0x11, fSYN | fACK, 0, 0, 0, 0, 0x00, fACK | fPSH, 0, 1, 14, 1, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{0x02, fACK, 0xff, 0xff, 40, 200, 0x02, fACK, 0x00, 0x10, 40, 0, 0x12, fFIN, 0, 0, 0, 0})
	f.Add([]byte{0x03, fACK | fPSH, 0x80, 0x00, 255, 0, 0x03, fRST, 0, 0, 0, 250, 0x07, fSYN, 1, 2, 0, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := Config{MaxFlows: 3, IdleTimeout: time.Second, MaxSideBytes: 200, MaxOOOSegments: 3}
		var cur *decode.Packet
		r := New(cfg, func(m *Message) {
			if len(m.Data) < minMessage || len(m.Data) > cfg.MaxSideBytes-2 || m.Packet != cur {
				t.Fatalf("bad message: %d bytes, packet %p (current %p)", len(m.Data), m.Packet, cur)
			}
		})
		var next [4][2]uint32 // per connection and direction: a moving sequence cursor
		ts := int64(0)
		payload := make([]byte, 0, 512)
		for len(in) >= 6 {
			sel, flags := in[0], in[1]
			delta := int16(uint16(in[2])<<8 | uint16(in[3]))
			n, tadv := int(in[4]), in[5]
			in = in[6:]
			c := fuzzConns[int(sel)%len(fuzzConns)]
			fromClient := sel&0x10 == 0
			d := dirIndex(fromClient)
			sc := &next[int(sel)%len(fuzzConns)][d]
			seq := *sc + uint32(int32(delta))
			// Payload: raw fuzz bytes, or (bit 5) a framed message of n bytes built around them.
			payload = payload[:0]
			if sel&0x20 != 0 && n >= 2 {
				payload = append(payload, byte((n-2)>>8), byte(n-2))
				n -= 2
			}
			k := min(n, len(in))
			payload = append(payload, in[:k]...)
			in = in[k:]
			for len(payload) < cap(payload) && len(payload) < n+2 && sel&0x20 != 0 {
				payload = append(payload, 0)
			}
			*sc = seq + uint32(len(payload))
			ts += int64(tadv) * int64(10*time.Millisecond)
			p := c.pkt(ts, fromClient, flags, seq, payload)
			if sel&0x40 != 0 {
				p.Fragment, p.FragOffset = true, 8
			}
			cur = p
			r.Segment(p, p.FlowHash())
			if err := r.check(); err != nil {
				t.Fatal(err)
			}
		}
		r.FlushAll()
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
		if st := r.Stats(); st.Flows != 0 || st.Open != 0 || st.Created != st.Evicted+st.Expired+st.Closed {
			t.Fatalf("after FlushAll: %+v", st)
		}
	})
}

var (
	fuzzClient = [][]byte{message(1, 12), message(2, 100), message(3, 300), message(4, 40), message(5, 13)}
	fuzzServer = [][]byte{message(1, 200), message(2, 12), message(3, 12), message(4, 350)}
)

// FuzzStream cuts, duplicates and reorders two fixed valid streams as the input says. Whatever
// the order, each side must emit a prefix of its messages, in order, each once, and all of them
// when every byte was delivered and no cap was hit.
func FuzzStream(f *testing.F) {
	f.Add([]byte{0, 0, 0, 255, 1, 0, 0, 255, 0, 0, 200, 255, 1, 1, 100, 255})
	f.Add([]byte{2, 0, 100, 50, 0, 0, 0, 60, 0, 0, 50, 10, 1, 0, 0, 255, 1, 0, 200, 255, 1, 1, 144, 255})
	f.Add([]byte{1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 2, 255, 0, 0, 0, 255, 0, 1, 0, 255, 1, 2, 0, 255})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		cfg := Config{MaxSideBytes: 400, MaxOOOSegments: 4}
		if in[0]&2 != 0 {
			cfg.MaxOOOSegments = 1
		}
		var col collector
		r := New(cfg, col.emit)
		cisn, sisn := uint32(0xffffff00), uint32(1234)
		c := newConn(9, 9999)
		play(r, c, cisn, sisn, 0, handshake())
		streams := [2][]byte{stream(fuzzClient...), stream(fuzzServer...)}
		var have [2][]bool
		for d := range 2 {
			have[d] = make([]bool, len(streams[d]))
		}
		for i := 0; len(in) >= 4; i++ {
			d := int(in[0] & 1)
			s := streams[d]
			start := int(uint16(in[1])<<8|uint16(in[2]))%(len(s)+20) - 10
			end := min(start+2*int(in[3]), len(s))
			in = in[4:]
			if end <= start {
				continue
			}
			var data []byte
			switch {
			case end <= 0: // entirely before the stream: ignored
				data = make([]byte, end-start)
			case start < 0: // partly before the stream: trimmed
				data = append(make([]byte, -start), s[:end]...)
			default:
				data = s[start:end]
			}
			for j := max(start, 0); j < end; j++ {
				have[d][j] = true
			}
			isn := cisn
			if d == 1 {
				isn = sisn
			}
			feed(r, c.pkt(int64(10+i)*ms, d == 0, fACK|fPSH, isn+1+uint32(start), data))
			if err := r.check(); err != nil {
				t.Fatal(err)
			}
		}
		st := r.Stats()
		for d, want := range [2][][]byte{fuzzClient, fuzzServer} {
			g := col.side(d == 0)
			if len(g) > len(want) || !slices.Equal(g, strs(want[:len(g)])) {
				t.Fatalf("side %d: %d messages are not a prefix of the stream", d, len(g))
			}
			if st.Errors() == 0 && !slices.Contains(have[d], false) && len(g) != len(want) {
				t.Fatalf("side %d: every byte delivered without error, but %d of %d messages", d, len(g), len(want))
			}
		}
	})
}
