package export

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the push loop.
const (
	// DefaultPoll is how often the agent's closed buckets are looked for: a bucket closes once a
	// minute, so a remote write "per closed bucket" lands at most this long after it closed.
	// Each look renders every handler's bucket 1 (one merge of the workers' buckets per handler).
	DefaultPoll = 2 * time.Second
	// requestTimeout bounds one HTTP request (connection, upload and answer).
	requestTimeout = 15 * time.Second
	// maxAttempts is the tries per push (one, then retries with backoff) on network errors,
	// 5xx, 408 and 429; the next push sends the then latest state anyway.
	maxAttempts = 5
	backoffMax  = 30 * time.Second
)

// backoffBase is the first retry delay, doubled at each retry (a variable for tests).
var backoffBase = time.Second

// OTLPConfig configures the OTLP/HTTP exporter.
type OTLPConfig struct {
	URL      string        // http(s)://host:port/path, e.g. http://localhost:4318/v1/metrics
	Interval time.Duration // push period (the reference's 60 s); > 0
	// CertFile and KeyFile are a client certificate (PEM) presented to an https endpoint.
	CertFile, KeyFile string
}

// RemoteWriteConfig configures the Prometheus remote write exporter.
type RemoteWriteConfig struct {
	URL      string        // e.g. http://localhost:8428/api/v1/write
	Interval time.Duration // 0: once per closed bucket
	// Username and Password set basic authentication; BearerToken, or BearerTokenFile (read
	// at every push, so a rotated token is picked up), a bearer token. At most one kind.
	Username, Password           string
	BearerToken, BearerTokenFile string
	// InsecureSkipVerify accepts any server certificate (self-signed test endpoints).
	InsecureSkipVerify bool
	// ClassicHistograms pushes the quantile histograms as classic le histograms instead of
	// native ones, for receivers without native histograms (Prometheus without the feature).
	ClassicHistograms bool
}

// Config configures a Pusher.
type Config struct {
	Resource    Resource
	OTLP        *OTLPConfig        // nil: no OTLP
	RemoteWrite *RemoteWriteConfig // nil: no remote write
	Poll        time.Duration      // 0: DefaultPoll
	MaxSeries   int                // 0: DefaultMaxSeries
	Log         *slog.Logger
}

// Pusher runs the collector and the exporters of a Config until Stop.
type Pusher struct {
	col    *Collector
	exps   []*Exporter
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger
	once   sync.Once
}

// Start validates cfg, and starts collecting src's closed buckets and pushing them. It
// returns an error for a bad URL or certificate, before starting anything.
func Start(src Source, cfg Config) (*Pusher, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Resource.ServiceName == "" {
		cfg.Resource.ServiceName = "pktvisord"
	}
	acc := NewAccumulator(cfg.MaxSeries)
	p := &Pusher{col: NewCollector(src, acc, cfg.Log), log: cfg.Log}
	if c := cfg.OTLP; c != nil {
		e, err := NewOTLPExporter(*c, cfg.Resource, acc, cfg.Log)
		if err != nil {
			return nil, err
		}
		p.exps = append(p.exps, e)
	}
	if c := cfg.RemoteWrite; c != nil {
		e, err := NewRemoteWriteExporter(*c, cfg.Resource, acc, cfg.Log)
		if err != nil {
			return nil, err
		}
		p.exps = append(p.exps, e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	// Subscriptions first, so that the first collection already triggers.
	triggers := make([]<-chan struct{}, len(p.exps))
	for i, e := range p.exps {
		if e.interval == 0 {
			triggers[i] = p.col.Subscribe()
		}
	}
	p.wg.Add(1 + len(p.exps))
	go func() {
		defer p.wg.Done()
		p.col.Run(ctx, cfg.Poll)
	}()
	for i, e := range p.exps {
		go func() {
			defer p.wg.Done()
			e.Run(ctx, triggers[i])
		}()
	}
	for _, e := range p.exps {
		cfg.Log.Info("export: pushing", "exporter", e.name, "url", e.url.Redacted(), "interval", e.interval)
	}
	return p, nil
}

// Exporters returns the pusher's exporters (for their Stats).
func (p *Pusher) Exporters() []*Exporter { return p.exps }

// Accumulator returns the accumulated state.
func (p *Pusher) Accumulator() *Accumulator { return p.col.acc }

// Stop stops the loops, then collects once more and pushes the final state once per
// exporter, within timeout (so the buckets closed at shutdown are not lost).
func (p *Pusher) Stop(timeout time.Duration) {
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if _, err := p.col.Collect(); err != nil {
			p.log.Warn("export: final collection failed", "err", err)
		}
		var wg sync.WaitGroup
		for _, e := range p.exps {
			wg.Go(func() {
				if err := e.Push(ctx); err != nil {
					p.log.Warn("export: final push failed", "exporter", e.name, "err", err)
				}
			})
		}
		wg.Wait()
	})
}

