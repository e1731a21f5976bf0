package tcpflow

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// ev is one packet of a scenario; off is the sequence offset from the sender's first data byte
// (ISN+1), so a SYN has off -1.
type ev struct {
	client bool
	flags  uint8
	off    int
	data   []byte
}

const ms = int64(time.Millisecond)

// play sends the events on connection c (client ISN cisn, server ISN sisn); event i has
// timestamp (i+1) ms after t0.
func play(r *Reassembler, c conn, cisn, sisn uint32, t0 int64, evs []ev) {
	for i, e := range evs {
		isn := sisn
		if e.client {
			isn = cisn
		}
		feed(r, c.pkt(t0+int64(i+1)*ms, e.client, e.flags, isn+1+uint32(e.off), e.data))
	}
}

func handshake() []ev {
	return []ev{{true, fSYN, -1, nil}, {false, fSYN | fACK, -1, nil}, {true, fACK, 0, nil}}
}

// clientSegs turns stream pieces into client data events.
func clientSegs(segs []seg) []ev {
	out := make([]ev, len(segs))
	for i, s := range segs {
		out[i] = ev{true, fACK | fPSH, s.off, s.data}
	}
	return out
}

// completion is the oracle for message timestamps: given the arrival order of the pieces of a
// stream and the end offsets of its messages, message k is complete at the first arrival after
// which every byte of [0, ends[k]) has been received. It returns arrival indexes (-1: never).
func completion(segs []seg, ends []int) []int {
	total := ends[len(ends)-1]
	have := make([]bool, total)
	out := make([]int, len(ends))
	for k := range out {
		out[k] = -1
	}
	for i, s := range segs {
		for j := range s.data {
			if s.off+j >= 0 && s.off+j < total {
				have[s.off+j] = true
			}
		}
		for k, e := range ends {
			if out[k] < 0 && !slices.Contains(have[:e], false) {
				out[k] = i
			}
		}
	}
	return out
}

func ends(msgs [][]byte) []int {
	var out []int
	e := 0
	for _, m := range msgs {
		e += 2 + len(m)
		out = append(out, e)
	}
	return out
}

// runClientStream plays a handshake then the pieces (in the order given) and checks that the
// client's messages come out once each, in order, stamped with the completing packet's time.
func runClientStream(t *testing.T, cfg Config, cisn uint32, msgs [][]byte, segs []seg) (*collector, *Reassembler) {
	t.Helper()
	var col collector
	r := New(cfg, col.emit)
	evs := append(handshake(), clientSegs(segs)...)
	play(r, newConn(10, 40000), cisn, 7000, 0, evs)
	if err := r.check(); err != nil {
		t.Fatal(err)
	}
	if g, w := col.side(true), strs(msgs); !slices.Equal(g, w) {
		t.Fatalf("got %d messages, want %d (equal: %v)", len(g), len(w), slices.Equal(g, w))
	}
	done := completion(segs, ends(msgs))
	for k, m := range col.msgs {
		if want := int64(len(handshake())+done[k]+1) * ms; m.ts != want {
			t.Errorf("message %d stamped %d ms, want %d ms (completing packet)", k, m.ts/ms, want/ms)
		}
	}
	st := r.Stats()
	if st.Messages != uint64(len(msgs)) || st.Errors() != 0 || st.BytesDropped != 0 {
		t.Errorf("stats %+v", st)
	}
	return &col, r
}

