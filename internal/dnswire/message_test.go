package dnswire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseHeaderFlags(t *testing.T) {
	// Each row sets one header bit (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD/CD) and names the
	// field that must be the only one to change.
	tests := []struct {
		name  string
		flags uint16
		check func(m *Message) bool
	}{
		{"QR", 0x8000, func(m *Message) bool { return m.QR }},
		{"AA", 0x0400, func(m *Message) bool { return m.AA }},
		{"TC", 0x0200, func(m *Message) bool { return m.TC }},
		{"RD", 0x0100, func(m *Message) bool { return m.RD }},
		{"RA", 0x0080, func(m *Message) bool { return m.RA }},
		{"Z", 0x0040, func(m *Message) bool { return true }},
		{"AD", 0x0020, func(m *Message) bool { return m.AD }},
		{"CD", 0x0010, func(m *Message) bool { return m.CD }},
		{"opcode 5", 5 << 11, func(m *Message) bool { return m.Opcode == 5 }},
		{"opcode 15", 0x7800, func(m *Message) bool { return m.Opcode == 15 }},
		{"rcode 3", 3, func(m *Message) bool { return m.Rcode == 3 && m.ExtRcode == 3 }},
		{"rcode 15", 15, func(m *Message) bool { return m.Rcode == 15 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := wire{}.header(0xBEEF, tt.flags, 0, 1, 2, 3)
			var m Message
			if err := m.Parse(b); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.check(&m) {
				t.Errorf("flag not decoded: %+v", m)
			}
			set := 0
			for _, f := range []bool{m.QR, m.AA, m.TC, m.RD, m.RA, m.AD, m.CD} {
				if f {
					set++
				}
			}
			want := 1
			if tt.flags&0xFFF0&^0x0040 == 0 || tt.flags&0x7800 != 0 {
				want = 0
			}
			if set != want {
				t.Errorf("%d flags set, want %d: %+v", set, want, m)
			}
			if m.ID != 0xBEEF || m.QDCount != 0 || m.ANCount != 1 || m.NSCount != 2 || m.ARCount != 3 || m.Size != 12 {
				t.Errorf("header fields: %+v", m)
			}
			if m.HasQuestion {
				t.Errorf("HasQuestion with QDCOUNT 0")
			}
		})
	}
}

func TestParseShort(t *testing.T) {
	for n := 0; n < 12; n++ {
		var m Message
		b := wire{}.header(1, 0x8180, 1, 0, 0, 0)[:n]
		err := m.Parse(b)
		if !errors.Is(err, ErrShort) {
			t.Errorf("len %d: err %v, want ErrShort", n, err)
		}
		if m.Size != n || m.ID != 0 || m.QR {
			t.Errorf("len %d: fields set on a short message: %+v", n, m)
		}
		if err := m.ScanRecords(); !errors.Is(err, ErrShort) {
			t.Errorf("len %d: ScanRecords err %v, want ErrShort", n, err)
		}
	}
}

