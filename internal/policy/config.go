// Package policy parses and validates the YAML configuration of taps and collection policies:
// the `--config` file (version, visor.config, visor.taps, visor.global_handler_config,
// visor.policies) and the bodies the admin API receives for POST /api/v1/taps and
// POST /api/v1/policies. It runs nothing: the agent turns the result into inputs and handlers.
//
// Design choices:
//   - Schema, check order and error strings follow the reference (pktvisor 4.5 CoreRegistry,
//     TapManager, PolicyManager, HandlerManager), so err.Error() is the text a client of the
//     reference sees. A value that is present but null counts as present (yaml-cpp semantics):
//     `config:` with nothing after it is "not a map".
//   - Keys the reference ignores (e.g. a policy `description:`) are ignored too, so its
//     configurations load unchanged; their paths are listed in Ignored for the agent to log.
//   - The quirk "global_handler_config stops at the first unknown handler type" is not copied:
//     every entry is kept and the caller decides what an unknown type means.
//   - Scalars are typed by internal/config (digits => uint64, true/false => bool, else string),
//     the rule the reference uses for configs, filters, tags and tap selectors alike.
//   - YAML: go.yaml.in/yaml/v3 (already the project's YAML library) parsed into a node tree,
//     which keeps key order (module order matters) and lets us inspect node kinds as
//     yaml-cpp does. The input is untrusted (admin API): documents over 1 MiB, anchors and
//     aliases (billion laughs) and nesting deeper than 32 levels are rejected before any
//     interpretation, and a parser panic becomes an error.
package policy

import (
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/pktvisor-go/pktvisor/internal/config"
)

const (
	// MaxDocumentBytes bounds a configuration document.
	MaxDocumentBytes = 1 << 20
	// MaxDepth bounds the nesting of maps and sequences in a document.
	MaxDepth = 32
	// DefaultHandlerVersion is the handler version a module gets without require_version.
	DefaultHandlerVersion = "1.0"
	// SupportedVersion is the only schema version accepted (and assumed when absent).
	SupportedVersion = "1.0"
)

// ErrNoTapMatch is returned when a tap_selector matches no tap; the admin API answers it
// with 422 where other configuration errors are 500.
var ErrNoTapMatch = errors.New("no tap match found for specified 'input.tap_selector' tags")

// Tap is a named input template.
type Tap struct {
	Name      string
	InputType string
	Config    config.Map // nil when absent
	Tags      config.Map // nil when absent
	Ignored   []string   // keys of the tap the schema does not know
}

// Module is one stream handler of a policy.
type Module struct {
	Name    string
	Type    string
	Version string     // require_version, else DefaultHandlerVersion
	Config  config.Map // module `config:`; nil when absent
	// Filter is the module `filter:` plus any metric_groups key other than enable/disable
	// (the reference merges metric_groups into the filter, so a stray key reaches the
	// handler's key validation and is rejected there with the handler's message).
	Filter          config.Map
	Enable, Disable []string // metric_groups lists; nil when absent
	HasGroups       bool     // metric_groups present
	Ignored         []string
}

// Handlers is a policy's `handlers:` section.
type Handlers struct {
	Window  config.Map // window_config verbatim; nil when absent (or not a map, as the reference)
	Modules []Module   // YAML order
	Chained bool       // modules written as a sequence: each handler feeds the next
}

// Policy is one validated collection policy with its taps resolved.
type Policy struct {
	Name              string
	Kind              string     // always "collection"
	Config            config.Map // policy `config:`; nil when absent
	MergeLikeHandlers bool       // config.merge_like_handlers
	TapNames          []string   // the named tap, or every selector match, sorted
	InputType         string
	InputConfig       config.Map // input.config; nil when absent
	InputFilter       config.Map // input.filter; nil when absent
	Handlers          Handlers
	Ignored           []string // paths (relative to the policy) the schema does not know
}

