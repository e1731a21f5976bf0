package dnswire

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/miekg/dns"
)

const capturesDir = "/work/shared/testdata/pktvisor"

// dnsPayloads returns the DNS messages of a capture: UDP payloads to or from port 53 or
// 53000, and TCP segments that hold exactly one length-prefixed message (enough for the
// test; the real TCP reassembly lives elsewhere).
func dnsPayloads(t *testing.T, path string) (udp, tcp [][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	isDNS := func(a, b uint16) bool { return a == 53 || b == 53 || a == 53000 || b == 53000 }
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		if l, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && isDNS(uint16(l.SrcPort), uint16(l.DstPort)) {
			udp = append(udp, l.Payload)
		}
		if l, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && isDNS(uint16(l.SrcPort), uint16(l.DstPort)) {
			if pl := l.Payload; len(pl) > 2 && int(be16(pl)) == len(pl)-2 {
				tcp = append(tcp, pl[2:])
			}
		}
	}
	return udp, tcp
}

// TestCapturesAgainstMiekg compares our summary with miekg/dns on every DNS payload of the
// reference captures.
func TestCapturesAgainstMiekg(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(capturesDir, "*.pcap"))
	if len(files) == 0 {
		t.Skipf("reference captures not found in %s", capturesDir)
	}
	var m Message
	total := 0
	for _, path := range files {
		udp, tcp := dnsPayloads(t, path)
		var compared, miekgFailed, ecs, rrsig int
		for _, b := range append(udp, tcp...) {
			perr := m.Parse(b)
			serr := m.ScanRecords()
			mm := new(dns.Msg)
			if err := mm.Unpack(b); err != nil {
				// Truncated first fragments and the like: only no panic is asked of us.
				miekgFailed++
				continue
			}
			if d := summaryDiff(b, &m, perr, serr, mm); len(d) > 0 {
				t.Errorf("%s: differs:\n  %s\n%x", filepath.Base(path), strings.Join(d, "\n  "), b)
				continue
			}
			compared++
			if m.HasECS {
				ecs++
			}
			if m.HasRRSIG {
				rrsig++
			}
		}
		total += compared
		if len(udp)+len(tcp) > 0 {
			t.Logf("%-28s udp %5d tcp %5d compared %5d (miekg failed %d) ecs %d rrsig %d",
				filepath.Base(path), len(udp), len(tcp), compared, miekgFailed, ecs, rrsig)
		}
	}
	if total == 0 {
		t.Errorf("no DNS message compared")
	}
}

