package dnswire

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Differential tests: messages are packed by github.com/miekg/dns, unpacked by it again, and
// our summary must say what its unpacked Msg says.

// summaryDiff lists every field where m disagrees with miekg's view of the same bytes. mm
// must have unpacked b without error.
func summaryDiff(b []byte, m *Message, parseErr, scanErr error, mm *dns.Msg) []string {
	var d []string
	check := func(field string, got, want any) {
		if got != want {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", field, got, want))
		}
	}
	// Header: miekg exposes the counts only through the slices, so read them off the wire
	// ourselves only for the counts and compare the rest with miekg.
	check("ID", m.ID, mm.Id)
	check("QR", m.QR, mm.Response)
	check("Opcode", int(m.Opcode), mm.Opcode)
	check("AA", m.AA, mm.Authoritative)
	check("TC", m.TC, mm.Truncated)
	check("RD", m.RD, mm.RecursionDesired)
	check("RA", m.RA, mm.RecursionAvailable)
	check("AD", m.AD, mm.AuthenticatedData)
	check("CD", m.CD, mm.CheckingDisabled)
	check("Rcode", int(m.Rcode), mm.Rcode&0xF)
	check("Size", m.Size, len(b))
	if parseErr == nil {
		check("QDCount", int(m.QDCount), len(mm.Question))
		if scanErr == nil {
			check("ANCount", int(m.ANCount), len(mm.Answer))
			check("NSCount", int(m.NSCount), len(mm.Ns))
			check("ARCount", int(m.ARCount), len(mm.Extra))
		}
	}

	// First question.
	check("HasQuestion", m.HasQuestion, len(mm.Question) > 0)
	if m.HasQuestion && len(mm.Question) > 0 {
		q := mm.Question[0]
		check("QType", m.QType, q.Qtype)
		check("QClass", m.QClass, q.Qclass)
		want, err := decodePresentation(q.Name, false)
		if err != nil {
			d = append(d, "miekg name: "+err.Error())
		}
		orig, err := decodePresentation(string(m.QNameOrig()), true)
		if err != nil {
			d = append(d, "QNameOrig: "+err.Error())
		} else if !labelsEqual(orig, want) {
			d = append(d, fmt.Sprintf("QNameOrig %q, miekg %q", m.QNameOrig(), q.Name))
		}
		lower, err := decodePresentation(string(m.QName()), true)
		if err != nil {
			d = append(d, "QName: "+err.Error())
		} else if !labelsEqual(lower, lowerASCII(want)) {
			d = append(d, fmt.Sprintf("QName %q, miekg %q", m.QName(), q.Name))
		}
	}
	if scanErr != nil {
		return append(d, "ScanRecords: "+scanErr.Error())
	}

	// Records.
	rrsig := false
	for _, rr := range mm.Answer {
		if rr.Header().Rrtype == dns.TypeRRSIG {
			rrsig = true
		}
	}
	check("HasRRSIG", m.HasRRSIG, rrsig)
	o := mm.IsEdns0()
	check("HasOPT", m.HasOPT, o != nil)
	check("ExtRcode", int(m.ExtRcode), mm.Rcode)
	if o == nil {
		check("HasECS", m.HasECS, false)
		return d
	}
	check("EDNSUDPSize", m.EDNSUDPSize, o.UDPSize())
	check("EDNSVersion", m.EDNSVersion, o.Version())
	check("DO", m.DO, o.Do())
	var subnet *dns.EDNS0_SUBNET
	for _, opt := range o.Option {
		if s, ok := opt.(*dns.EDNS0_SUBNET); ok {
			subnet = s
			break
		}
	}
	// miekg also accepts family 0 with prefix 0 (what dig sends for "no subnet"); we do not.
	if subnet == nil || subnet.Family == 0 {
		check("HasECS", m.HasECS, false)
		return d
	}
	check("HasECS", m.HasECS, true)
	check("ECSFamily", m.ECSFamily, subnet.Family)
	check("ECSSourcePrefix", m.ECSSourcePrefix, subnet.SourceNetmask)
	check("ECSScopePrefix", m.ECSScopePrefix, subnet.SourceScope)
	var wantAddr [16]byte
	wantText := ""
	if subnet.Family == 1 {
		copy(wantAddr[:], subnet.Address.To4())
		wantText = subnet.Address.To4().String()
	} else {
		copy(wantAddr[:], subnet.Address.To16())
		wantText = subnet.Address.String()
		if v4 := subnet.Address.To4(); v4 != nil {
			// net.IP prints an IPv4-mapped address as IPv4; RFC 5952 §5 keeps the prefix.
			wantText = "::ffff:" + v4.String()
		}
	}
	check("ECSAddr", m.ECSAddr, wantAddr)
	check("ECS text", string(m.AppendECSText(nil)), wantText)
	return d
}

