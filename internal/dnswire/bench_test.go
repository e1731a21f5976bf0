package dnswire

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// queryMsg is a typical resolver query: one question, an OPT record with a cookie.
func queryMsg(tb testing.TB) []byte {
	m := new(dns.Msg)
	m.SetQuestion("www.Example.co.uk.", dns.TypeA)
	m.SetEdns0(1232, false)
	o := m.IsEdns0()
	o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// replyMsg is a compressed reply with 8 answers (a CNAME, 6 A records and an RRSIG), one NS
// in authority and an OPT record with DO and an ECS option.
func replyMsg(tb testing.TB) []byte {
	m := new(dns.Msg)
	m.SetQuestion("www.Example.co.uk.", dns.TypeA)
	m.Response, m.RecursionAvailable, m.AuthenticatedData = true, true, true
	m.Compress = true
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 300}
	}
	m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr("www.Example.co.uk.", dns.TypeCNAME), Target: "edge.example.net."})
	for i := range 6 {
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr("edge.example.net.", dns.TypeA), A: net.IPv4(192, 0, 2, byte(i))})
	}
	m.Answer = append(m.Answer, &dns.RRSIG{Hdr: hdr("edge.example.net.", dns.TypeRRSIG), TypeCovered: dns.TypeA,
		Algorithm: 13, Labels: 3, OrigTtl: 300, Expiration: 2000000000, Inception: 1600000000, KeyTag: 4242,
		SignerName: "example.net.", Signature: "oJB1W6WNGv+ldvQ3WDG0MQkg5IEhjRip8WTrPYGv07h108dUKGMeDPKijVCHX3DDKdfb+v6oB9wfuh3DTJXUAfI/M0zmO/zz8bW0Rznl8O3tGNazPwQKkRN20XPXV6nw"})
	m.Ns = append(m.Ns, &dns.NS{Hdr: hdr("example.net.", dns.TypeNS), Ns: "ns1.example.net."})
	m.SetEdns0(1232, true)
	o := m.IsEdns0()
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 24, Address: net.IPv4(198, 51, 100, 0)})
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestHotPathDoesNotAllocate: the per-packet work of the DNS handler on a realistic reply:
// parse, scan, ECS text into a reused buffer, public suffix (cached after the first packet),
// aggregation, rcode/qtype names.
func TestHotPathDoesNotAllocate(t *testing.T) {
	b := replyMsg(t)
	var m Message
	buf := make([]byte, 0, 64)
	run := func() {
		if err := m.Parse(b); err != nil {
			t.Fatal(err)
		}
		if err := m.ScanRecords(); err != nil {
			t.Fatal(err)
		}
		buf = m.AppendECSText(buf[:0])
		q2, q3 := AggregateDomain(m.QName(), PublicSuffixSize(m.QName()))
		_, _ = q2, q3
		_ = RcodeName(m.ExtRcode)
		_ = QTypeName(m.QType)
	}
	run()
	if !m.HasRRSIG || !m.HasECS || !m.DO || m.ANCount != 8 || string(buf) != "198.51.100.0" {
		t.Fatalf("unexpected summary: %+v %q", m, buf)
	}
	if q2, q3 := AggregateDomain(m.QName(), PublicSuffixSize(m.QName())); string(q2) != ".example.co.uk" || string(q3) != "www.example.co.uk" {
		t.Fatalf("aggregates %q %q", q2, q3)
	}
	if n := testing.AllocsPerRun(1000, run); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
	q := queryMsg(t)
	if n := testing.AllocsPerRun(1000, func() { _ = m.Parse(q); _ = m.ScanRecords() }); n != 0 {
		t.Errorf("%v allocations per query", n)
	}
}

func BenchmarkParseQuery(b *testing.B) {
	msg := queryMsg(b)
	var m Message
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Parse(msg)
	}
}

func BenchmarkParseScanQuery(b *testing.B) {
	msg := queryMsg(b)
	var m Message
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Parse(msg)
		_ = m.ScanRecords()
	}
}

func BenchmarkParseReply(b *testing.B) {
	msg := replyMsg(b)
	var m Message
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Parse(msg)
	}
}

func BenchmarkParseScanReply(b *testing.B) {
	msg := replyMsg(b)
	var m Message
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Parse(msg)
		_ = m.ScanRecords()
	}
}

// BenchmarkMiekgUnpackReply is the baseline: a general-purpose decoder on the same bytes.
func BenchmarkMiekgUnpackReply(b *testing.B) {
	msg := replyMsg(b)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var m dns.Msg
		_ = m.Unpack(msg)
	}
}

func BenchmarkAggregatePublicSuffix(b *testing.B) {
	name := []byte("www.example.co.uk")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = AggregateDomain(name, PublicSuffixSize(name))
	}
}

// BenchmarkPublicSuffixUncached is the x/net lookup behind the cache.
func BenchmarkPublicSuffixUncached(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = publicSuffixSize("www.example.co.uk")
	}
}
