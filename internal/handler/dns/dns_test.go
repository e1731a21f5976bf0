package dns

import (
	"encoding/json"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/decode"
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// driver feeds DNS messages (packed by miekg/dns, an independent implementation) to one
// handler instance and renders it.
type driver struct {
	t    *testing.T
	spec *Spec
	inst *Instance
	msg  dnswire.Message
	pkt  decode.Packet
}

func newDriver(t *testing.T, cfg config.Map) *driver {
	t.Helper()
	sp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := sp.(*Spec)
	d := &driver{t: t, spec: s, inst: s.NewInstance(&handler.Env{}).(*Instance)}
	d.inst.Start(0)
	return d
}

func (d *driver) send(tsMs int64, flow uint64, id uint16, name string, qtype uint16, reply bool, rcode int, dir hostspec.Direction) {
	d.t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	if reply {
		m.Response = true
		m.Rcode = rcode
	}
	wire, err := m.Pack()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.msg.Parse(wire); err != nil {
		d.t.Fatal(err)
	}
	d.pkt = decode.Packet{TS: tsMs * 1e6, L3: decode.L3IPv4, L4: decode.L4UDP}
	ev := handler.DNSEvent{Pkt: &d.pkt, Dir: dir, FlowHash: flow, Transport: handler.TransportUDP, Port: 40000,
		Msg: &d.msg, QuestionOK: true}
	d.inst.DNS(&ev)
}

func (d *driver) json(sel metrics.Selection) map[string]any {
	d.t.Helper()
	sink := metrics.NewJSON()
	if _, err := d.spec.Render([]handler.Handler{d.inst}, sel, sink, 0); err != nil {
		d.t.Fatal(err)
	}
	raw, _ := json.Marshal(sink.Root)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		cur = cur.(map[string]any)[p]
	}
	return cur
}

func TestTransactions(t *testing.T) {
	d := newDriver(t, config.Map{"num_periods": uint64(1)})
	in, out := hostspec.FromHost, hostspec.ToHost
	// Host is the client (replies come to it): 3 answered, one of them after the 5 s TTL.
	d.send(0, 1, 10, "a.example.", mdns.TypeA, false, 0, hostspec.FromHost)
	d.send(2, 1, 10, "a.example.", mdns.TypeA, true, 0, out) // 2 ms
	d.send(10, 2, 11, "b.example.", mdns.TypeA, false, 0, hostspec.FromHost)
	d.send(14, 2, 11, "b.example.", mdns.TypeA, true, 0, out) // 4 ms
	d.send(20, 3, 12, "c.example.", mdns.TypeA, false, 0, hostspec.FromHost)
	d.send(5020, 3, 12, "c.example.", mdns.TypeA, true, 0, out) // exactly the TTL: timed out
	// Same flow and ID but another question: not the answer.
	d.send(6000, 4, 13, "d.example.", mdns.TypeA, false, 0, hostspec.FromHost)
	d.send(6001, 4, 13, "e.example.", mdns.TypeA, true, 0, out)
	d.send(6002, 4, 13, "d.example.", mdns.TypeAAAA, true, 0, out)
	// Host is the server: one answered query.
	d.send(7000, 5, 14, "f.example.", mdns.TypeA, false, 0, hostspec.ToHost)
	d.send(7001, 5, 14, "f.example.", mdns.TypeA, true, 3, in) // 1 ms
	// An unanswered query, expired by later traffic.
	d.send(8000, 6, 15, "g.example.", mdns.TypeA, false, 0, hostspec.FromHost)
	d.send(14000, 7, 16, "h.example.", mdns.TypeA, false, 0, hostspec.FromHost)
	// The end of the input sweeps the table: d and g had timed out by then, h had not.
	d.inst.End(14000e6)

	j := d.json(metrics.Selection{})
	want := map[string]float64{"total": 3, "timed_out": 3} // c (late reply), d and g (never answered)
	for k, v := range want {
		if got := get(j, "xact", "counts", k).(float64); got != v {
			t.Errorf("xact.counts.%s = %v, want %v", k, got, v)
		}
	}
	if got := get(j, "xact", "out", "total").(float64); got != 2 {
		t.Errorf("xact.out.total = %v, want 2", got)
	}
	if got := get(j, "xact", "in", "total").(float64); got != 1 {
		t.Errorf("xact.in.total = %v, want 1", got)
	}
	// Out quantiles over {2000, 4000} µs: inclusive rank ⌈0.5·2⌉ = 1 ⇒ 2000.
	if got := get(j, "xact", "out", "quantiles_us", "p50").(float64); got != 2000 {
		t.Errorf("out p50 = %v, want 2000", got)
	}
	if got := get(j, "xact", "in", "quantiles_us", "p99").(float64); got != 1000 {
		t.Errorf("in p99 = %v, want 1000", got)
	}
	if d.inst.OpenTransactions() != 1 { // h is still open
		t.Errorf("open transactions = %d, want 1", d.inst.OpenTransactions())
	}
}

// The open-transaction table is bounded: a flood of unanswered queries evicts old ones.
func TestTransactionTableBounded(t *testing.T) {
	tbl := newXactTable(4096)
	for i := range 100000 {
		tbl.start(xactKey{flow: uint64(i), id: uint16(i)}, int64(i), 1, 40)
	}
	if tbl.open() != 4096 || tbl.evicted != 100000-4096 || len(tbl.slots) > 2*8192 {
		t.Errorf("open %d evicted %d slots %d", tbl.open(), tbl.evicted, len(tbl.slots))
	}
	if n := tbl.sweep(100000, 0); n != 4096 || tbl.open() != 0 {
		t.Errorf("sweep: %d, open %d", n, tbl.open())
	}
}