// msgGen builds random but valid messages for miekg/dns to pack.
type msgGen struct {
	r     *rand.Rand
	names []string // pool, so that names repeat and compress
}

// label returns 1..max raw octets, biased towards letters but with every kind of byte.
func (g *msgGen) label(max int) string {
	n := 1 + g.r.IntN(max)
	var sb strings.Builder
	for range n {
		var c byte
		switch g.r.IntN(10) {
		case 0:
			c = byte(g.r.IntN(256)) // anything: NUL, space, '.', '\\', 0x80.., …
		case 1:
			c = "._\\-*@ ()\";$"[g.r.IntN(12)]
		case 2, 3:
			c = byte('A' + g.r.IntN(26))
		default:
			c = byte('a' + g.r.IntN(26))
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// escape writes a raw label in miekg's input syntax: \DDD for every byte but letters and
// digits, so that miekg reads back exactly these octets.
func escape(l string) string {
	var sb strings.Builder
	for i := 0; i < len(l); i++ {
		c := l[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "\\%03d", c)
		}
	}
	return sb.String()
}

func (g *msgGen) name() string {
	if len(g.names) > 0 && g.r.IntN(3) == 0 {
		return g.names[g.r.IntN(len(g.names))]
	}
	var n string
	switch g.r.IntN(20) {
	case 0:
		n = "."
	case 1: // long: close to the 255-octet limit
		for range 4 {
			n += escape(g.label(60)) + "."
		}
	default:
		labels := 1 + g.r.IntN(5)
		for range labels {
			n += escape(g.label(12)) + "."
		}
		if len(g.names) > 0 && g.r.IntN(2) == 0 { // share a suffix with an earlier name
			n += strings.TrimPrefix(g.names[g.r.IntN(len(g.names))], ".")
		}
	}
	if _, ok := dns.IsDomainName(n); !ok || len(n) > 250*4 {
		return "example.com."
	}
	g.names = append(g.names, n)
	return n
}

func (g *msgGen) hdr(typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: g.name(), Rrtype: typ, Class: dns.ClassINET, Ttl: g.r.Uint32()}
}

func (g *msgGen) rr(section int) dns.RR {
	switch k := g.r.IntN(9); {
	case k == 0:
		return &dns.A{Hdr: g.hdr(dns.TypeA), A: net.IPv4(byte(g.r.IntN(256)), 2, 3, 4)}
	case k == 1:
		return &dns.AAAA{Hdr: g.hdr(dns.TypeAAAA), AAAA: net.ParseIP("2001:db8::1")}
	case k == 2:
		return &dns.CNAME{Hdr: g.hdr(dns.TypeCNAME), Target: g.name()}
	case k == 3:
		return &dns.MX{Hdr: g.hdr(dns.TypeMX), Preference: 10, Mx: g.name()}
	case k == 4:
		return &dns.TXT{Hdr: g.hdr(dns.TypeTXT), Txt: []string{"v=spf1 -all", g.label(30)}}
	case k == 5 && section == 1:
		return &dns.SOA{Hdr: g.hdr(dns.TypeSOA), Ns: g.name(), Mbox: g.name(), Serial: 1, Refresh: 2, Retry: 3, Expire: 4, Minttl: 5}
	case k == 6:
		return &dns.NS{Hdr: g.hdr(dns.TypeNS), Ns: g.name()}
	default:
		return &dns.RRSIG{Hdr: g.hdr(dns.TypeRRSIG), TypeCovered: dns.TypeA, Algorithm: 13, Labels: 2,
			OrigTtl: 300, Expiration: 2000000000, Inception: 1600000000, KeyTag: 12345,
			SignerName: g.name(), Signature: "oJB1W6WNGv+ldvQ3WDG0MQkg5IEhjRip8WTrPYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6oB9wfuh3DTJXUAfI/M0zmO/zz8bW0Rznl8O3tGNazPwQKkRN20XPXV6nwwfoXmJQbsLNrLfkGJ5D6fwFm8nN+6pBzeDQfsS3Ap3o="}
	}
}

func (g *msgGen) opt() *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(uint16(512 + g.r.IntN(4000)))
	o.SetDo(g.r.IntN(2) == 0)
	o.SetVersion(uint8(g.r.IntN(2)))
	var opts []dns.EDNS0
	if g.r.IntN(2) == 0 {
		opts = append(opts, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	}
	if g.r.IntN(3) == 0 {
		opts = append(opts, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e7331"})
	}
	if g.r.IntN(3) == 0 {
		opts = append(opts, &dns.EDNS0_PADDING{Padding: make([]byte, g.r.IntN(40))})
	}
	if g.r.IntN(3) == 0 {
		opts = append(opts, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte(g.label(8))})
	}
	if g.r.IntN(4) != 0 {
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET}
		if g.r.IntN(2) == 0 {
			e.Family = 1
			e.SourceNetmask = uint8(g.r.IntN(33))
			e.SourceScope = uint8(g.r.IntN(33))
			e.Address = net.IPv4(byte(g.r.IntN(256)), byte(g.r.IntN(256)), byte(g.r.IntN(256)), byte(g.r.IntN(256)))
		} else {
			e.Family = 2
			e.SourceNetmask = uint8(g.r.IntN(129))
			e.SourceScope = uint8(g.r.IntN(129))
			a := make(net.IP, 16)
			for i := range a {
				a[i] = byte(g.r.IntN(256))
			}
			if g.r.IntN(5) == 0 { // IPv4-mapped
				copy(a, net.IPv4(10, 1, 2, 3))
			}
			e.Address = a
		}
		// Anywhere among the options.
		i := g.r.IntN(len(opts) + 1)
		opts = append(opts[:i], append([]dns.EDNS0{e}, opts[i:]...)...)
	}
	o.Option = opts
	return o
}

