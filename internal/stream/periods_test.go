package stream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// A live stream's periods are wall-clock minutes: the first runs from the start to the next
// minute boundary, each later one from a boundary to the next (a stall longer than a minute
// makes one longer period that still ends on a boundary), with the dispatcher and with fanout
// lanes. Packets are stamped ahead of the wall clock so that idle ticks cannot interfere.
func TestLivePeriodsOnMinuteBoundaries(t *testing.T) {
	frames := loadGenerated(t, func(c *gen.Config) { c.Packets, c.TCP = 5, 0 })
	base := (time.Now().Unix()/60 + 5) * 60 // a minute boundary 4–5 minutes ahead
	at := []float64{30, 59.9, 60.2, 185, 190}
	wantTotals := []uint64{2, 1, 2} // [base, base+60), [base+60, base+180), [base+180, …)
	wantPeriods := []metrics.RenderedPeriod{{StartTS: base, Length: 60}, {StartTS: base + 60, Length: 120}}
	for _, mode := range []string{"dispatcher-1", "dispatcher-3", "fanout-2"} {
		t.Run(mode, func(t *testing.T) {
			var s *Stream
			chans := []*chanSource{{ch: make(chan frame)}, {ch: make(chan frame)}}
			done := make(chan error, 1)
			switch mode {
			case "dispatcher-1", "dispatcher-3":
				s = New(Config{Workers: map[string]int{"dispatcher-1": 1, "dispatcher-3": 3}[mode], Live: true}, defaultSpecs(t, 5))
				go func() { done <- s.Run(context.Background(), chans[0]) }()
			default:
				s = New(Config{Workers: 2, Live: true}, defaultSpecs(t, 5))
				go func() { done <- s.RunFanout(context.Background(), []Source{chans[0], chans[1]}) }()
			}
			started := time.Now().Unix()
			for i, sec := range at {
				f := frames[i]
				f.info.TS = base*1e9 + int64(sec*1e9)
				lane := 0 // the dispatcher reads only chans[0]; fanout lanes take turns
				if mode == "fanout-2" {
					lane = i % 2
				}
				chans[lane].ch <- f
				s.Stats() // each packet processed before the next (lanes share a boundary, not a clock)
			}
			close(chans[0].ch)
			close(chans[1].ch)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// Bucket 3 is the first, partial period: from the start to the first boundary.
			sink := metrics.NewJSON()
			p, err := s.Render(0, metrics.Selection{Bucket: 3}, sink, 0)
			if err != nil {
				t.Fatal(err)
			}
			if p.StartTS < started-1 || p.StartTS > started+1 || (p.StartTS+p.Length)%60 != 0 {
				t.Errorf("first period %+v: want a start near %d and an end on a minute boundary", p, started)
			}
			for b := 2; b >= 0; b-- {
				sink := metrics.NewJSON()
				p, err := s.Render(0, metrics.Selection{Bucket: b}, sink, 0)
				if err != nil {
					t.Fatal(err)
				}
				if got := sink.Root["total"]; fmt.Sprint(got) != fmt.Sprint(wantTotals[2-b]) {
					t.Errorf("bucket %d: total %v, want %d", b, got, wantTotals[2-b])
				}
				if b > 0 && p != wantPeriods[2-b] {
					t.Errorf("bucket %d: period %+v, want %+v", b, p, wantPeriods[2-b])
				}
				if b == 0 && p.StartTS != base+180 {
					t.Errorf("live bucket starts at %d, want %d", p.StartTS, base+180)
				}
			}
		})
	}
}
