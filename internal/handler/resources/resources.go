// Package resources is the `input_resources` stream handler, version 1.0 (JSON key
// "input_resources"; Prometheus prefixes "base" and "resources"): what an input stream costs —
// CPU and resident memory quantiles over periodic samples — and how many policies and
// handlers use it. See README.md beside this file.
//
// The handler consumes no packets (Wants is 0). The agent creates it in the automatic
// `<input>-resources` policy and feeds the instance of worker 0 from outside the packet path,
// at the stream's barrier, through the Feeder interface; ReadProcess and CPUMeter are the
// sampler it uses every SampleInterval.
//
// Design choices:
//
//   - Policy and handler counts arrive as running totals (SetCounts), not as ±1 deltas as in
//     the reference: a bucket keeps the latest totals it saw, and a period shift re-applies
//     them to the new live bucket. Each application carries a sequence number, and a merge
//     keeps the counts with the highest one, so "the newest bucket's counts" holds whatever
//     order buckets or workers are merged in (the reference relied on merge order).
//   - Only an instance that has been fed counts shift events, so the idle instances of the
//     other workers add nothing to `total` when the merged view is rendered.
//   - CPU and memory are process-wide: Go schedules goroutines over OS threads, so there is
//     no per-input thread to measure as the reference did. Reading /proc needs no cgo and no
//     syscall package, so the package builds everywhere; elsewhere ReadProcess returns an
//     error and CPUMeter reports 0 (the reference reported 0 off Linux too).
//   - No dependencies beyond the standard library and the project's metrics/sketch packages.
package resources

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Schema is the handler's JSON object key.
const Schema = "input_resources"

// Prometheus prefixes: the base metrics keep the reference's default "base", the others
// are under "resources".
const (
	PrefixBase      = "base"
	PrefixResources = "resources"
)

// SampleInterval is how often the agent should call Sample: the reference's
// MEASURE_INTERVAL (5 s). Sampling is cheap (two small /proc reads); the interval only sets
// the resolution of the CPU averages.
const SampleInterval = 5 * time.Second

func init() { handler.Register("input_resources", "1.0", New) }

// ConfigKeys are the handler's own keys (besides the window keys).
var ConfigKeys = []string{"recorded_stream"}

// Feeder is what the agent calls on worker 0's instance (type-asserting the handler.Handler
// built by NewInstance), at the stream's barrier. tsNs is the stream clock in Unix
// nanoseconds (the same clock Shift and Tick use: packet time for files, wall time for
// live inputs), so per-second event rates and periods agree.
type Feeder interface {
	// Sample records one resource sample: CPU use in percent of one CPU since the previous
	// sample (CPUMeter.Percent) and resident memory in bytes.
	Sample(tsNs int64, cpuPercent float64, rssBytes uint64)
	// SetCounts records the running totals of policies and handlers using the input, after a
	// policy was added or removed (floor them at 0 before calling).
	SetCounts(tsNs int64, policies, handlers uint64)
}

// Spec is a validated input_resources handler configuration.
type Spec struct{ common handler.Common }

// New validates an input_resources module configuration. The handler has no metric groups.
func New(cfg config.Map) (handler.Spec, error) {
	c, err := handler.ParseCommon(cfg, ConfigKeys, nil)
	if err != nil {
		// Unwrapped: users and tests match the reference's exact text.
		return nil, err
	}
	c.Groups = 1
	return &Spec{common: c}, nil
}

// Schema implements handler.Spec.
func (s *Spec) Schema() string { return Schema }

// Window implements handler.Spec.
func (s *Spec) Window() metrics.Window { return s.common.Window }

type bucket struct {
	events, deepSamples uint64
	eventRate           sketch.Rate
	cpu                 sketch.Quantiles // percent
	memory              sketch.Quantiles // bytes

	// policies and handlers are the totals of the latest application in this bucket; seq
	// orders applications (0 = none), so a merge keeps the newest.
	policies, handlers uint64
	seq                uint64
}

// Reset empties the bucket, keeping the sketches' memory.
func (b *bucket) Reset() {
	b.events, b.deepSamples = 0, 0
	b.eventRate.Reset()
	b.cpu.Reset()
	b.memory.Reset()
	b.policies, b.handlers, b.seq = 0, 0, 0
}

// Merge adds o's events and samples; the counts are not summed but taken from whichever
// bucket applied them last (the newest bucket of a window, the fed worker's instance).
func (b *bucket) Merge(o *bucket) {
	b.events += o.events
	b.deepSamples += o.deepSamples
	b.eventRate.Merge(&o.eventRate)
	b.cpu.Merge(&o.cpu)
	b.memory.Merge(&o.memory)
	if o.seq > b.seq {
		b.policies, b.handlers, b.seq = o.policies, o.handlers, o.seq
	}
}

