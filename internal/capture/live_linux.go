//go:build linux

package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// Fanout mode: PACKET_FANOUT_HASH with PACKET_FANOUT_FLAG_DEFRAG (the socket option takes
// the type and flags in its upper 16 bits, the group id in the lower 16).
const (
	fanoutHashDefrag = unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_DEFRAG
	frameSize        = 2048 // only checked by the kernel for TPACKET_V3: frames are packed
	// maxRingBytes: the kernel refuses a ring of 4 GiB or more (its size must fit in 32
	// bits), and a 32-bit process could not map one.
	maxRingBytes = min(1<<32-1, math.MaxInt)
)

// fanoutArg packs a PACKET_FANOUT argument. The type and flags fill the upper half of a
// 32-bit word, so the value is built unsigned and reinterpreted: as an int constant it
// would overflow on 32-bit platforms.
func fanoutArg(id int, typeFlags uint32) int {
	return int(int32(uint32(id)&0xffff | typeFlags<<16))
}

// LiveSource reads frames from one AF_PACKET socket. Next must be called from one goroutine
// at a time; Close and Stats may be called from any goroutine.
type LiveSource struct {
	r           ring
	name        string
	fanout      int            // the fanout group id, when inGroup
	inGroup     bool           // the kernel may assign group id 0
	pfd         [2]unix.PollFd // the socket and the wake-up eventfd
	ts          unix.Timespec  // ppoll's timeout, kept here so that waiting does not allocate
	pollTimeout time.Duration
	closed      atomic.Bool
	polling     atomic.Bool // Next may be about to poll, or polling: Close leaves the eventfd open
	down        bool        // the interface went down: Next watches for its deletion
	dead        error       // the interface was deleted: the socket will never capture again
	res         *liveRes
}

// liveRes holds what Close, Stats and the garbage-collection cleanup share. It must not
// point back at the LiveSource, or the cleanup would never run.
type liveRes struct {
	mu      sync.Mutex
	name    string
	ifindex int
	fd      int // packet socket; -1 once closed
	efd     int // eventfd that wakes a blocked Next
	nl      int // rtnetlink socket for the interface's counters; -1 when unavailable
	nlSeq   uint32
	nlBuf   []byte
	mem     unsafe.Pointer
	memLen  uintptr
	mapped  int // mapRing, mapZero or mapNone

	osDrops uint64
	ifBase  uint64
	ifDrops uint64
}

const (
	mapNone = iota
	mapRing // the kernel's ring
	mapZero // anonymous zero pages at the ring's address, after Close
)

// OpenLive opens a capture on cfg.Iface. The socket is created in the calling thread's
// network namespace. A missing capability is reported as such (the error wraps
// os.ErrPermission).
func OpenLive(cfg LiveConfig) (*LiveSource, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	name, err := ResolveIface(cfg.Iface)
	if err != nil {
		return nil, err
	}
	if cfg.FanoutGroup == 0 {
		return openLive(cfg, name, 0)
	}
	return openFanoutMember(cfg, name, cfg.FanoutGroup, fanoutHashDefrag)
}

// openFanoutMember opens a socket joining fanout group id (0 with PACKET_FANOUT_FLAG_UNIQUEID
// in flags: a new group). On loopback the group is asked to drop outgoing frames
// (PACKET_FANOUT_FLAG_IGNORE_OUTGOING): the socket's own PACKET_IGNORE_OUTGOING does not
// apply to a fanout group's hook, so every packet would take ring space twice (and count
// twice in the drops when the ring is full). Kernels before 5.x lack the flag (EINVAL): the
// ring walk still skips the outgoing copies there. A group created by someone else with
// other flags also gives EINVAL; retrying without the flag joins it if that is the
// difference.
func openFanoutMember(cfg LiveConfig, name string, id int, typeFlags uint32) (*LiveSource, error) {
	if isLoopback(name) {
		s, err := openLive(cfg, name, fanoutArg(id, typeFlags|unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING))
		if err == nil || !errors.Is(err, unix.EINVAL) {
			return s, err
		}
	}
	return openLive(cfg, name, fanoutArg(id, typeFlags))
}

