package bpf

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// Expectations worked out by hand from pcap-filter(7) (no tcpdump needed): they pin down the
// semantics the tcpdump comparison also checks, in a form that explains them.
func TestMatchByHand(t *testing.T) {
	base := testL3(t)
	pkt := func(name string) l3pkt { return byName(base, name) }
	eth := func(name string, tags ...vlanTag) []byte {
		p := pkt(name)
		p.tags = tags
		return ethFrame(p)
	}
	raw := func(name string) []byte { return pkt(name).data }
	vlan100 := vlanTag{0x8100, 100}
	tests := []struct {
		expr  string
		link  uint32
		frame []byte
		want  bool
		why   string
	}{
		{"port 53", LinkTypeEthernet, eth("v4 udp dns query"), true, "UDP dst port 53"},
		{"port 53", LinkTypeEthernet, eth("v6 tcp dns syn"), true, "IPv6 TCP dst port 53"},
		{"port 53", LinkTypeEthernet, eth("v4 sctp"), true, "port also applies to SCTP"},
		{"port 53", LinkTypeEthernet, eth("v4 options udp"), true, "IPv4 header length comes from IHL (24 bytes here)"},
		{"port 53", LinkTypeEthernet, eth("v4 later fragment"), false, "non-first fragments have no ports, even if the bytes say 53"},
		{"port 53", LinkTypeEthernet, eth("v4 first fragment"), true, "first fragments do"},
		{"port 53", LinkTypeEthernet, eth("v6 frag udp first"), false, "IPv6 ports are read right after the fixed header"},
		{"port 53", LinkTypeEthernet, eth("v4 udp dns query", vlan100), false, "without vlan, tagged frames are not IP"},
		{"vlan and port 53", LinkTypeEthernet, eth("v4 udp dns query", vlan100), true, "after vlan the offsets move by 4"},
		{"vlan 100 and port 53", LinkTypeEthernet, eth("v4 udp dns query", vlanTag{0x8100, 101}), false, "VID 101"},
		{"vlan 300 and vlan 100 and tcp", LinkTypeEthernet, eth("v4 tcp dns syn", vlanTag{0x88a8, 300}, vlan100), true, "QinQ"},
		{"vlan or port 53", LinkTypeEthernet, eth("v4 udp dns query"), false, "port 53 is read 4 bytes further on, even after or"},
		{"udp", LinkTypeEthernet, eth("v6 frag udp first"), true, "ip6 proto looks through one fragment header"},
		{"udp", LinkTypeEthernet, eth("v6 hop-by-hop udp"), false, "but not through other extension headers"},
		{"ip6 proto 0", LinkTypeEthernet, eth("v6 hop-by-hop udp"), true, "hop-by-hop is next header 0"},
		{"tcp", LinkTypeEthernet, eth("v6 frag tcp later"), true, "the fragment header names TCP"},
		{"host 10.0.0.1", LinkTypeEthernet, eth("arp request"), true, "host also matches ARP sender/target"},
		{"ip host 10.0.0.1", LinkTypeEthernet, eth("arp request"), false, "ip restricts to IPv4"},
		{"host 10.0", LinkTypeEthernet, eth("v4 udp dns query"), true, "a short address is a network: 10.0.0.0/16"},
		{"net 192.168", LinkTypeEthernet, eth("v4 udp dns query"), false, "192.168.0.0/16"},
		{"src net 10.0.0.0/8 and dst port 53", LinkTypeEthernet, eth("v4 udp dns query"), true, ""},
		{"dst net 2001:db8::/32", LinkTypeEthernet, eth("v6 udp dns query"), true, ""},
		{"dst net 2001:db8:1::/48", LinkTypeEthernet, eth("v6 udp dns query"), false, ""},
		{"host 10.0.0.1 or 10.0.0.9", LinkTypeEthernet, eth("v4 icmp echo"), true, "qualifiers repeat"},
		{"port 53 and not 40000", LinkTypeEthernet, eth("v4 udp dns query"), false, "not 40000 is not port 40000"},
		{"udp[10] & 0x80 = 0", LinkTypeEthernet, eth("v4 udp dns query"), true, "QR bit clear in a query"},
		{"udp[10] & 0x80 = 0", LinkTypeEthernet, eth("v4 udp dns reply"), false, "QR set in a reply"},
		{"udp[10] & 0x80 = 0", LinkTypeEthernet, eth("v6 udp dns query"), false, "transport offsets are IPv4-only"},
		{"tcp[tcpflags] & tcp-syn != 0", LinkTypeEthernet, eth("v4 tcp dns syn"), true, ""},
		{"tcp[tcpflags] & tcp-syn != 0", LinkTypeEthernet, eth("v4 tcp http"), false, ""},
		{"icmp[icmptype] = icmp-echo", LinkTypeEthernet, eth("v4 icmp echo"), true, ""},
		{"ether broadcast", LinkTypeEthernet, eth("arp request"), true, ""},
		{"ether host 02:00:00:00:00:01", LinkTypeEthernet, eth("v4 tcp dns syn"), true, ""},
		{"ip multicast", LinkTypeEthernet, eth("v4 mdns"), true, "224.0.0.251"},
		{"ip6 multicast", LinkTypeEthernet, eth("v6 icmp6 echo"), true, "ff02::1"},
		{"less 100", LinkTypeEthernet, eth("v4 udp dns query"), true, "14+20+8+29 = 71 bytes"},
		{"greater 100", LinkTypeEthernet, eth("v4 udp dns query"), false, ""},
		{"port 53", LinkTypeLinuxSLL, sllFrame(pkt("v6 udp dns reply")), true, "SLL: protocol at 14, IP at 16"},
		{"arp", LinkTypeLinuxSLL, sllFrame(pkt("arp reply")), true, ""},
		{"port 53", LinkTypeSLL2, sll2Frame(pkt("v4 udp dns reply")), true, "SLL2: protocol at 0, IP at 20"},
		{"ip6", LinkTypeRaw, raw("v6 mdns"), true, "raw: version nibble"},
		{"ip", LinkTypeRaw, raw("v6 mdns"), false, ""},
		{"ip6 and port 5353", LinkTypeIPv6, raw("v6 mdns"), true, ""},
		{"ip", LinkTypeIPv4, raw("v6 mdns"), true, "link type IPv4 means every frame is IPv4"},
		{"udp port 53", LinkTypeNull, append([]byte{2, 0, 0, 0}, raw("v4 udp dns query")...), true, "AF_INET little-endian"},
		{"udp port 53", LinkTypeNull, append([]byte{0, 0, 0, 2}, raw("v4 udp dns query")...), true, "AF_INET big-endian"},
		{"ip6", LinkTypeNull, append([]byte{10, 0, 0, 0}, raw("v6 mdns")...), false, "Linux AF_INET6 (10) is not a BSD AF"},
		{"ip6", LinkTypeLoop, append([]byte{0, 0, 0, 30}, raw("v6 mdns")...), true, "Darwin AF_INET6, network order"},
		{"ip6", LinkTypeLoop, append([]byte{30, 0, 0, 0}, raw("v6 mdns")...), false, "LOOP is network order only"},
		{"", LinkTypeEthernet, []byte{}, true, "empty filter accepts everything, even an empty frame"},
		{"ip", LinkTypeEthernet, eth("v4 udp dns query")[:13], false, "too short to hold an ethertype"},
	}
	for _, tc := range tests {
		m, err := NewMatcher(tc.expr, tc.link)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if got := m.Match(tc.frame); got != tc.want {
			t.Errorf("%q (link %d): got %v, want %v (%s)", tc.expr, tc.link, got, tc.want, tc.why)
		}
	}
}

