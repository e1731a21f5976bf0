package export

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type recorded struct {
	header http.Header
	body   []byte
}

// recorder is an HTTP endpoint that answers the statuses of codes in turn (then 200) and
// records every request.
type recorder struct {
	mu    sync.Mutex
	codes []int
	reqs  []recorded
	srv   *httptest.Server
}

func newRecorder(t *testing.T, codes ...int) *recorder {
	r := &recorder{codes: codes}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Header.Clone(), body})
		code := http.StatusOK
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Remote write requests carry the protocol's headers and the configured credentials.
func TestRemoteWriteHeadersAndAuth(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  RemoteWriteConfig
		want string
	}{
		{"none", RemoteWriteConfig{}, ""},
		{"basic", RemoteWriteConfig{Username: "u", Password: "p"}, "Basic dTpw"},
		{"bearer", RemoteWriteConfig{BearerToken: "abc"}, "Bearer abc"},
		{"bearer file", RemoteWriteConfig{BearerTokenFile: tokenFile}, "Bearer tok1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := newRecorder(t)
			c.cfg.URL = rec.srv.URL + "/api/v1/write"
			e, err := NewRemoteWriteExporter(c.cfg, Resource{ServiceName: "pktvisord"}, sampleAccumulator(t), quietLog())
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Push(context.Background()); err != nil {
				t.Fatal(err)
			}
			r := rec.requests()[0]
			for k, v := range map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
				"X-Prometheus-Remote-Write-Version": "0.1.0", "Authorization": c.want} {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if _, err := decodeSnappy(r.body); err != nil {
				t.Errorf("body: %v", err)
			}
			if st := e.Stats(); st.Pushes != 1 || st.Failures != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
	// A rotated token file is read again at the next push.
	rec := newRecorder(t)
	e, _ := NewRemoteWriteExporter(RemoteWriteConfig{URL: rec.srv.URL, BearerTokenFile: tokenFile}, Resource{}, sampleAccumulator(t), quietLog())
	os.WriteFile(tokenFile, []byte("tok2"), 0o600)
	e.Push(context.Background())
	if got := rec.requests()[0].header.Get("Authorization"); got != "Bearer tok2" {
		t.Errorf("after rotation: %q", got)
	}
}

func TestExporterConfigErrors(t *testing.T) {
	acc := NewAccumulator(0)
	for _, c := range []RemoteWriteConfig{
		{URL: "localhost:8428/api/v1/write"},
		{URL: "ftp://x/y"},
		{URL: "http://x/", Username: "u", BearerToken: "t"},
		{URL: "http://x/", BearerToken: "t", BearerTokenFile: "f"},
		{URL: "http://x/", BearerTokenFile: "/nonexistent/token"},
		{URL: "http://x/", Interval: -time.Second},
	} {
		if _, err := NewRemoteWriteExporter(c, Resource{}, acc, quietLog()); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	for _, c := range []OTLPConfig{
		{URL: "http://x:4318/v1/metrics"},                                                  // no interval
		{URL: "http://x:4318/v1/metrics", Interval: time.Second, CertFile: "/nonexistent"}, // bad certificate
	} {
		if _, err := NewOTLPExporter(c, Resource{}, acc, quietLog()); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// 5xx answers are retried, with the latest state; 4xx are not; the counters say so.
func TestRetries(t *testing.T) {
	old := backoffBase
	backoffBase = time.Millisecond
	t.Cleanup(func() { backoffBase = old })

	rec := newRecorder(t, 503, 500, 200, 400)
	acc := sampleAccumulator(t)
	e, err := NewOTLPExporter(OTLPConfig{URL: rec.srv.URL + "/v1/metrics", Interval: time.Hour}, Resource{}, acc, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	trigger := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { e.Run(ctx, trigger); close(done) }()
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(rec.requests()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d requests, want %d", len(rec.requests()), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	trigger <- struct{}{}
	waitFor(3) // 503, 500, then 200
	// The state changes between pushes: the next push sends the new state.
	commit(t, acc, unitDNS, 180, bucket{total: 100})
	trigger <- struct{}{}
	waitFor(4) // 400: not retried
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-done
	reqs := rec.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	if bytes.Equal(reqs[2].body, reqs[3].body) {
		t.Error("the push after a commit sent the old state")
	}
	if st := e.Stats(); st.Pushes != 1 || st.Failures != 3 {
		t.Errorf("stats %+v, want 1 push and 3 failures", st)
	}
}

// An unreachable endpoint is a network error: retried, counted, and the loop stops with ctx.
func TestUnreachable(t *testing.T) {
	old := backoffBase
	backoffBase = time.Millisecond
	t.Cleanup(func() { backoffBase = old })
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	e, err := NewRemoteWriteExporter(RemoteWriteConfig{URL: url}, Resource{}, sampleAccumulator(t), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	trigger := make(chan struct{}, 1)
	trigger <- struct{}{}
	var finished atomic.Bool
	go func() { e.Run(ctx, trigger); finished.Store(true) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().Failures < maxAttempts && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	for !finished.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := e.Stats(); st.Failures != maxAttempts || st.Pushes != 0 || !finished.Load() {
		t.Errorf("stats %+v finished %v", st, finished.Load())
	}
}

// Start runs the collector and both exporters; remote write pushes after each collection that
// closed a bucket, Stop pushes the final state, and WriteHealth reports the counters.
func TestPusher(t *testing.T) {
	otlp, rw := newRecorder(t), newRecorder(t)
	f := newFakeAgent(5, unitDNS)
	p, err := Start(f.source, Config{
		Resource:    Resource{Instance: "n"},
		OTLP:        &OTLPConfig{URL: otlp.srv.URL + "/v1/metrics", Interval: time.Hour},
		RemoteWrite: &RemoteWriteConfig{URL: rw.srv.URL + "/api/v1/write"},
		Poll:        5 * time.Millisecond,
		Log:         quietLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.add(3)
	f.shift(60)
	deadline := time.Now().Add(5 * time.Second)
	for len(rw.requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(rw.requests()) != 1 || len(otlp.requests()) != 0 {
		t.Fatalf("remote write %d requests, otlp %d; want 1, 0", len(rw.requests()), len(otlp.requests()))
	}
	f.add(4)
	f.shift(120)
	p.Stop(time.Second)
	if len(otlp.requests()) != 1 {
		t.Fatalf("otlp %d requests after Stop, want 1", len(otlp.requests()))
	}
	if got := find(p.Accumulator().Snapshot(), "dns_wire_packets_total_total").Int; got != 7 {
		t.Errorf("final total %d, want 7", got)
	}
	var b strings.Builder
	p.WriteHealth(&b, "n")
	for _, want := range []string{
		`pktvisord_export_pushes_total{instance="n",exporter="otlp"} 1`,
		`pktvisord_export_series{instance="n"} 1`,
		`pktvisord_export_buckets_total{instance="n"} 2`,
		`# TYPE pktvisord_export_push_failures_total counter`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("health lacks %q:\n%s", want, b.String())
		}
	}
}