func (g *msgGen) msg() *dns.Msg {
	g.names = g.names[:0]
	m := new(dns.Msg)
	m.Id = uint16(g.r.IntN(65536))
	m.Response = g.r.IntN(2) == 0
	m.Opcode = g.r.IntN(16)
	m.Authoritative = g.r.IntN(2) == 0
	m.Truncated = g.r.IntN(8) == 0
	m.RecursionDesired = g.r.IntN(2) == 0
	m.RecursionAvailable = g.r.IntN(2) == 0
	m.Zero = g.r.IntN(8) == 0
	m.AuthenticatedData = g.r.IntN(2) == 0
	m.CheckingDisabled = g.r.IntN(2) == 0
	m.Compress = g.r.IntN(4) != 0
	qd := 1
	switch g.r.IntN(10) {
	case 0:
		qd = 0
	case 1:
		qd = 2 + g.r.IntN(2)
	}
	for range qd {
		m.Question = append(m.Question, dns.Question{Name: g.name(),
			Qtype: []uint16{1, 28, 65, 255, 46, 15, 16, 6, 48, 257, 270, 65535}[g.r.IntN(12)], Qclass: uint16(1 + g.r.IntN(4))})
	}
	for range g.r.IntN(9) {
		m.Answer = append(m.Answer, g.rr(0))
	}
	for range g.r.IntN(3) {
		m.Ns = append(m.Ns, g.rr(1))
	}
	for range g.r.IntN(3) {
		m.Extra = append(m.Extra, g.rr(2))
	}
	m.Rcode = g.r.IntN(16)
	if g.r.IntN(4) != 0 {
		i := g.r.IntN(len(m.Extra) + 1)
		m.Extra = append(m.Extra[:i], append([]dns.RR{g.opt()}, m.Extra[i:]...)...)
		m.Rcode = g.r.IntN(4096) // the upper 8 bits travel in the OPT record
	}
	return m
}

