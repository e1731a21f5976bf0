package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The dashboards under test live at the top of the repository.
var dashboardsGlob = filepath.Join("..", "..", "dashboards", "*.json")

// The two agents of TestDashboards: their --prom-instance, capture seed and host spec. The host
// specs take one server and one /24 of clients of pktvisor-gen's address plan (servers
// 172.16.53.j and fd53::j, clients 10.0.x.y), so that each agent sees both directions: queries
// to its server come in and its replies go out (xact in), its clients' queries to the other
// servers go out and their replies come in (xact out). Every family of the dashboards then has
// data on both agents, and the per-instance panels can be required to show both.
var dashAgents = []struct {
	instance string
	seed     int
	packets  int // different sizes, so that a panel mixing the agents up shows
	hostSpec string
}{
	{"dash-a", 1, 20000, "172.16.53.1/32,fd53::1/128,10.0.0.0/24"},
	{"dash-b", 2, 14000, "172.16.53.2/32,fd53::2/128,10.0.1.0/24"},
}

// Grafana dashboard JSON model: the fields the schema check needs. Pointers tell a missing
// field from a zero one.
type gDashboard struct {
	Title         *string `json:"title"`
	UID           *string `json:"uid"`
	SchemaVersion *int    `json:"schemaVersion"`
	Templating    *struct {
		List []gVariable `json:"list"`
	} `json:"templating"`
	Panels []gPanel `json:"panels"`
}

