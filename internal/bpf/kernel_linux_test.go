//go:build linux

package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func attach(fd int, raw []bpf.RawInstruction) error {
	filters := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filters[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filters)), Filter: unsafe.SliceData(filters)}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
}

// TestKernelAcceptsPrograms attaches every compiled Ethernet program to a socket: the
// kernel's classic-BPF checker is the authority on what a socket filter may contain.
func TestKernelAcceptsPrograms(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Skipf("no socket: %v", err)
	}
	defer unix.Close(fd)
	exprs := append([]string(nil), oracleExprs...)
	var hosts string
	for i := 0; i < 150; i++ {
		hosts += fmt.Sprintf(" or 10.1.%d.%d", i/100, i%100)
	}
	exprs = append(exprs, "host 10.0.0.1"+hosts+" or port 53") // long jumps
	for _, expr := range exprs {
		raw, err := Compile(expr, LinkTypeEthernet, 0)
		if err != nil {
			continue
		}
		if err := attach(fd, raw); err != nil {
			t.Errorf("%q: kernel refuses the program: %v", expr, err)
		}
	}
}

// TestLiveLoopback captures on lo with an AF_PACKET socket (link type Ethernet) and the
// filter attached in the kernel; it needs CAP_NET_RAW and is skipped without it.
func TestLiveLoopback(t *testing.T) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Skipf("AF_PACKET socket not permitted: %v", err)
	}
	defer unix.Close(fd)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo: %v", err)
	}
	// Two UDP receivers so that the datagrams are delivered (and captured once each way).
	want, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	wantPort := uint16(want.LocalAddr().(*net.UDPAddr).Port)
	raw, err := Compile("udp dst port "+strconv.Itoa(int(wantPort)), LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := attach(fd, raw); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index}); err != nil {
		t.Fatal(err)
	}
	// Drain anything queued between socket creation and the filter being attached.
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 1000})
	buf := make([]byte, 65536)
	for {
		if _, _, err := unix.Recvfrom(fd, buf, 0); err != nil {
			break
		}
	}
	send, err := net.DialUDP("udp4", nil, want.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	sendOther, err := net.DialUDP("udp4", nil, other.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer sendOther.Close()
	for i := 0; i < 5; i++ {
		sendOther.Write([]byte("no"))
		send.Write([]byte("yes"))
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	got := 0
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f := buf[:n]
		// Ethernet (zero MACs on lo) + IPv4 (20 bytes, no options) + UDP.
		if n < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || binary.BigEndian.Uint16(f[36:]) != wantPort {
			t.Fatalf("the kernel filter let through a frame it should have dropped: % x", f[:min(n, 64)])
		}
		got++
	}
	// lo shows each datagram twice on an AF_PACKET socket (outgoing and incoming).
	if got != 5 && got != 10 {
		t.Errorf("captured %d frames, want 5 or 10", got)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