func isLoopback(name string) bool {
	ifi, err := net.InterfaceByName(name)
	return err == nil && ifi.Flags&net.FlagLoopback != 0
}

// OpenLiveFanout opens n sockets on cfg.Iface in one PACKET_FANOUT_HASH group, one per
// worker. With cfg.FanoutGroup 0 the kernel picks an unused group id
// (PACKET_FANOUT_FLAG_UNIQUEID); FanoutGroup reports it. n == 1 without a group id is a
// plain OpenLive.
func OpenLiveFanout(cfg LiveConfig, n int) ([]*LiveSource, error) {
	if n < 1 || n > 65536 {
		return nil, fmt.Errorf("capture: %d fanout sockets: want 1 to 65536", n)
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if n == 1 && cfg.FanoutGroup == 0 {
		s, err := OpenLive(cfg)
		if err != nil {
			return nil, err
		}
		return []*LiveSource{s}, nil
	}
	name, err := ResolveIface(cfg.Iface)
	if err != nil {
		return nil, err
	}
	srcs := make([]*LiveSource, 0, n)
	id := cfg.FanoutGroup
	for i := 0; i < n; i++ {
		var typeFlags uint32 = fanoutHashDefrag
		// The first socket of a new group asks for an unused id, which may be 0: the later
		// ones join whatever it got.
		if cfg.FanoutGroup == 0 && i == 0 {
			typeFlags |= unix.PACKET_FANOUT_FLAG_UNIQUEID
		}
		s, err := openFanoutMember(cfg, name, id, typeFlags)
		if err != nil {
			for _, s := range srcs {
				s.Close()
			}
			return nil, err
		}
		id = s.fanout
		srcs = append(srcs, s)
	}
	return srcs, nil
}

// normalize fills in the defaults and checks the sizes.
func (cfg LiveConfig) normalize() (LiveConfig, error) {
	page := os.Getpagesize()
	switch {
	case cfg.SnapLen < 0:
		return cfg, fmt.Errorf("capture: negative snap length %d", cfg.SnapLen)
	case cfg.SnapLen == 0:
		cfg.SnapLen = DefaultLiveSnapLen
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.NumBlocks == 0 {
		cfg.NumBlocks = DefaultNumBlocks
	}
	if cfg.BlockSize < page || cfg.BlockSize%page != 0 || cfg.BlockSize > 1<<30 {
		return cfg, fmt.Errorf("capture: block size %d: want a multiple of the page size (%d) up to 1 GiB", cfg.BlockSize, page)
	}
	if cfg.NumBlocks < 1 || int64(cfg.NumBlocks)*int64(cfg.BlockSize) > maxRingBytes {
		return cfg, fmt.Errorf("capture: %d blocks of %d bytes: want 1 or more, under 4 GiB in all", cfg.NumBlocks, cfg.BlockSize)
	}
	if cfg.FanoutGroup < 0 || cfg.FanoutGroup > 0xffff {
		return cfg, fmt.Errorf("capture: fanout group %d: want 0 to 65535", cfg.FanoutGroup)
	}
	if cfg.BlockTimeout < 0 || cfg.PollTimeout < 0 {
		return cfg, errors.New("capture: negative timeout")
	}
	if cfg.BlockTimeout == 0 {
		cfg.BlockTimeout = DefaultBlockTimeout
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	cfg.BlockTimeout = max(cfg.BlockTimeout.Round(time.Millisecond), time.Millisecond)
	cfg.PollTimeout = max(cfg.PollTimeout.Round(time.Millisecond), time.Millisecond)
	return cfg, nil
}

// openLive sets the socket up in an order that lets no unfiltered or unwanted frame into the
// ring: the filter goes on before the socket is bound (a socket of protocol 0 receives
// nothing until then); a socket joining a fanout group receives every frame of the
// interface between its bind and its join, so it rejects everything until it has joined.
// fanout is a PACKET_FANOUT argument (never 0: PACKET_FANOUT_FLAG_DEFRAG is always set), or
// 0 for no group.
func openLive(cfg LiveConfig, name string, fanout int) (*LiveSource, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", name, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, socketError(name, err)
	}
	res := &liveRes{name: name, ifindex: ifi.Index, fd: fd, efd: -1, nl: -1}
	s := &LiveSource{name: name, res: res, pollTimeout: cfg.PollTimeout}
	fail := func(what string, err error) (*LiveSource, error) {
		res.mu.Lock()
		res.closeLocked(false)
		res.mu.Unlock()
		return nil, fmt.Errorf("capture on %s: %s: %w", name, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("TPACKET_V3", err)
	}
	// Room before each frame to put a VLAN tag back in place.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_RESERVE, vlanTagLen); err != nil {
		return fail("PACKET_RESERVE", err)
	}
	prog := cfg.BPF
	if len(prog) == 0 {
		prog = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: uint32(cfg.SnapLen)}}
	}
	first := prog
	if fanout != 0 {
		first = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: 0}}
	}
	if err := setFilter(fd, first); err != nil {
		return fail("attaching the BPF filter", err)
	}
	loopback := ifi.Flags&net.FlagLoopback != 0
	if loopback {
		// Each loopback packet passes the taps twice, going out and coming in. Dropping the
		// outgoing copy in the kernel saves ring space; the ring walk also skips it, for
		// kernels before 4.20 that lack the option.
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.NumBlocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(cfg.BlockSize / frameSize * cfg.NumBlocks),
		Retire_blk_tov: uint32(cfg.BlockTimeout / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail(fmt.Sprintf("PACKET_RX_RING of %d×%d bytes", cfg.NumBlocks, cfg.BlockSize), err)
	}
	size := uintptr(cfg.BlockSize) * uintptr(cfg.NumBlocks)
	mem, err := unix.MmapPtr(fd, 0, nil, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mapping the ring", err)
	}
	res.mem, res.memLen, res.mapped = mem, size, mapRing
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	if !ok {
		return fail("getsockname", fmt.Errorf("unexpected address %T", sa))
	}
	link, ok := linkForHatype(ll.Hatype)
	if !ok {
		return fail("link type", fmt.Errorf("device type ARPHRD %d: %w", ll.Hatype, decode.ErrUnsupportedLink))
	}
	if !cfg.NoPromisc && !loopback {
		mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fail("promiscuous mode", err)
		}
	}
	if fanout != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, fanout); err != nil {
			return fail(fmt.Sprintf("joining fanout group %d (another member with other settings or on another interface?)", fanout&0xffff), err)
		}
		got, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
		if err != nil {
			return fail("reading the fanout group", err)
		}
		s.fanout, s.inGroup = got&0xffff, true
		if err := setFilter(fd, prog); err != nil {
			return fail("attaching the BPF filter", err)
		}
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fail("eventfd", err)
	}
	res.efd = efd
	// Counters from before the final filter (a fanout member's transition) do not count.
	if _, err := unix.GetsockoptTpacketStatsV3(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err != nil {
		return fail("PACKET_STATISTICS", err)
	}
	res.openNetlink()

	s.r = ring{
		mem:          unsafe.Slice((*byte)(mem), size),
		blockSize:    cfg.BlockSize,
		numBlocks:    cfg.NumBlocks,
		snapLen:      cfg.SnapLen,
		link:         link,
		skipOutgoing: loopback,
		vlan:         link == decode.LinkEthernet,
	}
	s.pfd = [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(efd), Events: unix.POLLIN}}
	runtime.AddCleanup(s, (*liveRes).cleanup, res)
	return s, nil
}

