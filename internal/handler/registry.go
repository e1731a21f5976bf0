package handler

import (
	"fmt"
	"slices"
	"sync"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// DefaultVersion is the handler version a module gets without require_version.
const DefaultVersion = "1.0"

// Factory validates a module's merged configuration and returns its Spec.
type Factory func(cfg config.Map) (Spec, error)

var (
	regMu    sync.RWMutex
	registry = map[string]map[string]Factory{}
)

// Register makes a handler type/version available. It is called from the handler packages'
// init functions.
func Register(typ, version string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if registry[typ] == nil {
		registry[typ] = map[string]Factory{}
	}
	registry[typ][version] = f
}

// Lookup finds the factory of a handler type and version.
func Lookup(typ, version string) (Factory, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	f, ok := registry[typ][version]
	return f, ok
}

// Types lists the registered handler types, sorted.
func Types() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// WindowKeys are the window configuration keys every handler accepts, in the order the
// reference lists them after a handler's own keys.
var WindowKeys = []string{"deep_sample_rate", "num_periods", "topn_count", "topn_percentile_threshold"}

// Common is the part of a handler configuration every handler shares.
type Common struct {
	Window   metrics.Window
	Groups   uint32
	Recorded bool // recorded_stream: a file, so no "live" rates and stored period lengths
}

// ParseCommon validates the keys of cfg against the handler's own keys (in declaration order)
// plus the window keys, then reads the window configuration and the metric groups
// (cfg["enable"], cfg["disable"]).
func ParseCommon(cfg config.Map, ownKeys []string, groups *metrics.Groups) (Common, error) {
	var c Common
	valid := append(slices.Clone(ownKeys), WindowKeys...)
	if err := cfg.CheckKeys(valid, "enable", "disable", "_internal_tap_name"); err != nil {
		return c, err
	}
	c.Window = metrics.DefaultWindow
	for key, dst := range map[string]*int{
		"num_periods":               &c.Window.NumPeriods,
		"deep_sample_rate":          &c.Window.DeepSampleRate,
		"topn_count":                &c.Window.TopNCount,
		"topn_percentile_threshold": &c.Window.TopNPercentile,
	} {
		v, ok, err := cfg.Uint(key)
		if err != nil {
			return c, err
		}
		if ok {
			*dst = int(min(v, 1<<31))
		}
	}
	if err := c.Window.Normalize(); err != nil {
		return c, err
	}
	enable, _, err := cfg.List("enable")
	if err != nil {
		return c, err
	}
	disable, _, err := cfg.List("disable")
	if err != nil {
		return c, err
	}
	if groups != nil {
		if c.Groups, err = groups.Resolve(enable, disable); err != nil {
			return c, err
		}
	}
	c.Recorded = cfg.Has("recorded_stream")
	return c, nil
}

// Deep reports whether an event with random number rnd is deep-sampled at rate percent.
func Deep(rate int, rnd uint32) bool {
	return rate >= 100 || int(rnd%100) < rate
}

// ErrNoSuchHandler is the reference's message for an unknown type/version.
func ErrNoSuchHandler(policy, typ, version string) error {
	//lint:ignore ST1005 the reference's exact text, which users and tests match
	return fmt.Errorf("Policy '%s' requires stream handler type '%s' and version '%s' which is not available", policy, typ, version)
}

// Silent reports a handler whose metric groups are all disabled: it emits nothing, and its
// key is left out of the output (as the reference does).
func Silent(sp Spec) bool {
	g, ok := sp.(interface{ AllGroupsDisabled() bool })
	return ok && g.AllGroupsDisabled()
}
