package dnswire

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/miekg/dns"
)

// FuzzParse runs the whole API on arbitrary bytes: nothing may panic, the name renderings
// must be printable ASCII, and where miekg/dns unpacks the message our header (and question,
// when both found one) must agree with it. The seed corpus in testdata/fuzz/FuzzParse holds
// messages packed by miekg/dns (all sections, compression, OPT with ECS) and hand-made
// malformed ones.
func FuzzParse(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(wire{}.header(1, 0x0100, 1, 0, 0, 0).name("www", "Example", "com").u16(1).u16(1)))
	f.Add([]byte(wire{}.header(1, 0, 1, 0, 0, 0).ptr(12).u16(1).u16(1)))
	f.Add([]byte(wire{}.header(7, 0x8180, 1, 1, 0, 1).name("a", "b").u16(1).u16(1).
		ptr(12).rr(46, 1, 60, make([]byte, 18)).
		name().rr(41, 1232, 0x01008000, opt(8, ecs(2, 56, 0, 0x20, 0x01, 0x04, 0x70, 0x1f, 0x0b, 0x16)))))

	var m Message
	var ecsBuf [64]byte
	f.Fuzz(func(t *testing.T, b []byte) {
		perr := m.Parse(b)
		serr := m.ScanRecords()
		text := m.AppendECSText(ecsBuf[:0])
		if m.Size != len(b) {
			t.Fatalf("Size %d, len %d", m.Size, len(b))
		}
		if len(b) < 12 {
			if perr != ErrShort || serr != ErrShort {
				t.Fatalf("short message: %v %v", perr, serr)
			}
			return
		}
		name, orig := m.QName(), m.QNameOrig()
		if len(name) != len(orig) || !utf8.Valid(name) || len(name) > 1003 {
			t.Fatalf("bad rendering %q / %q", name, orig)
		}
		for _, c := range name {
			if c < 0x21 || c > 0x7e || ('A' <= c && c <= 'Z') {
				t.Fatalf("byte %#x in %q", c, name)
			}
		}
		if !bytes.EqualFold(name, orig) {
			t.Fatalf("%q is not %q lower-cased", name, orig)
		}
		if m.HasECS && len(text) == 0 || !m.HasECS && len(text) != 0 {
			t.Fatalf("ECS %v text %q", m.HasECS, text)
		}
		q2, q3 := AggregateDomain(name, PublicSuffixSize(name))
		if !bytes.HasSuffix(name, q2) || !bytes.HasSuffix(name, q3) {
			t.Fatalf("aggregates %q %q of %q", q2, q3, name)
		}
		for _, s := range []int{-1, 0, 1, 4, len(name), len(name) + 1} {
			AggregateDomain(name, s)
		}

		mm := new(dns.Msg)
		if !unpacks(mm, b) {
			return
		}
		if m.ID != mm.Id || m.QR != mm.Response || int(m.Opcode) != mm.Opcode || m.AA != mm.Authoritative ||
			m.TC != mm.Truncated || m.RD != mm.RecursionDesired || m.RA != mm.RecursionAvailable ||
			m.AD != mm.AuthenticatedData || m.CD != mm.CheckingDisabled || int(m.Rcode) != mm.Rcode&0xF {
			t.Fatalf("header differs from miekg: %+v\n%v", m, mm.MsgHdr)
		}
		if m.HasQuestion && len(mm.Question) > 0 {
			q := mm.Question[0]
			want, err := decodePresentation(q.Name, false)
			got, err2 := decodePresentation(string(orig), true)
			if err != nil || err2 != nil || !labelsEqual(got, want) || m.QType != q.Qtype || m.QClass != q.Qclass {
				t.Fatalf("question %q %d %d differs from miekg %q %d %d (%v %v)", orig, m.QType, m.QClass,
					q.Name, q.Qtype, q.Qclass, err, err2)
			}
		}
	})
}

// unpacks reports whether miekg/dns accepts b; a panic inside the oracle is its problem, not
// a finding about this package.
func unpacks(mm *dns.Msg, b []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return mm.Unpack(b) == nil
}
