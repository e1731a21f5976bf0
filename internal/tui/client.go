package tui

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultPeriods is the window the reference client asks for first (5 one-minute periods).
const DefaultPeriods = 5

// maxPeriods bounds the window size learnt from an agent's 425 answer.
const maxPeriods = 1000

// requestTimeout is the reference client's HTTP timeout.
const requestTimeout = 5 * time.Second

// periodRE extracts N from the agent's 425 answer `invalid metrics period, specify [2, N]`.
// The reference accepted a single digit only; any N up to maxPeriods is taken here.
var periodRE = regexp.MustCompile(`invalid metrics period, specify \[\d+, (\d+)\]`)

// Config says where the agent is.
type Config struct {
	Host        string // default "localhost"
	Port        int    // default 10853
	Policy      string // default "default"
	TLS         bool   // https
	TLSNoVerify bool   // https without certificate verification (implies TLS)
}

// Addr is host:port as shown to the operator.
func (c Config) Addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// Client reads the agent's REST API. Its window size adapts to the agent's 425 answers;
// it is safe for concurrent use (the UI fetches from command goroutines).
type Client struct {
	cfg  Config
	base string
	http *http.Client

	mu      sync.Mutex
	periods int
}

// NewClient returns a client for cfg; httpClient may be nil (then a 5 s timeout client with
// the TLS settings of cfg is built).
func NewClient(cfg Config, httpClient *http.Client) *Client {
	scheme := "http"
	if cfg.TLS || cfg.TLSNoVerify {
		scheme = "https"
	}
	if httpClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLSNoVerify {
			// The operator asked for it (self-signed agent certificates are common).
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		httpClient = &http.Client{Timeout: requestTimeout, Transport: tr}
	}
	return &Client{
		cfg:     cfg,
		base:    scheme + "://" + cfg.Addr(),
		http:    httpClient,
		periods: DefaultPeriods,
	}
}

// Config returns the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// Periods is the window size the next window request asks for.
func (c *Client) Periods() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.periods
}

// AppInfo is `GET /api/v1/metrics/app`.
type AppInfo struct {
	Version   string
	UpTimeMin float64
}

// App fetches the agent's version.
func (c *Client) App(ctx context.Context) (AppInfo, error) {
	body, err := c.get(ctx, "/api/v1/metrics/app")
	if err != nil {
		return AppInfo{}, err
	}
	var v struct {
		App struct {
			Version   json.RawMessage `json:"version"`
			UpTimeMin Float           `json:"up_time_min"`
		} `json:"app"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return AppInfo{}, &FetchError{Addr: c.cfg.Addr(), Kind: KindBadAnswer, Err: fmt.Errorf("decode app info: %w", err)}
	}
	return AppInfo{Version: decodeName(v.App.Version), UpTimeMin: float64(v.App.UpTimeMin)}, nil
}

// Window fetches the merged window of the policy. On the agent's 425 answer it learns the
// largest window the agent keeps, as the reference did, and asks again at once.
func (c *Client) Window(ctx context.Context) (Snapshot, error) {
	for attempt := 0; ; attempt++ {
		n := c.Periods()
		path := fmt.Sprintf("/api/v1/policies/%s/metrics/window/%d", url.PathEscape(c.cfg.Policy), n)
		body, err := c.get(ctx, path)
		if err == nil {
			return c.decode(body)
		}
		var fe *FetchError
		if attempt == 0 && errors.As(err, &fe) && fe.Status == http.StatusTooEarly {
			if m := periodRE.FindStringSubmatch(fe.Message); m != nil {
				if p, perr := strconv.Atoi(m[1]); perr == nil && p >= 2 && p <= maxPeriods && p != n {
					c.mu.Lock()
					c.periods = p
					c.mu.Unlock()
					continue
				}
			}
		}
		return Snapshot{}, err
	}
}

// Live fetches the live bucket (bucket 0) of the policy.
func (c *Client) Live(ctx context.Context) (Snapshot, error) {
	body, err := c.get(ctx, fmt.Sprintf("/api/v1/policies/%s/metrics/bucket/0", url.PathEscape(c.cfg.Policy)))
	if err != nil {
		return Snapshot{}, err
	}
	return c.decode(body)
}

func (c *Client) decode(body []byte) (Snapshot, error) {
	s, err := Decode(body, c.cfg.Policy)
	if err != nil {
		return s, &FetchError{Addr: c.cfg.Addr(), Kind: KindBadAnswer, Err: err}
	}
	return s, nil
}

// get returns the body of a 200 answer, or a *FetchError.
func (c *Client) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, &FetchError{Addr: c.cfg.Addr(), Kind: KindUnreachable, Err: err}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &FetchError{Addr: c.cfg.Addr(), Kind: KindUnreachable, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, &FetchError{Addr: c.cfg.Addr(), Kind: KindUnreachable, Err: err}
	}
	if len(body) > MaxBodyBytes {
		return nil, &FetchError{Addr: c.cfg.Addr(), Kind: KindBadAnswer, Err: fmt.Errorf("answer of %s larger than %d bytes", path, MaxBodyBytes)}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return nil, &FetchError{Addr: c.cfg.Addr(), Kind: KindHTTP, Status: resp.StatusCode, Message: msg}
	}
	return body, nil
}

// ErrorKind classifies a failed fetch for the status line.
type ErrorKind int

// The kinds of FetchError.
const (
	KindUnreachable ErrorKind = iota // no HTTP answer (refused, timeout, DNS, TLS, reset)
	KindHTTP                         // an HTTP answer other than 200
	KindBadAnswer                    // a 200 answer that is not the expected JSON
)

// FetchError is a failed request, worded for an operator.
type FetchError struct {
	Addr    string
	Kind    ErrorKind
	Status  int    // KindHTTP
	Message string // KindHTTP: the agent's {"error": ...} text
	Err     error  // KindUnreachable, KindBadAnswer
}

// Error reads as the status line shows it, without the "retrying" suffix.
func (e *FetchError) Error() string {
	switch e.Kind {
	case KindHTTP:
		return fmt.Sprintf("%s answered %d %s: %s", e.Addr, e.Status, http.StatusText(e.Status), e.Message)
	case KindBadAnswer:
		return fmt.Sprintf("bad answer from %s: %v", e.Addr, e.Err)
	default:
		return fmt.Sprintf("cannot reach %s: %s", e.Addr, reason(e.Err))
	}
}

// Unwrap returns the underlying error.
func (e *FetchError) Unwrap() error { return e.Err }

// reason words a transport error the way an operator knows it ("connection refused") rather
// than as Go's full chain (`Get "http://…": dial tcp 127.0.0.1:10853: connect: …`).
func reason(err error) string {
	var errno syscall.Errno
	var dnsErr *net.DNSError
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	switch {
	case err == nil:
		return "unknown error"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "no such host"
		}
		return "name resolution failed: " + dnsErr.Err
	case errors.As(err, &certErr):
		return "TLS certificate not trusted (--tls-noverify skips the check)"
	case errors.As(err, &recErr):
		return "TLS handshake failed (is the agent serving plain HTTP? drop --tls)"
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the agent"
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	if strings.Contains(msg, "server gave HTTP response to HTTPS client") {
		return "the agent speaks plain HTTP (drop --tls)"
	}
	return msg
}
