//go:build linux

package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/gen"
)

// ---- helpers -------------------------------------------------------------------------------

// record is one capture record to write with pcapgo (the test's independent writer).
type record struct {
	data    []byte
	wireLen int // 0: len(data)
}

func writePcap(tb testing.TB, link layers.LinkType, recs []record) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65536, link); err != nil {
		tb.Fatal(err)
	}
	for i, r := range recs {
		wl := r.wireLen
		if wl == 0 {
			wl = len(r.data)
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1000), CaptureLength: len(r.data), Length: wl}
		if err := w.WritePacket(ci, r.data); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// ethFrame is an Ethernet frame of n bytes with the given EtherType; its payload bytes count
// from seed so that frames differ.
func ethFrame(n int, etherType uint16, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	if n >= ethHdrLen {
		binary.BigEndian.PutUint16(b[12:14], etherType)
	}
	return b
}

// readOracle reads every record of a pcap file with gopacket's pcapgo.
func readOracle(tb testing.TB, path string) [][]byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, append([]byte(nil), data...))
	}
}

// genCapture writes a small synthetic DNS capture (internal/gen) and returns its path.
func genCapture(tb testing.TB, packets int) string {
	tb.Helper()
	cfg := gen.DefaultConfig()
	cfg.Packets = packets
	cfg.Fragment = 0.05 // some 1514-byte frames
	path := filepath.Join(tb.TempDir(), "dns.pcap")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := gen.Write(f, cfg); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// result line, parsed back.
func parseResult(tb testing.TB, out string) result {
	tb.Helper()
	var r result
	var secs, pps float64
	line := strings.TrimSpace(out)
	_, err := fmt.Sscanf(line, "sent %d packets in %f s: %f pps, %d bytes (%d errors, %d ENOBUFS retries)",
		&r.packets, &secs, &pps, &r.bytes, &r.errors, &r.retries)
	if err != nil {
		tb.Fatalf("cannot parse result line %q: %v", line, err)
	}
	r.elapsed = time.Duration(secs * 1e9)
	return r
}

// ---- flags, formatting ---------------------------------------------------------------------

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    options
		wantErr string
	}{
		{args: []string{"-i", "eth0", "f.pcap"}, want: options{iface: "eth0", loop: 1, batch: 64, method: "mmsg", file: "f.pcap"}},
		{args: []string{"-i", "eth0", "--topspeed", "--loop", "0", "--duration", "2s", "--batch", "256", "--method", "ring", "f.pcap"},
			want: options{iface: "eth0", loop: 0, duration: 2 * time.Second, batch: 256, method: "ring", file: "f.pcap"}},
		{args: []string{"--iface=vA", "--pps", "20000", "-q", "x"}, want: options{iface: "vA", pps: 20000, loop: 1, batch: 64, method: "mmsg", file: "x", quiet: true}},
		{args: []string{"f.pcap"}, wantErr: "-i IFACE is required"},
		{args: []string{"-i", "eth0"}, wantErr: "want one capture file"},
		{args: []string{"-i", "eth0", "a", "b"}, wantErr: "want one capture file"},
		{args: []string{"-i", "eth0", "--pps", "5", "--topspeed", "f"}, wantErr: "exclude each other"},
		{args: []string{"-i", "eth0", "--pps", "-5", "f"}, wantErr: "must be positive"},
		{args: []string{"-i", "eth0", "--loop", "-1", "f"}, wantErr: "--loop -1"},
		{args: []string{"-i", "eth0", "--duration", "-1s", "f"}, wantErr: "must not be negative"},
		{args: []string{"-i", "eth0", "--batch", "0", "f"}, wantErr: "--batch 0"},
		{args: []string{"-i", "eth0", "--batch", "4097", "f"}, wantErr: "--batch 4097"},
		{args: []string{"-i", "eth0", "--method", "pigeon", "f"}, wantErr: "want mmsg or ring"},
		{args: []string{"-i", "eth0", "--bogus", "f"}, wantErr: "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run(context.Background(), []string{"--help"}, &out, &errb); rc != 0 {
		t.Errorf("--help: rc %d", rc)
	}
	if !strings.Contains(errb.String(), "usage: pktvisor-replay") {
		t.Errorf("--help printed %q", errb.String())
	}
	errb.Reset()
	if rc := run(context.Background(), []string{"f.pcap"}, &out, &errb); rc != 2 {
		t.Errorf("missing -i: rc %d, want 2", rc)
	}
	errb.Reset()
	if rc := run(context.Background(), []string{"-i", "no-such-if0", "f.pcap"}, &out, &errb); rc != 1 ||
		!strings.Contains(errb.String(), "no such interface") {
		t.Errorf("unknown interface: rc %d, stderr %q", rc, errb.String())
	}
	if out.Len() != 0 {
		t.Errorf("no replay happened but stdout has %q", out.String())
	}
}

