// Package pcap is the `pcap` stream handler, version 1.0 (JSON key and Prometheus prefix
// "pcap"): the health of the capture itself — TCP reassembly errors and packets dropped by the
// kernel or the interface. See README.md beside this file.
package pcap

import (
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// Schema is the handler's JSON key and Prometheus prefix.
const Schema = "pcap"

func init() { handler.Register("pcap", "1.0", New) }

// ConfigKeys are the handler's own keys.
var ConfigKeys = []string{"recorded_stream"}

// Spec is a validated pcap handler configuration.
type Spec struct{ common handler.Common }

// New validates a pcap module configuration. The handler has no metric groups.
func New(cfg config.Map) (handler.Spec, error) {
	c, err := handler.ParseCommon(cfg, ConfigKeys, nil)
	if err != nil {
		return nil, err
	}
	c.Groups = 1
	return &Spec{common: c}, nil
}

func (s *Spec) Schema() string         { return Schema }
func (s *Spec) Window() metrics.Window { return s.common.Window }

type bucket struct {
	reassemblyErrors, osDrops, ifDrops uint64
}

func (b *bucket) Reset() { *b = bucket{} }
func (b *bucket) Merge(o *bucket) {
	b.reassemblyErrors += o.reassemblyErrors
	b.osDrops += o.osDrops
	b.ifDrops += o.ifDrops
}

// Instance is the handler on one worker.
type Instance struct {
	handler.Nop
	ring *metrics.Ring[bucket, *bucket]
}

// NewInstance implements handler.Spec.
func (s *Spec) NewInstance(*handler.Env) handler.Handler {
	return &Instance{ring: metrics.NewRing(s.common.Window.NumPeriods, 0, func() *bucket { return &bucket{} })}
}

func (h *Instance) Wants() handler.Wants { return handler.WantInput }
func (h *Instance) Start(tsNs int64)     { h.ring.SetStart(tsNs) }
func (h *Instance) Shift(tsNs int64)     { h.ring.Shift(tsNs) }
func (h *Instance) End(tsNs int64)       { h.ring.Close(tsNs) }

func (h *Instance) TCPReassemblyErrors(n uint64) { h.ring.Live().reassemblyErrors += n }
func (h *Instance) Drops(os, ifd uint64) {
	b := h.ring.Live()
	b.osDrops += os
	b.ifDrops += ifd
}

var (
	dErrors  = &metrics.Desc{Schema: Schema, Name: []string{"tcp_reassembly_errors"}, Help: "Count of TCP reassembly errors"}
	dOSDrops = &metrics.Desc{Schema: Schema, Name: []string{"os_drops"}, Help: "Count of packets dropped by the operating system (if supported)"}
	dIfDrops = &metrics.Desc{Schema: Schema, Name: []string{"if_drops"}, Help: "Count of packets dropped by the interface (if supported)"}
)

// Render implements handler.Spec.
func (s *Spec) Render(instances []handler.Handler, sel metrics.Selection, sink metrics.Sink, nowNs int64) (metrics.RenderedPeriod, error) {
	b, rp, err := handler.MergeInstances(instances, func(h *Instance) *metrics.Ring[bucket, *bucket] { return h.ring },
		sel, s.common.Recorded, nowNs)
	if err != nil {
		return rp, err
	}
	sink.Counter(dErrors, b.reassemblyErrors)
	sink.Counter(dOSDrops, b.osDrops)
	sink.Counter(dIfDrops, b.ifDrops)
	return rp, nil
}
