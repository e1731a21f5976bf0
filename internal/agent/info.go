package agent

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"

	"github.com/pktvisor-go/pktvisor/internal/policy"
)

// tapInfo is the reference's tap object.
func tapInfo(t policy.Tap) map[string]any {
	out := map[string]any{"input_type": t.InputType, "interface": "visor.module.input/1.0"}
	if t.Config != nil {
		out["config"] = t.Config
	} else {
		out["config"] = map[string]any{}
	}
	if t.Tags != nil {
		out["tags"] = t.Tags
	} else {
		out["tags"] = map[string]any{}
	}
	return out
}

// TapsInfo returns every tap (name "") or the named one.
func (a *Agent) TapsInfo(name string) map[string]any {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := map[string]any{}
	for n, t := range a.taps {
		if name == "" || n == name {
			out[n] = tapInfo(t)
		}
	}
	return out
}

// PoliciesInfo returns every policy (name "") or the named one, resources policies included.
func (a *Agent) PoliciesInfo(name string) map[string]any {
	a.mu.RLock()
	var states []*policyState
	taps := map[string]policy.Tap{}
	for n, ps := range a.policies {
		if name == "" || n == name {
			states = append(states, ps)
		}
	}
	for n, t := range a.taps {
		taps[n] = t
	}
	a.mu.RUnlock()
	out := map[string]any{}
	for _, ps := range states {
		tapsOut, inputs, modules := map[string]any{}, map[string]any{}, map[string]any{}
		for _, b := range ps.binds {
			if t, ok := taps[b.tap]; ok {
				tapsOut[b.tap] = tapInfo(t)
			}
			inputs[b.in.name] = b.in.info()
			b.in.mu.Lock()
			running := b.in.running
			b.in.mu.Unlock()
			for i, sp := range b.att.Specs() {
				modules[b.names[i]] = map[string]any{"module": map[string]any{
					"name": b.names[i], "type": sp.Schema(), "running": running, "config": b.configs[i]}}
			}
		}
		info := map[string]any{"taps": tapsOut, "input": inputs, "modules": modules}
		if ps.def != nil && ps.def.Config != nil {
			info["config"] = ps.def.Config
		}
		out[ps.name] = info
	}
	return out
}

// writeHealth appends the agent's own metrics (pktvisord_*) in the text exposition format:
// proper counters (with _total) and gauges, beside the reference-compatible families.
func (a *Agent) writeHealth(buf *bytes.Buffer) {
	a.mu.RLock()
	inputs := make([]*input, 0, len(a.inputs))
	for _, n := range sortedKeys(a.inputs) {
		inputs = append(inputs, a.inputs[n])
	}
	nPolicies := len(a.policies)
	a.mu.RUnlock()

	lbl := func(kv ...string) string {
		var b bytes.Buffer
		b.WriteByte('{')
		sep := ""
		if a.opts.PromInstance != "" {
			b.WriteString(`instance=` + strconv.Quote(a.opts.PromInstance))
			sep = ","
		}
		for i := 0; i+1 < len(kv); i += 2 {
			b.WriteString(sep + kv[i] + "=" + strconv.Quote(kv[i+1]))
			sep = ","
		}
		b.WriteByte('}')
		if b.Len() == 2 {
			return ""
		}
		return b.String()
	}
	family := func(name, typ, help string) {
		fmt.Fprintf(buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	family("pktvisord_build_info", "gauge", "pktvisord version (value 1)")
	fmt.Fprintf(buf, "pktvisord_build_info%s 1\n", lbl("version", a.opts.Version))
	family("pktvisord_uptime_seconds", "gauge", "Seconds since the agent started")
	fmt.Fprintf(buf, "pktvisord_uptime_seconds%s %.3f\n", lbl(), a.Uptime().Seconds())
	family("pktvisord_goroutines", "gauge", "Goroutines of the agent process")
	fmt.Fprintf(buf, "pktvisord_goroutines%s %d\n", lbl(), runtime.NumGoroutine())
	family("pktvisord_policies", "gauge", "Running policies, resources policies included")
	fmt.Fprintf(buf, "pktvisord_policies%s %d\n", lbl(), nPolicies)
	family("pktvisord_inputs", "gauge", "Running input streams")
	fmt.Fprintf(buf, "pktvisord_inputs%s %d\n", lbl(), len(inputs))

	stats := make([]struct{ frames, filtered, malformed, unknown, dnsBad, osd, ifd, tapDrops, tapConnErrs uint64 }, len(inputs))
	for i, in := range inputs {
		st := in.st.Stats()
		s := &stats[i]
		s.frames, s.filtered, s.malformed, s.unknown, s.dnsBad = st.Frames, st.BPFFiltered, st.Malformed, st.UnknownLink, st.DNSMalformed
		s.osd, s.ifd = in.dropStats()
		if in.dnstap != nil {
			s.tapDrops, s.tapConnErrs = in.dnstap.drops()
		}
	}
	counters := []struct {
		name, help string
		get        func(i int) uint64
	}{
		{"pktvisord_input_packets_total", "Frames read from the capture source", func(i int) uint64 { return stats[i].frames }},
		{"pktvisord_input_filtered_total", "Frames rejected by the input's capture filter in user space", func(i int) uint64 { return stats[i].filtered }},
		{"pktvisord_input_malformed_total", "Frames that could not be decoded", func(i int) uint64 { return stats[i].malformed }},
		{"pktvisord_input_unknown_link_total", "Frames of an unsupported link type", func(i int) uint64 { return stats[i].unknown }},
		{"pktvisord_input_dns_malformed_total", "DNS-port payloads too short for a DNS header", func(i int) uint64 { return stats[i].dnsBad }},
		{"pktvisord_input_os_drops_total", "Packets the kernel dropped because the capture ring was full", func(i int) uint64 { return stats[i].osd }},
		{"pktvisord_input_if_drops_total", "Packets the interface dropped (rx_dropped + rx_missed since capture start)", func(i int) uint64 { return stats[i].ifd }},
		{"pktvisord_input_dnstap_drops_total", "dnstap frames a socket input dropped because the stream fell behind", func(i int) uint64 { return stats[i].tapDrops }},
		{"pktvisord_input_dnstap_connection_errors_total", "dnstap sender connections closed on a protocol error, a timeout or a truncated frame", func(i int) uint64 { return stats[i].tapConnErrs }},
	}
	for _, c := range counters {
		family(c.name, "counter", c.help)
		for i, in := range inputs {
			fmt.Fprintf(buf, "%s%s %d\n", c.name, lbl("input", in.name), c.get(i))
		}
	}
	family("pktvisord_input_queue_depth", "gauge", "Batches waiting in each worker's queue")
	for _, in := range inputs {
		for w, d := range in.st.QueueDepths() {
			fmt.Fprintf(buf, "pktvisord_input_queue_depth%s %d\n", lbl("input", in.name, "worker", strconv.Itoa(w)), d)
		}
	}
}