func TestParseQuestionNames(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name      string
		msg       wire
		wantErr   error
		lower     string
		orig      string
		qtype     uint16
		qclass    uint16
		qEndCheck int // expected offset after the question, 0 = skip
	}{
		{
			name:  "mixed case",
			msg:   wire{}.header(1, 0, 1, 0, 0, 0).name("www", "ExAmPle", "COM").u16(1).u16(1),
			lower: "www.example.com", orig: "www.ExAmPle.COM", qtype: 1, qclass: 1,
			qEndCheck: 12 + 17 + 4,
		},
		{
			name:  "root",
			msg:   wire{}.header(1, 0, 1, 0, 0, 0).name().u16(48).u16(1),
			lower: "", orig: "", qtype: 48, qclass: 1, qEndCheck: 12 + 1 + 4,
		},
		{
			name:  "escapes: dot, backslash, space, NUL, DEL, 0xff, UTF-8 é",
			msg:   wire{}.header(1, 0, 1, 0, 0, 0).name("a.b", `c\d`, "e f", "\x00\x7f\xff", "\xc3\xa9").u16(16).u16(3),
			lower: `a\.b.c\\d.e\032f.\000\127\255.\195\169`, orig: `a\.b.c\\d.e\032f.\000\127\255.\195\169`,
			qtype: 16, qclass: 3,
		},
		{
			name:  "printable specials stay raw",
			msg:   wire{}.header(1, 0, 1, 0, 0, 0).name(`!"#$%&'()*+,-/:;<=>?@[]^_{|}~`).u16(1).u16(1),
			lower: `!"#$%&'()*+,-/:;<=>?@[]^_{|}~`, orig: `!"#$%&'()*+,-/:;<=>?@[]^_{|}~`, qtype: 1, qclass: 1,
		},
		{
			name:  "only A-Z lower-cased",
			msg:   wire{}.header(1, 0, 1, 0, 0, 0).name("AZ@[`az{\xc4").u16(1).u16(1),
			lower: "az@[`az{\\196", orig: "AZ@[`az{\\196", qtype: 1, qclass: 1,
		},
		{
			// Offset 12: 3 "foo", pointer to 22; offset 18: type/class; offset 22: 3 "bar" 0.
			name:  "forward compression pointer",
			msg:   wire{}.header(1, 0, 1, 0, 0, 0).u8(3).raw('f', 'o', 'o').ptr(22).u16(28).u16(1).name("bar"),
			lower: "foo.bar", orig: "foo.bar", qtype: 28, qclass: 1, qEndCheck: 22,
		},
		{
			// The name is a pointer into the header's ID field: ID 0x0161 is "\x01a", then
			// flags 0x0000 end the name.
			name:  "pointer into the header",
			msg:   wire{}.header(0x0161, 0, 1, 0, 0, 0).ptr(0).u16(1).u16(1),
			lower: "a", orig: "a", qtype: 1, qclass: 1, qEndCheck: 18,
		},
		{
			name:  "255 wire octets",
			msg:   wire{}.header(1, 0, 1, 0, 0, 0).name(long63, long63, long63, strings.Repeat("b", 61)).u16(1).u16(1),
			lower: long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 61),
			orig:  long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 61), qtype: 1, qclass: 1,
		},
		{
			name:    "256 wire octets",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).name(long63, long63, long63, strings.Repeat("b", 62)).u16(1).u16(1),
			wantErr: errQNameLong,
		},
		{
			name:    "pointer to itself",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).ptr(12).u16(1).u16(1),
			wantErr: errQNamePointers,
		},
		{
			name:    "two pointers in a loop",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).u8(1).raw('a').ptr(20).u16(1).u16(1).u8(1).raw('b').ptr(12),
			wantErr: errQNamePointers,
		},
		{
			name:    "label type 0x40",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).u8(0x41).raw('a', 0).u16(1).u16(1),
			wantErr: errQNameLabel,
		},
		{
			name:    "label type 0x80",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).u8(0x81).raw('a', 0).u16(1).u16(1),
			wantErr: errQNameLabel,
		},
		{
			name:    "label runs past the end",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).u8(5).raw('a', 'b'),
			wantErr: errQNameShort,
		},
		{
			name:    "no root label",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).u8(1).raw('a'),
			wantErr: errQNameShort,
		},
		{
			name:    "pointer cut in half",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).u8(0xC0),
			wantErr: errQNameShort,
		},
		{
			name:    "pointer past the end",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).ptr(200).u16(1).u16(1),
			wantErr: errQNameShort,
		},
		{
			name:    "missing class",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0).name("a").u16(1),
			wantErr: errQuestionShort,
		},
		{
			name:    "QDCOUNT 1, no question",
			msg:     wire{}.header(1, 0, 1, 0, 0, 0),
			wantErr: errQNameShort,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			// A previous message must leave nothing behind.
			if err := m.Parse(wire{}.header(9, 0xFFFF, 1, 0, 0, 0).name("stale", "name").u16(2).u16(2)); err != nil {
				t.Fatal(err)
			}
			err := m.Parse(tt.msg)
			if tt.wantErr != nil {
				if err != tt.wantErr || !errors.Is(err, ErrQuestion) {
					t.Fatalf("err = %v, want %v (an ErrQuestion)", err, tt.wantErr)
				}
				if m.HasQuestion || len(m.QName()) != 0 || len(m.QNameOrig()) != 0 || m.QType != 0 {
					t.Errorf("question fields set after an error: %+v %q", m, m.QName())
				}
				if m.ID != be16(tt.msg) || m.QDCount != 1 {
					t.Errorf("header not valid after a question error: %+v", m)
				}
				if err := m.ScanRecords(); !errors.Is(err, ErrQuestion) {
					t.Errorf("ScanRecords err %v, want ErrQuestion", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !m.HasQuestion || string(m.QName()) != tt.lower || string(m.QNameOrig()) != tt.orig ||
				m.QType != tt.qtype || m.QClass != tt.qclass {
				t.Errorf("got %v %q %q %d %d, want %q %q %d %d", m.HasQuestion, m.QName(), m.QNameOrig(),
					m.QType, m.QClass, tt.lower, tt.orig, tt.qtype, tt.qclass)
			}
			if tt.qEndCheck != 0 && m.qEnd != tt.qEndCheck {
				t.Errorf("question ends at %d, want %d", m.qEnd, tt.qEndCheck)
			}
			if !utf8.Valid(m.QName()) || !utf8.Valid(m.QNameOrig()) {
				t.Errorf("invalid UTF-8")
			}
			if m.ExtRcode != 0 || m.HasOPT || m.QR || m.Opcode != 0 || m.RD {
				t.Errorf("stale fields: %+v", m)
			}
		})
	}
}

