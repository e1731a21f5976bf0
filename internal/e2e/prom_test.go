package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"
)

// promSample is one series of an instant-vector answer of Prometheus' HTTP API.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix time, "value"]
}

func (s promSample) float() (float64, error) {
	str, ok := s.Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", s.Value[1])
	}
	return strconv.ParseFloat(str, 64)
}

// promLabels renders a series' labels as in PromQL, sorted, without __name__.
func promLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(m[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// promQuery runs an instant query against Prometheus' HTTP API.
func promQuery(ctx context.Context, base, query string) ([]promSample, error) {
	body, err := httpGet(ctx, base+"/api/v1/query?query="+url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: decode: %w", query, err)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: status %q type %q error %q", query, r.Status, r.Data.ResultType, r.Error)
	}
	return r.Data.Result, nil
}

// promTarget is the scrape state of one target from /api/v1/targets.
type promTarget struct {
	Health     string `json:"health"`
	LastError  string `json:"lastError"`
	ScrapeURL  string `json:"scrapeUrl"`
	LastScrape string `json:"lastScrape"`
}

func promTargets(ctx context.Context, base string) ([]promTarget, error) {
	body, err := httpGet(ctx, base+"/api/v1/targets?state=active")
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("targets: decode: %w", err)
	}
	return r.Data.ActiveTargets, nil
}

// startPrometheus writes the scrape config for target and starts /usr/bin/prometheus with its
// storage in dir and its web API on a free loopback port; it returns the API's base URL.
func startPrometheus(t *testing.T, dir, target string) (*proc, string) {
	t.Helper()
	tmpl := template.Must(template.ParseFiles(filepath.Join("testdata", "prometheus.yml.tmpl")))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	f, err := os.Create(cfgPath)
	if err != nil {
		t.Fatalf("create %s: %v", cfgPath, err)
	}
	if err := tmpl.Execute(f, map[string]string{"Target": target}); err != nil {
		t.Fatalf("render %s: %v", cfgPath, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", cfgPath, err)
	}
	port := freePort(t, "127.0.0.1")
	storage := filepath.Join(dir, "prometheus-data")
	p := startProc(t, dir, "prometheus",
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+storage,
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--log.level=info",
	)
	return p, "http://127.0.0.1:" + strconv.Itoa(port)
}

// promtoolCheckMetrics runs `promtool check metrics` on an exposition body. Exit status 0 means
// clean, 3 means only lint problems (naming conventions; listed in the returned slice), any
// other status is a parse error.
func promtoolCheckMetrics(ctx context.Context, body []byte) (lint []string, err error) {
	cmd := exec.CommandContext(ctx, "promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 3:
	default:
		return nil, fmt.Errorf("promtool check metrics: %w: %s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lint = append(lint, l)
		}
	}
	return lint, nil
}

// promLintAllowed matches the lint problems the reference's metric names cause by design
// (README.md lists them): every pktvisor metric is a gauge, summary or histogram whose name
// is the reference's, so promtool's naming advice cannot be followed without breaking
// dashboards built for the reference.
func promLintAllowed(problem string) bool {
	for _, ok := range []string{
		`non-counter metrics should not have "_total" suffix`,
		`counter metrics should have "_total" suffix`,
		`metric names should be written in 'snake_case' not 'camelCase'`,
		`non-histogram and non-summary metrics should not have "_count" suffix`,
		`non-histogram and non-summary metrics should not have "_sum" suffix`,
		`non-histogram and non-summary metrics should not have "_bucket" suffix`,
		`use base unit "seconds" instead of "microseconds"`,
		`metric names should not contain abbreviated units`,
		`metric name should not include type 'total'`,
	} {
		if strings.Contains(problem, ok) {
			return true
		}
	}
	return false
}

// waitScrape waits until Prometheus has scraped target successfully at least once.
func waitScrape(ctx context.Context, t *testing.T, prom *proc, base string, watch []*proc) {
	t.Helper()
	waitFor(t, "a successful Prometheus scrape of the agent", 30*time.Second, 500*time.Millisecond, append(watch, prom), func() (bool, error) {
		ts, err := promTargets(ctx, base)
		if err != nil {
			return false, err
		}
		for _, tg := range ts {
			if tg.LastError != "" {
				return false, fmt.Errorf("scrape %s: %s", tg.ScrapeURL, tg.LastError)
			}
			if tg.Health == "up" {
				return true, nil
			}
		}
		return false, fmt.Errorf("targets: %+v", ts)
	})
}
