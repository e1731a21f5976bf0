package agent

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/bucketwire"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// AggregateOptions configure an Aggregator.
type AggregateOptions struct {
	Agents   []string      // base URLs of the agents' REST APIs (http://host:10853)
	Policy   string        // the policy pulled from every agent; default "default"
	Interval time.Duration // pull interval; default 5 s
	Periods  int           // minutes kept and served; default 5, at most 10
	Client   *http.Client  // default: 10 s timeout
	Instance string        // --prom-instance of the aggregator itself
	Version  string
	Log      *slog.Logger
	// AcceptPush serves POST /api/v1/aggregate/buckets: agents behind NAT push their exports
	// (pktvisord --aggregate-push URL) instead of being pulled; each pushing agent is known by
	// its --prom-instance. At most MaxPushAgents (default 1024) distinct ones.
	AcceptPush    bool
	MaxPushAgents int
	// PushToken, when set, must come as "Authorization: Bearer <token>" with every push.
	PushToken string
}

// Aggregator pulls a policy's buckets from many agents as sketches (`?format=sketch`), merges
// them by minute and serves the merged view with the agent's REST API shape, Prometheus output
// and the pktvisor-cli's routes: global counters (sums), global distinct counts (HLL union),
// global quantiles (sketch merge) and global top-N (frequent-items merge, with its error bound).
//
// Buckets are keyed by the minute their period starts in (start_ts rounded down to a multiple
// of 60): live agents rotate on wall-clock minutes, so their buckets of the same minute merge;
// an agent's first, partial bucket joins the minute it started in; an agent whose clock is off
// contributes its minute under its own clock's reading (keep agents on NTP). Bucket n of the
// aggregator is the n-th newest minute any agent reported (bucket/0 = the minute in progress).
// Each merged view says which agents it includes, which were missing a selected minute and
// which reported capture drops in it ("aggregate" key).
type Aggregator struct {
	opts    AggregateOptions
	started time.Time

	mu      sync.Mutex
	remotes []*remote

	// Rendered views are cached for a second (as the agent caches windows): a merge decodes
	// every agent's buckets, and many pktvisor-cli clients poll every second.
	cache    windowCache
	cacheKey *policyState // the cache's key: the aggregated policy
}

// remote is one agent and the buckets pulled from it, by minute.
type remote struct {
	url      string // base URL, or "push:<instance>" for an agent that pushes
	instance string // its --prom-instance, from the last export
	lastErr  string
	lastOK   time.Time
	buckets  map[int64]*remoteBucket
}

// remoteBucket is one decoded export; it is never modified once stored.
type remoteBucket struct {
	h    *bucketwire.Header
	data [][]byte
}

// maxExport bounds one pulled export (a bucket of a few handlers is well under 10 MiB).
const maxExport = 64 << 20

// NewAggregator validates the options.
func NewAggregator(opts AggregateOptions) (*Aggregator, error) {
	if len(opts.Agents) == 0 && !opts.AcceptPush {
		return nil, errors.New("aggregate: no agent URL")
	}
	if opts.Policy == "" {
		opts.Policy = "default"
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Periods <= 0 {
		opts.Periods = 5
	}
	opts.Periods = min(opts.Periods, 10)
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxPushAgents <= 0 {
		opts.MaxPushAgents = 1024
	}
	g := &Aggregator{opts: opts, started: time.Now(), cacheKey: &policyState{name: opts.Policy}}
	seen := map[string]bool{}
	for _, a := range opts.Agents {
		u, err := url.Parse(strings.TrimRight(a, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("aggregate: agent %q: want http(s)://host:port", a)
		}
		if seen[u.String()] {
			return nil, fmt.Errorf("aggregate: agent %q listed twice", a)
		}
		seen[u.String()] = true
		g.remotes = append(g.remotes, &remote{url: u.String(), buckets: map[int64]*remoteBucket{}})
	}
	return g, nil
}

// Run pulls every agent each interval until ctx ends. The first pull also fetches the older
// buckets the agents still keep.
func (g *Aggregator) Run(ctx context.Context) {
	g.PullAll(ctx, true)
	t := time.NewTicker(g.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.PullAll(ctx, false)
		}
	}
}

// PullAll pulls every agent once, concurrently: the live and the last closed bucket, or every
// bucket the agent keeps with backfill (or when nothing was pulled from it yet).
func (g *Aggregator) PullAll(ctx context.Context, backfill bool) {
	var wg sync.WaitGroup
	g.mu.Lock()
	var pulled []*remote
	for _, r := range g.remotes {
		if !strings.HasPrefix(r.url, pushPrefix) {
			pulled = append(pulled, r)
		}
	}
	g.mu.Unlock()
	for _, r := range pulled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.pull(ctx, r, backfill)
			g.mu.Lock()
			defer g.mu.Unlock()
			if err != nil {
				if r.lastErr != err.Error() {
					g.opts.Log.Warn("aggregate: pull failed", "agent", r.url, "error", err)
				}
				r.lastErr = err.Error()
				return
			}
			r.lastErr, r.lastOK = "", time.Now()
		}()
	}
	wg.Wait()
}