// Slow transactions are those at or above the previous period's p90, merged over workers.
func TestTopSlow(t *testing.T) {
	d := newDriver(t, config.Map{"num_periods": uint64(5)})
	for i := range 10 { // previous period: latencies 1..10 ms ⇒ p90 = 9 ms
		d.send(int64(i*100), uint64(i), 1, "x.example.", mdns.TypeA, false, 0, hostspec.FromHost)
		d.send(int64(i*100+i+1), uint64(i), 1, "x.example.", mdns.TypeA, true, 0, hostspec.ToHost)
	}
	d.inst.Shift(60e9)
	d.spec.AfterShift([]handler.Handler{d.inst})
	if d.inst.slowOut != 9000 {
		t.Fatalf("slow threshold %v µs, want 9000", d.inst.slowOut)
	}
	d.send(61000, 100, 2, "Fast.Example.", mdns.TypeA, false, 0, hostspec.FromHost)
	d.send(61005, 100, 2, "Fast.Example.", mdns.TypeA, true, 0, hostspec.ToHost)
	d.send(62000, 101, 3, "Slow.Example.", mdns.TypeA, false, 0, hostspec.FromHost)
	d.send(62009, 101, 3, "Slow.Example.", mdns.TypeA, true, 0, hostspec.ToHost)
	slow := get(d.json(metrics.Selection{}), "xact", "out", "top_slow").([]any)
	if len(slow) != 1 || slow[0].(map[string]any)["name"] != "Slow.Example" {
		t.Errorf("top_slow = %v, want only Slow.Example (original case)", slow)
	}
}

// Deep sampling: only the sampled share updates the sketches; counters see everything, and
// the choice comes from the per-packet random number, so it is deterministic.
func TestDeepSampling(t *testing.T) {
	d := newDriver(t, config.Map{"num_periods": uint64(1), "deep_sample_rate": uint64(25)})
	rng := metrics.NewJSF32(1)
	deep := 0
	for i := range 4000 {
		r := rng.Next()
		if handler.Deep(25, r) {
			deep++
		}
		m := new(mdns.Msg)
		m.SetQuestion("n.example.", mdns.TypeA)
		wire, _ := m.Pack()
		_ = d.msg.Parse(wire)
		d.pkt = decode.Packet{TS: int64(i) * 1e6, L3: decode.L3IPv4}
		d.inst.DNS(&handler.DNSEvent{Pkt: &d.pkt, Msg: &d.msg, QuestionOK: true, Rand: r, Port: 1})
	}
	j := d.json(metrics.Selection{})
	if got := get(j, "wire_packets", "deep_samples").(float64); int(got) != deep {
		t.Errorf("deep_samples %v, want %d", got, deep)
	}
	if deep < 900 || deep > 1100 {
		t.Errorf("deep share %d/4000 far from 25%%", deep)
	}
	if got := get(j, "wire_packets", "queries").(float64); got != 4000 {
		t.Errorf("queries %v, want 4000 (counters are not sampled)", got)
	}
	top := get(j, "top_qtype").([]any)[0].(map[string]any)
	if int(top["estimate"].(float64)) != deep {
		t.Errorf("top_qtype estimate %v, want %d (deep only)", top["estimate"], deep)
	}
}

// The transaction table against a plain map model, on random operations: the same answers,
// and every query that leaves the table without an answer has timed out (incremental sweeps may
// find it at any time after its TTL; a full sweep finds all of them).
func TestXactTableModel(t *testing.T) {
	type val struct {
		ts    int64
		qhash uint64
	}
	const ttl = 50
	for seed := range 30 {
		rng := metrics.NewJSF32(uint32(seed + 1))
		tbl := newXactTable(1 << 20)
		model := map[xactKey]val{}
		var timedOut, mTimedOut uint64
		ts := int64(0)
		for range 30000 {
			ts += int64(rng.Next() % 3)
			deadline := ts - ttl
			k := xactKey{flow: uint64(rng.Next() % 64), id: uint16(rng.Next() % 8)}
			switch op := rng.Next() % 10; {
			case op < 5:
				qh := uint64(rng.Next()%3) + 1
				tbl.start(k, ts, qh, 40)
				model[k] = val{ts, qh}
			case op < 9:
				qh := uint64(rng.Next()%3) + 1
				got, res := tbl.end(k, qh, deadline)
				mv, mok := model[k]
				want := endNone
				if mok && mv.qhash == qh {
					want = endMatched
					if mv.ts <= deadline {
						want = endExpired
					}
					delete(model, k)
				}
				if res != want || (res == endMatched && got.ts != mv.ts) {
					t.Fatalf("seed %d: end(%v) = %v %v, model %v %v", seed, k, got, res, mv, want)
				}
				if res == endExpired {
					timedOut++
					mTimedOut++
				}
			case op < 10 && rng.Next()%4 == 0:
				timedOut += tbl.sweep(deadline, 0)
			default:
				timedOut += tbl.sweep(deadline, 4)
			}
			// Whatever left the table silently must have expired.
			for mk, mv := range model {
				if tbl.find(mk) < 0 {
					if mv.ts > deadline {
						t.Fatalf("seed %d: %v (ts %d) removed before its deadline %d", seed, mk, mv.ts, deadline)
					}
					delete(model, mk)
					mTimedOut++
				}
			}
			if tbl.open() != len(model) {
				t.Fatalf("seed %d: open %d, model %d", seed, tbl.open(), len(model))
			}
		}
		if timedOut != mTimedOut || tbl.evicted != 0 {
			t.Errorf("seed %d: timed out %d, model %d, evicted %d", seed, timedOut, mTimedOut, tbl.evicted)
		}
	}
}
