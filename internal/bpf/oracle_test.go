package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

// oracleExprs are checked against tcpdump on every capture: single primitives, qualifiers,
// combinations, negations, vlan, IPv6, port ranges, fragments, arithmetic.
var oracleExprs = []string{
	"",
	// Protocols.
	"ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp",
	"tcp or udp or icmp", "!tcp && !udp", "ip and not (udp or tcp)", "arp or icmp or icmp6",
	// Ports.
	"port 53", "src port 53", "dst port 53", "tcp port 53", "udp port 53", "udp dst port 53",
	"tcp src port 53", "sctp port 53", "port 53000", "port 5353", "not port 53", "port 0x35",
	"port domain", "port http", "udp port ntp", "tcp port https", "port 53 or 80",
	"tcp port 53 and not 54 or 80", "src and dst port 53", "src or dst port 123",
	"portrange 50-60", "tcp portrange 1-1024", "src portrange 1024-65535", "portrange 60-50",
	"udp dst portrange 5000-6000", "portrange 53",
	// Hosts and networks.
	"host 10.0.0.1", "src host 10.0.0.1", "dst host 192.168.1.1", "host 10.0.0.1 or 10.0.0.2",
	"ip host 10.0.0.1", "arp host 10.0.0.1", "rarp src host 10.0.0.5", "arp dst 10.0.0.1",
	"host 10.0.0.1 and not 10.0.0.2", "host (10.0.0.1 or 10.0.0.3)", "src or dst host 10.0.0.2",
	"src and dst host 10.0.0.2", "src and dst net 10.0.0.0/8", "src 10.0.0.1", "dst 10.0.0.2 and udp",
	"net 10.0.0.0/8", "net 192.168.0.0 mask 255.255.0.0", "net 10", "net 192.168", "host 10.0",
	"src net 10.1.0.0/16", "dst net 192.168.1.0/24", "not net 10.0.0.0/8", "net 0.0.0.0/0",
	"ip net 224.0.0.0/4",
	// IPv6.
	"host 2001:db8::1", "ip6 host 2001:db8::53", "src host 2001:db8::1", "net 2001:db8::/32",
	"ip6 net 2001:db8:1::/48", "dst net fe80::/10", "dst net ff00::/8 and icmp6", "ip6 and udp port 53",
	"ip6 proto 17", "ip6 proto \\udp", "ip6 and tcp", "ip6 proto 44", "ip6 proto 0",
	"host 2001:db8::53 and not port 53", "net 2001:db8::/33", "dst net 2001:db8::50/126",
	// Protocol numbers.
	"proto 17", "ip proto 6", "proto \\tcp", "ip proto \\icmp", "proto 47", "ip proto 132",
	"proto \\ipv6-icmp", "proto 17 or 6",
	// VLAN.
	"vlan", "vlan 100", "vlan 200", "vlan and udp port 53", "vlan 100 and host 10.0.0.1",
	"vlan and vlan", "vlan 300 and vlan 100", "not vlan", "vlan or port 53", "port 53 or vlan",
	"vlan and ip6", "vlan 4095 and icmp", "vlan and arp", "vlan 200 and vlan 201 and udp",
	"vlan and not port 53", "(vlan 100 or vlan 200) and udp",
	// Lengths.
	"less 100", "greater 500", "len > 1000", "len <= 64", "less 60 and udp", "greater 1000 and port 53",
	// Combinations.
	"(tcp or udp) and port 53", "udp and not port 53", "tcp port 53 or udp port 5353",
	"host 10.0.0.1 and (port 53 or port 80)", "not (host 10.0.0.1 or host 2001:db8::1)",
	"arp or ip and udp", "not not tcp", "port 53 and (54 or 55 or 40000)",
	// Fragments.
	"ip[6:2] & 0x1fff != 0", "ip[6:2] & 0x3fff != 0", "udp and ip[6:2] & 0x1fff = 0",
	"ip6[6] = 44", "ip[6] & 0x20 != 0",
	// Arithmetic.
	"udp[10] & 0x80 = 0", "udp[10] & 0x80 != 0", "tcp[tcpflags] & tcp-syn != 0",
	"tcp[tcpflags] & (tcp-syn|tcp-ack) = (tcp-syn|tcp-ack)", "icmp[icmptype] = icmp-echo",
	"icmp6[icmp6type] = icmp6-echo", "icmp6[0] = 135", "ip[0] & 0xf > 5", "ether[0] & 1 = 1",
	"udp[0:2] = 53 or udp[2:2] = 53", "ip[2:2] > 100", "(ip[0] & 0xf) * 4 > 20",
	"ether[12:2] = 0x0800", "ip[(ip[0] & 0xf) * 4 + 2 : 2] = 53", "udp[8 + 2] & 0x80 = 0x80",
	"len - 14 > 100", "ip[2:2] / 4 % 3 = 1", "ip[2:2] % 7 + 1 = 3", "ip[3] * 3 % 5 = 2", "-ip[0] < 100", "ip[8] ^ 1 | 2 = 67", "len = 1 ^ 2 | 3",
	"ip[16:4] >> 24 = 224", "ip[12] << 24 >> 24 = 10", "ip6[7] > ip6[6]", "ip[1] + 1 > 0",
	"arp[7] = 1", "sctp[2:2] = 53", "igmp[0] = 0x22", "5 > 3 and udp", "ip[ip[0] - 0x45] = 0x45",
	// Link layer.
	"ether broadcast", "ether multicast", "broadcast", "multicast", "ip multicast",
	"ip6 multicast", "ip broadcast", "ether host 00:11:22:33:44:55", "ether src 02:00:00:00:00:01",
	"ether dst ff:ff:ff:ff:ff:ff", "ether proto 0x88cc", "ether proto \\arp", "ether proto \\ip6",
	"ether src 2:0:0:0:0:1 and not arp", "ether dst 33:33:00:00:00:01", "icmp6 and ip6[40] = 135",
	"not ip6 and not ip", "ip6 and not icmp6", "vlan and ether[14:2] & 0xfff = 100", "port 53 and vlan",
	"host 10.0.0.1 and (vlan or ip)", "vlan 100 and not vlan 100", "udp and (port 53 or 5353) and not ip6",
}

