package agent

import (
	"time"

	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// ExportClosed hands every unit of every policy to each, for push export (internal/export):
// a unit is what PolicyProm renders under one label set — a handler on one tap, or one schema
// merged over the policy's inputs (merge_like_handlers) — with the same labels: policy,
// handler (the instance name, or <schema>_merged) and tap (not for merged units). render
// renders the unit's bucket n (1 = the last closed one, never the live bucket) into a sink and
// returns its period, whose start identifies the bucket; it returns a *metrics.PeriodError,
// before writing anything, when the bucket does not exist yet. Rendering goes through the
// code paths of PolicyProm (the attachment's Render, renderMerged), so the exported numbers
// are the /metrics numbers. An error returned by each stops the walk and is returned.
func (a *Agent) ExportClosed(n int, each func(labels map[string]string, render func(metrics.Sink) (metrics.RenderedPeriod, error)) error) error {
	for _, name := range a.PolicyNames() {
		if err := a.exportPolicy(name, n, nil, each); err != nil {
			return err
		}
	}
	return nil
}

// exportPolicy hands each unit of one policy to each (see ExportClosed); wrap, when not nil,
// wraps the sink every render writes to (a filter of the metrics passed on).
func (a *Agent) exportPolicy(name string, n int, wrap func(metrics.Sink) metrics.Sink, each func(labels map[string]string, render func(metrics.Sink) (metrics.RenderedPeriod, error)) error) error {
	ps, binds, ok := a.snapshot(name)
	if !ok {
		return nil // removed meanwhile, or not created yet
	}
	if wrap == nil {
		wrap = func(s metrics.Sink) metrics.Sink { return s }
	}
	sel := metrics.Selection{Bucket: n}
	now := time.Now().UnixNano()
	if ps.merge {
		return a.renderMerged(binds, sel, now, func(schema string, render renderFn) error {
			return each(map[string]string{"policy": name, "handler": schema + "_merged"}, func(s metrics.Sink) (metrics.RenderedPeriod, error) {
				return render(wrap(s))
			})
		})
	}
	for _, b := range binds {
		for i, sp := range b.att.Specs() {
			if handler.Silent(sp) {
				continue
			}
			labels := map[string]string{"policy": name, "handler": b.names[i], "tap": b.tap}
			err := each(labels, func(s metrics.Sink) (metrics.RenderedPeriod, error) {
				return b.att.Render(i, sel, wrap(s), now)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}
