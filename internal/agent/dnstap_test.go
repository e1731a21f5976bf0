package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	oracle "github.com/dnstap/golang-dnstap"
	fs "github.com/farsightsec/golang-framestream"
	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"

	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/reader"
)

// tapMsg encodes a dnstap MESSAGE with the independent golang-dnstap protobuf and a DNS
// message packed by miekg/dns.
func tapMsg(t testing.TB, typ oracle.Message_Type, client net.IP, port uint32, id uint16, ts time.Time) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(fmt.Sprintf("n%d.example.com.", id%50), dns.TypeA)
	m.Id = id
	if typ == oracle.Message_CLIENT_RESPONSE {
		m.Response = true
		m.Rcode = dns.RcodeNameError
	}
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	sec, nsec := uint64(ts.Unix()), uint32(ts.Nanosecond())
	msg := &oracle.Message{Type: &typ, SocketFamily: oracle.SocketFamily_INET.Enum(), SocketProtocol: oracle.SocketProtocol_UDP.Enum(),
		QueryAddress: client.To4(), ResponseAddress: net.IPv4(10, 53, 0, 1).To4(), QueryPort: &port, ResponsePort: proto.Uint32(53)}
	if typ == oracle.Message_CLIENT_RESPONSE {
		msg.ResponseMessage, msg.ResponseTimeSec, msg.ResponseTimeNsec = wire, &sec, &nsec
	} else {
		msg.QueryMessage, msg.QueryTimeSec, msg.QueryTimeNsec = wire, &sec, &nsec
	}
	b, err := proto.Marshal(&oracle.Dnstap{Type: oracle.Dnstap_MESSAGE.Enum(), Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tapExchanges is n messages: queries and their responses from two clients, 10 per second.
func tapExchanges(t testing.TB, n int, start time.Time) [][]byte {
	var out [][]byte
	for i := range n {
		client := net.IPv4(192, 168, 0, byte(1+(i/2)%2)) // exchange i/2: its query and response
		ts := start.Add(time.Duration(i) * 100 * time.Millisecond)
		typ := oracle.Message_CLIENT_QUERY
		if i%2 == 1 {
			typ = oracle.Message_CLIENT_RESPONSE
		}
		out = append(out, tapMsg(t, typ, client, uint32(30000+i/2), uint16(i/2), ts))
	}
	return out
}

// writeTapFile writes frames as a Frame Streams file with golang-framestream.
func writeTapFile(t testing.TB, frames [][]byte) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := fs.NewWriter(&buf, &fs.WriterOptions{ContentTypes: [][]byte{[]byte("protobuf:dnstap.Dnstap")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if _, err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gen.dnstap")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func dnstapTapYAML(name, key, value string) string {
	return fmt.Sprintf("visor:\n  taps:\n    %s:\n      input_type: dnstap\n      config:\n        %s: %q\n", name, key, value)
}

func dnstapPolicyYAML(name, tap, filter string) string {
	return fmt.Sprintf("visor:\n  policies:\n    %s:\n      kind: collection\n      input:\n        tap: %s\n        input_type: dnstap\n%s      handlers:\n        window_config:\n          num_periods: 1\n        modules:\n          net:\n            type: net\n          dns:\n            type: dns\n", name, tap, filter)
}

// policyBucket returns the policy's bucket/0 as {instance: {schema: {...}}}.
func policyBucket(t testing.TB, url, policy string) map[string]any {
	t.Helper()
	st, body := do(t, "GET", url+"/api/v1/policies/"+policy+"/metrics/bucket/0", "", "")
	if st != 200 {
		t.Fatalf("bucket/0: %d %s", st, body)
	}
	return decode(t, body)[policy].(map[string]any)
}

func schemaOf(t testing.TB, got map[string]any, inst, schema string) map[string]any {
	t.Helper()
	g, ok := got[inst].(map[string]any)
	if !ok {
		t.Fatalf("no instance %s in %v", inst, keys(got))
	}
	return g[schema].(map[string]any)
}

// A dnstap_file tap reads the file as pktvisor-reader -i dnstap does: same numbers.
func TestDnstapFileEqualsReader(t *testing.T) {
	files := map[string]string{"generated": writeTapFile(t, tapExchanges(t, 400, time.Unix(1_700_000_000, 0)))}
	if fx := "/work/shared/testdata/pktvisor/fixture.dnstap"; fileExists(fx) {
		files["fixture"] = fx
	} else {
		t.Log("fixture.dnstap absent: generated file only")
	}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			a, srv := newTestAgent(t)
			if st, body := do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", dnstapTapYAML("tap", "dnstap_file", file)); st != 201 {
				t.Fatalf("POST tap: %d %s", st, body)
			}
			if st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", dnstapPolicyYAML("p", "tap", "")); st != 201 {
				t.Fatalf("POST policy: %d %s", st, body)
			}
			waitInputsDone(t, a)
			got := policyBucket(t, srv.URL, "p")
			res, err := reader.Run(context.Background(), reader.Options{File: file, InputType: "dnstap", Periods: 1, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			rt, _ := json.Marshal(res.Output["1m"])
			var want map[string]any
			json.Unmarshal(rt, &want)
			for inst, schema := range map[string]string{"p-tap-net": "packets", "p-tap-dns": "dns"} {
				g, w := schemaOf(t, got, inst, schema), want[schema].(map[string]any)
				for _, key := range []string{"total", "wire_packets", "cardinality", "top_qname2", "tcp", "udp", "ipv4", "ipv6", "in", "out", "period", "top_ipv4"} {
					gv, _ := json.Marshal(g[key])
					wv, _ := json.Marshal(w[key])
					if !bytes.Equal(gv, wv) {
						t.Errorf("%s %s: agent %s, reader %s", inst, key, gv, wv)
					}
				}
			}
			dnsWire := schemaOf(t, got, "p-tap-dns", "dns")["wire_packets"].(map[string]any)
			if name == "generated" && (dnsWire["total"] != 400.0 || dnsWire["queries"] != 200.0 || dnsWire["nxdomain"] != 200.0) {
				t.Errorf("generated: dns wire_packets %v, want total 400, queries 200, nxdomain 200", dnsWire)
			}
			st, body := do(t, "GET", srv.URL+"/api/v1/policies/p", "", "")
			if st != 200 || !strings.Contains(body, `"dnstap_file"`) || strings.Contains(body, `"pcap"`) {
				t.Errorf("policy info: %d %s", st, body)
			}
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// only_hosts (policy input filter) keeps the messages whose query or response address is
// inside: binary match, spec §4.3 intended semantics.
func TestDnstapOnlyHosts(t *testing.T) {
	file := writeTapFile(t, tapExchanges(t, 200, time.Unix(1_700_000_000, 0)))
	for _, tc := range []struct {
		filter string
		want   float64
	}{
		{"", 200},
		{"        filter:\n          only_hosts: [192.168.0.1/32]\n", 100}, // client .1 only
		{"        filter:\n          only_hosts: [10.53.0.0/24]\n", 200},   // the server: every message
		{"        filter:\n          only_hosts: [192.168.0.12/32, \"fd00::/8\"]\n", 0},
	} {
		a, srv := newTestAgent(t)
		do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", dnstapTapYAML("tap", "dnstap_file", file))
		if st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", dnstapPolicyYAML("p", "tap", tc.filter)); st != 201 {
			t.Fatalf("POST policy: %d %s", st, body)
		}
		waitInputsDone(t, a)
		got := policyBucket(t, srv.URL, "p")
		if tc.want == 0 {
			// No message: the handlers never started a period.
			if w, _ := schemaOf(t, got, "p-tap-dns", "dns")["wire_packets"].(map[string]any); w != nil && w["total"] != 0.0 {
				t.Errorf("%q: wire_packets %v, want none", tc.filter, w)
			}
			continue
		}
		if g := schemaOf(t, got, "p-tap-dns", "dns")["wire_packets"].(map[string]any)["total"]; g != tc.want {
			t.Errorf("%q: dns total %v, want %v", tc.filter, g, tc.want)
		}
	}
}

// Two bidirectional senders (golang-framestream) stream n messages each into a unix socket
// tap and a tcp tap: the policy counts 2n messages.
func TestDnstapSocketSenders(t *testing.T) {
	const n = 3000
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			a, srv := newTestAgent(t)
			key, addr := "socket", filepath.Join(t.TempDir(), "dnstap.sock")
			if network == "tcp" {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				key, addr = "tcp", l.Addr().String()
				l.Close()
			}
			if st, body := do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", dnstapTapYAML("tap", key, addr)); st != 201 {
				t.Fatalf("POST tap: %d %s", st, body)
			}
			if st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", dnstapPolicyYAML("p", "tap", "")); st != 201 {
				t.Fatalf("POST policy: %d %s", st, body)
			}
			frames := tapExchanges(t, n, time.Now())
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial(network, addr)
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					w, err := fs.NewWriter(c, &fs.WriterOptions{ContentTypes: [][]byte{[]byte("protobuf:dnstap.Dnstap")}, Bidirectional: true, Timeout: 5 * time.Second})
					if err != nil {
						t.Error(err)
						return
					}
					for i, f := range frames {
						if _, err := w.WriteFrame(f); err != nil {
							t.Error(err)
							return
						}
						if i%500 == 499 {
							time.Sleep(5 * time.Millisecond) // a real sender's pace: no drops
						}
					}
					if err := w.Close(); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			var wire map[string]any
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				got := policyBucket(t, srv.URL, "p")
				wire, _ = schemaOf(t, got, "p-tap-dns", "dns")["wire_packets"].(map[string]any)
				if wire != nil && wire["total"] == float64(2*n) {
					break
				}
			}
			if wire == nil || wire["total"] != float64(2*n) || wire["queries"] != float64(n) || wire["replies"] != float64(n) || wire["udp"] != float64(2*n) {
				t.Errorf("dns wire_packets %v, want total %d, queries and replies %d", wire, 2*n, n)
			}
			net := schemaOf(t, policyBucket(t, srv.URL, "p"), "p-tap-net", "packets")
			if net["total"] != float64(2*n) || net["in"] != float64(n) || net["out"] != float64(n) {
				t.Errorf("net total %v in %v out %v, want %d, %d, %d", net["total"], net["in"], net["out"], 2*n, n, n)
			}
			st, body := do(t, "GET", srv.URL+"/api/v1/policies/p", "", "")
			if st != 200 || !strings.Contains(body, `"connections":2`) || !strings.Contains(body, `"dropped":0`) {
				t.Errorf("policy info: %d %s", st, body)
			}
			st, body = do(t, "GET", srv.URL+"/metrics", "", "")
			if st != 200 || !strings.Contains(body, "pktvisord_input_dnstap_drops_total{") {
				t.Errorf("/metrics: %d, no dnstap drop counter", st)
			}
			a.Close()
			if network == "unix" && fileExists(addr) {
				t.Error("socket file left after the agent closed")
			}
		})
	}
}

func TestDnstapConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		config, filter, want string
	}{
		{"        only_hosts: [10.0.0.0/8]\n", "", "config must specify one of: socket, dnstap_file"},
		{"        tcp: nohost\n", "", "invalid tcp address specification, use HOST:PORT"},
		{"        tcp: \":53\"\n", "", "invalid tcp address specification, use HOST:PORT"},
		{"        tcp: \"localhost:99999\"\n", "", "invalid tcp address specification, use HOST:PORT"},
		{"        dnstap_file: /x\n        bogus: 1\n", "", "bogus is an invalid/unsupported config or filter. The valid configs/filters are: dnstap_file, socket, tcp, only_hosts"},
		{"        dnstap_file: /nonexistent.dnstap\n", "", "no such file"},
		{"        dnstap_file: /x\n", "        filter:\n          only_hosts: [10.0.0.0]\n", "invalid CIDR: 10.0.0.0"},
		{"        dnstap_file: /x\n", "        filter:\n          only_hosts: [300.0.0.0/8]\n", "invalid IPv4 address: 300.0.0.0"},
		{"        dnstap_file: /x\n", "        filter:\n          bpf: port 53\n", "bpf is an invalid/unsupported config or filter"},
	} {
		_, srv := newTestAgent(t)
		cfg := strings.ReplaceAll(tc.config, "        ", "          ")
		doc := "visor:\n  policies:\n    p:\n      kind: collection\n      input:\n        input_type: dnstap\n        tap: t\n        config:\n" + cfg + tc.filter +
			"      handlers:\n        modules:\n          net:\n            type: net\n"
		do(t, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", "visor:\n  taps:\n    t:\n      input_type: dnstap\n")
		st, body := do(t, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", doc)
		if st/100 != 4 || !strings.Contains(body, tc.want) {
			t.Errorf("%q%q: %d %s, want 4xx with %q", tc.config, tc.filter, st, body, tc.want)
		}
	}
}

// tapFileSource is a dnstapSource over an in-memory Frame Streams file of frames, repeated.
func tapFileSource(t testing.TB, frames [][]byte, only string) *dnstapSource {
	t.Helper()
	data, err := os.ReadFile(writeTapFile(t, frames))
	if err != nil {
		t.Fatal(err)
	}
	src := &dnstapSource{}
	if only != "" {
		if src.only, err = onlyHosts(map[string]any{"only_hosts": []string{only}}); err != nil {
			t.Fatal(err)
		}
	}
	src.frames = dnstap.NewReader(&repeatReader{data: data}, nil, dnstap.ReaderOptions{})
	return src
}

// repeatReader serves data forever, skipping the Frame Streams START frame after the first
// pass (so the reader sees one endless stream without STOP: data ends with the STOP frame,
// which is cut).
type repeatReader struct {
	data []byte
	off  int
	hdr  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.hdr == 0 {
		// control frame: 4 zero bytes, 4-byte length, payload
		r.hdr = 8 + int(binary.BigEndian.Uint32(r.data[4:8]))
	}
	body := r.data[:len(r.data)-12] // without STOP (escape, length 4, type STOP)
	if r.off == len(body) {
		r.off = r.hdr
	}
	n := copy(p, body[r.off:])
	r.off += n
	return n, nil
}

// The source, with only_hosts filtering, allocates nothing per frame.
func TestDnstapSourceAllocs(t *testing.T) {
	src := tapFileSource(t, tapExchanges(t, 1000, time.Unix(1_700_000_000, 0)), "192.168.0.2/32")
	for range 5000 {
		if _, err := src.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(5000, func() {
		if _, err := src.Next(); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%v allocs per frame, want 0", a)
	}
	if f := src.filtered.Load(); f < 5000 {
		t.Errorf("filtered %d: the filter did not run", f)
	}
}

// BenchmarkDnstapSource: frames/s out of the source (read + only_hosts decode and match).
func BenchmarkDnstapSource(b *testing.B) {
	for _, only := range []string{"", "192.168.0.0/24"} {
		b.Run("only_hosts="+only, func(b *testing.B) {
			src := tapFileSource(b, tapExchanges(b, 1000, time.Unix(1_700_000_000, 0)), only)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := src.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDnstapSocket: one sender (golang-framestream) streams into a unix socket tap with
// net and dns handlers, as fast as it can; ns/op is per message end to end, drops reported.
func BenchmarkDnstapSocket(b *testing.B) {
	a, srv := newTestAgent(b)
	sock := filepath.Join(b.TempDir(), "dnstap.sock")
	if st, body := do(b, "POST", srv.URL+"/api/v1/taps", "application/x-yaml", dnstapTapYAML("tap", "socket", sock)); st != 201 {
		b.Fatalf("POST tap: %d %s", st, body)
	}
	if st, body := do(b, "POST", srv.URL+"/api/v1/policies", "application/x-yaml", dnstapPolicyYAML("p", "tap", "")); st != 201 {
		b.Fatalf("POST policy: %d %s", st, body)
	}
	frames := tapExchanges(b, 10000, time.Now())
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	w, err := fs.NewWriter(c, &fs.WriterOptions{ContentTypes: [][]byte{[]byte("protobuf:dnstap.Dnstap")}, Bidirectional: true, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	a.mu.RLock()
	var in *input
	for _, i := range a.inputs {
		in = i
	}
	a.mu.RUnlock()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := w.WriteFrame(frames[i%len(frames)]); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
	want := uint64(b.N)
	var got, dropped uint64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		dropped, _ = in.dnstap.drops()
		if got = in.st.Stats().Frames; got+dropped >= want {
			break
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(dropped)/float64(b.N)*100, "%dropped")
	if got+dropped != want {
		b.Fatalf("%d frames + %d dropped, want %d", got, dropped, want)
	}
}
