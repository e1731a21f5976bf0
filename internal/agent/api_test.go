package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pktvisor-go/pktvisor/internal/reader"
)

// samplePcap is the repository's sample capture (unbound answering dnsperf on loopback).
func samplePcap(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs("../../testdata/sample.pcap")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestAgent(t testing.TB) (*Agent, *httptest.Server) {
	t.Helper()
	a := New(Options{Periods: 5, Workers: 2, Version: "test"})
	srv := httptest.NewServer(a.Handler(true, nil))
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return a, srv
}

// do sends a request and returns the status and body.
func do(t testing.TB, method, url, ctype, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitInputsDone waits until every input has read its whole capture file.
func waitInputsDone(t testing.TB, a *Agent) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.RLock()
		busy := 0
		for _, in := range a.inputs {
			in.mu.Lock()
			if in.running {
				busy++
			}
			in.mu.Unlock()
		}
		a.mu.RUnlock()
		if busy == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("inputs still running after 20 s")
}

func tapYAML(name, file string) string {
	return fmt.Sprintf("visor:\n  taps:\n    %s:\n      input_type: pcap\n      config:\n        pcap_file: %q\n        host_spec: 127.0.0.1/32,::1/128\n      tags:\n        site: lab\n        anycast: true\n", name, file)
}

func policyYAML(name, tap, modules string) string {
	return fmt.Sprintf("visor:\n  policies:\n    %s:\n      kind: collection\n      input:\n        tap: %s\n        input_type: pcap\n      handlers:\n        window_config:\n          num_periods: 1\n        modules:\n%s", name, tap, modules)
}

const defaultModules = "          net:\n            type: net\n          dns:\n            type: dns\n          pcap_stats:\n            type: pcap\n"

func decode(t testing.TB, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("bad JSON %q: %v", body, err)
	}
	return m
}