func TestFraming(t *testing.T) {
	m1, m2, m3 := message(1, 40), message(2, 12), message(3, 300)
	three := [][]byte{m1, m2, m3}
	s3 := stream(three...)
	big := message(9, 65535)
	sBig := stream(big)
	var bigCuts []int
	for o := 1448; o < len(sBig); o += 1448 {
		bigCuts = append(bigCuts, o)
	}
	var everyByte []int
	for o := 1; o < len(s3); o++ {
		everyByte = append(everyByte, o)
	}
	tests := []struct {
		name string
		msgs [][]byte
		segs []seg
	}{
		{"one message per segment", three, cut(s3, 42, 56)},
		{"several per segment", three, cut(s3)},
		{"one message over 3 segments", [][]byte{m3}, cut(stream(m3), 100, 200)},
		{"prefix split 1 byte + rest", [][]byte{m3}, cut(stream(m3), 1)},
		{"prefix alone then body", [][]byte{m3}, cut(stream(m3), 2)},
		{"second prefix split across segments", three, cut(s3, 43)},
		{"whole message plus partial then rest", three, cut(s3, 60, 200)},
		{"every byte its own segment", three, cut(s3, everyByte...)},
		{"maximal message over 46 segments", [][]byte{big}, cut(sBig, bigCuts...)},
		{"maximal message in one segment", [][]byte{big}, cut(sBig)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runClientStream(t, Config{}, 1000, tc.msgs, tc.segs)
		})
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

func TestOutOfOrderEveryPermutation(t *testing.T) {
	msgs := [][]byte{message(1, 30), message(2, 50), message(3, 20), message(4, 70)}
	s := stream(msgs...)
	// Cuts inside messages and inside a length prefix, so no piece is self-contained.
	pieces := cut(s, 20, 33, 90)
	perms := permutations(len(pieces))
	if len(perms) != 24 {
		t.Fatalf("%d permutations", len(perms))
	}
	for _, perm := range perms {
		t.Run(fmt.Sprint(perm), func(t *testing.T) {
			order := make([]seg, len(perm))
			for i, j := range perm {
				order[i] = pieces[j]
			}
			runClientStream(t, Config{}, 5000, msgs, order)
		})
	}
}

func TestRetransmissionsAndOverlaps(t *testing.T) {
	msgs := [][]byte{message(1, 60), message(2, 45), message(3, 80)}
	s := stream(msgs...) // 191 bytes
	p := func(a, b int) seg { return seg{a, s[a:b]} }
	n := len(s)
	tests := []struct {
		name string
		segs []seg
	}{
		{"exact duplicates", []seg{p(0, 50), p(0, 50), p(50, 120), p(50, 120), p(120, n), p(120, n)}},
		{"duplicate after emission", []seg{p(0, 62), p(0, 62), p(62, n), p(0, 62)}},
		{"partial overlaps", []seg{p(0, 50), p(30, 120), p(100, n)}},
		{"superset retransmission", []seg{p(0, 40), p(40, 80), p(0, n)}},
		{"retransmission inside pending partial", []seg{p(0, 5), p(0, 5), p(1, 3), p(5, n)}},
		{"duplicate of held early data", []seg{p(50, 100), p(50, 100), p(0, 50), p(100, n)}},
		{"overlapping early data", []seg{p(60, 100), p(80, 140), p(0, 60), p(140, n)}},
		{"early data covered by a later big one", []seg{p(70, 80), p(90, 100), p(60, 150), p(0, 60), p(150, n)}},
		{"gap fill overlapping held data", []seg{p(100, 150), p(0, 40), p(30, 120), p(140, n)}},
		{"held data adjacent to each other", []seg{p(150, n), p(100, 150), p(50, 100), p(0, 50)}},
		{"bytes before the first one are trimmed", []seg{{-10, append(make([]byte, 10), s[:30]...)}, p(30, n)}},
		{"entirely before the stream", []seg{{-100, make([]byte, 90)}, p(0, n)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runClientStream(t, Config{}, 77, msgs, tc.segs)
		})
	}
}

func TestSequenceWraparound(t *testing.T) {
	msgs := [][]byte{message(1, 100), message(2, 200), message(3, 50)}
	s := stream(msgs...)
	pieces := cut(s, 50, 120, 250, 300)
	reversed := slices.Clone(pieces)
	slices.Reverse(reversed)
	for _, isn := range []uint32{math.MaxUint32, math.MaxUint32 - 1, math.MaxUint32 - 2, math.MaxUint32 - 60, math.MaxUint32 - 200, math.MaxUint32 - 355} {
		for name, order := range map[string][]seg{"in order": pieces, "reversed": reversed} {
			t.Run(fmt.Sprintf("isn=%d/%s", isn, name), func(t *testing.T) {
				runClientStream(t, Config{}, isn, msgs, order)
			})
		}
	}
}

func TestMidStreamPickup(t *testing.T) {
	q, a := message(1, 30), message(1, 90)
	q2, a2 := message(2, 33), message(2, 120)
	tests := []struct {
		name          string
		evs           []ev
		client, srv   []string
		created       uint64
		errBadLength  uint64
		bytesDropped  uint64
		clientIsFirst bool
	}{
		{
			name:    "client data first",
			evs:     []ev{{true, fACK | fPSH, 100, stream(q)}, {false, fACK | fPSH, 300, stream(a)}, {true, fACK | fPSH, 132, stream(q2)}, {false, fACK | fPSH, 392, stream(a2)}},
			client:  strs([][]byte{q, q2}),
			srv:     strs([][]byte{a, a2}),
			created: 1,
		},
		{
			name:    "server data first",
			evs:     []ev{{false, fACK | fPSH, 300, stream(a)}, {true, fACK | fPSH, 132, stream(q2)}, {false, fACK | fPSH, 392, stream(a2)}},
			client:  strs([][]byte{q2}),
			srv:     strs([][]byte{a, a2}),
			created: 1,
		},
		{
			name: "picked up inside a message",
			// The tail of a message starting with bytes 0x00 0x05 looks like a length of 5.
			evs:          []ev{{true, fACK | fPSH, 0, []byte{0, 5, 1, 2, 3, 4, 5}}, {true, fACK | fPSH, 7, stream(q2)}, {false, fACK | fPSH, 0, stream(a)}},
			srv:          strs([][]byte{a}),
			created:      1,
			errBadLength: 1,
			bytesDropped: 7 + 35,
		},
		{
			name:    "earlier segment after pickup is ignored",
			evs:     []ev{{true, fACK | fPSH, 32, stream(q2)}, {true, fACK | fPSH, 0, stream(q)}},
			client:  strs([][]byte{q2}),
			created: 1,
		},
		{
			name:    "lone ACK, FIN and RST do not create flows",
			evs:     []ev{{true, fACK, 0, nil}, {true, fFIN | fACK, 0, nil}, {false, fRST, 0, nil}},
			created: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var col collector
			r := New(Config{}, col.emit)
			play(r, newConn(3, 41000), 1e6, 2e6, 0, tc.evs)
			if err := r.check(); err != nil {
				t.Fatal(err)
			}
			if g := col.side(true); !slices.Equal(g, tc.client) {
				t.Errorf("client messages %q, want %q", g, tc.client)
			}
			if g := col.side(false); !slices.Equal(g, tc.srv) {
				t.Errorf("server messages %q, want %q", g, tc.srv)
			}
			st := r.Stats()
			if st.Created != tc.created || st.ErrBadLength != tc.errBadLength || st.BytesDropped != tc.bytesDropped {
				t.Errorf("created %d bad %d dropped %d, want %d %d %d", st.Created, st.ErrBadLength, st.BytesDropped,
					tc.created, tc.errBadLength, tc.bytesDropped)
			}
		})
	}
}

