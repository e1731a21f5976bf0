//go:build linux

// Command pktvisor-replay sends the Ethernet frames of a capture file out of a network
// interface as fast as the kernel allows, or at a fixed packet rate. It exists for the live
// capture benchmark (scripts/bench-live.sh): tcpreplay makes one sendto per packet and tops out
// near 240 k packets/s on a small VM, too slow to load an agent that is meant to keep up with
// 1 M packets/s. See README.md for usage and measured rates.
//
// Design choices:
//   - The whole capture is loaded into one byte slice first (frames back to back, plus an
//     offset table), so that sending never touches the disk or the capture decoder. The load is
//     bounded: more than 2 GiB of frames is refused. Frames the kernel would refuse (shorter than
//     an Ethernet header, longer than the interface's MTU allows) are dropped at load time and
//     counted, so that nothing can fail per packet later.
//   - The socket is AF_PACKET/SOCK_RAW, bound to the interface with protocol 0 (it receives
//     nothing, so it costs nothing on the receive path), with PACKET_QDISC_BYPASS: frames go
//     straight to the driver, skipping the qdisc and the taps (a tcpdump on the sending
//     interface does not see them).
//   - Two batch senders, chosen with --method: sendmmsg (one system call per batch, the frames
//     passed in place by iovecs) and a TPACKET_V2 TX ring (frames are copied into the shared
//     ring and one sendto(NULL, 0) per batch makes the kernel send them all). Both were
//     measured over veth (README.md): they are within a few per cent at 64 frames per batch,
//     and sendmmsg is ahead at larger batches, so it is the default. The ring stays for NICs,
//     where its zero-copy page fragments may matter for large frames.
//   - Pacing is a token bucket on the monotonic clock, checked once per batch: a batch waits
//     until the bucket holds enough tokens for it, never per packet. Batches are cut to about
//     1 ms of traffic at low rates so that pacing stays smooth.
//   - Only golang.org/x/sys/unix (socket options, mmap, raw system calls) and the repository's
//     own capture reader are used: gopacket's afpacket sends one frame per system call.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/decode"
)

const (
	// maxLoadBytes bounds the frames held in memory. Offsets are stored as uint32, which this
	// also keeps valid.
	maxLoadBytes = 2 << 30
	ethHdrLen    = 14
	vlanHdrLen   = 4
	// tpDataOff is where a frame starts in a TPACKET_V2 TX ring slot when PACKET_TX_HAS_OFF is
	// not set: TPACKET2_HDRLEN - sizeof(struct sockaddr_ll) = TPACKET_ALIGN(32).
	tpDataOff = unix.SizeofTpacket2Hdr
	// maxBatch bounds --batch, and with it the ring and the iovec arrays.
	maxBatch = 4096
	// sendTimeout is SO_SNDTIMEO: a send blocked on the kernel (a full socket buffer, a ring
	// waiting for completions) returns this often, so that a stop request is noticed.
	sendTimeout = 100 * time.Millisecond
	// pacedBatchTime: at low rates a batch holds at most this much traffic.
	pacedBatchTime = time.Millisecond
	// burstTime: after a stall the pacer catches up by at most this much traffic at once.
	burstTime = 10 * time.Millisecond
)

var (
	errTooBig   = errors.New("capture too big to load")
	errNeedRoot = errors.New("sending raw frames needs root (CAP_NET_RAW)")
	errNoFrames = errors.New("no frame to send")
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first Ctrl-C, the default action comes back: a second one kills at once.
	go func() { <-ctx.Done(); stop() }()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	iface    string
	pps      int64 // 0: top speed
	loop     int   // 0: until duration (or forever)
	duration time.Duration
	batch    int
	method   string
	file     string
	quiet    bool
}