func TestMatchWire(t *testing.T) {
	big := ethFrame(byName(testL3(t), "v4 big dns")) // 14+20+8+1200 bytes on the wire
	captured := big[:96]
	tests := []struct {
		expr       string
		match      bool // len = captured length
		matchWire  bool // len = wire length
		wireLength int
	}{
		{"greater 1000", false, true, len(big)},
		{"less 100", true, false, len(big)},
		{"len = 1242", false, true, len(big)},
		{"len = 96", true, true, 10}, // a wire length below the captured one is ignored
		{"udp port 53", true, true, len(big)},
	}
	for _, tc := range tests {
		m, err := NewMatcher(tc.expr, LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match(captured); got != tc.match {
			t.Errorf("%q Match: %v", tc.expr, got)
		}
		if got := m.MatchWire(captured, tc.wireLength); got != tc.matchWire {
			t.Errorf("%q MatchWire: %v", tc.expr, got)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		expr string
		link uint32
		want string
	}{
		{"port 53 and foo", LinkTypeEthernet, "bpf: syntax error at 'foo' (column 13)"},
		{"tcp port", LinkTypeEthernet, "bpf: syntax error: unexpected end of expression (column 9)"},
		{"(udp", LinkTypeEthernet, "bpf: syntax error: unexpected end of expression (column 5)"},
		{"udp)", LinkTypeEthernet, "bpf: syntax error at ')' (column 4)"},
		{"port 70000", LinkTypeEthernet, "bpf: illegal port number 70000 > 65535 (column 6)"},
		{"tcp host 1.2.3.4", LinkTypeEthernet, "bpf: 'tcp' modifier applied to host (column 10)"},
		{"ip6 host 1.2.3.4", LinkTypeEthernet, "bpf: 'ip6' modifier applied to ip host (column 10)"},
		{"net 10.1.2.3/8", LinkTypeEthernet, `bpf: non-network bits set in "10.1.2.3/8" (column 5)`},
		{"host 10.0.0.0/8", LinkTypeEthernet, "bpf: Mask syntax for networks only (column 6)"},
		{"host www.example.com", LinkTypeEthernet, "bpf: host names are not supported ('www.example.com'): use an address (column 6)"},
		{"vlan 4096", LinkTypeEthernet, "bpf: VLAN tag 4096 greater than maximum 4095 (column 6)"},
		{"vlan", LinkTypeLinuxSLL, "bpf: no VLAN support for Linux cooked v1 (column 1)"},
		{"udp[0:3] = 1", LinkTypeEthernet, "bpf: data size must be 1, 2, or 4 (column 7)"},
		{"len = 4 / 0", LinkTypeEthernet, "bpf: division by zero (column 9)"},
		{"port 09", LinkTypeEthernet, "bpf: number 09 contains non-octal digit (column 6)"},
		{"mpls", LinkTypeEthernet, "bpf: 'mpls' is not supported (column 1)"},
		{"port 53 # comment", LinkTypeEthernet, "bpf: unexpected character '#' (column 9)"},
		{"udp port http", LinkTypeEthernet, "bpf: port 'http' is tcp (column 10)"},
		{"ether proto 100", LinkTypeEthernet, "bpf: ether proto 100 (an 802.2 LLC SAP) is not supported (column 13)"},
		{"port 53", 12345, "bpf: unsupported link type 12345"},
	}
	for _, tc := range tests {
		_, err := Compile(tc.expr, tc.link, 0)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: got %v, want %s", tc.expr, err, tc.want)
		}
	}
	_, err := Compile("ip and ip6", LinkTypeEthernet, 0)
	if !errors.Is(err, ErrRejectsAll) {
		t.Errorf("ip and ip6: %v, want ErrRejectsAll", err)
	}
	var perr *Error
	if _, err := Compile("port 53 and foo", LinkTypeEthernet, 0); !errors.As(err, &perr) || perr.Pos != 12 {
		t.Errorf("errors.As *Error: %v", err)
	}
}

func TestCompileLimits(t *testing.T) {
	hosts := make([]string, 800)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("10.%d.%d.1", i/200, i%200)
	}
	tests := []struct {
		name string
		expr string
		want string
	}{
		{"too long", strings.Repeat("port 53 or ", 7000) + "port 53", "expression too long"},
		{"too deep", strings.Repeat("(", 300) + "tcp" + strings.Repeat(")", 300), "nested too deeply"},
		{"too deep not", strings.Repeat("not ", 300) + "tcp", "nested too deeply"},
		{"too large", "host " + strings.Join(hosts, " or "), "program too large"},
		{"too many intermediate values", "len = " + strings.Repeat("(", 20) + "len" + strings.Repeat(" + len)", 20), "too complex"},
	}
	for _, tc := range tests {
		_, err := Compile(tc.expr, LinkTypeEthernet, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestCompiledPrograms checks properties of every compiled program: the kernel's size limit,
// acceptance by x/net/bpf's validator, the requested accept value.
func TestCompiledPrograms(t *testing.T) {
	for _, lt := range []uint32{LinkTypeEthernet, LinkTypeLinuxSLL, LinkTypeSLL2, LinkTypeRaw, LinkTypeNull, LinkTypeLoop, LinkTypeIPv4, LinkTypeIPv6} {
		for _, expr := range oracleExprs {
			raw, err := Compile(expr, lt, 1500)
			if err != nil {
				continue
			}
			if len(raw) == 0 || len(raw) > MaxInstructions {
				t.Fatalf("%q: %d instructions", expr, len(raw))
			}
			ins := make([]bpf.Instruction, len(raw))
			hasAccept := false
			for i, r := range raw {
				ins[i] = r.Disassemble()
				if rc, ok := ins[i].(bpf.RetConstant); ok {
					if rc.Val != 0 && rc.Val != 1500 {
						t.Errorf("%q: returns %d", expr, rc.Val)
					}
					hasAccept = hasAccept || rc.Val == 1500
				}
			}
			if !hasAccept {
				t.Errorf("%q on %d: no accepting return", expr, lt)
			}
			if _, err := bpf.NewVM(ins); err != nil {
				t.Errorf("%q on %d: x/net/bpf: %v", expr, lt, err)
			}
		}
	}
	raw, err := Compile("  ", LinkTypeRaw, -1)
	if err != nil || len(raw) != 1 || raw[0].Op != 0x06 || raw[0].K != DefaultSnaplen {
		t.Errorf("empty expression: %v %v", raw, err)
	}
}

func TestMatchAllocations(t *testing.T) {
	frame := ethFrame(byName(testL3(t), "v4 udp dns query"))
	for _, expr := range []string{"udp port 53", "vlan or host 10.0.0.2", "ip[(ip[0] & 0xf) * 4 + 2 : 2] = 53"} {
		m, err := NewMatcher(expr, LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() { m.Match(frame) }); n != 0 {
			t.Errorf("%q: %v allocations per Match", expr, n)
		}
		if n := testing.AllocsPerRun(1000, func() { m.MatchWire(frame, 1500) }); n != 0 {
			t.Errorf("%q: %v allocations per MatchWire", expr, n)
		}
	}
}

func TestLex(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"udp[10:2]&0x80!=0", "udp [ 10 : 2 ] & 0x80 != 0"},
		{"host ::1 or fe80::1", "host ::1 or fe80::1"},
		{"ether host 00:11:22:33:44:55", "ether host 00:11:22:33:44:55"},
		{"portrange 1-1024", "portrange 1-1024"},
		{"ip[2:2]-20>len", "ip [ 2 : 2 ] - 20 > len"},
		{"!tcp&&!udp||arp", "! tcp && ! udp || arp"},
		{"proto \\udp", "proto udp"},
		{"net 10.0.0.0/8", "net 10.0.0.0 / 8"},
		{"x[:2]", "x [ : 2 ]"},
		{"a<<b>>c<=d>=e==f", "a << b >> c <= d >= e == f"},
	}
	for _, tc := range tests {
		toks, err := lex(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		var parts []string
		for _, tk := range toks[:len(toks)-1] {
			parts = append(parts, tk.text)
		}
		if got := strings.Join(parts, " "); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}