// The agent's numbers for a capture file equal pktvisor-reader's on the same file (the reader
// is checked against tshark in its own tests).
func TestPolicyMetricsEqualReader(t *testing.T) {
	a, srv := newTestAgent(t)
	file := samplePcap(t)
	if st, body := do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", tapYAML("lab", file)); st != 201 {
		t.Fatalf("POST tap: %d %s", st, body)
	}
	if st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", policyYAML("p1", "lab", defaultModules)); st != 201 {
		t.Fatalf("POST policy: %d %s", st, body)
	}
	waitInputsDone(t, a)
	st, body := do(t, "GET", srv.URL+"/api/v1/policies/p1/metrics/bucket/0", "", "")
	if st != 200 {
		t.Fatalf("bucket/0: %d %s", st, body)
	}
	got := decode(t, body)["p1"].(map[string]any)

	res, err := reader.Run(context.Background(), reader.Options{File: file, Periods: 1, HostSpec: "127.0.0.1/32,::1/128", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := res.Output["1m"].(map[string]any)
	rt, _ := json.Marshal(want)
	var wantJSON map[string]any
	json.Unmarshal(rt, &wantJSON)
	for inst, schema := range map[string]string{"p1-lab-net": "packets", "p1-lab-dns": "dns", "p1-lab-pcap_stats": "pcap"} {
		g := got[inst].(map[string]any)[schema].(map[string]any)
		w := wantJSON[schema].(map[string]any)
		for _, key := range []string{"total", "wire_packets", "xact", "cardinality", "top_qname2", "tcp", "udp", "ipv4", "ipv6", "in", "out", "tcp_reassembly_errors", "period"} {
			gv, _ := json.Marshal(g[key])
			wv, _ := json.Marshal(w[key])
			if key == "xact" && g[key] != nil {
				// Latency quantiles are sketch estimates of the same data: compare counts.
				gv, _ = json.Marshal(g[key].(map[string]any)["counts"])
				wv, _ = json.Marshal(w[key].(map[string]any)["counts"])
			}
			if !bytes.Equal(gv, wv) {
				t.Errorf("%s %s: agent %s, reader %s", inst, key, gv, wv)
			}
		}
	}
	if got["p1-lab-dns"].(map[string]any)["dns"].(map[string]any)["wire_packets"].(map[string]any)["total"].(float64) == 0 {
		t.Error("no DNS packets counted")
	}
}

// Every route's status codes and error messages.
func TestAPIErrors(t *testing.T) {
	a, srv := newTestAgent(t)
	file := samplePcap(t)
	if st, body := do(t, "POST", srv.URL+"/api/v1/taps", "application/json",
		`{"visor":{"taps":{"lab":{"input_type":"pcap","config":{"pcap_file":`+fmt.Sprintf("%q", file)+`},"tags":{"site":"lab"}}}}}`); st != 201 {
		t.Fatalf("POST tap (JSON): %d %s", st, body)
	}
	if st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", policyYAML("p1", "lab", defaultModules)); st != 201 {
		t.Fatalf("POST policy: %d %s", st, body)
	}
	waitInputsDone(t, a)
	big := strings.Repeat("#", MaxBodyBytes+10)
	cases := []struct {
		method, path, ctype, body string
		status                    int
		msg                       string
	}{
		{"GET", "/api/v1/policies/nope", "", "", 404, "policy does not exists"},
		{"GET", "/api/v1/policies/nope/metrics/window/5", "", "", 404, "policy does not exists"},
		{"GET", "/api/v1/taps/nope", "", "", 404, "tap does not exists"},
		{"GET", "/api/v1/policies/p1/metrics/window/5", "", "", 425, "invalid metrics period, specify [2, 1]"},
		{"GET", "/api/v1/policies/p1/metrics/bucket/3", "", "", 425, "invalid metrics period, specify [0, 0]"},
		{"GET", "/api/v1/policies/p1/metrics/bucket/x", "", "", 400, "invalid metrics period"},
		{"GET", "/api/v1/policies/bad$name", "", "", 404, "invalid tap or policy name"},
		{"GET", "/api/v1/metrics/bucket/0", "", "", 404, `no \"default\" policy exists`},
		{"GET", "/api/v1/nothing", "", "", 404, "no such route"},
		{"POST", "/api/v1/policies", "", "x", 400, "must include Content-Type header"},
		{"POST", "/api/v1/policies", "text/plain", "x", 400, "Content-Type not supported"},
		{"POST", "/api/v1/policies", "application/x-yaml", "", 400, "empty data"},
		{"POST", "/api/v1/policies", "application/x-yaml", "a: [", 400, ""},
		{"POST", "/api/v1/policies", "application/x-yaml", "visor: {}", 400, "no policies found in schema"},
		{"POST", "/api/v1/policies", "application/x-yaml", "version: \"2.0\"\nvisor: {}", 400, "unsupported version"},
		{"POST", "/api/v1/policies", "application/x-yaml", policyYAML("p1", "lab", defaultModules), 409, "policy with name 'p1' already defined"},
		{"POST", "/api/v1/policies", "application/x-yaml", policyYAML("p2", "nope", defaultModules), 400, "tap 'nope' does not exist"},
		{"POST", "/api/v1/policies", "application/x-yaml", strings.Replace(policyYAML("p2", "lab", defaultModules), "tap: lab", "tap_selector:\n          any:\n            - site: mars", 1), 422, "no tap match found for specified 'input.tap_selector' tags"},
		{"POST", "/api/v1/policies", "application/x-yaml", policyYAML("p2", "lab", "          d:\n            type: dns\n            config:\n              bogus: 1\n"), 400, "bogus is an invalid/unsupported config or filter"},
		{"POST", "/api/v1/policies", "application/x-yaml", policyYAML("p2", "lab", "          d:\n            type: dnsx\n"), 400, "Policy 'p2' requires stream handler type 'dnsx' and version '1.0' which is not available"},
		{"POST", "/api/v1/policies", "application/x-yaml", big, 413, "request body larger than"},
		{"POST", "/api/v1/policies", "application/x-yaml", strings.Replace(policyYAML("p2", "lab", defaultModules), "input_type: pcap\n", "input_type: pcap\n        config:\n          pcap_file: /nonexistent.pcap\n", 1), 422, "policy [p2] failed to start: "},
		{"POST", "/api/v1/policies", "application/x-yaml", strings.Replace(policyYAML("p2", "lab", defaultModules), "input_type: pcap\n", "input_type: pcap\n        config:\n          bogus: 1\n", 1), 422, "bogus is an invalid/unsupported config or filter. The valid configs/filters are: iface, bpf, host_spec, pcap_source, pcap_file, debug, tcp_packet_reassembly_cache_limit"},
		{"POST", "/api/v1/policies", "application/x-yaml", strings.Replace(policyYAML("p2", "lab", defaultModules), "input_type: pcap\n", "input_type: pcap\n        filter:\n          bpf: \"port 99999\"\n", 1), 422, "policy [p2] failed to start: "},
		{"POST", "/api/v1/taps", "application/x-yaml", tapYAML("lab", file), 409, "module name 'lab' already exists"},
		{"POST", "/api/v1/taps", "application/x-yaml", "visor:\n  taps:\n    t:\n      config: {}\n", 400, "missing or invalid tap type key 'input_type'"},
		{"DELETE", "/api/v1/policies/nope", "", "", 404, "policy does not exists"},
		{"DELETE", "/api/v1/taps/nope", "", "", 404, "tap does not exists"},
	}
	for _, c := range cases {
		st, body := do(t, c.method, srv.URL+c.path, c.ctype, c.body)
		if st != c.status {
			t.Errorf("%s %s: status %d, want %d (%s)", c.method, c.path, st, c.status, body)
			continue
		}
		if !strings.Contains(body, c.msg) {
			t.Errorf("%s %s: body %q lacks %q", c.method, c.path, body, c.msg)
		}
		if st >= 400 && !strings.HasPrefix(body, `{"error":`) && !strings.HasPrefix(c.path, "/metrics") {
			t.Errorf("%s %s: error body is not {\"error\": ...}: %q", c.method, c.path, body)
		}
	}
	// A policy that failed left nothing behind: one input, its resources policy, p1.
	a.mu.RLock()
	nIn, nPol := len(a.inputs), len(a.policies)
	a.mu.RUnlock()
	if nIn != 1 || nPol != 2 {
		t.Errorf("after failed creations: %d inputs, %d policies; want 1, 2", nIn, nPol)
	}
}