// Document is a whole `--config` file. Policies are resolved separately (ResolvePolicies)
// because they may select taps that exist outside the file.
type Document struct {
	Version     string
	VisorConfig config.Map            // visor.config, typed; nil when absent
	Taps        []Tap                 // visor.taps in YAML order
	Global      map[string]config.Map // visor.global_handler_config by handler type
	Ignored     []string              // document paths the schema does not know or ignores
	policies    *yaml.Node
}

// Options carries what validation needs from the agent's registries. Zero value: every
// input and handler type is available and no policy exists yet.
type Options struct {
	// Single enforces the admin API's one tap / one policy per request.
	Single bool
	// InputAvailable reports whether an input type (tap input_type) is implemented.
	InputAvailable func(inputType string) bool
	// HandlerAvailable reports whether a handler type/version is implemented.
	HandlerAvailable func(typ, version string) bool
	// PolicyExists reports an already running policy name.
	PolicyExists func(name string) bool
}

// ParseDocument reads a `--config` file: version, visor.config, taps (with the reference's
// tap rules) and global_handler_config. taps, global_handler_config and policies that are
// not maps are ignored, as the reference does (and listed in Ignored).
func ParseDocument(data []byte, opts Options) (*Document, error) {
	visor, version, err := load(data)
	if err != nil {
		return nil, err
	}
	d := &Document{Version: version}
	if visor.Kind != yaml.MappingNode {
		return d, nil // `visor:` null
	}
	for i := 0; i+1 < len(visor.Content); i += 2 {
		k, v := visor.Content[i], visor.Content[i+1]
		switch k.Value {
		case "config":
			if !isMap(v) {
				d.Ignored = append(d.Ignored, "visor.config")
				continue
			}
			if d.VisorConfig != nil {
				continue // yaml-cpp lookups see the first of duplicate keys
			}
			c, err := config.FromNode(v)
			if err != nil {
				return nil, fmt.Errorf("invalid visor config: %w", err)
			}
			d.VisorConfig = c
		case "taps":
			if !isMap(v) {
				if !isNull(v) {
					d.Ignored = append(d.Ignored, "visor.taps")
				}
				continue
			}
			if d.Taps != nil {
				continue
			}
			taps, err := parseTaps(v, opts)
			if err != nil {
				return nil, err
			}
			d.Taps = taps
		case "global_handler_config":
			if !isMap(v) {
				if !isNull(v) {
					d.Ignored = append(d.Ignored, "visor.global_handler_config")
				}
				continue
			}
			if d.Global != nil {
				continue
			}
			g, err := parseGlobal(v)
			if err != nil {
				return nil, err
			}
			d.Global = g
		case "policies":
			if !isMap(v) {
				if !isNull(v) {
					d.Ignored = append(d.Ignored, "visor.policies")
				}
				continue
			}
			if d.policies == nil {
				d.policies = v
			}
		default:
			d.Ignored = append(d.Ignored, "visor."+k.Value)
		}
	}
	return d, nil
}

// HasPolicies reports whether the document holds a policies map.
func (d *Document) HasPolicies() bool { return d.policies != nil }

// ResolvePolicies validates the document's policies against taps (the file's taps plus any
// the agent already has; see TapIndex).
func (d *Document) ResolvePolicies(taps map[string]Tap, opts Options) ([]Policy, error) {
	if d.policies == nil {
		return nil, nil
	}
	return parsePolicies(d.policies, taps, opts)
}

// ParseTaps reads an admin API tap body (`{version?, visor: {taps: {...}}}`).
func ParseTaps(data []byte, opts Options) ([]Tap, error) {
	visor, _, err := load(data)
	if err != nil {
		return nil, err
	}
	n := get(visor, "taps")
	if !isMap(n) {
		return nil, errors.New("no taps found in schema")
	}
	return parseTaps(n, opts)
}