// TestCaptureMixedRcode checks every packet of dns_udp_mixed_rcode.pcap against the table
// decoded for the spec (Appendix A).
func TestCaptureMixedRcode(t *testing.T) {
	path := filepath.Join(capturesDir, "dns_udp_mixed_rcode.pcap")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("capture not available: %v", err)
	}
	want := []struct {
		id        uint16
		qr        bool
		rcode     uint8
		aa, ad    bool
		an        uint16
		qname     string
		qtype     string
		size      int
		rcodeName string
	}{
		{1542, false, 0, false, false, 0, "nonexistent.google.com", "A", 51, "NOERROR"},
		{1542, true, 3, true, false, 0, "nonexistent.google.com", "A", 101, "NXDOMAIN"},
		{23950, false, 0, false, true, 0, "google.com", "A", 51, "NOERROR"},
		{23950, true, 0, false, false, 1, "google.com", "A", 55, "NOERROR"},
		{25963, false, 0, false, false, 0, "dns1.p01.nsone.net", "A", 47, "NOERROR"},
		{25963, true, 0, true, false, 1, "dns1.p01.nsone.net", "A", 63, "NOERROR"},
		{57045, false, 0, false, false, 0, "dns1.p01.nsone.net", "AAAA", 47, "NOERROR"},
		{57045, true, 0, true, false, 1, "dns1.p01.nsone.net", "AAAA", 75, "NOERROR"},
		{5745, false, 0, false, true, 0, "google.com", "A", 51, "NOERROR"},
		{5745, true, 0, true, false, 1, "google.com", "A", 55, "NOERROR"},
		{54552, false, 0, false, false, 0, "sirius.mwbsys.com", "HTTPS", 35, "NOERROR"},
		{34078, false, 0, false, false, 0, "sirius.mwbsys.com", "A", 35, "NOERROR"},
		{57472, false, 0, false, false, 0, "sirius.mwbsys.com", "HTTPS", 46, "NOERROR"},
		{11975, false, 0, false, false, 0, "sirius.mwbsys.com", "A", 46, "NOERROR"},
		{57472, true, 0, true, true, 0, "sirius.mwbsys.com", "HTTPS", 119, "NOERROR"},
		{54552, true, 0, false, false, 0, "sirius.mwbsys.com", "HTTPS", 108, "NOERROR"},
		{11975, true, 0, true, true, 8, "sirius.mwbsys.com", "A", 311, "NOERROR"},
		{34078, true, 0, false, false, 8, "sirius.mwbsys.com", "A", 163, "NOERROR"},
		{54064, false, 0, false, true, 0, "refused.com", "A", 52, "NOERROR"},
		{54064, true, 5, false, false, 0, "refused.com", "A", 40, "REFUSED"},
		{53743, false, 0, false, false, 0, "play.google.com", "HTTPS", 33, "NOERROR"},
		{60791, false, 0, false, false, 0, "play.google.com", "HTTPS", 44, "NOERROR"},
		{60791, true, 0, true, false, 0, "play.google.com", "HTTPS", 94, "NOERROR"},
		{53743, true, 0, false, false, 0, "play.google.com", "HTTPS", 83, "NOERROR"},
	}
	udp, _ := dnsPayloads(t, path)
	if len(udp) != len(want) {
		t.Fatalf("%d UDP DNS packets, want %d", len(udp), len(want))
	}
	var m Message
	for i, w := range want {
		if err := m.Parse(udp[i]); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if m.ID != w.id || m.QR != w.qr || m.Rcode != w.rcode || m.AA != w.aa || m.AD != w.ad ||
			m.ANCount != w.an || string(m.QName()) != w.qname || QTypeName(m.QType) != w.qtype ||
			m.Size != w.size || RcodeName(uint16(m.Rcode)) != w.rcodeName {
			t.Errorf("#%d: got id %d qr %v rc %d aa %v ad %v an %d %q %s len %d, want %+v", i, m.ID, m.QR,
				m.Rcode, m.AA, m.AD, m.ANCount, m.QName(), QTypeName(m.QType), m.Size, w)
		}
	}
}

// TestCaptureDNSSEC checks dnssec.pcap against the spec's digest: 7 query/reply pairs, every
// reply NOERROR with AD, answer counts 2,4,3,6,3,3,0 of which 6 carry RRSIGs, the root name as
// the empty string, 3 distinct non-empty names.
func TestCaptureDNSSEC(t *testing.T) {
	path := filepath.Join(capturesDir, "dnssec.pcap")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("capture not available: %v", err)
	}
	udp, _ := dnsPayloads(t, path)
	if len(udp) != 14 {
		t.Fatalf("%d UDP DNS packets, want 14", len(udp))
	}
	var m Message
	var replies, withRRSIG int
	var ancounts []uint16
	names := map[string]bool{}
	for i, b := range udp {
		if err := m.Parse(b); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if err := m.ScanRecords(); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		names[string(m.QName())] = true
		if !m.QR {
			continue
		}
		replies++
		ancounts = append(ancounts, m.ANCount)
		if m.Rcode != 0 || !m.AD {
			t.Errorf("#%d: rcode %d AD %v", i, m.Rcode, m.AD)
		}
		if m.HasRRSIG {
			withRRSIG++
		}
		if m.HasRRSIG != (m.ANCount > 0) {
			t.Errorf("#%d: RRSIG %v with %d answers", i, m.HasRRSIG, m.ANCount)
		}
	}
	if replies != 7 || withRRSIG != 6 {
		t.Errorf("%d replies, %d with RRSIG; want 7, 6", replies, withRRSIG)
	}
	want := map[uint16]int{2: 1, 4: 1, 3: 3, 6: 1, 0: 1}
	got := map[uint16]int{}
	for _, a := range ancounts {
		got[a]++
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("answer counts %v, want 2,4,3,6,3,3,0", ancounts)
			break
		}
	}
	if !names[""] || len(names) != 4 || !names["www.ietf.org"] || !names["ietf.org"] || !names["org"] {
		t.Errorf("names %v", names)
	}
}