// Without --admin-api the admin routes do not exist.
func TestAdminRoutesOff(t *testing.T) {
	a := New(Options{Version: "test"})
	defer a.Close()
	srv := httptest.NewServer(a.Handler(false, nil))
	defer srv.Close()
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/taps"}, {"POST", "/api/v1/policies"}, {"DELETE", "/api/v1/policies/x"},
		{"DELETE", "/api/v1/taps/x"}, {"DELETE", "/api/v1/server"},
	} {
		st, body := do(t, c.method, srv.URL+c.path, "application/x-yaml", "visor: {}")
		if st != 404 || !strings.Contains(body, "--admin-api") {
			t.Errorf("%s %s: %d %s, want 404 naming --admin-api", c.method, c.path, st, body)
		}
	}
	if st, body := do(t, "GET", srv.URL+"/api/v1/metrics/app", "", ""); st != 200 || !strings.Contains(body, `"up_time_min"`) {
		t.Errorf("app: %d %s", st, body)
	}
	if st, _ := do(t, "GET", srv.URL+"/metrics", "", ""); st != 200 {
		t.Errorf("/metrics without a default policy: %d", st)
	}
}

// Two policies on the same tap and config share one input; the input and its resources
// policy go with the last of them.
func TestInputSharingAndLifecycle(t *testing.T) {
	a, srv := newTestAgent(t)
	file := samplePcap(t)
	// One document: its inputs start after all its policies are attached, so both policies
	// see the whole file (a policy added through the API to a running file input sees only
	// the rest of it).
	doc := tapYAML("lab", file) + strings.TrimPrefix(policyYAML("p1", "lab", defaultModules), "visor:\n") +
		strings.TrimPrefix(policyYAML("p2", "lab", defaultModules), "visor:\n  policies:\n")
	if _, err := a.LoadConfig([]byte(doc)); err != nil {
		t.Fatalf("LoadConfig: %v\n%s", err, doc)
	}
	_, body := do(t, "GET", srv.URL+"/api/v1/policies", "", "")
	pols := decode(t, body)
	if len(pols) != 3 {
		t.Fatalf("policies %v: want p1, p2 and one resources policy", keys(pols))
	}
	in1 := keys(pols["p1"].(map[string]any)["input"].(map[string]any))
	in2 := keys(pols["p2"].(map[string]any)["input"].(map[string]any))
	if len(in1) != 1 || fmt.Sprint(in1) != fmt.Sprint(in2) || !strings.HasPrefix(in1[0], "lab-") {
		t.Fatalf("inputs %v and %v: want one shared lab-<hash> input", in1, in2)
	}
	if _, ok := pols[in1[0]+"-resources"]; !ok {
		t.Errorf("no %s-resources policy in %v", in1[0], keys(pols))
	}
	waitInputsDone(t, a)
	_, b1 := do(t, "GET", srv.URL+"/api/v1/policies/p1/metrics/bucket/0", "", "")
	_, b2 := do(t, "GET", srv.URL+"/api/v1/policies/p2/metrics/bucket/0", "", "")
	w1 := decode(t, b1)["p1"].(map[string]any)["p1-lab-dns"]
	w2 := decode(t, b2)["p2"].(map[string]any)["p2-lab-dns"]
	j1, _ := json.Marshal(w1)
	j2, _ := json.Marshal(w2)
	if !bytes.Equal(j1, j2) {
		t.Errorf("policies on one input disagree:\n%s\n%s", j1, j2)
	}
	if st, _ := do(t, "DELETE", srv.URL+"/api/v1/policies/p1", "", ""); st != 200 {
		t.Fatal("DELETE p1")
	}
	if st, _ := do(t, "DELETE", srv.URL+"/api/v1/policies/"+in1[0]+"-resources", "", ""); st != 404 {
		t.Error("a resources policy must not be deletable by itself")
	}
	a.mu.RLock()
	n := len(a.inputs)
	a.mu.RUnlock()
	if n != 1 {
		t.Errorf("input gone while p2 uses it")
	}
	do(t, "DELETE", srv.URL+"/api/v1/policies/p2", "", "")
	_, body = do(t, "GET", srv.URL+"/api/v1/policies", "", "")
	if len(decode(t, body)) != 0 {
		t.Errorf("policies left after deleting all: %s", body)
	}
	a.mu.RLock()
	n = len(a.inputs)
	a.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d inputs left", n)
	}
}

