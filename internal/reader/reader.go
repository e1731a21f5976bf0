// Package reader is pktvisor-reader's engine: it builds the handlers of a recorded-stream
// policy (net, dns and pcap v1 by default, or the modules of a `handlers:` YAML section),
// runs a capture file through a stream, and renders the summary as the reference does:
// {"1m": {...}} for one period, else {"<P>m": {...}} merged over the window.
package reader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pktvisor-go/pktvisor/internal/bpf"
	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/stream"

	// The handlers register themselves.
	_ "github.com/pktvisor-go/pktvisor/internal/handler/dns"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/net"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/pcap"
)

// Options are the reader's inputs (command-line flags).
type Options struct {
	File          string
	InputType     string // "pcap" (pcap and pcapng) or "dnstap" (a Frame Streams file)
	BPF           string
	HostSpec      string
	Periods       int
	MaxDeepSample int
	GeoCity       string
	GeoASN        string
	GeoCacheSize  int
	Workers       int    // 0 = number of CPUs
	ConfigFile    string // optional YAML with a `handlers:` section
	ConfigYAML    []byte // same, inline (tests)
	// ByModule keys the output by module name, each holding its handler's object under its
	// schema key (the agent's per-policy shape): needed when two modules share a handler type.
	ByModule bool
}

// Module is one handler of the reader's policy.
type Module struct {
	Name    string
	Type    string
	Version string
	Config  config.Map
}

// DefaultModules are the handlers the reference reader runs on a pcap input (dhcp is not
// implemented yet).
func DefaultModules() []Module {
	return []Module{
		{Name: "net", Type: "net", Version: handler.DefaultVersion},
		{Name: "dns", Type: "dns", Version: handler.DefaultVersion},
		{Name: "pcap", Type: "pcap", Version: handler.DefaultVersion},
	}
}

// DnstapModules are the handlers the reference reader runs on a dnstap input.
func DnstapModules() []Module {
	return []Module{
		{Name: "net", Type: "net", Version: handler.DefaultVersion},
		{Name: "dns", Type: "dns", Version: handler.DefaultVersion},
	}
}

// Result is what a run produced.
type Result struct {
	Output map[string]any // the JSON document
	Stats  stream.Stats
	// Warning is set when the file ended early (truncated): the summary covers what was read.
	Warning error
}

