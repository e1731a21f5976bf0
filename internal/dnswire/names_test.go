package dnswire

import (
	"strconv"
	"testing"

	"github.com/miekg/dns"
)

// TestRcodeNamesAgainstMiekg: every rcode miekg/dns names must carry the same name here,
// except where the reference deliberately differs (SRVFAIL; BADVERS for 16).
func TestRcodeNamesAgainstMiekg(t *testing.T) {
	exceptions := map[int]string{2: "SRVFAIL", 16: "BADVERS"}
	for rc, want := range dns.RcodeToString {
		if e, ok := exceptions[rc]; ok {
			want = e
		}
		if got := RcodeName(uint16(rc)); got != want {
			t.Errorf("RcodeName(%d) = %q, want %q", rc, got, want)
		}
	}
	// Everything else is a number.
	for rc := 0; rc < 4096; rc++ {
		if _, named := dns.RcodeToString[rc]; named {
			continue
		}
		if got := RcodeName(uint16(rc)); got != strconv.Itoa(rc) {
			t.Errorf("RcodeName(%d) = %q", rc, got)
		}
	}
}

// TestQTypeNamesAgainstMiekg: every RR type miekg/dns names (its table follows IANA) has the
// same mnemonic here.
func TestQTypeNamesAgainstMiekg(t *testing.T) {
	for typ, want := range dns.TypeToString {
		if typ == dns.TypeNone || typ == dns.TypeReserved { // IANA: reserved, not types
			continue
		}
		if got := QTypeName(typ); got != want {
			t.Errorf("QTypeName(%d) = %q, want %q", typ, got, want)
		}
	}
}

// TestQTypeNamesIANA covers the registry entries that miekg/dns v1.1.73 lacks, read off the
// IANA "Resource Record (RR) TYPEs" registry by hand, and a few unassigned values.
func TestQTypeNamesIANA(t *testing.T) {
	tests := []struct {
		typ  uint16
		want string
	}{
		{11, "WKS"}, {22, "NSAP"}, {38, "A6"}, {40, "SINK"}, {66, "DSYNC"}, {67, "HHIT"},
		{68, "BRID"}, {259, "DOA"}, {262, "WALLET"}, {263, "CLA"}, {264, "IPN"},
		{0, "0"}, {54, "54"}, {69, "69"}, {98, "98"}, {110, "110"}, {127, "127"}, {129, "129"},
		{248, "248"}, {265, "265"}, {270, "270"}, {511, "511"}, {512, "512"}, {32767, "32767"},
		{32770, "32770"}, {65280, "65280"}, {65535, "65535"},
	}
	for _, tt := range tests {
		if got := QTypeName(tt.typ); got != tt.want {
			t.Errorf("QTypeName(%d) = %q, want %q", tt.typ, got, tt.want)
		}
	}
}

func TestParseRcode(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"NOERROR", 0, true}, {"noerror", 0, true}, {"SrvFail", 2, true}, {"NXDOMAIN", 3, true},
		{"REFUSED", 5, true}, {"DSOTYPENI", 11, true}, {"BADVERS", 16, true}, {"badsig", 16, true},
		{"BADCOOKIE", 23, true}, {"0", 0, true}, {"3", 3, true}, {"16", 16, true}, {"23", 23, true},
		{"003", 3, true},
		{"SERVFAIL", 0, false}, // the reference's table spells it SRVFAIL
		{"12", 0, false}, {"15", 0, false}, {"24", 0, false}, {"4095", 0, false},
		{"", 0, false}, {"-1", 0, false}, {"+3", 0, false}, {" 3", 0, false}, {"3 ", 0, false},
		{"0x3", 0, false}, {"99999999999999999999999", 0, false}, {"NOERRORX", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRcode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRcode(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	// Round trip over the whole table.
	for rc := range uint16(4096) {
		name := RcodeName(rc)
		if got, ok := ParseRcode(name); ok && got != rc {
			t.Errorf("ParseRcode(RcodeName(%d)=%q) = %d", rc, name, got)
		}
	}
}

func TestParseQType(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"A", 1, true}, {"a", 1, true}, {"AAAA", 28, true}, {"TxT", 16, true}, {"txt", 16, true},
		{"HTTPS", 65, true}, {"svcb", 64, true}, {"ANY", 255, true}, {"*", 255, true},
		{"CAA", 257, true}, {"NSAP-PTR", 23, true}, {"nsap-ptr", 23, true}, {"DLV", 32769, true},
		{"1", 1, true}, {"65", 65, true}, {"255", 255, true}, {"257", 257, true}, {"264", 264, true},
		{"32768", 32768, true},
		{"TEXT", 0, false}, {"270", 0, false}, {"0", 0, false}, {"54", 0, false},
		{"65535", 0, false}, {"65536", 0, false}, {"99999999999", 0, false}, {"", 0, false},
		{"-1", 0, false}, {"+1", 0, false}, {" A", 0, false}, {"A ", 0, false}, {"TYPE1", 0, false},
		{"NSAPPTR", 0, false}, {"0x1", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseQType(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseQType(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	// Every named type parses back from its name and from its number; no unnamed one does.
	for typ := range 65536 {
		name := QTypeName(uint16(typ))
		_, known := qtypeNames[uint16(typ)]
		got, ok := ParseQType(name)
		if known != ok || (ok && got != uint16(typ)) {
			t.Errorf("ParseQType(QTypeName(%d)=%q) = %d, %v", typ, name, got, ok)
		}
		if got, ok := ParseQType(strconv.Itoa(typ)); known != ok || (ok && got != uint16(typ)) {
			t.Errorf("ParseQType(%q) = %d, %v", strconv.Itoa(typ), got, ok)
		}
	}
}

func TestNamesDoNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		_ = RcodeName(3)
		_ = RcodeName(23)
		_ = QTypeName(65)
		_ = QTypeName(32769)
	})
	if n != 0 {
		t.Errorf("%v allocations for known names", n)
	}
}