// Prometheus output parses with the official parser, has one TYPE per family and the
// reference's labels.
func TestPrometheusRoutes(t *testing.T) {
	a, srv := newTestAgent(t)
	a.opts.PromInstance = `node "1"`
	do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", tapYAML("lab", samplePcap(t)))
	for _, p := range []string{"p1", "p2"} {
		do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", policyYAML(p, "lab", defaultModules))
	}
	waitInputsDone(t, a)
	for _, path := range []string{"/api/v1/policies/p1/metrics/prometheus", "/api/v1/policies/__all/metrics/prometheus"} {
		st, body := do(t, "GET", srv.URL+path, "", "")
		if st != 200 {
			t.Fatalf("%s: %d", path, st)
		}
		types := map[string]int{}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "# TYPE ") {
				types[strings.Fields(line)[2]]++
			}
		}
		for name, n := range types {
			if n != 1 {
				t.Errorf("%s: %d TYPE lines for %s", path, n, name)
			}
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		f := fams["dns_wire_packets_queries"]
		if f == nil {
			t.Fatalf("%s: no dns_wire_packets_queries", path)
		}
		handlers := map[string]bool{}
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["instance"] != `node "1"` || labels["tap"] != "lab" || !strings.HasSuffix(labels["handler"], "-lab-dns") {
				t.Errorf("%s: labels %v", path, labels)
			}
			handlers[labels["handler"]] = true
		}
		if want := map[bool]int{true: 2, false: 1}[strings.Contains(path, "__all")]; len(handlers) != want {
			t.Errorf("%s: handlers %v, want %d", path, handlers, want)
		}
	}
	if st, body := do(t, "GET", srv.URL+"/api/v1/policies/nope/metrics/prometheus", "", ""); st != 404 || body != "policy does not exists" {
		t.Errorf("missing policy: %d %q", st, body)
	}
}