type gVariable struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "...", ...}
	Definition string          `json:"definition"`
	Datasource *gDatasource    `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   *string         `json:"allValue"`
}

type gPanel struct {
	ID         *int         `json:"id"`
	Type       string       `json:"type"`
	Title      *string      `json:"title"`
	GridPos    *gGridPos    `json:"gridPos"`
	Datasource *gDatasource `json:"datasource"`
	Targets    []gTarget    `json:"targets"`
	Collapsed  bool         `json:"collapsed"`
	Panels     []gPanel     `json:"panels"` // a collapsed row's panels
}

type gGridPos struct {
	H, W, X, Y *int
}

type gDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gTarget struct {
	RefID      string       `json:"refId"`
	Expr       string       `json:"expr"`
	Datasource *gDatasource `json:"datasource"`
	Instant    bool         `json:"instant"`
	Format     string       `json:"format"`
}

// dashExpr is one PromQL expression of a dashboard: a panel target or a variable query
// (label_values(selector, label) rewritten as `count by (label) (selector)`).
type dashExpr struct {
	where   string // file, panel and target, for messages
	section string // "Global", "Per instance", or "variable"
	expr    string
	label   string // for variables: the label whose values the query lists
}

// knownPanelTypes are Grafana's built-in panel plugins this repository may use.
var knownPanelTypes = []string{"row", "timeseries", "table", "stat", "piechart", "bargauge", "gauge", "barchart", "text", "heatmap", "histogram"}

// grafanaVarRe matches a template variable reference: ${name}, ${name:format}, [[name]] or $name.
var grafanaVarRe = regexp.MustCompile(`\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)`)

// grafanaBuiltins are the global variables the test substitutes, with values Grafana would
// give them for a 15 s step and a one-hour range on a data source with the default scrape
// interval (15 s): $__rate_interval is then max(4 × 15 s, step + 15 s) = 1m.
var grafanaBuiltins = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__interval_ms":   "15000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
}

var labelValuesRe = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// checkDashboard decodes one dashboard and returns its expressions and every schema problem
// found (all of them, so one run lists everything to fix).
func checkDashboard(name string, raw []byte) ([]dashExpr, []error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	var d gDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, []error{fmt.Errorf("%s: decode: %w", name, err)}
	}
	if d.Title == nil || *d.Title == "" {
		bad("no title")
	}
	if d.UID == nil || *d.UID == "" || len(*d.UID) > 40 {
		bad("uid missing, empty or longer than 40 characters")
	}
	if d.SchemaVersion == nil || *d.SchemaVersion < 36 {
		bad("schemaVersion missing or below 36 (datasource references by uid need 36+)")
	}
	if len(d.Panels) == 0 {
		bad("no panels")
	}
	checkDatasourceRefs(raw, bad)

	// Variables.
	vars := map[string]gVariable{}
	var exprs []dashExpr
	if d.Templating == nil {
		bad("no templating")
	} else {
		for i, v := range d.Templating.List {
			if v.Name == "" {
				bad("variable %d has no name", i)
				continue
			}
			if _, dup := vars[v.Name]; dup {
				bad("variable %q defined twice", v.Name)
			}
			vars[v.Name] = v
			switch v.Type {
			case "datasource":
				var q string
				if err := json.Unmarshal(v.Query, &q); err != nil || q != "prometheus" {
					bad("datasource variable %q: query %s, want \"prometheus\"", v.Name, v.Query)
				}
			case "query":
				if !isTemplateDatasource(v.Datasource) {
					bad("variable %q: datasource %+v, want {prometheus ${datasource}}", v.Name, v.Datasource)
				}
				q := variableQuery(v)
				m := labelValuesRe.FindStringSubmatch(q)
				if m == nil {
					bad("variable %q: query %q is not label_values(selector, label)", v.Name, q)
					continue
				}
				exprs = append(exprs, dashExpr{where: fmt.Sprintf("%s variable %q (%s)", name, v.Name, q), section: "variable",
					expr: fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), label: m[2]})
			}
		}
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" {
		bad("no variable \"datasource\" of type datasource")
	}
	for _, name := range []string{"instance", "policy"} {
		v, ok := vars[name]
		switch {
		case !ok || v.Type != "query":
			bad("no query variable %q", name)
		case !v.Multi || !v.IncludeAll || v.AllValue == nil || *v.AllValue != ".*":
			bad("variable %q: want multi, includeAll and allValue \".*\" (multi %v includeAll %v allValue %v)", name, v.Multi, v.IncludeAll, v.AllValue)
		}
	}
	if v, ok := vars["instance"]; ok {
		if m := labelValuesRe.FindStringSubmatch(variableQuery(v)); m == nil || m[2] != "instance" {
			bad("variable instance must list label_values(..., instance)")
		}
	}

	// Panels, flattened in layout order; uncollapsed rows own the panels below them.
	type placed struct {
		p       gPanel
		section string
	}
	var all []placed
	section := ""
	for _, p := range d.Panels {
		if p.Type == "row" && p.Title != nil {
			section = *p.Title
		}
		all = append(all, placed{p, section})
		for _, c := range p.Panels {
			all = append(all, placed{c, section})
		}
	}
	ids := map[int]bool{}
	var boxes []placed
	for _, pl := range all {
		p := pl.p
		title := "(untitled)"
		if p.Title != nil {
			title = *p.Title
		}
		if p.ID == nil {
			bad("panel %q has no id", title)
			continue
		}
		where := fmt.Sprintf("%s panel %d %q", name, *p.ID, title)
		if ids[*p.ID] {
			bad("panel id %d used twice", *p.ID)
		}
		ids[*p.ID] = true
		if p.Title == nil || *p.Title == "" {
			bad("panel %d has no title", *p.ID)
		}
		if !slices.Contains(knownPanelTypes, p.Type) {
			bad("panel %d: type %q is not one of %v", *p.ID, p.Type, knownPanelTypes)
		}
		if g := p.GridPos; g == nil || g.H == nil || g.W == nil || g.X == nil || g.Y == nil {
			bad("panel %d: gridPos missing or incomplete", *p.ID)
		} else if *g.W <= 0 || *g.H <= 0 || *g.X < 0 || *g.Y < 0 || *g.X+*g.W > 24 {
			bad("panel %d: gridPos %d,%d %dx%d outside the 24-column grid", *p.ID, *g.X, *g.Y, *g.W, *g.H)
		} else {
			boxes = append(boxes, pl)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				bad("row %d has targets", *p.ID)
			}
			continue
		}
		if p.Type == "text" {
			continue
		}
		if pl.section != "Global" && pl.section != "Per instance" {
			bad("panel %d is in row %q, want \"Global\" or \"Per instance\"", *p.ID, pl.section)
		}
		if !isTemplateDatasource(p.Datasource) {
			bad("panel %d: datasource %+v, want {prometheus ${datasource}}", *p.ID, p.Datasource)
		}
		if len(p.Targets) == 0 {
			bad("panel %d has no targets", *p.ID)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" {
				bad("panel %d: a target has no refId", *p.ID)
			} else if refs[tg.RefID] {
				bad("panel %d: refId %q used twice", *p.ID, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				bad("panel %d target %q: empty expr", *p.ID, tg.RefID)
				continue
			}
			if !isTemplateDatasource(tg.Datasource) {
				bad("panel %d target %q: datasource %+v, want {prometheus ${datasource}}", *p.ID, tg.RefID, tg.Datasource)
			}
			for _, pr := range selectorProblems(tg.Expr) {
				bad("panel %d target %q: %s in %q", *p.ID, tg.RefID, pr, tg.Expr)
			}
			exprs = append(exprs, dashExpr{where: fmt.Sprintf("%s target %s", where, tg.RefID), section: pl.section, expr: tg.Expr})
		}
	}
	for i := range boxes {
		for j := i + 1; j < len(boxes); j++ {
			a, b := boxes[i].p.GridPos, boxes[j].p.GridPos
			if *a.X < *b.X+*b.W && *b.X < *a.X+*a.W && *a.Y < *b.Y+*b.H && *b.Y < *a.Y+*a.H {
				bad("panels %d and %d overlap", *boxes[i].p.ID, *boxes[j].p.ID)
			}
		}
	}
	// Every variable an expression uses must exist.
	for _, e := range exprs {
		for _, m := range grafanaVarRe.FindAllStringSubmatch(e.expr, -1) {
			v := m[1] + m[3] + m[4]
			if _, ok := vars[v]; !ok && grafanaBuiltins[v] == "" {
				bad("%s: unknown variable $%s in %q", e.where, v, e.expr)
			}
		}
	}
	return exprs, errs
}

var (
	// promSelectorRe matches a vector selector with braces: an optional metric name, then the
	// matchers (label values never contain braces here).
	promSelectorRe = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}`)
	// promGroupingRe matches the label lists of by/without/on/ignoring/group_x modifiers.
	promGroupingRe = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promStringRe   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promRangeRe    = regexp.MustCompile(`\[[^\]]*\]`)
	promTokenRe    = regexp.MustCompile(`[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*`)
	instanceVarRe  = regexp.MustCompile(`\binstance\s*=~\s*"\$instance"`)
	policyVarRe    = regexp.MustCompile(`\bpolicy\s*=~\s*"\$policy"`)
	promKeywords   = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless", "inf", "nan", "Inf", "NaN"}
)