// oracleErrorExprs must be refused by tcpdump and by Compile (on Ethernet).
var oracleErrorExprs = []string{
	"1.2.3.4", "foo", "53", "tcp host 1.2.3.4", "ip6 host 1.2.3.4", "ip host ::1",
	"port 70000", "port 09", "port 4294967296", "net 10.1.2.3/8", "host 10.0.0.0/8",
	"10.0.0.0/8", "net 10.0.0.0/33", "vlan 4096", "udp[0:3] = 1", "len = 4 / 0", "len = 4 % 0",
	"len = 1 << 32", "host 00:11:22:33:44:55", "ether host 1.2.3.4", "proto tcp", "tcp proto 6",
	"ip port 53", "udp port http", "host 1.2.3.256", "portrange 5-", "vlan 1 or 2", "less 100 or 200",
	"tcp or 1.2.3.4", "host 2001:db8::/32", "net 2001:db8::1/32", "(tcp", "tcp)", "port",
	"and", "not", "len > 5-3", "ip[0] = 1.2", "host fe80::1%eth0", "udp port 53 or tcp or 54",
	"host foo.invalid", "proto \\icmp6", "proto \\Icmp", "portrange 0x10-0x20", "net 10/8",
}

func tcpdumpPath(t *testing.T) string {
	p, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed: the tcpdump oracle tests need it (apt-get install tcpdump)")
	}
	return p
}

// tcpdumpMatches runs tcpdump on the capture and returns the frame numbers it accepts (frames
// carry unique timestamps, see frameTime), or its error output.
func tcpdumpMatches(t *testing.T, tcpdump, path, expr string) (map[int]bool, error) {
	args := []string{"-n", "-r", path, "-w", "-"}
	if expr != "" {
		args = append(args, "--", expr)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tcpdump, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s", strings.TrimSpace(stderr.String()))
	}
	r, err := pcapgo.NewReader(&stdout)
	if err != nil {
		t.Errorf("tcpdump output for %q: %v", expr, err)
		return nil, nil
	}
	got := map[int]bool{}
	for {
		_, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		got[int(ci.Timestamp.Unix()-frameTime(0).Unix())] = true
	}
	return got, nil
}

// oracleCapture is one capture file per link type: the generated frames followed by the
// frames of the shared reference captures of that link type, renumbered (timestamps are frame
// numbers). One file per link type keeps the number of tcpdump runs down.
type oracleCapture struct {
	name     string
	path     string
	linkType uint32
	frames   []frame
	labels   []string // origin of each frame, for failure messages
}