// socketError explains a failed AF_PACKET socket(2): without CAP_NET_RAW it names the
// capability and how to grant it, since "operation not permitted" alone sends users
// looking in the wrong place. The errno stays wrapped (errors.Is(err, os.ErrPermission)).
func socketError(name string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		exe, xerr := os.Executable()
		if xerr != nil {
			exe = "/path/to/pktvisord"
		}
		return fmt.Errorf("capture on %s: AF_PACKET socket: %w: needs CAP_NET_RAW (run as root or: setcap cap_net_raw,cap_net_admin=eip %s)", name, err, exe)
	}
	return fmt.Errorf("capture on %s: AF_PACKET socket: %w", name, err)
}

func setFilter(fd int, prog []bpf.RawInstruction) error {
	if len(prog) > 0xffff {
		return fmt.Errorf("%d instructions: too long", len(prog))
	}
	ins := make([]unix.SockFilter, len(prog))
	for i, p := range prog {
		ins[i] = unix.SockFilter{Code: p.Op, Jt: p.Jt, Jf: p.Jf, K: p.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(ins)), Filter: unsafe.SliceData(ins)}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return ne.Uint16(b[:])
}

// Next returns the next frame. data points into the ring and is valid until the next call to
// Next or Close. Next waits up to PollTimeout for a frame, then returns ErrTimeout (call it
// again); after Close it returns io.EOF, promptly even when Close is called by another
// goroutine while Next waits. The interface going down is reported once by an error that
// wraps both syscall.ENETDOWN and ErrTimeout (capture resumes when it comes back up); its
// deletion by a sticky error wrapping ErrNoSuchIface. Next does not allocate.
func (s *LiveSource) Next() (data []byte, info PacketInfo, err error) {
	if s.closed.Load() {
		return nil, PacketInfo{}, s.eof() // the ring may be unmapped: do not touch it
	}
	if s.dead != nil {
		return nil, PacketInfo{}, s.dead
	}
	r := &s.r
	var deadline time.Time
	for {
		if r.held {
			if data, info, ok := r.frame(); ok {
				return data, info, nil
			}
			r.release()
		}
		if r.take() {
			s.down = false
			continue
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(s.pollTimeout)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			if s.down && s.res.linkGone() {
				return nil, PacketInfo{}, s.gone()
			}
			return nil, PacketInfo{}, ErrTimeout
		}
		s.ts = unix.NsecToTimespec(int64(wait))
		s.pfd[0].Revents, s.pfd[1].Revents = 0, 0
		// Announce the poll before checking closed, while Close sets closed before checking
		// polling: one of the two sees the other, so either Next returns here or Close leaves
		// the (signalled) eventfd open for the poll.
		s.polling.Store(true)
		if s.closed.Load() {
			s.polling.Store(false)
			return nil, PacketInfo{}, s.eof()
		}
		_, err := unix.Ppoll(s.pfd[:], &s.ts, nil)
		s.polling.Store(false)
		// Close may have replaced the ring and closed the socket meanwhile.
		if s.closed.Load() {
			return nil, PacketInfo{}, s.eof()
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, PacketInfo{}, fmt.Errorf("capture on %s: poll: %w", s.name, err)
		}
		if ev := s.pfd[0].Revents; ev&(unix.POLLERR|unix.POLLNVAL) != 0 {
			return nil, PacketInfo{}, s.socketErr(ev)
		}
	}
}

