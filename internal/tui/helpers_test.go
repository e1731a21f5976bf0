package tui

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// recorded returns a file of testdata (real agent answers, see testdata/README.md).
func recorded(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// generic decodes JSON the plain way, as the oracle the lenient decoder is checked against.
func generic(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// schemaOf finds the object of a schema ("packets", "dns", "pcap") in a generic policy
// answer of policy p.
func schemaOf(t testing.TB, v map[string]any, p, schema string) map[string]any {
	t.Helper()
	for _, h := range v[p].(map[string]any) {
		if o, ok := h.(map[string]any)[schema]; ok {
			return o.(map[string]any)
		}
	}
	t.Fatalf("no %s schema in policy %s", schema, p)
	return nil
}

// num reads a dotted path of numbers ("xact.counts.total") from a generic object; a missing
// key is 0, as the agent leaves zero-valued fields out in places.
func num(o map[string]any, path string) float64 {
	var cur any = o
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0
		}
		cur = m[k]
	}
	f, _ := cur.(float64)
	return f
}

func list(o map[string]any, path string) []map[string]any {
	var cur any = o
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	arr, _ := cur.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, e := range arr {
		out = append(out, e.(map[string]any))
	}
	return out
}

// fakeAgent serves recorded answers and can fail on demand.
type fakeAgent struct {
	mu       sync.Mutex
	window   []byte // answer to window requests
	bucket   []byte // answer to bucket/0
	app      []byte
	status   int    // non-200 answer to metrics requests when set
	errBody  string // its body
	maxN     int    // > 0: window/n with n > maxN answers the agent's 425
	requests []string
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.Path)
	w.Header().Set("Content-Type", "text/json")
	switch {
	case r.URL.Path == "/api/v1/metrics/app":
		_, _ = w.Write(f.app)
		return
	case f.status != 0:
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.errBody)
		return
	case strings.Contains(r.URL.Path, "/metrics/window/"):
		n, _ := strconv.Atoi(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:])
		if f.maxN > 0 && (n < 2 || n > f.maxN) {
			w.WriteHeader(http.StatusTooEarly)
			_, _ = io.WriteString(w, `{"error":"invalid metrics period, specify [2, `+strconv.Itoa(f.maxN)+`]"}`)
			return
		}
		_, _ = w.Write(f.window)
	case strings.HasSuffix(r.URL.Path, "/metrics/bucket/0"):
		_, _ = w.Write(f.bucket)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":"not found"}`)
	}
}

func (f *fakeAgent) set(fn func(*fakeAgent)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeAgent) paths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// startAgent serves f on addr ("127.0.0.1:0" for any port) and returns the server.
func startAgent(t *testing.T, f *fakeAgent, addr string) *httptest.Server {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // a just-closed port may take a moment to be free again
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func newFake(t testing.TB, window, bucket string) *fakeAgent {
	return &fakeAgent{window: recorded(t, window), bucket: recorded(t, bucket), app: recorded(t, "app.json")}
}

// configFor points a client at srv.
func configFor(t testing.TB, srv *httptest.Server, policy string) Config {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return Config{Host: host, Port: p, Policy: policy}
}

// plainRenderer renders no escape sequences (what NO_COLOR and pipes get).
func plainRenderer() *lipgloss.Renderer { return lipgloss.NewRenderer(io.Discard) }

var testClock = time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC)

// newTestModel is a model without a refresh timer, plain rendering, UTC, a fixed clock.
func newTestModel(c *Client, w, h int) *Model {
	m := New(Options{
		Client: c, ClientVersion: "4.5.0-go", Interval: -1,
		Renderer: plainRenderer(), Location: time.UTC,
		Now: func() time.Time { return testClock },
	})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

// run executes cmd and feeds its messages back into m, recursively (batches included);
// it returns the messages seen, so tests can look for tea.QuitMsg.
func run(m *Model, cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if batch, ok := msg.(tea.BatchMsg); ok {
		var all []tea.Msg
		for _, c := range batch {
			all = append(all, run(m, c)...)
		}
		return all
	}
	if msg == nil {
		return nil
	}
	_, next := m.Update(msg)
	return append([]tea.Msg{msg}, run(m, next)...)
}

// press sends keys to m and runs what they start.
func press(m *Model, keys ...string) []tea.Msg {
	var all []tea.Msg
	for _, k := range keys {
		var km tea.KeyMsg
		switch k {
		case "tab":
			km = tea.KeyMsg{Type: tea.KeyTab}
		case "shift+tab":
			km = tea.KeyMsg{Type: tea.KeyShiftTab}
		case "enter":
			km = tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			km = tea.KeyMsg{Type: tea.KeyEsc}
		case "up":
			km = tea.KeyMsg{Type: tea.KeyUp}
		case "down":
			km = tea.KeyMsg{Type: tea.KeyDown}
		case "left":
			km = tea.KeyMsg{Type: tea.KeyLeft}
		case "right":
			km = tea.KeyMsg{Type: tea.KeyRight}
		case "pgdown":
			km = tea.KeyMsg{Type: tea.KeyPgDown}
		case "ctrl+c":
			km = tea.KeyMsg{Type: tea.KeyCtrlC}
		default:
			km = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		_, cmd := m.Update(km)
		all = append(all, run(m, cmd)...)
	}
	return all
}

// refresh is one timer tick.
func refresh(m *Model) []tea.Msg {
	_, cmd := m.Update(tickMsg{})
	return run(m, cmd)
}