func TestResultString(t *testing.T) {
	tests := []struct {
		r    result
		want string
	}{
		{result{packets: 1000000, bytes: 123456789, elapsed: 2 * time.Second, errors: 1, retries: 7},
			"sent 1000000 packets in 2.000 s: 500000 pps, 123456789 bytes (1 errors, 7 ENOBUFS retries)"},
		{result{packets: 10, bytes: 600, elapsed: 250 * time.Millisecond},
			"sent 10 packets in 0.250 s: 40 pps, 600 bytes (0 errors, 0 ENOBUFS retries)"},
		{result{}, "sent 0 packets in 0.000 s: 0 pps, 0 bytes (0 errors, 0 ENOBUFS retries)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
		if tt.r.elapsed > 0 {
			if back := parseResult(t, tt.r.String()); back.packets != tt.r.packets || back.bytes != tt.r.bytes {
				t.Errorf("round trip: %+v", back)
			}
		}
	}
}

// ---- loading -------------------------------------------------------------------------------

func TestLoadFrames(t *testing.T) {
	const mtu = 1500
	vlanMax := ethFrame(mtu+ethHdrLen+vlanHdrLen, 0x8100, 9)
	recs := []record{
		{data: ethFrame(60, 0x0800, 1)},
		{data: ethFrame(13, 0x0800, 2)}, // shorter than an Ethernet header: skipped
		{data: ethFrame(ethHdrLen, 0x0800, 3)},
		{data: ethFrame(mtu+ethHdrLen, 0x0800, 4)},              // exactly MTU: kept
		{data: ethFrame(mtu+ethHdrLen+1, 0x0800, 5)},            // one byte too long: skipped
		{data: vlanMax},                                         // 802.1Q may carry 4 bytes more
		{data: ethFrame(mtu+ethHdrLen+vlanHdrLen+1, 0x8100, 6)}, // skipped
		{data: ethFrame(mtu+ethHdrLen+vlanHdrLen, 0x88a8, 7)},   // QinQ outer tag: skipped (kernel allows 0x8100 only)
		{data: ethFrame(100, 0x86dd, 8), wireLen: 400},          // snapped: sent as captured
	}
	want := [][]byte{recs[0].data, recs[2].data, recs[3].data, vlanMax, recs[8].data}
	file := writePcap(t, layers.LinkTypeEthernet, recs)

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(file)
	zw.Close()

	for _, tc := range []struct {
		name string
		in   []byte
		hint int
	}{
		{"pcap", file, len(file)},
		{"pcap no hint", file, 0},
		{"gzip", gz.Bytes(), gz.Len()}, // the hint is too small: the buffer grows
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, st, err := loadFrames(bytes.NewReader(tc.in), "test.pcap", limits{mtu: mtu}, maxLoadBytes, tc.hint)
			if err != nil {
				t.Fatal(err)
			}
			if fs.n() != len(want) {
				t.Fatalf("loaded %d frames, want %d", fs.n(), len(want))
			}
			total := 0
			for i, w := range want {
				if !bytes.Equal(fs.frame(i), w) {
					t.Errorf("frame %d: got %d bytes, want %d (%x…)", i, len(fs.frame(i)), len(w), w[:16])
				}
				total += len(w)
			}
			if len(fs.buf) != total || fs.maxLen() != len(vlanMax) {
				t.Errorf("buf %d bytes (want %d), maxLen %d (want %d)", len(fs.buf), total, fs.maxLen(), len(vlanMax))
			}
			wantSt := loadStats{short: 1, long: 3, snapped: 1}
			if st != wantSt {
				t.Errorf("stats %+v, want %+v", st, wantSt)
			}
			for _, s := range []string{"1 frames shorter", "3 frames longer", "1 frames were cut"} {
				if !strings.Contains(st.String(), s) {
					t.Errorf("summary %q lacks %q", st, s)
				}
			}
		})
	}
}