func TestClientOrientation(t *testing.T) {
	mk := func(sport, dport uint16, flags uint8) *decode.Packet {
		p := newConn(1, 1).pkt(1, true, flags, 1, []byte("x"))
		p.SrcPort, p.DstPort = sport, dport
		return p
	}
	tests := []struct {
		name string
		p    *decode.Packet
		want bool // sender is client
	}{
		{"SYN sender", mk(53, 40000, fSYN), true},
		{"SYN-ACK receiver", mk(40000, 53, fSYN|fACK), false},
		{"to DNS port", mk(40000, 53, fACK), true},
		{"from DNS port", mk(53, 40000, fACK), false},
		{"from mDNS port", mk(5353, 40000, fACK), false},
		{"from LLMNR port", mk(5355, 40000, fACK), false},
		{"from 53000", mk(53000, 40000, fACK), false},
		{"both DNS ports: first sender", mk(53, 5353, fACK), true},
		{"no DNS port: first sender", mk(1234, 5678, fACK), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var col collector
			r := New(Config{}, col.emit)
			tc.p.Payload = stream(message(1, 20))
			feed(r, tc.p)
			if len(col.msgs) != 1 || col.msgs[0].fromClient != tc.want {
				t.Fatalf("messages %+v, want one with fromClient=%v", col.msgs, tc.want)
			}
		})
	}
}

