package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/miekg/dns"

	"github.com/pktvisor-go/pktvisor/internal/bucketwire"
	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/tui"
)

// truth is what the test computes itself from the capture, independently of the agent.
type truth struct {
	sizes  []float64         // every frame's captured length (net payload_size)
	qnames map[string]bool   // distinct lower-case question names
	q3     map[string]uint64 // top_qname3 keys: every DNS message with a question
}

// splitCapture generates a UDP-only DNS capture and writes it whole and split in three by
// client (a query and its reply go to the same part), returning the paths and the truth.
func splitCapture(t testing.TB) (whole string, parts []string, tr truth) {
	t.Helper()
	cfg := gen.DefaultConfig()
	// A random-subdomain flood (every name new) beside the ordinary names: more distinct
	// top_qname3 keys than a frequent-items sketch holds, so the tops purge and carry an error.
	cfg.Packets, cfg.Seed, cfg.TCP, cfg.Names, cfg.QPS, cfg.RandomSubdomain = 40000, 7, 0, 20000, 4000, 12000
	cfg.Start = time.Unix(1_800_000_000-1_800_000_000%60+5, 0) // 5 s into a minute; lasts ~5 s
	var buf bytes.Buffer
	if _, err := gen.Write(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	whole = filepath.Join(dir, "whole.pcap")
	if err := os.WriteFile(whole, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rd, err := capture.NewReader(bytes.NewReader(buf.Bytes()), "whole")
	if err != nil {
		t.Fatal(err)
	}
	var ws []*pcapgo.Writer
	for i := range 3 {
		parts = append(parts, filepath.Join(dir, fmt.Sprintf("part%d.pcap", i)))
		f, err := os.Create(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		w := pcapgo.NewWriter(f)
		if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	tr = truth{qnames: map[string]bool{}, q3: map[string]uint64{}}
	for {
		data, info, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		nl := pkt.NetworkLayer()
		if nl == nil {
			t.Fatalf("frame without a network layer")
		}
		src, dst := nl.NetworkFlow().Src().Raw(), nl.NetworkFlow().Dst().Raw()
		key := 0
		for i := range src {
			key += int(src[i] ^ dst[i])
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, info.TS), CaptureLength: len(data), Length: int(info.WireLen)}
		if err := ws[key%3].WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
		tr.sizes = append(tr.sizes, float64(len(data)))
		if udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			var m dns.Msg
			if m.Unpack(udp.Payload) == nil && len(m.Question) > 0 {
				name := strings.TrimSuffix(strings.ToLower(m.Question[0].Name), ".")
				if name != "" {
					tr.qnames[name] = true
					if _, q3 := dnswire.AggregateDomain([]byte(name), 0); q3 != nil {
						tr.q3[string(q3)]++
					}
				}
			}
		}
	}
	return whole, parts, tr
}

// fileAgent runs an agent whose default policy (net + dns) reads file, and returns its URL
// once the file is read.
func fileAgent(t testing.TB, file, instance string) string {
	t.Helper()
	a := New(Options{Periods: 5, Workers: 2, Version: "test", PromInstance: instance})
	srv := httptest.NewServer(a.Handler(false, nil))
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	doc := fmt.Sprintf("visor:\n  taps:\n    tap:\n      input_type: pcap\n      config:\n        pcap_file: %q\n  policies:\n    default:\n      kind: collection\n      input:\n        tap: tap\n        input_type: pcap\n      handlers:\n        modules:\n          net:\n            type: net\n          dns:\n            type: dns\n", file)
	if _, err := a.LoadConfig([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	waitInputsDone(t, a)
	return srv.URL
}

// exactQuantile is the ⌈q·n⌉-th smallest value (the sketch's rank rule).
func exactQuantile(sorted []float64, q float64) float64 {
	return sorted[max(int(math.Ceil(q*float64(len(sorted))))-1, 0)]
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%s: %v: %s", url, err, body)
	}
	return resp.StatusCode, out
}

func path(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// Three agents each read a third of a capture (split by client); the aggregator pulling their
// sketches gives the counters of one agent reading the whole capture exactly, the distinct
// name count and size quantiles within the sketches' bounds of the exact values (and equal to
// the single agent's: the merges are exact operations), and a top-10 that is the exact one
// wherever counts are separated by more than the error bound it reports.
func TestAggregateMatchesSingleAgent(t *testing.T) {
	whole, parts, tr := splitCapture(t)
	single := fileAgent(t, whole, "single")
	var urls []string
	for i, p := range parts {
		urls = append(urls, fileAgent(t, p, fmt.Sprintf("pop%d", i)))
	}
	g, err := NewAggregator(AggregateOptions{Agents: urls, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	g.PullAll(context.Background(), true)
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()

	st, one := getJSON(t, single+"/api/v1/policies/default/metrics/bucket/0")
	if st != 200 {
		t.Fatalf("single agent: %d %v", st, one)
	}
	st, agg := getJSON(t, srv.URL+"/api/v1/policies/default/metrics/bucket/0")
	if st != 200 {
		t.Fatalf("aggregator: %d %v", st, agg)
	}
	oneNet, oneDNS := path(one, "default", "default-tap-net", "packets").(map[string]any), path(one, "default", "default-tap-dns", "dns").(map[string]any)
	aggNet, aggDNS := path(agg, "default", "packets_merged", "packets").(map[string]any), path(agg, "default", "dns_merged", "dns").(map[string]any)
	if aggNet == nil || aggDNS == nil {
		t.Fatalf("aggregator JSON: %v", agg)
	}

	// Exact counters: equal to the single agent's.
	for _, k := range []string{"total", "udp", "tcp", "ipv4", "ipv6", "in", "out", "unknown_dir", "other_l4", "filtered", "events", "deep_samples"} {
		if aggNet[k] != oneNet[k] {
			t.Errorf("packets.%s: aggregator %v, single agent %v", k, aggNet[k], oneNet[k])
		}
	}
	if aggNet["total"] != float64(len(tr.sizes)) {
		t.Errorf("packets.total %v, the capture has %d frames", aggNet["total"], len(tr.sizes))
	}
	for _, sub := range []string{"queries", "replies", "noerror", "nxdomain", "srvfail", "refused", "nodata", "total", "udp", "ipv4", "ipv6"} {
		if a, o := path(aggDNS, "wire_packets", sub), path(oneDNS, "wire_packets", sub); a != o {
			t.Errorf("dns.wire_packets.%s: aggregator %v, single agent %v", sub, a, o)
		}
	}
	for _, p := range [][]string{{"xact", "counts", "total"}, {"xact", "counts", "timed_out"}, {"xact", "in", "total"}, {"xact", "out", "total"}} {
		if a, o := path(aggDNS, p...), path(oneDNS, p...); a != o {
			t.Errorf("dns.%s: aggregator %v, single agent %v", strings.Join(p, "."), a, o)
		}
	}

	// Distinct names: HLL union == HLL of the union; within 3σ (2.43 %) of the exact count.
	card, exact := path(aggDNS, "cardinality", "qname").(float64), float64(len(tr.qnames))
	if card != path(oneDNS, "cardinality", "qname") || math.Abs(card-exact) > 0.0243*exact {
		t.Errorf("cardinality.qname: aggregator %v, single agent %v, exact %v", card, path(oneDNS, "cardinality", "qname"), exact)
	}

	// Size quantiles: within the DDSketch's 1 % relative accuracy of the exact ranks.
	slices.Sort(tr.sizes)
	for _, q := range []struct {
		key string
		f   float64
	}{{"p50", 0.5}, {"p90", 0.9}, {"p95", 0.95}, {"p99", 0.99}} {
		got := path(aggNet, "payload_size", q.key).(float64)
		want := exactQuantile(tr.sizes, q.f)
		if math.Abs(got-want) > 0.01*want+1 {
			t.Errorf("payload_size.%s: aggregator %v, exact %v", q.key, got, want)
		}
		if o := path(oneNet, "payload_size", q.key); o != got {
			t.Errorf("payload_size.%s: aggregator %v, single agent %v", q.key, got, o)
		}
	}

	// Top-10 qname3 with its bound: every estimate within [exact, exact + bound], and the order
	// exact wherever two exact counts differ by more than the bound.
	bound := path(aggDNS, "top_qname3_max_error").(float64)
	type kv struct {
		k string
		n uint64
	}
	var exactTop []kv
	for k, n := range tr.q3 {
		exactTop = append(exactTop, kv{k, n})
	}
	sort.Slice(exactTop, func(i, j int) bool {
		if exactTop[i].n != exactTop[j].n {
			return exactTop[i].n > exactTop[j].n
		}
		return exactTop[i].k < exactTop[j].k
	})
	list := path(aggDNS, "top_qname3").([]any)
	if len(list) != 10 {
		t.Fatalf("top_qname3 has %d rows", len(list))
	}
	rank := map[string]int{}
	for i, row := range list {
		r := row.(map[string]any)
		name, est := r["name"].(string), r["estimate"].(float64)
		rank[name] = i
		if n := float64(tr.q3[name]); est < n || est > n+bound {
			t.Errorf("top_qname3 %s: estimate %v, exact %v, bound %v", name, est, n, bound)
		}
	}
	for i := range 10 {
		for j := i + 1; j < len(exactTop); j++ {
			if float64(exactTop[i].n-exactTop[j].n) <= bound {
				continue
			}
			ri, iok := rank[exactTop[i].k]
			rj, jok := rank[exactTop[j].k]
			if !iok || (jok && rj < ri) {
				t.Errorf("top_qname3: %s (exact %d) must rank before %s (exact %d): ranks %v %v", exactTop[i].k, exactTop[i].n, exactTop[j].k, exactTop[j].n, ri, rj)
			}
		}
	}
	t.Logf("qnames %d (HLL %v); top_qname3 bound %v, #1 %v; %d frames", len(tr.qnames), card, bound, list[0], len(tr.sizes))

	// The view names its agents and is complete.
	status := path(agg, "default", "aggregate").(map[string]any)
	if status["complete"] != true || len(status["included"].([]any)) != 3 || len(status["missing"].([]any)) != 0 {
		t.Errorf("aggregate status: %v", status)
	}
	// pktvisor-cli's client reads the fleet's window from the aggregator.
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	pn, _ := strconv.Atoi(port)
	snap, err := tui.NewClient(tui.Config{Host: host, Port: pn, Policy: "default"}, nil).Window(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !snap.HasDNS || !snap.HasPackets || float64(snap.DNS.WirePackets.Queries) != path(oneDNS, "wire_packets", "queries") {
		t.Errorf("pktvisor-cli's view of the aggregator: dns %v packets %v, queries %v (single agent %v)", snap.HasDNS, snap.HasPackets, snap.DNS.WirePackets.Queries, path(oneDNS, "wire_packets", "queries"))
	}

	// The Prometheus output carries the merged families under handler <schema>_merged.
	resp, err := http.Get(srv.URL + "/api/v1/policies/default/metrics/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`dns_wire_packets_queries{handler="dns_merged",policy="default"} %v`, oneDNS["wire_packets"].(map[string]any)["queries"]); !strings.Contains(string(body), want) {
		t.Errorf("prometheus: no %q in\n%.2000s", want, body)
	}
}

// A view with an unreachable agent is marked incomplete and names it; garbage from an agent
// is an error for that agent, not for the view.
func TestAggregateMissingAndBadAgents(t *testing.T) {
	whole, _, _ := splitCapture(t)
	good := fileAgent(t, whole, "good")
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("PVSK\x01\x05{}"))
	}))
	defer garbage.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	g, err := NewAggregator(AggregateOptions{Agents: []string{good, garbage.URL, down.URL}})
	if err != nil {
		t.Fatal(err)
	}
	g.PullAll(context.Background(), true)
	out, err := g.policyJSON(metrics.Selection{Bucket: 0})
	if err != nil {
		t.Fatal(err)
	}
	st := out["aggregate"].(map[string]any)
	if st["complete"] != false || len(st["missing"].([]string)) != 2 || len(st["included"].([]string)) != 1 {
		t.Errorf("status %v", st)
	}
	for _, a := range st["agents"].([]any) {
		a := a.(map[string]any)
		if (a["url"] == good) == (a["last_error"] != nil) {
			t.Errorf("agent %v: last_error %v", a["url"], a["last_error"])
		}
	}
	if _, err := NewAggregator(AggregateOptions{Agents: []string{"ftp://x"}}); err == nil {
		t.Error("ftp URL accepted")
	}
	if _, _, err := bucketwire.Decode([]byte("PVSK\x01\x05{}")); err == nil {
		t.Error("the garbage export decodes")
	}
}

// Agents that cannot be reached push their exports; the merged view is the one a pull gives.
func TestAggregatePush(t *testing.T) {
	_, parts, _ := splitCapture(t)
	var agents []*Agent
	var urls []string
	for i, p := range parts[:2] {
		a := New(Options{Periods: 5, Workers: 1, Version: "test", PromInstance: fmt.Sprintf("nat%d", i)})
		t.Cleanup(a.Close)
		doc := fmt.Sprintf("visor:\n  taps:\n    tap:\n      input_type: pcap\n      config:\n        pcap_file: %q\n  policies:\n    default:\n      kind: collection\n      input:\n        tap: tap\n        input_type: pcap\n      handlers:\n        modules:\n          dns:\n            type: dns\n", p)
		if _, err := a.LoadConfig([]byte(doc)); err != nil {
			t.Fatal(err)
		}
		waitInputsDone(t, a)
		srv := httptest.NewServer(a.Handler(false, nil))
		t.Cleanup(srv.Close)
		agents, urls = append(agents, a), append(urls, srv.URL)
	}
	push, err := NewAggregator(AggregateOptions{AcceptPush: true, MaxPushAgents: 2, PushToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	psrv := httptest.NewServer(push.Handler())
	defer psrv.Close()
	for _, a := range agents {
		if err := a.pushSketchesOnce(context.Background(), psrv.URL+"/api/v1/aggregate/buckets", "default", "wrong", http.DefaultClient); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("push with a wrong token: %v", err)
		}
		if err := a.pushSketchesOnce(context.Background(), psrv.URL+"/api/v1/aggregate/buckets", "default", "s3cret", http.DefaultClient); err != nil {
			t.Fatal(err)
		}
	}
	pull, err := NewAggregator(AggregateOptions{Agents: urls})
	if err != nil {
		t.Fatal(err)
	}
	pull.PullAll(context.Background(), true)
	a, err := push.policyJSON(metrics.Selection{Bucket: 0})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pull.policyJSON(metrics.Selection{Bucket: 0})
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a["dns_merged"])
	jb, _ := json.Marshal(b["dns_merged"])
	if !bytes.Equal(ja, jb) {
		t.Errorf("pushed view differs from the pulled one:\n%s\n%s", ja, jb)
	}
	if st := a["aggregate"].(map[string]any); st["complete"] != true || fmt.Sprint(st["included"]) != "[nat0 nat1]" {
		t.Errorf("push status %v", st)
	}

	// Bad pushes: each refused with its own status, nothing stored.
	good, err := agents[0].SketchBucket("default", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewAggregator(AggregateOptions{AcceptPush: true, Policy: "other"})
	otherSrv := httptest.NewServer(other.Handler())
	defer otherSrv.Close()
	h, buckets, err := bucketwire.Decode(good)
	if err != nil {
		t.Fatal(err)
	}
	h.Instance = ""
	noInstance, err := bucketwire.Append(nil, h, buckets)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, url, ctype string
		body             []byte
		status           int
	}{
		{"content type", psrv.URL, "application/json", good, http.StatusUnsupportedMediaType},
		{"garbage", psrv.URL, bucketwire.MediaType, []byte("PVSK\x01junk"), http.StatusBadRequest},
		{"other policy", otherSrv.URL, bucketwire.MediaType, good, http.StatusBadRequest},
		{"third agent", psrv.URL, bucketwire.MediaType, bytes.Replace(good, []byte(`"instance":"nat0"`), []byte(`"instance":"nat9"`), 1), http.StatusConflict},
		{"no instance", psrv.URL, bucketwire.MediaType, noInstance, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodPost, c.url+"/api/v1/aggregate/buckets", bytes.NewReader(c.body))
		req.Header.Set("Content-Type", c.ctype)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
		}
	}
	// Without AcceptPush the route does not exist.
	resp, err := http.Post(psrvNoPush(t, urls)+"/api/v1/aggregate/buckets", bucketwire.MediaType, bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("push to a pull-only aggregator: %d", resp.StatusCode)
	}
}

func psrvNoPush(t *testing.T, urls []string) string {
	g, err := NewAggregator(AggregateOptions{Agents: urls})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkAggregateWindow: one merged window/5 of three agents' net and dns buckets (64 000
// packets with a random-subdomain flood, one period each), rendered to JSON — what a
// pktvisor-cli refresh costs the aggregator when its one-second cache is cold.
func BenchmarkAggregateWindow(b *testing.B) {
	_, parts, _ := splitCapture(b)
	var urls []string
	for i, p := range parts {
		urls = append(urls, fileAgent(b, p, fmt.Sprintf("pop%d", i)))
	}
	g, err := NewAggregator(AggregateOptions{Agents: urls})
	if err != nil {
		b.Fatal(err)
	}
	g.PullAll(context.Background(), true)
	b.ReportAllocs()
	for b.Loop() {
		_, err := g.merged(metrics.Selection{Window: 5}, time.Now().UnixNano(), func(schema string, render renderFn) error {
			_, err := render(metrics.NewJSON())
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
