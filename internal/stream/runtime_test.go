package stream

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// chanSource is a live-like source: frames arrive on a channel; without one for a while it
// reports ErrIdle, and it ends when the channel closes.
type chanSource struct {
	ch  chan frame
	buf []byte
}

func (c *chanSource) Next() ([]byte, capture.PacketInfo, error) {
	select {
	case f, ok := <-c.ch:
		if !ok {
			return nil, capture.PacketInfo{}, io.EOF
		}
		c.buf = append(c.buf[:0], f.data...)
		return c.buf, f.info, nil
	case <-time.After(2 * time.Millisecond):
		return nil, capture.PacketInfo{}, ErrIdle
	}
}

// Reads, attaches and detaches from other goroutines while a live stream runs must be safe
// (run with -race) and must not lose or double-count packets.
func TestLiveStreamConcurrentControl(t *testing.T) {
	frames := loadGenerated(t, func(c *gen.Config) { c.Packets, c.TCP = 3000, 0.1 })
	for _, workers := range []int{1, 3} {
		src := &chanSource{ch: make(chan frame)}
		s := New(Config{Workers: workers, Live: true}, defaultSpecs(t, 5))
		base := s.atts[0]
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error)
		go func() { done <- s.Run(ctx, src) }()

		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := range 3 {
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
						sink := metrics.NewJSON()
						if _, err := a.Render(0, metrics.Selection{}, sink, time.Now().UnixNano()); err != nil {
							t.Error(err)
						}
						a.Detach()
						continue
					}
					sink := metrics.NewJSON()
					if _, err := base.Render(g%3, metrics.Selection{}, sink, time.Now().UnixNano()); err != nil {
						t.Error(err)
					}
					if _, err := json.Marshal(sink.Root); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		now := time.Now().UnixNano()
		for i, f := range frames {
			f.info.TS = now + int64(i)*1000
			src.ch <- f
		}
		close(src.ch)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		sink := metrics.NewJSON()
		if _, err := base.Render(0, metrics.Selection{}, sink, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		if got := sink.Root["total"]; got != uint64(len(frames)) {
			t.Errorf("workers %d: packets.total %v, want %d", workers, got, len(frames))
		}
		if len(s.atts) != 1 {
			t.Errorf("workers %d: %d attachments left, want 1", workers, len(s.atts))
		}
	}
}