// Run summarizes the file.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.InputType == "" {
		o.InputType = "pcap"
	}
	isDnstap := strings.EqualFold(o.InputType, "dnstap")
	if !isDnstap && !strings.EqualFold(o.InputType, "pcap") {
		return nil, fmt.Errorf("input type %q is not supported (supported: pcap, dnstap)", o.InputType)
	}
	if o.Periods <= 0 {
		o.Periods = metrics.DefaultWindow.NumPeriods
	}
	o.Periods = min(o.Periods, 10)
	if o.MaxDeepSample <= 0 {
		o.MaxDeepSample = 100
	}
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	modules, chained, window, err := loadModules(o, isDnstap)
	if err != nil {
		return nil, err
	}
	var specs []handler.Spec
	seen := map[string]string{}
	for _, m := range modules {
		f, ok := handler.Lookup(m.Type, m.Version)
		if !ok {
			return nil, handler.ErrNoSuchHandler("default", m.Type, m.Version)
		}
		cfg := m.Config.Merge(window)
		cfg["recorded_stream"] = true
		sp, err := f(cfg)
		if err != nil {
			if o.ConfigFile != "" {
				return nil, fmt.Errorf("config %s: module %s: %w", o.ConfigFile, m.Name, err)
			}
			return nil, fmt.Errorf("module %s: %w", m.Name, err)
		}
		if prev, dup := seen[sp.Schema()]; dup && !o.ByModule {
			return nil, fmt.Errorf("modules %s and %s both produce %q: the reader prints one object per handler type", prev, m.Name, sp.Schema())
		}
		seen[sp.Schema()] = m.Name
		specs = append(specs, sp)
	}

	cfg := stream.Config{Workers: o.Workers, GeoCacheSize: o.GeoCacheSize}
	if o.HostSpec != "" {
		if cfg.HostSpec, err = hostspec.Parse(o.HostSpec); err != nil {
			return nil, err
		}
	}
	if o.GeoCity != "" {
		if cfg.City, err = geo.Open(o.GeoCity); err != nil {
			return nil, err
		}
		defer cfg.City.Close()
	}
	if o.GeoASN != "" {
		if cfg.ASN, err = geo.Open(o.GeoASN); err != nil {
			return nil, err
		}
		defer cfg.ASN.Close()
	}

	if isDnstap {
		if o.BPF != "" {
			return nil, fmt.Errorf("a capture filter (-b) does not apply to a dnstap input")
		}
		st := stream.NewGroups(cfg, []stream.Group{{Specs: specs, Chained: chained}})
		res := &Result{}
		if err := runDnstap(ctx, st, o.File); err != nil {
			if !errors.Is(err, dnstap.ErrTruncated) {
				return nil, err
			}
			res.Warning = err
		}
		return render(st, res, o, modules, specs)
	}

	src, err := capture.OpenFile(o.File)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if o.BPF != "" {
		// Validate the filter now, for a clear error before reading.
		if _, err = bpf.NewMatcher(o.BPF, uint32(src.LinkType())); err != nil {
			return nil, err
		}
		cfg.BPF = o.BPF
	}

	st := stream.NewGroups(cfg, []stream.Group{{Specs: specs, Chained: chained}})
	res := &Result{}
	if err := st.Run(ctx, src); err != nil {
		if !errors.Is(err, capture.ErrTruncated) {
			return nil, err
		}
		res.Warning = err
	}
	return render(st, res, o, modules, specs)
}

// runDnstap runs a dnstap (Frame Streams) file through the stream.
func runDnstap(ctx context.Context, st *stream.Stream, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("dnstap: %w", err)
	}
	defer f.Close()
	rd := dnstap.NewReader(f, nil, dnstap.ReaderOptions{})
	if err := st.RunDnstap(ctx, rd); err != nil {
		return fmt.Errorf("dnstap %s: %w", file, err)
	}
	return nil
}

// render renders every handler of the finished stream into the result's document.
func render(st *stream.Stream, res *Result, o Options, modules []Module, specs []handler.Spec) (*Result, error) {
	res.Stats = st.Stats()

	sel := metrics.Selection{}
	key := "1m"
	if o.Periods > 1 {
		sel.Window = o.Periods
		key = fmt.Sprintf("%dm", o.Periods)
	}
	body := map[string]any{}
	for i, sp := range specs {
		if handler.Silent(sp) {
			continue
		}
		sink := metrics.NewJSON()
		rp, err := st.Render(i, sel, sink, res.Stats.LastTS)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", sp.Schema(), err)
		}
		sink.Root["period"] = rp.JSON()
		if o.ByModule {
			body[modules[i].Name] = map[string]any{sp.Schema(): sink.Root}
		} else {
			body[sp.Schema()] = sink.Root
		}
	}
	res.Output = map[string]any{key: body}
	return res, nil
}

// loadModules returns the reader's modules, whether they form a chain, and the window
// configuration merged into each.
func loadModules(o Options, isDnstap bool) ([]Module, bool, config.Map, error) {
	window := config.Map{"num_periods": uint64(o.Periods), "deep_sample_rate": uint64(o.MaxDeepSample)}
	data := o.ConfigYAML
	if o.ConfigFile != "" {
		var err error
		if data, err = os.ReadFile(o.ConfigFile); err != nil {
			return nil, false, nil, fmt.Errorf("config: %w", err)
		}
	}
	if len(data) == 0 {
		if isDnstap {
			return DnstapModules(), false, window, nil
		}
		return DefaultModules(), false, window, nil
	}
	mods, chained, window, err := parseHandlers(data, window)
	if err != nil && o.ConfigFile != "" {
		err = fmt.Errorf("config %s: %w", o.ConfigFile, err)
	}
	return mods, chained, window, err
}

