package tui

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestClientErrorsWording(t *testing.T) {
	f := newFake(t, "sample-window5.json", "sample-bucket0.json")
	plain := startAgent(t, f, "127.0.0.1:0")
	tlsSrv := httptest.NewUnstartedServer(f)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat(" ", 1<<20))
		for i := 0; i <= MaxBodyBytes>>20; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(big.Close)
	closed := startAgent(t, f, "127.0.0.1:0")
	closedCfg := configFor(t, closed, "default")
	closed.Close()

	tests := []struct {
		name string
		cfg  Config
		http *http.Client
		want string
	}{
		{"refused", closedCfg, nil, "cannot reach " + closedCfg.Addr() + ": connection refused"},
		{"timeout", configFor(t, slow, "default"), &http.Client{Timeout: 100 * time.Millisecond}, ": timed out"},
		{"no such host", Config{Host: "no-such-host.invalid", Port: 10853, Policy: "default"}, nil, "cannot reach no-such-host.invalid:10853: "},
		{"https to plain", withTLS(configFor(t, plain, "default"), true, false), nil, "drop --tls"},
		{"untrusted cert", withTLS(configFor(t, tlsSrv, "default"), true, false), nil, "TLS certificate not trusted (--tls-noverify skips the check)"},
		{"huge answer", configFor(t, big, "default"), nil, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClient(tc.cfg, tc.http)
			_, err := c.Window(context.Background())
			var fe *FetchError
			if !errors.As(err, &fe) {
				t.Fatalf("err %v is not a *FetchError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q, want it to contain %q", err, tc.want)
			}
		})
	}

	// --tls-noverify reaches the self-signed agent.
	c := NewClient(withTLS(configFor(t, tlsSrv, "default"), false, true), nil)
	if _, err := c.Window(context.Background()); err != nil {
		t.Errorf("--tls-noverify: %v", err)
	}
}

func withTLS(c Config, tls, noverify bool) Config {
	c.TLS, c.TLSNoVerify = tls, noverify
	return c
}

func TestClientApp(t *testing.T) {
	f := newFake(t, "sample-window5.json", "sample-bucket0.json")
	srv := startAgent(t, f, "127.0.0.1:0")
	c := NewClient(configFor(t, srv, "default"), nil)
	info, err := c.App(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g := generic(t, recorded(t, "app.json"))["app"].(map[string]any)
	if info.Version != g["version"].(string) || info.UpTimeMin != g["up_time_min"].(float64) {
		t.Errorf("app %+v, want %v", info, g)
	}
	f.set(func(f *fakeAgent) { f.app = []byte("nope") })
	if _, err := c.App(context.Background()); err == nil || !strings.Contains(err.Error(), "bad answer") {
		t.Errorf("bad app answer: %v", err)
	}
}

func TestClientPolicyPathEscaped(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	c := NewClient(Config{Host: host, Port: p, Policy: "a/b?c"}, nil)
	_, _ = c.Live(context.Background())
	if got != "/api/v1/policies/a%2Fb%3Fc/metrics/bucket/0" {
		t.Errorf("path %q", got)
	}
}

func TestConfigAddr(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string
	}{{"localhost", "localhost:10853"}, {"::1", "[::1]:10853"}, {"192.0.2.1", "192.0.2.1:10853"}} {
		if got := (Config{Host: tc.host, Port: 10853}).Addr(); got != tc.want {
			t.Errorf("Addr(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}
