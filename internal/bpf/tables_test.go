package bpf

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The built-in name tables must agree with the files tcpdump resolves names through on this
// system (Debian netbase), so that "port domain" or "proto \ospf" mean the same to both.

func TestPortNamesMatchEtcServices(t *testing.T) {
	f, err := os.Open("/etc/services")
	if err != nil {
		t.Skipf("no /etc/services: %v", err)
	}
	defer f.Close()
	type key struct{ name, proto string }
	ports := map[key]uint32{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		p, proto, ok := strings.Cut(fields[1], "/")
		n, err := strconv.Atoi(p)
		if !ok || err != nil {
			continue
		}
		for _, name := range append([]string{fields[0]}, fields[2:]...) {
			ports[key{name, proto}] = uint32(n)
		}
	}
	for name, pn := range portNames {
		tcp, hasTCP := ports[key{name, "tcp"}]
		udp, hasUDP := ports[key{name, "udp"}]
		switch pn.proto {
		case 0:
			if !hasTCP || !hasUDP || tcp != pn.port || udp != pn.port {
				t.Errorf("%s: table %d/tcp+udp, /etc/services tcp=%d(%v) udp=%d(%v)", name, pn.port, tcp, hasTCP, udp, hasUDP)
			}
		case protoTCP:
			if !hasTCP || tcp != pn.port || (hasUDP && udp == pn.port) {
				t.Errorf("%s: table %d/tcp, /etc/services tcp=%d(%v) udp=%d(%v)", name, pn.port, tcp, hasTCP, udp, hasUDP)
			}
		case protoUDP:
			if !hasUDP || udp != pn.port || hasTCP {
				t.Errorf("%s: table %d/udp, /etc/services tcp=%d(%v) udp=%d(%v)", name, pn.port, tcp, hasTCP, udp, hasUDP)
			}
		}
	}
}

func TestProtoNamesMatchEtcProtocols(t *testing.T) {
	f, err := os.Open("/etc/protocols")
	if err != nil {
		t.Skipf("no /etc/protocols: %v", err)
	}
	defer f.Close()
	sys := map[string]uint32{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		n, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		for _, name := range append([]string{fields[0]}, fields[2:]...) {
			sys[name] = uint32(n)
		}
	}
	for name, v := range ipProtoNames {
		if w, ok := sys[name]; ok && w != v {
			t.Errorf("%s: table %d, /etc/protocols %d", name, v, w)
		}
	}
	for _, name := range []string{"tcp", "udp", "icmp", "ipv6-icmp", "ospf", "gre", "sctp", "esp"} {
		if _, ok := sys[name]; ok {
			if _, ok := ipProtoNames[name]; !ok {
				t.Errorf("%s missing from the table", name)
			}
		}
	}
}
