package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/gen"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/handler/handlertest"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
	"github.com/pktvisor-go/pktvisor/internal/stream"
)

// ---- traffic: generated captures and dnstap run through a real multi-worker stream ----

type frame = handlertest.Frame

type tapSource struct {
	frames [][]byte
	i      int
}

func (s *tapSource) Next() ([]byte, error) {
	if s.i == len(s.frames) {
		return nil, io.EOF
	}
	s.i++
	return s.frames[s.i-1], nil
}

func genFrames(t testing.TB, mod func(*gen.Config)) []frame {
	t.Helper()
	cfg := gen.DefaultConfig()
	mod(&cfg)
	var buf bytes.Buffer
	if _, err := gen.Write(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	r, err := capture.NewReader(&buf, "generated")
	if err != nil {
		t.Fatal(err)
	}
	var frames []frame
	for {
		data, info, err := r.Next()
		if err == io.EOF {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, frame{Data: append([]byte(nil), data...), Info: info})
	}
}

// tapFrames builds n dnstap query/response pairs (packed by miekg/dns, framed by hand in
// dnstap.proto's wire format) over every socket protocol and both families, as a CLIENT (host
// is the server) or RESOLVER (host is the client) would log them, 20 pairs a second from
// startSec.
func tapFrames(t testing.TB, n int, startSec uint64) [][]byte {
	t.Helper()
	rcodes := []int{0, 0, 0, 0, 3, 2, 5}
	var out [][]byte
	for i := range n {
		name := fmt.Sprintf("h%d.zone%d.example.", i%300, i%7)
		q := new(mdns.Msg)
		q.SetQuestion(name, []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX}[i%3])
		q.Id = uint16(i)
		if i%5 == 0 {
			opt := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
			opt.SetUDPSize(1232)
			opt.Option = append(opt.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: 24,
				Address: stdnet.IPv4(81, 2, 69, 0).To4()})
			q.Extra = append(q.Extra, opt)
		}
		r := new(mdns.Msg)
		r.SetRcode(q, rcodes[i%len(rcodes)])
		if r.Rcode == 0 && i%3 != 2 {
			rr, err := mdns.NewRR(name + " 60 IN A 192.0.2.1")
			if err != nil {
				t.Fatal(err)
			}
			r.Answer = append(r.Answer, rr)
		}
		qw, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		rw, err := r.Pack()
		if err != nil {
			t.Fatal(err)
		}
		proto := uint64(1 + i%7)
		family, qaddr, raddr := uint64(1), []byte{10, 1, byte(i >> 8), byte(i)}, []byte{10, 9, 9, 9}
		if i%4 == 3 {
			family, qaddr, raddr = 2, stdnet.ParseIP(fmt.Sprintf("fd00::%x", i)), stdnet.ParseIP("fd53::1")
		}
		qtype, rtype := dnstap.ClientQuery, dnstap.ClientResponse
		if i%3 == 1 {
			qtype, rtype = dnstap.ResolverQuery, dnstap.ResolverResponse
		}
		sec, nsec := startSec+uint64(i/20), uint64(i%20)*50e6
		rnsec := nsec + uint64(100+(i*7919)%20000)*1000 // 0.1 to 20 ms later, same second
		port := uint64(1024 + i%3000)
		for _, m := range []struct {
			typ      dnstap.MessageType
			field    protowire.Number // query_message 10 or response_message 14
			sec, ns  protowire.Number
			nsec     uint64
			dnsBytes []byte
		}{{qtype, 10, 8, 9, nsec, qw}, {rtype, 14, 12, 13, rnsec, rw}} {
			var b []byte
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(m.typ))
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, family)
			b = protowire.AppendTag(b, 3, protowire.VarintType)
			b = protowire.AppendVarint(b, proto)
			b = protowire.AppendTag(b, 4, protowire.BytesType)
			b = protowire.AppendBytes(b, qaddr)
			b = protowire.AppendTag(b, 5, protowire.BytesType)
			b = protowire.AppendBytes(b, raddr)
			b = protowire.AppendTag(b, 6, protowire.VarintType)
			b = protowire.AppendVarint(b, port)
			b = protowire.AppendTag(b, 7, protowire.VarintType)
			b = protowire.AppendVarint(b, 53)
			b = protowire.AppendTag(b, m.sec, protowire.VarintType)
			b = protowire.AppendVarint(b, sec)
			b = protowire.AppendTag(b, m.ns, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, uint32(m.nsec))
			b = protowire.AppendTag(b, m.field, protowire.BytesType)
			b = protowire.AppendBytes(b, m.dnsBytes)
			var d []byte
			d = protowire.AppendTag(d, 15, protowire.VarintType)
			d = protowire.AppendVarint(d, 1) // MESSAGE
			d = protowire.AppendTag(d, 14, protowire.BytesType)
			out = append(out, protowire.AppendBytes(d, b))
		}
	}
	return out
}

