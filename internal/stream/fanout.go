package stream

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// Fanout mode (RunFanout): the kernel spreads an interface's packets over one capture socket
// per worker (PACKET_FANOUT_HASH, a symmetric flow hash, so a query and its reply and both
// sides of a TCP connection reach the same socket), and each worker reads its own socket in
// its own goroutine — a lane — with its own decoder, defragmenter and clock: no dispatcher,
// no queue, no copy. Control operations (reads, attach, detach, period shifts) stop the world:
// every lane parks between two packets while one goroutine runs the operation.
//
// Lanes share the period boundary, not a clock: the first lane whose packet crosses it shifts
// every worker; a packet another lane was processing at that moment counts in the new period
// (microseconds of skew at live rates, where the dispatcher's single clock had none). IPv4
// fragments are reassembled by the kernel before the fanout (PACKET_FANOUT_FLAG_DEFRAG); IPv6
// fragments hash on addresses only and may reach another lane than their flow's other
// packets, which only matters for DNS transactions carried in fragmented IPv6 datagrams.

// laneCtl is the stop-the-world protocol of fanout lanes.
type laneCtl struct {
	flag    atomic.Bool // set while a stop is requested; lanes check it between packets
	mu      sync.Mutex
	cond    *sync.Cond
	pausing bool
	parked  int // lanes parked (or inside run themselves)
	active  int // lanes still reading

	nextShift atomic.Int64 // seconds: the shared period boundary
}

func newLaneCtl(n int) *laneCtl {
	c := &laneCtl{active: n}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// run stops every lane, runs fn, and lets them go. A lane calling it (lane true) counts as
// parked while it waits.
func (c *laneCtl) run(fn func(), lane bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if lane {
		c.parked++
		c.cond.Broadcast()
		defer func() { c.parked-- }()
	}
	for c.pausing { // another stop is running: wait for it (parked, if a lane)
		c.cond.Wait()
	}
	c.pausing = true
	c.flag.Store(true)
	for c.parked < c.active {
		c.cond.Wait()
	}
	fn()
	c.pausing = false
	c.flag.Store(false)
	c.cond.Broadcast()
}

// park holds a lane while a stop is running.
func (c *laneCtl) park() {
	c.mu.Lock()
	c.parked++
	c.cond.Broadcast()
	for c.pausing {
		c.cond.Wait()
	}
	c.parked--
	c.mu.Unlock()
}

// exit removes a lane that stopped reading.
func (c *laneCtl) exit() {
	c.mu.Lock()
	c.active--
	c.cond.Broadcast()
	c.mu.Unlock()
}

// RunFanout reads one live source per worker (len(srcs) must equal the number of workers),
// each in its own goroutine, until every source ends or ctx is done. Every source must
// deliver both directions of each flow (a PACKET_FANOUT_HASH group does). Periods start now
// and rotate on the shared wall-clock boundary. Reads and control operations from other
// goroutines go through Do as with Run.
func (s *Stream) RunFanout(ctx context.Context, srcs []Source) error {
	if len(srcs) != len(s.workers) {
		return errors.New("stream: RunFanout needs one source per worker")
	}
	lanes := make([]*dispatcher, len(srcs))
	lanes[0] = s.d
	for i := 1; i < len(lanes); i++ {
		lanes[i] = &dispatcher{rng: *metrics.NewJSF32(uint32(i + 1)), defrag: decode.NewDefragmenter(s.cfg.Defrag)}
	}
	ctl := newLaneCtl(len(srcs))
	s.mu.Lock()
	s.running, s.lanes, s.laneDs = true, ctl, lanes
	s.mu.Unlock()

	now := time.Now().UnixNano()
	s.begin(now) // no lane runs yet: begin's control runs directly
	for _, d := range lanes[1:] {
		d.started, d.stats.FirstTS, d.stats.LastTS, d.nextShift = true, now, now, s.d.nextShift
	}
	ctl.nextShift.Store(s.d.nextShift)

	errs := make([]error, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ctl.exit()
			errs[i] = s.runLane(ctx, ctl, i, lanes[i], src)
		}()
	}
	wg.Wait()

	// Every lane is gone: finish as Run does, under mu (a Do that comes now waits, then runs
	// directly on the finished stream).
	s.mu.Lock()
	for _, d := range lanes[1:] {
		s.d.stats.LastTS = max(s.d.stats.LastTS, d.stats.LastTS)
	}
	s.finish()
	s.running = false
	s.mu.Unlock()
	close(s.stopped)
	return errors.Join(errs...)
}

// runLane is one lane's loop.
func (s *Stream) runLane(ctx context.Context, ctl *laneCtl, lane int, d *dispatcher, src Source) error {
	lastStats := time.Now()
	for n := 0; ; n++ {
		if ctl.flag.Load() {
			ctl.park()
		}
		if n&63 == 0 && ctx.Err() != nil {
			return nil
		}
		data, info, err := src.Next()
		if err != nil {
			if isIdle(err) {
				if ctx.Err() != nil {
					return nil
				}
				s.laneIdle(d, lane, time.Now().UnixNano())
				s.lanePollDrops(d, lane, src, &lastStats, true)
				continue
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		s.packetOn(d, lane, data, info)
		if n&1023 == 0 {
			s.lanePollDrops(d, lane, src, &lastStats, false)
		}
	}
}

// laneShift is a lane's period boundary: the first lane past it shifts every worker (the
// world stopped); the others find it moved.
func (s *Stream) laneShift(d *dispatcher, ts int64) {
	ctl := s.lanes
	next := ctl.nextShift.Load()
	if next > d.nextShift {
		d.nextShift = next // another lane shifted already
		if ts/1e9 < next {
			return
		}
	}
	at := s.shiftTime(ts)
	if !ctl.nextShift.CompareAndSwap(next, s.boundaryAfter(at)) {
		d.nextShift = ctl.nextShift.Load()
		return
	}
	d.nextShift = s.boundaryAfter(at)
	ctl.run(func() { s.shiftAll(at) }, true)
}

// laneIdle advances a lane's clock without traffic: its own worker's rates tick, and the
// period rotates on wall time.
func (s *Stream) laneIdle(d *dispatcher, lane int, now int64) {
	if now < d.stats.LastTS {
		return
	}
	d.stats.LastTS = now
	if s.shifting && now/1e9 >= d.nextShift {
		s.laneShift(d, now)
	}
	for _, hs := range s.instances {
		hs[lane].Tick(now)
	}
}

// lanePollDrops reports a lane's socket drops to its own worker; the interface's drops are
// the same counter on every socket, so only lane 0 reports them.
func (s *Stream) lanePollDrops(d *dispatcher, lane int, src Source, last *time.Time, force bool) {
	dOS, dIf := d.newDrops(src, last, force)
	if lane != 0 {
		dIf = 0
	}
	if dOS == 0 && dIf == 0 {
		return
	}
	for _, h := range s.workers[lane].inputHs {
		h.Drops(dOS, dIf)
	}
}

// laneStats sums the lanes' counters into st (the world stopped).
func (s *Stream) laneStats(st *Stats) {
	for _, d := range s.laneDs[1:] {
		st.Frames += d.stats.Frames
		st.BPFFiltered += d.stats.BPFFiltered
		st.Malformed += d.stats.Malformed
		st.UnknownLink += d.stats.UnknownLink
		st.Fragments += d.stats.Fragments
		st.Reassembled += d.stats.Reassembled
		st.FirstTS = min(st.FirstTS, d.stats.FirstTS)
		st.LastTS = max(st.LastTS, d.stats.LastTS)
		st.Defrag = st.Defrag.Add(d.defrag.Stats())
	}
}
