package policy

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/config"
)

// The YAML below restates the configurations of the reference's src/tests/test_taps.cpp and
// test_policies.cpp (spec §6.17); expected values and error strings come from the spec.

const anycastTap = `
  taps:
    anycast:
      input_type: mock
      config:
        iface: eth0
`

const defaultView = `
version: "1.0"
visor:
  taps:
    anycast:
      input_type: mock
      config:
        iface: eth0
  global_handler_config:
    dns:
      only_rcode: 2
  policies:
    default_view:
      kind: collection
      description: "a mock view of anycast traffic"
      input:
        tap: anycast
        input_type: mock
        config:
          sample: value
          bpf: "tcp or udp"
      handlers:
        window_config:
          num_periods: 5
          deep_sample_rate: 100
        modules:
          default_net:
            type: net
          default_dns:
            type: dns
          special_domain:
            type: dns
            metric_groups:
              disable:
                - "top_qnames"
            filter:
              only_qname_suffix:
                - ".google.com"
                - ".ns1.com"
                - "slack.com"
`

const selectorTaps = `
version: "1.0"
visor:
  taps:
    anycast1:
      input_type: mock
      config:
        iface: eth0
      tags:
        virtual: true
        vhost: 1
        key: value
    anycast2:
      input_type: mock
      config:
        iface: eth0
      tags:
        virtual: true
        vhost: 2
        key: value
`

// selectorDoc is selectorTaps plus one policy whose input is given by input (indented 6).
func selectorDoc(input string) string {
	return selectorTaps + `
  policies:
    default_view:
      kind: collection
      handlers:
        modules:
          default_dns:
            type: dns
      input:
        input_type: mock
` + input
}

func mustDoc(t *testing.T, y string) *Document {
	t.Helper()
	d, err := ParseDocument([]byte(y), Options{})
	if err != nil {
		t.Fatalf("ParseDocument: %v", err)
	}
	return d
}

// resolve loads a whole document the way the agent does: file taps, then its policies.
func resolve(y string, opts Options) ([]Policy, *Document, error) {
	d, err := ParseDocument([]byte(y), opts)
	if err != nil {
		return nil, nil, err
	}
	ps, err := d.ResolvePolicies(TapIndex(d.Taps), opts)
	return ps, d, err
}