// selectorProblems lists the vector selectors of a panel expression that do not select agents
// by $instance (every one must: "the queries select agents by instance"), or, for the policy
// families (every name but the agent's own pktvisord_* health, which has no policy label), by
// $policy. A selector without braces cannot carry either, so it is a problem too. A small
// lexer is enough for the PromQL the dashboards use; it errs on the side of complaining.
func selectorProblems(expr string) []string {
	var probs []string
	// ${name} and ${name:format} would look like selectors: write every reference as $name.
	expr = grafanaVarRe.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVarRe.FindStringSubmatch(m)
		return "$" + sm[1] + sm[3] + sm[4]
	})
	for _, m := range promSelectorRe.FindAllStringSubmatch(expr, -1) {
		name, matchers := m[1], m[2]
		if !instanceVarRe.MatchString(matchers) {
			probs = append(probs, fmt.Sprintf("selector %s{%s} does not filter instance=~\"$instance\"", name, matchers))
		}
		if !strings.HasPrefix(name, "pktvisord_") && !policyVarRe.MatchString(matchers) {
			probs = append(probs, fmt.Sprintf("selector %s{%s} does not filter policy=~\"$policy\"", name, matchers))
		}
	}
	rest := promStringRe.ReplaceAllString(expr, `""`)
	rest = promSelectorRe.ReplaceAllString(rest, " 0 ")
	rest = promRangeRe.ReplaceAllString(rest, " ")
	rest = promGroupingRe.ReplaceAllString(rest, " ")
	for _, loc := range promTokenRe.FindAllStringIndex(rest, -1) {
		tok := rest[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || slices.Contains(promKeywords, tok) {
			continue
		}
		if after := strings.TrimLeft(rest[loc[1]:], " \t\n"); strings.HasPrefix(after, "(") {
			continue // a function or an aggregation
		}
		probs = append(probs, fmt.Sprintf("selector %s has no matchers", tok))
	}
	return probs
}

