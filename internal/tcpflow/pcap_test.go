package tcpflow

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/miekg/dns"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

const testdata = "../../../shared/testdata/pktvisor"

func capturePath(t testing.TB, name string) string {
	t.Helper()
	dir := testdata
	if d := os.Getenv("PKTVISOR_TESTDATA"); d != "" {
		dir = d
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference captures not available (%v)", err)
	}
	return p
}

// loadTCP reads the TCP packets of a capture into decode.Packets with gopacket, independently
// of our own decoder.
func loadTCP(t testing.TB, name string) []decode.Packet {
	t.Helper()
	f, err := os.Open(capturePath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []decode.Packet
	for {
		data, ci, err := rd.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pk := gopacket.NewPacket(data, rd.LinkType(), gopacket.Default)
		tl, ok := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			continue
		}
		p := decode.Packet{TS: ci.Timestamp.UnixNano(), CapLen: ci.CaptureLength, WireLen: ci.Length, L4: decode.L4TCP, IPProto: 6}
		switch ip := pk.NetworkLayer().(type) {
		case *layers.IPv4:
			p.L3 = decode.L3IPv4
			copy(p.Src[:], ip.SrcIP.To4())
			copy(p.Dst[:], ip.DstIP.To4())
		case *layers.IPv6:
			p.L3 = decode.L3IPv6
			copy(p.Src[:], ip.SrcIP)
			copy(p.Dst[:], ip.DstIP)
		default:
			continue
		}
		p.SrcPort, p.DstPort = uint16(tl.SrcPort), uint16(tl.DstPort)
		p.TCPSeq, p.TCPAck = tl.Seq, tl.Ack
		for _, fl := range []struct {
			on  bool
			bit uint8
		}{{tl.FIN, decode.TCPFin}, {tl.SYN, decode.TCPSyn}, {tl.RST, decode.TCPRst}, {tl.PSH, decode.TCPPsh}, {tl.ACK, decode.TCPAck}} {
			if fl.on {
				p.TCPFlags |= fl.bit
			}
		}
		p.Payload = tl.Payload
		out = append(out, p)
	}
	return out
}

// dnsOnly keeps the packets that the DNS handler would send to the reassembler.
func dnsOnly(ps []decode.Packet) []decode.Packet {
	return slices.DeleteFunc(ps, func(p decode.Packet) bool { return !IsDNSPort(p.SrcPort) && !IsDNSPort(p.DstPort) })
}

type pcapMsg struct {
	tsMicro int64
	id      uint16
	qr      bool
}

func TestCaptures(t *testing.T) {
	tests := []struct {
		file             string
		messages         int // spec §6.4 (dns v1 "tcp" counter)
		queries, replies int // tshark with out-of-order reassembly (DESIGN.md §7)
	}{
		{"dns_udp_tcp_random.pcap", 2880, 1440, 1440},
		{"dns_ipv4_tcp.pcap", 420, 210, 210},
		{"dns_ipv6_tcp.pcap", 360, 180, 180},
		{"ecs.pcap", 4, 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			pkts := dnsOnly(loadTCP(t, tc.file))
			var got []pcapMsg
			queries, replies := 0, 0
			r := New(Config{}, func(m *Message) {
				var msg dns.Msg
				if err := msg.Unpack(m.Data); err != nil {
					t.Errorf("message at %d does not parse: %v", m.Packet.TS, err)
					return
				}
				// The QR bit says who sent it, independently of our client heuristics.
				if msg.Response == m.FromClient {
					t.Errorf("message %d: QR %v but FromClient %v", msg.Id, msg.Response, m.FromClient)
				}
				if msg.Response {
					replies++
				} else {
					queries++
				}
				got = append(got, pcapMsg{m.Packet.TS / 1000, msg.Id, msg.Response})
			})
			for i := range pkts {
				feed(r, &pkts[i])
				if i%500 == 0 {
					if err := r.check(); err != nil {
						t.Fatal(err)
					}
				}
			}
			r.FlushAll()
			st := r.Stats()
			if len(got) != tc.messages || queries != tc.queries || replies != tc.replies {
				t.Errorf("%d messages (%d queries, %d replies), want %d (%d, %d)", len(got), queries, replies,
					tc.messages, tc.queries, tc.replies)
			}
			if st.Errors() != 0 || st.BytesDropped != 0 || st.Messages != uint64(tc.messages) {
				t.Errorf("stats %+v", st)
			}
			t.Logf("%d TCP packets, stats %+v", len(pkts), st)

			// tshark, when installed, names the frame that completes each message: ours must
			// carry that frame's timestamp.
			want, err := tsharkMessages(capturePath(t, tc.file))
			if err != nil {
				t.Logf("tshark cross-check skipped: %v", err)
				return
			}
			cmp := func(a, b pcapMsg) int {
				return cmpInt(a.tsMicro, b.tsMicro)*4 + cmpInt(int64(a.id), int64(b.id))*2 + cmpBool(a.qr, b.qr)
			}
			slices.SortFunc(got, cmp)
			slices.SortFunc(want, cmp)
			if !slices.Equal(got, want) {
				n := 0
				for i := range min(len(got), len(want)) {
					if got[i] != want[i] && n < 5 {
						t.Errorf("message %d: got %+v, tshark %+v", i, got[i], want[i])
						n++
					}
				}
				t.Errorf("%d messages, tshark %d", len(got), len(want))
			}
		})
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

// tsharkMessages lists the DNS-over-TCP messages tshark finds, with the time of the frame where
// it completed their reassembly.
func tsharkMessages(path string) ([]pcapMsg, error) {
	bin, err := exec.LookPath("tshark")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bin, "-r", path, "-o", "tcp.reassemble_out_of_order:TRUE",
		"-d", "tcp.port==53000,dns", "-Y", "tcp && dns", "-T", "fields", "-E", "separator=/t",
		"-e", "frame.time_epoch", "-e", "dns.id", "-e", "dns.flags.response").Output()
	if err != nil {
		return nil, fmt.Errorf("tshark: %w", err)
	}
	var msgs []pcapMsg
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("tshark line %q", sc.Text())
		}
		sec, frac, _ := strings.Cut(f[0], ".")
		s, err1 := strconv.ParseInt(sec, 10, 64)
		us, err2 := strconv.ParseInt((frac + "000000")[:6], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("tshark time %q", f[0])
		}
		ids, qrs := strings.Split(f[1], ","), strings.Split(f[2], ",")
		if len(ids) != len(qrs) {
			return nil, fmt.Errorf("tshark line %q", sc.Text())
		}
		for i := range ids {
			id, err := strconv.ParseUint(strings.TrimPrefix(ids[i], "0x"), 16, 16)
			if err != nil {
				return nil, fmt.Errorf("tshark id %q: %w", ids[i], err)
			}
			msgs = append(msgs, pcapMsg{s*1e6 + us, uint16(id), qrs[i] == "1" || qrs[i] == "True"})
		}
	}
	return msgs, sc.Err()
}