// run is main without the process: it returns the exit code (0 success, 1 failure, 2 usage).
// Cancelling ctx stops the replay cleanly, as Ctrl-C does.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "pktvisor-replay:", err)
		return 2
	}
	res, started, err := replay(ctx, o, stderr)
	if started {
		fmt.Fprintln(stdout, res)
	}
	if err != nil {
		fmt.Fprintln(stderr, "pktvisor-replay:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var topspeed bool
	fs := pflag.NewFlagSet("pktvisor-replay", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pktvisor-replay -i IFACE [--pps N | --topspeed] [--loop K] [--duration D] [--batch 64] FILE\n\n"+
			"Sends the Ethernet frames of a pcap/pcapng file out of IFACE (root needed). Without --pps,\n"+
			"frames go out as fast as the kernel takes them.\n\nOptions:")
		fs.PrintDefaults()
	}
	fs.StringVarP(&o.iface, "iface", "i", "", "interface to send on (required)")
	fs.Int64Var(&o.pps, "pps", 0, "send at this many packets per second (token bucket, per batch)")
	fs.BoolVar(&topspeed, "topspeed", false, "send as fast as possible (the default)")
	fs.IntVar(&o.loop, "loop", 1, "send the file this many times; 0 = until --duration or Ctrl-C")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0 = no limit)")
	fs.IntVar(&o.batch, "batch", 64, fmt.Sprintf("frames per system call (1-%d)", maxBatch))
	fs.StringVar(&o.method, "method", "mmsg", "mmsg (sendmmsg) or ring (TPACKET_V2 TX ring)")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no load summary on stderr")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() != 1:
		return o, fmt.Errorf("want one capture file, got %d arguments (see --help)", fs.NArg())
	case o.iface == "":
		return o, errors.New("-i IFACE is required")
	case topspeed && o.pps != 0:
		return o, errors.New("--pps and --topspeed exclude each other")
	case o.pps < 0:
		return o, fmt.Errorf("--pps %d: must be positive", o.pps)
	case o.loop < 0:
		return o, fmt.Errorf("--loop %d: must be 0 or more", o.loop)
	case o.duration < 0:
		return o, fmt.Errorf("--duration %v: must not be negative", o.duration)
	case o.batch < 1 || o.batch > maxBatch:
		return o, fmt.Errorf("--batch %d: must be 1-%d", o.batch, maxBatch)
	case o.method != "mmsg" && o.method != "ring":
		return o, fmt.Errorf("--method %q: want mmsg or ring", o.method)
	}
	o.file = fs.Arg(0)
	return o, nil
}

// result is what a replay did; String is the one line printed at the end.
type result struct {
	packets, bytes  int64
	errors, retries int64
	elapsed         time.Duration
}

func (r result) String() string {
	s := r.elapsed.Seconds()
	var pps float64
	if s > 0 {
		pps = float64(r.packets) / s
	}
	return fmt.Sprintf("sent %d packets in %.3f s: %.0f pps, %d bytes (%d errors, %d ENOBUFS retries)",
		r.packets, s, pps, r.bytes, r.errors, r.retries)
}

// replay loads the file and sends it. started reports whether sending began (the result is
// then meaningful even with an error).
func replay(ctx context.Context, o options, log io.Writer) (res result, started bool, err error) {
	lt, err := capture.IfaceLinkType(o.iface)
	if err != nil {
		return res, false, fmt.Errorf("%w (available: %s)", err, capture.AvailableInterfaces())
	}
	if lt != decode.LinkEthernet {
		return res, false, fmt.Errorf("interface %s carries no Ethernet header: only Ethernet and loopback devices are supported", o.iface)
	}
	ifi, err := net.InterfaceByName(o.iface)
	if err != nil {
		return res, false, fmt.Errorf("interface %s: %w", o.iface, err)
	}
	fd, err := openSocket(ifi.Index)
	if err != nil {
		return res, false, fmt.Errorf("%s: %w", o.iface, err)
	}
	defer unix.Close(fd)

	fs, ls, err := loadFile(o.file, limits{mtu: ifi.MTU}, maxLoadBytes)
	if err != nil {
		return res, false, err
	}
	if !o.quiet {
		fmt.Fprintf(log, "pktvisor-replay: loaded %d frames (%d bytes) from %s%s\n", fs.n(), len(fs.buf), o.file, ls)
	}
	if fs.n() == 0 {
		return res, false, fmt.Errorf("%s: %w", o.file, errNoFrames)
	}

	var snd sender
	if o.method == "mmsg" {
		snd = newMmsgSender(fd, o.batch)
	} else {
		r, err := newRingSender(fd, o.batch, fs.maxLen())
		if err != nil {
			return res, false, fmt.Errorf("%s: %w", o.iface, err)
		}
		defer r.close()
		snd = r
	}
	var stop atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			stop.Store(true)
		case <-done:
		}
	}()
	res, err = sendLoop(ctx, snd, fs, o, &stop)
	if err != nil {
		err = fmt.Errorf("%s: %w", o.iface, err)
	}
	return res, true, err
}