func oracleCaptures(t *testing.T, dir string) []*oracleCapture {
	var out []*oracleCapture
	byLink := map[uint32]*oracleCapture{}
	for _, c := range generatedCaptures(t) {
		oc := &oracleCapture{name: c.name, linkType: c.linkType, frames: c.frames}
		for i := range c.frames {
			oc.labels = append(oc.labels, fmt.Sprintf("generated #%d", i))
		}
		out = append(out, oc)
		byLink[c.linkType] = oc
	}
	shared, _ := filepath.Glob("/work/shared/testdata/pktvisor/*.pcap")
	if len(shared) == 0 {
		t.Log("shared captures absent (/work/shared/testdata/pktvisor): only generated captures checked")
	}
	for _, s := range shared {
		lt, frames := readCapture(t, s)
		oc := byLink[lt]
		if oc == nil {
			t.Errorf("%s: link type %d not supported", s, lt)
			continue
		}
		for i, fr := range frames {
			oc.frames = append(oc.frames, fr)
			oc.labels = append(oc.labels, fmt.Sprintf("%s #%d", filepath.Base(s), i))
		}
	}
	for _, oc := range out {
		oc.path = filepath.Join(dir, oc.name+".pcap")
		writeCapture(t, oc.path, linkCapture{oc.name, oc.linkType, oc.frames})
	}
	return out
}

// diff describes the frames on which two match sets differ (at most a few).
func (oc *oracleCapture) diff(got, want map[int]bool) string {
	var b strings.Builder
	n := 0
	for i := range oc.frames {
		if got[i] == want[i] {
			continue
		}
		if n++; n > 6 {
			b.WriteString("\n   ...")
			break
		}
		fmt.Fprintf(&b, "\n   frame %d (%s): ours %v, tcpdump %v", i, oc.labels[i], got[i], want[i])
	}
	return b.String()
}

func sameSet(a, b map[int]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestAgainstTcpdump: for every expression and capture, the set of frames our Matcher accepts
// equals the set tcpdump accepts, and Compile fails exactly when tcpdump refuses the
// expression for that link type.
func TestAgainstTcpdump(t *testing.T) {
	tcpdump := tcpdumpPath(t)
	caps := oracleCaptures(t, t.TempDir())
	type job struct {
		c    *oracleCapture
		expr string
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	// tcpdump runs mostly wait on process start-up, so run more of them than there are CPUs.
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				checkAgainstTcpdump(t, tcpdump, j.c, j.expr)
			}
		}()
	}
	for _, c := range caps {
		for i, expr := range oracleExprs {
			// -short: every expression on Ethernet, a third of them on the other link types.
			if testing.Short() && c.linkType != LinkTypeEthernet && i%3 != 0 {
				continue
			}
			jobs <- job{c, expr}
		}
	}
	close(jobs)
	wg.Wait()
}

func checkAgainstTcpdump(t *testing.T, tcpdump string, c *oracleCapture, expr string) {
	want, tdErr := tcpdumpMatches(t, tcpdump, c.path, expr)
	m, err := NewMatcher(expr, c.linkType)
	match := func() map[int]bool {
		got := map[int]bool{}
		for i, fr := range c.frames {
			if m.MatchWire(fr.data, fr.wireLen) {
				got[i] = true
			}
		}
		return got
	}
	switch {
	case tdErr != nil && err != nil:
	case tdErr != nil && strings.Contains(tdErr.Error(), "rejects all packets"):
		// libpcap's optimizer proves more filters empty than our constant folding does.
		if got := match(); len(got) != 0 {
			t.Errorf("%s: %q: tcpdump: %v; we match:%s", c.name, expr, tdErr, c.diff(got, nil))
		}
	case tdErr != nil:
		t.Errorf("%s: %q: tcpdump refuses (%v), Compile accepts", c.name, expr, tdErr)
	case err != nil && errors.Is(err, ErrRejectsAll) && len(want) == 0:
	case err != nil:
		t.Errorf("%s: %q: Compile: %v; tcpdump accepts it", c.name, expr, err)
	default:
		if got := match(); !sameSet(got, want) {
			t.Errorf("%s: %q: ours and tcpdump differ:%s", c.name, expr, c.diff(got, want))
		}
	}
}

func TestErrorsAgainstTcpdump(t *testing.T) {
	tcpdump := tcpdumpPath(t)
	dir := t.TempDir()
	c := generatedCaptures(t)[0]
	p := filepath.Join(dir, "eth.pcap")
	writeCapture(t, p, c)
	for _, expr := range oracleErrorExprs {
		_, tdErr := tcpdumpMatches(t, tcpdump, p, expr)
		_, err := Compile(expr, LinkTypeEthernet, 0)
		if tdErr == nil {
			t.Errorf("%q: tcpdump accepts it; the test table is wrong", expr)
		}
		if err == nil {
			t.Errorf("%q: Compile accepts it; tcpdump: %v", expr, tdErr)
		}
	}
}