func TestEnvelope(t *testing.T) {
	deep := "visor:\n  config:\n    a: " + strings.Repeat("{b: ", MaxDepth-3) + "1" + strings.Repeat("}", MaxDepth-3) + "\n"
	tooDeep := "visor:\n  config:\n    a: " + strings.Repeat("{b: ", MaxDepth-2) + "1" + strings.Repeat("}", MaxDepth-2) + "\n"
	cases := []struct {
		name, in, want string // want "" = accepted; a prefix ending in ":" = prefix match
	}{
		{"empty", "", "empty data"},
		{"not a map", "invalid: schema", "invalid schema"},
		{"scalar document", "just text", "invalid schema"},
		{"comment only", "# nothing\n", "invalid schema"},
		{"visor scalar", "visor: 5", "invalid schema"},
		{"visor sequence", "visor: [a]", "invalid schema"},
		{"version 2.0", "version: \"2.0\"\nvisor:\n  taps: {}\n", "unsupported version"},
		{"version number 1", "version: 1\nvisor:\n  taps: {}\n", "unsupported version"},
		{"version null", "version:\nvisor:\n  taps: {}\n", "unsupported version"},
		{"version map", "version: {a: 1}\nvisor:\n  taps: {}\n", "unsupported version"},
		{"version unquoted 1.0", "version: 1.0\nvisor:\n", ""},
		{"version missing", "visor:\n", ""},
		{"visor before version, bad version", "visor:\nversion: \"0.9\"\n", "unsupported version"},
		{"schema checked before version", "version: \"2.0\"\n", "invalid schema"},
		{"yaml syntax", "visor: [\n", "invalid YAML:"},
		{"alias", "visor:\n  config: &a {x: 1}\n  taps: *a\n", "invalid YAML: anchors and aliases are not supported (line 2)"},
		{"anchor alone", "visor:\n  config: &a {x: 1}\n", "invalid YAML: anchors and aliases are not supported (line 2)"},
		{"billion laughs", "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nvisor:\n", "invalid YAML: anchors and aliases are not supported (line 1)"},
		{"depth at limit", deep, ""},
		{"depth over limit", tooDeep, "invalid YAML: nesting deeper than 32 levels (line 3)"},
		{"too large", "visor:\n# " + strings.Repeat("x", MaxDocumentBytes) + "\n", "document too large:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDocument([]byte(tc.in), Options{})
			checkErr(t, err, tc.want)
			// The envelope is shared: the admin API entry points answer the same, except that
			// an accepted envelope without taps/policies is an error for them.
			_, err = ParseTaps([]byte(tc.in), Options{})
			if tc.want == "" {
				checkErr(t, err, "no taps found in schema")
			} else {
				checkErr(t, err, tc.want)
			}
			_, err = ParsePolicies([]byte(tc.in), nil, Options{})
			if tc.want == "" {
				checkErr(t, err, "no policies found in schema")
			} else {
				checkErr(t, err, tc.want)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error %q", err)
	case want == "":
	case err == nil:
		t.Fatalf("no error, want %q", want)
	case strings.HasSuffix(want, ":"):
		if !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("error %q, want prefix %q", err, want)
		}
	case err.Error() != want:
		t.Fatalf("error %q, want %q", err, want)
	}
}

// test_taps.cpp: typed config and tags.
func TestTapsTyped(t *testing.T) {
	y := `
version: "1.0"
visor:
  taps:
    wired:
      input_type: pcap
      config:
        iface: en7
        number: 123
        boolean: true
      tags:
        number: 123
        boolean: true
        string: "value"
`
	taps, err := ParseTaps([]byte(y), Options{Single: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Tap{{
		Name:      "wired",
		InputType: "pcap",
		Config:    config.Map{"iface": "en7", "number": uint64(123), "boolean": true},
		Tags:      config.Map{"number": uint64(123), "boolean": true, "string": "value"},
	}}
	if !reflect.DeepEqual(taps, want) {
		t.Fatalf("got %#v\nwant %#v", taps, want)
	}
	d := mustDoc(t, y)
	if !reflect.DeepEqual(d.Taps, want) || d.Version != "1.0" {
		t.Fatalf("document taps %#v version %q", d.Taps, d.Version)
	}
}

func TestTapErrors(t *testing.T) {
	pcapOnly := Options{InputAvailable: func(s string) bool { return s == "pcap" || s == "mock" }}
	head := "version: \"1.0\"\nvisor:\n  taps:\n"
	cases := []struct {
		name, taps string
		opts       Options
		want       string
	}{
		{"no taps key", "", Options{}, "no taps found in schema"},
		{"taps is a list", "    - a\n", Options{}, "no taps found in schema"},
		{"two taps, single", "    a:\n      input_type: pcap\n    b:\n      input_type: pcap\n", Options{Single: true}, "only a single tap expected but got 2"},
		{"two taps, not single", "    a:\n      input_type: pcap\n    b:\n      input_type: pcap\n", Options{}, ""},
		{"tap not a map", "    a: pcap\n", Options{}, "expecting tap configuration map"},
		{"tap null", "    a:\n", Options{}, "expecting tap configuration map"},
		{"tap key not scalar", "    ? [a]\n    : {input_type: pcap}\n", Options{}, "expecting tap identifier"},
		{"no input_type", "    a:\n      config: {iface: eth0}\n", Options{}, "missing or invalid tap type key 'input_type'"},
		{"input_type list", "    a:\n      input_type: [pcap]\n", Options{}, "missing or invalid tap type key 'input_type'"},
		{"input_type null", "    a:\n      input_type:\n", Options{}, "missing or invalid tap type key 'input_type'"},
		{"unknown input type", "    a:\n      input_type: bogus\n", pcapOnly, "Tap 'a' requires input stream type 'bogus' which is not available"},
		{"config scalar", "    a:\n      input_type: pcap\n      config: eth0\n", Options{}, "tap configuration is not a map"},
		{"config null", "    a:\n      input_type: pcap\n      config:\n", Options{}, "tap configuration is not a map"},
		{"tags list", "    a:\n      input_type: pcap\n      tags: [a, b]\n", Options{}, "tap tags is not a map"},
		{"duplicate", "    a:\n      input_type: pcap\n    a:\n      input_type: pcap\n", Options{}, "module name 'a' already exists"},
		{"nested list in config", "    a:\n      input_type: pcap\n      config:\n        x: [[1]]\n", Options{}, "invalid tap config for tap 'a':"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTaps([]byte(head+tc.taps), tc.opts)
			checkErr(t, err, tc.want)
		})
	}
}

// Every policy load error of spec §4.1, each provoked alone.
func TestPolicyErrors(t *testing.T) {
	const head = "version: \"1.0\"\nvisor:\n" + anycastTap + "  policies:\n"
	const ok = "    p:\n      kind: collection\n      input:\n        tap: anycast\n        input_type: mock\n      handlers:\n        modules:\n          m:\n            type: net\n"
	// policy builds a policy p from its parts (each indented 6 spaces, "" = omitted).
	policy := func(kind, input, handlers, extra string) string {
		return "    p:\n" + kind + input + handlers + extra
	}
	const kind = "      kind: collection\n"
	const input = "      input:\n        tap: anycast\n        input_type: mock\n"
	handlers := func(modules string) string { return "      handlers:\n        modules:\n" + modules }
	const net = "          m:\n            type: net\n"
	cases := []struct {
		name, policies string
		opts           Options
		want           string
	}{
		{"accepted", ok, Options{}, ""},
		{"no policies", "", Options{}, "no policies found in schema"},
		{"single", ok + strings.Replace(ok, "    p:", "    q:", 1), Options{Single: true}, "only a single policy expected but got 2"},
		{"policy null", "    p:\n", Options{}, "expecting policy configuration map"},
		{"policy scalar", "    p: collection\n", Options{}, "expecting policy configuration map"},
		{"policy key not scalar", "    ? [p]\n    : {kind: collection}\n", Options{}, "expecting policy identifier"},
		{"already running", ok, Options{PolicyExists: func(n string) bool { return n == "p" }}, "policy with name 'p' already defined"},
		{"duplicate in document", ok + ok, Options{}, "policy with name 'p' already defined"},
		{"no kind", policy("", input, handlers(net), ""), Options{}, "missing or invalid policy kind at key 'kind'"},
		{"kind map", policy("      kind: {a: b}\n", input, handlers(net), ""), Options{}, "missing or invalid policy kind at key 'kind'"},
		{"unknown kind", policy("      kind: unknown_kind\n", input, handlers(net), ""), Options{}, "unknown policy kind: unknown_kind"},
		{"no input", policy(kind, "", handlers(net), ""), Options{}, "missing or invalid policy input stream configuration at key 'input'"},
		{"input scalar", policy(kind, "      input: anycast\n", handlers(net), ""), Options{}, "missing or invalid policy input stream configuration at key 'input'"},
		{"no input_type", policy(kind, "      input:\n        tap: anycast\n", handlers(net), ""), Options{}, "missing or invalid input_type at key 'input.input_type'"},
		{"input config scalar", policy(kind, input+"        config: x\n", handlers(net), ""), Options{}, "input configuration is not a map"},
		{"input filter list", policy(kind, input+"        filter: [bpf]\n", handlers(net), ""), Options{}, "input filter configuration is not a map"},
		{"no tap", policy(kind, "      input:\n        input_type: mock\n", handlers(net), ""), Options{}, "missing key 'input.tap' or key 'input.tap_selector'"},
		{"tap and selector", policy(kind, input+"        tap_selector:\n          any: [a: b]\n", handlers(net), ""), Options{}, "input can have only key 'input.tap' or key 'input.tap_selector'"},
		{"tap not scalar", policy(kind, "      input:\n        tap: [anycast]\n        input_type: mock\n", handlers(net), ""), Options{}, "invalid tap at key 'input.tap'"},
		{"tap missing", policy(kind, "      input:\n        tap: nonexist\n        input_type: mock\n", handlers(net), ""), Options{}, "tap 'nonexist' does not exist"},
		{"selector scalar", policy(kind, "      input:\n        tap_selector: x\n        input_type: mock\n", handlers(net), ""), Options{}, "'input.tap_selector' is not a map"},
		{"selector all and any", policy(kind, "      input:\n        tap_selector: {all: [], any: []}\n        input_type: mock\n", handlers(net), ""), Options{}, "input can have only key 'input.tap_selector.all' or key 'input.tap_selector.any'"},
		{"selector neither", policy(kind, "      input:\n        tap_selector: {some: []}\n        input_type: mock\n", handlers(net), ""), Options{}, "missing key 'input.tap_selector.all' or key 'input.tap_selector.any'"},
		{"selector any map", policy(kind, "      input:\n        tap_selector:\n          any:\n            virtual: true\n        input_type: mock\n", handlers(net), ""), Options{}, "'input.tap_selector.any' is not a sequence"},
		{"selector all scalar", policy(kind, "      input:\n        tap_selector: {all: x}\n        input_type: mock\n", handlers(net), ""), Options{}, "'input.tap_selector.all' is not a sequence"},
		{"input type mismatch", policy(kind, "      input:\n        tap: anycast\n        input_type: wrong_type\n", handlers(net), ""), Options{}, "input_type for policy specified tap 'anycast' doesn't match tap's defined input type: wrong_type/mock"},
		{"policy config scalar", policy(kind, input, handlers(net), "      config: x\n"), Options{}, "policy configuration is not a map"},
		{"policy config null", policy(kind, input, handlers(net), "      config:\n"), Options{}, "policy configuration is not a map"},
		{"merge_like_handlers not bool", policy(kind, input, handlers(net), "      config: {merge_like_handlers: yes}\n"), Options{}, "policy [p] failed to start: wrong type for key: merge_like_handlers"},
		{"no handlers", policy(kind, input, "", ""), Options{}, "missing or invalid handler configuration at key 'handlers'"},
		{"handlers list", policy(kind, input, "      handlers: [a]\n", ""), Options{}, "missing or invalid handler configuration at key 'handlers'"},
		{"no modules", policy(kind, input, "      handlers:\n        window_config: {num_periods: 2}\n", ""), Options{}, "missing or invalid handler modules at key 'modules'"},
		{"modules scalar", policy(kind, input, "      handlers:\n        modules: net\n", ""), Options{}, "missing or invalid handler modules at key 'modules'"},
		{"module without type", policy(kind, input, handlers(net+"          default_dns:\n            config: dns\n"), ""), Options{}, "missing or invalid stream handler type at key 'type'"},
		{"module type map", policy(kind, input, handlers("          m:\n            type: {a: b}\n"), ""), Options{}, "missing or invalid stream handler type at key 'type'"},
		{"module not a map", policy(kind, input, handlers("          m: net\n"), ""), Options{}, "expecting Handler configuration map"},
		{"module version list", policy(kind, input, handlers(net+"            require_version: [2]\n"), ""), Options{}, "Invalid stream handler version at key 'require_version'"},
		{"handler unavailable", policy(kind, input, handlers("          default_net:\n            type: net2\n"), ""), Options{HandlerAvailable: func(t, v string) bool { return t == "net" }}, "Policy 'p' requires stream handler type 'net2' and version '1.0' which is not available"},
		{"handler version unavailable", policy(kind, input, handlers(net+"            require_version: \"3.0\"\n"), ""), Options{HandlerAvailable: func(t, v string) bool { return v != "3.0" }}, "Policy 'p' requires stream handler type 'net' and version '3.0' which is not available"},
		{"module config scalar", policy(kind, input, handlers(net+"            config: not_a_map\n"), ""), Options{}, "stream handler configuration is not a map"},
		{"module filter scalar", policy(kind, input, handlers(net+"            filter: not_a_map\n"), ""), Options{}, "stream handler filter configuration is not a map"},
		{"metric groups list", policy(kind, input, handlers(net+"            metric_groups:\n              - top_qnames\n              - counters\n"), ""), Options{}, "stream handler metric groups is not a map"},
		{"metric groups allow", policy(kind, input, handlers(net+"            metric_groups:\n              allow:\n                - top_qnames\n"), ""), Options{}, "stream handler metric groups should contain enable and/or disable tags"},
		{"metric groups enable scalar", policy(kind, input, handlers(net+"            metric_groups: {enable: all}\n"), ""), Options{}, "invalid stream handler metrics for handler 'm': wrong type for key: enable"},
		{"duplicate module in chain", policy(kind, input, "      handlers:\n        modules:\n          - dns: {type: dns}\n          - dns: {type: dns}\n", ""), Options{}, "module name 'p-anycast-dns' already exists"},
		{"chain item scalar", policy(kind, input, "      handlers:\n        modules:\n          - dns\n", ""), Options{}, "expecting Handler configuration map"},
		{"window_config not a map is ignored", policy(kind, input, "      handlers:\n        window_config: 5\n        modules:\n"+net, ""), Options{}, ""},
		// §6.17 test_policies: nested maps in an input filter are fine; the missing handlers are not.
		{"nested filter then no handlers", policy(kind, input+"        filter:\n          bpf:\n            badmap: \"bad value\"\n", "", ""), Options{}, "missing or invalid handler configuration at key 'handlers'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := head + tc.policies
			d := mustDoc(t, y)
			_, err := ParsePolicies([]byte(y), TapIndex(d.Taps), tc.opts)
			checkErr(t, err, tc.want)
		})
	}
}

// Errors that need the selector taps (test_policies.cpp tap_selector_bad*).
func TestSelectorErrors(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"all with a missing tag", "        tap_selector:\n          all: [virtual: true, vhost: 1, non_existent_key: value]\n", "no tap match found for specified 'input.tap_selector' tags"},
		{"value is a map", "        tap_selector:\n          any:\n            - virtual:\n                vhost: 1\n                non_existent_key: value\n", "tag key 'virtual' must have scalar value"},
		{"value is null", "        tap_selector:\n          any:\n            - virtual:\n", "tag key 'virtual' must have scalar value"},
		{"two pairs in one item", "        tap_selector:\n          any:\n            - vhost: 1\n              key: value\n", "selector tag must contain only one key/value pair per sequence index"},
		{"scalar item", "        tap_selector:\n          any: [vhost]\n", "selector tag must contain only one key/value pair per sequence index"},
		{"empty all matches nothing", "        tap_selector:\n          all: []\n", "no tap match found for specified 'input.tap_selector' tags"},
		{"no tag matches", "        tap_selector:\n          any: [vhost: 3, virtual: false]\n", "no tap match found for specified 'input.tap_selector' tags"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := resolve(selectorDoc(tc.input), Options{})
			checkErr(t, err, tc.want)
		})
	}
	// The no-match error is the sentinel the admin API maps to 422.
	_, _, err := resolve(selectorDoc(cases[0].input), Options{})
	if !errors.Is(err, ErrNoTapMatch) {
		t.Errorf("errors.Is(%v, ErrNoTapMatch) = false", err)
	}
	// test_policies.cpp tap_selector_bad5: anycast1 (vhost 1) matches, anycast2's vhost is a
	// string, so comparing it with the number 1 is an error even though a tap matched.
	y := strings.Replace(selectorDoc("        tap_selector:\n          any:\n            - vhost: 1\n"), "vhost: 2\n", "vhost: 2a\n", 1)
	_, _, err = resolve(y, Options{})
	checkErr(t, err, "Tap [anycast2]: tag and selector value types are different for key 'vhost'")
	// And the other way round: a string selector against numeric tags fails at the first tap.
	_, _, err = resolve(selectorDoc("        tap_selector:\n          any: [vhost: one]\n"), Options{})
	checkErr(t, err, "Tap [anycast1]: tag and selector value types are different for key 'vhost'")
	_, _, err = resolve(selectorDoc("        tap_selector:\n          any: [virtual: 1]\n"), Options{})
	checkErr(t, err, "Tap [anycast1]: tag and selector value types are different for key 'virtual'")
}