// sendLoop sends the frames of fs o.loop times (0: until the deadline or a stop), in batches.
func sendLoop(ctx context.Context, snd sender, fs *frameSet, o options, stop *atomic.Bool) (result, error) {
	var res result
	n := fs.n()
	total := int64(math.MaxInt64)
	if o.loop > 0 {
		total = int64(o.loop) * int64(n)
	}
	batch := o.batch
	var p *pacer
	var timer *time.Timer
	start := time.Now()
	if o.pps > 0 {
		batch = int(min(max(int64(float64(o.pps)*pacedBatchTime.Seconds()), 1), int64(o.batch)))
		p = newPacer(float64(o.pps), batch, start)
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	var deadline time.Time
	if o.duration > 0 {
		deadline = start.Add(o.duration)
	}
	next := 0 // index of the next frame in fs
	var err error
	for res.packets < total && !stop.Load() {
		want := int(min(int64(batch), total-res.packets))
		if p != nil {
			now := time.Now()
			if wait := p.wait(now, res.packets, int64(want)); wait > 0 {
				if !deadline.IsZero() && now.Add(wait).After(deadline) {
					break // the batch would be due after the end
				}
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					stop.Store(true)
				}
				continue // check stop and the clock again
			}
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			break
		}
		var sent int
		var nbytes int64
		sent, nbytes, err = snd.send(fs, next, want, &res, stop)
		res.packets += int64(sent)
		res.bytes += nbytes
		next = (next + sent) % n
		if err != nil {
			break
		}
	}
	res.elapsed = time.Since(start)
	return res, err
}

// limits are the frame lengths the kernel accepts on the interface (net/packet/af_packet.c:
// at least the link header, at most MTU + link header, + 4 for an 802.1Q tag).
type limits struct{ mtu int }

func (l limits) maxFor(frame []byte) int {
	m := l.mtu + ethHdrLen
	if len(frame) >= ethHdrLen && binary.BigEndian.Uint16(frame[12:14]) == 0x8100 {
		m += vlanHdrLen
	}
	return m
}

// frameSet holds the loaded frames back to back; frame i is buf[off[i]:off[i+1]].
type frameSet struct {
	buf []byte
	off []uint32
}

func (fs *frameSet) n() int             { return len(fs.off) - 1 }
func (fs *frameSet) frame(i int) []byte { return fs.buf[fs.off[i]:fs.off[i+1]] }

func (fs *frameSet) maxLen() int {
	m := 0
	for i := range fs.n() {
		m = max(m, int(fs.off[i+1]-fs.off[i]))
	}
	return m
}

// loadStats counts the records not loaded as they are.
type loadStats struct {
	notEthernet, short, long, snapped int
	truncated                         error // the file ended inside a record
}