func TestSelectorProblems(t *testing.T) {
	tests := []struct {
		expr string
		want int
	}{
		{`sum(packets_total{instance=~"$instance",policy=~"$policy"}) / 60`, 0},
		{`topk by (instance) (10, sum by (instance, qname) (dns_top_qname3{instance=~"${instance}",policy=~"$policy"}))`, 0},
		{`sum by (instance) (rate(pktvisord_input_os_drops_total{instance=~"$instance"}[$__rate_interval]))`, 0},
		{`max by (quantile) (x{instance=~"$instance",policy=~"$policy",quantile=~"0.5|0.9"}) offset 1h`, 0},
		{`sum(packets_ipv6{policy=~"$policy"}) + 0*sum(packets_ipv6{instance=~"$instance",policy=~"$policy"})`, 1},
		{`sum(packets_total{instance=~"$instance"})`, 1},
		{`sum(packets_total) / 60`, 1},
		{`sum(packets_total{instance=~"$instance",policy=~"$policy"}) / sum(dns_wire_packets_replies)`, 1},
		{`count(pktvisord_build_info{instance="dash-a"})`, 1},
	}
	for _, tc := range tests {
		if got := selectorProblems(tc.expr); len(got) != tc.want {
			t.Errorf("selectorProblems(%q) = %q, want %d problems", tc.expr, got, tc.want)
		}
	}
}

// checkDatasourceRefs walks the whole document: every "datasource" must be the template
// variable, except the built-in annotation's Grafana source, so the dashboard imports anywhere.
func checkDatasourceRefs(raw []byte, bad func(string, ...any)) {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return // reported by the typed decode
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "datasource" && !strings.HasPrefix(path, "/annotations") {
					ds, ok := c.(map[string]any)
					if !ok || ds["type"] != "prometheus" || ds["uid"] != "${datasource}" {
						bad("%s/datasource = %v, want {\"type\":\"prometheus\",\"uid\":\"${datasource}\"}", path, c)
					}
					continue
				}
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(path+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("", doc)
}

func isTemplateDatasource(ds *gDatasource) bool {
	return ds != nil && ds.Type == "prometheus" && ds.UID == "${datasource}"
}

// variableQuery returns a query variable's PromQL-ish text, whichever form it is stored in.
func variableQuery(v gVariable) string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil && s != "" {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil && o.Query != "" {
		return o.Query
	}
	return v.Definition
}

// substitute replaces template variables as Grafana's Prometheus data source does: vals holds
// the already formatted value of each variable (".*" for All, "(a|b)" for several values),
// builtins come from grafanaBuiltins. It fails on a variable it does not know.
func substitute(expr string, vals map[string]string) (string, error) {
	var err error
	out := grafanaVarRe.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVarRe.FindStringSubmatch(m)
		name := sm[1] + sm[3] + sm[4]
		if v, ok := vals[name]; ok {
			return v
		}
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		err = errors.Join(err, fmt.Errorf("unknown variable $%s", name))
		return m
	})
	return out, err
}