func TestLoadNotEthernet(t *testing.T) {
	file := writePcap(t, layers.LinkTypeRaw, []record{{data: ethFrame(40, 0, 0x45)}, {data: ethFrame(40, 0, 0x45)}})
	fs, st, err := loadFrames(bytes.NewReader(file), "raw.pcap", limits{mtu: 1500}, maxLoadBytes, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fs.n() != 0 || st.notEthernet != 2 {
		t.Errorf("loaded %d frames, %d not Ethernet; want 0 and 2", fs.n(), st.notEthernet)
	}
}

func TestLoadLimit(t *testing.T) {
	recs := []record{{data: ethFrame(100, 0x0800, 1)}, {data: ethFrame(200, 0x0800, 2)}, {data: ethFrame(300, 0x0800, 3)}}
	file := writePcap(t, layers.LinkTypeEthernet, recs)
	tests := []struct {
		limit  int
		wantOK bool
	}{
		{600, true}, // exactly the frames' bytes
		{599, false},
		{100, false},
	}
	for _, tt := range tests {
		fs, _, err := loadFrames(bytes.NewReader(file), "big.pcap", limits{mtu: 1500}, tt.limit, len(file))
		if tt.wantOK {
			if err != nil || fs.n() != 3 || cap(fs.buf) > tt.limit {
				t.Errorf("limit %d: err %v, fs %v", tt.limit, err, fs)
			}
			continue
		}
		if !errors.Is(err, errTooBig) || !strings.Contains(err.Error(), fmt.Sprint(tt.limit)) {
			t.Errorf("limit %d: err %v, want errTooBig naming the limit", tt.limit, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	file := writePcap(t, layers.LinkTypeEthernet, []record{{data: ethFrame(100, 0x0800, 1)}, {data: ethFrame(200, 0x0800, 2)}})
	// Cut inside the second record: the first is loaded, the cut is reported.
	fs, st, err := loadFrames(bytes.NewReader(file[:len(file)-50]), "cut.pcap", limits{mtu: 1500}, maxLoadBytes, 0)
	if err != nil || fs.n() != 1 || !errors.Is(st.truncated, capture.ErrTruncated) || !strings.Contains(st.String(), "cut short") {
		t.Errorf("cut file: err %v, %d frames, stats %v", err, fs.n(), st)
	}
	if _, _, err := loadFrames(strings.NewReader("this is not a capture"), "text", limits{mtu: 1500}, maxLoadBytes, 0); !errors.Is(err, capture.ErrNotCapture) {
		t.Errorf("text: err %v, want ErrNotCapture", err)
	}
	if _, _, err := loadFile(filepath.Join(t.TempDir(), "missing.pcap"), limits{mtu: 1500}, maxLoadBytes); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err %v", err)
	}
}

func FuzzLoadFrames(f *testing.F) {
	f.Add(writePcap(f, layers.LinkTypeEthernet, []record{{data: ethFrame(60, 0x0800, 1)}, {data: ethFrame(1518, 0x8100, 2)}, {data: ethFrame(3, 0, 0)}}))
	f.Add(writePcap(f, layers.LinkTypeRaw, []record{{data: ethFrame(40, 0, 0x45)}}))
	f.Add([]byte{0xd4, 0xc3, 0xb2, 0xa1})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 16
		fs, st, err := loadFrames(bytes.NewReader(in), "fuzz", limits{mtu: 1500}, limit, len(in))
		if err != nil {
			return
		}
		if len(fs.buf) > limit || cap(fs.buf) > limit {
			t.Fatalf("buffer %d/%d beyond the limit", len(fs.buf), cap(fs.buf))
		}
		if fs.off[0] != 0 || int(fs.off[fs.n()]) != len(fs.buf) {
			t.Fatalf("offsets %v do not span the buffer (%d)", fs.off, len(fs.buf))
		}
		lim := limits{mtu: 1500}
		for i := range fs.n() {
			fr := fs.frame(i)
			if len(fr) < ethHdrLen || len(fr) > lim.maxFor(fr) {
				t.Fatalf("frame %d: %d bytes kept", i, len(fr))
			}
		}
		_ = st.String()
	})
}

// ---- pacing --------------------------------------------------------------------------------

func TestPacerWait(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	// 1000 packets/s: one token per millisecond; batch 10 ⇒ burst max(10, 20) = 20.
	tests := []struct {
		name     string
		at       time.Duration // since t0
		sent, n  int64
		wantWait time.Duration
	}{
		{"first batch waits for its tokens", 0, 0, 10, 10 * ms},
		{"partly there", 4 * ms, 0, 10, 6 * ms},
		{"due now", 10 * ms, 0, 10, 0},
		{"on schedule", 25 * ms, 20, 10, 5 * ms},
		{"ahead of credit", 25 * ms, 30, 10, 15 * ms},
		{"behind by less than a burst", 100 * ms, 90, 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(1000, 10, t0)
			if p.burst != 20 {
				t.Fatalf("burst %d, want 20", p.burst)
			}
			if got := p.wait(t0.Add(tt.at), tt.sent, tt.n); got != tt.wantWait {
				t.Errorf("wait = %v, want %v", got, tt.wantWait)
			}
		})
	}
	t.Run("stall forgives credit beyond a burst", func(t *testing.T) {
		p := newPacer(1000, 10, t0)
		// 1 s late with 10 sent: 990 tokens owed, only 20 kept.
		now := t0.Add(time.Second + 10*ms)
		if w := p.wait(now, 10, 10); w != 0 {
			t.Fatalf("wait %v", w)
		}
		if w := p.wait(now, 30, 10); w != 10*ms {
			t.Errorf("after the burst: wait %v, want 10ms", w)
		}
	})
	t.Run("rate 20000 for 0.5 s with 1 ms batches", func(t *testing.T) {
		// Simulated clock: sleeping advances it by exactly the wait, plus a 150 µs oversleep.
		p := newPacer(20000, 20, t0)
		now, sent := t0, int64(0)
		for now.Before(t0.Add(500 * ms)) {
			if w := p.wait(now, sent, 20); w > 0 {
				now = now.Add(w + 150*time.Microsecond)
				continue
			}
			sent += 20
		}
		if sent < 9980 || sent > 10020 {
			t.Errorf("sent %d in 0.5 s, want 10000 ± 20", sent)
		}
	})
	if a := testing.AllocsPerRun(100, func() { newPacerForAllocs.wait(t0, 5, 10) }); a != 0 {
		t.Errorf("wait allocates %v times", a)
	}
}

