package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// Admin request bodies are untrusted: whatever the body, the agent answers with a status
// below 500, never panics, and a failed request leaves no input behind.
func FuzzAdminBodies(f *testing.F) {
	file := samplePcap(f)
	seeds := []string{
		"",
		"visor: {}",
		tapYAML("t1", file),
		policyYAML("p", "lab", defaultModules),
		policyYAML("p", "lab", "          - a:\n              type: dns\n          - b:\n              type: net\n"),
		strings.Replace(policyYAML("p", "lab", defaultModules), "tap: lab", "tap_selector:\n          all:\n            - site: lab", 1),
		`{"visor":{"policies":{"p":{"kind":"collection","input":{"tap":"lab","input_type":"pcap","config":{"pcap_file":"/nonexistent"}},"handlers":{"modules":{"d":{"type":"dns"}}}}}}}`,
		`{"visor":{"policies":{"p":{"kind":"collection","input":{"tap":"lab","input_type":"pcap","filter":{"bpf":"port 53"}},"handlers":{"modules":{"d":{"type":"dns","config":{"only_rcode":[2,3]}}}}}}}}`,
		"visor:\n  policies:\n    p: &a [*a]\n",
		"version: 1.0\nvisor:\n  taps:\n    x:\n      input_type: dnstap\n",
		`{"visor":{"policies":{"p":{"kind":"collection","input":{"tap":"lab","input_type":"dnstap","filter":{"only_hosts":["10.0.0.0/8","::/0"]}},"handlers":{"modules":{"d":{"type":"dns"}}}}}}}`,
		"visor:\n  policies:\n    p:\n      kind: collection\n      input:\n        tap: d\n        input_type: dnstap\n        config:\n          only_hosts: [1.2.3.4/33]\n      handlers:\n        modules:\n          n:\n            type: net\n",
	}
	for _, s := range seeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, body string, policy bool) {
		for _, key := range []string{"iface", "pcap_file", "pcap_source", "dnstap_file", "socket", "tcp"} {
			if strings.Contains(body, key) {
				// A dnstap socket would bind (and replace a stale socket) anywhere on the host.
				t.Skip("would open a live capture, a socket or another file")
			}
		}
		a := New(Options{Workers: 1, Version: "fuzz"})
		defer a.Close()
		h := a.Handler(true, nil)
		// A tap the bodies can name, on the sample file (never a live interface: the fuzzer
		// must not open captures on the host).
		if _, err := a.AddTaps([]byte(tapYAML("lab", file))); err != nil {
			t.Fatal(err)
		}
		path := "/api/v1/taps"
		if policy {
			path = "/api/v1/policies"
		}
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-yaml")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
		if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
			if !strings.HasPrefix(rec.Body.String(), `{"error":`) {
				t.Fatalf("error without message: %d %q", rec.Code, rec.Body.String())
			}
			a.mu.RLock()
			n := len(a.inputs)
			a.mu.RUnlock()
			if n != 0 {
				t.Fatalf("failed request left %d inputs: %q", n, body)
			}
		}
	})
}

// FuzzAggregatePush: any pushed bytes (a container whose header, configuration and bucket
// records an attacker chose) are refused with an error or stored and merged into views that
// render, never a panic.
func FuzzAggregatePush(f *testing.F) {
	a := New(Options{Periods: 5, Workers: 1, PromInstance: "seed"})
	defer a.Close()
	doc := "visor:\n  taps:\n    tap:\n      input_type: pcap\n      config:\n        pcap_file: ../../testdata/sample.pcap\n  policies:\n    default:\n      kind: collection\n      input:\n        tap: tap\n        input_type: pcap\n      handlers:\n        modules:\n          net:\n            type: net\n          dns:\n            type: dns\n          pcap:\n            type: pcap\n"
	if _, err := a.LoadConfig([]byte(doc)); err != nil {
		f.Fatal(err)
	}
	waitInputsDone(f, a)
	seed, err := a.SketchBucket("default", 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("PVSK\x01\x02{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := NewAggregator(AggregateOptions{AcceptPush: true, Periods: 3})
		if err != nil {
			t.Fatal(err)
		}
		if g.Push(data) != nil {
			return
		}
		for _, sel := range []metrics.Selection{{Bucket: 0}, {Window: 3}} {
			g.policyJSON(sel) // an error (a configuration this build refuses) is fine
		}
		g.prom(metrics.NewProm(""), true)
	})
}
