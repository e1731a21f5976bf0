package agent

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/stream"
)

// snapshot returns the policy's bindings under the read lock; rendering then runs outside it.
func (a *Agent) snapshot(name string) (*policyState, []*binding, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	ps, ok := a.policies[name]
	if !ok {
		return nil, nil, false
	}
	return ps, append([]*binding(nil), ps.binds...), true
}

// PolicyNames lists the policies in creation order (resources policies after the policy that
// created their input).
func (a *Agent) PolicyNames() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]string(nil), a.order...)
}

// IsPeriodError reports an invalid or not yet accumulated bucket/window request.
func IsPeriodError(err error) bool {
	var pe *metrics.PeriodError
	return errors.As(err, &pe)
}

// PolicyJSON renders a policy's handlers for the selection: {"<instance>": {"<schema>": {...}}}.
func (a *Agent) PolicyJSON(name string, sel metrics.Selection) (map[string]any, error) {
	ps, binds, ok := a.snapshot(name)
	if !ok {
		return nil, notFound("policy does not exists")
	}
	// Windows are cached for a second, as the reference does: every client polling (CLIs,
	// scrapers) then costs one merge — one pause of the capture — per second, not one each.
	if sel.Window > 0 {
		if out, ok := a.windows.get(ps, sel.Window); ok {
			return out, nil
		}
	}
	out, err := a.policyJSON(ps, binds, sel)
	if err == nil && sel.Window > 0 {
		a.windows.put(ps, sel.Window, out)
	}
	return out, err
}

// windowCache keeps rendered windows for windowCacheTTL.
type windowCache struct {
	mu sync.Mutex
	m  map[windowKey]cachedWindow
}

type windowKey struct {
	ps *policyState
	n  int
}

type cachedWindow struct {
	at  time.Time
	out map[string]any
}

const windowCacheTTL = time.Second

func (c *windowCache) get(ps *policyState, n int) (map[string]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[windowKey{ps, n}]
	if !ok || time.Since(w.at) >= windowCacheTTL {
		return nil, false
	}
	return w.out, true
}

func (c *windowCache) put(ps *policyState, n int, out map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[windowKey]cachedWindow{}
	}
	now := time.Now()
	for k, w := range c.m { // drop stale entries (deleted policies too)
		if now.Sub(w.at) >= windowCacheTTL {
			delete(c.m, k)
		}
	}
	c.m[windowKey{ps, n}] = cachedWindow{now, out}
}

func (a *Agent) policyJSON(ps *policyState, binds []*binding, sel metrics.Selection) (map[string]any, error) {
	now := time.Now().UnixNano()
	out := map[string]any{}
	if ps.merge {
		return out, a.renderMerged(binds, sel, now, mergedJSON(out, false))
	}
	err := eachJSON(binds, sel, func(b *binding, i int, schema string, root map[string]any) {
		out[b.names[i]] = map[string]any{schema: root}
	})
	return out, err
}

// mergedJSON renders each merged schema into out as {"<schema>_merged": {schema: {...,
// "period"}}} (merge_like_handlers policies and the aggregator); errorBounds adds each top-N
// list's "<key>_max_error".
func mergedJSON(out map[string]any, errorBounds bool) func(schema string, render renderFn) error {
	return func(schema string, render renderFn) error {
		sink := metrics.NewJSON()
		sink.ErrorBounds = errorBounds
		rp, err := render(sink)
		if err != nil {
			return err
		}
		sink.Root["period"] = rp.JSON()
		out[schema+"_merged"] = map[string]any{schema: sink.Root}
		return nil
	}
}

// eachJSON renders every handler of the bindings (those not silenced by their metric groups)
// as JSON with its "period", in order.
func eachJSON(binds []*binding, sel metrics.Selection, emit func(b *binding, i int, schema string, root map[string]any)) error {
	now := time.Now().UnixNano()
	for _, b := range binds {
		for i, sp := range b.att.Specs() {
			if handler.Silent(sp) {
				continue
			}
			sink := metrics.NewJSON()
			rp, err := b.att.Render(i, sel, sink, now)
			if err != nil {
				return err
			}
			sink.Root["period"] = rp.JSON()
			emit(b, i, sp.Schema(), sink.Root)
		}
	}
	return nil
}

type renderFn func(sink metrics.Sink) (metrics.RenderedPeriod, error)

