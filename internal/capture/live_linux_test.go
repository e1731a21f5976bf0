//go:build linux

package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	xbpf "golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/pktvisor-go/pktvisor/internal/bpf"
	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// These tests capture real traffic, each in a network namespace of its own so that nothing
// touches the host's network: netns locks the test goroutine to its OS thread and moves
// that thread (only) into a new namespace, where lo is the only interface. Every socket the
// test needs is created on that goroutine (a socket belongs to the namespace of the thread
// that made it) and may then be used from any goroutine. The thread is never unlocked, so
// the runtime discards it when the test ends, and the namespace (with any veth created in
// it) disappears with its last socket.

const liveTestPoll = 50 * time.Millisecond

// netns moves the calling goroutine into a fresh network namespace with lo up. Call it first
// in every test or subtest that opens sockets, on the test's own goroutine.
func netns(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("live capture tests need root (CAP_NET_RAW, and CAP_SYS_ADMIN for a network namespace)")
	}
	runtime.LockOSThread() // never unlocked: the thread is thrown away with its namespace
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		tb.Skipf("cannot create a network namespace: %v", err)
	}
	setLinkUp(tb, "lo", true)
}

// setLinkUp sets or clears IFF_UP with an ioctl, so the basic tests need no ip(8).
func setLinkUp(tb testing.TB, name string, up bool) {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		tb.Fatalf("SIOCGIFFLAGS %s: %v", name, err)
	}
	flags := ifr.Uint16()
	if up {
		flags |= unix.IFF_UP
	} else {
		flags &^= unix.IFF_UP
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		tb.Fatalf("SIOCSIFFLAGS %s: %v", name, err)
	}
}

// promiscuity is the interface's promiscuity count as ip(8) reports it (SIOCGIFFLAGS shows
// IFF_PROMISC only when set through it, not for packet sockets' requests).
func promiscuity(tb testing.TB, name string) int {
	tb.Helper()
	out, err := exec.Command("ip", "-d", "link", "show", name).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip -d link show %s: %v: %s", name, err, out)
	}
	f := strings.Fields(string(out))
	for i := range f[:len(f)-1] {
		if f[i] == "promiscuity" {
			var n int
			if _, err := fmt.Sscan(f[i+1], &n); err == nil {
				return n
			}
		}
	}
	tb.Fatalf("no promiscuity in: %s", out)
	return 0
}

