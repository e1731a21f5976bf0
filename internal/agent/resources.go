package agent

import (
	"time"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/handler/resources"
	"github.com/pktvisor-go/pktvisor/internal/stream"
)

// startResources creates the automatic `<input>-resources` policy of a new input (a.mu held).
// The input_resources handler takes no packets: a sampler goroutine feeds its worker-0
// instance through the stream's barrier until the input stops.
func (a *Agent) startResources(in *input, window config.Map) {
	f, ok := handler.Lookup("input_resources", "1.0")
	if !ok {
		return
	}
	cfg := window.Merge(nil)
	if recordedInput(in.config) {
		cfg["recorded_stream"] = true
	}
	sp, err := f(cfg)
	if err != nil {
		a.log.Warn("input_resources handler not started", "input", in.name, "err", err)
		return
	}
	name := in.name + "-resources"
	att := in.st.Attach(stream.Group{Specs: []handler.Spec{sp}})
	ps := &policyState{name: name, resources: in, created: time.Now(),
		binds: []*binding{{tap: in.tap, in: in, att: att, names: []string{name}, configs: []config.Map{window}}}}
	in.resources = ps
	a.policies[name] = ps
	a.order = append(a.order, name)
	feeder, _ := att.Instances(0)[0].(resources.Feeder)
	if feeder == nil {
		return
	}
	go func() {
		var meter resources.CPUMeter
		sample := func(now time.Time) {
			cpu := meter.Percent(now)
			if _, rss, err := resources.ReadProcess(); err == nil {
				in.st.Do(func() { feeder.Sample(now.UnixNano(), cpu, rss) })
			}
		}
		// One sample at once, so that even a short capture file shows its resources.
		sample(time.Now())
		t := time.NewTicker(resources.SampleInterval)
		defer t.Stop()
		for {
			select {
			case <-in.done:
				return
			case now := <-t.C:
				sample(now)
			}
		}
	}()
}

// updateResourceCounts gives an input's resources handler the running totals of the
// policies and handlers using the input (a.mu held).
func (a *Agent) updateResourceCounts(in *input) {
	if in.resources == nil {
		return
	}
	var policies, handlers uint64
	for _, ps := range a.policies {
		if ps.resources != nil {
			continue
		}
		for _, b := range ps.binds {
			if b.in == in {
				policies++
				if ps.def != nil && ps.def.Handlers.Chained {
					handlers++ // a chain counts as one handler, as in the reference
				} else {
					handlers += uint64(len(b.names))
				}
			}
		}
	}
	feeder, _ := in.resources.binds[0].att.Instances(0)[0].(resources.Feeder)
	if feeder == nil {
		return
	}
	now := time.Now().UnixNano()
	in.st.Do(func() { feeder.SetCounts(now, policies, handlers) })
}