func TestSelectorMatching(t *testing.T) {
	cases := []struct {
		name, selector string
		want           []string
	}{
		// §6.17: all [virtual: true, vhost: 1, key: value] matches only anycast1.
		{"all flow", "all: [virtual: true, vhost: 1, key: value]", []string{"anycast1"}},
		// §6.17: any [virtual: true, virtual: false, vhost: 1, key: value] matches.
		{"any block", "any:\n            - virtual: true\n            - virtual: false\n            - vhost: 1\n            - key: value", []string{"anycast1", "anycast2"}},
		{"all shared tags", "all: [virtual: true, key: value]", []string{"anycast1", "anycast2"}},
		{"any second tap", "any: [vhost: 2]", []string{"anycast2"}},
		{"any skips missing tags", "any: [nope: 1, vhost: 2]", []string{"anycast2"}},
		{"bool any case", "all: [virtual: TRUE, vhost: 2]", []string{"anycast2"}},
		{"quoted digits are numbers", "all: [vhost: \"1\"]", []string{"anycast1"}},
		{"leading zeros are numbers", "all: [vhost: 0001]", []string{"anycast1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps, _, err := resolve(selectorDoc("        tap_selector:\n          "+tc.selector+"\n"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ps[0].TapNames, tc.want) {
				t.Fatalf("TapNames %v, want %v", ps[0].TapNames, tc.want)
			}
		})
	}
	// Matches come out sorted whatever the order of the taps map's insertion.
	taps := map[string]Tap{}
	for _, n := range []string{"zeta", "alpha", "mid"} {
		taps[n] = Tap{Name: n, InputType: "mock", Tags: config.Map{"k": "v"}}
	}
	y := "visor:\n  policies:\n    p:\n      kind: collection\n      input:\n        input_type: mock\n        tap_selector: {any: [k: v]}\n      handlers:\n        modules: {}\n"
	ps, err := ParsePolicies([]byte(y), taps, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alpha", "mid", "zeta"}; !reflect.DeepEqual(ps[0].TapNames, want) {
		t.Fatalf("TapNames %v, want %v", ps[0].TapNames, want)
	}
}