func (s loadStats) String() string {
	var out string
	if s.notEthernet > 0 {
		out += fmt.Sprintf("; skipped %d non-Ethernet records", s.notEthernet)
	}
	if s.short > 0 {
		out += fmt.Sprintf("; skipped %d frames shorter than an Ethernet header", s.short)
	}
	if s.long > 0 {
		out += fmt.Sprintf("; skipped %d frames longer than the interface's MTU allows", s.long)
	}
	if s.snapped > 0 {
		out += fmt.Sprintf("; %d frames were cut by the capture's snap length and go out as captured", s.snapped)
	}
	if s.truncated != nil {
		out += fmt.Sprintf("; the file is cut short (%v): the frames before the cut are sent", s.truncated)
	}
	return out
}

// loadFile reads every frame of a capture file into memory (see loadFrames).
func loadFile(path string, lim limits, limit int) (*frameSet, loadStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, loadStats{}, fmt.Errorf("load: %w", err)
	}
	defer f.Close()
	hint := 0
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		hint = int(min(st.Size(), int64(limit)))
	}
	return loadFrames(f, path, lim, limit, hint)
}

// loadFrames reads every frame of a capture into one buffer of at most limit bytes. hint is
// the expected size (the file's), to allocate once; a gzip file grows the buffer as it goes.
func loadFrames(rd io.Reader, name string, lim limits, limit, hint int) (*frameSet, loadStats, error) {
	var st loadStats
	r, err := capture.NewReader(rd, name)
	if err != nil {
		return nil, st, fmt.Errorf("load: %w", err)
	}
	defer r.Close()
	fs := &frameSet{buf: make([]byte, 0, min(hint, limit)), off: []uint32{0}}
	for {
		data, info, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, capture.ErrTruncated) {
			st.truncated = err
			break
		}
		if err != nil {
			return nil, st, fmt.Errorf("load: %w", err)
		}
		switch {
		case info.Link != decode.LinkEthernet:
			st.notEthernet++
			continue
		case len(data) < ethHdrLen:
			st.short++
			continue
		case len(data) > lim.maxFor(data):
			st.long++
			continue
		}
		if info.WireLen > info.CapLen {
			st.snapped++
		}
		if len(data) > limit-len(fs.buf) {
			return nil, st, fmt.Errorf("load %s: %w: its frames need more than %d bytes of memory (%d frames loaded so far); replay a smaller capture",
				name, errTooBig, limit, fs.n())
		}
		if len(fs.buf)+len(data) > cap(fs.buf) {
			grown := make([]byte, len(fs.buf), min(max(2*cap(fs.buf), len(fs.buf)+len(data), 1<<20), limit))
			copy(grown, fs.buf)
			fs.buf = grown
		}
		fs.buf = append(fs.buf, data...)
		fs.off = append(fs.off, uint32(len(fs.buf)))
	}
	if s := r.Skipped(); s > 0 {
		st.notEthernet += int(min(s, math.MaxInt32))
	}
	return fs, st, nil
}

// openSocket opens a send-only packet socket bound to the interface, bypassing the qdisc.
func openSocket(ifindex int) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return -1, fmt.Errorf("%w: %w", errNeedRoot, err)
	}
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	// Protocol 0: the socket is bound (sends go to ifindex) but registers no receive hook.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
	}
	tv := unix.NsecToTimeval(int64(sendTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("SO_SNDTIMEO: %w", err)
	}
	// A bigger send buffer lets a real NIC's slow completions pile up without blocking. It is
	// best effort: the kernel caps it at net.core.wmem_max.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	return fd, nil
}

// sender sends n frames of fs starting at index first (wrapping around the end of fs). It
// returns how many went out and their bytes; it counts errors and back-pressure retries in
// res. It returns early, with fewer frames sent, when stop is set.
type sender interface {
	send(fs *frameSet, first, n int, res *result, stop *atomic.Bool) (sent int, bytes int64, err error)
}

// retryable reports whether a send failed only because the kernel pushed back: a full device
// queue or backlog (ENOBUFS), a full socket buffer or ring (EAGAIN after SO_SNDTIMEO, ETIMEDOUT
// from a ring waiting for completions), a signal (EINTR).
func retryable(e unix.Errno) bool {
	return e == unix.ENOBUFS || e == unix.EAGAIN || e == unix.ETIMEDOUT || e == unix.EINTR
}