var newPacerForAllocs = newPacer(1000, 10, time.Unix(1000, 0))

// ---- live tests (root, private network namespace) ------------------------------------------

// netns locks the test goroutine to its OS thread and moves that thread into a new network
// namespace, with lo up and IPv6 off (so the kernel sends no neighbour discovery of its own on
// the test's links). Every socket must be created on this goroutine. The thread is never
// unlocked: the runtime throws it away, and the namespace with it, when the test ends.
func netns(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("live replay tests need root (CAP_NET_RAW, and CAP_SYS_ADMIN for a network namespace)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("ip(8) not found")
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		tb.Skipf("cannot create a network namespace: %v", err)
	}
	// /proc/sys/net belongs to the namespace of the thread that opens it: this one.
	for _, k := range []string{"all", "default"} {
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0o644)
	}
	ipCmd(tb, "link", "set", "lo", "up")
}

// ipCmd runs ip(8); a child starts in the namespace of the locked thread that forks it.
func ipCmd(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// veth creates the pair rpA <-> rpB, both up.
func veth(tb testing.TB) {
	tb.Helper()
	ipCmd(tb, "link", "add", "rpA", "type", "veth", "peer", "name", "rpB")
	ipCmd(tb, "link", "set", "rpA", "up")
	ipCmd(tb, "link", "set", "rpB", "up")
}

func openRx(tb testing.TB, iface string) *capture.LiveSource {
	tb.Helper()
	src, err := capture.OpenLive(capture.LiveConfig{Iface: iface, PollTimeout: 300 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { src.Close() })
	return src
}

type rxResult struct {
	got map[string]int
	n   int
}

// receive reads frames on another goroutine (the receiver's ring could not hold a long run)
// until none arrived for a poll timeout after sent was closed, and counts them by content.
func receive(tb testing.TB, src *capture.LiveSource, sent <-chan struct{}) <-chan rxResult {
	done := make(chan rxResult, 1)
	go func() {
		r := rxResult{got: map[string]int{}}
		defer func() { done <- r }()
		for {
			data, _, err := src.Next()
			if errors.Is(err, capture.ErrTimeout) {
				select {
				case <-sent:
					return
				default:
					continue
				}
			}
			if err != nil {
				tb.Error(err)
				return
			}
			r.got[string(data)]++
			r.n++
		}
	}()
	return done
}

// replayAndReceive runs the replayer with args while capturing on rpB.
func replayAndReceive(tb testing.TB, ctx context.Context, args ...string) (result, string, rxResult) {
	tb.Helper()
	src := openRx(tb, "rpB")
	sent := make(chan struct{})
	rx := receive(tb, src, sent)
	res, log := runReplay(tb, ctx, args...)
	close(sent)
	r := <-rx
	if drops, _, err := src.Stats(); err != nil || drops != 0 {
		tb.Errorf("receiver: %d ring drops (err %v)", drops, err)
	}
	return res, log, r
}

func runReplay(tb testing.TB, ctx context.Context, args ...string) (result, string) {
	tb.Helper()
	var out, errb bytes.Buffer
	if rc := run(ctx, args, &out, &errb); rc != 0 {
		tb.Fatalf("run %q: rc %d, stderr %s", args, rc, errb.String())
	}
	return parseResult(tb, out.String()), errb.String()
}

// TestReplayVeth replays a generated capture onto one end of a veth pair and checks that the
// other end receives every frame exactly as often as sent, byte for byte. The expected frames
// come from reading the file with pcapgo, not with the replayer's loader.
func TestReplayVeth(t *testing.T) {
	path := genCapture(t, 3000)
	frames := readOracle(t, path)
	want := map[string]int{}
	var wantBytes int64
	for _, f := range frames {
		if len(f) > 1514 || len(f) < ethHdrLen {
			t.Fatalf("the generated capture holds a %d-byte frame: the veth MTU would refuse it", len(f))
		}
		want[string(f)]++
		wantBytes += int64(len(f))
	}
	tests := []struct {
		method string
		loop   int
		batch  int
	}{
		{"ring", 1, 64},
		{"mmsg", 1, 64},
		{"ring", 2, 7}, // batches straddle the end of the file
		{"mmsg", 2, 7},
		{"ring", 1, 1},
		{"mmsg", 3, 4096},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/loop%d/batch%d", tt.method, tt.loop, tt.batch), func(t *testing.T) {
			netns(t)
			veth(t)
			res, log, rx := replayAndReceive(t, context.Background(), "-i", "rpA", "--method", tt.method,
				"--loop", fmt.Sprint(tt.loop), "--batch", fmt.Sprint(tt.batch), path)
			if !strings.Contains(log, fmt.Sprintf("loaded %d frames", len(frames))) {
				t.Errorf("load summary: %q", log)
			}
			if res.packets != int64(tt.loop*len(frames)) || res.bytes != int64(tt.loop)*wantBytes || res.errors != 0 {
				t.Errorf("reported %+v, want %d packets, %d bytes", res, tt.loop*len(frames), int64(tt.loop)*wantBytes)
			}
			got, n := rx.got, rx.n
			if n != tt.loop*len(frames) {
				t.Errorf("received %d frames, want %d", n, tt.loop*len(frames))
			}
			for f, c := range want {
				if got[f] != c*tt.loop {
					t.Errorf("frame %x…: received %d times, want %d", f[:min(len(f), 34)], got[f], c*tt.loop)
				}
			}
			for f := range got {
				if want[f] == 0 {
					t.Errorf("unexpected frame %x…", f[:min(len(f), 34)])
				}
			}
		})
	}
}