// WriteHealth writes the pusher's own metrics in the Prometheus text format, for the agent's
// /metrics health families: pktvisord_export_pushes_total and
// pktvisord_export_push_failures_total per exporter, pktvisord_export_series,
// pktvisord_export_buckets_total and pktvisord_export_series_dropped_total. instance, when
// set, is the first label, as on every /metrics sample.
func (p *Pusher) WriteHealth(w io.Writer, instance string) {
	lbl := func(kv ...string) string {
		var parts []string
		if instance != "" {
			parts = append(parts, "instance="+strconv.Quote(instance))
		}
		for i := 0; i+1 < len(kv); i += 2 {
			parts = append(parts, kv[i]+"="+strconv.Quote(kv[i+1]))
		}
		if len(parts) == 0 {
			return ""
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	fam := func(name, typ, help string) { fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ) }
	fam("pktvisord_export_pushes_total", "counter", "Pushes accepted by the export endpoint")
	for _, e := range p.exps {
		fmt.Fprintf(w, "pktvisord_export_pushes_total%s %d\n", lbl("exporter", e.name), e.Stats().Pushes)
	}
	fam("pktvisord_export_push_failures_total", "counter", "Push attempts that failed (each retry counts)")
	for _, e := range p.exps {
		fmt.Fprintf(w, "pktvisord_export_push_failures_total%s %d\n", lbl("exporter", e.name), e.Stats().Failures)
	}
	st := p.col.acc.Stats()
	fam("pktvisord_export_series", "gauge", "Series held for push export")
	fmt.Fprintf(w, "pktvisord_export_series%s %d\n", lbl(), st.Series)
	fam("pktvisord_export_buckets_total", "counter", "Closed buckets accumulated for push export")
	fmt.Fprintf(w, "pktvisord_export_buckets_total%s %d\n", lbl(), st.Buckets)
	fam("pktvisord_export_series_dropped_total", "counter", "New export series refused because the series cap was reached")
	fmt.Fprintf(w, "pktvisord_export_series_dropped_total%s %d\n", lbl(), st.DroppedSeries)
}

// ExporterStats are an exporter's counters.
type ExporterStats struct {
	Pushes   uint64 // requests the endpoint accepted (2xx)
	Failures uint64 // failed attempts, retries included
}

// Exporter pushes an Accumulator's state to one endpoint.
type Exporter struct {
	name     string
	url      *url.URL
	interval time.Duration
	acc      *Accumulator
	client   *http.Client
	encode   func([]Series, time.Time) ([]byte, error)
	header   http.Header
	auth     func(*http.Request) error
	log      *slog.Logger
	lim      *logLimiter

	pushes, failures atomic.Uint64
}

// Stats returns the exporter's counters.
func (e *Exporter) Stats() ExporterStats {
	return ExporterStats{Pushes: e.pushes.Load(), Failures: e.failures.Load()}
}

// NewOTLPExporter returns an OTLP/HTTP protobuf exporter of acc.
func NewOTLPExporter(c OTLPConfig, res Resource, acc *Accumulator, log *slog.Logger) (*Exporter, error) {
	u, err := parseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("export: otlp: %w", err)
	}
	if c.Interval <= 0 {
		return nil, errors.New("export: otlp: the interval must be positive")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("export: otlp: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-protobuf")
	return &Exporter{name: "otlp", url: u, interval: c.Interval, acc: acc, client: newClient(tc), header: h,
		encode: func(s []Series, now time.Time) ([]byte, error) { return EncodeOTLP(s, res, acc.Started, now) },
		auth:   func(*http.Request) error { return nil }, log: log, lim: newLogLimiter(time.Minute)}, nil
}

// NewRemoteWriteExporter returns a Prometheus remote write 1.0 exporter of acc.
func NewRemoteWriteExporter(c RemoteWriteConfig, res Resource, acc *Accumulator, log *slog.Logger) (*Exporter, error) {
	u, err := parseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("export: remote write: %w", err)
	}
	if c.Interval < 0 {
		return nil, errors.New("export: remote write: negative interval")
	}
	basic := c.Username != "" || c.Password != ""
	bearer := c.BearerToken != "" || c.BearerTokenFile != ""
	if basic && bearer || c.BearerToken != "" && c.BearerTokenFile != "" {
		return nil, errors.New("export: remote write: give one of basic auth, a bearer token or a bearer token file")
	}
	if (basic || bearer) && u.Scheme != "https" && !isLoopback(u.Hostname()) {
		log.Warn("export: remote write credentials sent in clear text", "url", u.Redacted())
	}
	if c.BearerTokenFile != "" {
		if _, err := readToken(c.BearerTokenFile); err != nil {
			return nil, fmt.Errorf("export: remote write: %w", err)
		}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("Content-Encoding", "snappy")
	h.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	auth := func(r *http.Request) error {
		switch {
		case basic:
			r.SetBasicAuth(c.Username, c.Password)
		case c.BearerToken != "":
			r.Header.Set("Authorization", "Bearer "+c.BearerToken)
		case c.BearerTokenFile != "":
			tok, err := readToken(c.BearerTokenFile)
			if err != nil {
				return err
			}
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} // opt-in (--remote-write-insecure)
	return &Exporter{name: "remote_write", url: u, interval: c.Interval, acc: acc, client: newClient(tc), header: h,
		encode: func(s []Series, now time.Time) ([]byte, error) {
			return EncodeRemoteWrite(s, res, now, c.ClassicHistograms), nil
		},
		auth: auth, log: log, lim: newLogLimiter(time.Minute)}, nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("bearer token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("bearer token file %s is empty", path)
	}
	return tok, nil
}

func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("bad URL %q: want http(s)://host[:port]/path", u.Redacted())
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newClient(tc *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = 1
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// Run pushes every interval, or on every trigger when the interval is 0, until ctx is done.
// A failed push is retried with backoff (network errors, 5xx, 408, 429), each retry sending
// the latest state: a failing endpoint costs no memory, and counters stay right because they
// are cumulative.
func (e *Exporter) Run(ctx context.Context, trigger <-chan struct{}) {
	var tick <-chan time.Time
	if e.interval > 0 {
		t := time.NewTicker(e.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-trigger:
		}
		for attempt := 0; ; attempt++ {
			err := e.Push(ctx)
			if err == nil || ctx.Err() != nil {
				break
			}
			if e.lim.allow() {
				e.log.Warn("export: push failed", "exporter", e.name, "url", e.url.Redacted(), "attempt", attempt+1,
					"err", err, "suppressed", e.lim.suppressed())
				if e.name == "remote_write" && strings.Contains(err.Error(), "native histograms are disabled") {
					e.log.Warn("export: the remote write receiver refuses native histograms: enable them there, or use --remote-write-classic-histograms")
				}
			}
			var he *httpError
			if errors.As(err, &he) && !he.retryable() || attempt+1 >= maxAttempts {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(backoffBase<<attempt, backoffMax)):
			}
		}
	}
}

// httpError is a non-2xx answer.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

func (e *httpError) retryable() bool {
	return e.status >= 500 || e.status == http.StatusTooManyRequests || e.status == http.StatusRequestTimeout
}

// Push sends the current state once (nothing when there is no series yet).
func (e *Exporter) Push(ctx context.Context) error {
	series := e.acc.Snapshot()
	if len(series) == 0 {
		return nil
	}
	body, err := e.encode(series, time.Now())
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("export: %s request: %w", e.name, err)
	}
	for k, v := range e.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "pktvisord")
	if err := e.auth(req); err != nil {
		e.failures.Add(1)
		return fmt.Errorf("export: %s: %w", e.name, err)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.failures.Add(1)
		return fmt.Errorf("export: %s: %w", e.name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // let the connection be reused
	if resp.StatusCode/100 != 2 {
		e.failures.Add(1)
		return &httpError{status: resp.StatusCode, body: strings.TrimSpace(string(msg))}
	}
	e.pushes.Add(1)
	return nil
}
