// Package agent is pktvisord's core: the registry of taps, input streams and policies, their
// life cycle at start-up (--config, the command line's default policy) and at run time (the
// admin API), and the rendering of their metrics as the reference's JSON and Prometheus text.
//
// Naming follows the reference (spec §1.3): an input stream is `<tap>-<hash>` of its effective
// configuration and is shared by every policy selecting that tap with the same configuration
// and filter; a handler instance is `<policy>-<tap>-<module>`; a new input gets an automatic
// `<input>-resources` policy with one input_resources handler, removed with the input when its
// last policy goes.
//
// Concurrency: a.mu guards the registries; rendering takes a snapshot of a policy under the
// read lock and renders outside it, through the stream's barrier (stream.Do), so a slow read
// never blocks the packet path for longer than one render nor the admin API at all. A policy
// is created completely (inputs opened, handlers built) before anything starts; any failure
// undoes what it created, so no half-created input is left behind.
//
// Inputs: `pcap` (internal/capture: AF_PACKET or a capture file) and `dnstap` (a Frame
// Streams file, or internal/dnstap's socket server on a unix path or TCP address, whose
// batches feed the stream as a live source that reports idleness every 100 ms so the clock
// and the admin API keep working without senders).
package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/policy"
	"github.com/pktvisor-go/pktvisor/internal/stream"

	// The handlers register themselves.
	_ "github.com/pktvisor-go/pktvisor/internal/handler/dns"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/net"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/pcap"
)

// Options configure the agent (pktvisord's command line and visor.config).
type Options struct {
	Periods       int // default window num_periods
	MaxDeepSample int // default window deep_sample_rate
	Workers       int // per input stream; 0 = 1
	City, ASN     *geo.DB
	GeoCacheSize  int
	PromInstance  string
	Version       string
	Log           *slog.Logger
}

// AddHealth registers fn to append more pktvisord_* families (text exposition format) to
// /metrics after the agent's own, e.g. the push exporter's counters.
func (a *Agent) AddHealth(fn func(w io.Writer)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.health = append(a.health, fn)
}

// Error kinds the API maps to status codes.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	ErrInvalid  = errors.New("invalid request")
)

// apiError carries a reference error message and its kind.
type apiError struct {
	kind error
	msg  string
}

func (e *apiError) Error() string   { return e.msg }
func (e *apiError) Unwrap() []error { return []error{e.kind} }

func notFound(msg string) error { return &apiError{ErrNotFound, msg} }

// Agent holds the taps, inputs and policies.
type Agent struct {
	opts      Options
	log       *slog.Logger
	city, asn *geo.DB
	started   time.Time

	mu       sync.RWMutex
	taps     map[string]policy.Tap
	global   map[string]config.Map
	inputs   map[string]*input
	policies map[string]*policyState
	order    []string // policy names in creation order
	closed   bool
	held     []*input // inputs created while loading a document, started at its end
	windows  windowCache
	health   []func(w io.Writer) // AddHealth
	done     chan struct{}       // closed by Close: ends the agent's goroutines

	cumOnce sync.Once
	cum     *cumulative // running totals of policy default (cumulative.go)
}

// policyState is a running policy.
type policyState struct {
	name      string
	def       *policy.Policy // nil for an automatic resources policy
	resources *input         // the input an automatic resources policy watches
	merge     bool           // merge_like_handlers
	binds     []*binding
	created   time.Time
}

// binding is a policy's handlers on one input (one per selected tap).
type binding struct {
	tap     string
	in      *input
	att     *stream.Attachment
	names   []string     // handler instance name per spec
	configs []config.Map // the configuration each handler received
	mods    []modRef     // the module each handler was built from
}

// modRef is what builds a handler again elsewhere (the sketch export's header).
type modRef struct{ name, typ, version string }

// New returns an agent with no taps or policies.
func New(opts Options) *Agent {
	if opts.Periods <= 0 {
		opts.Periods = 5
	}
	opts.Periods = min(opts.Periods, 10)
	if opts.MaxDeepSample <= 0 || opts.MaxDeepSample > 100 {
		opts.MaxDeepSample = 100
	}
	opts.Workers = max(opts.Workers, 1)
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Agent{opts: opts, log: opts.Log, city: opts.City, asn: opts.ASN, started: time.Now(),
		taps: map[string]policy.Tap{}, global: map[string]config.Map{}, inputs: map[string]*input{},
		policies: map[string]*policyState{}, done: make(chan struct{})}
}

// parseOptions are the registry callbacks the policy parser validates against.
func (a *Agent) parseOptions(single bool) policy.Options {
	return policy.Options{
		Single:         single,
		InputAvailable: func(t string) bool { return t == "pcap" || t == "dnstap" },
		HandlerAvailable: func(typ, version string) bool {
			_, ok := handler.Lookup(typ, version)
			return ok
		},
		PolicyExists: func(name string) bool { _, ok := a.policies[name]; return ok },
	}
}

