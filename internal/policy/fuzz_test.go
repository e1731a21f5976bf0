package policy

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/config"
)

var fuzzSeeds = []string{
	defaultView,
	selectorDoc("        tap_selector:\n          all: [virtual: true, vhost: 1, key: value]\n"),
	selectorDoc("        tap_selector:\n          any:\n            - virtual: true\n            - vhost: 2a\n"),
	selectorDoc("        tap_selector:\n          any:\n            - vhost: 1\n              key: value\n"),
	"visor:\n" + anycastTap + "  policies:\n    p:\n      kind: collection\n      input: {tap: anycast, input_type: mock}\n      handlers:\n        modules:\n          - a:\n            type: dns\n          - b: {type: net, metric_groups: {enable: [x], disable: [all], z: 1}}\n",
	`{"version":"1.0","visor":{"taps":{"j":{"input_type":"dnstap","tags":{"n":7}}}}}`,
	"visor:\n  config: &a {x: 1}\n  taps: *a\n",
	"version: \"2.0\"\nvisor:\n",
	"",
}

// checkPolicies asserts what every accepted policy set must satisfy.
func checkPolicies(t *testing.T, ps []Policy, taps map[string]Tap) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Name] {
			t.Fatalf("policy %q twice", p.Name)
		}
		seen[p.Name] = true
		if p.Kind != "collection" {
			t.Fatalf("policy %+v", p)
		}
		if len(p.TapNames) == 0 || !slices.IsSorted(p.TapNames) || len(slices.Compact(slices.Clone(p.TapNames))) != len(p.TapNames) {
			t.Fatalf("tap names %q", p.TapNames)
		}
		for _, n := range p.TapNames {
			tap, ok := taps[n]
			if !ok || tap.InputType != p.InputType {
				t.Fatalf("policy %q selected tap %q (%v) of input type %q", p.Name, n, ok, tap.InputType)
			}
		}
		names := map[string]bool{}
		for _, m := range p.Handlers.Modules {
			if names[m.Name] {
				t.Fatalf("module %q twice", m.Name)
			}
			names[m.Name] = true
			if m.Version == "" {
				t.Fatalf("module %+v", m)
			}
			merged := m.Merged(config.Map{"g": uint64(1)}, p.Handlers.WindowOr(config.Map{"num_periods": uint64(5)}))
			if m.Enable != nil && !reflect.DeepEqual(merged["enable"], m.Enable) {
				t.Fatalf("merged enable %v, module %v", merged["enable"], m.Enable)
			}
		}
	}
}

func checkErrShape(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrNoTapMatch) && err != ErrNoTapMatch {
		t.Fatalf("wrapped no-match error %v", err)
	}
	if err != nil && err.Error() == "" {
		t.Fatal("empty error text")
	}
}

// FuzzParseDocument: never panics, is deterministic, and accepted documents resolve to
// policies whose taps exist, are sorted and share the policy's input type.
func FuzzParseDocument(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{HandlerAvailable: func(typ, v string) bool { return typ != "" }}
		d, err := ParseDocument(data, opts)
		d2, err2 := ParseDocument(data, opts)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("nondeterministic: %v / %v", err, err2)
		}
		checkErrShape(t, err)
		if err != nil {
			return
		}
		if d.Version != SupportedVersion || !reflect.DeepEqual(d.Taps, d2.Taps) || !reflect.DeepEqual(d.Global, d2.Global) {
			t.Fatalf("document %+v / %+v", d, d2)
		}
		if len(TapIndex(d.Taps)) != len(d.Taps) {
			t.Fatalf("duplicate tap names accepted: %+v", d.Taps)
		}
		taps := TapIndex(d.Taps)
		ps, err := d.ResolvePolicies(taps, opts)
		ps2, err2 := d2.ResolvePolicies(taps, opts)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || !reflect.DeepEqual(ps, ps2) {
			t.Fatalf("nondeterministic resolve: %v / %v", err, err2)
		}
		checkErrShape(t, err)
		if err == nil {
			checkPolicies(t, ps, taps)
		}
	})
}

// FuzzParsePolicies: admin API policy bodies against a fixed set of taps.
func FuzzParsePolicies(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	taps := map[string]Tap{
		"anycast":  {Name: "anycast", InputType: "mock", Config: config.Map{"iface": "eth0"}},
		"anycast1": {Name: "anycast1", InputType: "mock", Tags: config.Map{"virtual": true, "vhost": uint64(1), "key": "value"}},
		"anycast2": {Name: "anycast2", InputType: "mock", Tags: config.Map{"virtual": true, "vhost": uint64(2), "key": "value"}},
		"wired":    {Name: "wired", InputType: "pcap", Tags: config.Map{"vhost": "x", "l": []string{"a"}, "m": config.Map{"k": "v"}}},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, single := range []bool{false, true} {
			opts := Options{Single: single, PolicyExists: func(n string) bool { return n == "exists" }}
			ps, err := ParsePolicies(data, taps, opts)
			ps2, err2 := ParsePolicies(data, taps, opts)
			if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || !reflect.DeepEqual(ps, ps2) {
				t.Fatalf("nondeterministic: %v / %v", err, err2)
			}
			checkErrShape(t, err)
			if err != nil {
				continue
			}
			if single && len(ps) > 1 {
				t.Fatalf("single gave %d policies", len(ps))
			}
			checkPolicies(t, ps, taps)
			for _, p := range ps {
				if p.Name == "exists" {
					t.Fatal("existing policy accepted")
				}
			}
		}
	})
}