// ParsePolicies reads an admin API policy body (`{version?, visor: {policies: {...}}}`) and
// resolves each policy's tap or tap_selector against taps.
func ParsePolicies(data []byte, taps map[string]Tap, opts Options) ([]Policy, error) {
	visor, _, err := load(data)
	if err != nil {
		return nil, err
	}
	n := get(visor, "policies")
	if !isMap(n) {
		return nil, errors.New("no policies found in schema")
	}
	return parsePolicies(n, taps, opts)
}

// TapIndex indexes taps by name; later lists win, so pass registry taps first.
func TapIndex(lists ...[]Tap) map[string]Tap {
	out := map[string]Tap{}
	for _, l := range lists {
		for _, t := range l {
			out[t.Name] = t
		}
	}
	return out
}

// Merged is the configuration a handler instance receives, in the reference's precedence:
// global_handler_config[type] < module config < window config < filter < metric_groups
// enable/disable. The caller adds `_internal_tap_name`. Nested values are shared, not copied.
func (m Module) Merged(global, window config.Map) config.Map {
	out := make(config.Map, len(global)+len(m.Config)+len(window)+len(m.Filter)+2)
	for _, layer := range []config.Map{global, m.Config, window, m.Filter} {
		for k, v := range layer {
			out[k] = v
		}
	}
	if m.Enable != nil {
		out["enable"] = slices.Clone(m.Enable)
	}
	if m.Disable != nil {
		out["disable"] = slices.Clone(m.Disable)
	}
	return out
}

// WindowOr returns the window configuration to use: window_config verbatim when present,
// else defaults (the command line's num_periods / deep_sample_rate).
func (h Handlers) WindowOr(defaults config.Map) config.Map {
	if h.Window != nil {
		return h.Window
	}
	return defaults
}

// load applies the bounds, parses, and checks the envelope shared by every entry point:
// "empty data", "invalid schema", "unsupported version". It returns the visor node.
func load(data []byte) (*yaml.Node, string, error) {
	if len(data) == 0 {
		return nil, "", errors.New("empty data")
	}
	if len(data) > MaxDocumentBytes {
		return nil, "", fmt.Errorf("document too large: %d bytes (limit %d)", len(data), MaxDocumentBytes)
	}
	root, err := parseYAML(data)
	if err != nil {
		return nil, "", err
	}
	if err := checkBounds(root, 0); err != nil {
		return nil, "", err
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	visor := get(root, "visor")
	if !isMap(root) || visor == nil {
		return nil, "", errors.New("invalid schema")
	}
	if !isMap(visor) && !isNull(visor) {
		// yaml-cpp throws on indexing a scalar; a non-map visor cannot hold anything.
		return nil, "", errors.New("invalid schema")
	}
	version := SupportedVersion
	if v := get(root, "version"); v != nil {
		if !isScalar(v) || v.Value != SupportedVersion {
			return nil, "", errors.New("unsupported version")
		}
	}
	return visor, version, nil
}

func parseYAML(data []byte) (n *yaml.Node, err error) {
	defer func() {
		// The parser is third-party code fed untrusted bytes: a panic must not take the agent down.
		if r := recover(); r != nil {
			n, err = nil, fmt.Errorf("invalid YAML: parser failure: %v", r)
		}
	}()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	return &root, nil
}

// checkBounds rejects anchors, aliases and excessive nesting.
func checkBounds(n *yaml.Node, depth int) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return fmt.Errorf("invalid YAML: anchors and aliases are not supported (line %d)", n.Line)
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		depth++
		if depth > MaxDepth {
			return fmt.Errorf("invalid YAML: nesting deeper than %d levels (line %d)", MaxDepth, n.Line)
		}
	}
	for _, c := range n.Content {
		if err := checkBounds(c, depth); err != nil {
			return err
		}
	}
	return nil
}