// The reference checks in a fixed order; with two faults the earlier check wins.
func TestCheckOrder(t *testing.T) {
	const head = "visor:\n" + anycastTap + "  policies:\n    p:\n"
	cases := []struct {
		name, body, want string
	}{
		{"kind before input", "      kind: other\n", "unknown policy kind: other"},
		{"input before handlers", "      kind: collection\n      input: {tap: anycast}\n", "missing or invalid input_type at key 'input.input_type'"},
		{"input config before filter", "      kind: collection\n      input: {tap: anycast, input_type: mock, config: 1, filter: 2}\n", "input configuration is not a map"},
		{"handlers before tap", "      kind: collection\n      input: {tap: nonexist, input_type: mock}\n", "missing or invalid handler configuration at key 'handlers'"},
		{"tap before policy config", "      kind: collection\n      config: 1\n      input: {tap: nonexist, input_type: mock}\n      handlers: {modules: {m: {type: net}}}\n", "tap 'nonexist' does not exist"},
		{"policy config before input type", "      kind: collection\n      config: 1\n      input: {tap: anycast, input_type: pcap}\n      handlers: {modules: {m: {type: net}}}\n", "policy configuration is not a map"},
		{"input type before modules", "      kind: collection\n      input: {tap: anycast, input_type: pcap}\n      handlers: {modules: {m: {config: 1}}}\n", "input_type for policy specified tap 'anycast' doesn't match tap's defined input type: pcap/mock"},
		{"modules in order", "      kind: collection\n      input: {tap: anycast, input_type: mock}\n      handlers: {modules: {a: {type: net, config: 1}, b: {filter: 1}}}\n", "stream handler configuration is not a map"},
		{"type before filter", "      kind: collection\n      input: {tap: anycast, input_type: mock}\n      handlers: {modules: {a: {filter: 1}}}\n", "missing or invalid stream handler type at key 'type'"},
		{"filter before config", "      kind: collection\n      input: {tap: anycast, input_type: mock}\n      handlers: {modules: {a: {type: net, config: 1, filter: 1}}}\n", "stream handler filter configuration is not a map"},
		{"config before metric groups", "      kind: collection\n      input: {tap: anycast, input_type: mock}\n      handlers: {modules: {a: {type: net, config: 1, metric_groups: 1}}}\n", "stream handler configuration is not a map"},
		{"module errors before duplicates", "      kind: collection\n      input: {tap: anycast, input_type: mock}\n      handlers: {modules: [a: {type: net}, a: {type: net}, b: {config: 1}]}\n", "missing or invalid stream handler type at key 'type'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := resolve(head+tc.body, Options{})
			checkErr(t, err, tc.want)
		})
	}
}