// socketErr reports what made poll flag the socket. The typical case is the interface going
// down (ENETDOWN): capture resumes when it comes back up, so the error also wraps ErrTimeout
// and readers that treat timeouts as idle time carry on (it still says why, to be logged).
// If instead the interface was deleted, the kernel has unbound the socket for good: that
// error wraps ErrNoSuchIface and is sticky. The kernel flags the socket when the interface
// goes down, before the deletion, so a down interface is checked again at every timeout.
func (s *LiveSource) socketErr(ev int16) error {
	if ev&unix.POLLNVAL != 0 {
		return fmt.Errorf("capture on %s: poll: %w", s.name, os.ErrClosed)
	}
	serr, err := s.res.soError()
	if err != nil {
		if s.closed.Load() {
			return s.eof()
		}
		return fmt.Errorf("capture on %s: socket error: %w", s.name, err)
	}
	switch serr {
	case 0:
		return fmt.Errorf("capture on %s: poll reported an error on the socket", s.name)
	case unix.ENETDOWN:
		s.down = true
		if s.res.linkGone() {
			return s.gone()
		}
		return fmt.Errorf("capture on %s: %w; waiting for it to come back up (%w)", s.name, serr, ErrTimeout)
	}
	return fmt.Errorf("capture on %s: %w", s.name, serr)
}