// Instance is the handler on one worker. Only worker 0's instance is fed.
type Instance struct {
	handler.Nop
	spec *Spec
	ring *metrics.Ring[bucket, *bucket]
	rng  *metrics.JSF32

	fed                bool   // Sample or SetCounts was called: this instance counts shift events
	policies, handlers uint64 // running totals, re-applied at every shift
	seq                uint64
}

var _ Feeder = (*Instance)(nil)

// NewInstance implements handler.Spec.
func (s *Spec) NewInstance(*handler.Env) handler.Handler {
	return &Instance{
		spec: s,
		ring: metrics.NewRing(s.common.Window.NumPeriods, 0, func() *bucket { return &bucket{} }),
		// The reference seeded each metrics manager's generator with 1.
		rng: metrics.NewJSF32(1),
	}
}

// Wants implements handler.Handler: no packet events.
func (h *Instance) Wants() handler.Wants { return 0 }

// Start implements handler.Handler.
func (h *Instance) Start(tsNs int64) { h.ring.SetStart(tsNs) }

// End implements handler.Handler.
func (h *Instance) End(tsNs int64) { h.ring.Close(tsNs) }

// Tick implements handler.Handler: idle wall-clock seconds complete the event rate.
func (h *Instance) Tick(tsNs int64) { h.ring.Live().eventRate.Tick(tsNs / 1e9) }

// Shift implements handler.Handler. The new live bucket starts with the running totals, and
// that re-application is an event, as in the reference.
func (h *Instance) Shift(tsNs int64) {
	h.ring.Shift(tsNs)
	if h.ring.NumPeriods() > 1 && h.fed {
		h.applyCounts(tsNs)
	}
}

// Sample implements Feeder.
func (h *Instance) Sample(tsNs int64, cpuPercent float64, rssBytes uint64) {
	h.fed = true
	b := h.event(tsNs)
	// Invalid percentages (NaN, negative, infinite) are dropped by the sketch.
	b.cpu.Add(cpuPercent)
	b.memory.Add(float64(rssBytes))
}

// SetCounts implements Feeder.
func (h *Instance) SetCounts(tsNs int64, policies, handlers uint64) {
	h.fed = true
	h.policies, h.handlers = policies, handlers
	h.applyCounts(tsNs)
}

func (h *Instance) applyCounts(tsNs int64) {
	b := h.event(tsNs)
	h.seq++
	b.policies, b.handlers, b.seq = h.policies, h.handlers, h.seq
}

// event counts one base event in the live bucket and returns it. As in the reference, the
// deep-sampling draw only decides deep_samples: a resource sample is recorded either way.
func (h *Instance) event(tsNs int64) *bucket {
	b := h.ring.Live()
	b.events++
	if rate := h.spec.common.Window.DeepSampleRate; rate >= 100 || handler.Deep(rate, h.rng.Next()) {
		b.deepSamples++
	}
	b.eventRate.Add(tsNs/1e9, 1)
	return b
}

var (
	dEventRate   = &metrics.Desc{Schema: PrefixBase, Name: []string{"event_rate"}, Help: "Rate of events"}
	dTotal       = &metrics.Desc{Schema: PrefixBase, Name: []string{"total"}, Help: "Total number of events"}
	dDeepSamples = &metrics.Desc{Schema: PrefixBase, Name: []string{"deep_samples"}, Help: "Total number of deep samples"}
	dCPU         = &metrics.Desc{Schema: PrefixResources, Name: []string{"cpu_usage"}, Help: "Quantiles of 5s averages of percent cpu usage by the input stream"}
	dMemory      = &metrics.Desc{Schema: PrefixResources, Name: []string{"memory_bytes"}, Help: "Quantiles of 5s averages of memory usage (in bytes) by the input stream"}
	dPolicies    = &metrics.Desc{Schema: PrefixResources, Name: []string{"policy_count"}, Help: "Total number of policies attached to the input stream"}
	dHandlers    = &metrics.Desc{Schema: PrefixResources, Name: []string{"handler_count"}, Help: "Total number of handlers attached to the input stream"}
)

