package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/pktvisor-go/pktvisor/internal/bucketwire"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// MaxBodyBytes bounds an admin request body (the policy parser bounds documents the same).
const MaxBodyBytes = 1 << 20

// moduleName is the reference's path pattern for tap and policy names.
var moduleName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_-]*$`)

// Handler returns the REST API. Admin routes (POST, DELETE) exist only when admin is true;
// shutdown is called by DELETE /api/v1/server.
func (a *Agent) Handler(admin bool, shutdown func()) http.Handler {
	mux := http.NewServeMux()
	get := func(pattern string, h http.HandlerFunc) { mux.HandleFunc("GET "+pattern, h) }

	get("/api/v1/metrics/app", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"app": map[string]any{
			"version": a.opts.Version, "up_time_min": a.Uptime().Minutes()}})
	})
	get("/api/v1/metrics/rates", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"packets": map[string]any{"in": 0, "out": 0},
			"warning": "deprecated: use 'live' data from /api/v1/metrics/bucket/0 instead"})
	})
	legacy := func(window bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			sel, ok := selection(w, r, window)
			if !ok {
				return
			}
			out, err := a.LegacyJSON(sel)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, out)
		}
	}
	get("/api/v1/metrics/bucket/{n}", legacy(false))
	get("/api/v1/metrics/window/{n}", legacy(true))
	// The reference's families of policy default (last closed bucket), then its cumulative
	// families (cumulative.go), then the agent's health. Text format 0.0.4 unless the scraper
	// asks for a MetricFamily format (Prometheus with native histograms asks for protobuf):
	// that answer is the text re-read by the official parser plus native histograms.
	cum := a.cumulative()
	get("/metrics", func(w http.ResponseWriter, r *http.Request) {
		view := cum.view(a.opts.PromInstance)
		p := metrics.NewProm(a.opts.PromInstance)
		if err := a.PolicyProm(metricsPolicy, p, false); err != nil && !errors.Is(err, ErrNotFound) {
			writeText(w, http.StatusInternalServerError, err.Error())
			return
		}
		var buf bytes.Buffer
		p.WriteTo(&buf)
		buf.Write(view.appendText(nil, buf.Bytes()))
		a.writeHealth(&buf)
		buf.Write(view.appendHealth(nil))
		a.mu.RLock()
		health := a.health
		a.mu.RUnlock()
		for _, fn := range health {
			fn(&buf)
		}
		if format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...); format.FormatType() != expfmt.TypeTextPlain {
			// A text the parser refuses (a bug) falls back to the text answer, which every
			// scraper also accepts: the native histograms are missing, nothing else.
			body, err := view.encode(buf.Bytes(), format)
			if err == nil {
				w.Header().Set("Content-Type", string(format))
				w.Write(body)
				return
			}
			cum.warn("metrics: protobuf exposition failed, answering text", err)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(buf.Bytes())
	})

	get("/api/v1/taps", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.TapsInfo(""))
	})
	get("/api/v1/taps/{name}", func(w http.ResponseWriter, r *http.Request) {
		out := a.TapsInfo(r.PathValue("name"))
		if len(out) == 0 {
			writeError(w, notFound("tap does not exists"))
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
	get("/api/v1/policies", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.PoliciesInfo(""))
	})
	get("/api/v1/policies/{name}", func(w http.ResponseWriter, r *http.Request) {
		out := a.PoliciesInfo(r.PathValue("name"))
		if len(out) == 0 {
			writeError(w, notFound("policy does not exists"))
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
	policyMetrics := func(window bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			sel, ok := selection(w, r, window)
			if !ok {
				return
			}
			name := r.PathValue("name")
			switch f := r.URL.Query().Get("format"); {
			case f == "sketch" && !window && name != "__all":
				data, err := a.SketchBucket(name, sel.Bucket)
				if err != nil {
					writeError(w, err)
					return
				}
				w.Header().Set("Content-Type", bucketwire.MediaType)
				w.Write(data)
				return
			case f == "sketch":
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": "format=sketch exports one bucket of one policy: /api/v1/policies/{name}/metrics/bucket/{n}?format=sketch"})
				return
			case f != "" && f != "json":
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("unknown format %q: json (default) or sketch", f)})
				return
			}
			if name == "__all" {
				out := map[string]any{}
				for _, n := range a.PolicyNames() {
					// Policies for which the period is invalid are left out (the reference's rule).
					if body, err := a.PolicyJSON(n, sel); err == nil {
						out[n] = body
					}
				}
				writeJSON(w, http.StatusOK, out)
				return
			}
			body, err := a.PolicyJSON(name, sel)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{name: body})
		}
	}
	get("/api/v1/policies/{name}/metrics/window/{n}", policyMetrics(true))
	get("/api/v1/policies/{name}/metrics/bucket/{n}", policyMetrics(false))
	get("/api/v1/policies/{name}/metrics/prometheus", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		p := metrics.NewProm(a.opts.PromInstance)
		names := []string{name}
		if name == "__all" {
			names = a.PolicyNames()
		}
		for _, n := range names {
			if err := a.PolicyProm(n, p, true); err != nil {
				if errors.Is(err, ErrNotFound) {
					writeText(w, http.StatusNotFound, err.Error())
				} else {
					writeText(w, http.StatusInternalServerError, err.Error())
				}
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		p.WriteTo(w)
	})

	if admin {
		mux.HandleFunc("POST /api/v1/taps", func(w http.ResponseWriter, r *http.Request) {
			body, ok := readBody(w, r)
			if !ok {
				return
			}
			taps, err := a.AddTaps(body)
			if err != nil {
				writeError(w, err)
				return
			}
			out := map[string]any{}
			for _, t := range taps {
				out[t.Name] = tapInfo(t)
			}
			writeJSON(w, http.StatusCreated, out)
		})
		mux.HandleFunc("DELETE /api/v1/taps/{name}", func(w http.ResponseWriter, r *http.Request) {
			if err := a.RemoveTap(r.PathValue("name")); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{})
		})
		mux.HandleFunc("POST /api/v1/policies", func(w http.ResponseWriter, r *http.Request) {
			body, ok := readBody(w, r)
			if !ok {
				return
			}
			names, err := a.AddPolicies(body)
			if err != nil {
				writeError(w, err)
				return
			}
			out := map[string]any{}
			for _, n := range names {
				for k, v := range a.PoliciesInfo(n) {
					out[k] = v
				}
			}
			writeJSON(w, http.StatusCreated, out)
		})
		mux.HandleFunc("DELETE /api/v1/policies/{name}", func(w http.ResponseWriter, r *http.Request) {
			if err := a.RemovePolicy(r.PathValue("name")); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{})
		})
		mux.HandleFunc("DELETE /api/v1/server", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{})
			if shutdown != nil {
				go shutdown()
			}
		})
	}
	return guard(mux, admin)
}

// guard answers what the mux does not route with the reference's JSON error, and gives a
// request for an admin route a hint when the admin API is off.
func guard(mux *http.ServeMux, admin bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if pattern == "" {
			msg := "no such route"
			if !admin && (r.Method == http.MethodPost || r.Method == http.MethodDelete || r.Method == http.MethodPut) {
				msg = "no such route (the admin API is off: start pktvisord with --admin-api)"
			}
			writeJSON(w, http.StatusNotFound, map[string]any{"error": msg})
			return
		}
		if !moduleNameOK(r) {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "invalid tap or policy name"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// moduleNameOK checks the {name} path value against the reference's module name pattern.
func moduleNameOK(r *http.Request) bool {
	// The mux has not matched yet, so extract by hand: names sit after /taps/ or /policies/.
	for _, prefix := range []string{"/api/v1/taps/", "/api/v1/policies/"} {
		if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
			name, _, _ := strings.Cut(rest, "/")
			return name == "__all" || moduleName.MatchString(name)
		}
	}
	return true
}

// selection parses {n} of a bucket or window route.
func selection(w http.ResponseWriter, r *http.Request, window bool) (metrics.Selection, bool) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n > 1000 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("invalid metrics period %q: expected a small non-negative integer", r.PathValue("n"))})
		return metrics.Selection{}, false
	}
	if window {
		// 0 and 1 are not windows: the handlers' check answers 425 with the reference's
		// message ("invalid metrics period, specify [2, N]").
		return metrics.Selection{Window: max(n, 1)}, true
	}
	return metrics.Selection{Bucket: n}, true
}

// readBody checks the content type and reads a bounded admin request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "must include Content-Type header"})
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/x-yaml" && mt != "application/json" && mt != "application/yaml") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "Content-Type not supported"})
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes)})
		} else {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "cannot read request body: " + err.Error()})
		}
		return nil, false
	}
	return body, true
}

// writeError maps an agent error to the reference's status codes: 404 missing, 409
// conflict, 425 for an invalid or not yet accumulated period, 422 for a tap selector that
// matches nothing or a policy that cannot start, 400 for any other invalid configuration
// (the reference answered 500 there; a malformed request is the client's error).
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		status = http.StatusConflict
	case IsPeriodError(err):
		status = http.StatusTooEarly
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
		if msg := err.Error(); msg == "no tap match found for specified 'input.tap_selector' tags" || strings.HasPrefix(msg, "policy [") {
			status = http.StatusUnprocessableEntity
		}
	}
	writeJSON(w, status, map[string]any{"error": err.Error()})
}

// writeJSON writes v with the reference's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the response"}`)
	}
	w.Header().Set("Content-Type", "text/json")
	w.WriteHeader(status)
	w.Write(b)
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}

// Server timeouts: a slow client cannot hold a connection (slowloris) or a render forever.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
)

// NewServer returns an http.Server for the API with conservative limits.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: 64 << 10}
}