// TestLongJumpsAgainstTcpdump checks an expression whose program needs jumps longer than 255
// instructions.
func TestLongJumpsAgainstTcpdump(t *testing.T) {
	tcpdump := tcpdumpPath(t)
	var hosts []string
	for i := 0; i < 150; i++ {
		hosts = append(hosts, fmt.Sprintf("10.0.%d.%d", i/100, 100+i%100))
	}
	exprs := []string{
		"host " + strings.Join(hosts, " or ") + " or port 53",
		"(port 53 or port 80) and not host " + strings.Join(hosts, " and not "),
	}
	dir := t.TempDir()
	c := generatedCaptures(t)[0]
	p := filepath.Join(dir, "eth.pcap")
	writeCapture(t, p, c)
	for _, expr := range exprs {
		raw, err := Compile(expr, LinkTypeEthernet, 0)
		if err != nil {
			t.Fatal(err)
		}
		longJump := false
		for _, ri := range raw {
			if j, ok := ri.Disassemble().(bpf.Jump); ok && j.Skip > 255 {
				longJump = true
			}
		}
		if !longJump {
			t.Fatalf("program of %d instructions has no long jump", len(raw))
		}
		want, err := tcpdumpMatches(t, tcpdump, p, expr)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMatcher(expr, LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]bool{}
		for i, fr := range c.frames {
			if m.MatchWire(fr.data, fr.wireLen) {
				got[i] = true
			}
		}
		if !sameSet(got, want) {
			t.Errorf("%.60q...: ours and tcpdump differ", expr)
		}
	}
}

// randomExpr builds a random expression from primitives, qualifier repetition, negation,
// grouping and and/or, for the randomized comparison with tcpdump.
func randomExpr(r *rand.Rand, depth int) string {
	prims := []string{
		"ip", "ip6", "arp", "tcp", "udp", "icmp", "icmp6", "vlan", "vlan 100", "vlan 200",
		"port 53", "src port 53", "dst port 40000", "tcp port 80", "udp port 5353", "portrange 50-60",
		"host 10.0.0.1", "src host 10.0.0.2", "dst net 10.0.0.0/8", "net 192.168.1.0/24",
		"host 2001:db8::53", "src net 2001:db8::/32", "ip6 dst net ff00::/8", "proto 17",
		"ip proto 6", "ip6 proto 44", "less 80", "greater 200", "udp[10] & 0x80 != 0",
		"tcp[tcpflags] & tcp-syn != 0", "ip[6:2] & 0x1fff != 0", "ether multicast",
		"ether src 02:00:00:00:00:01", "len > 100", "icmp[0] = 8", "ip[8] < 100",
	}
	if depth <= 0 || r.IntN(3) == 0 {
		p := prims[r.IntN(len(prims))]
		switch {
		case strings.HasPrefix(p, "host ") && r.IntN(2) == 0:
			p += " or 10.0.0.3"
		case strings.HasPrefix(p, "port ") && r.IntN(2) == 0:
			p += " or 80"
		}
		return p
	}
	switch r.IntN(4) {
	case 0:
		return "not " + randomExpr(r, depth-1)
	case 1:
		return "(" + randomExpr(r, depth-1) + ")"
	case 2:
		return randomExpr(r, depth-1) + " and " + randomExpr(r, depth-1)
	}
	return randomExpr(r, depth-1) + " or " + randomExpr(r, depth-1)
}

func TestRandomExprsAgainstTcpdump(t *testing.T) {
	tcpdump := tcpdumpPath(t)
	n := 150
	if testing.Short() {
		n = 30
	}
	dir := t.TempDir()
	var caps []*oracleCapture
	for _, c := range generatedCaptures(t)[:4] { // Ethernet, SLL, SLL2, raw
		oc := &oracleCapture{name: c.name, path: filepath.Join(dir, c.name+".pcap"), linkType: c.linkType, frames: c.frames}
		for i := range c.frames {
			oc.labels = append(oc.labels, fmt.Sprintf("generated #%d", i))
		}
		writeCapture(t, oc.path, c)
		caps = append(caps, oc)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		expr := randomExpr(r, 4)
		checkAgainstTcpdump(t, tcpdump, caps[i%len(caps)], expr)
	}
}