// TestReplayPacing: --pps 20000 for 0.5 s sends 10000 packets ± 10 %, and all arrive.
func TestReplayPacing(t *testing.T) {
	path := genCapture(t, 3000)
	for _, method := range []string{"ring", "mmsg"} {
		t.Run(method, func(t *testing.T) {
			netns(t)
			veth(t)
			res, _, rx := replayAndReceive(t, context.Background(), "-i", "rpA", "--method", method, "--pps", "20000",
				"--duration", "0.5s", "--loop", "0", "-q", path)
			if res.packets < 9000 || res.packets > 11000 {
				t.Errorf("sent %d packets, want 10000 ± 10%%", res.packets)
			}
			if res.elapsed < 450*time.Millisecond || res.elapsed > 600*time.Millisecond {
				t.Errorf("took %v, want about 0.5 s", res.elapsed)
			}
			if int64(rx.n) != res.packets {
				t.Errorf("received %d, sent %d", rx.n, res.packets)
			}
		})
	}
}

// TestReplayStop: cancelling (what Ctrl-C does) ends an endless replay cleanly: exit 0, the
// result line, and exactly the frames counted as sent arrived.
func TestReplayStop(t *testing.T) {
	path := genCapture(t, 3000)
	for _, tc := range []struct{ method, rate string }{{"ring", "50000"}, {"mmsg", "50000"}, {"ring", "topspeed"}, {"mmsg", "topspeed"}} {
		t.Run(tc.method+"/"+tc.rate, func(t *testing.T) {
			netns(t)
			veth(t)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			args := []string{"-i", "rpA", "--method", tc.method, "--loop", "0", "-q", path}
			began := time.Now()
			var res result
			if tc.rate == "topspeed" {
				// The receiver may fall behind at top speed: only the exit is checked.
				res, _ = runReplay(t, ctx, args...)
			} else {
				var rx rxResult
				res, _, rx = replayAndReceive(t, ctx, append(args, "--pps", tc.rate)...)
				if int64(rx.n) != res.packets {
					t.Errorf("received %d, sent %d", rx.n, res.packets)
				}
			}
			if el := time.Since(began); el > time.Second || res.packets == 0 {
				t.Errorf("stopping took %v; %+v", el, res)
			}
		})
	}
}