// renderMerged renders, for each schema of the policy, every instance of that schema on all
// the policy's inputs merged into one (merge_like_handlers). The inputs' streams are all held
// still together, taken in name order so two renders cannot deadlock.
func (a *Agent) renderMerged(binds []*binding, sel metrics.Selection, now int64, emit func(schema string, render renderFn) error) error {
	type part struct {
		sp    handler.Spec
		insts []handler.Handler
	}
	var schemas []string
	parts := map[string]*part{}
	streams := map[string]*stream.Stream{}
	for _, b := range binds {
		streams[b.in.name] = b.in.st
	}
	var err error
	doAll(streams, sortedKeys(streams), func() {
		for _, b := range binds {
			for i, sp := range b.att.Specs() {
				if handler.Silent(sp) {
					continue
				}
				p := parts[sp.Schema()]
				if p == nil {
					p = &part{sp: sp}
					parts[sp.Schema()] = p
					schemas = append(schemas, sp.Schema())
				}
				p.insts = append(p.insts, b.att.Instances(i)...)
			}
		}
		for _, s := range schemas {
			p := parts[s]
			if err = emit(s, func(sink metrics.Sink) (metrics.RenderedPeriod, error) {
				return p.sp.Render(p.insts, sel, sink, now)
			}); err != nil {
				return
			}
		}
	})
	return err
}

// doAll runs fn with every stream of names held still (nested barriers, in order).
func doAll(streams map[string]*stream.Stream, names []string, fn func()) {
	if len(names) == 0 {
		fn()
		return
	}
	streams[names[0]].Do(func() { doAll(streams, names[1:], fn) })
}

// promLastClosed renders merged handlers (one per schema, from merged) into p with the labels
// policy and handler <schema>_merged: the last closed bucket when there is one, else the live
// bucket (merge_like_handlers policies and the aggregator).
func promLastClosed(p *metrics.Prom, policy string, withHandler bool, merged func(sel metrics.Selection, emit func(string, renderFn) error) error) error {
	for _, sel := range []metrics.Selection{{Bucket: 1}, {Bucket: 0}} {
		err := merged(sel, func(schema string, render renderFn) error {
			labels := map[string]string{"policy": policy}
			if withHandler {
				labels["handler"] = schema + "_merged"
			}
			p.SetLabels(labels)
			_, err := render(p)
			return err
		})
		if err == nil || !IsPeriodError(err) {
			return err
		}
	}
	return nil
}

// PolicyProm renders a policy into p with the reference's labels: policy, handler (or
// <schema>_merged), tap; withHandler false omits the handler label (the /metrics route).
func (a *Agent) PolicyProm(name string, p *metrics.Prom, withHandler bool) error {
	ps, binds, ok := a.snapshot(name)
	if !ok {
		return notFound("policy does not exists")
	}
	now := time.Now().UnixNano()
	if ps.merge {
		return promLastClosed(p, name, withHandler, func(sel metrics.Selection, emit func(string, renderFn) error) error {
			return a.renderMerged(binds, sel, now, emit)
		})
	}
	for _, b := range binds {
		for i, sp := range b.att.Specs() {
			if handler.Silent(sp) {
				continue
			}
			labels := map[string]string{"policy": name, "tap": b.tap}
			if withHandler {
				labels["handler"] = b.names[i]
			}
			p.SetLabels(labels)
			// Bucket 1 (the last closed period) when it exists, else the live bucket. A
			// period error is detected before anything is written to the sink.
			if _, err := b.att.Render(i, metrics.Selection{Bucket: 1}, p, now); err != nil {
				if !IsPeriodError(err) {
					return err
				}
				if _, err := b.att.Render(i, metrics.Selection{Bucket: 0}, p, now); err != nil && !IsPeriodError(err) {
					return err
				}
			}
		}
	}
	return nil
}

// LegacyJSON renders the default policy in the v3 shape of /api/v1/metrics/bucket|window:
// {"<key>": {"<schema>": {...}, "period": {...}}}.
func (a *Agent) LegacyJSON(sel metrics.Selection) (map[string]any, error) {
	_, binds, ok := a.snapshot("default")
	if !ok {
		return nil, notFound(`no "default" policy exists`)
	}
	body := map[string]any{}
	var first any
	err := eachJSON(binds, sel, func(_ *binding, _ int, schema string, root map[string]any) {
		if first == nil {
			first = root["period"]
		}
		body[schema] = root
	})
	if err != nil {
		return nil, err
	}
	if first != nil {
		body["period"] = first
	}
	key := "1m"
	if sel.Window > 0 {
		key = fmt.Sprintf("%dm", sel.Window)
	}
	return map[string]any{key: body}, nil
}