// grafanaMulti formats the selected values of a multi-value variable for a regex matcher, as
// Grafana does: one value as is (regex-escaped), several as (a|b).
func grafanaMulti(values ...string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = regexp.QuoteMeta(v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "(" + strings.Join(q, "|") + ")"
}

func TestDashboardSubstitute(t *testing.T) {
	vals := map[string]string{"instance": grafanaMulti("a", "b"), "policy": ".*"}
	tests := []struct {
		in, want string
		err      bool
	}{
		{`x{instance=~"$instance"}`, `x{instance=~"(a|b)"}`, false},
		{`x{instance=~"${instance}",policy=~"${policy:regex}"}`, `x{instance=~"(a|b)",policy=~".*"}`, false},
		{`x{instance=~"[[instance]]"}`, `x{instance=~"(a|b)"}`, false},
		{`rate(c[$__rate_interval]) + rate(c[$__interval]) + max_over_time(g[$__range])`, `rate(c[1m]) + rate(c[15s]) + max_over_time(g[1h])`, false},
		{`x{job=~"$job"}`, `x{job=~"$job"}`, true},
		{`sum(x) / 60`, `sum(x) / 60`, false},
	}
	for _, tc := range tests {
		got, err := substitute(tc.in, vals)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("substitute(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if got := grafanaMulti("10.0.0.1:10853"); got != `10\.0\.0\.1:10853` {
		t.Errorf("grafanaMulti one value = %q", got)
	}
}

// minimalDashboard is a valid dashboard that TestDashboardSchemaRejects breaks one way at a time.
const minimalDashboard = `{
  "title": "t", "uid": "u", "schemaVersion": 39,
  "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}}]},
  "templating": {"list": [
    {"type": "datasource", "name": "datasource", "query": "prometheus"},
    {"type": "query", "name": "instance", "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "query": {"query": "label_values(up, instance)"}, "multi": true, "includeAll": true, "allValue": ".*"},
    {"type": "query", "name": "policy", "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "query": "label_values(x, policy)", "multi": true, "includeAll": true, "allValue": ".*"}]},
  "panels": [
    {"id": 1, "type": "row", "title": "Global", "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "panels": []},
    {"id": 2, "type": "timeseries", "title": "p", "gridPos": {"h": 8, "w": 12, "x": 0, "y": 1},
     "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "targets": [{"refId": "A", "expr": "sum(x{instance=~\"$instance\",policy=~\"$policy\"})", "datasource": {"type": "prometheus", "uid": "${datasource}"}}]}
  ]
}`

func TestDashboardSchemaRejects(t *testing.T) {
	if _, errs := checkDashboard("minimal", []byte(minimalDashboard)); len(errs) > 0 {
		t.Fatalf("the minimal dashboard must pass: %v", errs)
	}
	tests := []struct {
		name, old, new, want string
	}{
		{"no uid", `"uid": "u",`, ``, "uid"},
		{"old schema", `"schemaVersion": 39`, `"schemaVersion": 27`, "schemaVersion"},
		{"duplicate id", `{"id": 2,`, `{"id": 1,`, "used twice"},
		{"unknown type", `"type": "timeseries"`, `"type": "graph"`, "is not one of"},
		{"too wide", `"w": 12, "x": 0, "y": 1`, `"w": 12, "x": 13, "y": 1`, "outside"},
		{"overlap", `"w": 12, "x": 0, "y": 1`, `"w": 12, "x": 0, "y": 0`, "overlap"},
		{"hard-coded uid", `"targets": [{"refId": "A", "expr": "sum(x{instance=~\"$instance\",policy=~\"$policy\"})", "datasource": {"type": "prometheus", "uid": "${datasource}"}}]`,
			`"targets": [{"refId": "A", "expr": "sum(x{instance=~\"$instance\",policy=~\"$policy\"})", "datasource": {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}}]`, "want {prometheus ${datasource}}"},
		{"empty expr", `"expr": "sum(x{instance=~\"$instance\",policy=~\"$policy\"})"`, `"expr": " "`, "empty expr"},
		{"no refId", `"refId": "A"`, `"refId": ""`, "no refId"},
		{"unknown variable", `$policy\"})"`, `$job\"})"`, "unknown variable $job"},
		{"no datasource variable", `{"type": "datasource", "name": "datasource", "query": "prometheus"},`, ``, "datasource"},
		{"instance not multi", `"query": {"query": "label_values(up, instance)"}, "multi": true`, `"query": {"query": "label_values(up, instance)"}, "multi": false`, "want multi"},
		{"selector without instance", `x{instance=~\"$instance\",policy`, `x{policy`, `does not filter instance=~"$instance"`},
		{"bare selector", `sum(x{instance=~\"$instance\",policy=~\"$policy\"})`, `sum(x{instance=~\"$instance\",policy=~\"$policy\"}) / sum(y)`, "selector y has no matchers"},
		{"no row", `"title": "Global"`, `"title": "Other"`, "want \"Global\" or \"Per instance\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(minimalDashboard, tc.old, tc.new, 1)
			if doc == minimalDashboard {
				t.Fatalf("mutation %q not applied", tc.old)
			}
			_, errs := checkDashboard("mutated", []byte(doc))
			joined := fmt.Sprint(errs)
			if !strings.Contains(joined, tc.want) {
				t.Errorf("errors %v do not mention %q", errs, tc.want)
			}
		})
	}
}

// TestDashboards checks every dashboards/*.json against Grafana's dashboard model, then
// evaluates every PromQL expression in them against a real Prometheus scraping two agents
// that replay different generated captures. See dashboards/README.md.
func TestDashboards(t *testing.T) {
	files, err := filepath.Glob(dashboardsGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards at %s (%v)", dashboardsGlob, err)
	}
	var exprs []dashExpr
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ex, errs := checkDashboard(filepath.Base(f), raw)
		for _, e := range errs {
			t.Errorf("schema: %v", e)
		}
		if filepath.Base(f) == filepath.Base(fleetDashboardPath) {
			continue // live-checked by TestFleetDashboard: it needs closed buckets and native histograms
		}
		exprs = append(exprs, ex...)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d dashboards, %d expressions", len(files), len(exprs))

	if testing.Short() {
		t.Skip("Prometheus part skipped in -short mode")
	}
	for _, tool := range []string{"prometheus", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package prometheus; .ci/run installs it): %v", tool, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	dir := t.TempDir()
	mustRun(ctx, t, "go", "build", "-o", dir+string(filepath.Separator),
		"github.com/pktvisor-go/pktvisor/cmd/pktvisord", "github.com/pktvisor-go/pktvisor/cmd/pktvisor-gen")
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))

	// Two captures (20000 and 14000 packets, < 2 s each at 5000 queries/s) with their ground
	// truth, and an agent replaying each in real time. --periods 1: the live bucket, which
	// /metrics serves while no bucket is closed, never shifts, so every family stays in
	// /metrics whatever the minute boundaries do during the test.
	type agentRun struct {
		instance string
		proc     *proc
		truth    struct {
			Packets    int64            `json:"packets"`
			DNSQueries int64            `json:"dns_queries"`
			DNSReplies int64            `json:"dns_replies"`
			RCodes     map[string]int64 `json:"rcodes"`
		}
	}
	var agents []*agentRun
	var targets []string
	var watch []*proc
	for _, a := range dashAgents {
		pcap := filepath.Join(dir, a.instance+".pcap")
		truthPath := filepath.Join(dir, a.instance+".json")
		mustRun(ctx, t, filepath.Join(dir, "pktvisor-gen"), "-o", pcap, "-n", strconv.Itoa(a.packets), "--qps", "5000",
			"--seed", strconv.Itoa(a.seed), "--truth", truthPath, "-q")
		ar := &agentRun{instance: a.instance}
		tb, err := os.ReadFile(truthPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(tb, &ar.truth); err != nil {
			t.Fatalf("%s: %v", truthPath, err)
		}
		cfg := filepath.Join(dir, a.instance+".yaml")
		if err := os.WriteFile(cfg, []byte(dashAgentConfig(pcap, a.hostSpec)), 0o644); err != nil {
			t.Fatal(err)
		}
		port := freePort(t, "127.0.0.1")
		// startProc names the process and its log after the binary: one link per agent.
		bin := filepath.Join(dir, "pktvisord-"+a.instance)
		if err := os.Symlink(filepath.Join(dir, "pktvisord"), bin); err != nil {
			t.Fatal(err)
		}
		ar.proc = startProc(t, dir, bin, "-l", "127.0.0.1", "-p", strconv.Itoa(port),
			"--prom-instance", a.instance, "--periods", "1", "--config", cfg)
		agents = append(agents, ar)
		targets = append(targets, "127.0.0.1:"+strconv.Itoa(port))
		watch = append(watch, ar.proc)
	}
	prom, promBase := startPrometheusTargets(t, dir, targets)
	watch = append(watch, prom)

	// Ready when Prometheus's latest scrape of each agent holds the whole capture (the
	// generator's truth: frames read, DNS messages summarized) and enough samples for rate().
	waitFor(t, "Prometheus to hold both complete replays", 60*time.Second, 500*time.Millisecond, watch, func() (bool, error) {
		for _, a := range agents {
			sel := `{instance="` + a.instance + `"}`
			checks := []struct {
				query string
				want  int64
			}{
				{"pktvisord_input_packets_total" + sel, a.truth.Packets},
				{"packets_total" + sel, a.truth.Packets},
				{"dns_wire_packets_total" + sel, a.truth.DNSQueries + a.truth.DNSReplies},
			}
			for _, c := range checks {
				res, err := promQuery(ctx, promBase, c.query)
				if err != nil {
					return false, err
				}
				if len(res) != 1 {
					return false, fmt.Errorf("%s: %d series", c.query, len(res))
				}
				if v, err := res[0].float(); err != nil || int64(v) != c.want {
					return false, fmt.Errorf("%s = %v (%v), truth %d", c.query, res[0].Value[1], err, c.want)
				}
			}
			res, err := promQuery(ctx, promBase, "count_over_time(pktvisord_input_packets_total"+sel+"[1m])")
			if err != nil {
				return false, err
			}
			if len(res) != 1 {
				return false, fmt.Errorf("%s: no samples yet", a.instance)
			}
			if v, _ := res[0].float(); v < 3 {
				return false, fmt.Errorf("%s: %v samples, want 3 for rate()", a.instance, v)
			}
		}
		return true, nil
	})
	t.Logf("both agents replayed and scraped after %v", time.Since(start).Round(time.Millisecond))

	names := make([]string, len(agents))
	for i, a := range agents {
		names[i] = a.instance
	}
	checkDashboardExprs(ctx, t, promBase, exprs, names)

	// The panel math against the generator's truth: per-minute gauges / 60, summed over agents.
	// The live bucket holds each whole capture (--periods 1), so the values are exact.
	var packets, queries, replies, nxdomain float64
	perInstance := map[string]float64{}
	for _, a := range agents {
		packets += float64(a.truth.Packets)
		queries += float64(a.truth.DNSQueries)
		replies += float64(a.truth.DNSReplies)
		nxdomain += float64(a.truth.RCodes["NXDOMAIN"])
		perInstance[a.instance] = float64(a.truth.Packets) / 60
	}
	for _, c := range []struct {
		section, title string
		want           map[string]float64 // by instance label; "" for a global value
	}{
		{"Global", "Agents reporting", map[string]float64{"": float64(len(agents))}},
		{"Global", "Packets/s", map[string]float64{"": packets / 60}},
		{"Global", "DNS queries/s", map[string]float64{"": queries / 60}},
		{"Global", "NXDOMAIN share", map[string]float64{"": nxdomain / replies}},
		{"Per instance", "Mean packet rate", perInstance},
	} {
		checkPanelValues(ctx, t, promBase, exprs, c.section, c.title, c.want)
	}
	t.Logf("%d expressions checked in %v total", len(exprs), time.Since(start).Round(time.Millisecond))
}

