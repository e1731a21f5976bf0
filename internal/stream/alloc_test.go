package stream

import (
	"bytes"
	"io"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"

	_ "github.com/pktvisor-go/pktvisor/internal/handler/dns"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/net"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/pcap"
)

type frame struct {
	data []byte
	info capture.PacketInfo
}

// loadGenerated writes a generated capture into memory and reads its frames back.
func loadGenerated(t testing.TB, mod func(*gen.Config)) []frame {
	t.Helper()
	cfg := gen.DefaultConfig()
	mod(&cfg)
	var buf bytes.Buffer
	if _, err := gen.Write(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	r, err := capture.NewReader(&buf, "generated")
	if err != nil {
		t.Fatal(err)
	}
	var frames []frame
	for {
		data, info, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame{append([]byte(nil), data...), info})
	}
	return frames
}

func defaultSpecs(t testing.TB, periods uint64) []handler.Spec {
	t.Helper()
	var specs []handler.Spec
	for _, typ := range []string{"net", "dns", "pcap"} {
		f, ok := handler.Lookup(typ, "1.0")
		if !ok {
			t.Fatalf("handler %s not registered", typ)
		}
		sp, err := f(config.Map{"num_periods": periods, "recorded_stream": true})
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	return specs
}

// TestHotPathAllocs proves the rule of DESIGN.md §5: once the names are in the sketches, the
// path decode → dispatch → TCP reassembly → DNS parse → net/dns/pcap handlers allocates
// nothing per packet.
func TestHotPathAllocs(t *testing.T) {
	frames := loadGenerated(t, func(c *gen.Config) {
		c.Packets, c.Names, c.TCP, c.IPv6, c.TCPSplit, c.QPS = 20000, 500, 0.1, 0.3, 0.3, 1e6
	})
	hs, err := hostspec.Parse("10.0.0.0/8,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Workers: 1, HostSpec: hs}, defaultSpecs(t, 1))
	for _, f := range frames { // warm up: every name, port and flow seen once
		s.packet(f.data, f.info)
	}
	i := 0
	allocs := testing.AllocsPerRun(len(frames), func() {
		f := &frames[i%len(frames)]
		s.packet(f.data, f.info)
		i++
	})
	if allocs != 0 {
		t.Errorf("%.3f allocations per packet, want 0", allocs)
	}
}

// BenchmarkStream measures packets per second through one worker, all handlers on.
func BenchmarkStream(b *testing.B) {
	frames := loadGenerated(b, func(c *gen.Config) {
		c.Packets, c.Names, c.TCP, c.IPv6, c.QPS = 200000, 20000, 0.05, 0.2, 50000
	})
	hs, _ := hostspec.Parse("10.0.0.0/8,fd00::/8")
	s := New(Config{Workers: 1, HostSpec: hs}, defaultSpecs(b, 1))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f := &frames[i%len(frames)]
		s.packet(f.data, f.info)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// A capture filter that cannot be compiled for a later link type (a pcapng file may mix link
// types) rejects that type's frames instead of failing the run.
func TestFilterPerLinkType(t *testing.T) {
	frames := loadGenerated(t, func(c *gen.Config) { c.Packets, c.TCP = 200, 0 })
	s := New(Config{Workers: 1, BPF: "ether src not 00:00:00:00:00:01 and udp"}, defaultSpecs(t, 1))
	for _, f := range frames {
		s.packet(f.data, f.info)
		raw := f.info
		raw.Link = decode.LinkRaw // the same packet without its Ethernet header
		raw.CapLen -= 14
		s.packet(f.data[14:], raw)
	}
	s.finish()
	st := s.Stats()
	if st.Frames != uint64(2*len(frames)) || st.BPFFiltered != uint64(len(frames)) {
		t.Errorf("frames %d, filtered %d; want %d, %d (every raw-IP frame)", st.Frames, st.BPFFiltered, 2*len(frames), len(frames))
	}
}