// TestParsePointerLimit follows chains of exactly 20 and 21 pointers.
func TestParsePointerLimit(t *testing.T) {
	// The question's name is a pointer (offset 12) to a chain starting at 18 in which each
	// pointer targets the next; the last targets the name "x". n pointers in all.
	build := func(n int) wire {
		w := wire{}.header(1, 0, 1, 0, 0, 0).ptr(18).u16(1).u16(1)
		for i := 1; i < n; i++ {
			w = w.ptr(18 + 2*i)
		}
		return w.name("x")
	}
	for _, tt := range []struct {
		pointers int
		ok       bool
	}{{1, true}, {19, true}, {20, true}, {21, false}, {200, false}} {
		var m Message
		err := m.Parse(build(tt.pointers))
		if tt.ok && (err != nil || string(m.QName()) != "x" || m.qEnd != 18) {
			t.Errorf("%d pointers: err %v name %q", tt.pointers, err, m.QName())
		}
		if !tt.ok && err != errQNamePointers {
			t.Errorf("%d pointers: err %v, want %v", tt.pointers, err, errQNamePointers)
		}
	}
}

func TestParseLongestRendering(t *testing.T) {
	// 250 label octets of 0xff (the most 255 wire octets can carry) render as \255 each.
	l63 := strings.Repeat("\xff", 63)
	b := wire{}.header(1, 0, 1, 0, 0, 0).name(l63, l63, l63, strings.Repeat("\xff", 61)).u16(1).u16(1)
	var m Message
	if err := m.Parse(b); err != nil {
		t.Fatal(err)
	}
	if got, want := len(m.QName()), 250*4+3; got != want {
		t.Errorf("rendered length %d, want %d", got, want)
	}
	if strings.Count(string(m.QName()), `\255`) != 250 {
		t.Errorf("rendering: %q", m.QName())
	}
}

