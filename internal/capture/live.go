// Live capture (live*.go, iface*.go) reads packets from a network interface on Linux with an
// AF_PACKET socket and a TPACKET_V3 ring: the kernel writes frames into blocks of a memory
// area shared with the process, and LiveSource.Next hands them out in place, so there is no
// system call per packet and no copy. Several sockets may join one PACKET_FANOUT_HASH group,
// one per worker: the kernel then spreads flows over them with a symmetric hash (a query and
// its reply land on the same socket) and reassembles IPv4 fragments first
// (PACKET_FANOUT_FLAG_DEFRAG), because a fragment without ports would otherwise hash apart
// from the rest of its flow. A capture filter, compiled by internal/bpf, runs in the kernel.
//
// The ring is ours (golang.org/x/sys/unix: socket options, mmap, ppoll), not gopacket's
// afpacket, because afpacket does not expose the packet type (sll_pkttype), which is needed
// to drop the outgoing copy of every loopback packet (lo shows each packet twice, libpcap
// skips one); because its read path takes a mutex per packet and allocates per VLAN-tagged
// packet (a new slice to put the tag back, an AncillaryData entry); because it attaches the
// filter only after the socket is bound (unfiltered packets reach the ring first); and because
// it cannot wake a reader blocked in poll when the source is closed. The part of the ring
// code that reads kernel memory is small (live_ring.go), bounds-checked and fuzzed.

package capture

import (
	"errors"
	"time"

	"golang.org/x/net/bpf"
)

// Live capture defaults.
const (
	// DefaultLiveSnapLen keeps whole packets. The reference's libpcap input used 1000 bytes,
	// which cuts large DNS answers (EDNS0 buffers of 1232–4096 bytes) and the TCP segments
	// DNS-over-TCP reassembly needs, and lo/veth deliver GSO/GRO aggregates of up to 64 KiB as
	// one frame. A TPACKET_V3 ring packs frames at their captured length, so a large snap
	// length costs nothing for small packets. It equals MaxCapLen and tcpdump's default.
	DefaultLiveSnapLen = MaxCapLen
	// DefaultBlockSize and DefaultNumBlocks give a 16 MiB ring per socket: about 0.1 s of a
	// saturated 1 Gb/s link of 300-byte packets (each frame also takes about 90 bytes of
	// ring headers), at a memory cost that stays small per worker. Many small blocks rather
	// than a few large ones: the kernel hands a block over when it is full or after
	// DefaultBlockTimeout, so at moderate rates each block carries only 10 ms of traffic and
	// the ring holds NumBlocks × 10 ms — 1.3 s here (it was 0.16 s with 16 blocks of 1 MiB,
	// and a 40 k packets/s flood lost packets during a worker's pause) — enough to ride out a
	// stop-the-world render or a GC without drops.
	DefaultBlockSize = 128 << 10
	DefaultNumBlocks = 128
	// DefaultBlockTimeout is how long the kernel keeps a partly filled block before handing
	// it over: the latency of a packet at low rates. libpcap's buffer timeout in the
	// reference was the same 10 ms.
	DefaultBlockTimeout = 10 * time.Millisecond
	// DefaultPollTimeout is how long Next waits for a packet before returning ErrTimeout, so
	// a reader on an idle link can still run its timers (heartbeats, period shifts).
	DefaultPollTimeout = 100 * time.Millisecond
)

var (
	// ErrTimeout is returned by LiveSource.Next when no packet arrived within PollTimeout.
	// It is not sticky: call Next again.
	ErrTimeout = errors.New("capture: no packet within the poll timeout")
	// ErrLiveUnsupported: live capture needs Linux (the reference's error string).
	ErrLiveUnsupported = errors.New("af_packet is only available on linux")
	// ErrNoSuchIface is wrapped by ResolveIface's errors (whose text is the reference's).
	ErrNoSuchIface = errors.New("no such interface")
)

// LiveConfig configures a live capture. Zero values select the defaults.
type LiveConfig struct {
	// Iface is an interface name, one of its addresses, or "auto" (see ResolveIface).
	Iface string
	// BPF is a classic BPF program run by the kernel on each frame before it enters the ring,
	// as compiled by internal/bpf.Compile(expr, link, SnapLen) for the link type
	// IfaceLinkType reports (Ethernet for Ethernet and loopback devices). Its return value
	// is the number of bytes kept. Empty: every frame, cut at SnapLen.
	BPF []bpf.RawInstruction
	// SnapLen is the most bytes kept of a frame (default DefaultLiveSnapLen); the block size
	// also bounds it.
	SnapLen int
	// FanoutGroup, when not 0, joins the socket to that PACKET_FANOUT_HASH group (id 1–65535,
	// per network namespace; every member must capture the same interface). OpenLiveFanout
	// picks a free id by itself.
	FanoutGroup int
	// BlockSize (a multiple of the page size) and NumBlocks size the ring.
	BlockSize, NumBlocks int
	// BlockTimeout: see DefaultBlockTimeout (rounded to milliseconds, at least 1).
	BlockTimeout time.Duration
	// PollTimeout: see DefaultPollTimeout (rounded to milliseconds, at least 1).
	PollTimeout time.Duration
	// NoPromisc leaves the interface out of promiscuous mode. By default the socket asks for
	// it, as the reference did (frames to other hosts on a mirror port are seen); the
	// kernel drops the request when the socket closes.
	NoPromisc bool
}
