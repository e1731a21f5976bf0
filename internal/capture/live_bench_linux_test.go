//go:build linux

package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// liveSender sends n packets as fast as it can, or at rate packets/s when rate > 0 (in 1 ms
// batches), then reports what send calls failed.
type liveSender func(n int, rate float64) (failed int)

// udpLoopbackSender sends 64-byte UDP datagrams on 127.0.0.1 with send(2) on a connected
// socket (net.UDPConn adds ~100 ns of poller bookkeeping per call; the raw call shows what the
// kernel and the capture sustain). It returns the capture filter for its traffic.
func udpLoopbackSender(tb testing.TB) (liveSender, string) {
	rcv := listenUDP(tb, "udp4", "127.0.0.1:0")
	conn := dialUDP(tb, rcv)
	raw, err := conn.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	var fd int
	raw.Control(func(f uintptr) { fd = int(f) })
	p := payload(0, 64)
	return func(n int, rate float64) int {
		return paced(n, rate, func() error { return unix.Send(fd, p, 0) })
	}, fmt.Sprintf("udp dst port %d", port(rcv))
}

// vethSender sends 60-byte Ethernet frames from vA through a packet socket: the capture on vB
// sees them on the receive path, as on a real interface.
func vethSender(tb testing.TB) (liveSender, string) {
	vethPair(tb, "vA", "vB")
	s := newRawSender(tb, "vA")
	vb, err := net.InterfaceByName("vB")
	if err != nil {
		tb.Fatal(err)
	}
	f := ethFrame(vb.HardwareAddr, nil, 0, 18)
	return func(n int, rate float64) int {
		return paced(n, rate, func() error { return unix.Sendto(s.fd, f, 0, &s.sa) })
	}, "udp port 5000"
}

func paced(n int, rate float64, send func() error) (failed int) {
	start := time.Now()
	for i := 0; i < n; i++ {
		if rate > 0 && i%64 == 0 {
			if ahead := time.Duration(float64(i)/rate*1e9) - time.Since(start); ahead > time.Millisecond {
				time.Sleep(ahead)
			}
		}
		if send() != nil {
			failed++
		}
	}
	return failed
}

// liveRun sends n packets while a capture reads them; it returns the frames read, the ring's
// drops, the packets lost before the capture (sent - failed - read - drops: the kernel's
// per-CPU backlog overflowing, for instance) and the wall time.
func liveRun(tb testing.TB, src *LiveSource, send liveSender, n int, rate float64) (read int, drops, lost uint64, el time.Duration) {
	failed := make(chan int, 1)
	start := time.Now()
	go func() { failed <- send(n, rate) }()
	var f int
	done := false
	for !done || read+f < n {
		_, _, err := src.Next()
		if errors.Is(err, ErrTimeout) {
			if done {
				break
			}
			select {
			case f = <-failed:
				done = true
			default:
			}
			continue
		}
		if err != nil {
			tb.Fatal(err)
		}
		read++
		if !done {
			select {
			case f = <-failed:
				done = true
			default:
			}
		}
	}
	el = time.Since(start)
	if !done {
		f = <-failed
	}
	drops, _, err := src.Stats()
	if err != nil {
		tb.Fatal(err)
	}
	sent := uint64(n - f)
	if sent > uint64(read)+drops {
		lost = sent - uint64(read) - drops
	}
	return read, drops, lost, el
}

func benchLive(b *testing.B, setup func(testing.TB) (liveSender, string)) {
	netns(b)
	send, expr := setup(b)
	src := openLiveT(b, LiveConfig{Iface: "lo", PollTimeout: 20 * time.Millisecond, BPF: compileT(b, expr, 0)})
	if expr == "udp port 5000" {
		src.Close()
		src = openLiveT(b, LiveConfig{Iface: "vB", PollTimeout: 20 * time.Millisecond, BPF: compileT(b, expr, 0)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	read, drops, lost, el := liveRun(b, src, send, b.N, 0)
	b.StopTimer()
	b.ReportMetric(float64(read)/el.Seconds(), "pkts/s")
	b.ReportMetric(float64(drops), "drops")
	b.ReportMetric(float64(lost), "lost")
}

// BenchmarkLiveLoopback: one Go sender flat out on 127.0.0.1 and one reader (ns/op per
// datagram, end to end).
func BenchmarkLiveLoopback(b *testing.B) { benchLive(b, udpLoopbackSender) }

// BenchmarkLiveVeth: the same with raw frames over a veth pair.
func BenchmarkLiveVeth(b *testing.B) { benchLive(b, vethSender) }

// TestLiveRate finds the rates a capture keeps up with: for each path (loopback, veth) it
// sends for a second at each of a series of rates, then flat out, and logs what was read,
// dropped by the ring and lost before it. Set PKTVISOR_LIVE_RATE=1 to run it (-v to see it),
// PKTVISOR_LIVE_RATE_RING to a ring size in KiB to try a smaller ring.
func TestLiveRate(t *testing.T) {
	if os.Getenv("PKTVISOR_LIVE_RATE") == "" {
		t.Skip("set PKTVISOR_LIVE_RATE=1 to measure capture rates")
	}
	ringKiB, _ := strconv.Atoi(os.Getenv("PKTVISOR_LIVE_RATE_RING"))
	for _, path := range []struct {
		name  string
		setup func(testing.TB) (liveSender, string)
		iface string
	}{{"loopback", udpLoopbackSender, "lo"}, {"veth", vethSender, "vB"}} {
		t.Run(path.name, func(t *testing.T) {
			netns(t)
			send, expr := path.setup(t)
			for _, rate := range []float64{1e5, 2e5, 4e5, 8e5, 0} {
				cfg := LiveConfig{Iface: path.iface, PollTimeout: 20 * time.Millisecond, BPF: compileT(t, expr, 0)}
				if ringKiB > 0 {
					cfg.BlockSize, cfg.NumBlocks = 64<<10, max(ringKiB/64, 1)
				}
				src := openLiveT(t, cfg)
				n := int(rate)
				if rate == 0 {
					n = 1_000_000
				}
				read, drops, lost, el := liveRun(t, src, send, n, rate)
				src.Close()
				t.Logf("target %7.0f/s: read %7d in %v = %8.0f pkts/s, ring drops %d, lost before the ring %d",
					rate, read, el.Round(time.Millisecond), float64(read)/el.Seconds(), drops, lost)
			}
		})
	}
}