func (s *LiveSource) gone() error {
	s.dead = fmt.Errorf("capture on %s: the interface was deleted: %w", s.name, ErrNoSuchIface)
	return s.dead
}

// soError reads (and clears) the socket's pending error, unless Close got there first.
func (r *liveRes) soError() (unix.Errno, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return 0, os.ErrClosed
	}
	v, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	return unix.Errno(v), err
}

// linkGone reports whether the capture's interface was deleted: the kernel then unbinds the
// socket (its address shows ifindex -1), and a new interface of the same name would not be
// captured either.
func (r *liveRes) linkGone() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return false
	}
	sa, err := unix.Getsockname(r.fd)
	if err != nil {
		return false
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	return ok && ll.Ifindex != r.ifindex
}

// eof releases the zero pages that stood in for the ring since Close, and the wake-up
// eventfd: the reader is past the last frame it was given and no longer polls.
func (s *LiveSource) eof() error {
	r := s.res
	r.mu.Lock()
	if r.fd < 0 {
		if r.mapped != mapNone {
			_ = unix.MunmapPtr(r.mem, r.memLen)
			r.mapped = mapNone
		}
		if r.efd >= 0 {
			_ = unix.Close(r.efd)
			r.efd = -1
		}
	}
	r.mu.Unlock()
	return io.EOF
}

// Close stops the capture and frees the socket and its ring; it may be called from any
// goroutine, any number of times. A Next waiting for frames returns io.EOF at once. A frame
// still held by a reader on another goroutine reads as zeros from then on (the ring is
// replaced by zero pages until that reader's next Next), never as a fault.
func (s *LiveSource) Close() error {
	r := s.res
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return nil
	}
	err := r.readStats()
	s.closed.Store(true)
	var one [8]byte
	ne.PutUint64(one[:], 1)
	_, _ = unix.Write(r.efd, one[:])
	if cerr := r.closeLocked(true); err == nil {
		err = cerr
	}
	if !s.polling.Load() && r.efd >= 0 {
		// No reader is polling, and any that comes will see closed first.
		_ = unix.Close(r.efd)
		r.efd = -1
	}
	return err
}

// closeLocked closes the descriptors and unmaps the ring, or with zero true (Close, with a
// reader possibly inside Next) maps zero pages over it (one mmap with MAP_FIXED, so the
// address range is never unmapped in between) and keeps the eventfd open: a reader that
// checked closed just before Close may be about to poll, and must find the eventfd
// signalled rather than a closed descriptor whose number may already be reused (it would
// then sleep its whole PollTimeout). Close, eof or the cleanup closes it.
func (r *liveRes) closeLocked(zero bool) error {
	var err error
	if r.mapped == mapRing {
		if zero {
			_, err = unix.MmapPtr(-1, 0, r.mem, r.memLen, unix.PROT_READ|unix.PROT_WRITE,
				unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED)
			if err == nil {
				r.mapped = mapZero
			} else {
				// Without the stand-in the ring stays mapped (and its socket alive) until the
				// reader's next Next or the cleanup: safer than unmapping under a reader.
				err = fmt.Errorf("capture on %s: replacing the ring: %w", r.name, err)
			}
		} else {
			if e := unix.MunmapPtr(r.mem, r.memLen); e != nil {
				err = fmt.Errorf("capture on %s: unmapping the ring: %w", r.name, e)
			}
			r.mapped = mapNone
		}
	}
	for _, fd := range []*int{&r.fd, &r.efd, &r.nl} {
		if *fd >= 0 && !(zero && fd == &r.efd) {
			if e := unix.Close(*fd); e != nil && err == nil {
				err = fmt.Errorf("capture on %s: close: %w", r.name, e)
			}
			*fd = -1
		}
	}
	return err
}