// checkDashboardExprs evaluates every expression with the variables substituted several ways
// and reports each failure with the text that was sent.
func checkDashboardExprs(ctx context.Context, t *testing.T, promBase string, exprs []dashExpr, instances []string) {
	t.Helper()
	all := map[string]string{"instance": ".*", "policy": ".*"}
	query := func(e dashExpr, vals map[string]string) ([]promSample, string, bool) {
		q, err := substitute(e.expr, vals)
		if err != nil {
			t.Errorf("%s: %v in %q", e.where, err, e.expr)
			return nil, q, false
		}
		res, err := promQuery(ctx, promBase, q)
		if err != nil {
			t.Errorf("%s: %v\n\tsent: %s", e.where, err, q)
			return nil, q, false
		}
		return res, q, true
	}
	seen := func(res []promSample) []string {
		var s []string
		for _, r := range res {
			if v, ok := r.Metric["instance"]; ok && !slices.Contains(s, v) {
				s = append(s, v)
			}
		}
		sort.Strings(s)
		return s
	}
	for _, e := range exprs {
		// All instances, all policies: data, and both agents wherever the result is per instance.
		res, q, ok := query(e, all)
		if !ok {
			continue
		}
		if len(res) == 0 {
			t.Errorf("%s: no series\n\tsent: %s", e.where, q)
			continue
		}
		for _, l := range groupingLabels(e.expr) {
			for _, r := range res {
				if r.Metric[l] == "" {
					t.Errorf("%s: grouped by %q but a series has no such label (a wrong label name?): %s\n\tsent: %s", e.where, l, promLabels(r.Metric), q)
					break
				}
			}
		}
		got := seen(res)
		switch {
		case e.section == "variable" && e.label == "instance":
			var vals []string
			for _, r := range res {
				vals = append(vals, r.Metric["instance"])
			}
			sort.Strings(vals)
			if !slices.Equal(vals, instances) {
				t.Errorf("%s lists %v, want %v\n\tsent: %s", e.where, vals, instances, q)
			}
		case e.section == "Per instance" && !slices.Equal(got, instances):
			t.Errorf("%s: a per-instance panel must show every selected instance: got %v, want %v\n\tsent: %s", e.where, got, instances, q)
		case len(got) > 0 && !slices.Equal(got, instances):
			t.Errorf("%s: groups by instance but shows %v, want %v\n\tsent: %s", e.where, got, instances, q)
		}

		// Several values as Grafana formats them.
		if res, q, ok := query(e, map[string]string{"instance": grafanaMulti(instances...), "policy": grafanaMulti("default")}); ok && len(res) == 0 {
			t.Errorf("%s: no series with instances %v, policy default\n\tsent: %s", e.where, instances, q)
		}
		// Each instance alone: the global panels must see each agent, and nothing of the other.
		for _, inst := range instances {
			if !usesVar(e.expr, "instance") {
				break
			}
			res, q, ok := query(e, map[string]string{"instance": grafanaMulti(inst), "policy": ".*"})
			if !ok {
				continue
			}
			if len(res) == 0 {
				t.Errorf("%s: no series for instance %s alone\n\tsent: %s", e.where, inst, q)
			}
			if g := seen(res); len(g) > 0 && !slices.Equal(g, []string{inst}) {
				t.Errorf("%s: instance %s selected but the result shows %v\n\tsent: %s", e.where, inst, g, q)
			}
		}
		// The selectors really filter: an instance (or policy) that does not exist yields nothing.
		for _, v := range []string{"instance", "policy"} {
			if !usesVar(e.expr, v) {
				continue
			}
			vals := map[string]string{"instance": ".*", "policy": ".*"}
			vals[v] = "no-such-" + v
			if res, q, ok := query(e, vals); ok && len(res) > 0 {
				t.Errorf("%s: $%s does not filter every selector: %d series for a %s that does not exist\n\tsent: %s", e.where, v, len(res), v, q)
			}
		}
	}
}

