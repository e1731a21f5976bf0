package export

import (
	"errors"
	"sync"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// fakeAgent is a Source over rings of buckets per unit, as the agent's: ring[0] is the live
// bucket, ring[n] the n-th last closed one, at most size buckets.
type fakeAgent struct {
	mu    sync.Mutex
	size  int
	units map[string]*fakeUnit
	order []string
	fail  error
	// beforeRead, when set, runs before each read of bucket n (the pipeline moving on between
	// two reads of a Collect).
	beforeRead func(n int)
}

type fakeUnit struct {
	labels map[string]string
	ring   []fakeBucket
}

type fakeBucket struct {
	start int64
	total uint64
}

func newFakeAgent(size int, units ...map[string]string) *fakeAgent {
	f := &fakeAgent{size: size, units: map[string]*fakeUnit{}}
	for _, l := range units {
		k := UnitKey(l)
		f.units[k] = &fakeUnit{labels: l, ring: []fakeBucket{{start: 0}}}
		f.order = append(f.order, k)
	}
	return f
}

// add counts n events into every unit's live bucket.
func (f *fakeAgent) add(n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.units {
		u.ring[0].total += n
	}
}

// shift closes every live bucket and opens one starting at start.
func (f *fakeAgent) shift(start int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.units {
		u.ring = append([]fakeBucket{{start: start}}, u.ring...)
		if len(u.ring) > f.size {
			u.ring = u.ring[:f.size]
		}
	}
}

func (f *fakeAgent) remove(labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.units, UnitKey(labels))
}

func (f *fakeAgent) source(n int, each func(map[string]string, RenderFunc) error) error {
	if f.beforeRead != nil {
		f.beforeRead(n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	for _, k := range f.order {
		u, ok := f.units[k]
		if !ok {
			continue
		}
		err := each(u.labels, func(s metrics.Sink) (metrics.RenderedPeriod, error) {
			if n >= len(u.ring) {
				return metrics.RenderedPeriod{}, metrics.CheckBucket(n, f.size, len(u.ring))
			}
			s.Counter(dTotal, u.ring[n].total)
			return metrics.RenderedPeriod{StartTS: u.ring[n].start, Length: 60}, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func total(t *testing.T, c *Collector, labels map[string]string) uint64 {
	t.Helper()
	for _, s := range c.Accumulator().Snapshot() {
		if s.Name == "dns_wire_packets_total_total" && labelsKey(s.Labels) == UnitKey(labels) {
			return s.Int
		}
	}
	return 0
}

// Every closed bucket is counted exactly once, however many closed between two collections
// (while the ring holds them), and the live bucket never.
func TestCollectorEachBucketOnce(t *testing.T) {
	f := newFakeAgent(5, unitDNS, unitDNS2)
	c := NewCollector(f.source, NewAccumulator(0), nil)
	sub := c.Subscribe()
	if n, err := c.Collect(); n != 0 || err != nil {
		t.Fatalf("nothing closed: committed %d, %v", n, err)
	}
	var want uint64
	step := func(events uint64, start int64) {
		f.add(events)
		want += events
		f.shift(start)
	}
	step(10, 60)
	f.add(1000) // live: never counted
	if n, _ := c.Collect(); n != 2 {
		t.Fatalf("committed %d, want 2 (one per unit)", n)
	}
	select {
	case <-sub:
	default:
		t.Fatal("no notification after a commit")
	}
	if n, _ := c.Collect(); n != 0 {
		t.Fatalf("recollect committed %d", n)
	}
	select {
	case <-sub:
		t.Fatal("notified without a commit")
	default:
	}
	want += 1000
	f.shift(120) // the 1000 close
	step(7, 180)
	step(3, 240) // three buckets closed since the last collection
	if n, _ := c.Collect(); n != 6 {
		t.Fatalf("committed %d, want 6", n)
	}
	if got := total(t, c, unitDNS); got != want || total(t, c, unitDNS2) != want {
		t.Fatalf("total %d / %d, want %d", got, total(t, c, unitDNS2), want)
	}
	// More buckets closed than the ring holds: only the ring's are there to count.
	for i := range int64(6) {
		step(1, 300+60*i)
	}
	c.Collect()
	if got := total(t, c, unitDNS); got != want-2 { // 6 closed, the ring of 5 keeps 4 of them
		t.Fatalf("total %d, want %d", got, want-2)
	}
	// A removed unit is forgotten.
	f.remove(unitDNS2)
	c.Collect()
	if total(t, c, unitDNS2) != 0 || total(t, c, unitDNS) == 0 {
		t.Fatal("removed unit kept, or the other lost")
	}
}

// A render error other than a period error is returned and commits nothing.
func TestCollectorError(t *testing.T) {
	f := newFakeAgent(3, unitDNS)
	f.add(1)
	f.shift(60)
	f.fail = errors.New("boom")
	c := NewCollector(f.source, NewAccumulator(0), nil)
	if _, err := c.Collect(); err == nil || !errors.Is(err, f.fail) {
		t.Fatalf("error %v", err)
	}
	f.fail = nil
	if n, err := c.Collect(); n != 1 || err != nil {
		t.Fatalf("after recovery: %d %v", n, err)
	}
}

// A ring that shifts between two reads of one Collect shows a bucket twice; the older bucket
// pushed one deeper must still be counted (the pass goes on while buckets exist, not only
// while they are new): once a newer bucket is committed, an older one never is.
func TestCollectorShiftDuringCollect(t *testing.T) {
	f := newFakeAgent(5, unitDNS)
	c := NewCollector(f.source, NewAccumulator(0), nil)
	f.add(5)
	f.shift(60) // A(0) = 5 closed
	f.add(7)
	f.shift(120) // B(60) = 7 closed
	f.add(11)
	f.beforeRead = func(n int) {
		if n == 2 {
			f.shift(180) // C(120) = 11 closes between the reads of bucket 1 and bucket 2
		}
	}
	c.Collect()
	f.beforeRead = nil
	c.Collect()
	if got := total(t, c, unitDNS); got != 5+7+11 {
		t.Fatalf("total %d, want %d: a bucket was skipped", got, 5+7+11)
	}
}