// Render implements handler.Spec, in the reference's Prometheus order (base metrics first).
func (s *Spec) Render(instances []handler.Handler, sel metrics.Selection, sink metrics.Sink, nowNs int64) (metrics.RenderedPeriod, error) {
	b, rp, err := handler.MergeInstances(instances, func(h *Instance) *metrics.Ring[bucket, *bucket] { return h.ring },
		sel, s.common.Recorded, nowNs)
	if err != nil {
		// Unwrapped: the REST API shows the reference's period error text as is.
		return rp, err
	}
	sink.Rate(dEventRate, &b.eventRate, rp.Live)
	sink.Counter(dTotal, b.events)
	sink.Counter(dDeepSamples, b.deepSamples)
	sink.Quantiles(dCPU, &b.cpu, true)
	sink.Quantiles(dMemory, &b.memory, false)
	sink.Counter(dPolicies, b.policies)
	sink.Counter(dHandlers, b.handlers)
	return rp, nil
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which the kernel fixes
// at 100 on every architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const userHZ = 100

// Files read by ReadProcess (variables so tests can point them at fixtures).
var (
	statPath  = "/proc/self/stat"
	statmPath = "/proc/self/statm"
)

// ErrMalformed is wrapped by ReadProcess when a /proc file does not have the expected shape.
var ErrMalformed = errors.New("malformed /proc data")

// ReadProcess returns the CPU time (user + system, all threads) the process has used so far,
// in seconds, and its resident set size in bytes (VmRSS). It reads /proc (Linux); elsewhere
// it returns an error wrapping fs.ErrNotExist.
func ReadProcess() (cpuSeconds float64, rssBytes uint64, err error) {
	stat, err := os.ReadFile(statPath)
	if err != nil {
		return 0, 0, fmt.Errorf("resources: reading CPU time: %w", err)
	}
	ticks, err := parseStat(stat)
	if err != nil {
		return 0, 0, fmt.Errorf("resources: %s: %w", statPath, err)
	}
	statm, err := os.ReadFile(statmPath)
	if err != nil {
		return 0, 0, fmt.Errorf("resources: reading resident memory: %w", err)
	}
	pages, err := parseStatm(statm)
	if err != nil {
		return 0, 0, fmt.Errorf("resources: %s: %w", statmPath, err)
	}
	page := uint64(os.Getpagesize())
	rss := pages * page
	if page != 0 && rss/page != pages {
		rss = math.MaxUint64
	}
	return float64(ticks) / userHZ, rss, nil
}

// parseStat returns utime + stime (fields 14 and 15, in clock ticks) of a /proc/<pid>/stat
// line. The command name (field 2) is in parentheses and may itself hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: no command name", ErrMalformed)
	}
	// After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th.
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: %d fields after the command name", ErrMalformed, len(f))
	}
	utime, err := strconv.ParseUint(string(f[11]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: utime: %w", ErrMalformed, err)
	}
	stime, err := strconv.ParseUint(string(f[12]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: stime: %w", ErrMalformed, err)
	}
	if utime+stime < utime {
		return math.MaxUint64, nil
	}
	return utime + stime, nil
}

// parseStatm returns the resident page count (second field) of /proc/<pid>/statm.
func parseStatm(b []byte) (uint64, error) {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, fmt.Errorf("%w: %d fields", ErrMalformed, len(f))
	}
	n, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: resident: %w", ErrMalformed, err)
	}
	return n, nil
}

// processStart approximates the process start (package initialization runs first thing), the
// baseline of a CPUMeter's first reading.
var processStart = time.Now()

// CPUMeter turns the process's cumulative CPU time into a percentage of one CPU over the time
// since the previous call. The zero value is ready; its first call averages over the time
// since the process started. A process using several cores reports more than 100, as top
// does. Not safe for concurrent use.
type CPUMeter struct {
	// read replaces ReadProcess in tests.
	read func() (float64, uint64, error)

	started bool
	lastAt  time.Time
	lastCPU float64
	last    float64
}

// Percent returns the CPU use in percent of one CPU since the previous call (0 where
// ReadProcess fails, as the reference reported off Linux). A call whose now is not after the
// previous one returns the previous result.
func (m *CPUMeter) Percent(now time.Time) float64 {
	read := m.read
	if read == nil {
		read = ReadProcess
	}
	cpu, _, err := read()
	if err != nil {
		return 0
	}
	return m.update(now, cpu)
}

func (m *CPUMeter) update(now time.Time, cpuSeconds float64) float64 {
	if !m.started {
		m.started = true
		m.lastAt, m.lastCPU = processStart, 0
	}
	dt := now.Sub(m.lastAt).Seconds()
	if dt <= 0 {
		return m.last
	}
	// CPU time never decreases; a smaller reading (a fake, or a wrapped counter) counts 0.
	used := max(cpuSeconds-m.lastCPU, 0)
	m.last = used / dt * 100
	m.lastAt, m.lastCPU = now, cpuSeconds
	return m.last
}