// checkPanelValues evaluates the first target of the panel titled title in section (all
// instances and policies selected) and compares each series, keyed by its instance label, with
// want.
func checkPanelValues(ctx context.Context, t *testing.T, promBase string, exprs []dashExpr, section, title string, want map[string]float64) {
	t.Helper()
	var e *dashExpr
	for i := range exprs {
		if exprs[i].section == section && strings.Contains(exprs[i].where, strconv.Quote(title)+" target ") {
			e = &exprs[i]
			break
		}
	}
	if e == nil {
		t.Errorf("no panel %q in row %q to check against the truth", title, section)
		return
	}
	q, err := substitute(e.expr, map[string]string{"instance": ".*", "policy": ".*"})
	if err != nil {
		t.Errorf("%s: %v", e.where, err)
		return
	}
	res, err := promQuery(ctx, promBase, q)
	if err != nil {
		t.Errorf("%s: %v\n\tsent: %s", e.where, err, q)
		return
	}
	got := map[string]float64{}
	for _, r := range res {
		v, err := r.float()
		if err != nil {
			t.Errorf("%s: %v", e.where, err)
		}
		got[r.Metric["instance"]] = v
	}
	if len(got) != len(want) {
		t.Errorf("%s: series %v, want %v\n\tsent: %s", e.where, got, want, q)
		return
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s: instance %q = %v, want %v (truth)\n\tsent: %s", e.where, k, got[k], w, q)
		} else {
			t.Logf("%s: %q = %.6g, truth %.6g", title, k, g, w)
		}
	}
}