// get returns the value of the first scalar key equal to key (yaml-cpp's node[key]).
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func isMap(n *yaml.Node) bool { return n != nil && n.Kind == yaml.MappingNode }
func isSeq(n *yaml.Node) bool { return n != nil && n.Kind == yaml.SequenceNode }
func isNull(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// isScalar is yaml-cpp's IsScalar: a null is not a scalar.
func isScalar(n *yaml.Node) bool { return n != nil && n.Kind == yaml.ScalarNode && !isNull(n) }

// unknownKeys lists the keys of m outside known, prefixed.
func unknownKeys(m *yaml.Node, prefix string, known ...string) []string {
	var out []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind != yaml.ScalarNode || !slices.Contains(known, k.Value) {
			out = append(out, prefix+k.Value)
		}
	}
	return out
}

func parseTaps(n *yaml.Node, opts Options) ([]Tap, error) {
	if count := len(n.Content) / 2; opts.Single && count > 1 {
		return nil, fmt.Errorf("only a single tap expected but got %d", count)
	}
	taps := make([]Tap, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isScalar(k) {
			return nil, errors.New("expecting tap identifier")
		}
		name := k.Value
		if !isMap(v) {
			return nil, errors.New("expecting tap configuration map")
		}
		it := get(v, "input_type")
		if !isScalar(it) {
			return nil, errors.New("missing or invalid tap type key 'input_type'")
		}
		t := Tap{Name: name, InputType: it.Value, Ignored: unknownKeys(v, "", "input_type", "config", "tags")}
		if opts.InputAvailable != nil && !opts.InputAvailable(t.InputType) {
			return nil, fmt.Errorf("Tap '%s' requires input stream type '%s' which is not available", name, t.InputType)
		}
		if c := get(v, "config"); c != nil {
			if !isMap(c) {
				return nil, errors.New("tap configuration is not a map")
			}
			m, err := config.FromNode(c)
			if err != nil {
				return nil, fmt.Errorf("invalid tap config for tap '%s': %w", name, err)
			}
			t.Config = m
		}
		if c := get(v, "tags"); c != nil {
			if !isMap(c) {
				return nil, errors.New("tap tags is not a map")
			}
			m, err := config.FromNode(c)
			if err != nil {
				return nil, fmt.Errorf("invalid tap tags for tap '%s': %w", name, err)
			}
			t.Tags = m
		}
		if slices.ContainsFunc(taps, func(o Tap) bool { return o.Name == name }) {
			return nil, fmt.Errorf("module name '%s' already exists", name)
		}
		taps = append(taps, t)
	}
	return taps, nil
}

func parseGlobal(n *yaml.Node) (map[string]config.Map, error) {
	out := map[string]config.Map{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isScalar(k) || !isMap(v) {
			return nil, errors.New("expecting global_handler_config configuration map")
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("stream handler type '%s' already exists in global_handler_config configuration", k.Value)
		}
		m, err := config.FromNode(v)
		if err != nil {
			return nil, fmt.Errorf("invalid global_handler_config for handler type '%s': %w", k.Value, err)
		}
		out[k.Value] = m
	}
	return out, nil
}