func TestScanRecords(t *testing.T) {
	q := func(an, ns, ar uint16) wire {
		return wire{}.header(7, 0x8180, 1, an, ns, ar).name("example", "com").u16(1).u16(1)
	}
	rootOPT := func(w wire, udp uint16, ttl uint32, rdata []byte) wire {
		return w.name().rr(41, udp, ttl, rdata)
	}
	rrsig := make([]byte, 18) // content is irrelevant to the scan

	type want struct {
		err                 error
		rrsig, opt, do, ecs bool
		udp                 uint16
		ver                 uint8
		ext                 uint16
		fam                 uint16
		src, scope          uint8
		addr                [16]byte
		text                string
	}
	tests := []struct {
		name string
		msg  wire
		want want
	}{
		{
			name: "no records",
			msg:  q(0, 0, 0),
			want: want{},
		},
		{
			name: "RRSIG answer after an A",
			msg: q(2, 0, 0).ptr(12).rr(1, 1, 60, []byte{192, 0, 2, 1}).
				ptr(12).rr(46, 1, 60, rrsig),
			want: want{rrsig: true},
		},
		{
			name: "RRSIG only in authority",
			msg:  q(0, 1, 0).ptr(12).rr(46, 1, 60, rrsig),
			want: want{},
		},
		{
			name: "RRSIG only in additional",
			msg:  q(0, 0, 1).ptr(12).rr(46, 1, 60, rrsig),
			want: want{},
		},
		{
			// TTL 0x01008000: extended rcode 1 (=> 16 with header rcode 0), version 0, DO.
			name: "OPT after an A, DO, BADVERS, ECS as third option",
			msg: q(0, 0, 2).ptr(12).rr(1, 1, 60, []byte{1, 2, 3, 4}).
				name().rr(41, 1232, 0x01008000, opt(
				10, []byte{1, 2, 3, 4, 5, 6, 7, 8}, // COOKIE
				12, []byte{0, 0, 0}, // PADDING
				8, ecs(1, 24, 0, 192, 0, 2))),
			want: want{opt: true, do: true, udp: 1232, ext: 16, ecs: true, fam: 1, src: 24,
				addr: [16]byte{192, 0, 2}, text: "192.0.2.0"},
		},
		{
			name: "ECS IPv6 /56",
			msg:  rootOPT(q(0, 0, 1), 4096, 0, opt(8, ecs(2, 56, 0, 0x20, 0x01, 0x04, 0x70, 0x1f, 0x0b, 0x16))),
			want: want{opt: true, udp: 4096, ecs: true, fam: 2, src: 56,
				addr: [16]byte{0x20, 0x01, 0x04, 0x70, 0x1f, 0x0b, 0x16}, text: "2001:470:1f0b:1600::"},
		},
		{
			name: "ECS IPv6 /128 scope 64, all 16 octets kept",
			msg: rootOPT(q(0, 0, 1), 512, 0x00010000, opt(8, ecs(2, 128, 64,
				0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x1))),
			want: want{opt: true, udp: 512, ver: 1, ecs: true, fam: 2, src: 128, scope: 64,
				addr: [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1},
				text: "2001:db8::1:0:0:1"}, // RFC 5952 §4.2.3: the first of two equal zero runs
		},
		{
			name: "ECS /0 without address",
			msg:  rootOPT(q(0, 0, 1), 512, 0, opt(8, ecs(1, 0, 0))),
			want: want{opt: true, udp: 512, ecs: true, fam: 1, text: "0.0.0.0"},
		},
		{
			name: "ECS family 3 is ignored",
			msg:  rootOPT(q(0, 0, 1), 512, 0, opt(8, ecs(3, 8, 0, 1))),
			want: want{opt: true, udp: 512},
		},
		{
			name: "ECS IPv4 prefix 33 is ignored",
			msg:  rootOPT(q(0, 0, 1), 512, 0, opt(8, ecs(1, 33, 0, 1, 2, 3, 4, 5))),
			want: want{opt: true, udp: 512},
		},
		{
			name: "ECS IPv4 with 5 address octets is ignored",
			msg:  rootOPT(q(0, 0, 1), 512, 0, opt(8, ecs(1, 32, 0, 1, 2, 3, 4, 5))),
			want: want{opt: true, udp: 512},
		},
		{
			name: "ECS shorter than 4 octets is ignored",
			msg:  rootOPT(q(0, 0, 1), 512, 0, opt(8, []byte{0, 1, 24})),
			want: want{opt: true, udp: 512},
		},
		{
			name: "first ECS option wins",
			msg:  rootOPT(q(0, 0, 1), 512, 0, opt(8, ecs(1, 8, 0, 10), 8, ecs(1, 16, 0, 172, 16))),
			want: want{opt: true, udp: 512, ecs: true, fam: 1, src: 8, addr: [16]byte{10}, text: "10.0.0.0"},
		},
		{
			name: "second OPT ignored",
			msg:  rootOPT(rootOPT(q(0, 0, 2), 1400, 0, nil), 512, 0x0F008000, opt(8, ecs(1, 8, 0, 10))),
			want: want{opt: true, udp: 1400},
		},
		{
			name: "extended rcode combines with header rcode",
			msg: rootOPT(wire{}.header(7, 0x8183, 1, 0, 0, 1).name("x").u16(1).u16(1),
				512, 0xFF000000, nil),
			want: want{opt: true, udp: 512, ext: 0xFF3},
		},
		{
			name: "option runs past the OPT record",
			msg:  rootOPT(q(0, 0, 1), 512, 0, wire{}.u16(8).u16(10).raw(0, 1, 8, 0)),
			want: want{opt: true, udp: 512, err: errOptionShort},
		},
		{
			name: "record cut short keeps what came before",
			msg:  q(2, 0, 0).ptr(12).rr(46, 1, 60, rrsig).ptr(12).u16(1).u16(1),
			want: want{rrsig: true, err: errRecordShort},
		},
		{
			name: "rdata past the end",
			msg:  q(1, 0, 0).ptr(12).u16(46).u16(1).u32(0).u16(100).raw(1, 2, 3),
			want: want{err: errRecordShort},
		},
		{
			name: "reserved label type in an owner name",
			msg:  q(1, 0, 0).u8(0x80).rr(46, 1, 60, rrsig),
			want: want{err: errRecordLabel},
		},
		{
			name: "counts larger than the message",
			msg:  q(5, 0, 0).ptr(12).rr(46, 1, 60, rrsig),
			want: want{rrsig: true, err: errRecordShort},
		},
		{
			name: "second question skipped, OPT found",
			msg: rootOPT(wire{}.header(7, 0, 2, 0, 0, 1).name("a").u16(1).u16(1).
				name("b", "c").u16(28).u16(1), 1232, 0, nil),
			want: want{opt: true, udp: 1232},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := m.Parse(tt.msg); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err := m.ScanRecords()
			if err != tt.want.err {
				t.Errorf("err %v, want %v", err, tt.want.err)
			}
			w := tt.want
			if w.ext == 0 {
				w.ext = uint16(m.Rcode)
			}
			if m.HasRRSIG != w.rrsig || m.HasOPT != w.opt || m.DO != w.do || m.EDNSUDPSize != w.udp ||
				m.EDNSVersion != w.ver || m.ExtRcode != w.ext {
				t.Errorf("got rrsig %v opt %v do %v udp %d ver %d ext %d, want %+v",
					m.HasRRSIG, m.HasOPT, m.DO, m.EDNSUDPSize, m.EDNSVersion, m.ExtRcode, w)
			}
			if m.HasECS != w.ecs || m.ECSFamily != w.fam || m.ECSSourcePrefix != w.src ||
				m.ECSScopePrefix != w.scope || m.ECSAddr != w.addr {
				t.Errorf("got ECS %v %d /%d scope %d %v, want %+v", m.HasECS, m.ECSFamily,
					m.ECSSourcePrefix, m.ECSScopePrefix, m.ECSAddr, w)
			}
			if got := string(m.AppendECSText([]byte("x="))); got != "x="+w.text {
				t.Errorf("AppendECSText %q, want %q", got, "x="+w.text)
			}
			// A second scan gives the same answer; a new Parse clears it.
			if err2 := m.ScanRecords(); err2 != err || m.HasOPT != w.opt || m.HasECS != w.ecs {
				t.Errorf("second scan differs: %v", err2)
			}
			_ = m.Parse(q(0, 0, 0))
			if m.HasRRSIG || m.HasOPT || m.HasECS || m.DO || m.EDNSUDPSize != 0 || m.ECSAddr != ([16]byte{}) {
				t.Errorf("Parse left scan results behind: %+v", m)
			}
		})
	}
}