// parseHandlers reads a policy's `handlers:` section: window_config and modules, a map
// (side by side) or a sequence (a chain).
func parseHandlers(data []byte, window config.Map) ([]Module, bool, config.Map, error) {
	var doc struct {
		Handlers yaml.Node `yaml:"handlers"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, false, nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if doc.Handlers.Kind != yaml.MappingNode {
		return nil, false, nil, fmt.Errorf("missing or invalid handler configuration at key 'handlers'")
	}
	var modulesNode *yaml.Node
	for i := 0; i+1 < len(doc.Handlers.Content); i += 2 {
		k, v := doc.Handlers.Content[i].Value, doc.Handlers.Content[i+1]
		switch k {
		case "window_config":
			w, err := config.FromNode(v)
			if err != nil {
				return nil, false, nil, fmt.Errorf("window_config: %w", err)
			}
			// Present: used verbatim, as in the reference (missing keys take defaults).
			window = w
		case "modules":
			modulesNode = v
		default:
			return nil, false, nil, fmt.Errorf("handlers: unknown key %q", k)
		}
	}
	if modulesNode == nil {
		return nil, false, nil, fmt.Errorf("missing or invalid handler modules at key 'modules'")
	}
	var mods []Module
	switch modulesNode.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(modulesNode.Content); i += 2 {
			m, err := parseModule(modulesNode.Content[i].Value, modulesNode.Content[i+1])
			if err != nil {
				return nil, false, nil, err
			}
			mods = append(mods, m)
		}
		return mods, false, window, nil
	case yaml.SequenceNode:
		// Items are `- name: {type: dns, ...}` or `- name:` with the keys beside it.
		for _, item := range modulesNode.Content {
			if item.Kind != yaml.MappingNode || len(item.Content) < 2 {
				return nil, false, nil, fmt.Errorf("stream handler configuration is not a map")
			}
			name, body := item.Content[0].Value, item.Content[1]
			if body.Kind != yaml.MappingNode {
				body = &yaml.Node{Kind: yaml.MappingNode, Content: item.Content[2:]}
			}
			m, err := parseModule(name, body)
			if err != nil {
				return nil, false, nil, err
			}
			mods = append(mods, m)
		}
		return mods, true, window, nil
	}
	return nil, false, nil, fmt.Errorf("missing or invalid handler modules at key 'modules'")
}

func parseModule(name string, n *yaml.Node) (Module, error) {
	m := Module{Name: name, Version: handler.DefaultVersion, Config: config.Map{}}
	if n.Kind != yaml.MappingNode {
		return m, fmt.Errorf("stream handler configuration is not a map")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch k {
		case "type":
			m.Type = v.Value
		case "require_version":
			m.Version = v.Value
		case "config", "filter":
			if v.Kind != yaml.MappingNode {
				if k == "config" {
					return m, fmt.Errorf("stream handler configuration is not a map")
				}
				return m, fmt.Errorf("stream handler filter configuration is not a map")
			}
			c, err := config.FromNode(v)
			if err != nil {
				return m, fmt.Errorf("%s.%s: %w", name, k, err)
			}
			m.Config = m.Config.Merge(c)
		case "metric_groups":
			if v.Kind != yaml.MappingNode {
				return m, fmt.Errorf("stream handler metric groups is not a map")
			}
			g, err := config.FromNode(v)
			if err != nil {
				return m, fmt.Errorf("%s.metric_groups: %w", name, err)
			}
			if !g.Has("enable") && !g.Has("disable") {
				return m, fmt.Errorf("stream handler metric groups should contain enable and/or disable tags")
			}
			for _, key := range []string{"enable", "disable"} {
				if v, ok := g[key]; ok {
					m.Config[key] = v
				}
			}
		}
	}
	if m.Type == "" {
		return m, fmt.Errorf("missing or invalid stream handler type at key 'type'")
	}
	return m, nil
}
