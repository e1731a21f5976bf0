package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Three agents read the same capture (bucket 4 closed in each); pktvisord --aggregate pulls two
// and the third pushes to it (--aggregate-push): every per-minute count triples, the
// distinct-name count of the union of identical sets stays the single agent's, the top-N
// estimates triple, /metrics has the
// merged families and both agents up, and the view lists both agents as complete.
func TestAggregatorBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three pktvisord processes (-short)")
	}
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	a := startPushAgent(t, "--prom-instance", "pop-a")
	b := startPushAgent(t, "--prom-instance", "pop-b")
	t.Setenv("PKTVISORD_AGGREGATE_TOKEN", "t0ken") // read by the aggregator and the pushing agent
	startPushAgent(t, "--prom-instance", "pop-c", "--aggregate-push", base, "--aggregate-policy", "x", "--aggregate-interval", "1")
	var log strings.Builder
	cmd := exec.Command(a.cmd.Path, "--aggregate", a.base+","+b.base, "--aggregate-accept-push", "--aggregate-policy", "x", "--aggregate-interval", "1",
		"-l", "127.0.0.1", "-p", strconv.Itoa(port), "--prom-instance", "global")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("aggregator log:\n%s", log.String())
		}
	}()
	var view map[string]any
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m, err := getJSON(base, "/api/v1/policies/x/metrics/bucket/1")
		if err == nil {
			if st, _ := m["x"].(map[string]any)["aggregate"].(map[string]any); st["complete"] == true && len(st["included"].([]any)) == 3 {
				view = m["x"].(map[string]any)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete merged bucket/1: %v %v", err, m)
		}
	}
	one := a.buckets[1]["x-gen-dns"].(map[string]any)["dns"]
	merged := view["dns_merged"].(map[string]any)["dns"]
	for _, p := range [][]string{{"wire_packets", "total"}, {"wire_packets", "queries"}, {"wire_packets", "nxdomain"}, {"xact", "counts", "total"}} {
		if got, want := jnum(merged, p...), 3*jnum(one, p...); got != want || want == 0 {
			t.Errorf("dns.%s: merged %v, want 3 × %v", strings.Join(p, "."), got, want/3)
		}
	}
	if got, want := jnum(merged, "cardinality", "qname"), jnum(one, "cardinality", "qname"); got != want {
		t.Errorf("cardinality.qname: merged %v, want the single agent's %v (same names)", got, want)
	}
	top1 := one.(map[string]any)["top_qname2"].([]any)[0].(map[string]any)
	mtop1 := merged.(map[string]any)["top_qname2"].([]any)[0].(map[string]any)
	if mtop1["name"] != top1["name"] || mtop1["estimate"].(float64) != 3*top1["estimate"].(float64) {
		t.Errorf("top_qname2[0]: merged %v, single %v", mtop1, top1)
	}
	if _, ok := merged.(map[string]any)["top_qname2_max_error"]; !ok {
		t.Error("no top_qname2_max_error beside the merged list")
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`dns_wire_packets_total{instance="global",policy="x"} %v`, jnum(merged, "wire_packets", "total")),
		fmt.Sprintf(`pktvisord_aggregate_agent_up{instance="global",agent=%q} 1`, a.base),
		fmt.Sprintf(`pktvisord_aggregate_agent_up{instance="global",agent=%q} 1`, b.base),
		`pktvisord_aggregate_agent_up{instance="global",agent="push:pop-c"} 1`,
		`pktvisord_build_info{instance="global",version=`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics: no %q", want)
		}
	}
	if out, err := exec.Command(a.cmd.Path, "--aggregate", "http://x", "eth0").CombinedOutput(); err == nil || !strings.Contains(string(out), "cannot be combined") {
		t.Errorf("--aggregate with IFACE: %v %s", err, out)
	}
	if out, err := exec.Command(a.cmd.Path, "--aggregate-push", "http://x", "eth0").CombinedOutput(); err == nil || !strings.Contains(string(out), "needs --prom-instance") {
		t.Errorf("--aggregate-push without --prom-instance: %v %s", err, out)
	}
}