func TestScanRecordsLimit(t *testing.T) {
	// MaxRecords minimal answers (root owner, type A, empty rdata: 11 octets) then an OPT:
	// the OPT is the (MaxRecords+1)th record and is not reached.
	build := func(n int) wire {
		w := wire{}.header(1, 0x8000, 0, uint16(n), 0, 1)
		for range n {
			w = w.name().rr(1, 1, 0, nil)
		}
		return w.name().rr(41, 1232, 0, nil)
	}
	var m Message
	if err := m.Parse(build(MaxRecords - 1)); err != nil {
		t.Fatal(err)
	}
	if err := m.ScanRecords(); err != nil || !m.HasOPT {
		t.Errorf("%d records: err %v, OPT %v", MaxRecords, err, m.HasOPT)
	}
	if err := m.Parse(build(MaxRecords)); err != nil {
		t.Fatal(err)
	}
	if err := m.ScanRecords(); err != ErrTooManyRecords || m.HasOPT {
		t.Errorf("%d records: err %v, OPT %v", MaxRecords+1, err, m.HasOPT)
	}
	// Questions after the first count towards the limit too.
	w := wire{}.header(1, 0, MaxRecords+2, 0, 0, 0)
	for range MaxRecords + 2 {
		w = w.name().u16(1).u16(1)
	}
	if err := m.Parse(w); err != nil {
		t.Fatal(err)
	}
	if err := m.ScanRecords(); err != ErrTooManyRecords {
		t.Errorf("questions: err %v", err)
	}
}