// ipCmd runs ip(8) in the test's namespace (a child inherits the namespace of the locked
// thread that starts it), skipping the test when ip is missing.
func ipCmd(tb testing.TB, args ...string) {
	tb.Helper()
	path, err := exec.LookPath("ip")
	if err != nil {
		tb.Skip("ip(8) not found")
	}
	if out, err := exec.Command(path, args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// vethPair creates veth a<->b, both up, in the test's namespace.
func vethPair(tb testing.TB, a, b string) {
	tb.Helper()
	ipCmd(tb, "link", "add", a, "type", "veth", "peer", "name", b)
	tb.Cleanup(func() { _ = exec.Command("ip", "link", "del", a).Run() })
	ipCmd(tb, "link", "set", a, "up")
	ipCmd(tb, "link", "set", b, "up")
}

func openLiveT(tb testing.TB, cfg LiveConfig) *LiveSource {
	tb.Helper()
	src, err := OpenLive(cfg)
	if err != nil {
		tb.Fatalf("OpenLive(%+v): %v", cfg, err)
	}
	tb.Cleanup(func() { src.Close() })
	return src
}

func compileT(tb testing.TB, expr string, snap int) []xbpf.RawInstruction {
	tb.Helper()
	prog, err := bpf.Compile(expr, uint32(decode.LinkEthernet), snap)
	if err != nil {
		tb.Fatalf("bpf.Compile(%q): %v", expr, err)
	}
	return prog
}

func listenUDP(tb testing.TB, network, addr string) *net.UDPConn {
	tb.Helper()
	la, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := net.ListenUDP(network, la)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func dialUDP(tb testing.TB, to *net.UDPConn) *net.UDPConn {
	tb.Helper()
	ra := to.LocalAddr().(*net.UDPAddr)
	network := "udp4"
	if ra.IP.To4() == nil {
		network = "udp6"
	}
	c, err := net.DialUDP(network, nil, ra)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// payload i: the index, then a pattern, n bytes in all (at least 4).
func payload(i, n int) []byte {
	b := make([]byte, max(n, 4))
	binary.BigEndian.PutUint32(b, uint32(i))
	for j := 4; j < len(b); j++ {
		b[j] = byte(i*7 + j)
	}
	return b
}

type captured struct {
	data []byte
	info PacketInfo
}

// drain reads src until it has want frames and a poll then times out (so that extra frames
// would be seen), or until the time limit. It may run on any goroutine.
func drain(src *LiveSource, want int, limit time.Duration) ([]captured, error) {
	var out []captured
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		data, info, err := src.Next()
		if errors.Is(err, ErrTimeout) {
			if len(out) >= want {
				return out, nil
			}
			continue
		}
		if err != nil {
			return out, fmt.Errorf("Next after %d frames: %w", len(out), err)
		}
		out = append(out, captured{bytes.Clone(data), info})
	}
	return out, fmt.Errorf("%d frames after %v, want %d", len(out), limit, want)
}

// udpOf decodes a captured frame with gopacket, the oracle.
type udpInfo struct {
	src, dst netip.AddrPort
	payload  []byte
	ipv6     bool
}

func udpOf(data []byte) (udpInfo, bool) {
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		return udpInfo{}, false
	}
	var sip, dip net.IP
	v6 := false
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		sip, dip = ip.SrcIP, ip.DstIP
	case *layers.IPv6:
		sip, dip, v6 = ip.SrcIP, ip.DstIP, true
	default:
		return udpInfo{}, false
	}
	sa, _ := netip.AddrFromSlice(sip)
	da, _ := netip.AddrFromSlice(dip)
	return udpInfo{
		src:     netip.AddrPortFrom(sa.Unmap(), uint16(u.SrcPort)),
		dst:     netip.AddrPortFrom(da.Unmap(), uint16(u.DstPort)),
		payload: u.Payload,
		ipv6:    v6,
	}, true
}

func addrPort(c *net.UDPConn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// TestLiveLoopback sends UDP datagrams over IPv4 and IPv6 loopback and checks that each is
// captured exactly once (lo shows every packet twice, going out and coming in), whole, with
// the right lengths and a current timestamp.
func TestLiveLoopback(t *testing.T) {
	netns(t)
	rcv4 := listenUDP(t, "udp4", "127.0.0.1:0")
	rcv6 := listenUDP(t, "udp6", "[::1]:0")
	src := openLiveT(t, LiveConfig{Iface: "lo", PollTimeout: liveTestPoll})
	if _, in := src.FanoutGroup(); src.LinkType() != decode.LinkEthernet || src.Iface() != "lo" || in {
		t.Fatalf("LinkType %d Iface %q in a fanout group %v", src.LinkType(), src.Iface(), in)
	}
	snd4, snd6 := dialUDP(t, rcv4), dialUDP(t, rcv6)

	type sent struct {
		from, to netip.AddrPort
		data     []byte
		wire     int
	}
	const n = 300
	var want []sent
	before := time.Now()
	for i := 0; i < n; i++ {
		size := 4 + (i*37)%1500
		if i == n-1 {
			size = 9000 // more than an Ethernet MTU: lo's is 64 KiB
		}
		p := payload(i, size)
		c, hdr := snd4, 14+20+8
		to := rcv4
		if i%5 == 4 {
			c, hdr, to = snd6, 14+40+8, rcv6
		}
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		want = append(want, sent{addrPort(c), addrPort(to), p, hdr + len(p)})
	}
	got, err := drain(src, n, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if len(got) != n {
		t.Fatalf("captured %d frames, sent %d", len(got), n)
	}
	seen := make([]bool, n)
	for k, c := range got {
		u, ok := udpOf(c.data)
		if !ok || len(u.payload) < 4 {
			t.Fatalf("frame %d is not a UDP datagram of ours: % x", k, c.data[:min(len(c.data), 64)])
		}
		i := int(binary.BigEndian.Uint32(u.payload))
		if i >= n || seen[i] {
			t.Fatalf("frame %d: datagram %d unknown or seen twice", k, i)
		}
		seen[i] = true
		w := want[i]
		if u.src != w.from || u.dst != w.to || !bytes.Equal(u.payload, w.data) {
			t.Errorf("datagram %d: %v -> %v %d bytes, want %v -> %v %d bytes", i, u.src, u.dst, len(u.payload), w.from, w.to, len(w.data))
		}
		if c.info.CapLen != w.wire || len(c.data) != w.wire || c.info.WireLen != w.wire {
			t.Errorf("datagram %d: CapLen %d len %d WireLen %d, want %d", i, c.info.CapLen, len(c.data), c.info.WireLen, w.wire)
		}
		if c.info.Link != decode.LinkEthernet {
			t.Errorf("datagram %d: link %d", i, c.info.Link)
		}
		ts := time.Unix(0, c.info.TS)
		if ts.Before(before.Add(-time.Second)) || ts.After(after.Add(time.Second)) {
			t.Errorf("datagram %d: timestamp %v not within a second of [%v, %v]", i, ts, before, after)
		}
	}
	if osDrops, ifDrops, err := src.Stats(); err != nil || osDrops != 0 || ifDrops != 0 {
		t.Errorf("Stats() = %d, %d, %v; want 0, 0, nil", osDrops, ifDrops, err)
	}
	if src.res.nl < 0 {
		t.Error("no rtnetlink socket: the interface drops would stay 0")
	}
	t.Logf("outgoing copies skipped by the ring walk: %d (0 when the kernel honours PACKET_IGNORE_OUTGOING)", src.r.outgoing)
}

// TestLiveFilter checks that the kernel runs the BPF program and keeps the number of bytes it
// returns, and that SnapLen cuts frames.
func TestLiveFilter(t *testing.T) {
	tests := []struct {
		name    string
		expr    string // "" for no program; %d is the first port
		bpfSnap int
		snapLen int
		onlyP1  bool
		cut     int // expected cut, 0 for whole frames
	}{
		{name: "port filter", expr: "udp dst port %d", onlyP1: true},
		{name: "filter returns 64", expr: "udp dst port %d", bpfSnap: 64, onlyP1: true, cut: 64},
		{name: "SnapLen without filter", snapLen: 50, cut: 50},
		{name: "SnapLen under the filter's", expr: "udp dst port %d", snapLen: 100, onlyP1: true, cut: 100},
		{name: "accept everything", expr: "", bpfSnap: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			netns(t)
			r1 := listenUDP(t, "udp4", "127.0.0.1:0")
			r2 := listenUDP(t, "udp4", "127.0.0.1:0")
			cfg := LiveConfig{Iface: "lo", PollTimeout: liveTestPoll, SnapLen: tt.snapLen}
			if tt.expr != "" {
				cfg.BPF = compileT(t, fmt.Sprintf(tt.expr, port(r1)), tt.bpfSnap)
			}
			src := openLiveT(t, cfg)
			s1, s2 := dialUDP(t, r1), dialUDP(t, r2)
			const n = 100
			want := 0
			for i := 0; i < n; i++ {
				c := s1
				if i%2 == 1 {
					c = s2
				}
				if _, err := c.Write(payload(i, 20+i*10)); err != nil {
					t.Fatal(err)
				}
				if c == s1 || !tt.onlyP1 {
					want++
				}
			}
			got, err := drain(src, want, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != want {
				t.Fatalf("captured %d frames, want %d", len(got), want)
			}
			for k, c := range got {
				// IPv4 without options: the UDP ports at 34 and 36, the payload at 42.
				if len(c.data) < 46 {
					t.Fatalf("frame %d: %d bytes", k, len(c.data))
				}
				dport := int(binary.BigEndian.Uint16(c.data[36:]))
				i := int(binary.BigEndian.Uint32(c.data[42:]))
				wire := 42 + 20 + i*10
				if tt.onlyP1 && dport != port(r1) {
					t.Errorf("frame %d: to port %d, the filter keeps %d only", k, dport, port(r1))
				}
				if (i%2 == 0) != (dport == port(r1)) {
					t.Errorf("frame %d: datagram %d went to port %d", k, i, dport)
				}
				wantCap := wire
				if tt.cut > 0 {
					wantCap = min(wire, tt.cut)
				}
				if c.info.CapLen != wantCap || len(c.data) != wantCap || c.info.WireLen != wire {
					t.Errorf("datagram %d: CapLen %d len %d WireLen %d; want %d, %d, %d", i, c.info.CapLen, len(c.data), c.info.WireLen, wantCap, wantCap, wire)
				}
				if want := payload(i, 20+i*10); !bytes.Equal(c.data[42:], want[:len(c.data)-42]) {
					t.Errorf("datagram %d: payload differs", i)
				}
			}
		})
	}
}

// TestLiveFanout spreads query/reply pairs of 64 flows over two sockets of one fanout group:
// every packet is captured once, by one socket, and both directions of a flow by the same.
func TestLiveFanout(t *testing.T) {
	netns(t)
	srv := listenUDP(t, "udp4", "127.0.0.1:0")
	srcs, err := OpenLiveFanout(LiveConfig{
		Iface:       "lo",
		PollTimeout: liveTestPoll,
		BPF:         compileT(t, fmt.Sprintf("udp port %d", port(srv)), 0),
	}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		t.Cleanup(func() { s.Close() })
	}
	id0, in0 := srcs[0].FanoutGroup()
	id1, in1 := srcs[1].FanoutGroup()
	if len(srcs) != 2 || !in0 || !in1 || id0 != id1 {
		t.Fatalf("%d sockets in fanout groups %d (%v) and %d (%v)", len(srcs), id0, in0, id1, in1)
	}
	const flows, perFlow = 64, 8
	clients := make([]*net.UDPConn, flows)
	for i := range clients {
		clients[i] = dialUDP(t, srv)
	}

	// The readers run while traffic flows, as the agent's workers do.
	var stop sync.WaitGroup
	done := make(chan struct{})
	results := make([][]captured, len(srcs))
	errs := make([]error, len(srcs))
	for k, s := range srcs {
		stop.Add(1)
		go func() {
			defer stop.Done()
			for {
				data, info, err := s.Next()
				if errors.Is(err, ErrTimeout) {
					select {
					case <-done:
						return
					default:
						continue
					}
				}
				if err != nil {
					errs[k] = err
					return
				}
				results[k] = append(results[k], captured{bytes.Clone(data), info})
			}
		}()
	}
	go func() { // the server echoes every query
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			buf[4] = 'R'
			if _, err := srv.WriteToUDPAddrPort(buf[:n], from); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 2048)
	for m := 0; m < perFlow; m++ {
		for i, c := range clients {
			q := payload(i*perFlow+m, 8+m)
			q[4] = 'Q'
			if _, err := c.Write(q); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Read(buf); err != nil {
				t.Fatalf("reply to flow %d: %v", i, err)
			}
		}
	}
	// Past the block timeout, every frame is in the rings; a poll timeout later both
	// readers have seen ErrTimeout after done.
	time.Sleep(2 * DefaultBlockTimeout)
	close(done)
	stop.Wait()
	for k, err := range errs {
		if err != nil {
			t.Fatalf("socket %d: %v", k, err)
		}
	}

	type key struct {
		id    int
		reply bool
	}
	seen := map[key]int{}     // frames per (query id, direction)
	flowSock := map[int]int{} // client port -> socket
	total := 0
	for k, frames := range results {
		for _, c := range frames {
			u, ok := udpOf(c.data)
			if !ok || len(u.payload) < 5 {
				t.Fatalf("socket %d: not one of our datagrams: % x", k, c.data)
			}
			reply := u.payload[4] == 'R'
			cport := int(u.src.Port())
			if reply {
				cport = int(u.dst.Port())
			}
			seen[key{int(binary.BigEndian.Uint32(u.payload)), reply}]++
			if s, ok := flowSock[cport]; ok && s != k {
				t.Errorf("flow from port %d on sockets %d and %d", cport, s, k)
			}
			flowSock[cport] = k
			total++
		}
	}
	if total != 2*flows*perFlow {
		t.Errorf("captured %d frames (%d and %d per socket), want %d", total, len(results[0]), len(results[1]), 2*flows*perFlow)
	}
	for id := 0; id < flows*perFlow; id++ {
		for _, reply := range []bool{false, true} {
			if n := seen[key{id, reply}]; n != 1 {
				t.Errorf("datagram %d (reply %v) captured %d times", id, reply, n)
			}
		}
	}
	if len(results[0]) == 0 || len(results[1]) == 0 {
		t.Errorf("one socket got every flow (%d and %d frames): no spreading", len(results[0]), len(results[1]))
	}
	for k, s := range srcs {
		if osDrops, _, err := s.Stats(); err != nil || osDrops != 0 {
			t.Errorf("socket %d: Stats() = %d, %v", k, osDrops, err)
		}
		t.Logf("socket %d: %d frames, %d outgoing copies skipped by the ring walk", k, len(results[k]), s.r.outgoing)
	}
}

// TestLiveFanoutGroups: groups made by OpenLiveFanout are distinct; a configured group id is
// joined by every socket that names it.
func TestLiveFanoutGroups(t *testing.T) {
	netns(t)
	cfg := LiveConfig{Iface: "lo"}
	a, err := OpenLiveFanout(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenLiveFanout(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	one, err := OpenLiveFanout(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.FanoutGroup = 4242
	c1 := openLiveT(t, cfg)
	c2, err := OpenLiveFanout(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(srcs ...*LiveSource) []int {
		var out []int
		for _, s := range srcs {
			id, in := s.FanoutGroup()
			if !in {
				id = -1
			}
			out = append(out, id)
			t.Cleanup(func() { s.Close() })
		}
		return out
	}
	ga, gb, g1, gc := ids(a...), ids(b...), ids(one...), ids(append([]*LiveSource{c1}, c2...)...)
	if ga[0] < 0 || ga[0] != ga[1] || gb[0] < 0 || gb[0] != gb[1] || gb[1] != gb[2] || ga[0] == gb[0] {
		t.Errorf("group ids %v and %v: want two distinct groups", ga, gb)
	}
	if g1[0] != -1 {
		t.Errorf("OpenLiveFanout(cfg, 1) joined group %d", g1[0])
	}
	for _, id := range gc {
		if id != 4242 {
			t.Errorf("configured group 4242: sockets in %v", gc)
			break
		}
	}
	// Another interface cannot join a group bound to lo.
	vethPair(t, "vA", "vB")
	cfg.Iface = "vA"
	if s, err := OpenLive(cfg); err == nil {
		s.Close()
		t.Error("a socket on vA joined lo's fanout group")
	}
}

// TestLiveStatsDrops fills a tiny ring without reading it: the kernel drops the rest, and
// what was captured plus what was dropped is what was sent. The frames kept are the first
// ones sent, in order.
func TestLiveStatsDrops(t *testing.T) {
	for _, fanout := range []int{0, 2} {
		t.Run(fmt.Sprintf("fanout %d", fanout), func(t *testing.T) {
			netns(t)
			rcv := listenUDP(t, "udp4", "127.0.0.1:0")
			cfg := LiveConfig{
				Iface:       "lo",
				PollTimeout: liveTestPoll,
				BlockSize:   os.Getpagesize(),
				NumBlocks:   2,
				BPF:         compileT(t, fmt.Sprintf("udp dst port %d", port(rcv)), 0),
			}
			var srcs []*LiveSource
			if fanout == 0 {
				srcs = []*LiveSource{openLiveT(t, cfg)}
			} else {
				var err error
				if srcs, err = OpenLiveFanout(cfg, fanout); err != nil {
					t.Fatal(err)
				}
				for _, s := range srcs {
					t.Cleanup(func() { s.Close() })
				}
			}
			snd := dialUDP(t, rcv)
			const n = 3000
			for i := 0; i < n; i++ {
				if _, err := snd.Write(payload(i, 100)); err != nil {
					t.Fatal(err)
				}
			}
			var captured, drops uint64
			for k, src := range srcs {
				got, err := drain(src, 0, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				for j, c := range got {
					if i := binary.BigEndian.Uint32(c.data[42:]); int(i) != j {
						t.Fatalf("socket %d frame %d is datagram %d: want the first ones, in order", k, j, i)
					}
				}
				osDrops, ifDrops, err := src.Stats()
				if err != nil || ifDrops != 0 {
					t.Fatalf("Stats() = %d, %d, %v", osDrops, ifDrops, err)
				}
				if err := src.Close(); err != nil {
					t.Fatal(err)
				}
				if o, i, err := src.Stats(); o != osDrops || i != ifDrops || err != nil {
					t.Errorf("Stats() after Close = %d, %d, %v; want %d, %d, nil", o, i, err, osDrops, ifDrops)
				}
				t.Logf("socket %d: captured %d, dropped %d", k, len(got), osDrops)
				captured += uint64(len(got))
				drops += osDrops
			}
			if drops == 0 {
				t.Fatalf("no drops with a %d-byte ring and %d datagrams", 2*os.Getpagesize(), n)
			}
			if captured+drops != n {
				t.Errorf("captured %d + dropped %d = %d, sent %d", captured, drops, captured+drops, n)
			}
		})
	}
}

// idle opens a capture that nothing matches (the namespace is silent anyway).
func idle(t *testing.T, poll time.Duration) *LiveSource {
	t.Helper()
	return openLiveT(t, LiveConfig{Iface: "lo", PollTimeout: poll, BPF: compileT(t, "udp port 9", 0)})
}

func TestLiveTimeout(t *testing.T) {
	netns(t)
	const poll = 80 * time.Millisecond
	src := idle(t, poll)
	for i := 0; i < 3; i++ { // not sticky
		start := time.Now()
		_, _, err := src.Next()
		el := time.Since(start)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("Next on an idle interface: %v, want ErrTimeout", err)
		}
		if el < poll-time.Millisecond || el > poll+time.Second {
			t.Errorf("ErrTimeout after %v, want about %v", el, poll)
		}
	}
	// A frame arriving during the wait ends it.
	rcv := listenUDP(t, "udp4", "127.0.0.1:9")
	snd := dialUDP(t, rcv)
	go func() {
		time.Sleep(20 * time.Millisecond)
		snd.Write([]byte("wake"))
	}()
	if _, _, err := src.Next(); err != nil {
		t.Fatalf("Next with a frame on its way: %v", err)
	}
}

// fdCount counts the open descriptors, after letting the sources of earlier tests that
// were dropped without Close give theirs back.
func fdCount(tb testing.TB) int {
	tb.Helper()
	runtime.GC()
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func mapped(tb testing.TB, addr uintptr) bool {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		tb.Skip("no /proc/self/maps")
	}
	prefix := fmt.Sprintf("%x-", addr)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// TestLiveCloseWakesNext closes a source while Next waits on it, at different moments of the
// wait (also before the poll starts): Next returns io.EOF promptly, and afterwards no
// descriptor or mapping is left.
func TestLiveCloseWakesNext(t *testing.T) {
	netns(t)
	const poll = 10 * time.Second
	base := fdCount(t)
	for i := 0; i < 30; i++ {
		src, err := OpenLive(LiveConfig{Iface: "lo", PollTimeout: poll, BPF: compileT(t, "udp port 9", 0)})
		if err != nil {
			t.Fatal(err)
		}
		addr := uintptr(src.res.mem)
		res := make(chan error, 1)
		go func() {
			_, _, err := src.Next()
			res <- err
		}()
		time.Sleep(time.Duration(i%6) * 200 * time.Microsecond)
		closed := time.Now()
		if err := src.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-res:
			if err != io.EOF {
				t.Fatalf("Next across Close: %v, want io.EOF", err)
			}
			if el := time.Since(closed); el > time.Second {
				t.Errorf("Next returned %v after Close", el)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("Next still blocked 3 s after Close")
		}
		if _, _, err := src.Next(); err != io.EOF {
			t.Fatalf("Next after Close: %v", err)
		}
		if err := src.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if mapped(t, addr) {
			t.Fatalf("ring (or its stand-in) at %#x still mapped after Close and io.EOF", addr)
		}
	}
	if n := fdCount(t); n != base {
		t.Errorf("%d descriptors open, %d before", n, base)
	}
}

// TestLiveCloseHeldFrame: a frame a reader still holds when another goroutine closes the
// source reads as zeros, without a fault.
func TestLiveCloseHeldFrame(t *testing.T) {
	netns(t)
	rcv := listenUDP(t, "udp4", "127.0.0.1:0")
	src := openLiveT(t, LiveConfig{Iface: "lo", PollTimeout: time.Second})
	if _, err := dialUDP(t, rcv).Write(payload(1, 100)); err != nil {
		t.Fatal(err)
	}
	data, _, err := src.Next()
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := udpOf(data); !ok || !bytes.Equal(u.payload, payload(1, 100)) {
		t.Fatalf("captured % x", data)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, make([]byte, len(data))) {
		t.Errorf("held frame after Close: % x, want zeros", data[:32])
	}
	if _, _, err := src.Next(); err != io.EOF {
		t.Fatalf("Next after Close: %v", err)
	}
}

// TestLiveCleanup: a source dropped without Close gives its descriptors and ring back once
// garbage.
func TestLiveCleanup(t *testing.T) {
	netns(t)
	prog := compileT(t, "udp port 9", 0)
	base := fdCount(t)
	var addr uintptr
	func() {
		src, err := OpenLive(LiveConfig{Iface: "lo", BPF: prog, PollTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		addr = uintptr(src.res.mem)
		src.Next()
	}()
	for i := 0; i < 100 && (fdCount(t) != base || mapped(t, addr)); i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := fdCount(t); n != base {
		t.Errorf("%d descriptors open after the source became garbage, %d before", n, base)
	}
	if mapped(t, addr) {
		t.Errorf("ring still mapped after the source became garbage")
	}
}

// TestLiveNextAllocs: Next allocates nothing, with frames waiting and when it times out.
func TestLiveNextAllocs(t *testing.T) {
	netns(t)
	rcv := listenUDP(t, "udp4", "127.0.0.1:0")
	src := openLiveT(t, LiveConfig{Iface: "lo", PollTimeout: time.Millisecond, BPF: compileT(t, fmt.Sprintf("udp port %d", port(rcv)), 0)})
	snd := dialUDP(t, rcv)
	const runs = 200
	for i := 0; i < runs+1; i++ {
		if _, err := snd.Write(payload(i, 64)); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	frames := 0
	allocs := testing.AllocsPerRun(runs, func() {
		_, _, err = src.Next()
		if err == nil {
			frames++
		}
	})
	if frames < runs/2 || allocs != 0 {
		t.Errorf("Next: %v allocations per frame over %d frames", allocs, frames)
	}
	// Drain, then the timeout path.
	if _, err := drain(src, 0, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	allocs = testing.AllocsPerRun(5, func() { _, _, err = src.Next() })
	if !errors.Is(err, ErrTimeout) || allocs != 0 {
		t.Errorf("Next timing out: %v, %v allocations", err, allocs)
	}
}

// TestLivePermission: without CAP_NET_RAW the error says which capability is missing and
// wraps os.ErrPermission.
func TestLivePermission(t *testing.T) {
	tests := []struct {
		errno    unix.Errno
		wantCap  bool
		wantPerm bool
	}{
		{unix.EPERM, true, true},
		{unix.EACCES, true, true},
		{unix.EAFNOSUPPORT, false, false},
	}
	for _, tt := range tests {
		err := socketError("eth0", tt.errno)
		if got := strings.Contains(err.Error(), "CAP_NET_RAW"); got != tt.wantCap {
			t.Errorf("socketError(%v) = %q: mentions CAP_NET_RAW %v, want %v", tt.errno, err, got, tt.wantCap)
		}
		if !errors.Is(err, tt.errno) || errors.Is(err, os.ErrPermission) != tt.wantPerm || !strings.Contains(err.Error(), "eth0") {
			t.Errorf("socketError(%v) = %q: does not wrap as expected", tt.errno, err)
		}
	}

	t.Run("without CAP_NET_RAW", func(t *testing.T) {
		// Capabilities are per thread: as root, drop CAP_NET_RAW from this locked (and then
		// discarded) thread; otherwise the test runs as it is, unless it has the capability.
		runtime.LockOSThread()
		const bit = 1 << (unix.CAP_NET_RAW % 32)
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if os.Geteuid() == 0 {
			netns(t)
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				t.Skipf("capget: %v", err)
			}
			data[unix.CAP_NET_RAW/32].Effective &^= bit
			if err := unix.Capset(&hdr, &data[0]); err != nil {
				t.Skipf("capset: %v", err)
			}
		}
		if err := unix.Capget(&hdr, &data[0]); err != nil || data[unix.CAP_NET_RAW/32].Effective&bit != 0 {
			t.Skipf("CAP_NET_RAW still effective (capget: %v)", err)
		}
		src, err := OpenLive(LiveConfig{Iface: "lo"})
		if err == nil {
			src.Close()
			t.Fatal("OpenLive without CAP_NET_RAW succeeded")
		}
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_RAW") {
			t.Errorf("OpenLive without CAP_NET_RAW: %q", err)
		}
	})
}

func TestLiveConfigErrors(t *testing.T) {
	page := os.Getpagesize()
	tests := []struct {
		name string
		cfg  LiveConfig
	}{
		{"negative snap length", LiveConfig{SnapLen: -1}},
		{"block size not a page multiple", LiveConfig{BlockSize: page + 1}},
		{"block size under a page", LiveConfig{BlockSize: page / 2}},
		{"block size over 1 GiB", LiveConfig{BlockSize: 1<<30 + page}},
		{"negative blocks", LiveConfig{NumBlocks: -1}},
		{"ring of 4 GiB", LiveConfig{BlockSize: 1 << 30, NumBlocks: 4}},
		{"fanout group too large", LiveConfig{FanoutGroup: 65536}},
		{"negative fanout group", LiveConfig{FanoutGroup: -1}},
		{"negative timeout", LiveConfig{PollTimeout: -time.Second}},
		{"negative block timeout", LiveConfig{BlockTimeout: -time.Second}},
	}
	for _, tt := range tests {
		tt.cfg.Iface = "lo"
		if _, err := OpenLive(tt.cfg); err == nil {
			t.Errorf("%s: OpenLive succeeded", tt.name)
		}
	}
	for _, n := range []int{0, -1, 65537} {
		if _, err := OpenLiveFanout(LiveConfig{Iface: "lo"}, n); err == nil {
			t.Errorf("OpenLiveFanout(%d) succeeded", n)
		}
	}
	cfg, err := LiveConfig{BlockTimeout: 1500 * time.Microsecond, PollTimeout: time.Microsecond}.normalize()
	if err != nil || cfg.BlockTimeout != 2*time.Millisecond || cfg.PollTimeout != time.Millisecond ||
		cfg.SnapLen != DefaultLiveSnapLen || cfg.BlockSize != DefaultBlockSize || cfg.NumBlocks != DefaultNumBlocks {
		t.Errorf("normalize: %+v, %v", cfg, err)
	}
	if _, err := OpenLive(LiveConfig{Iface: "no-such-iface0"}); !errors.Is(err, ErrNoSuchIface) {
		t.Errorf("OpenLive on a missing interface: %v", err)
	}
}

// rawSender sends whole Ethernet frames out of an interface through a packet socket.
type rawSender struct {
	fd int
	sa unix.SockaddrLinklayer
}

func newRawSender(tb testing.TB, iface string) *rawSender {
	tb.Helper()
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		tb.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	return &rawSender{fd: fd, sa: unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}}
}

func (s *rawSender) send(tb testing.TB, frame []byte) {
	if err := unix.Sendto(s.fd, frame, 0, &s.sa); err != nil {
		tb.Fatalf("sending a frame: %v", err)
	}
}

// ethFrame builds an Ethernet frame by hand: addresses, the given tags (TPID, TCI pairs),
// IPv4/UDP with a payload.
func ethFrame(dst net.HardwareAddr, tags [][2]uint16, i, size int) []byte {
	var b []byte
	b = append(b, dst...)
	b = append(b, 0x02, 0, 0, 0, 0, 0x01)
	for _, tag := range tags {
		b = binary.BigEndian.AppendUint16(b, tag[0])
		b = binary.BigEndian.AppendUint16(b, tag[1])
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	p := payload(i, size)
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(p)))
	b = append(b, ip...)
	b = binary.BigEndian.AppendUint16(b, 4000)
	b = binary.BigEndian.AppendUint16(b, 5000)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(p)))
	b = append(b, 0, 0)
	return append(b, p...)
}

// TestLiveVeth captures on one end of a veth pair what a packet socket sends on the other:
// the bytes are those sent, VLAN tags included (the kernel takes the outer tag off before
// any tap; the ring puts it back), and the interface is promiscuous only while captured.
func TestLiveVeth(t *testing.T) {
	netns(t)
	vethPair(t, "vA", "vB")
	if lt, err := IfaceLinkType("vB"); err != nil || lt != decode.LinkEthernet {
		t.Fatalf("IfaceLinkType(vB) = %d, %v", lt, err)
	}
	if promiscuity(t, "vB") != 0 {
		t.Fatal("vB promiscuous before the capture")
	}
	// Only our UDP test frames: the pair also carries IPv6 neighbour discovery.
	src := openLiveT(t, LiveConfig{Iface: "vB", PollTimeout: liveTestPoll, BPF: compileT(t, "udp port 5000 or (vlan and udp port 5000) or (vlan and vlan and udp port 5000)", 0)})
	if promiscuity(t, "vB") != 1 {
		t.Error("vB not promiscuous during the capture")
	}
	vb, err := net.InterfaceByName("vB")
	if err != nil {
		t.Fatal(err)
	}
	snd := newRawSender(t, "vA")
	tagSets := [][][2]uint16{
		nil,
		{{0x8100, 0x6064}},                   // priority 3, VID 100
		{{0x88a8, 0x00c8}, {0x8100, 0x012c}}, // QinQ: S-tag 200, C-tag 300
		{{0x8100, 0x0000}},                   // priority tag: VID 0
		{{0x8100, 0xe005}, {0x8100, 0x0006}}, // two 802.1Q tags
		{{0x88a8, 0x0fff}},                   // single S-tag
		{{0x8100, 0x0001}},                   // VID 1
		{{0x8100, 0x1002}},                   // CFI/DEI set
		{{0x8100, 0x0abc}, {0x88a8, 0x0def}}, // odd order
		{{0x88a8, 0x0001}, {0x8100, 0x0002}}, // QinQ again
		{{0x8100, 0x0003}},
	}
	var want [][]byte
	for i := 0; i < 200; i++ {
		dst := vb.HardwareAddr
		if i%3 == 1 {
			dst = net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee} // another host's: promiscuous capture
		}
		f := ethFrame(dst, tagSets[i%len(tagSets)], i, 10+i)
		snd.send(t, f)
		want = append(want, f)
	}
	got, err := drain(src, len(want), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("captured %d frames, sent %d", len(got), len(want))
	}
	for i, c := range got {
		if !bytes.Equal(c.data, want[i]) {
			t.Errorf("frame %d (tags %v):\n got % x\nwant % x", i, tagSets[i%len(tagSets)], c.data, want[i])
			continue
		}
		if c.info.CapLen != len(want[i]) || c.info.WireLen != len(want[i]) {
			t.Errorf("frame %d: CapLen %d WireLen %d, want %d", i, c.info.CapLen, c.info.WireLen, len(want[i]))
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if promiscuity(t, "vB") != 0 {
		t.Error("vB still promiscuous after Close")
	}
	nop := openLiveT(t, LiveConfig{Iface: "vB", NoPromisc: true})
	if promiscuity(t, "vB") != 0 {
		t.Error("vB promiscuous with NoPromisc")
	}
	nop.Close()
}

// TestLiveInterfaceDown: a capture survives its interface going down and up.
func TestLiveInterfaceDown(t *testing.T) {
	netns(t)
	vethPair(t, "vA", "vB")
	src := openLiveT(t, LiveConfig{Iface: "vB", PollTimeout: liveTestPoll, BPF: compileT(t, "udp port 5000", 0)})
	vb, err := net.InterfaceByName("vB")
	if err != nil {
		t.Fatal(err)
	}
	setLinkUp(t, "vB", false)
	// Down: Next reports ENETDOWN once, as a timeout (the stream carries on), then times out.
	sawDown := false
	for i := 0; i < 3; i++ {
		_, _, err := src.Next()
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("Next on a down interface: %v, want a timeout", err)
		}
		sawDown = sawDown || errors.Is(err, unix.ENETDOWN)
	}
	if !sawDown {
		t.Error("the interface going down was not reported")
	}
	setLinkUp(t, "vB", true)
	snd := newRawSender(t, "vA")
	f := ethFrame(vb.HardwareAddr, nil, 7, 30)
	// veth needs both ends up to carry frames: retry until the link is back.
	var got []captured
	for try := 0; try < 50 && len(got) == 0; try++ {
		if err := unix.Sendto(snd.fd, f, 0, &snd.sa); err != nil && !errors.Is(err, unix.ENETDOWN) {
			t.Fatal(err)
		}
		data, info, err := src.Next()
		switch {
		case err == nil:
			got = append(got, captured{bytes.Clone(data), info})
		case errors.Is(err, ErrTimeout) || errors.Is(err, unix.ENETDOWN):
		default:
			t.Fatalf("Next after the interface came back: %v", err)
		}
	}
	if len(got) == 0 || !bytes.Equal(got[0].data, f) {
		t.Fatalf("no capture after the interface came back up")
	}
}

// TestLiveInterfaceGone: a deleted interface ends the capture with a sticky error (the
// kernel unbinds the socket for good), fanout members included.
func TestLiveInterfaceGone(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n, " sockets"), func(t *testing.T) {
			netns(t)
			vethPair(t, "vA", "vB")
			srcs, err := OpenLiveFanout(LiveConfig{Iface: "vB", PollTimeout: 20 * time.Millisecond}, n)
			if err != nil {
				t.Fatal(err)
			}
			ipCmd(t, "link", "del", "vA") // and its peer
			for k, src := range srcs {
				var err error
				for i := 0; i < 50; i++ {
					// Frames captured before the deletion (neighbour discovery) come first.
					if _, _, err = src.Next(); err != nil && !errors.Is(err, ErrTimeout) {
						break
					}
				}
				if !errors.Is(err, ErrNoSuchIface) || errors.Is(err, ErrTimeout) {
					t.Fatalf("socket %d: Next on a deleted interface: %v", k, err)
				}
				if _, _, err2 := src.Next(); err2 != err {
					t.Errorf("socket %d: then %v, want the same error", k, err2)
				}
				if _, _, err := src.Stats(); err != nil {
					t.Errorf("socket %d: Stats: %v", k, err)
				}
				if err := src.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if _, _, err := src.Next(); err != io.EOF {
					t.Errorf("Next after Close: %v", err)
				}
			}
		})
	}
}
