package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// counters picks the exact counters of a rendered default bucket (sketch-free keys).
func counters(t *testing.T, s *Stream) string {
	t.Helper()
	out := map[string]any{}
	for i, key := range []string{"packets", "dns", "pcap"} {
		sink := metrics.NewJSON()
		if _, err := s.Render(i, metrics.Selection{}, sink, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"total", "udp", "tcp", "ipv4", "ipv6", "in", "out", "other_l4", "wire_packets", "cardinality", "top_qname2", "top_rcode", "tcp_reassembly_errors"} {
			if v, ok := sink.Root[k]; ok {
				out[key+"."+k] = v
			}
		}
		if x, ok := sink.Root["xact"].(map[string]any); ok {
			out[key+".xact.counts"] = x["counts"]
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// RunFanout gives the counts Run gives with as many workers, when each lane's source carries
// what the dispatcher would route to that worker (a symmetric flow hash, as the kernel's
// fanout does), and stays consistent under concurrent reads, attaches and detaches.
func TestFanoutEqualsDispatcher(t *testing.T) {
	frames := loadGenerated(t, func(c *gen.Config) { c.Packets, c.TCP = 6000, 0.2 })
	const workers = 3
	// Reference: the dispatcher with 3 workers, live clock.
	ref := New(Config{Workers: workers, Live: true}, defaultSpecs(t, 1))
	src := &chanSource{ch: make(chan frame)}
	done := make(chan error, 1)
	go func() { done <- ref.Run(context.Background(), src) }()
	for _, f := range frames {
		src.ch <- f
	}
	close(src.ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := counters(t, ref)

	// Split by the flow hash, as the dispatcher routes.
	var dec decode.Decoder
	var p decode.Packet
	parts := make([][]frame, workers)
	for _, f := range frames {
		lane := 0
		if err := dec.Decode(f.info.Link, f.data, &p); err == nil {
			lane = int(p.FlowHash() % workers)
		}
		parts[lane] = append(parts[lane], f)
	}
	s := New(Config{Workers: workers, Live: true}, defaultSpecs(t, 1))
	base := s.atts[0]
	srcs := make([]Source, workers)
	chans := make([]*chanSource, workers)
	for i := range srcs {
		chans[i] = &chanSource{ch: make(chan frame)}
		srcs[i] = chans[i]
	}
	go func() { done <- s.RunFanout(context.Background(), srcs) }()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if g == 0 {
					a := s.Attach(Group{Specs: defaultSpecs(t, 1)})
					if _, err := a.Render(1, metrics.Selection{}, metrics.NewJSON(), time.Now().UnixNano()); err != nil {
						t.Error(err)
					}
					a.Detach()
				} else {
					if _, err := base.Render(0, metrics.Selection{}, metrics.NewJSON(), time.Now().UnixNano()); err != nil {
						t.Error(err)
					}
					_ = s.Stats()
				}
			}
		}()
	}
	var feed sync.WaitGroup
	for i := range workers {
		feed.Add(1)
		go func() {
			defer feed.Done()
			for _, f := range parts[i] {
				chans[i].ch <- f
			}
			close(chans[i].ch)
		}()
	}
	feed.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if got := counters(t, s); got != want {
		t.Errorf("fanout counts differ from the dispatcher's:\n got %s\nwant %s", got, want)
	}
	if st := s.Stats(); st.Frames != uint64(len(frames)) {
		t.Errorf("Stats().Frames %d, want %d", st.Frames, len(frames))
	}
}

// Periods rotate on the shared boundary: a shift seen by one lane shifts every worker, once.
func TestFanoutShiftsTogether(t *testing.T) {
	s := New(Config{Workers: 2, Live: true}, defaultSpecs(t, 3))
	chans := []*chanSource{{ch: make(chan frame)}, {ch: make(chan frame)}}
	done := make(chan error, 1)
	go func() { done <- s.RunFanout(context.Background(), []Source{chans[0], chans[1]}) }()
	frames := loadGenerated(t, func(c *gen.Config) { c.Packets, c.TCP = 200, 0 })
	start := time.Now().UnixNano()
	// Lane 0 crosses the boundary 61 s later; lane 1 then sends a packet in the new period.
	for i, f := range frames[:100] {
		f.info.TS = start + int64(i)
		chans[0].ch <- f
	}
	// Stats stops the world: lane 0 has then processed what it received (lanes process each
	// packet before they can park). Without it a packet of lane 0 still in flight when lane 1
	// shifts would count in the new period: lanes share the boundary, not a clock.
	s.Stats()
	f := frames[100]
	f.info.TS = start + 61e9
	chans[0].ch <- f
	s.Stats()
	for i, f := range frames[101:] {
		f.info.TS = start + 62e9 + int64(i)
		chans[1].ch <- f
	}
	close(chans[0].ch)
	close(chans[1].ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for b, want := range map[int]uint64{0: 100, 1: 100} {
		sink := metrics.NewJSON()
		if _, err := s.Render(0, metrics.Selection{Bucket: b}, sink, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		if got := sink.Root["total"]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("bucket %d: packets.total %v, want %d", b, got, want)
		}
	}
	if _, err := s.Render(0, metrics.Selection{Bucket: 2}, metrics.NewJSON(), 0); err == nil {
		t.Error("a third bucket exists: the boundary was shifted twice")
	}
}