func parsePolicies(n *yaml.Node, taps map[string]Tap, opts Options) ([]Policy, error) {
	if count := len(n.Content) / 2; opts.Single && count > 1 {
		return nil, fmt.Errorf("only a single policy expected but got %d", count)
	}
	out := make([]Policy, 0, len(n.Content)/2)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		p, err := parsePolicy(n.Content[i], n.Content[i+1], taps, opts, seen)
		if err != nil {
			return nil, err
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	return out, nil
}

// parsePolicy checks one policy in the reference's order: identity and kind, input, handlers,
// taps, policy config, then per tap the input type and the modules.
func parsePolicy(k, v *yaml.Node, taps map[string]Tap, opts Options, seen map[string]bool) (Policy, error) {
	var p Policy
	if !isScalar(k) {
		return p, errors.New("expecting policy identifier")
	}
	p.Name = k.Value
	if !isMap(v) {
		return p, errors.New("expecting policy configuration map")
	}
	if seen[p.Name] || (opts.PolicyExists != nil && opts.PolicyExists(p.Name)) {
		return p, fmt.Errorf("policy with name '%s' already defined", p.Name)
	}
	kind := get(v, "kind")
	if !isScalar(kind) {
		return p, errors.New("missing or invalid policy kind at key 'kind'")
	}
	if kind.Value != "collection" {
		return p, fmt.Errorf("unknown policy kind: %s", kind.Value)
	}
	p.Kind = kind.Value
	p.Ignored = unknownKeys(v, "", "kind", "config", "input", "handlers")

	input := get(v, "input")
	if err := p.parseInput(input); err != nil {
		return p, err
	}
	if err := p.parseHandlers(get(v, "handlers")); err != nil {
		return p, err
	}
	names, err := selectTaps(input, taps)
	if err != nil {
		return p, err
	}
	p.TapNames = names

	if c := get(v, "config"); c != nil {
		if !isMap(c) {
			return p, errors.New("policy configuration is not a map")
		}
		m, err := config.FromNode(c)
		if err != nil {
			return p, fmt.Errorf("invalid policy config for policy '%s': %w", p.Name, err)
		}
		p.Config = m
		mlh, _, err := m.Bool("merge_like_handlers")
		if err != nil {
			// The reference reads it when the policy starts.
			return p, fmt.Errorf("policy [%s] failed to start: %w", p.Name, err)
		}
		p.MergeLikeHandlers = mlh
	}

	// The reference validates the modules inside its per-tap loop, right after the first
	// tap's input type check; later taps' input types are checked after that.
	for i, name := range p.TapNames {
		if tt := taps[name].InputType; tt != p.InputType {
			return p, fmt.Errorf("input_type for policy specified tap '%s' doesn't match tap's defined input type: %s/%s", name, p.InputType, tt)
		}
		if i > 0 {
			continue
		}
		mods, err := parseModules(get(get(v, "handlers"), "modules"), p.Handlers.Chained, p.Name, opts)
		if err != nil {
			return p, err
		}
		for j, m := range mods {
			for _, o := range mods[:j] {
				if o.Name == m.Name {
					return p, fmt.Errorf("module name '%s-%s-%s' already exists", p.Name, name, m.Name)
				}
			}
		}
		p.Handlers.Modules = mods
	}
	return p, nil
}

func (p *Policy) parseInput(input *yaml.Node) error {
	if !isMap(input) {
		return errors.New("missing or invalid policy input stream configuration at key 'input'")
	}
	it := get(input, "input_type")
	if !isScalar(it) {
		return errors.New("missing or invalid input_type at key 'input.input_type'")
	}
	p.InputType = it.Value
	p.Ignored = append(p.Ignored, unknownKeys(input, "input.", "input_type", "config", "filter", "tap", "tap_selector")...)
	if c := get(input, "config"); c != nil {
		if !isMap(c) {
			return errors.New("input configuration is not a map")
		}
		m, err := config.FromNode(c)
		if err != nil {
			return fmt.Errorf("invalid input config: %w", err)
		}
		p.InputConfig = m
	}
	if c := get(input, "filter"); c != nil {
		if !isMap(c) {
			return errors.New("input filter configuration is not a map")
		}
		m, err := config.FromNode(c)
		if err != nil {
			return fmt.Errorf("invalid input filter: %w", err)
		}
		p.InputFilter = m
	}
	return nil
}

// parseHandlers checks the handlers section's shape and reads window_config; the modules
// themselves are validated later, in the reference's order.
func (p *Policy) parseHandlers(h *yaml.Node) error {
	if !isMap(h) {
		return errors.New("missing or invalid handler configuration at key 'handlers'")
	}
	mods := get(h, "modules")
	if !isMap(mods) && !isSeq(mods) {
		return errors.New("missing or invalid handler modules at key 'modules'")
	}
	p.Handlers.Chained = isSeq(mods)
	p.Ignored = append(p.Ignored, unknownKeys(h, "handlers.", "window_config", "modules")...)
	if w := get(h, "window_config"); isMap(w) {
		m, err := config.FromNode(w)
		if err != nil {
			return fmt.Errorf("invalid stream handler window config: %w", err)
		}
		p.Handlers.Window = m
	} else if w != nil {
		// The reference silently falls back to the defaults.
		p.Ignored = append(p.Ignored, "handlers.window_config")
	}
	return nil
}

// selectTaps resolves input.tap or input.tap_selector to tap names, sorted.
func selectTaps(input *yaml.Node, taps map[string]Tap) ([]string, error) {
	tap, sel := get(input, "tap"), get(input, "tap_selector")
	switch {
	case tap != nil && sel != nil:
		return nil, errors.New("input can have only key 'input.tap' or key 'input.tap_selector'")
	case tap == nil && sel == nil:
		return nil, errors.New("missing key 'input.tap' or key 'input.tap_selector'")
	case tap != nil:
		if !isScalar(tap) {
			return nil, errors.New("invalid tap at key 'input.tap'")
		}
		if _, ok := taps[tap.Value]; !ok {
			return nil, fmt.Errorf("tap '%s' does not exist", tap.Value)
		}
		return []string{tap.Value}, nil
	}
	if !isMap(sel) {
		return nil, errors.New("'input.tap_selector' is not a map")
	}
	all, anyOf := get(sel, "all"), get(sel, "any")
	switch {
	case all != nil && anyOf != nil:
		return nil, errors.New("input can have only key 'input.tap_selector.all' or key 'input.tap_selector.any'")
	case all == nil && anyOf == nil:
		return nil, errors.New("missing key 'input.tap_selector.all' or key 'input.tap_selector.any'")
	}
	list, matchAll := all, true
	if all == nil {
		list, matchAll = anyOf, false
	}
	if !isSeq(list) {
		op := "all"
		if !matchAll {
			op = "any"
		}
		return nil, fmt.Errorf("'input.tap_selector.%s' is not a sequence", op)
	}
	names := make([]string, 0, len(taps))
	for name := range taps {
		names = append(names, name)
	}
	slices.Sort(names) // the reference walks its tap map in name order, errors included
	var matched []string
	for _, name := range names {
		ok, err := matchSelector(taps[name], list.Content, matchAll)
		if err != nil {
			return nil, err
		}
		if ok {
			matched = append(matched, name)
		}
	}
	if len(matched) == 0 {
		return nil, ErrNoTapMatch
	}
	return matched, nil
}

// matchSelector applies one selector list to a tap. all: every listed tag must exist and be
// equal (an empty list matches nothing); any: at least one listed tag equal, missing tags
// skipped. A value's type comes from its text, as for tags, and must equal the tag's type.
// Items are checked lazily, as the reference does: under `all`, the first missing tag ends
// the tap's evaluation before later items are inspected.
func matchSelector(t Tap, items []*yaml.Node, all bool) (bool, error) {
	matched := false
	for _, item := range items {
		if !isMap(item) || len(item.Content) != 2 {
			return false, errors.New("selector tag must contain only one key/value pair per sequence index")
		}
		k, v := item.Content[0], item.Content[1]
		if !isScalar(k) {
			return false, errors.New("selector tag key must be a scalar")
		}
		if !isScalar(v) {
			return false, fmt.Errorf("tag key '%s' must have scalar value", k.Value)
		}
		tag, ok := t.Tags[k.Value]
		if !ok {
			if all {
				return false, nil
			}
			continue
		}
		want := config.Scalar(v.Value)
		if !sameType(tag, want) {
			return false, fmt.Errorf("Tap [%s]: tag and selector value types are different for key '%s'", t.Name, k.Value)
		}
		if tag == want {
			matched = true
		} else if all {
			return false, nil
		}
	}
	return matched, nil
}

func sameType(a, b any) bool {
	switch b.(type) {
	case uint64:
		_, ok := a.(uint64)
		return ok
	case bool:
		_, ok := a.(bool)
		return ok
	default:
		_, ok := a.(string)
		return ok
	}
}

func parseModules(n *yaml.Node, chained bool, policy string, opts Options) ([]Module, error) {
	var mods []Module
	if chained {
		for _, item := range n.Content {
			// `- name: {type: …}` or `- name:` with the module keys beside the name.
			if !isMap(item) || len(item.Content) < 2 {
				return nil, errors.New("expecting Handler configuration map")
			}
			if !isScalar(item.Content[0]) {
				return nil, errors.New("expecting handler module identifier")
			}
			m, err := parseModule(item.Content[0].Value, item, policy, opts)
			if err != nil {
				return nil, err
			}
			mods = append(mods, m)
		}
		return mods, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isScalar(k) {
			return nil, errors.New("expecting handler module identifier")
		}
		if !isMap(v) {
			return nil, errors.New("expecting Handler configuration map")
		}
		m, err := parseModule(k.Value, v, policy, opts)
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
	}
	return mods, nil
}

// parseModule reads one module body; `type` is looked up in the body, then in body[name].
func parseModule(name string, body *yaml.Node, policy string, opts Options) (Module, error) {
	m := Module{Name: name, Version: DefaultHandlerVersion}
	typ := get(body, "type")
	if !isScalar(typ) {
		body = get(body, name)
		typ = get(body, "type")
		if !isScalar(typ) {
			return m, errors.New("missing or invalid stream handler type at key 'type'")
		}
	}
	m.Ignored = unknownKeys(body, "", name, "type", "require_version", "config", "filter", "metric_groups")
	if v := get(body, "require_version"); v != nil {
		if !isScalar(v) {
			//lint:ignore ST1005 the reference's exact text, which users and tests match
			return m, errors.New("Invalid stream handler version at key 'require_version'")
		}
		m.Version = v.Value
	}
	m.Type = typ.Value
	if opts.HandlerAvailable != nil && !opts.HandlerAvailable(m.Type, m.Version) {
		return m, fmt.Errorf("Policy '%s' requires stream handler type '%s' and version '%s' which is not available", policy, m.Type, m.Version)
	}
	if f := get(body, "filter"); f != nil {
		if !isMap(f) {
			return m, errors.New("stream handler filter configuration is not a map")
		}
		c, err := config.FromNode(f)
		if err != nil {
			return m, fmt.Errorf("invalid stream handler filter config for handler '%s': %w", name, err)
		}
		m.Filter = c
	}
	if c := get(body, "config"); c != nil {
		if !isMap(c) {
			return m, errors.New("stream handler configuration is not a map")
		}
		cfg, err := config.FromNode(c)
		if err != nil {
			return m, fmt.Errorf("invalid stream handler config for handler '%s': %w", name, err)
		}
		m.Config = cfg
	}
	if g := get(body, "metric_groups"); g != nil {
		if !isMap(g) {
			return m, errors.New("stream handler metric groups is not a map")
		}
		if get(g, "enable") == nil && get(g, "disable") == nil {
			return m, errors.New("stream handler metric groups should contain enable and/or disable tags")
		}
		groups, err := config.FromNode(g)
		if err != nil {
			return m, fmt.Errorf("invalid stream handler metrics for handler '%s': %w", name, err)
		}
		m.HasGroups = true
		for _, key := range []string{"enable", "disable"} {
			dst := &m.Enable
			if key == "disable" {
				dst = &m.Disable
			}
			list, ok, err := groups.List(key)
			if err != nil {
				return m, fmt.Errorf("invalid stream handler metrics for handler '%s': %w", name, err)
			}
			if ok {
				*dst = list
			}
			delete(groups, key)
		}
		if len(groups) > 0 {
			if m.Filter == nil {
				m.Filter = config.Map{}
			}
			for k, v := range groups {
				m.Filter[k] = v
			}
		}
	}
	return m, nil
}