func (g *Aggregator) pull(ctx context.Context, r *remote, backfill bool) error {
	g.mu.Lock()
	n := 2
	if backfill || len(r.buckets) == 0 {
		n = g.opts.Periods
	}
	g.mu.Unlock()
	for i := range n {
		u := fmt.Sprintf("%s/api/v1/policies/%s/metrics/bucket/%d?format=sketch", r.url, url.PathEscape(g.opts.Policy), i)
		data, status, err := g.fetch(ctx, u)
		if status == http.StatusTooEarly && i > 0 {
			break // the agent keeps no older bucket yet
		}
		if err != nil {
			return err
		}
		h, buckets, err := bucketwire.Decode(data)
		if err != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
		if h.Policy != g.opts.Policy {
			return fmt.Errorf("%s: export of policy %q", u, h.Policy)
		}
		g.mu.Lock()
		r.buckets[minuteOf(h.Period.StartTS)] = &remoteBucket{h: h, data: buckets}
		r.instance = h.Instance
		g.prune(r)
		g.mu.Unlock()
	}
	return nil
}

const pushPrefix = "push:"

// Push stores an export an agent pushed. The agent is known by its instance name (its
// --prom-instance, required); a new name beyond MaxPushAgents is refused.
func (g *Aggregator) Push(data []byte) error {
	// The stored buckets alias the decoded bytes: keep a copy of our own.
	own := make([]byte, len(data))
	copy(own, data)
	h, buckets, err := bucketwire.Decode(own)
	if err != nil {
		return &apiError{ErrInvalid, err.Error()}
	}
	if h.Policy != g.opts.Policy {
		return &apiError{ErrInvalid, fmt.Sprintf("export of policy %q, this aggregator merges %q", h.Policy, g.opts.Policy)}
	}
	if h.Instance == "" {
		return &apiError{ErrInvalid, "a pushed export needs the agent's --prom-instance"}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	name := pushPrefix + h.Instance
	var r *remote
	pushed := 0
	for _, x := range g.remotes {
		if x.url == name {
			r = x
		}
		if strings.HasPrefix(x.url, pushPrefix) {
			pushed++
		}
	}
	if r == nil {
		if pushed >= g.opts.MaxPushAgents {
			return &apiError{ErrConflict, fmt.Sprintf("already %d pushing agents", pushed)}
		}
		r = &remote{url: name, buckets: map[int64]*remoteBucket{}}
		g.remotes = append(g.remotes, r)
	}
	r.buckets[minuteOf(h.Period.StartTS)] = &remoteBucket{h: h, data: buckets}
	r.instance, r.lastOK, r.lastErr = h.Instance, time.Now(), ""
	g.prune(r)
	return nil
}

// prune keeps a remote's newest minutes only (the caller holds g.mu).
func (g *Aggregator) prune(r *remote) {
	if len(r.buckets) <= g.opts.Periods {
		return
	}
	keys := make([]int64, 0, len(r.buckets))
	for k := range r.buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys[:len(keys)-g.opts.Periods] {
		delete(r.buckets, k)
	}
}

func (g *Aggregator) fetch(ctx context.Context, u string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := g.opts.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExport+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("%s: %s: %s", u, resp.Status, bytes.TrimSpace(body[:min(len(body), 200)]))
	}
	if len(body) > maxExport {
		return nil, resp.StatusCode, fmt.Errorf("%s: export larger than %d bytes", u, maxExport)
	}
	return body, resp.StatusCode, nil
}

