package metrics_test

// An external test package: it renders real handler buckets (internal/handler/... imports
// metrics), and checks every output with the official Prometheus text parser
// (github.com/prometheus/common/expfmt) and, when installed, promtool.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	mdns "github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/dns"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/net"
	_ "github.com/pktvisor-go/pktvisor/internal/handler/pcap"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

func promText(t testing.TB, p *metrics.Prom) string {
	t.Helper()
	var buf bytes.Buffer
	n, err := p.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	return buf.String()
}

// parseProm parses text with the official parser and checks what it does not: every label
// value is valid UTF-8 (the parser checks that too) and no series repeats within a family.
func parseProm(t testing.TB, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("official parser rejects the output: %v\n%s", err, text)
	}
	for name, mf := range fams {
		seen := map[string]bool{}
		for _, m := range mf.GetMetric() {
			var sig []string
			for _, lp := range m.GetLabel() {
				if !utf8.ValidString(lp.GetValue()) {
					t.Errorf("%s: label %s is not UTF-8: %q", name, lp.GetName(), lp.GetValue())
				}
				sig = append(sig, lp.GetName()+"\x00"+lp.GetValue())
			}
			slices.Sort(sig)
			key := strings.Join(sig, "\x01")
			if seen[key] {
				t.Errorf("%s: duplicate series %q", name, key)
			}
			seen[key] = true
		}
	}
	return fams
}

// promtoolCheck runs `promtool check metrics` when promtool is installed. Exit status 3 means
// lint problems only (naming conventions such as gauges named *_total or the _us unit, which
// are the reference's names, kept for compatibility): they are logged, not failed.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus provides it)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 3 && !strings.Contains(string(out), "error"):
		t.Logf("promtool lint notes (reference names kept):\n%s", out)
	default:
		t.Fatalf("promtool check metrics: %v\n%s\ninput:\n%s", err, out, text)
	}
}

var dRoot = func(kind string) *metrics.Desc {
	return &metrics.Desc{Schema: "root", Name: []string{"test", "metric"}, Help: "A " + kind + " test metric"}
}

func newTopN(keys ...string) *sketch.TopN {
	t := sketch.NewTopN(0)
	for _, k := range keys {
		t.Update([]byte(k), sketch.Hash([]byte(k)), 1)
	}
	return t
}

// TestPromReferenceFormats checks the Prometheus outputs asserted by the reference's
// test_metrics.cpp (spec §6.17), verbatim.
func TestPromReferenceFormats(t *testing.T) {
	tests := []struct {
		name   string
		render func(p *metrics.Prom)
		want   string
	}{
		{"counter", func(p *metrics.Prom) { p.Counter(dRoot("counter"), 1) },
			`# HELP root_test_metric A counter test metric
# TYPE root_test_metric gauge
root_test_metric{instance="test instance",policy="default"} 1
`},
		{"quantile int one value 12", func(p *metrics.Prom) {
			var q sketch.Quantiles
			q.Add(12)
			p.Quantiles(dRoot("quantile"), &q, false)
		}, `# HELP root_test_metric A quantile test metric
# TYPE root_test_metric summary
root_test_metric{instance="test instance",policy="default",quantile="0.5"} 12
root_test_metric{instance="test instance",policy="default",quantile="0.9"} 12
root_test_metric{instance="test instance",policy="default",quantile="0.95"} 12
root_test_metric{instance="test instance",policy="default",quantile="0.99"} 12
root_test_metric_sum{instance="test instance",policy="default"} 12
root_test_metric_count{instance="test instance",policy="default"} 1
`},
		{"histogram 12,12,1,8,12", func(p *metrics.Prom) {
			var h sketch.Histogram
			for _, v := range []uint64{12, 12, 1, 8, 12} {
				h.Add(v)
			}
			p.Histogram(dRoot("histogram"), &h)
		}, `# HELP root_test_metric A histogram test metric
# TYPE root_test_metric histogram
root_test_metric_bucket{instance="test instance",le="1",policy="default"} 1
root_test_metric_bucket{instance="test instance",le="8",policy="default"} 2
root_test_metric_bucket{instance="test instance",le="12",policy="default"} 5
root_test_metric_bucket{instance="test instance",le="+Inf",policy="default"} 5
root_test_metric_count{instance="test instance",policy="default"} 5
`},
		{"topn string", func(p *metrics.Prom) {
			items := metrics.TopItems(newTopN("top1", "top2", "top1"), metrics.DefaultWindow, metrics.StringKey)
			p.TopN(dRoot("topn"), "string", items)
		}, `# HELP root_test_metric A topn test metric
# TYPE root_test_metric gauge
root_test_metric{instance="test instance",policy="default",string="top1"} 2
root_test_metric{instance="test instance",policy="default",string="top2"} 1
`},
		{"topn uint16 with formatter", func(p *metrics.Prom) {
			var c sketch.Counts16
			c.Add(123, 1)
			c.Add(10, 1)
			c.Add(123, 1)
			p.TopN(dRoot("topn"), "integer", metrics.TopItems(&c, metrics.DefaultWindow, metrics.Uint16Key))
		}, `# HELP root_test_metric A topn test metric
# TYPE root_test_metric gauge
root_test_metric{instance="test instance",integer="123",policy="default"} 2
root_test_metric{instance="test instance",integer="10",policy="default"} 1
`},
		{"cardinality", func(p *metrics.Prom) {
			var c sketch.Cardinality
			c.Insert([]byte("metric"))
			p.Cardinality(dRoot("cardinality"), c.Estimate())
		}, `# HELP root_test_metric A cardinality test metric
# TYPE root_test_metric gauge
root_test_metric{instance="test instance",policy="default"} 1
`},
		// Empty sketches render nothing (the reference's "nothing when empty").
		{"empty sketches", func(p *metrics.Prom) {
			p.Quantiles(dRoot("quantile"), &sketch.Quantiles{}, false)
			p.Quantiles(dRoot("quantile"), nil, true)
			p.Histogram(dRoot("histogram"), &sketch.Histogram{})
			p.Rate(dRoot("rate"), &sketch.Rate{}, true)
			p.TopN(dRoot("topn"), "qname", nil)
		}, ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := metrics.NewProm("test instance")
			p.SetLabels(map[string]string{"policy": "default"})
			tc.render(p)
			got := promText(t, p)
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			parseProm(t, got)
		})
	}
}

