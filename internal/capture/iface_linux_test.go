//go:build linux

package capture

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// ipLinkNames lists the interfaces in index order as ip(8) prints them ("3: vA@vB: ..."),
// the oracle for AvailableInterfaces.
func ipLinkNames(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip -o link show: %v", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

// TestResolveIfaceLoopbackOnly runs where lo is the only interface (a fresh namespace).
func TestResolveIfaceLoopbackOnly(t *testing.T) {
	netns(t)
	for _, spec := range []string{"lo", "127.0.0.1", "::1", "::ffff:127.0.0.1", "auto"} {
		if got, err := ResolveIface(spec); err != nil || got != "lo" {
			t.Errorf("ResolveIface(%q) = %q, %v; want lo", spec, got, err)
		}
	}
	if got := AvailableInterfaces(); got != "lo" {
		t.Errorf("AvailableInterfaces() = %q", got)
	}
	setLinkUp(t, "lo", false)
	if got, err := ResolveIface("auto"); err != nil || got != "lo" {
		t.Errorf("ResolveIface(auto) with lo down = %q, %v; want lo", got, err)
	}
	setLinkUp(t, "lo", true)
	pfx, err := InterfacePrefixes("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"127.0.0.1/8", "::1/128"} {
		if !slices.Contains(pfx, netip.MustParsePrefix(want)) {
			t.Errorf("InterfacePrefixes(lo) = %v, missing %s", pfx, want)
		}
	}
	if lt, err := IfaceLinkType("lo"); err != nil || lt != decode.LinkEthernet {
		t.Errorf("IfaceLinkType(lo) = %d, %v", lt, err)
	}
}

// TestResolveIface sets up a veth pair with addresses, a dummy interface and a tun device in
// a namespace and resolves names, addresses and "auto" against what ip(8) configured.
func TestResolveIface(t *testing.T) {
	netns(t)
	vethPair(t, "vA", "vB")
	ipCmd(t, "addr", "add", "192.0.2.2/24", "dev", "vA")
	ipCmd(t, "addr", "add", "2001:db8::2/64", "dev", "vA", "nodad")
	ipCmd(t, "addr", "add", "fe80::2/64", "dev", "vA", "nodad")
	ipCmd(t, "addr", "add", "198.51.100.7/32", "dev", "vB")
	// A bridge without ports counts what is sent on it and drops it: our busy interface.
	ipCmd(t, "link", "add", "d0", "type", "bridge")
	ipCmd(t, "link", "set", "d0", "up")

	avail := ipLinkNames(t)
	if got := AvailableInterfaces(); got != avail {
		t.Errorf("AvailableInterfaces() = %q, ip says %q", got, avail)
	}
	tests := []struct {
		spec, want, err string
	}{
		{spec: "vA", want: "vA"},
		{spec: "vB", want: "vB"},
		{spec: "d0", want: "d0"},
		{spec: "192.0.2.2", want: "vA"},
		{spec: "::ffff:192.0.2.2", want: "vA"},
		{spec: "2001:db8::2", want: "vA"},
		{spec: "fe80::2%vA", want: "vA"},
		{spec: "fe80::2", want: "vA"},
		{spec: "198.51.100.7", want: "vB"},
		{spec: "127.0.0.1", want: "lo"},
		{spec: "fe80::2%vB", err: "Couldn't find interface by provided IP: fe80::2%vB"},
		{spec: "192.0.2.3", err: "Couldn't find interface by provided IP: 192.0.2.3"},
		{spec: "2001:db8::", err: "Couldn't find interface by provided IP: 2001:db8::"},
		{spec: "eth9", err: `Couldn't find interface by provided name: "eth9". Available interfaces: ` + avail},
		{spec: "", err: `Couldn't find interface by provided name: "". Available interfaces: ` + avail},
		{spec: "VA", err: `Couldn't find interface by provided name: "VA". Available interfaces: ` + avail},
	}
	for _, tt := range tests {
		got, err := ResolveIface(tt.spec)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err || !errors.Is(err, ErrNoSuchIface) {
				t.Errorf("ResolveIface(%q) = %q, %v; want error %q", tt.spec, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveIface(%q) = %q, %v; want %q", tt.spec, got, err, tt.want)
		}
	}

	pfx, err := InterfacePrefixes("vA")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.0.2.2/24", "2001:db8::2/64", "fe80::2/64"} {
		if !slices.Contains(pfx, netip.MustParsePrefix(want)) {
			t.Errorf("InterfacePrefixes(vA) = %v, missing %s", pfx, want)
		}
	}
	for _, p := range pfx {
		if p.Addr().Is4In6() {
			t.Errorf("InterfacePrefixes(vA): %v is not unmapped", p)
		}
	}
	if _, err := InterfacePrefixes("eth9"); err == nil {
		t.Error("InterfacePrefixes(eth9) succeeded")
	}

	// auto: the busiest interface that is up. 100 kB out of d0 outweighs the few neighbour
	// discovery packets on the veth pair.
	snd := newRawSender(t, "d0")
	f := ethFrame(nil, nil, 1, 1000)
	f = append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, f...)
	for i := 0; i < 100; i++ {
		snd.send(t, f)
	}
	if got, err := ResolveIface("auto"); err != nil || got != "d0" {
		t.Errorf("ResolveIface(auto) = %q, %v; want d0", got, err)
	}
	setLinkUp(t, "d0", false)
	if got, err := ResolveIface("auto"); err != nil || (got != "vA" && got != "vB") {
		t.Errorf("ResolveIface(auto) with d0 down = %q, %v; want vA or vB", got, err)
	}
}

