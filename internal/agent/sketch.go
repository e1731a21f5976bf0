package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/bucketwire"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// SketchBucket exports bucket n of a policy with every handler's bucket in its binary form
// (`?format=sketch`): what an aggregator merges with other agents' buckets of the same minute.
// Each input's handlers are merged over its workers; handlers of different taps stay apart
// (the aggregator merges them by module). Handlers silenced by their metric groups and the
// automatic resources policies are left out.
func (a *Agent) SketchBucket(name string, n int) ([]byte, error) {
	ps, binds, ok := a.snapshot(name)
	if !ok || ps.def == nil {
		return nil, notFound("policy does not exists")
	}
	now := time.Now().UnixNano()
	sel := metrics.Selection{Bucket: n}
	h := &bucketwire.Header{Instance: a.opts.PromInstance, AgentVersion: a.opts.Version, Policy: name, Bucket: n}
	var buckets [][]byte
	first := true
	for _, b := range binds {
		var err error
		b.in.st.Do(func() {
			for i, sp := range b.att.Specs() {
				codec, ok := sp.(handler.BucketCodec)
				if !ok || handler.Silent(sp) || i >= len(b.mods) {
					continue
				}
				insts := b.att.Instances(i)
				var data []byte
				var rp metrics.RenderedPeriod
				if data, rp, err = codec.AppendBucket(nil, insts, sel, now); err != nil {
					return
				}
				if first {
					h.Period = bucketwire.Period{StartTS: rp.StartTS, Length: rp.Length}
					h.Live, first = rp.Live, false
				}
				if sp.Schema() == "pcap" {
					d := &dropSink{}
					if _, err = sp.Render(insts, sel, d, now); err != nil {
						return
					}
					h.Drops.OS += d.os
					h.Drops.If += d.ifd
				}
				m := b.mods[i]
				h.Handlers = append(h.Handlers, bucketwire.Handler{Name: b.names[i], Tap: b.tap, Module: m.name,
					Type: m.typ, Version: m.version, Schema: sp.Schema(), Config: exportConfig(b.configs[i])})
				buckets = append(buckets, data)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	if first {
		return nil, &apiError{ErrInvalid, fmt.Sprintf("policy '%s' has no handler that exports sketches", name)}
	}
	return bucketwire.Append(nil, h, buckets)
}

// exportConfig is a handler's configuration without the agent-local keys.
func exportConfig(cfg map[string]any) map[string]any {
	out := make(map[string]any, len(cfg))
	for k, v := range cfg {
		if !strings.HasPrefix(k, "_internal") {
			out[k] = v
		}
	}
	return out
}

// dropSink keeps the pcap handler's drop counters of a rendered bucket.
type dropSink struct{ os, ifd uint64 }

func (d *dropSink) Counter(desc *metrics.Desc, v uint64) {
	switch strings.Join(desc.Name, "_") {
	case "os_drops":
		d.os += v
	case "if_drops":
		d.ifd += v
	}
}
func (*dropSink) Cardinality(*metrics.Desc, uint64)                {}
func (*dropSink) TopN(*metrics.Desc, string, []metrics.TopItem)    {}
func (*dropSink) Quantiles(*metrics.Desc, *sketch.Quantiles, bool) {}
func (*dropSink) Rate(*metrics.Desc, *sketch.Rate, bool)           {}
func (*dropSink) Histogram(*metrics.Desc, *sketch.Histogram)       {}
