package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// RenderFunc renders one unit's bucket into a sink and returns its period; a
// *metrics.PeriodError means the bucket does not exist (yet).
type RenderFunc = func(metrics.Sink) (metrics.RenderedPeriod, error)

// Source renders bucket n (1 = the last closed one) of every unit of the agent: it calls each
// once per unit, with the unit's labels (policy, handler, tap) and its render function, and
// returns each's error. (*agent.Agent).ExportClosed is one.
type Source func(n int, each func(labels map[string]string, render RenderFunc) error) error

// maxRing is the most buckets a ring keeps (the agent caps num_periods at 10): no closed
// bucket lies beyond it.
const maxRing = 10

// Collector feeds an Accumulator with the closed buckets of a Source, each exactly once.
type Collector struct {
	src Source
	acc *Accumulator
	log *slog.Logger

	mu   sync.Mutex // serializes Collect
	subs struct {
		sync.Mutex
		chans []chan struct{}
	}
}

// NewCollector returns a collector of src into acc.
func NewCollector(src Source, acc *Accumulator, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{src: src, acc: acc, log: log}
}

// Accumulator returns the collector's accumulator.
func (c *Collector) Accumulator() *Accumulator { return c.acc }

// Subscribe returns a channel that receives a value (coalesced: capacity 1) after every
// Collect that committed at least one bucket.
func (c *Collector) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.subs.Lock()
	c.subs.chans = append(c.subs.chans, ch)
	c.subs.Unlock()
	return ch
}

type staged struct {
	b     *Batch
	start int64
}

// Collect renders the closed buckets not yet accumulated and commits them, oldest first per
// unit, and returns how many it committed. Every closed bucket every unit still holds is
// rendered (bucket 1, 2, … until no unit has one that deep), so buckets closed since the last
// call (several, for a capture file read at full speed or a slow poll) are all counted while
// the ring still holds them. The reads are not atomic — the pipeline runs between them — so a
// ring that shifts during a pass shows a bucket twice (kept once) rather than hiding one:
// stopping at the first depth with nothing new would miss an older bucket pushed past it.
// Units that no longer exist are dropped from the accumulator.
func (c *Collector) Collect() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pending := map[string][]staged{}
	seen := map[string]bool{}
	for n := 1; n < maxRing; n++ {
		exists := false
		err := c.src(n, func(labels map[string]string, render RenderFunc) error {
			b := NewBatch(labels)
			if n == 1 {
				seen[b.unit] = true
			}
			rp, err := render(b)
			if err != nil {
				var pe *metrics.PeriodError
				if errors.As(err, &pe) {
					return nil
				}
				return err
			}
			exists = true
			if !c.acc.IsNew(b.unit, rp.StartTS) ||
				slices.ContainsFunc(pending[b.unit], func(s staged) bool { return s.start == rp.StartTS }) {
				return nil
			}
			pending[b.unit] = append(pending[b.unit], staged{b, rp.StartTS})
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("export: rendering bucket %d: %w", n, err)
		}
		if !exists {
			break
		}
	}
	committed := 0
	for _, bs := range pending {
		slices.SortFunc(bs, func(x, y staged) int { return int(x.start - y.start) })
		for _, s := range bs {
			if c.acc.Commit(s.b, s.start) {
				committed++
			}
		}
	}
	c.acc.Retain(func(unit string) bool { return seen[unit] })
	if committed > 0 {
		c.subs.Lock()
		for _, ch := range c.subs.chans {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		c.subs.Unlock()
	}
	return committed, nil
}

// Run calls Collect every poll until ctx is done; errors are logged (rate-limited).
func (c *Collector) Run(ctx context.Context, poll time.Duration) {
	lim := newLogLimiter(time.Minute)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := c.Collect(); err != nil && lim.allow() {
			c.log.Warn("export: collecting closed buckets failed", "err", err, "suppressed", lim.suppressed())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logLimiter lets one message through per period and counts the others.
type logLimiter struct {
	mu     sync.Mutex
	period time.Duration
	last   time.Time
	n      int
	shown  int
}

func newLogLimiter(period time.Duration) *logLimiter { return &logLimiter{period: period} }

func (l *logLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.period {
		l.n++
		return false
	}
	l.last = now
	l.shown, l.n = l.n, 0
	return true
}

// suppressed is the number of messages dropped before the one just allowed.
func (l *logLimiter) suppressed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shown
}