// TestPromLabels checks the label order (instance first, the rest sorted by key whatever
// their origin) and the no-instance and no-label forms.
func TestPromLabels(t *testing.T) {
	d := &metrics.Desc{Schema: "dns", Name: []string{"top_geoLoc_ecs"}, Help: "Top GeoIP ECS locations"}
	geo := []metrics.TopItem{{Name: "EU/Sweden/E/Linköping", Estimate: 3, Lat: "58.4167", Lon: "15.6167"},
		{Name: "Unknown", Estimate: 1, Lat: "", Lon: "1"}} // one coordinate only: no lat/lon
	tests := []struct {
		name     string
		instance string
		labels   map[string]string
		render   func(p *metrics.Prom)
		want     string
	}{
		{"geo rows", "n1", map[string]string{"tap": "default", "policy": "default", "handler": "default-default-dns"},
			func(p *metrics.Prom) { p.TopN(d, "geo_loc", geo) },
			`dns_top_geoLoc_ecs{instance="n1",geo_loc="EU/Sweden/E/Linköping",handler="default-default-dns",lat="58.4167",lon="15.6167",policy="default",tap="default"} 3
dns_top_geoLoc_ecs{instance="n1",geo_loc="Unknown",handler="default-default-dns",policy="default",tap="default"} 1
`},
		{"no instance, no labels", "", nil,
			func(p *metrics.Prom) { p.Counter(&metrics.Desc{Schema: "pcap", Name: []string{"if_drops"}}, 0) },
			"pcap_if_drops 0\n"},
		{"no instance", "", map[string]string{"policy": "p", "direction": "in"},
			func(p *metrics.Prom) { p.Counter(&metrics.Desc{Schema: "dns", Name: []string{"xacts"}}, 7) },
			`dns_xacts{direction="in",policy="p"} 7
`},
		// Label keys that would repeat are renamed exported_<key>, as Prometheus does for
		// target label conflicts; invalid name bytes become '_'.
		{"conflicts and invalid names", "n1", map[string]string{"instance": "x", "policy": "p", "bad-key": "v", "9lives": "w"},
			func(p *metrics.Prom) {
				p.TopN(&metrics.Desc{Schema: "a-b", Name: []string{"c.d"}}, "policy", []metrics.TopItem{{Name: "q", Estimate: 1}})
			},
			`a_b_c_d{instance="n1",_9lives="w",bad_key="v",exported_instance="x",exported_policy="q",policy="p"} 1
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := metrics.NewProm(tc.instance)
			p.SetLabels(tc.labels)
			tc.render(p)
			got := promText(t, p)
			// Compare the sample lines; HELP/TYPE are checked elsewhere.
			var samples []string
			for _, l := range strings.SplitAfter(got, "\n") {
				if l != "" && !strings.HasPrefix(l, "#") {
					samples = append(samples, l)
				}
			}
			if s := strings.Join(samples, ""); s != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", s, tc.want)
			}
			parseProm(t, got)
		})
	}
}

// TestPromDoubles checks real-valued quantiles against what libstdc++'s `std::ostream <<
// double` printed for the same values (g++ 12, glibc 2.36, default precision 6): the
// expected strings come from that program, not from this package.
func TestPromDoubles(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1"}, {1.5, "1.5"}, {12, "12"}, {0.1, "0.1"}, {1.0 / 3, "0.333333"},
		{2.0 / 3, "0.666667"}, {123456, "123456"}, {1234567, "1.23457e+06"}, {999999.5, "1e+06"},
		{1e6, "1e+06"}, {1e-5, "1e-05"}, {0.0001, "0.0001"}, {0.00012345678, "0.000123457"},
		{1e21, "1e+21"}, {5e-324, "4.94066e-324"}, {3.14159265, "3.14159"}, {100, "100"},
		{12.915497, "12.9155"}, {1e100, "1e+100"}, {0.5, "0.5"}, {1234.5678, "1234.57"},
		{99999.95, "99999.9"}, {1e300, "1e+300"}, {0.000099999, "9.9999e-05"}, {1e15, "1e+15"},
		{123456.5, "123456"},
	}
	d := &metrics.Desc{Schema: "dns", Name: []string{"xact", "ratio", "quantiles"}, Help: "h"}
	for _, tc := range tests {
		var q sketch.Quantiles
		q.Add(tc.v)
		p := metrics.NewProm("")
		p.Quantiles(d, &q, true)
		got := promText(t, p)
		want := `dns_xact_ratio_quantiles{quantile="0.5"} ` + tc.want + "\n"
		if !strings.Contains(got, want) || !strings.Contains(got, "dns_xact_ratio_quantiles_sum "+tc.want+"\n") {
			t.Errorf("%v: got\n%s\nwant sample and _sum %s", tc.v, got, tc.want)
		}
		parseProm(t, got)
	}
	// Integer metrics print exactly, however large (the reference's Quantile<uint64>).
	var q sketch.Quantiles
	q.Add(1234567)
	p := metrics.NewProm("")
	p.Quantiles(d, &q, false)
	if got := promText(t, p); !strings.Contains(got, `{quantile="0.99"} 1234567`+"\n") {
		t.Errorf("integer quantile: got\n%s", got)
	}
}

// TestPromSummaryQuirk: _sum is the largest value (reference quirk), _count the number of
// values; Rate renders the same from its per-second counts.
func TestPromSummaryQuirk(t *testing.T) {
	var q sketch.Quantiles
	for _, v := range []float64{3, 1, 4, 1, 5, 9, 2, 6} { // sum 31, max 9
		q.Add(v)
	}
	p := metrics.NewProm("")
	d := &metrics.Desc{Schema: "packets", Name: []string{"payload_size"}, Help: "h"}
	p.Quantiles(d, &q, false)
	// Per-second counts 2, 0, 3 (second 11 silent) then second 13 in progress: by hand,
	// sorted {0, 2, 3}: p50 = ceil(1.5) = 2nd = 2, p90..p99 = 3rd = 3; max 3; 3 seconds.
	var r sketch.Rate
	r.Add(10, 2)
	r.Add(12, 3)
	r.Add(13, 1)
	p.Rate(&metrics.Desc{Schema: "packets", Name: []string{"rates", "pps_in"}, Help: "r"}, &r, true)
	got := promText(t, p)
	fams := parseProm(t, got)
	s := fams["packets_payload_size"].GetMetric()[0].GetSummary()
	if s.GetSampleSum() != 9 || s.GetSampleCount() != 8 {
		t.Errorf("payload_size sum %v count %v, want 9 (max) and 8", s.GetSampleSum(), s.GetSampleCount())
	}
	// Inclusive rank ceil(p·8) of {1,1,2,3,4,5,6,9}: p50 → 4th = 3, p90/p95/p99 → 8th = 9.
	wantQ := map[float64]float64{0.5: 3, 0.9: 9, 0.95: 9, 0.99: 9}
	for _, qq := range s.GetQuantile() {
		if wantQ[qq.GetQuantile()] != qq.GetValue() {
			t.Errorf("payload_size q%v = %v, want %v", qq.GetQuantile(), qq.GetValue(), wantQ[qq.GetQuantile()])
		}
	}
	rs := fams["packets_rates_pps_in"].GetMetric()[0].GetSummary()
	wantR := map[float64]float64{0.5: 2, 0.9: 3, 0.95: 3, 0.99: 3}
	for _, qq := range rs.GetQuantile() {
		if wantR[qq.GetQuantile()] != qq.GetValue() {
			t.Errorf("rate q%v = %v, want %v", qq.GetQuantile(), qq.GetValue(), wantR[qq.GetQuantile()])
		}
	}
	if rs.GetSampleSum() != 3 || rs.GetSampleCount() != 3 {
		t.Errorf("rate sum %v count %v, want 3 and 3", rs.GetSampleSum(), rs.GetSampleCount())
	}
	if strings.Contains(got, "live") {
		t.Errorf("live exported:\n%s", got)
	}
}

// TestPromFamilies: two handlers rendering the same metrics give one HELP/TYPE pair per name
// and one sample per handler; families keep their first-seen order.
func TestPromFamilies(t *testing.T) {
	p := metrics.NewProm("n1")
	dA := &metrics.Desc{Schema: "dns", Name: []string{"wire_packets", "total"}, Help: "A"}
	dB := &metrics.Desc{Schema: "dns", Name: []string{"top_qtype"}, Help: "B"}
	var q sketch.Quantiles
	q.Add(1)
	for i, h := range []string{"h1", "h2"} {
		p.SetLabels(map[string]string{"policy": "default", "handler": h})
		p.Counter(dA, uint64(i+1))
		if i == 1 { // only the second handler has this one: it still comes after dA
			p.Quantiles(&metrics.Desc{Schema: "dns", Name: []string{"xact", "in", "quantiles_us"}, Help: "C"}, &q, false)
		}
		p.TopN(dB, "qtype", []metrics.TopItem{{Name: "A", Estimate: uint64(10 * (i + 1))}})
	}
	got := promText(t, p)
	want := `# HELP dns_wire_packets_total A
# TYPE dns_wire_packets_total gauge
dns_wire_packets_total{instance="n1",handler="h1",policy="default"} 1
dns_wire_packets_total{instance="n1",handler="h2",policy="default"} 2
# HELP dns_top_qtype B
# TYPE dns_top_qtype gauge
dns_top_qtype{instance="n1",handler="h1",policy="default",qtype="A"} 10
dns_top_qtype{instance="n1",handler="h2",policy="default",qtype="A"} 20
# HELP dns_xact_in_quantiles_us C
# TYPE dns_xact_in_quantiles_us summary
`
	if !strings.HasPrefix(got, want) {
		t.Errorf("got:\n%s\nwant prefix:\n%s", got, want)
	}
	fams := parseProm(t, got)
	if n := len(fams["dns_wire_packets_total"].GetMetric()); n != 2 {
		t.Errorf("%d samples of dns_wire_packets_total, want 2", n)
	}
	// A name reused with another type keeps its first type; the conflicting samples are
	// dropped rather than producing an invalid exposition.
	p.Histogram(&metrics.Desc{Schema: "dns", Name: []string{"top", "qtype"}}, func() *sketch.Histogram {
		var h sketch.Histogram
		h.Add(3)
		return &h
	}())
	if got2 := promText(t, p); got2 != got {
		t.Errorf("conflicting type changed the output:\n%s", got2)
	}
	// Reset forgets the families.
	p.Reset()
	if got := promText(t, p); got != "" {
		t.Errorf("after Reset: %q", got)
	}
}

// nastyValues are label values the exposition format cannot carry raw. want is what a
// scraper must read back: the value itself when it is UTF-8, else each invalid byte as \xNN.
var nastyValues = []struct{ in, want string }{
	{`a"b.example.com`, `a"b.example.com`},
	{`back\slash\.example`, `back\slash\.example`},
	{"new\nline", "new\nline"},
	{"\xff\xfe.bad", `\xff\xfe.bad`},
	{"caf\xc3", `caf\xc3`},           // truncated two-byte sequence
	{"\xed\xa0\x80", `\xed\xa0\x80`}, // UTF-16 surrogate: invalid in UTF-8
	{"Linköping", "Linköping"},
	{"", ""},
	{"tab\tcr\rnul\x00", "tab\tcr\rnul\x00"},
	{`"}` + "\n" + `x{y="`, `"}` + "\n" + `x{y="`},
	{`\x41`, `\x41`}, // literal text: stays distinct from byte 0x41 ('A')
}

func TestPromEscaping(t *testing.T) {
	p := metrics.NewProm(`inst"\` + "\n")
	p.SetLabels(map[string]string{"policy": "po\"l\\i\ncy\xff", "handler": "h"})
	d := &metrics.Desc{Schema: "dns", Name: []string{"top_qname2"}, Help: "Help with \\ and\nnewline and \"quotes\" \xff"}
	var items []metrics.TopItem
	for i, nv := range nastyValues {
		items = append(items, metrics.TopItem{Name: nv.in, Estimate: uint64(100 - i)})
	}
	p.TopN(d, "qname", items)
	text := promText(t, p)
	fams := parseProm(t, text)
	mf := fams["dns_top_qname2"]
	if mf == nil {
		t.Fatalf("family missing:\n%s", text)
	}
	if got, want := mf.GetHelp(), "Help with \\ and\nnewline and \"quotes\" \\xff"; got != want {
		t.Errorf("help %q, want %q", got, want)
	}
	if len(mf.GetMetric()) != len(nastyValues) {
		t.Fatalf("%d samples, want %d:\n%s", len(mf.GetMetric()), len(nastyValues), text)
	}
	for i, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["qname"] != nastyValues[i].want {
			t.Errorf("sample %d: qname %q, want %q", i, labels["qname"], nastyValues[i].want)
		}
		if labels["instance"] != "inst\"\\\n" || labels["policy"] != "po\"l\\i\ncy\\xff" {
			t.Errorf("sample %d: static labels %q", i, labels)
		}
		if m.GetGauge().GetValue() != float64(100-i) {
			t.Errorf("sample %d: value %v", i, m.GetGauge().GetValue())
		}
	}
	promtoolCheck(t, text)
}

// FuzzPromLabels: whatever the label values and names, the output parses and keeps one
// series per item.
func FuzzPromLabels(f *testing.F) {
	for _, nv := range nastyValues {
		f.Add("inst", "policy", nv.in, "qname", nv.in, "x")
	}
	f.Add("", "", "", "", "", "")
	f.Add("\xff", "instance", "\n", "le", "\\", `"`)
	f.Fuzz(func(t *testing.T, inst, key, val, label, name1, name2 string) {
		p := metrics.NewProm(inst)
		p.SetLabels(map[string]string{key: val, "policy": val})
		d := &metrics.Desc{Schema: "dns", Name: []string{name2}, Help: val}
		p.TopN(d, label, []metrics.TopItem{{Name: name1, Estimate: 2, Lat: val, Lon: "1"}, {Name: name1 + "\x00", Estimate: 1}})
		var q sketch.Quantiles
		q.Add(1.5)
		p.Quantiles(&metrics.Desc{Schema: "q", Name: []string{label}, Help: name1}, &q, true)
		var h sketch.Histogram
		h.Add(7)
		p.Histogram(&metrics.Desc{Schema: "h", Name: []string{key}}, &h)
		text := promText(t, p)
		fams := parseProm(t, text)
		total := 0
		for _, mf := range fams {
			total += len(mf.GetMetric())
		}
		// Two top rows, one summary and one histogram unless a name clash dropped some.
		if total == 0 || total > 4 {
			t.Errorf("%d series:\n%s", total, text)
		}
	})
}

// ---- real handler buckets ----

const testdataDir = "../../../shared/testdata/pktvisor"

func testdata(t testing.TB, name string) string {
	t.Helper()
	dir := testdataDir
	if v := os.Getenv("PKTVISOR_TESTDATA"); v != "" {
		dir = v
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("test capture %s not available (shared/testdata/pktvisor absent): %v", name, err)
	}
	return path
}

func newSpec(t testing.TB, typ string, cfg config.Map) handler.Spec {
	t.Helper()
	f, ok := handler.Lookup(typ, "1.0")
	if !ok {
		t.Fatalf("handler %s not registered", typ)
	}
	s, err := f(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// feedCapture plays a capture into a net and a dns instance: UDP port 53 payloads are the DNS
// messages (this test needs real traffic, not the reader's full TCP handling); packets to
// port 53 are "in", from it "out".
func feedCapture(t testing.TB, path string, netH, dnsH handler.Handler) {
	t.Helper()
	r, err := capture.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var (
		dec   decode.Decoder
		pkt   decode.Packet
		msg   dnswire.Message
		first = true
		last  int64
	)
	for {
		data, info, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pkt = decode.Packet{TS: info.TS, CapLen: info.CapLen, WireLen: info.WireLen}
		if dec.Decode(r.LinkType(), data, &pkt) != nil {
			continue
		}
		if first {
			netH.Start(pkt.TS)
			dnsH.Start(pkt.TS)
			first = false
		}
		last = pkt.TS
		dir := hostspec.Unknown
		switch {
		case pkt.DstPort == 53:
			dir = hostspec.ToHost
		case pkt.SrcPort == 53:
			dir = hostspec.FromHost
		}
		netH.Packet(&handler.PacketEvent{Pkt: &pkt, Dir: dir})
		if pkt.L4 != decode.L4UDP || dir == hostspec.Unknown || msg.Parse(pkt.Payload) != nil {
			continue
		}
		port := pkt.SrcPort
		if dir == hostspec.FromHost {
			port = pkt.DstPort
		}
		ev := handler.DNSEvent{Pkt: &pkt, Dir: dir, Transport: handler.TransportUDP, Port: port, Msg: &msg, QuestionOK: true}
		dnsH.DNS(&ev)
	}
	netH.End(last)
	dnsH.End(last)
}

var allDNSGroups = config.Map{"num_periods": uint64(1), "recorded_stream": true,
	"enable": []string{"histograms", "top_ecs", "top_qnames_details"}}

// TestPromRealBuckets renders net, dns and pcap buckets of a real capture for two handlers
// into one Prom and checks it against the JSON sink of the same buckets: every JSON counter,
// top-N row and quantile object appears in the Prometheus output with the same value.
func TestPromRealBuckets(t *testing.T) {
	path := testdata(t, "dns_udp_tcp_random.pcap")
	specs := map[string]handler.Spec{
		"net":  newSpec(t, "net", config.Map{"num_periods": uint64(1), "recorded_stream": true}),
		"dns":  newSpec(t, "dns", allDNSGroups),
		"pcap": newSpec(t, "pcap", config.Map{"num_periods": uint64(1)}),
	}
	netH := specs["net"].NewInstance(&handler.Env{})
	dnsH := specs["dns"].NewInstance(&handler.Env{})
	pcapH := specs["pcap"].NewInstance(&handler.Env{})
	feedCapture(t, path, netH, dnsH)
	pcapH.TCPReassemblyErrors(3)
	insts := map[string]handler.Handler{"net": netH, "dns": dnsH, "pcap": pcapH}

	p := metrics.NewProm("node")
	jsons := map[string]*metrics.JSON{}
	for _, hname := range []string{"a", "b"} { // the same buckets under two handler names
		for _, typ := range []string{"net", "dns", "pcap"} {
			p.SetLabels(map[string]string{"policy": "default", "handler": hname + "-" + typ, "tap": "t"})
			if _, err := specs[typ].Render([]handler.Handler{insts[typ]}, metrics.Selection{}, p, 0); err != nil {
				t.Fatal(err)
			}
			j := metrics.NewJSON()
			if _, err := specs[typ].Render([]handler.Handler{insts[typ]}, metrics.Selection{}, j, 0); err != nil {
				t.Fatal(err)
			}
			jsons[typ] = j
		}
	}
	text := promText(t, p)
	fams := parseProm(t, text)
	for _, name := range []string{"dns_wire_packets_udp", "dns_top_qname2", "dns_xact_in_quantiles_us",
		"dns_xact_in_histogram_us", "packets_top_ipv4", "packets_payload_size", "pcap_tcp_reassembly_errors"} {
		if fams[name] == nil {
			t.Errorf("family %s missing", name)
		}
	}
	if c := strings.Count(text, "# TYPE dns_wire_packets_udp "); c != 1 {
		t.Errorf("%d TYPE lines for dns_wire_packets_udp, want 1", c)
	}
	// Cross-check with the JSON sink, for handler "a".
	schemas := map[string]string{"net": "packets", "dns": "dns", "pcap": "pcap"}
	checked := 0
	for typ, j := range jsons {
		checked += crossCheck(t, fams, schemas[typ], "a-"+typ, nil, j.Root)
	}
	t.Logf("cross-checked %d values", checked)
	if checked < 50 {
		t.Errorf("only %d values cross-checked", checked)
	}
	promtoolCheck(t, text)
}

// crossCheck walks a JSON render and finds each value in the parsed Prometheus families
// (series with handler=h). It returns the number of values checked.
func crossCheck(t *testing.T, fams map[string]*dto.MetricFamily, schema, h string, path []string, v any) int {
	t.Helper()
	name := strings.Join(append([]string{schema}, path...), "_")
	if strings.HasPrefix(name, "packets_rates_bytes_") { // net v1 byte rates live under "payload"
		name = "payload" + strings.TrimPrefix(name, "packets")
	}
	series := func(name string) []*dto.Metric {
		var out []*dto.Metric
		for _, m := range fams[name].GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "handler" && lp.GetValue() == h {
					out = append(out, m)
				}
			}
		}
		return out
	}
	switch v := v.(type) {
	case uint64:
		ms := series(name)
		if len(ms) != 1 || ms[0].GetGauge().GetValue() != float64(v) {
			t.Errorf("%s{handler=%s}: %v, want one gauge %d", name, h, ms, v)
		}
		return 1
	case []any:
		ms := series(name)
		if len(ms) != len(v) {
			t.Errorf("%s{handler=%s}: %d samples, JSON has %d rows", name, h, len(ms), len(v))
			return 0
		}
		for i, row := range v {
			r := row.(map[string]any)
			var got string
			for _, lp := range ms[i].GetLabel() {
				if lp.GetName() != "handler" && lp.GetName() != "policy" && lp.GetName() != "tap" &&
					lp.GetName() != "instance" && lp.GetName() != "lat" && lp.GetName() != "lon" {
					got = lp.GetValue()
				}
			}
			if got != r["name"] || ms[i].GetGauge().GetValue() != float64(r["estimate"].(uint64)) {
				t.Errorf("%s row %d: %q=%v, JSON %v", name, i, got, ms[i].GetGauge().GetValue(), r)
			}
		}
		return len(v)
	case map[string]any:
		if _, ok := v["p50"]; ok {
			ms := series(name)
			if len(ms) != 1 {
				t.Errorf("%s{handler=%s}: %d summaries", name, h, len(ms))
				return 0
			}
			keys := map[float64]string{0.5: "p50", 0.9: "p90", 0.95: "p95", 0.99: "p99"}
			for _, q := range ms[0].GetSummary().GetQuantile() {
				var want float64
				switch jv := v[keys[q.GetQuantile()]].(type) {
				case uint64:
					want = float64(jv)
				case float64:
					want = jv
				}
				// Prometheus doubles carry 6 significant digits; integers are exact.
				if d := q.GetValue() - want; d > 1e-5*want || d < -1e-5*want {
					t.Errorf("%s q%v = %v, JSON %v", name, q.GetQuantile(), q.GetValue(), want)
				}
			}
			return 4
		}
		if b, ok := v["buckets"].(map[string]any); ok {
			ms := series(name)
			if len(ms) != 1 {
				t.Errorf("%s{handler=%s}: %d histograms", name, h, len(ms))
				return 0
			}
			hist := ms[0].GetHistogram()
			if len(hist.GetBucket()) != len(b) {
				t.Errorf("%s: %d buckets, JSON has %d", name, len(hist.GetBucket()), len(b))
			}
			for _, bk := range hist.GetBucket() {
				le := strconv.FormatFloat(bk.GetUpperBound(), 'f', -1, 64)
				if math.IsInf(bk.GetUpperBound(), 1) {
					le = "+Inf"
				}
				if want, got := b[le], strconv.FormatUint(bk.GetCumulativeCount(), 10)+".0"; want == nil || want.(json.Number).String() != got {
					t.Errorf("%s le=%s: %s, JSON %v", name, le, got, want)
				}
			}
			if want := strconv.FormatUint(hist.GetSampleCount(), 10) + ".0"; b["+Inf"].(json.Number).String() != want {
				t.Errorf("%s: count %d, JSON +Inf %v", name, hist.GetSampleCount(), b["+Inf"])
			}
			return 1
		}
		n := 0
		for k, sub := range v {
			n += crossCheck(t, fams, schema, h, append(slices.Clone(path), k), sub)
		}
		return n
	}
	t.Errorf("%s: unexpected JSON value %T", name, v)
	return 0
}

// ---- benchmark ----

// recorder replays a handler's Sink calls, so the benchmark measures the Prometheus sink
// and not the merge of the handler's buckets.
type recorder struct{ calls []func(metrics.Sink) }

func (r *recorder) Counter(d *metrics.Desc, v uint64) {
	r.calls = append(r.calls, func(s metrics.Sink) { s.Counter(d, v) })
}
func (r *recorder) Cardinality(d *metrics.Desc, v uint64) {
	r.calls = append(r.calls, func(s metrics.Sink) { s.Cardinality(d, v) })
}
func (r *recorder) TopN(d *metrics.Desc, l string, it []metrics.TopItem) {
	r.calls = append(r.calls, func(s metrics.Sink) { s.TopN(d, l, it) })
}
func (r *recorder) Quantiles(d *metrics.Desc, q *sketch.Quantiles, f bool) {
	r.calls = append(r.calls, func(s metrics.Sink) { s.Quantiles(d, q, f) })
}
func (r *recorder) Rate(d *metrics.Desc, q *sketch.Rate, live bool) {
	r.calls = append(r.calls, func(s metrics.Sink) { s.Rate(d, q, live) })
}
func (r *recorder) Histogram(d *metrics.Desc, h *sketch.Histogram) {
	r.calls = append(r.calls, func(s metrics.Sink) { s.Histogram(d, h) })
}

// syntheticDNS feeds n query/reply pairs (packed by miekg/dns) over several seconds into a
// dns instance with every metric group on.
func syntheticDNS(b testing.TB, n int) (handler.Spec, handler.Handler) {
	spec := newSpec(b, "dns", allDNSGroups)
	h := spec.NewInstance(&handler.Env{})
	h.Start(0)
	var msg dnswire.Message
	pkt := decode.Packet{L3: decode.L3IPv4, L4: decode.L4UDP}
	qtypes := []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX, mdns.TypeTXT}
	for i := range n {
		name := "host" + strconv.Itoa(i%300) + ".zone" + strconv.Itoa(i%7) + ".example."
		for reply := range 2 {
			m := new(mdns.Msg)
			m.SetQuestion(name, qtypes[i%len(qtypes)])
			m.Id = uint16(i)
			dir := hostspec.FromHost
			if reply == 1 {
				m.Response = true
				m.Rcode = []int{0, 0, 0, 3, 2, 5}[i%6]
				dir = hostspec.ToHost
			}
			wire, err := m.Pack()
			if err != nil {
				b.Fatal(err)
			}
			if err := msg.Parse(wire); err != nil {
				b.Fatal(err)
			}
			pkt.TS = int64(i)*2e6 + int64(reply)*int64(1000+i%5000)*1e3 // 500 pairs/s, 1–6 ms
			pkt.CapLen = len(wire) + 42
			ev := handler.DNSEvent{Pkt: &pkt, Dir: dir, FlowHash: uint64(i), Transport: handler.TransportUDP,
				Port: uint16(1024 + i%2000), Msg: &msg, QuestionOK: true}
			h.DNS(&ev)
		}
	}
	h.End(int64(n) * 2e6)
	return spec, h
}

func TestPromSyntheticDNS(t *testing.T) {
	spec, h := syntheticDNS(t, 3000)
	p := metrics.NewProm("node")
	p.SetLabels(map[string]string{"policy": "default", "handler": "default-default-dns", "tap": "default"})
	if _, err := spec.Render([]handler.Handler{h}, metrics.Selection{}, p, 0); err != nil {
		t.Fatal(err)
	}
	text := promText(t, p)
	fams := parseProm(t, text)
	// By construction: 3000 pairs, 6000 packets, replies rcode 3 every 6th pair (500).
	checks := map[string]float64{"dns_wire_packets_total": 6000, "dns_wire_packets_replies": 3000,
		"dns_wire_packets_nxdomain": 500, "dns_xact_counts_total": 3000}
	for name, want := range checks {
		if got := fams[name].GetMetric()[0].GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"dns_rates_total", "dns_xact_out_quantiles_us", "dns_xact_out_histogram_us", "dns_top_qname3"} {
		if fams[name] == nil {
			t.Errorf("family %s missing:\n%s", name, text)
		}
	}
	if h := fams["dns_xact_out_histogram_us"]; h != nil && h.GetMetric()[0].GetHistogram().GetSampleCount() != 3000 {
		t.Errorf("histogram count %d, want 3000", h.GetMetric()[0].GetHistogram().GetSampleCount())
	}
	promtoolCheck(t, text)
}

func BenchmarkPromRenderDNS(b *testing.B) {
	spec, h := syntheticDNS(b, 20000)
	var rec recorder
	if _, err := spec.Render([]handler.Handler{h}, metrics.Selection{}, &rec, 0); err != nil {
		b.Fatal(err)
	}
	p := metrics.NewProm("node")
	labels := map[string]string{"policy": "default", "handler": "default-default-dns", "tap": "default"}
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		p.Reset()
		p.SetLabels(labels)
		for _, c := range rec.calls {
			c(p)
		}
		out.Reset()
		if _, err := p.WriteTo(&out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.Len()), "bytes/render")
}