func TestScanRecordsWithoutQuestion(t *testing.T) {
	// QDCOUNT 0: records start right after the header.
	b := wire{}.header(1, 0x8000, 0, 1, 0, 1).name().rr(46, 1, 0, nil).name().rr(41, 900, 0, nil)
	var m Message
	if err := m.Parse(b); err != nil {
		t.Fatal(err)
	}
	if err := m.ScanRecords(); err != nil || !m.HasRRSIG || !m.HasOPT || m.EDNSUDPSize != 900 {
		t.Errorf("err %v %+v", err, m)
	}
	var zero Message
	if err := zero.ScanRecords(); err != ErrShort {
		t.Errorf("zero Message: %v", err)
	}
}

func TestAppendECSTextNoECS(t *testing.T) {
	var m Message
	dst := []byte("keep")
	if got := m.AppendECSText(dst); !bytes.Equal(got, dst) {
		t.Errorf("got %q", got)
	}
}

func TestErrorsWrapSentinels(t *testing.T) {
	for _, e := range []error{errQNameShort, errQNameLong, errQNamePointers, errQNameLabel, errQuestionShort} {
		if !errors.Is(e, ErrQuestion) {
			t.Errorf("%v does not wrap ErrQuestion", e)
		}
	}
	for _, e := range []error{errRecordShort, errRecordLabel, errOptionShort} {
		if !errors.Is(e, ErrRecord) {
			t.Errorf("%v does not wrap ErrRecord", e)
		}
	}
}
