package gen

import (
	"bufio"
	"io"
	"testing"
)

// BenchmarkWrite measures generation speed; one op is one packet written (to io.Discard).
func BenchmarkWrite(b *testing.B) {
	ng := DefaultConfig()
	ng.Format = FormatPcapNG
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"defaults", DefaultConfig()},
		{"everything", everything()},
		{"pcapng", ng},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := bc.cfg
			cfg.Packets = max(b.N, 1)
			cfg.RandomSubdomain = 0
			b.ReportAllocs()
			b.ResetTimer()
			tr, err := Write(io.Discard, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(tr.Packets)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(float64(tr.Bytes)/float64(tr.Packets), "B/pkt")
		})
	}
}

// steadyGenerator returns a generator that has run long enough for its buffers, heap and key
// table to reach their working size.
func steadyGenerator(t testing.TB, cfg Config, warm int) *generator {
	cfg.Packets = 1 << 40
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := newGenerator(cfg)
	out, err := newOutput(bufio.NewWriterSize(io.Discard, 1<<20), cfg.Format)
	if err != nil {
		t.Fatal(err)
	}
	g.out = out
	for i := 0; i < warm; i++ {
		g.arrival()
	}
	if g.err != nil {
		t.Fatal(g.err)
	}
	return g
}

// TestSteadyStateAllocs: once warmed up, generating a transaction (UDP or a whole TCP
// connection, with all features on) allocates nothing.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("long warm-up")
	}
	for name, cfg := range map[string]Config{"defaults": DefaultConfig(), "everything": everything()} {
		g := steadyGenerator(t, cfg, 300000)
		if a := testing.AllocsPerRun(20000, func() { g.arrival() }); a != 0 {
			t.Errorf("%s: %v allocations per arrival", name, a)
		}
		if g.err != nil {
			t.Fatal(g.err)
		}
	}
}