// groupingLabels lists the labels of the expression's `by (...)` clauses. The dashboards never
// aggregate a grouping label away further out, so each must be on every result series: one
// that is missing names a label the metric does not have.
func groupingLabels(expr string) []string {
	var out []string
	for _, m := range promGroupingRe.FindAllStringSubmatch(expr, -1) {
		if m[1] != "by" {
			continue
		}
		inner := m[0][strings.Index(m[0], "(")+1 : len(m[0])-1]
		for _, l := range strings.Split(inner, ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	return out
}

// usesVar reports whether expr references template variable name in any syntax.
func usesVar(expr, name string) bool {
	for _, m := range grafanaVarRe.FindAllStringSubmatch(expr, -1) {
		if m[1]+m[3]+m[4] == name {
			return true
		}
	}
	return false
}

// dashAgentConfig is an agent's --config: one realtime capture tap and the "default" policy
// (the one /metrics serves) with the reference's default modules.
func dashAgentConfig(pcap, hostSpec string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `version: "1.0"
visor:
  taps:
    replay:
      input_type: pcap
      config:
        pcap_file: %q
        realtime: true
        host_spec: %q
  policies:
    default:
      kind: collection
      input:
        tap: replay
        input_type: pcap
      handlers:
        modules:
          net:
            type: net
          dns:
            type: dns
          pcap_stats:
            type: pcap
`, pcap, hostSpec)
	return b.String()
}

// startPrometheusTargets is startPrometheus for several targets in one job, with extra
// command-line flags. honor_labels keeps each agent's own instance label (its
// --prom-instance), which the dashboards select on.
func startPrometheusTargets(t *testing.T, dir string, targets []string, flags ...string) (*proc, string) {
	t.Helper()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pktvisor-dashboards
    honor_labels: true
    metrics_path: /metrics
    static_configs:
      - targets: [` + strings.Join(quoted, ", ") + `]
`
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "127.0.0.1")
	p := startProc(t, dir, "prometheus", append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "prometheus-data"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
		"--log.level=warn",
	}, flags...)...)
	return p, "http://127.0.0.1:" + strconv.Itoa(port)
}