// merge_like_handlers: two dns modules become one dns_merged handler with their sum.
func TestMergeLikeHandlers(t *testing.T) {
	a, srv := newTestAgent(t)
	do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", tapYAML("lab", samplePcap(t)))
	body := strings.Replace(policyYAML("m", "lab", "          d1:\n            type: dns\n          d2:\n            type: dns\n"),
		"      kind: collection\n", "      kind: collection\n      config:\n        merge_like_handlers: true\n", 1)
	if st, b := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", body); st != 201 {
		t.Fatalf("POST: %d %s", st, b)
	}
	// Its own tap, hence its own input: a policy joining a running file input sees only the rest.
	do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", tapYAML("lab2", samplePcap(t)))
	do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", policyYAML("single", "lab2", "          d:\n            type: dns\n"))
	waitInputsDone(t, a)
	_, mb := do(t, "GET", srv.URL+"/api/v1/policies/m/metrics/bucket/0", "", "")
	_, sb := do(t, "GET", srv.URL+"/api/v1/policies/single/metrics/bucket/0", "", "")
	merged := decode(t, mb)["m"].(map[string]any)
	if keys(merged)[0] != "dns_merged" || len(merged) != 1 {
		t.Fatalf("merged keys %v", keys(merged))
	}
	mq := merged["dns_merged"].(map[string]any)["dns"].(map[string]any)["wire_packets"].(map[string]any)["total"].(float64)
	sq := decode(t, sb)["single"].(map[string]any)["single-lab2-d"].(map[string]any)["dns"].(map[string]any)["wire_packets"].(map[string]any)["total"].(float64)
	if mq != 2*sq || sq == 0 {
		t.Errorf("merged total %v, want 2 × %v", mq, sq)
	}
	_, pb := do(t, "GET", srv.URL+"/api/v1/policies/m/metrics/prometheus", "", "")
	if !strings.Contains(pb, `handler="dns_merged"`) {
		t.Errorf("prometheus lacks handler=\"dns_merged\"")
	}
}

// Concurrent creates, deletes and reads (run with -race): no crash, no deadlock, nothing left.
func TestConcurrentLifecycle(t *testing.T) {
	a, srv := newTestAgent(t)
	file := samplePcap(t)
	do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", tapYAML("lab", file))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				name := fmt.Sprintf("g%d_%d", g, i)
				st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", policyYAML(name, "lab", defaultModules))
				if st != 201 {
					t.Errorf("POST %s: %d %s", name, st, body)
					return
				}
				for _, p := range []string{"/api/v1/policies/__all/metrics/bucket/0", "/api/v1/policies/" + name + "/metrics/prometheus", "/api/v1/policies", "/metrics"} {
					if st, body := do(t, "GET", srv.URL+p, "", ""); st != 200 {
						t.Errorf("GET %s: %d %s", p, st, body)
					}
				}
				if st, _ := do(t, "DELETE", srv.URL+"/api/v1/policies/"+name, "", ""); st != 200 {
					t.Errorf("DELETE %s: %d", name, st)
				}
			}
		}()
	}
	wg.Wait()
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.inputs) != 0 || len(a.policies) != 0 {
		t.Errorf("left: %d inputs, %d policies", len(a.inputs), len(a.policies))
	}
	_ = runtime.NumGoroutine()
}

func keys(m map[string]any) []string { return sortedKeys(m) }