// cleanup runs when an unclosed (or closed but not drained) source is garbage: no reader
// can hold a frame any more.
func (r *liveRes) cleanup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd >= 0 {
		_ = r.closeLocked(false)
	}
	if r.mapped != mapNone {
		_ = unix.MunmapPtr(r.mem, r.memLen)
		r.mapped = mapNone
	}
	if r.efd >= 0 {
		_ = unix.Close(r.efd)
		r.efd = -1
	}
}

// Stats returns the drops since the source was opened: osDrops are frames the kernel could
// not put in the ring because it was full (PACKET_STATISTICS, libpcap's ps_drop); ifDrops
// are the interface's receive drops (rx_missed_errors + rx_fifo_errors, as libpcap's
// ps_ifdrop), 0 when unavailable. ifDrops is per interface: every socket of a fanout group
// reports the same number, so count it once; osDrops is per socket. After Close, Stats
// returns the final counts.
func (s *LiveSource) Stats() (osDrops, ifDrops uint64, err error) {
	r := s.res
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd >= 0 {
		err = r.readStats()
	}
	return r.osDrops, r.ifDrops, err
}

// readStats adds the socket's drops since the last read (reading resets the kernel's
// counters) and refreshes the interface's.
func (r *liveRes) readStats() error {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return fmt.Errorf("capture on %s: PACKET_STATISTICS: %w", r.name, err)
	}
	r.osDrops += uint64(st.Drops)
	if r.nl >= 0 {
		cur, err := r.ifDropCounter()
		if errors.Is(err, unix.ENODEV) {
			// The interface was deleted: its last counts stand.
			_ = unix.Close(r.nl)
			r.nl = -1
			return nil
		}
		if err != nil {
			return fmt.Errorf("capture on %s: interface counters: %w", r.name, err)
		}
		if cur >= r.ifBase {
			r.ifDrops = cur - r.ifBase
		}
	}
	return nil
}

// openNetlink keeps an rtnetlink socket of the capture's network namespace for the
// interface's drop counters (sysfs and /proc/net may show another namespace than the
// socket's). Without it, ifDrops stays 0.
func (r *liveRes) openNetlink() {
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return
	}
	tv := unix.Timeval{Sec: 1}
	if unix.Bind(nl, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}) != nil ||
		unix.SetsockoptTimeval(nl, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv) != nil {
		unix.Close(nl)
		return
	}
	r.nl = nl
	r.nlBuf = make([]byte, 64<<10)
	base, err := r.ifDropCounter()
	if err != nil {
		unix.Close(nl)
		r.nl = -1
		return
	}
	r.ifBase = base
}

// LinkType is the link type of the frames (Ethernet for Ethernet and loopback devices, raw
// IP for devices without a link header).
func (s *LiveSource) LinkType() decode.LinkType { return s.r.link }

// Iface is the interface name the capture resolved to.
func (s *LiveSource) Iface() string { return s.name }

// FanoutGroup is the fanout group id the socket joined; ok is false when it joined none. (A
// group created by OpenLiveFanout may get id 0: the kernel hands unused ids out from 0.)
func (s *LiveSource) FanoutGroup() (id int, ok bool) { return s.fanout, s.inGroup }