func TestDifferentialMiekgGenerated(t *testing.T) {
	g := &msgGen{r: rand.New(rand.NewPCG(7, 11))}
	var m Message
	var stats struct{ msgs, ecs, opt, rrsig, multiQ, compressed, packErr int }
	for i := 0; i < 20000; i++ {
		src := g.msg()
		b, err := src.Pack()
		if err != nil {
			stats.packErr++
			continue
		}
		mm := new(dns.Msg)
		if err := mm.Unpack(b); err != nil {
			// miekg packs some escaped names longer than 255 octets, then refuses them.
			stats.packErr++
			continue
		}
		perr := m.Parse(b)
		if perr != nil {
			t.Fatalf("Parse: %v\n%v", perr, mm)
		}
		serr := m.ScanRecords()
		if d := summaryDiff(b, &m, perr, serr, mm); len(d) > 0 {
			t.Fatalf("message %d differs:\n  %s\n%v\n%x", i, strings.Join(d, "\n  "), mm, b)
		}
		stats.msgs++
		if m.HasECS {
			stats.ecs++
		}
		if m.HasOPT {
			stats.opt++
		}
		if m.HasRRSIG {
			stats.rrsig++
		}
		if m.QDCount > 1 {
			stats.multiQ++
		}
		if src.Compress {
			stats.compressed++
		}
	}
	t.Logf("%+v", stats)
	if stats.msgs < 18000 || stats.ecs < 3000 || stats.rrsig < 3000 || stats.multiQ < 1000 {
		t.Errorf("generator coverage too low: %+v", stats)
	}
}

// TestDifferentialMiekgTruncated cuts generated messages at every length: wherever miekg
// still unpacks, we agree on the header and question; we never fail the header on a message
// of 12 octets or more.
func TestDifferentialMiekgTruncated(t *testing.T) {
	g := &msgGen{r: rand.New(rand.NewPCG(13, 17))}
	var m Message
	for range 300 {
		b, err := g.msg().Pack()
		if err != nil {
			continue
		}
		for n := 0; n <= len(b); n++ {
			cut := b[:n]
			perr := m.Parse(cut)
			serr := m.ScanRecords()
			if n < 12 {
				if perr != ErrShort {
					t.Fatalf("len %d: %v", n, perr)
				}
				continue
			}
			if perr != nil && !strings.Contains(perr.Error(), "question") {
				t.Fatalf("len %d: unexpected %v", n, perr)
			}
			mm := new(dns.Msg)
			if mm.Unpack(cut) != nil {
				continue
			}
			// miekg accepts a question whose type/class were cut off; we do not.
			if len(mm.Question) > 0 && !m.HasQuestion && perr == errQuestionShort {
				continue
			}
			// miekg stops at a truncated record without an error when TC is set; we report
			// the truncation, so compare only the header and question then.
			if serr != nil {
				serr = fmt.Errorf("truncated")
			}
			d := summaryDiff(cut, &m, perr, serr, mm)
			if serr != nil && len(d) > 0 && strings.HasPrefix(d[len(d)-1], "ScanRecords") {
				d = d[:len(d)-1]
			}
			if len(d) > 0 {
				t.Fatalf("len %d of %d differs:\n  %s\n%x", n, len(b), strings.Join(d, "\n  "), cut)
			}
		}
	}
}