func minuteOf(ts int64) int64 { return ts - ((ts%60)+60)%60 }

// contribution is one agent's bucket of a selected minute.
type contribution struct {
	r *remote
	b *remoteBucket
}

// merged renders the selection: fn is called for each module of the policy (every agent's and
// every tap's handlers of that module merged), in the order the modules first appear. It
// returns the "aggregate" status of the view.
func (g *Aggregator) merged(sel metrics.Selection, now int64, fn func(schema string, render renderFn) error) (map[string]any, error) {
	g.mu.Lock()
	all := map[int64]bool{}
	for _, r := range g.remotes {
		for k := range r.buckets {
			all[k] = true
		}
	}
	keys := make([]int64, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] > keys[j] }) // newest first
	var err error
	if sel.Window == 0 {
		err = metrics.CheckBucket(sel.Bucket, g.opts.Periods, len(keys))
	} else {
		err = metrics.CheckWindow(sel.Window, g.opts.Periods)
	}
	if err != nil {
		g.mu.Unlock()
		return nil, err
	}
	if sel.Window == 0 {
		keys = keys[sel.Bucket : sel.Bucket+1]
	} else {
		keys = keys[:min(sel.Window, len(keys))]
	}
	slices.Reverse(keys) // oldest first
	byKey := make([][]contribution, len(keys))
	status := g.statusLocked(keys)
	for i, k := range keys {
		for _, r := range g.remotes {
			if b := r.buckets[k]; b != nil {
				byKey[i] = append(byKey[i], contribution{r, b})
			}
		}
	}
	g.mu.Unlock()

	// The modules, in order of first appearance, and the spec each is rebuilt from (the first
	// export that has it).
	type module struct {
		key  string // module name + schema
		h    bucketwire.Handler
		sp   handler.Spec
		inst handler.Handler
	}
	var mods []*module
	index := map[string]*module{}
	for _, cs := range byKey {
		for _, c := range cs {
			for _, h := range c.b.h.Handlers {
				key := h.Module + "\x00" + h.Schema
				if index[key] == nil {
					m := &module{key: key, h: h}
					index[key] = m
					mods = append(mods, m)
				}
			}
		}
	}
	live := false
	for _, c := range byKey[len(byKey)-1] {
		live = live || c.b.h.Live
	}
	for _, m := range mods {
		f, ok := handler.Lookup(m.h.Type, m.h.Version)
		if !ok {
			return nil, fmt.Errorf("aggregate: handler %s %s of an agent is unknown here", m.h.Type, m.h.Version)
		}
		cfg := configFromJSON(m.h.Config)
		delete(cfg, "recorded_stream")
		cfg["num_periods"] = uint64(max(len(keys), 2))
		sp, err := f(cfg)
		if err != nil {
			return nil, fmt.Errorf("aggregate: handler %s of an agent: %w", m.h.Name, err)
		}
		codec, ok := sp.(handler.BucketCodec)
		if !ok {
			return nil, fmt.Errorf("aggregate: handler %s cannot merge sketches", m.h.Type)
		}
		m.sp, m.inst = sp, sp.NewInstance(&handler.Env{})
		var end int64
		for i, cs := range byKey {
			if i == 0 {
				m.inst.Start(keys[0] * 1e9)
			} else {
				m.inst.Shift(keys[i] * 1e9)
			}
			for _, c := range cs {
				for j, h := range c.b.h.Handlers {
					if h.Module+"\x00"+h.Schema != m.key {
						continue
					}
					if err := codec.MergeBucket(m.inst, c.b.data[j]); err != nil {
						return nil, fmt.Errorf("aggregate: %s from %s: %w", h.Name, c.r.url, err)
					}
				}
				end = max(end, keys[i]+c.b.h.Period.Length)
			}
		}
		rsel := metrics.Selection{Window: sel.Window}
		if sel.Window == 0 && !live {
			// A closed minute: close it where the longest agent period ended, and render it as
			// the ring's closed bucket (its own length, no live rates).
			m.inst.Shift(max(end, keys[len(keys)-1]+1) * 1e9)
			rsel.Bucket = 1
		} else if sel.Window > 0 {
			rsel.Window = max(len(keys), 2) // a window has at least 2 periods; fewer exist merge
		}
		if err := fn(m.h.Schema, func(sink metrics.Sink) (metrics.RenderedPeriod, error) {
			return m.sp.Render([]handler.Handler{m.inst}, rsel, sink, now)
		}); err != nil {
			return nil, err
		}
	}
	return status, nil
}