// LoadConfig applies a --config document: its taps, global handler configuration and
// policies. It returns the document (its visor.config is the caller's).
func (a *Agent) LoadConfig(data []byte) (*policy.Document, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	doc, err := policy.ParseDocument(data, a.parseOptions(false))
	if err != nil {
		return nil, err
	}
	for _, p := range doc.Ignored {
		a.log.Warn("config: unknown key ignored", "key", p)
	}
	for _, t := range doc.Taps {
		if _, dup := a.taps[t.Name]; dup {
			return nil, &apiError{ErrConflict, fmt.Sprintf("module name '%s' already exists", t.Name)}
		}
	}
	for _, t := range doc.Taps {
		a.taps[t.Name] = t
	}
	for k, v := range doc.Global {
		a.global[k] = v
	}
	pols, err := doc.ResolvePolicies(a.taps, a.parseOptions(false))
	if err != nil {
		return nil, err
	}
	// The document's inputs start once all its policies are attached, so every policy of a
	// capture file sees the whole file.
	a.held = []*input{}
	defer func() {
		for _, in := range a.held {
			in.start(a.log)
		}
		a.held = nil
	}()
	for i := range pols {
		if err := a.startPolicy(&pols[i]); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// AddTaps adds the taps of an admin API body (exactly one).
func (a *Agent) AddTaps(body []byte) ([]policy.Tap, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	taps, err := policy.ParseTaps(body, a.parseOptions(true))
	if err != nil {
		return nil, &apiError{ErrInvalid, err.Error()}
	}
	for _, t := range taps {
		if _, dup := a.taps[t.Name]; dup {
			return nil, &apiError{ErrConflict, fmt.Sprintf("module name '%s' already exists", t.Name)}
		}
	}
	for _, t := range taps {
		a.taps[t.Name] = t
	}
	return taps, nil
}

// RemoveTap removes a tap definition; policies already running on it keep running.
func (a *Agent) RemoveTap(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.taps[name]; !ok {
		return notFound("tap does not exists")
	}
	delete(a.taps, name)
	return nil
}

// AddPolicies creates and starts the policies of an admin API body (exactly one).
func (a *Agent) AddPolicies(body []byte) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pols, err := policy.ParsePolicies(body, a.taps, a.parseOptions(true))
	if err != nil {
		switch {
		case errors.Is(err, policy.ErrNoTapMatch):
			return nil, &apiError{ErrInvalid, err.Error()}
		case containsAlready(err.Error()):
			return nil, &apiError{ErrConflict, err.Error()}
		}
		return nil, &apiError{ErrInvalid, err.Error()}
	}
	var names []string
	for i := range pols {
		if err := a.startPolicy(&pols[i]); err != nil {
			return nil, err
		}
		names = append(names, pols[i].Name)
	}
	return names, nil
}

func containsAlready(s string) bool {
	for i := 0; i+7 <= len(s); i++ {
		if s[i:i+7] == "already" {
			return true
		}
	}
	return false
}

// AddDefault creates the command line's `default` tap and policy on iface (spec §4.5):
// modules net, dns and pcap_stats (pcap), v1. (The reference's dhcp module is not implemented.)
func (a *Agent) AddDefault(iface, hostSpec, bpfExpr string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	tap := policy.Tap{Name: "default", InputType: "pcap", Config: config.Map{"iface": iface}}
	if hostSpec != "" {
		tap.Config["host_spec"] = hostSpec
	}
	if _, dup := a.taps[tap.Name]; dup {
		return &apiError{ErrConflict, "module name 'default' already exists"}
	}
	a.taps[tap.Name] = tap
	p := &policy.Policy{Name: "default", Kind: "collection", TapNames: []string{"default"}, InputType: "pcap",
		Handlers: policy.Handlers{Modules: []policy.Module{
			{Name: "net", Type: "net", Version: policy.DefaultHandlerVersion},
			{Name: "dns", Type: "dns", Version: policy.DefaultHandlerVersion},
			{Name: "pcap_stats", Type: "pcap", Version: policy.DefaultHandlerVersion},
		}}}
	if bpfExpr != "" {
		p.InputConfig = config.Map{"bpf": bpfExpr}
	}
	if err := a.startPolicy(p); err != nil {
		delete(a.taps, tap.Name)
		return err
	}
	return nil
}

// defaultWindow is the window configuration of a policy without window_config.
func (a *Agent) defaultWindow() config.Map {
	return config.Map{"num_periods": uint64(a.opts.Periods), "deep_sample_rate": uint64(a.opts.MaxDeepSample)}
}

// startPolicy builds and starts a policy (a.mu held). On error nothing it created remains.
func (a *Agent) startPolicy(p *policy.Policy) (err error) {
	if a.closed {
		return errors.New("agent is shutting down")
	}
	if _, dup := a.policies[p.Name]; dup {
		return &apiError{ErrConflict, fmt.Sprintf("policy with name '%s' already defined", p.Name)}
	}
	window := p.Handlers.WindowOr(a.defaultWindow())
	ps := &policyState{name: p.Name, def: p, merge: p.MergeLikeHandlers, created: time.Now()}
	var created []*input // inputs this policy opened, to undo on failure
	defer func() {
		if err == nil {
			return
		}
		for _, b := range ps.binds {
			if b.att != nil {
				b.att.Detach()
			}
		}
		for _, in := range created {
			in.stop()
		}
		if !errors.As(err, new(*apiError)) {
			err = &apiError{ErrInvalid, fmt.Sprintf("policy [%s] failed to start: %v", p.Name, err)}
		}
	}()

	// Groups first: a bad handler configuration must fail before any capture opens.
	type plan struct {
		tap     string
		cfg     config.Map
		filter  config.Map
		group   stream.Group
		names   []string
		configs []config.Map
		mods    []modRef
	}
	var plans []plan
	for _, tapName := range p.TapNames {
		tap, ok := a.taps[tapName]
		if !ok {
			return &apiError{ErrInvalid, fmt.Sprintf("tap '%s' does not exist", tapName)}
		}
		icfg := tap.Config.Merge(p.InputConfig)
		g := stream.Group{Chained: p.Handlers.Chained}
		var names []string
		var configs []config.Map
		var mods []modRef
		for _, m := range p.Handlers.Modules {
			f, ok := handler.Lookup(m.Type, m.Version)
			if !ok {
				return &apiError{ErrInvalid, handler.ErrNoSuchHandler(p.Name, m.Type, m.Version).Error()}
			}
			cfg := m.Merged(a.global[m.Type], window)
			cfg["_internal_tap_name"] = tapName
			if recordedInput(icfg) {
				// A capture file read as fast as possible is a recorded stream, as in the
				// reader: periods keep their own lengths, no "live" rates.
				cfg["recorded_stream"] = true
			}
			sp, ferr := f(cfg)
			if ferr != nil {
				return &apiError{ErrInvalid, ferr.Error()}
			}
			g.Specs = append(g.Specs, sp)
			configs = append(configs, cfg)
			names = append(names, fmt.Sprintf("%s-%s-%s", p.Name, tapName, m.Name))
			mods = append(mods, modRef{name: m.Name, typ: m.Type, version: m.Version})
		}
		plans = append(plans, plan{tap: tapName, cfg: icfg, filter: p.InputFilter, group: g, names: names, configs: configs, mods: mods})
	}
	for _, pl := range plans {
		name := inputName(pl.tap, pl.cfg, pl.filter)
		in := a.inputs[name]
		if in == nil {
			for _, c := range created {
				if c.name == name {
					in = c
				}
			}
		}
		if in == nil {
			if in, err = a.newInput(pl.tap, p.InputType, pl.cfg, pl.filter); err != nil {
				return err
			}
			created = append(created, in)
		}
		ps.binds = append(ps.binds, &binding{tap: pl.tap, in: in, att: in.st.Attach(pl.group), names: pl.names, configs: pl.configs, mods: pl.mods})
	}

	// Everything is built: commit and start.
	for _, in := range created {
		a.inputs[in.name] = in
		a.startResources(in, window)
		if a.held != nil {
			a.held = append(a.held, in)
		} else {
			in.start(a.log)
		}
	}
	a.policies[p.Name] = ps
	a.order = append(a.order, p.Name)
	for _, b := range ps.binds {
		b.in.mu.Lock()
		b.in.users++
		b.in.mu.Unlock()
		a.updateResourceCounts(b.in)
	}
	a.log.Info("policy started", "policy", p.Name, "taps", p.TapNames, "new_inputs", len(created))
	return nil
}

// RemovePolicy stops a policy; an input left without policies stops with its resources policy.
func (a *Agent) RemovePolicy(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps, ok := a.policies[name]
	if !ok || ps.resources != nil {
		return notFound("policy does not exists")
	}
	a.removePolicy(ps)
	return nil
}

func (a *Agent) removePolicy(ps *policyState) {
	delete(a.policies, ps.name)
	a.order = slices.DeleteFunc(a.order, func(n string) bool { return n == ps.name })
	for _, b := range ps.binds {
		b.att.Detach()
		if ps.resources != nil {
			continue
		}
		b.in.mu.Lock()
		b.in.users--
		left := b.in.users
		b.in.mu.Unlock()
		if left > 0 {
			a.updateResourceCounts(b.in)
			continue
		}
		if b.in.resources != nil {
			a.removePolicy(b.in.resources)
		}
		b.in.stop()
		delete(a.inputs, b.in.name)
	}
	a.log.Info("policy removed", "policy", ps.name)
}

// Close stops every policy and input.
func (a *Agent) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		close(a.done)
	}
	a.closed = true
	names := slices.Clone(a.order)
	for i := len(names) - 1; i >= 0; i-- {
		if ps, ok := a.policies[names[i]]; ok && ps.resources == nil {
			a.removePolicy(ps)
		}
	}
}

// Uptime is the time since the agent started.
func (a *Agent) Uptime() time.Duration { return time.Since(a.started) }

// recordedInput reports an input configuration that replays a capture file in its own time
// (pcap_file without realtime).
func recordedInput(cfg config.Map) bool {
	if file, _, _ := cfg.String("dnstap_file"); file != "" {
		return true
	}
	file, _, _ := cfg.String("pcap_file")
	realtime, _, _ := cfg.Bool("realtime")
	return file != "" && !realtime
}