// backoff waits before retry number k (from 1) of a send the kernel refused for lack of room,
// so that the softirq or ksoftirqd draining the device gets the CPU.
func backoff(k int) {
	if k <= 1 {
		return
	}
	time.Sleep(min(time.Duration(1<<min(k, 20))*time.Microsecond, time.Millisecond))
}

// ringSender fills a TPACKET_V2 TX ring and flushes it with one sendto per batch. A blocking
// flush returns once the kernel has sent every queued frame (veth or a NIC completing them), so
// the whole ring is free again for the next batch and it needs only one batch of slots.
type ringSender struct {
	fd        int
	mem       []byte
	frameSize int
	nframes   int
	head      int
	dirty     bool
}

func newRingSender(fd, batch, maxLen int) (*ringSender, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION: %w", err)
	}
	// A frame the kernel still refuses is dropped instead of blocking the ring for good (its
	// slot would stay TP_STATUS_WRONG_FORMAT). Loading already dropped every frame it knows
	// the kernel refuses.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
		return nil, fmt.Errorf("PACKET_LOSS: %w", err)
	}
	frameSize := 2048
	for frameSize < tpDataOff+maxLen {
		frameSize *= 2
	}
	blockSize := max(frameSize, os.Getpagesize())
	perBlock := blockSize / frameSize
	blocks := (batch + perBlock - 1) / perBlock
	req := unix.TpacketReq{
		Block_size: uint32(blockSize),
		Block_nr:   uint32(blocks),
		Frame_size: uint32(frameSize),
		Frame_nr:   uint32(blocks * perBlock),
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return nil, fmt.Errorf("PACKET_TX_RING %+v: %w", req, err)
	}
	mem, err := unix.Mmap(fd, 0, blockSize*blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap TX ring: %w", err)
	}
	// Blocks are whole multiples of the frame size, so slot i starts at i*frameSize.
	return &ringSender{fd: fd, mem: mem, frameSize: frameSize, nframes: int(req.Frame_nr)}, nil
}

func (r *ringSender) close() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}

// status is the slot's tp_status word, shared with the kernel.
func (r *ringSender) status(slot int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[slot*r.frameSize]))
}

const tpBusy = unix.TP_STATUS_SEND_REQUEST | unix.TP_STATUS_SENDING

func (r *ringSender) send(fs *frameSet, first, n int, res *result, stop *atomic.Bool) (int, int64, error) {
	if r.dirty {
		return 0, 0, errors.New("TX ring left with queued frames by an interrupted flush")
	}
	n = min(n, r.nframes)
	var nbytes int64
	idx := first
	slot := r.head
	for range n {
		st := r.status(slot)
		if atomic.LoadUint32(st)&tpBusy != 0 {
			// Never after a completed flush: every slot is free again.
			return 0, 0, fmt.Errorf("TX ring slot %d still busy (status %#x)", slot, atomic.LoadUint32(st))
		}
		f := fs.frame(idx)
		base := slot * r.frameSize
		copy(r.mem[base+tpDataOff:base+r.frameSize], f)
		binary.NativeEndian.PutUint32(r.mem[base+4:], uint32(len(f))) // tp_len
		// The release store publishes the frame before the kernel may read it.
		atomic.StoreUint32(st, unix.TP_STATUS_SEND_REQUEST)
		nbytes += int64(len(f))
		if idx++; idx == fs.n() {
			idx = 0
		}
		if slot++; slot == r.nframes {
			slot = 0
		}
	}
	err := r.flush(res, stop)
	// Slots still queued (a stop interrupted the flush) did not go out: they are not counted.
	// The kernel's head stays on the first of them, so the ring must not be used again.
	unsent := 0
	var unsentBytes int64
	for k := range n {
		s := (r.head + k) % r.nframes
		if atomic.LoadUint32(r.status(s))&unix.TP_STATUS_SEND_REQUEST != 0 {
			unsent++
			unsentBytes += int64(binary.NativeEndian.Uint32(r.mem[s*r.frameSize+4:]))
		}
	}
	r.head = slot
	if unsent > 0 {
		r.dirty = true
	}
	return n - unsent, nbytes - unsentBytes, err
}