// statusLocked describes which agents a view of the minutes keys includes (caller holds g.mu).
func (g *Aggregator) statusLocked(keys []int64) map[string]any {
	var agents []any
	included, missing, drops := []string{}, []string{}, []string{}
	for _, r := range g.remotes {
		name := r.instance
		if name == "" {
			name = r.url
		}
		var have, osd, ifd uint64
		for _, k := range keys {
			if b := r.buckets[k]; b != nil {
				have++
				osd += b.h.Drops.OS
				ifd += b.h.Drops.If
			}
		}
		a := map[string]any{"url": r.url, "instance": r.instance, "periods": have,
			"missing_periods": uint64(len(keys)) - have, "os_drops": osd, "if_drops": ifd}
		if r.lastErr != "" {
			a["last_error"] = r.lastErr
		}
		if !r.lastOK.IsZero() {
			a["last_pull"] = r.lastOK.Unix()
		}
		agents = append(agents, a)
		if have > 0 {
			included = append(included, name)
		}
		if have < uint64(len(keys)) {
			missing = append(missing, name)
		}
		if osd+ifd > 0 {
			drops = append(drops, name)
		}
	}
	return map[string]any{"agents": agents, "included": included, "missing": missing, "with_drops": drops,
		"complete": len(missing) == 0 && len(drops) == 0}
}

// configFromJSON turns a handler configuration decoded from JSON back into config types
// (numbers → uint64, string lists → []string, objects → Map).
func configFromJSON(m map[string]any) config.Map {
	out := config.Map{}
	for k, v := range m {
		out[k] = configValue(v)
	}
	return out
}

func configValue(v any) any {
	switch x := v.(type) {
	case float64:
		if x >= 0 && x == math.Trunc(x) && x < 1<<63 {
			return uint64(x)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(configValue(e)))
		}
		return out
	case map[string]any:
		return configFromJSON(x)
	}
	return v
}

// policyJSON is the merged view as the agent's policy JSON: {"<schema>_merged": {schema:
// {...}}, "aggregate": status}; top-N lists carry "<key>_max_error".
func (g *Aggregator) policyJSON(sel metrics.Selection) (map[string]any, error) {
	key := sel.Window // a window n, or a bucket as -1-n
	if sel.Window == 0 {
		key = -1 - sel.Bucket
	}
	if out, ok := g.cache.get(g.cacheKey, key); ok {
		return out, nil
	}
	out := map[string]any{}
	status, err := g.merged(sel, time.Now().UnixNano(), mergedJSON(out, true))
	if err != nil {
		return nil, err
	}
	out["aggregate"] = status
	g.cache.put(g.cacheKey, key, out)
	return out, nil
}

// prom renders the last closed minute (else the live one) with the labels policy and handler
// (<schema>_merged), as the agent's merge_like_handlers policies.
func (g *Aggregator) prom(p *metrics.Prom, withHandler bool) error {
	now := time.Now().UnixNano()
	return promLastClosed(p, g.opts.Policy, withHandler, func(sel metrics.Selection, emit func(string, renderFn) error) error {
		_, err := g.merged(sel, now, emit)
		return err
	})
}