func newSpec(t testing.TB, cfg config.Map) *Spec {
	t.Helper()
	sp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sp.(*Spec)
}

type agent struct {
	specs []*Spec
	insts [][]handler.Handler // [spec][worker]
}

const (
	servers = "172.16.53.0/24,fd53::/16" // the host answers: transactions are "in"
	clients = "10.0.0.0/8,fd00::/8"      // the host asks: transactions are "out"
)

// runAgent runs a generated capture (mod != nil) or dnstap frames through a stream.
func runAgent(t testing.TB, workers int, hosts string, withGeo bool, mod func(*gen.Config), tap [][]byte, cfgs ...config.Map) agent {
	t.Helper()
	hs, err := hostspec.Parse(hosts)
	if err != nil {
		t.Fatal(err)
	}
	scfg := stream.Config{Workers: workers, HostSpec: hs}
	if withGeo {
		scfg.City, scfg.ASN = handlertest.GeoDBs(t)
	}
	var a agent
	var specs []handler.Spec
	for _, c := range cfgs {
		sp := newSpec(t, c)
		a.specs = append(a.specs, sp)
		specs = append(specs, sp)
	}
	s := stream.New(scfg, specs)
	if mod != nil {
		err = s.Run(context.Background(), &handlertest.SliceSource{Frames: genFrames(t, mod)})
	} else {
		err = s.RunDnstap(context.Background(), &tapSource{frames: tap})
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := range specs {
		a.insts = append(a.insts, s.Instances(i))
	}
	return a
}

// lightTraffic: ≈ 3.5 periods with fewer distinct keys than a top-N sketch tracks (every
// merge order gives identical sketches); heavyTraffic: enough distinct names to make the
// name tops purge.
func lightTraffic(seed uint64) func(*gen.Config) {
	return func(c *gen.Config) {
		c.Seed, c.Packets, c.QPS, c.Names, c.Clients = seed, 90000, 150, 2000, 2500
		c.TCP, c.IPv6, c.ECS, c.Timeout, c.NXDomain = 0.1, 0.3, 0.3, 0.01, 0.1
	}
}

func heavyTraffic(seed uint64) func(*gen.Config) {
	return func(c *gen.Config) {
		c.Seed, c.Packets, c.QPS, c.Names, c.Clients, c.Zipf = seed, 200000, 1000, 200000, 5000, 0.8
		c.TCP, c.IPv6, c.NXDomain = 0.05, 0.3, 0.2
	}
}

var (
	cfgAll = config.Map{"num_periods": uint64(5), "recorded_stream": true, "topn_count": uint64(100000),
		"enable": []string{"all"}}
	cfgFiltered = config.Map{"num_periods": uint64(5), "recorded_stream": true, "enable": []string{"all"},
		"exclude_noerror": true}
)

type scenarioSet struct {
	once                   sync.Once
	ok                     bool
	lightA, lightB, heavyA agent
	heavyB, clients, tap   agent
}

var scen scenarioSet

func scenarios(t *testing.T) *scenarioSet {
	t.Helper()
	scen.once.Do(func() {
		scen.lightA = runAgent(t, 3, servers, true, lightTraffic(1), nil, cfgAll)
		scen.lightB = runAgent(t, 2, servers, true, lightTraffic(2), nil, cfgAll)
		scen.heavyA = runAgent(t, 3, servers, false, heavyTraffic(3), nil, cfgAll)
		scen.heavyB = runAgent(t, 2, servers, false, heavyTraffic(4), nil, cfgAll)
		scen.clients = runAgent(t, 2, clients, true, lightTraffic(5), nil, cfgAll, cfgFiltered)
		scen.tap = runAgent(t, 3, servers, true, nil, tapFrames(t, 4000, 1_700_000_000), cfgAll)
		scen.ok = true
	})
	if !scen.ok {
		t.Fatal("scenario setup failed")
	}
	return &scen
}

// ---- rendering ----

func renderBucket(t testing.TB, s *Spec, b *bucket) string {
	t.Helper()
	j := metrics.NewJSON()
	s.render(b, false, j)
	p := metrics.NewProm("test")
	s.render(b, false, p)
	var prom bytes.Buffer
	if _, err := p.WriteTo(&prom); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(j.Root)
	if err != nil {
		t.Fatal(err)
	}
	return string(js) + "\n" + prom.String()
}

// ---- field coverage ----

func mergedBucket(t testing.TB, s *Spec, insts []handler.Handler, sel metrics.Selection) *bucket {
	t.Helper()
	b, _, err := handler.MergeInstances(insts, ringOf, sel, s.common.Recorded, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEveryFieldCovered(t *testing.T) {
	if c, _ := handlertest.GeoDBs(t); c == nil {
		t.Skip("GeoIP test databases not available in " + handlertest.TestdataDir + ": the ECS geo tops stay empty")
	}
	sc := scenarios(t)
	filled := map[string]bool{}
	for _, a := range []agent{sc.lightA, sc.heavyA, sc.clients, sc.tap} {
		for i := range a.specs {
			for k, v := range handlertest.FieldStates(mergedBucket(t, a.specs[i], a.insts[i], metrics.Selection{Window: 5})) {
				filled[k] = filled[k] || v
			}
		}
	}
	if len(filled) != 49 {
		t.Errorf("bucket has %d fields, the codec covers 49: extend codec.go, docs/sketch-format.md and the version", len(filled))
	}
	for k, v := range filled {
		if !v {
			t.Errorf("field %s is empty in every test bucket", k)
		}
	}
	// Both modes of the cardinality and quantile sketches, purged and unpurged tops.
	b := mergedBucket(t, sc.lightA.specs[0], sc.lightA.insts[0], metrics.Selection{Bucket: 1})
	if b.qnameCard.Estimate() > 1536 || b.xin.us.Count() <= 200 || b.xactRatio.Count() <= 200 || b.topQname3.MaxError() != 0 {
		t.Errorf("light bucket: cardinality %d, latencies %d, ratios %d, qname3 error %d: want an exact set, DDSketches, no purge",
			b.qnameCard.Estimate(), b.xin.us.Count(), b.xactRatio.Count(), b.topQname3.MaxError())
	}
	h := mergedBucket(t, sc.heavyA.specs[0], sc.heavyA.insts[0], metrics.Selection{Bucket: 1})
	if h.qnameCard.Estimate() <= 1536 || h.topQname3.MaxError() == 0 {
		t.Errorf("heavy bucket: cardinality %d, qname3 error %d: want a dense sketch and a purge", h.qnameCard.Estimate(), h.topQname3.MaxError())
	}
}

// ---- round trip ----

func fresh(s *Spec, rp metrics.RenderedPeriod) *Instance {
	h := s.NewInstance(&handler.Env{}).(*Instance)
	h.Start(rp.StartTS * 1e9)
	return h
}

func TestRoundTrip(t *testing.T) {
	sc := scenarios(t)
	for _, tc := range []struct {
		name string
		a    agent
		spec int
		sel  metrics.Selection
	}{
		{"light/bucket0", sc.lightA, 0, metrics.Selection{Bucket: 0}},
		{"light/bucket2", sc.lightA, 0, metrics.Selection{Bucket: 2}},
		{"light/window4", sc.lightA, 0, metrics.Selection{Window: 4}},
		{"heavy/bucket1", sc.heavyA, 0, metrics.Selection{Bucket: 1}},
		{"heavy/window3", sc.heavyA, 0, metrics.Selection{Window: 3}},
		{"clients/bucket1", sc.clients, 0, metrics.Selection{Bucket: 1}},
		{"filtered/window3", sc.clients, 1, metrics.Selection{Window: 3}},
		{"dnstap/bucket1", sc.tap, 0, metrics.Selection{Bucket: 1}},
		{"dnstap/window4", sc.tap, 0, metrics.Selection{Window: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.a.specs[tc.spec]
			enc, rp, err := s.AppendBucket([]byte("prefix"), tc.a.insts[tc.spec], tc.sel, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(enc, []byte("prefix")) {
				t.Fatal("AppendBucket did not append")
			}
			enc = enc[len("prefix"):]
			h := fresh(s, rp)
			if err := s.MergeBucket(h, enc); err != nil {
				t.Fatal(err)
			}
			h.End((rp.StartTS + rp.Length) * 1e9)
			want := handlertest.Render(t, s, tc.a.insts[tc.spec], tc.sel)
			got := handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{Bucket: 0})
			if d := handlertest.Diff(got, want); d != "" {
				t.Error(d)
			}
			again, _, err := s.AppendBucket(nil, []handler.Handler{h}, metrics.Selection{Bucket: 0}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs: %d bytes vs %d", len(again), len(enc))
			}
		})
	}
}

// TestRoundTripSmall covers buckets of a few messages: quantiles in their exact mode.
func TestRoundTripSmall(t *testing.T) {
	s := newSpec(t, cfgAll)
	for _, n := range []int{2, 9, 300} {
		hs, _ := hostspec.Parse(servers)
		st := stream.New(stream.Config{Workers: 2, HostSpec: hs}, []handler.Spec{s})
		frames := genFrames(t, func(c *gen.Config) { c.Packets, c.QPS, c.ECS = n, 10, 0.5 })
		if err := st.Run(context.Background(), &handlertest.SliceSource{Frames: frames}); err != nil {
			t.Fatal(err)
		}
		insts := st.Instances(0)
		if b := mergedBucket(t, s, insts, metrics.Selection{}); b.xin.us.Count() == 0 || b.xin.us.Count() > 200 {
			t.Fatalf("%d packets: %d latencies, want an exact sketch", n, b.xin.us.Count())
		}
		enc, rp, err := s.AppendBucket(nil, insts, metrics.Selection{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		h := fresh(s, rp)
		if err := s.MergeBucket(h, enc); err != nil {
			t.Fatal(err)
		}
		h.End((rp.StartTS + rp.Length) * 1e9)
		if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{}), handlertest.Render(t, s, insts, metrics.Selection{})); d != "" {
			t.Errorf("%d packets: %s", n, d)
		}
	}
}

func TestRoundTripEmpty(t *testing.T) {
	s := newSpec(t, cfgAll)
	h := s.NewInstance(&handler.Env{}).(*Instance)
	enc, _, err := s.AppendBucket(nil, []handler.Handler{h}, metrics.Selection{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Header, 25 one-byte counters, then each sketch's length byte and its empty form: 3 bytes
	// for the 2 Rates, the Cardinality, 3 Quantiles, 2 Histograms and 3 Counts16 (tag, version,
	// then flags, mode or count 0), 7 for the 13 TopNs (tag, version, capacity 6144 in 2
	// bytes, total, offset, count).
	if want := 2 + 25 + 11*4 + 13*8; len(enc) != want {
		t.Errorf("empty bucket: %d bytes, want %d", len(enc), want)
	}
	g := s.NewInstance(&handler.Env{}).(*Instance)
	if err := s.MergeBucket(g, enc); err != nil {
		t.Fatal(err)
	}
	if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{g}, metrics.Selection{}), handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{})); d != "" {
		t.Error(d)
	}
}

// ---- merge law ----

// TestMergeLaw: merging two agents' decoded buckets is the same operation as merging the
// buckets in memory, in the same tree (A's workers, B's workers, then A with B). Over its
// capacity a top-N sketch purges, and a purge depends on the merge order (its error bound
// does not), so only the same tree gives identical top-N lists there; every other sketch is
// order-independent, which the flat comparison (all workers in one merge) checks.
func TestMergeLaw(t *testing.T) {
	sc := scenarios(t)
	for _, tc := range []struct {
		name  string
		a, b  agent
		sel   metrics.Selection
		exact bool
	}{
		{"light/bucket1", sc.lightA, sc.lightB, metrics.Selection{Bucket: 1}, true},
		{"light/window3", sc.lightA, sc.lightB, metrics.Selection{Window: 3}, true},
		{"heavy/bucket1", sc.heavyA, sc.heavyB, metrics.Selection{Bucket: 1}, false},
		{"heavy/window2", sc.heavyA, sc.heavyB, metrics.Selection{Window: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.a.specs[0]
			encA, rp, err := s.AppendBucket(nil, tc.a.insts[0], tc.sel, 0)
			if err != nil {
				t.Fatal(err)
			}
			encB, _, err := s.AppendBucket(nil, tc.b.insts[0], tc.sel, 0)
			if err != nil {
				t.Fatal(err)
			}
			h := fresh(s, rp)
			for _, enc := range [][]byte{encA, encB} {
				if err := s.MergeBucket(h, enc); err != nil {
					t.Fatal(err)
				}
			}
			got := renderBucket(t, s, h.ring.Live())

			var tree bucket
			tree.Merge(mergedBucket(t, s, tc.a.insts[0], tc.sel))
			tree.Merge(mergedBucket(t, s, tc.b.insts[0], tc.sel))
			if d := handlertest.Diff(got, renderBucket(t, s, &tree)); d != "" {
				t.Errorf("decoded merge differs from the in-memory merge: %s", d)
			}

			flat := mergedBucket(t, s, slices.Concat(tc.a.insts[0], tc.b.insts[0]), tc.sel)
			if tc.exact {
				if d := handlertest.Diff(got, renderBucket(t, s, flat)); d != "" {
					t.Errorf("decoded merge differs from the flat merge: %s", d)
				}
				return
			}
			g := h.ring.Live()
			purged := 0
			gt, ft := g.tops(), flat.tops()
			for i := range gt {
				handlertest.CheckTopBound(t, i, gt[i], ft[i])
				if gt[i].MaxError() > 0 {
					purged++
				}
			}
			if purged == 0 {
				t.Error("no top-N purged: the case tests nothing")
			}
			g2, f2 := *g, *flat
			for _, b := range []*bucket{&g2, &f2} {
				for _, tp := range b.tops() {
					*tp = sketch.TopN{}
				}
			}
			if d := handlertest.Diff(renderBucket(t, s, &g2), renderBucket(t, s, &f2)); d != "" {
				t.Errorf("decoded merge differs from the flat merge outside the top-N lists: %s", d)
			}
		})
	}
}

// ---- the aggregator sequence ----

// TestAggregatorSequence runs what the aggregator does, Shift and the slow-threshold hook
// included: one fresh instance, Start at the oldest period, then per period the agents'
// buckets merged and a Shift to the next; it renders as the agents' instances together.
func TestAggregatorSequence(t *testing.T) {
	sc := scenarios(t)
	a, b := sc.lightA, sc.lightB
	s := a.specs[0]
	n := a.insts[0][0].(*Instance).ring.Len()
	if m := b.insts[0][0].(*Instance).ring.Len(); n != m || n < 4 {
		t.Fatalf("agents hold %d and %d periods, want the same number ≥ 4", n, m)
	}
	h := s.NewInstance(&handler.Env{}).(*Instance)
	for k := n - 1; k >= 0; k-- {
		encA, rp, err := s.AppendBucket(nil, a.insts[0], metrics.Selection{Bucket: k}, 0)
		if err != nil {
			t.Fatal(err)
		}
		encB, _, err := s.AppendBucket(nil, b.insts[0], metrics.Selection{Bucket: k}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if k == n-1 {
			h.Start(rp.StartTS * 1e9)
		} else {
			h.Shift(rp.StartTS * 1e9)
			s.AfterShift([]handler.Handler{h})
		}
		for _, enc := range [][]byte{encA, encB} {
			if err := s.MergeBucket(h, enc); err != nil {
				t.Fatal(err)
			}
		}
		if k == 0 {
			h.End((rp.StartTS + rp.Length) * 1e9)
		}
	}
	if h.OpenTransactions() != 0 || h.slowIn == 0 {
		t.Errorf("aggregator: %d open transactions, slow threshold %v", h.OpenTransactions(), h.slowIn)
	}
	all := slices.Concat(a.insts[0], b.insts[0])
	for _, sel := range []metrics.Selection{{Bucket: 0}, {Bucket: 1}, {Bucket: 3}, {Window: 2}, {Window: 3}, {Window: 5}} {
		if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{h}, sel), handlertest.Render(t, s, all, sel)); d != "" {
			t.Errorf("%+v: %s", sel, d)
		}
	}
}

// ---- errors ----

func smallEncoding(t testing.TB) []byte {
	t.Helper()
	s := newSpec(t, cfgAll)
	hs, _ := hostspec.Parse(servers)
	st := stream.New(stream.Config{Workers: 1, HostSpec: hs}, []handler.Spec{s})
	frames := genFrames(t, func(c *gen.Config) { c.Packets, c.QPS, c.TCP, c.ECS = 120, 20, 0.2, 0.2 })
	if err := st.Run(context.Background(), &handlertest.SliceSource{Frames: frames}); err != nil {
		t.Fatal(err)
	}
	enc, _, err := s.AppendBucket(nil, st.Instances(0), metrics.Selection{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func TestDecodeErrors(t *testing.T) {
	enc := smallEncoding(t)
	var b bucket
	if err := b.unmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	for i := range len(enc) {
		if err := b.unmarshalBinary(enc[:i]); !errors.Is(err, handler.ErrBucketEncoding) {
			t.Fatalf("truncated at %d of %d: %v", i, len(enc), err)
		}
	}
	head := append([]byte{BucketTag, BucketVersion}, make([]byte, 25)...)
	huge := binary.AppendUvarint(slices.Clone(head), 1<<62)
	long := append([]byte{BucketTag, BucketVersion}, bytes.Repeat([]byte{0xff}, 10)...)
	long = append(long, 1)
	nonMinimal := append([]byte{BucketTag, BucketVersion, 0x80, 0x00}, enc[3:]...)
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, handler.ErrBucketEncoding},
		{"tag only", []byte{BucketTag}, handler.ErrBucketEncoding},
		{"wrong tag", append([]byte{'N'}, enc[1:]...), handler.ErrBucketEncoding},
		{"version 0", append([]byte{BucketTag, 0}, enc[2:]...), handler.ErrBucketVersion},
		{"version 2", append([]byte{BucketTag, 2}, enc[2:]...), handler.ErrBucketVersion},
		{"trailing byte", append(slices.Clone(enc), 0), handler.ErrBucketEncoding},
		{"huge sketch length", huge, handler.ErrBucketEncoding},
		{"11-byte counter", long, handler.ErrBucketEncoding},
		{"non-minimal counter", nonMinimal, handler.ErrBucketEncoding},
		{"sketch of another type", swapSketch(t, enc, 2), sketch.ErrInvalidEncoding},
		{"oversized", make([]byte, handler.MaxBucketSize+1), handler.ErrBucketEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.unmarshalBinary(tc.data); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}

	s := newSpec(t, cfgAll)
	h := s.NewInstance(&handler.Env{}).(*Instance)
	if err := s.MergeBucket(h, enc); err != nil {
		t.Fatal(err)
	}
	before := handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{})
	if err := s.MergeBucket(h, enc[:len(enc)-1]); err == nil {
		t.Fatal("truncated bucket merged")
	}
	if d := handlertest.Diff(handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{}), before); d != "" {
		t.Errorf("failed merge changed the instance: %s", d)
	}
	if err := s.MergeBucket(handlertest.Foreign{}, enc); err == nil {
		t.Error("merged into a foreign instance")
	}
}

// swapSketch replaces sketch i of an encoding with an empty Histogram.
func swapSketch(t testing.TB, enc []byte, i int) []byte {
	t.Helper()
	var b bucket
	if err := b.unmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	out := handler.AppendBucketHeader(nil, BucketTag, BucketVersion)
	for _, c := range b.Fields().Counters {
		out = handler.AppendCounter(out, *c)
	}
	var err error
	for j, f := range b.Fields().Sketches {
		if j == i {
			f = &sketch.Histogram{}
		}
		if out, err = handler.AppendSketch(out, f); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestDecodeAllocBound(t *testing.T) {
	head := append([]byte{BucketTag, BucketVersion}, make([]byte, 25)...)
	var inputs [][]byte
	for _, n := range []uint64{1 << 20, 1 << 40, 1<<64 - 1} {
		inputs = append(inputs, binary.AppendUvarint(slices.Clone(head), n))
	}
	// A Counts16 claiming 65536 keys, a Histogram claiming 315 intervals.
	c16 := append([]byte{'U', 1}, binary.AppendUvarint(nil, 1<<16)...)
	hist := append([]byte{'H', 1}, binary.AppendUvarint(nil, 315)...)
	for _, sk := range [][]byte{c16, hist} {
		inputs = append(inputs, append(binary.AppendUvarint(slices.Clone(head), uint64(len(sk))), sk...))
	}
	var b bucket
	for _, in := range inputs {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for range 10 {
			if err := b.unmarshalBinary(in); err == nil {
				t.Fatal("accepted")
			}
		}
		runtime.ReadMemStats(&m1)
		if per := (m1.TotalAlloc - m0.TotalAlloc) / 10; per > 64<<10 {
			t.Errorf("input of %d bytes: %d bytes allocated per decode", len(in), per)
		}
	}
}

// ---- fuzzing ----

func FuzzDNSBucket(f *testing.F) {
	f.Add(smallEncoding(f))
	var empty bucket
	e, _ := empty.appendBinary(nil)
	f.Add(e)
	s := newSpec(f, cfgAll)
	f.Fuzz(func(t *testing.T, data []byte) {
		var b bucket
		if err := b.unmarshalBinary(data); err != nil {
			if !errors.Is(err, handler.ErrBucketEncoding) && !errors.Is(err, handler.ErrBucketVersion) {
				t.Fatalf("error %v wraps neither bucket error", err)
			}
			return
		}
		enc, err := b.appendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		var c bucket
		if err := c.unmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		if again, _ := c.appendBinary(nil); !bytes.Equal(again, enc) {
			t.Fatal("re-encoding not stable")
		}
		_ = renderBucket(t, s, &b)
		h := s.NewInstance(&handler.Env{}).(*Instance)
		for range 2 {
			if err := s.MergeBucket(h, data); err != nil {
				t.Fatal(err)
			}
		}
		h.Shift(60e9)
		s.AfterShift([]handler.Handler{h})
		_ = handlertest.Render(t, s, []handler.Handler{h}, metrics.Selection{Window: 2})
	})
}

// ---- sizes and speed ----

var sketchNames = [...]string{"ratesTotal", "ratesEvents", "qnameCard", "xactRatio",
	"xin.us", "xin.hist", "xin.slow", "xout.us", "xout.hist", "xout.slow",
	"topQname2", "topQname3", "topNX", "topSrvfail", "topRefused", "topNodata", "topNoerror",
	"topRespBytes", "topQueryECS", "topGeoLocECS", "topASNECS", "topPorts", "topRcode", "topQtype"}

func TestEncodedSize(t *testing.T) {
	sc := scenarios(t)
	for _, tc := range []struct {
		name string
		a    agent
	}{{"light (150 q/s, 2000 names)", sc.lightA}, {"heavy (1000 q/s, 200k names)", sc.heavyA}} {
		s := tc.a.specs[0]
		enc, rp, err := s.AppendBucket(nil, tc.a.insts[0], metrics.Selection{Bucket: 1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := mergedBucket(t, s, tc.a.insts[0], metrics.Selection{Bucket: 1})
		var parts []string
		for i, f := range b.Fields().Sketches {
			x, _ := f.AppendBinary(nil)
			parts = append(parts, sketchNames[i]+"="+strconv.Itoa(len(x)))
		}
		t.Logf("%s: %d-s bucket, %d messages: %d bytes (%s)", tc.name, rp.Length, b.total, len(enc), strings.Join(parts, " "))
	}
}

func BenchmarkAppendBucket(b *testing.B) {
	a := runAgent(b, 2, servers, false, heavyTraffic(3), nil, cfgAll)
	s := a.specs[0]
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = s.AppendBucket(buf[:0], a.insts[0], metrics.Selection{Bucket: 1}, 0)
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

func BenchmarkMergeBucket(b *testing.B) {
	a := runAgent(b, 2, servers, false, heavyTraffic(3), nil, cfgAll)
	s := a.specs[0]
	enc, _, _ := s.AppendBucket(nil, a.insts[0], metrics.Selection{Bucket: 1}, 0)
	h := s.NewInstance(&handler.Env{}).(*Instance)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.MergeBucket(h, enc); err != nil {
			b.Fatal(err)
		}
		h.ring.Live().Reset()
	}
}