// test_policies.cpp "Good Config happy path", as far as parsing goes.
func TestDefaultView(t *testing.T) {
	ps, d, err := resolve(defaultView, Options{Single: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("%d policies", len(ps))
	}
	p := ps[0]
	if p.Name != "default_view" || p.Kind != "collection" || p.InputType != "mock" || !reflect.DeepEqual(p.TapNames, []string{"anycast"}) {
		t.Fatalf("policy %+v", p)
	}
	if !reflect.DeepEqual(p.Ignored, []string{"description"}) {
		t.Errorf("Ignored %v", p.Ignored)
	}
	if want := (config.Map{"sample": "value", "bpf": "tcp or udp"}); !reflect.DeepEqual(p.InputConfig, want) {
		t.Errorf("input config %v", p.InputConfig)
	}
	if d.Taps[0].Config["iface"] != "eth0" {
		t.Errorf("tap config %v", d.Taps[0].Config)
	}
	if want := (map[string]config.Map{"dns": {"only_rcode": uint64(2)}}); !reflect.DeepEqual(d.Global, want) {
		t.Errorf("global %v", d.Global)
	}
	h := p.Handlers
	if h.Chained || !reflect.DeepEqual(h.Window, config.Map{"num_periods": uint64(5), "deep_sample_rate": uint64(100)}) {
		t.Errorf("handlers %+v", h)
	}
	var names []string
	for _, m := range h.Modules {
		names = append(names, p.Name+"-"+p.TapNames[0]+"-"+m.Name)
		if m.Version != "1.0" {
			t.Errorf("%s version %q", m.Name, m.Version)
		}
	}
	if want := []string{"default_view-anycast-default_net", "default_view-anycast-default_dns", "default_view-anycast-special_domain"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("module instance names %v, want %v", names, want)
	}
	merged := func(i int) config.Map {
		m := h.Modules[i]
		return m.Merged(d.Global[m.Type], h.WindowOr(nil))
	}
	if v, _, err := merged(1).Uint("only_rcode"); v != 2 || err != nil {
		t.Errorf("default_dns only_rcode %v %v", v, err)
	}
	sd := merged(2)
	if l, _, _ := sd.List("only_qname_suffix"); len(l) != 3 || l[0] != ".google.com" {
		t.Errorf("special_domain only_qname_suffix %v", l)
	}
	if v, _, _ := sd.Uint("only_rcode"); v != 2 {
		t.Errorf("special_domain only_rcode %v", v)
	}
	if l, _, _ := sd.List("disable"); !reflect.DeepEqual(l, []string{"top_qnames"}) {
		t.Errorf("special_domain disable %v", l)
	}
	if _, ok := merged(0)["only_rcode"]; ok {
		t.Errorf("net got the dns global config")
	}
	// Module order survives names that do not sort in YAML order.
	y := strings.NewReplacer("default_net", "zz", "default_dns", "aa", "special_domain", "mm").Replace(defaultView)
	ps, _, err = resolve(y, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ps[0].Handlers.Modules {
		got = append(got, m.Name)
	}
	if !reflect.DeepEqual(got, []string{"zz", "aa", "mm"}) {
		t.Errorf("order %v", got)
	}
}

func TestModuleForms(t *testing.T) {
	const head = "visor:\n" + anycastTap + "  policies:\n    p:\n      kind: collection\n      input: {tap: anycast, input_type: mock}\n      handlers:\n        modules:\n"
	dns := Module{Name: "default_dns", Type: "dns", Version: "1.0", Config: config.Map{"in_key": "in_value"}}
	net := Module{Name: "default_net", Type: "net", Version: "1.0"}
	cases := []struct {
		name, modules string
		chained       bool
		want          []Module
	}{
		// test_policies.cpp policies_config_hseq: `- name:` with sibling keys.
		{"sequence, sibling keys", "          - default_dns:\n            type: dns\n            config:\n              in_key: in_value\n          - default_net:\n            type: net\n", true, []Module{dns, net}},
		{"sequence, nested", "          - default_dns:\n              type: dns\n              config: {in_key: in_value}\n          - default_net: {type: net}\n", true, []Module{dns, net}},
		{"map", "          default_dns: {type: dns, config: {in_key: in_value}}\n          default_net: {type: net}\n", false, []Module{dns, net}},
		{"map, type under the name", "          default_dns:\n            default_dns: {type: dns, config: {in_key: in_value}}\n          default_net: {type: net}\n", false, []Module{dns, net}},
		{"require_version", "          - v2: {type: dns, require_version: \"2.0\"}\n", true, []Module{{Name: "v2", Type: "dns", Version: "2.0"}}},
		{"empty map", "{}", false, nil},
		{"empty sequence", "[]", true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := head + tc.modules
			if !strings.HasSuffix(tc.modules, "\n") { // flow style: on the modules: line
				y = strings.TrimSuffix(head, "\n") + " " + tc.modules + "\n"
			}
			ps, _, err := resolve(y, Options{})
			if err != nil {
				t.Fatal(err)
			}
			h := ps[0].Handlers
			if h.Chained != tc.chained || !reflect.DeepEqual(h.Modules, tc.want) {
				t.Fatalf("chained %v modules %#v\nwant %v %#v", h.Chained, h.Modules, tc.chained, tc.want)
			}
		})
	}
}

func TestMetricGroups(t *testing.T) {
	const head = "visor:\n" + anycastTap + "  policies:\n    p:\n      kind: collection\n      input: {tap: anycast, input_type: mock}\n      handlers:\n        modules:\n          m:\n            type: dns\n            filter: {only_rcode: 3, extra: f}\n            metric_groups: "
	cases := []struct {
		groups          string
		enable, disable []string
		filter          config.Map
	}{
		{"{enable: [top_ecs]}", []string{"top_ecs"}, nil, config.Map{"only_rcode": uint64(3), "extra": "f"}},
		{"{disable: [all], enable: [counters, quantiles]}", []string{"counters", "quantiles"}, []string{"all"}, config.Map{"only_rcode": uint64(3), "extra": "f"}},
		{"{enable: []}", []string{}, nil, config.Map{"only_rcode": uint64(3), "extra": "f"}},
		{"{enable: }", nil, nil, config.Map{"only_rcode": uint64(3), "extra": "f"}},
		// A stray key joins the filter (over it), where handler key validation rejects it.
		{"{enable: [a], extra: g}", []string{"a"}, nil, config.Map{"only_rcode": uint64(3), "extra": "g"}},
	}
	for _, tc := range cases {
		t.Run(tc.groups, func(t *testing.T) {
			ps, _, err := resolve(head+tc.groups+"\n", Options{})
			if err != nil {
				t.Fatal(err)
			}
			m := ps[0].Handlers.Modules[0]
			if !m.HasGroups || !reflect.DeepEqual(m.Enable, tc.enable) || !reflect.DeepEqual(m.Disable, tc.disable) || !reflect.DeepEqual(m.Filter, tc.filter) {
				t.Fatalf("module %#v", m)
			}
		})
	}
}

// Spec §4.1: global < module config < window < filter < metric_groups.
func TestMergedPrecedence(t *testing.T) {
	m := Module{
		Config:  config.Map{"a": "config", "b": "config", "c": "config", "d": "config"},
		Filter:  config.Map{"c": "filter", "d": "filter", "enable": []string{"from_filter"}},
		Enable:  []string{"counters"},
		Disable: []string{"all"},
	}
	global := config.Map{"g": "global", "a": "global"}
	window := config.Map{"b": "window", "c": "window", "num_periods": uint64(5)}
	got := m.Merged(global, window)
	want := config.Map{
		"g": "global", "a": "config", "b": "window", "c": "filter", "d": "filter",
		"num_periods": uint64(5), "enable": []string{"counters"}, "disable": []string{"all"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// The result is the caller's: changing it leaves the module alone.
	got["enable"].([]string)[0] = "x"
	got["a"] = "y"
	if m.Enable[0] != "counters" || m.Config["a"] != "config" {
		t.Fatalf("Merged aliases the module")
	}
	if got := (Module{}).Merged(nil, nil); len(got) != 0 {
		t.Fatalf("empty module merged to %v", got)
	}
	def := config.Map{"num_periods": uint64(5)}
	if w := (Handlers{}).WindowOr(def); !reflect.DeepEqual(w, def) {
		t.Errorf("absent window_config: %v", w)
	}
	// Present window_config is verbatim: missing keys are not filled from the defaults.
	if w := (Handlers{Window: config.Map{"topn_count": uint64(3)}}).WindowOr(def); !reflect.DeepEqual(w, config.Map{"topn_count": uint64(3)}) {
		t.Errorf("present window_config: %v", w)
	}
}

func TestDocument(t *testing.T) {
	y := `
visor:
  config:
    admin_api: true
    port: 10854
    host: 0.0.0.0
  extra: 1
  taps:
    t1:
      input_type: pcap
      config: {iface: eth0}
      comment: none
  global_handler_config:
    dns: {only_rcode: 2}
    nonexistent_type: {x: 1}
    net: {}
  policies:
    p1:
      kind: collection
      input: {tap: t1, input_type: pcap, filter: {bpf: "port 53"}}
      handlers: {modules: {dns: {type: dns, bogus: 1}}}
      config: {merge_like_handlers: true}
`
	d := mustDoc(t, y)
	if d.Version != "1.0" || !d.HasPolicies() {
		t.Fatalf("version %q policies %v", d.Version, d.HasPolicies())
	}
	if want := (config.Map{"admin_api": true, "port": uint64(10854), "host": "0.0.0.0"}); !reflect.DeepEqual(d.VisorConfig, want) {
		t.Errorf("visor config %v", d.VisorConfig)
	}
	if !reflect.DeepEqual(d.Ignored, []string{"visor.extra"}) || !reflect.DeepEqual(d.Taps[0].Ignored, []string{"comment"}) {
		t.Errorf("ignored %v / %v", d.Ignored, d.Taps[0].Ignored)
	}
	// The reference quirk stops at the first unknown handler type; every entry is kept here.
	if len(d.Global) != 3 || d.Global["net"] == nil {
		t.Errorf("global %v", d.Global)
	}
	// A registry tap and the file's taps together; the policy selects the file's.
	registry := []Tap{{Name: "default", InputType: "pcap"}}
	ps, err := d.ResolvePolicies(TapIndex(registry, d.Taps), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	if !p.MergeLikeHandlers || p.InputFilter["bpf"] != "port 53" || !reflect.DeepEqual(p.Handlers.Modules[0].Ignored, []string{"bogus"}) {
		t.Errorf("policy %+v", p)
	}

	// Sections that are not maps are ignored, as the reference does.
	d = mustDoc(t, "visor:\n  taps: [a]\n  policies: 1\n  global_handler_config: x\n  config: 2\n")
	if d.Taps != nil || d.Global != nil || d.HasPolicies() || d.VisorConfig != nil {
		t.Errorf("document %+v", d)
	}
	if want := []string{"visor.taps", "visor.policies", "visor.global_handler_config", "visor.config"}; !reflect.DeepEqual(d.Ignored, want) {
		t.Errorf("ignored %v", d.Ignored)
	}
	if ps, err := d.ResolvePolicies(nil, Options{}); ps != nil || err != nil {
		t.Errorf("no policies: %v %v", ps, err)
	}

	for _, tc := range []struct{ in, want string }{
		{"visor:\n  global_handler_config:\n    only_rcode: 2\n", "expecting global_handler_config configuration map"},
		{"visor:\n  global_handler_config:\n    dns: {a: 1}\n    dns: {b: 1}\n", "stream handler type 'dns' already exists in global_handler_config configuration"},
		{"visor:\n  taps:\n    a: {config: {}}\n", "missing or invalid tap type key 'input_type'"},
	} {
		_, err := ParseDocument([]byte(tc.in), Options{})
		checkErr(t, err, tc.want)
	}
}

func TestTapIndex(t *testing.T) {
	a := []Tap{{Name: "x", InputType: "pcap"}, {Name: "y", InputType: "pcap"}}
	b := []Tap{{Name: "x", InputType: "dnstap"}}
	idx := TapIndex(a, b)
	keys := make([]string, 0, len(idx))
	for k := range idx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !reflect.DeepEqual(keys, []string{"x", "y"}) || idx["x"].InputType != "dnstap" {
		t.Fatalf("index %v", idx)
	}
}

// A JSON body (the admin API accepts application/json) is YAML too.
func TestJSONBody(t *testing.T) {
	body := `{"version":"1.0","visor":{"taps":{"j":{"input_type":"dnstap","config":{"socket":"/tmp/s"},"tags":{"n":7}}}}}`
	taps, err := ParseTaps([]byte(body), Options{Single: true})
	if err != nil {
		t.Fatal(err)
	}
	if taps[0].Name != "j" || taps[0].InputType != "dnstap" || taps[0].Tags["n"] != uint64(7) {
		t.Fatalf("%+v", taps[0])
	}
}

func BenchmarkParseDocument(b *testing.B) {
	data := []byte(defaultView)
	b.ReportAllocs()
	for b.Loop() {
		d, err := ParseDocument(data, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.ResolvePolicies(TapIndex(d.Taps), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