// TestNeedRoot drops CAP_NET_RAW from this (locked, discarded) thread's effective set: the
// replayer must say that it needs root rather than fail obscurely.
func TestNeedRoot(t *testing.T) {
	runtime.LockOSThread() // never unlocked: the thread dies with the test
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	data[unix.CAP_NET_RAW/32].Effective &^= 1 << (unix.CAP_NET_RAW % 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "one.pcap")
	if err := os.WriteFile(path, writePcap(t, layers.LinkTypeEthernet, []record{{data: ethFrame(60, 0x0800, 1)}}), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	rc := run(context.Background(), []string{"-i", "lo", path}, &out, &errb)
	if rc != 1 || !strings.Contains(errb.String(), "needs root (CAP_NET_RAW)") || out.Len() != 0 {
		t.Errorf("rc %d, stdout %q, stderr %q", rc, out.String(), errb.String())
	}
}

// senderFixture opens a socket on rpA (in a fresh namespace) and loads a generated capture.
func senderFixture(tb testing.TB) (int, *frameSet) {
	tb.Helper()
	netns(tb)
	veth(tb)
	ifi, err := net.InterfaceByName("rpA")
	if err != nil {
		tb.Fatal(err)
	}
	fd, err := openSocket(ifi.Index)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	fs, _, err := loadFile(genCapture(tb, 3000), limits{mtu: ifi.MTU}, maxLoadBytes)
	if err != nil {
		tb.Fatal(err)
	}
	return fd, fs
}

func newSender(tb testing.TB, method string, fd, batch int, fs *frameSet) sender {
	tb.Helper()
	if method == "mmsg" {
		return newMmsgSender(fd, batch)
	}
	r, err := newRingSender(fd, batch, fs.maxLen())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.close() })
	return r
}

