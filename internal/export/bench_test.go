package export

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// benchAccumulator holds 20 dns-like units with 10 top items and 1000 latencies each.
func benchAccumulator(b *testing.B) *Accumulator {
	a := NewAccumulator(0)
	rng := rand.New(rand.NewPCG(1, 1))
	for u := range 20 {
		bk := bucket{total: 1000, udp: 900, card: 300}
		for i := range 10 {
			bk.top = append(bk.top, metrics.TopItem{Name: fmt.Sprintf("name%d.example", i), Estimate: uint64(100 - i)})
		}
		for range 1000 {
			bk.lat = append(bk.lat, float64(rng.IntN(100000)))
			bk.hist = append(bk.hist, uint64(rng.IntN(100000)))
		}
		bt := NewBatch(map[string]string{"policy": "p", "handler": fmt.Sprintf("p-t%d-dns", u), "tap": fmt.Sprintf("t%d", u)})
		bk.render(bt)
		a.Commit(bt, 60)
	}
	return a
}

// BenchmarkCommit: one closed bucket of one dns-like unit, rendered and committed.
func BenchmarkCommit(b *testing.B) {
	a := NewAccumulator(0)
	bk := bucket{total: 1000, udp: 900, card: 300}
	for i := range 10 {
		bk.top = append(bk.top, metrics.TopItem{Name: fmt.Sprintf("name%d.example", i), Estimate: uint64(100 - i)})
	}
	for i := range 1000 {
		bk.lat = append(bk.lat, float64(i*97%100000))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bt := NewBatch(unitDNS)
		bk.render(bt)
		a.Commit(bt, int64(i))
	}
}

func BenchmarkEncodeOTLP(b *testing.B) {
	ss := benchAccumulator(b).Snapshot()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		body, err := EncodeOTLP(ss, Resource{ServiceName: "pktvisord", Instance: "n"}, time.Unix(1, 0), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		n = len(body)
	}
	b.ReportMetric(float64(n), "bytes")
	b.ReportMetric(float64(len(ss)), "series")
}

func BenchmarkEncodeRemoteWrite(b *testing.B) {
	ss := benchAccumulator(b).Snapshot()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(EncodeRemoteWrite(ss, Resource{ServiceName: "pktvisord", Instance: "n"}, time.Now(), false))
	}
	b.ReportMetric(float64(n), "bytes")
	b.ReportMetric(float64(len(ss)), "series")
}
