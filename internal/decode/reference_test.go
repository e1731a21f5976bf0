package decode

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/ip6defrag"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// The reference captures of the C++ pktvisor. They are read with gopacket's pcapgo (not our
// capture package, which imports this one) and never copied into the repository.
const refDir = "/work/shared/testdata/pktvisor"

type refPacket struct {
	data []byte
	ci   gopacket.CaptureInfo
}

func readRef(t testing.TB, name string) (layers.LinkType, []refPacket) {
	t.Helper()
	if _, err := os.Stat(refDir); err != nil {
		t.Skipf("reference captures not available: %v", err)
	}
	f, err := os.Open(filepath.Join(refDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var pkts []refPacket
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pkts = append(pkts, refPacket{data, ci})
	}
	return r.LinkType(), pkts
}

// TestReferenceCaptures decodes every packet of every reference capture, compares each with
// gopacket's full decode, and checks the counts the reference test suite asserts (spec §6.1).
func TestReferenceCaptures(t *testing.T) {
	type counts struct{ total, ipv4, ipv6, udp, tcp, syn, other int }
	want := map[string]counts{
		"dns_ipv4_udp.pcap":       {total: 140, ipv4: 140, udp: 140},
		"dns_ipv4_tcp.pcap":       {total: 2100, ipv4: 2100, tcp: 2100, syn: 420},
		"dns_ipv6_udp.pcap":       {total: 140, ipv6: 140, udp: 140},
		"dns_ipv6_tcp.pcap":       {total: 1800, ipv6: 1800, tcp: 1800, syn: 360},
		"dns_udp_tcp_random.pcap": {total: 16147, ipv4: 16147, tcp: 13176, udp: 2971, syn: 2846},
	}
	if _, err := os.Stat(refDir); err != nil {
		t.Skipf("reference captures not available: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(refDir, "*.pcap"))
	if len(files) == 0 {
		t.Skip("no reference captures")
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			lt, pkts := readRef(t, name)
			var d Decoder
			var c counts
			for i, rp := range pkts {
				p := Packet{TS: rp.ci.Timestamp.UnixNano(), CapLen: rp.ci.CaptureLength, WireLen: rp.ci.Length}
				if err := d.Decode(LinkType(lt), rp.data, &p); err != nil {
					t.Fatalf("packet %d: %v", i+1, err)
				}
				compareView(t, gopacketView(lt, rp.data), &p)
				c.total++
				switch p.L3 {
				case L3IPv4:
					c.ipv4++
				case L3IPv6:
					c.ipv6++
				}
				switch p.L4 {
				case L4UDP:
					c.udp++
				case L4TCP:
					c.tcp++
					if p.TCPFlags&TCPSyn != 0 {
						c.syn++
					}
				default:
					c.other++
				}
			}
			if w, ok := want[name]; ok && c != w {
				t.Fatalf("counts %+v, want %+v", c, w)
			}
		})
	}
}

// TestReferenceDefrag reassembles ecs.pcap, which holds IPv4 and IPv6 fragmented DNS replies,
// and compares every UDP payload with gopacket's ip4defrag/ip6defrag and, when installed, with
// tshark's reassembly.
func TestReferenceDefrag(t *testing.T) {
	lt, pkts := readRef(t, "ecs.pcap")
	var d Decoder
	f := NewDefragmenter(DefragConfig{})
	ours := map[int][]byte{} // frame number → UDP payload (reassembled at the last fragment)
	fragments := 0
	for i, rp := range pkts {
		p := Packet{TS: rp.ci.Timestamp.UnixNano()}
		if err := d.Decode(LinkType(lt), rp.data, &p); err != nil {
			t.Fatalf("packet %d: %v", i+1, err)
		}
		if p.Fragment {
			fragments++
			var out Packet
			if !f.Add(&p, &out) {
				continue
			}
			p = out
		}
		if p.L4 == L4UDP {
			ours[i+1] = append([]byte(nil), p.Payload...)
		}
	}
	s := f.Stats()
	if fragments != 14 || s.Completed != 7 || s.InProgress != 0 {
		t.Fatalf("fragments %d, stats %+v", fragments, s)
	}

	// gopacket's defragmenters as the first oracle.
	d4 := ip4defrag.NewIPv4Defragmenter()
	d6 := ip6defrag.NewIPv6Defragmenter()
	theirs := map[int][]byte{}
	for i, rp := range pkts {
		pkt := gopacket.NewPacket(rp.data, lt, gopacket.Default)
		var udpBytes []byte
		if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			whole, err := d4.DefragIPv4(ip4)
			if err != nil {
				t.Fatal(err)
			}
			if whole == nil || whole.Protocol != layers.IPProtocolUDP {
				continue
			}
			udpBytes = whole.Payload
		} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			if fh, ok := pkt.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment); ok {
				whole := d6.DefragIPv6(ip6, fh)
				if whole == nil {
					continue
				}
				udpBytes = whole.Payload
			} else if u, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
				theirs[i+1] = u.Payload
				continue
			} else {
				continue
			}
		} else {
			continue
		}
		if udp, ok := gopacket.NewPacket(udpBytes, layers.LayerTypeUDP, gopacket.Default).Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			theirs[i+1] = udp.Payload
		}
	}
	if len(ours) == 0 {
		t.Fatal("no UDP messages")
	}
	compareMessages(t, "gopacket", ours, theirs)

	// tshark as the second oracle (slow to start: skipped with -short).
	if testing.Short() {
		t.Log("-short: skipping the tshark comparison")
		return
	}
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed: skipping the tshark comparison")
		return
	}
	out, err := exec.Command(tshark, "-r", filepath.Join(refDir, "ecs.pcap"), "-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE",
		"-Y", "udp", "-T", "fields", "-e", "frame.number", "-e", "udp.payload").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	ts := map[int][]byte{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Split(line, "\t")
		n, err := strconv.Atoi(fields[0])
		if err != nil || len(fields) != 2 {
			t.Fatalf("tshark line %q", line)
		}
		b, err := hex.DecodeString(fields[1])
		if err != nil {
			t.Fatalf("tshark payload %q: %v", fields[1], err)
		}
		ts[n] = b
	}
	compareMessages(t, "tshark", ours, ts)
}

func compareMessages(t *testing.T, oracle string, ours, theirs map[int][]byte) {
	t.Helper()
	if len(ours) != len(theirs) {
		t.Errorf("%d UDP messages, %s %d", len(ours), oracle, len(theirs))
	}
	for n, b := range theirs {
		if !bytes.Equal(ours[n], b) {
			t.Errorf("frame %d: payload differs from %s (%d vs %d bytes)", n, oracle, len(ours[n]), len(b))
		}
	}
}