// TestSendAllocs: a batch costs no heap allocation in steady state.
func TestSendAllocs(t *testing.T) {
	for _, method := range []string{"ring", "mmsg"} {
		t.Run(method, func(t *testing.T) {
			fd, fs := senderFixture(t)
			s := newSender(t, method, fd, 64, fs)
			var res result
			var stop atomic.Bool
			next := 0
			allocs := testing.AllocsPerRun(200, func() {
				sent, _, err := s.send(fs, next, 64, &res, &stop)
				if err != nil || sent != 64 {
					t.Fatalf("sent %d: %v", sent, err)
				}
				next = (next + sent) % fs.n()
			})
			if allocs != 0 {
				t.Errorf("%v allocations per batch", allocs)
			}
		})
	}
}

// BenchmarkSend: one op is one packet, sent in batches over a veth pair whose far end only
// drops them (nothing captures there), so it measures the sending side and the veth.
func BenchmarkSend(b *testing.B) {
	for _, method := range []string{"ring", "mmsg"} {
		for _, batch := range []int{16, 64, 256} {
			b.Run(fmt.Sprintf("%s/batch%d", method, batch), func(b *testing.B) {
				fd, fs := senderFixture(b)
				s := newSender(b, method, fd, batch, fs)
				var res result
				var stop atomic.Bool
				next := 0
				b.ReportAllocs()
				cpu0 := threadCPU(b)
				b.ResetTimer()
				for left := b.N; left > 0; {
					sent, _, err := s.send(fs, next, min(batch, left), &res, &stop)
					if err != nil {
						b.Fatal(err)
					}
					next = (next + sent) % fs.n()
					left -= sent
				}
				b.StopTimer()
				// CPU time of the sending thread per packet (the goroutine is locked to it):
				// steadier than ns/op on a shared machine, where the sender is often preempted.
				b.ReportMetric(float64(threadCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
				if el := b.Elapsed().Seconds(); el > 0 {
					b.ReportMetric(float64(b.N)/el, "pps")
				}
				b.ReportMetric(float64(res.retries)/math.Max(float64(b.N), 1), "retries/op")
			})
		}
	}
}

// threadCPU is the calling thread's user+system CPU time.
func threadCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