// flush asks the kernel to send every queued slot and waits until it did.
func (r *ringSender) flush(res *result, stop *atomic.Bool) error {
	for k := 1; ; k++ {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(r.fd), 0, 0, 0, 0, 0)
		if e == 0 {
			return nil
		}
		if !retryable(e) {
			return fmt.Errorf("sendto (TX ring): %w", e)
		}
		if e != unix.EINTR {
			res.retries++
		}
		if stop.Load() {
			return nil // send counts the slots left queued
		}
		backoff(k)
	}
}

// mmsgSender passes each batch to sendmmsg, the frames in place in the loaded buffer.
type mmsgSender struct {
	fd   int
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newMmsgSender(fd, batch int) *mmsgSender {
	m := &mmsgSender{fd: fd, hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch)}
	for i := range m.hdrs {
		m.hdrs[i].Hdr.Iov = &m.iovs[i]
		m.hdrs[i].Hdr.SetIovlen(1)
	}
	return m
}

func (m *mmsgSender) send(fs *frameSet, first, n int, res *result, stop *atomic.Bool) (int, int64, error) {
	n = min(n, len(m.hdrs))
	idx := first
	for k := range n {
		f := fs.frame(idx)
		m.iovs[k].Base = &f[0]
		m.iovs[k].SetLen(len(f))
		if idx++; idx == fs.n() {
			idx = 0
		}
	}
	sent, done := 0, 0
	var nbytes int64
	for k := 1; done < n; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(m.fd), uintptr(unsafe.Pointer(&m.hdrs[done])), uintptr(n-done), 0, 0, 0)
		switch {
		case e == 0 && r > 0:
			for i := done; i < done+int(r); i++ {
				nbytes += int64(m.iovs[i].Len)
			}
			done += int(r)
			sent += int(r)
			k = 1
			continue
		case e == 0 || retryable(e): // 0 frames taken: nothing is known to be wrong yet
			if e != unix.EINTR {
				res.retries++
			}
			if stop.Load() {
				return sent, nbytes, nil
			}
			backoff(k)
			k++
			continue
		case e == unix.EMSGSIZE || e == unix.EINVAL:
			// The first frame left was refused (load filters what it knows to be refused):
			// count it and go on with the next.
			res.errors++
			done++
			continue
		}
		return sent, nbytes, fmt.Errorf("sendmmsg: %w", e)
	}
	return sent, nbytes, nil
}

// pacer is a token bucket: tokens accrue at rate per second from start, at most burst beyond
// what was sent. Packet k (from 0) may go once k+1 tokens have accrued.
type pacer struct {
	rate  float64
	start time.Time
	burst int64
}

func newPacer(rate float64, batch int, start time.Time) *pacer {
	burst := max(int64(rate*burstTime.Seconds()), 2*int64(batch))
	return &pacer{rate: rate, start: start, burst: burst}
}

// wait returns how long to wait until n more packets may go, sent having gone so far (0: now).
func (p *pacer) wait(now time.Time, sent, n int64) time.Duration {
	credit := int64(float64(now.Sub(p.start)) * p.rate / 1e9)
	if credit-sent > p.burst {
		// A stall (a descheduled process, a slow receiver): forget the credit beyond one burst
		// rather than flood the link to catch up.
		p.start = now.Add(-time.Duration(float64(sent+p.burst) * 1e9 / p.rate))
		credit = sent + p.burst
	}
	if credit >= sent+n {
		return 0
	}
	due := p.start.Add(time.Duration(math.Ceil(float64(sent+n) * 1e9 / p.rate)))
	return max(due.Sub(now), 1)
}