func TestBadLength(t *testing.T) {
	good := message(1, 30)
	reply := message(1, 80)
	for _, l := range []int{0, 1, 5, 11, 12} {
		t.Run(fmt.Sprint("len=", l), func(t *testing.T) {
			var col collector
			r := New(Config{}, col.emit)
			bad := append([]byte{byte(l >> 8), byte(l)}, make([]byte, l)...)
			after := stream(good)
			evs := append(handshake(),
				ev{true, fACK | fPSH, 0, stream(good)},
				ev{true, fACK | fPSH, 32, bad},
				ev{true, fACK | fPSH, 34 + l, after},
				ev{false, fACK | fPSH, 0, stream(reply)},
			)
			play(r, newConn(4, 42000), 10, 20, 0, evs)
			st := r.Stats()
			if l >= minMessage {
				if len(col.side(true)) != 3 || st.ErrBadLength != 0 {
					t.Fatalf("valid length: %d client messages, stats %+v", len(col.side(true)), st)
				}
				return
			}
			if g := col.side(true); !slices.Equal(g, strs([][]byte{good})) {
				t.Errorf("client messages %d, want only the first", len(g))
			}
			if g := col.side(false); !slices.Equal(g, strs([][]byte{reply})) {
				t.Errorf("the server direction must keep working: %d messages", len(g))
			}
			if st.ErrBadLength != 1 || st.BytesDropped != uint64(len(bad)+len(after)) {
				t.Errorf("bad %d dropped %d, want 1 %d", st.ErrBadLength, st.BytesDropped, len(bad)+len(after))
			}
		})
	}
	t.Run("bad prefix split across segments", func(t *testing.T) {
		var col collector
		r := New(Config{}, col.emit)
		play(r, newConn(4, 42001), 10, 20, 0, append(handshake(),
			ev{true, fACK | fPSH, 0, []byte{0}}, ev{true, fACK | fPSH, 1, []byte{3, 1, 2, 3}}))
		if st := r.Stats(); st.ErrBadLength != 1 || st.BytesDropped != 5 || len(col.msgs) != 0 {
			t.Errorf("stats %+v, %d messages", st, len(col.msgs))
		}
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCaps(t *testing.T) {
	m := func(id uint16, n int) []byte { return message(id, n) }
	t.Run("message larger than MaxSideBytes", func(t *testing.T) {
		for _, n := range []int{98, 99, 200} {
			var col collector
			r := New(Config{MaxSideBytes: 100}, col.emit)
			s := stream(m(1, n))
			play(r, newConn(5, 43000), 1, 2, 0, append(handshake(), clientSegs(cut(s, 50))...))
			st := r.Stats()
			fits := 2+n <= 100
			if fits != (len(col.msgs) == 1) || fits != (st.ErrOversize == 0) {
				t.Errorf("n=%d: %d messages, oversize errors %d", n, len(col.msgs), st.ErrOversize)
			}
		}
	})
	t.Run("early data beyond the window", func(t *testing.T) {
		msgs := [][]byte{m(1, 40), m(2, 40), m(3, 40), m(4, 40)} // 168 bytes
		s := stream(msgs...)
		var col collector
		r := New(Config{MaxSideBytes: 100}, col.emit)
		segs := []seg{{126, s[126:]}, {90, s[90:126]}, {0, s[:90]}}
		play(r, newConn(5, 43001), 1, 2, 0, append(handshake(), clientSegs(segs)...))
		st := r.Stats()
		// [126,168) starts beyond 100: dropped. [90,126) is clipped at 100. The stream stalls at
		// byte 100 (nothing is ever emitted from a hole): messages 1 and 2 end at 42 and 84.
		if g := col.side(true); !slices.Equal(g, strs(msgs[:2])) {
			t.Errorf("%d messages, want 2", len(g))
		}
		if st.ErrOutOfWindow != 2 || st.BytesDropped != 42+26 {
			t.Errorf("out of window %d dropped %d", st.ErrOutOfWindow, st.BytesDropped)
		}
		// A retransmission of what was dropped resumes the stream.
		play(r, newConn(5, 43001), 1, 2, 100*ms, clientSegs([]seg{{84, s[84:]}}))
		if g := col.side(true); !slices.Equal(g, strs(msgs)) {
			t.Errorf("after retransmission %d messages, want 4", len(g))
		}
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("too many early runs", func(t *testing.T) {
		msgs := [][]byte{m(1, 20), m(2, 20), m(3, 20), m(4, 20), m(5, 20)} // 22 bytes each
		s := stream(msgs...)
		var col collector
		r := New(Config{MaxOOOSegments: 2}, col.emit)
		segs := []seg{{30, s[30:40]}, {50, s[50:60]}, {70, s[70:80]}, {0, s[:30]}, {40, s[40:50]}, {60, s[60:70]}, {80, s[80:]}}
		play(r, newConn(5, 43002), 1, 2, 0, append(handshake(), clientSegs(segs)...))
		st := r.Stats()
		if st.ErrOOOOverflow != 1 || st.BytesDropped != 10 {
			t.Errorf("overflow %d dropped %d", st.ErrOOOOverflow, st.BytesDropped)
		}
		// The stream stalls at byte 70: messages ending at 22, 44 and 66 came out.
		if g := col.side(true); !slices.Equal(g, strs(msgs[:3])) {
			t.Errorf("%d messages, want 3", len(g))
		}
		play(r, newConn(5, 43002), 1, 2, 100*ms, clientSegs([]seg{{70, s[70:80]}}))
		if g := col.side(true); !slices.Equal(g, strs(msgs)) {
			t.Errorf("after retransmission %d messages, want 5", len(g))
		}
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("total bytes evict least recently buffered flows", func(t *testing.T) {
		var col collector
		cfg := Config{MaxSideBytes: 1000, MaxTotalBytes: 4000}
		r := New(cfg, col.emit)
		msg := stream(m(1, 900))
		// Each flow holds a partial 902-byte message: a 1024-byte buffer at most.
		for i := range 20 {
			c := newConn(byte(i), uint16(44000+i))
			play(r, c, 1, 2, int64(i)*10*ms, append(handshake(), ev{true, fACK | fPSH, 0, msg[:600]}))
			if err := r.check(); err != nil {
				t.Fatal(err)
			}
		}
		st := r.Stats()
		if st.BufferedBytes > int64(r.cfg.MaxTotalBytes) || st.Evicted != 16 || st.ErrEvictedPending != st.Evicted {
			t.Fatalf("stats %+v", st)
		}
		// The most recent flows survive and complete; the earliest were evicted.
		play(r, newConn(19, 44019), 1, 2, time.Second.Nanoseconds(), []ev{{true, fACK | fPSH, 600, msg[600:]}})
		play(r, newConn(0, 44000), 1, 2, time.Second.Nanoseconds(), []ev{{true, fACK | fPSH, 600, msg[600:]}})
		if len(col.msgs) != 1 {
			t.Errorf("%d messages, want 1 (from the most recent flow)", len(col.msgs))
		}
	})
}

func TestFinRst(t *testing.T) {
	q, a := message(1, 30), message(1, 100)
	sq, sa := stream(q), stream(a)
	tests := []struct {
		name                   string
		evs                    []ev
		client, server         int
		open, flows            int
		created, closed        uint64
		bytesDropped, messages uint64
	}{
		{
			name: "both FINs close",
			evs: []ev{{true, fACK | fPSH, 0, sq}, {false, fACK | fPSH, 0, sa},
				{false, fFIN | fACK, len(sa), nil}, {true, fFIN | fACK, len(sq), nil}, {false, fACK, len(sa) + 1, nil}},
			client: 1, server: 1, open: 0, flows: 1, created: 1, closed: 1, messages: 2,
		},
		{
			name:   "FIN with data",
			evs:    []ev{{true, fACK | fPSH | fFIN, 0, sq}, {false, fACK | fPSH | fFIN, 0, sa}},
			client: 1, server: 1, open: 0, flows: 1, created: 1, closed: 1, messages: 2,
		},
		{
			name:   "half-close: reply after the client's FIN still counts",
			evs:    []ev{{true, fACK | fPSH, 0, sq}, {true, fFIN | fACK, len(sq), nil}, {false, fACK | fPSH, 0, sa}},
			client: 1, server: 1, open: 1, flows: 1, created: 1, messages: 2,
		},
		{
			name: "FIN before the last data segment waits for it",
			evs: []ev{{true, fACK | fPSH, 0, sq}, {false, fFIN | fACK, len(sa), nil}, {true, fFIN | fACK, len(sq), nil},
				{false, fACK | fPSH, 50, sa[50:]}, {false, fACK | fPSH, 0, sa[:50]}},
			client: 1, server: 1, open: 0, flows: 1, created: 1, closed: 1, messages: 2,
		},
		{
			name: "retransmission after close is not counted twice",
			evs: []ev{{true, fACK | fPSH, 0, sq}, {false, fACK | fPSH | fFIN, 0, sa}, {true, fFIN | fACK, len(sq), nil},
				{false, fACK | fPSH, 0, sa}, {true, fACK | fPSH, 0, sq}},
			client: 1, server: 1, open: 0, flows: 1, created: 1, closed: 1, messages: 2,
		},
		{
			name:   "RST closes and drops partial data",
			evs:    []ev{{true, fACK | fPSH, 0, sq}, {false, fACK | fPSH, 0, sa[:40]}, {true, fRST, len(sq), nil}},
			client: 1, open: 0, flows: 1, created: 1, closed: 1, bytesDropped: 40, messages: 1,
		},
		{
			name:   "RST with data delivers it first",
			evs:    []ev{{true, fACK | fPSH | fRST, 0, sq}},
			client: 1, open: 0, flows: 1, created: 1, closed: 1, messages: 1,
		},
		{
			name: "new SYN with another ISN on an open flow starts over",
			evs: []ev{{true, fACK | fPSH, 0, sq[:10]}, {true, fSYN, 5000, nil}, {false, fSYN | fACK, 5000, nil},
				{true, fACK | fPSH, 5001, sq}},
			client: 1, open: 1, flows: 1, created: 2, closed: 1, bytesDropped: 10, messages: 1,
		},
		{
			name: "new SYN on a closed flow starts over",
			evs: []ev{{true, fACK | fPSH | fFIN, 0, sq}, {false, fACK | fFIN, 0, nil},
				{true, fSYN, 9000, nil}, {true, fACK | fPSH, 9001, sq}},
			client: 2, open: 1, flows: 1, created: 2, closed: 1, messages: 2,
		},
		{
			name:   "retransmitted SYN is harmless",
			evs:    []ev{{true, fSYN, -1, nil}, {true, fACK | fPSH, 0, sq}},
			client: 1, open: 1, flows: 1, created: 1, messages: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var col collector
			r := New(Config{}, col.emit)
			play(r, newConn(6, 45000), 100, 200, 0, append(handshake(), tc.evs...))
			if err := r.check(); err != nil {
				t.Fatal(err)
			}
			st := r.Stats()
			if g := len(col.side(true)); g != tc.client {
				t.Errorf("client messages %d, want %d", g, tc.client)
			}
			if g := len(col.side(false)); g != tc.server {
				t.Errorf("server messages %d, want %d", g, tc.server)
			}
			if st.Open != tc.open || st.Flows != tc.flows || st.Created != tc.created || st.Closed != tc.closed ||
				st.BytesDropped != tc.bytesDropped || st.Messages != tc.messages {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestIdleExpiry(t *testing.T) {
	sec := time.Second.Nanoseconds()
	var col collector
	r := New(Config{}, col.emit)
	a, b, c := newConn(1, 1001), newConn(2, 1002), newConn(3, 1003)
	msg := stream(message(1, 50))
	feed(r, a.pkt(0, true, fACK|fPSH, 1, msg[:20])) // partial message pending
	feed(r, b.pkt(10*sec, true, fSYN, 1, nil))
	feed(r, c.pkt(30*sec-1, true, fSYN, 1, nil))
	if st := r.Stats(); st.Expired != 0 || st.Flows != 3 {
		t.Fatalf("before timeout: %+v", st)
	}
	feed(r, c.pkt(30*sec, true, fACK, 2, nil)) // a is idle for exactly 30 s
	st := r.Stats()
	if st.Expired != 1 || st.Flows != 2 || st.ErrEvictedPending != 1 || st.BytesDropped != 20 {
		t.Fatalf("after timeout: %+v", st)
	}
	// a's rest is now a mid-stream pickup that starts inside a message: nothing is emitted.
	feed(r, a.pkt(31*sec, true, fACK|fPSH, 21, msg[20:]))
	if len(col.msgs) != 0 {
		t.Errorf("%d messages from a stale half", len(col.msgs))
	}
	if err := r.check(); err != nil {
		t.Fatal(err)
	}

	t.Run("at most MaxCleanups per packet", func(t *testing.T) {
		r := New(Config{}, func(*Message) {})
		for i := range 250 {
			feed(r, newConn(byte(i), uint16(2000+i)).pkt(0, true, fSYN, 1, nil))
		}
		feed(r, newConn(1, 9).pkt(60*sec, true, fSYN, 1, nil))
		if st := r.Stats(); st.Expired != MaxCleanups {
			t.Fatalf("expired %d, want %d", st.Expired, MaxCleanups)
		}
		feed(r, newConn(1, 9).pkt(60*sec, true, fACK, 2, nil))
		feed(r, newConn(1, 9).pkt(60*sec, true, fACK, 2, nil))
		if st := r.Stats(); st.Expired != 250 || st.Flows != 1 {
			t.Fatalf("expired %d flows %d, want 250 1", st.Expired, st.Flows)
		}
	})

	t.Run("ExpireIdle takes them all, without a packet", func(t *testing.T) {
		r := New(Config{}, func(*Message) {})
		for i := range 250 {
			feed(r, newConn(byte(i), uint16(2000+i)).pkt(int64(i)*sec/10, true, fACK|fPSH, 1, msg[:5]))
		}
		r.ExpireIdle(30*sec + 100*sec/10) // flows 0..100 idle for ≥ 30 s
		if st := r.Stats(); st.Expired != 101 || st.Flows != 149 || st.ErrEvictedPending != 101 {
			t.Fatalf("after ExpireIdle: %+v", st)
		}
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
	})
}

// lruPorts lists the client ports of the tracked flows, most recent first.
func (r *Reassembler) lruPorts() []uint16 {
	var out []uint16
	for fi := r.head; fi >= 0; fi = r.flows[fi].next {
		out = append(out, r.flows[fi].cport)
	}
	return out
}

func TestLRUEvictionOrder(t *testing.T) {
	mk := func(port uint16) conn { return newConn(7, port) }
	tests := []struct {
		name    string
		ports   []uint16 // flows touched in this order (each a SYN or an ACK on an existing one)
		want    []uint16 // tracked, most recent first
		evicted uint64
	}{
		{"no eviction below the cap", []uint16{1, 2, 3}, []uint16{3, 2, 1}, 0},
		{"oldest evicted", []uint16{1, 2, 3, 4}, []uint16{4, 3, 2}, 1},
		{"touch saves a flow", []uint16{1, 2, 3, 1, 4}, []uint16{4, 1, 3}, 1},
		{"touch order decides", []uint16{1, 2, 3, 2, 1, 4, 5}, []uint16{5, 4, 1}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Config{MaxFlows: 3}, func(*Message) {})
			seen := map[uint16]bool{}
			for i, p := range tc.ports {
				flags := fSYN
				if seen[p] {
					flags = fACK
				}
				seen[p] = true
				feed(r, mk(p).pkt(int64(i)*ms, true, flags, 1, nil))
			}
			if g := r.lruPorts(); !slices.Equal(g, tc.want) {
				t.Errorf("LRU %v, want %v", g, tc.want)
			}
			if st := r.Stats(); st.Evicted != tc.evicted {
				t.Errorf("evicted %d, want %d", st.Evicted, tc.evicted)
			}
			if err := r.check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFullKeyCompare feeds distinct connections under one forced flow hash: they must stay
// apart, and the chain bound must hold.
func TestFullKeyCompare(t *testing.T) {
	var col collector
	r := New(Config{}, col.emit)
	const same = 0x1234
	msg := stream(message(1, 40))
	for i := range 10 {
		c := newConn(byte(i), 5000)
		if i%2 == 1 {
			c = newConn6(byte(i), 5000)
		}
		r.Segment(c.pkt(1, true, fACK|fPSH, 1, msg[:30]), same)
	}
	for i := range 10 {
		c := newConn(byte(i), 5000)
		if i%2 == 1 {
			c = newConn6(byte(i), 5000)
		}
		r.Segment(c.pkt(2, true, fACK|fPSH, 31, msg[30:]), same)
	}
	if len(col.msgs) != 10 || r.Stats().Flows != 10 {
		t.Fatalf("%d messages, %d flows; want 10 and 10", len(col.msgs), r.Stats().Flows)
	}
	for i := range 3 * maxChain {
		r.Segment(newConn(byte(i), 6000).pkt(3, true, fSYN, 1, nil), same)
		if err := r.check(); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Flows != maxChain {
		t.Fatalf("flows %d, want chain bound %d", st.Flows, maxChain)
	}
}

// TestProperty: a random message stream in both directions, cut into random segments,
// duplicated, overlapped and locally reordered, comes out exactly once, in order.
func TestProperty(t *testing.T) {
	iters := 2000
	if testing.Short() {
		iters = 200
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for it := range iters {
		var col collector
		r := New(Config{}, col.emit)
		c := newConn(byte(it), uint16(1024+it))
		cisn, sisn := rng.Uint32(), rng.Uint32()
		if it%4 == 0 {
			cisn = math.MaxUint32 - uint32(rng.IntN(2000))
		}
		cm := randomMessages(rng, 1+rng.IntN(20), 400)
		sm := randomMessages(rng, 1+rng.IntN(20), 1500)
		evs := mangle(rng, true, stream(cm...))
		evs = interleave(rng, evs, mangle(rng, false, stream(sm...)))
		play(r, c, cisn, sisn, 0, append(handshake(), evs...))
		if err := r.check(); err != nil {
			t.Fatalf("iteration %d: %v", it, err)
		}
		if g := col.side(true); !slices.Equal(g, strs(cm)) {
			t.Fatalf("iteration %d: client %d messages, want %d", it, len(g), len(cm))
		}
		if g := col.side(false); !slices.Equal(g, strs(sm)) {
			t.Fatalf("iteration %d: server %d messages, want %d", it, len(g), len(sm))
		}
		if st := r.Stats(); st.Errors() != 0 || st.BytesDropped != 0 {
			t.Fatalf("iteration %d: stats %+v", it, st)
		}
	}
}

// mangle cuts s into random segments, adds retransmissions (exact and re-cut), and reorders
// them locally (each moves by at most a few places), then appends a FIN.
func mangle(rng *rand.Rand, client bool, s []byte) []ev {
	var segs []seg
	for o := 0; o < len(s); {
		n := 1 + rng.IntN(min(len(s)-o, 1+rng.IntN(700)))
		segs = append(segs, seg{o, s[o : o+n]})
		o += n
	}
	for range rng.IntN(len(segs)/2 + 2) {
		a := rng.IntN(len(s))
		b := a + 1 + rng.IntN(min(len(s)-a, 600))
		segs = slices.Insert(segs, min(len(segs), rng.IntN(len(segs)+1)), seg{a, s[a:b]})
	}
	// Local reorder: sort by index plus a bounded random jitter.
	type keyed struct {
		k float64
		s seg
	}
	ks := make([]keyed, len(segs))
	for i, sg := range segs {
		ks[i] = keyed{float64(i) + rng.Float64()*6, sg}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		switch {
		case a.k < b.k:
			return -1
		case a.k > b.k:
			return 1
		}
		return 0
	})
	out := make([]ev, 0, len(ks)+1)
	for _, k := range ks {
		out = append(out, ev{client, fACK | fPSH, k.s.off, k.s.data})
	}
	return append(out, ev{client, fFIN | fACK, len(s), nil})
}

// interleave merges two event lists keeping each one's order.
func interleave(rng *rand.Rand, a, b []ev) []ev {
	out := make([]ev, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		if len(b) == 0 || (len(a) > 0 && rng.IntN(2) == 0) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

func TestFlushAll(t *testing.T) {
	var col collector
	r := New(Config{}, col.emit)
	msg := stream(message(1, 50))
	for i := range 5 {
		feed(r, newConn(byte(i), 3000).pkt(1, true, fACK|fPSH, 1, msg[:10]))
	}
	feed(r, newConn(9, 3000).pkt(1, true, fRST, 1, nil)) // untracked: ignored
	r.FlushAll()
	st := r.Stats()
	if st.Flows != 0 || st.Open != 0 || st.Closed != 5 || st.BytesDropped != 50 || len(col.msgs) != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := r.check(); err != nil {
		t.Fatal(err)
	}
	// Usable again, reusing the pooled buffers.
	feed(r, newConn(1, 3000).pkt(2, true, fACK|fPSH, 1, msg))
	if len(col.msgs) != 1 {
		t.Fatal("no message after FlushAll")
	}
}

func TestIgnoresNonTCP(t *testing.T) {
	r := New(Config{}, func(*Message) { t.Fatal("emitted") })
	p := newConn(1, 1).pkt(1, true, fACK, 1, stream(message(1, 20)))
	for _, mut := range []func(*decode.Packet){
		func(p *decode.Packet) { p.L4 = decode.L4UDP },
		func(p *decode.Packet) { p.L3 = decode.L3None },
		func(p *decode.Packet) { p.Fragment, p.FragOffset = true, 8 },
	} {
		q := *p
		mut(&q)
		q.Payload = q.Payload[:10]
		feed(r, &q)
	}
	if r.Stats().Flows != 0 {
		t.Fatal("tracked a non-TCP packet")
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		in, want Config
	}{
		{Config{}, Config{DefaultMaxFlows, DefaultIdleTimeout, DefaultMaxSideBytes, DefaultMaxTotalBytes, DefaultMaxOOOSegments}},
		{Config{-1, -1, -1, -1, -1}, Config{DefaultMaxFlows, DefaultIdleTimeout, DefaultMaxSideBytes, DefaultMaxTotalBytes, DefaultMaxOOOSegments}},
		{Config{5, time.Second, 3, 10, 2}, Config{5, time.Second, 14, 4 * (14 + 8*3), 2}},
		{Config{1, time.Second, 1000, 5000, 1000}, Config{1, time.Second, 1000, 4 * (1000 + 8*257), 256}},
	}
	for _, tc := range tests {
		if g := tc.in.normalized(); g != tc.want {
			t.Errorf("%+v normalized to %+v, want %+v", tc.in, g, tc.want)
		}
	}
}
