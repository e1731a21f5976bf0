package gen

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestDNSSemantics pairs every reply with its query (as unpacked by miekg/dns) and checks what
// a resolver's reply must look like.
func TestDNSSemantics(t *testing.T) {
	data, _ := generate(t, everything())
	frames, _ := readCapture(t, data)
	_, st := recount(t, frames)

	allowed := map[uint16][]uint16{
		dns.TypeA: {dns.TypeA, dns.TypeCNAME}, dns.TypeAAAA: {dns.TypeAAAA, dns.TypeCNAME},
		dns.TypeCNAME: {dns.TypeCNAME}, dns.TypeMX: {dns.TypeMX}, dns.TypeTXT: {dns.TypeTXT},
		dns.TypeNS: {dns.TypeNS}, dns.TypePTR: {dns.TypePTR}, dns.TypeSOA: {dns.TypeSOA},
		dns.TypeSRV: {dns.TypeSRV}, dns.TypeHTTPS: {dns.TypeHTTPS},
	}
	type q struct {
		msg *dns.Msg
		raw []byte
	}
	open := map[xkey]q{}
	var mixed, compressed, signed, ecsEcho, soaAuth, cnames, big, noEDNS int
	for _, m := range st.msgs {
		msg := new(dns.Msg)
		if msg.Unpack(m.data) != nil {
			continue // malformed garbage, counted elsewhere
		}
		if !msg.Response {
			if !msg.RecursionDesired || msg.Opcode != dns.OpcodeQuery || len(msg.Answer)+len(msg.Ns) != 0 {
				t.Fatalf("odd query %v", msg)
			}
			name := msg.Question[0].Name
			if name != strings.ToLower(name) {
				mixed++
			}
			if msg.IsEdns0() == nil {
				noEDNS++
			}
			open[xkey{m.tcp, m.src, m.dst, msg.Id}] = q{msg, m.data}
			continue
		}
		k := xkey{m.tcp, m.dst, m.src, msg.Id}
		qq, ok := open[k]
		if !ok {
			t.Fatalf("reply without query: %v", msg)
		}
		delete(open, k)
		qm := qq.msg
		// The question is echoed byte for byte (0x20 case included).
		qEnd := questionEnd(qq.raw)
		if !bytes.Equal(m.data[4:6], qq.raw[4:6]) || !bytes.Equal(m.data[12:qEnd], qq.raw[12:qEnd]) {
			t.Fatalf("question not echoed:\n%x\n%x", m.data[:qEnd], qq.raw[:qEnd])
		}
		wantAA := msg.Rcode == dns.RcodeSuccess || msg.Rcode == dns.RcodeNameError
		if msg.Authoritative != wantAA || !msg.RecursionAvailable || msg.RecursionDesired != qm.RecursionDesired {
			t.Fatalf("reply flags: %v", msg.MsgHdr)
		}
		// EDNS: an OPT in the reply exactly when the query had one; DO and ECS echoed.
		qo, ro := qm.IsEdns0(), msg.IsEdns0()
		if (qo == nil) != (ro == nil) {
			t.Fatalf("OPT in query %v, in reply %v", qo != nil, ro != nil)
		}
		if qo != nil {
			if qo.Do() != ro.Do() {
				t.Fatal("DO not echoed")
			}
			if qs := subnet(qo); qs != nil {
				rs := subnet(ro)
				if rs == nil || rs.Family != qs.Family || rs.SourceNetmask != qs.SourceNetmask || !rs.Address.Equal(qs.Address) {
					t.Fatalf("ECS not echoed: %v vs %v", qs, rs)
				}
				ecsEcho++
			}
		} else if len(m.data) > 512 && !m.tcp {
			t.Fatalf("%d-byte UDP reply to a query without EDNS", len(m.data))
		}
		if len(m.data) > 1500 {
			big++
		}
		qt := qm.Question[0].Qtype
		switch {
		case msg.Rcode == dns.RcodeSuccess && len(msg.Answer) > 0:
			hasQT, hasSig := false, false
			for _, rr := range msg.Answer {
				ty := rr.Header().Rrtype
				switch {
				case ty == qt:
					hasQT = true
				case ty == dns.TypeRRSIG:
					hasSig = true
				case ty == dns.TypeCNAME:
					cnames++
				}
				if ty != dns.TypeRRSIG && !slices.Contains(allowed[qt], ty) {
					t.Fatalf("%s answer for a %s query", dns.TypeToString[ty], dns.TypeToString[qt])
				}
			}
			if !hasQT {
				t.Fatalf("no %s in answer: %v", dns.TypeToString[qt], msg)
			}
			if hasSig != (qo != nil && qo.Do()) {
				t.Fatalf("RRSIG present %v, DO %v", hasSig, qo != nil && qo.Do())
			}
			if hasSig {
				signed++
			}
		case msg.Rcode == dns.RcodeSuccess || msg.Rcode == dns.RcodeNameError:
			if len(msg.Answer) != 0 || len(msg.Ns) == 0 || msg.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Fatalf("NXDOMAIN/NODATA without SOA in authority: %v", msg)
			}
			soaAuth++
		default:
			if len(msg.Answer)+len(msg.Ns) != 0 {
				t.Fatalf("rcode %d with records", msg.Rcode)
			}
		}
		if len(msg.Answer)+len(msg.Ns) > 0 {
			// The first record's owner is a compression pointer into the question name.
			if p := int(m.data[qEnd]&0x3f)<<8 | int(m.data[qEnd+1]); m.data[qEnd]&0xc0 != 0xc0 || p < 12 || p >= qEnd-4 {
				t.Fatalf("first owner is not a pointer into the question: %x in %v", m.data[qEnd:qEnd+2], msg)
			}
			compressed++
		}
	}
	for name, n := range map[string]int{"mixed-case queries": mixed, "compressed replies": compressed, "signed answers": signed,
		"ECS echoes": ecsEcho, "SOA authorities": soaAuth, "CNAME answers": cnames, "big replies": big, "queries without EDNS": noEDNS} {
		if n == 0 {
			t.Errorf("no %s", name)
		}
	}
}

// questionEnd returns the offset after the (uncompressed) first question of a raw message.
func questionEnd(b []byte) int {
	off := 12
	for b[off] != 0 {
		off += int(b[off]) + 1
	}
	return off + 1 + 4
}

func subnet(o *dns.OPT) *dns.EDNS0_SUBNET {
	for _, e := range o.Option {
		if s, ok := e.(*dns.EDNS0_SUBNET); ok {
			return s
		}
	}
	return nil
}
