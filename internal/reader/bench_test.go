package reader

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/gen"
)

// benchPackets is the size of the capture generated when PKTVISOR_BENCH_PCAP is not set: big
// enough that per-run setup (handler construction, rendering) is a small share of an op, small
// enough to generate in well under a second.
const benchPackets = 300000

// benchConfig is the resolver-like traffic of scripts/bench.sh scaled to benchPackets: the
// same shares of TCP, IPv6 and rcodes, and the same packets-per-name ratio (30), so the name
// sketches see a similar mix of hits and new names. docs/benchmarks.md explains the values.
func benchConfig() gen.Config {
	c := gen.DefaultConfig()
	c.Packets = benchPackets
	c.Seed = 1
	c.Names = benchPackets / 30
	c.TCP, c.IPv6 = 0.02, 0.3
	c.NXDomain, c.ServFail, c.Refused = 0.05, 0.005, 0.01
	c.Clients = 20000
	c.Fragment, c.Malformed = 0.001, 0.0001
	return c
}

// benchCapture returns the capture to benchmark: $PKTVISOR_BENCH_PCAP when set (scripts/bench.sh
// points it at its 6M-packet capture for profiling), else one generated into the benchmark's
// temp dir.
func benchCapture(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("PKTVISOR_BENCH_PCAP"); p != "" {
		if _, err := os.Stat(p); err != nil {
			b.Fatalf("PKTVISOR_BENCH_PCAP: %v", err)
		}
		return p
	}
	path := filepath.Join(b.TempDir(), "bench.pcap")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := gen.Write(w, benchConfig()); err != nil {
		b.Fatalf("gen: %v", err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkReaderEndToEnd measures what pktvisor-reader does for one file: open, decode,
// dispatch, every default handler, render and JSON-encode (to io.Discard). One op is one whole
// file, so ns/op and allocs/op are per file; pkts/s and allocs/pkt are the comparable figures.
// Run it under `taskset -c 0` for the one-core number (GOMAXPROCS follows the CPU affinity).
func BenchmarkReaderEndToEnd(b *testing.B) {
	file := benchCapture(b)
	for _, workers := range []int{1, 2} {
		b.Run("w"+strconv.Itoa(workers), func(b *testing.B) {
			ctx := context.Background()
			o := Options{File: file, Periods: 1, Workers: workers}
			var frames uint64
			var before, after runtime.MemStats
			b.ReportAllocs()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for b.Loop() {
				res, err := Run(ctx, o)
				if err != nil {
					b.Fatal(err)
				}
				if err := json.NewEncoder(io.Discard).Encode(res.Output); err != nil {
					b.Fatal(err)
				}
				frames += res.Stats.Frames
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			if frames == 0 {
				b.Fatal("no frames read")
			}
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(frames), "allocs/pkt")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(frames), "B/pkt")
		})
	}
}