// writeHealth appends the aggregator's own families: build info and uptime as an agent has
// them (so dashboards list the aggregator among the instances), and whether each agent's last
// pull or push succeeded.
func (g *Aggregator) writeHealth(buf *bytes.Buffer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	lbl := func(kv ...string) string {
		var parts []string
		if g.opts.Instance != "" {
			parts = append(parts, "instance="+strconv.Quote(g.opts.Instance))
		}
		for i := 0; i+1 < len(kv); i += 2 {
			parts = append(parts, kv[i]+"="+strconv.Quote(kv[i+1]))
		}
		if len(parts) == 0 {
			return ""
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	fmt.Fprintf(buf, "# HELP pktvisord_build_info Build information of the aggregator\n# TYPE pktvisord_build_info gauge\npktvisord_build_info%s 1\n", lbl("version", g.opts.Version))
	fmt.Fprintf(buf, "# HELP pktvisord_uptime_seconds Seconds since the aggregator started\n# TYPE pktvisord_uptime_seconds gauge\npktvisord_uptime_seconds%s %d\n", lbl(), int64(time.Since(g.started).Seconds()))
	fmt.Fprintf(buf, "# HELP pktvisord_aggregate_agent_up Whether the last pull from (or push by) the agent succeeded\n# TYPE pktvisord_aggregate_agent_up gauge\n")
	for _, r := range g.remotes {
		up := 0
		if r.lastErr == "" && !r.lastOK.IsZero() {
			up = 1
		}
		fmt.Fprintf(buf, "pktvisord_aggregate_agent_up%s %d\n", lbl("agent", r.url), up)
	}
}

// Handler serves the merged view: the agent's read routes for the aggregated policy (bucket,
// window, prometheus), /metrics, /api/v1/metrics/app and /api/v1/policies.
func (g *Aggregator) Handler() http.Handler {
	mux := http.NewServeMux()
	get := func(pattern string, h http.HandlerFunc) { mux.HandleFunc("GET "+pattern, h) }
	get("/api/v1/metrics/app", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"app": map[string]any{
			"version": g.opts.Version, "up_time_min": time.Since(g.started).Minutes(), "mode": "aggregator"}})
	})
	get("/api/v1/policies", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		agents := make([]string, 0, len(g.remotes))
		for _, r := range g.remotes {
			agents = append(agents, r.url)
		}
		g.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{g.opts.Policy: map[string]any{"kind": "aggregate", "agents": agents}})
	})
	metricsRoute := func(window bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			sel, ok := selection(w, r, window)
			if !ok {
				return
			}
			name := r.PathValue("name")
			if name != g.opts.Policy && name != "__all" {
				writeError(w, notFound("policy does not exists"))
				return
			}
			out, err := g.policyJSON(sel)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{g.opts.Policy: out})
		}
	}
	get("/api/v1/policies/{name}/metrics/bucket/{n}", metricsRoute(false))
	get("/api/v1/policies/{name}/metrics/window/{n}", metricsRoute(true))
	promRoute := func(withHandler bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if name := r.PathValue("name"); withHandler && name != g.opts.Policy {
				writeError(w, notFound("policy does not exists"))
				return
			}
			p := metrics.NewProm(g.opts.Instance)
			if err := g.prom(p, withHandler); err != nil {
				writeText(w, http.StatusInternalServerError, err.Error())
				return
			}
			var buf bytes.Buffer
			p.WriteTo(&buf)
			if !withHandler {
				g.writeHealth(&buf)
			}
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			w.Write(buf.Bytes())
		}
	}
	get("/api/v1/policies/{name}/metrics/prometheus", promRoute(true))
	get("/metrics", promRoute(false))
	if g.opts.AcceptPush {
		mux.HandleFunc("POST /api/v1/aggregate/buckets", func(w http.ResponseWriter, r *http.Request) {
			if tok := g.opts.PushToken; tok != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+tok)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pktvisord aggregate"`)
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "a push needs the aggregator's token (--aggregate-token)"})
				return
			}
			if ct := r.Header.Get("Content-Type"); ct != bucketwire.MediaType {
				writeJSON(w, http.StatusUnsupportedMediaType, map[string]any{"error": "Content-Type must be " + bucketwire.MediaType})
				return
			}
			data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxExport))
			if err != nil {
				writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": err.Error()})
				return
			}
			if err := g.Push(data); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
	return guard(mux, false)
}