func TestIfaceLinkType(t *testing.T) {
	netns(t)
	ipCmd(t, "link", "add", "d0", "type", "bridge")
	ipCmd(t, "tuntap", "add", "dev", "t0", "mode", "tun")
	tests := []struct {
		iface string
		want  decode.LinkType
		err   error
	}{
		{"lo", decode.LinkEthernet, nil},
		{"d0", decode.LinkEthernet, nil},
		{"t0", decode.LinkRaw, nil},
		{"nope0", 0, ErrNoSuchIface},
	}
	// A tunnel device (ARPHRD_TUNNEL), where the ipip module is available.
	if exec.Command("ip", "link", "add", "ip0", "type", "ipip", "local", "192.0.2.2", "remote", "192.0.2.3").Run() == nil {
		tests = append(tests, struct {
			iface string
			want  decode.LinkType
			err   error
		}{"ip0", 0, decode.ErrUnsupportedLink})
	}
	for _, tt := range tests {
		got, err := IfaceLinkType(tt.iface)
		if got != tt.want || (tt.err == nil) != (err == nil) || (tt.err != nil && !errors.Is(err, tt.err)) {
			t.Errorf("IfaceLinkType(%s) = %d, %v; want %d, %v", tt.iface, got, err, tt.want, tt.err)
		}
		if tt.err != nil {
			continue
		}
		// A capture reports the same link type.
		src, err := OpenLive(LiveConfig{Iface: tt.iface, NoPromisc: true})
		if err != nil {
			t.Errorf("OpenLive(%s): %v", tt.iface, err)
			continue
		}
		if src.LinkType() != tt.want {
			t.Errorf("OpenLive(%s).LinkType() = %d, want %d", tt.iface, src.LinkType(), tt.want)
		}
		src.Close()
	}
}

func TestLinkForHatype(t *testing.T) {
	tests := []struct {
		hatype uint16
		want   decode.LinkType
		ok     bool
	}{
		{1, decode.LinkEthernet, true},   // ARPHRD_ETHER
		{772, decode.LinkEthernet, true}, // ARPHRD_LOOPBACK
		{0xfffe, decode.LinkRaw, true},   // ARPHRD_NONE
		{519, decode.LinkRaw, true},      // ARPHRD_RAWIP
		{768, 0, false},                  // ARPHRD_TUNNEL
		{778, 0, false},                  // ARPHRD_IPGRE
		{824, 0, false},                  // ARPHRD_NETLINK
		{32, 0, false},                   // ARPHRD_INFINIBAND
	}
	for _, tt := range tests {
		if got, ok := linkForHatype(tt.hatype); got != tt.want || ok != tt.ok {
			t.Errorf("linkForHatype(%d) = %d, %v; want %d, %v", tt.hatype, got, ok, tt.want, tt.ok)
		}
	}
}

// TestLinkCounters compares the rtnetlink counters "auto" and Stats use with ip(8)'s.
func TestLinkCounters(t *testing.T) {
	netns(t)
	vethPair(t, "vA", "vB")
	snd := newRawSender(t, "vA")
	for i := 0; i < 50; i++ {
		snd.send(t, ethFrame(net.HardwareAddr{2, 0, 0, 0, 0, 2}, nil, i, 100+i))
	}
	type ipStats struct {
		Ifname  string `json:"ifname"`
		Stats64 struct {
			Rx struct {
				Bytes  uint64 `json:"bytes"`
				Fifo   uint64 `json:"fifo_errors"`
				Missed uint64 `json:"missed_errors"`
			} `json:"rx"`
			Tx struct {
				Bytes uint64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	// Neighbour discovery may send a packet between the two reads: retry.
	for try := 0; ; try++ {
		out, err := exec.Command("ip", "-j", "-s", "-s", "link", "show").Output()
		if err != nil {
			t.Skipf("ip -j: %v", err)
		}
		var want []ipStats
		if err := json.Unmarshal(out, &want); err != nil {
			t.Skipf("ip -j output: %v", err)
		}
		ls, err := links()
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]linkInfo{}
		for _, l := range ls {
			byName[l.name] = l
		}
		bad := ""
		for _, w := range want {
			l, ok := byName[w.Ifname]
			if !ok || !l.hasStats || l.rxBytes != w.Stats64.Rx.Bytes || l.txBytes != w.Stats64.Tx.Bytes ||
				l.ifDrops != w.Stats64.Rx.Fifo+w.Stats64.Rx.Missed {
				bad += fmt.Sprintf("%s: ours %+v, ip's %+v; ", w.Ifname, l, w.Stats64)
			}
		}
		if len(ls) != len(want) {
			bad += fmt.Sprintf("%d links, ip lists %d", len(ls), len(want))
		}
		if bad == "" {
			if byName["vB"].rxBytes < 50*(42+100) {
				t.Errorf("vB received %d bytes, sent more", byName["vB"].rxBytes)
			}
			return
		}
		if try == 2 {
			t.Fatal(bad)
		}
	}
}
