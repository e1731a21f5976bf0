package tui

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

func hasQuit(msgs []tea.Msg) bool {
	for _, m := range msgs {
		if _, ok := m.(tea.QuitMsg); ok {
			return true
		}
	}
	return false
}

func TestModelFirstFetchAndRefresh(t *testing.T) {
	f := newFake(t, "attack-window5.json", "attack-bucket0.json")
	srv := startAgent(t, f, "127.0.0.1:0")
	m := newTestModel(NewClient(configFor(t, srv, "default"), nil), 160, 48)
	run(m, m.Init())
	if !m.hasData || m.err != nil || m.serverVersion != "4.5.0-go" {
		t.Fatalf("after Init: data %v err %v server %q", m.hasData, m.err, m.serverVersion)
	}
	want := []string{"/api/v1/metrics/app", "/api/v1/policies/default/metrics/window/5", "/api/v1/policies/default/metrics/bucket/0"}
	if got := f.paths(); !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	// This window carries its own live rate: it is kept.
	winLive := int64(num(schemaOf(t, generic(t, recorded(t, "attack-window5.json")), "default", "packets"), "rates.pps_total.live"))
	if got := m.snap.Packets.Rates.PpsTotal.Live; !got.Valid || got.V != winLive {
		t.Errorf("live pps %+v, want the window's %d", got, winLive)
	}
	n := len(f.paths())
	refresh(m)
	if got := f.paths()[n:]; len(got) != 2 || !strings.HasSuffix(got[0], "/window/5") {
		t.Errorf("a tick fetched %v", got)
	}
}

// A window without live rates (a reference agent's, or a recorded stream's) gets them from
// the live bucket.
func TestModelLiveRatesFromBucket(t *testing.T) {
	f := newFake(t, "sample-window5.json", "attack-bucket0.json")
	f.window = []byte(strings.ReplaceAll(string(f.window), `"default-sample-`, `"default-resolver-`))
	srv := startAgent(t, f, "127.0.0.1:0")
	m := newTestModel(NewClient(configFor(t, srv, "default"), nil), 160, 48)
	run(m, m.Init())
	g := generic(t, recorded(t, "attack-bucket0.json"))
	p, d := schemaOf(t, g, "default", "packets"), schemaOf(t, g, "default", "dns")
	for _, c := range []struct {
		name string
		got  OptInt
		want float64
	}{
		{"pps_total", m.snap.Packets.Rates.PpsTotal.Live, num(p, "rates.pps_total.live")},
		{"pps_in", m.snap.Packets.Rates.PpsIn.Live, num(p, "rates.pps_in.live")},
		{"pps_out", m.snap.Packets.Rates.PpsOut.Live, num(p, "rates.pps_out.live")},
		{"dns total", m.snap.DNS.Rates.Total.Live, num(d, "rates.total.live")},
	} {
		if !c.got.Valid || float64(c.got.V) != c.want {
			t.Errorf("%s live %+v, want %v from bucket 0", c.name, c.got, c.want)
		}
	}
	// The rest is the window's.
	wp := schemaOf(t, generic(t, recorded(t, "sample-window5.json")), "default", "packets")
	if float64(m.snap.Packets.Total) != num(wp, "total") || float64(m.snap.Packets.Rates.PpsTotal.P50) != num(wp, "rates.pps_total.p50") {
		t.Errorf("window data replaced: total %d p50 %d", m.snap.Packets.Total, m.snap.Packets.Rates.PpsTotal.P50)
	}
}

func TestModelAdaptsWindowTo425(t *testing.T) {
	f := newFake(t, "sample-window5.json", "sample-bucket0.json")
	f.maxN = 3
	srv := startAgent(t, f, "127.0.0.1:0")
	m := newTestModel(NewClient(configFor(t, srv, "default"), nil), 120, 40)
	run(m, m.Init())
	refresh(m)
	var windows []string
	for _, p := range f.paths() {
		if i := strings.Index(p, "/window/"); i >= 0 {
			windows = append(windows, p[i:])
		}
	}
	if want := []string{"/window/5", "/window/3", "/window/3"}; !slices.Equal(windows, want) {
		t.Errorf("window requests %v, want %v", windows, want)
	}
	if m.err != nil || !m.hasData {
		t.Fatalf("err %v data %v", m.err, m.hasData)
	}
	if !strings.Contains(m.View(), "window 3m") {
		t.Error("title does not show the adapted window")
	}
	// A 425 that does not name a usable size is an error like any other.
	f.set(func(f *fakeAgent) {
		f.status, f.errBody = http.StatusTooEarly, `{"error":"invalid metrics period, specify [2, 1]"}`
	})
	refresh(m)
	if m.err == nil || !strings.Contains(m.err.Error(), "425") {
		t.Errorf("err %v, want the 425", m.err)
	}
}

func TestModelKeys(t *testing.T) {
	f := newFake(t, "attack-window5.json", "attack-bucket0.json")
	srv := startAgent(t, f, "127.0.0.1:0")
	m := newTestModel(NewClient(configFor(t, srv, "default"), nil), 160, 48)
	run(m, m.Init())

	if !hasQuit(press(m, "q")) || !hasQuit(press(m, "ctrl+c")) {
		t.Error("q / ctrl+c do not quit")
	}

	// Focus: tab wraps forward, shift+tab back, arrows move in the 4-column grid.
	steps := []struct {
		key  string
		want int
	}{
		{"tab", 1}, {"right", 2}, {"down", 6}, {"down", 10}, {"down", 10}, // 14 would leave the grid: stays
		{"up", 6}, {"left", 5}, {"shift+tab", 4}, {"l", 5}, {"h", 4}, {"j", 8}, {"k", 4},
	}
	for _, s := range steps {
		press(m, s.key)
		if m.focus != s.want {
			t.Fatalf("after %s: focus %d, want %d", s.key, m.focus, s.want)
		}
	}
	m.focus = len(tables) - 1
	press(m, "tab")
	if m.focus != 0 {
		t.Errorf("tab from the last table: focus %d, want 0", m.focus)
	}
	press(m, "shift+tab")
	if m.focus != len(tables)-1 {
		t.Errorf("shift+tab from the first table: focus %d", m.focus)
	}

	// p pauses: ticks fetch nothing until p again, which fetches at once.
	press(m, "p")
	n := len(f.paths())
	refresh(m)
	refresh(m)
	if len(f.paths()) != n {
		t.Errorf("paused model fetched %v", f.paths()[n:])
	}
	press(m, "p")
	if len(f.paths()) == n {
		t.Error("resuming did not fetch")
	}

	// w switches to the live bucket and back.
	n = len(f.paths())
	press(m, "w")
	got := f.paths()[n:]
	if len(got) != 1 || !strings.HasSuffix(got[0], "/bucket/0") || !m.dataLive {
		t.Errorf("w fetched %v, live data %v", got, m.dataLive)
	}
	if !strings.Contains(m.View(), "live bucket") {
		t.Error("title does not say live bucket")
	}
	press(m, "w")
	if m.dataLive || !strings.Contains(m.View(), "window 5m") {
		t.Error("second w did not return to the window")
	}

	// enter expands, esc closes; ? shows keys, any key closes them.
	press(m, "enter")
	if !m.expanded {
		t.Error("enter did not expand")
	}
	press(m, "esc")
	if m.expanded {
		t.Error("esc did not close the expanded table")
	}
	press(m, "?")
	if !m.help {
		t.Error("? did not show the keys")
	}
	press(m, "tab")
	if m.help {
		t.Error("a key did not close the keys")
	}
}

// An answer that comes back after the mode changed is dropped.
func TestModelDropsStaleAnswer(t *testing.T) {
	m := modelWith(t, "attack-window5.json", 120, 40)
	before := m.snap.Packets.Total
	seq := m.seq
	m.live = true
	m.seq++
	m.Update(fetchMsg{seq: seq, snap: Snapshot{}, at: testClock})
	if m.snap.Packets.Total != before {
		t.Error("stale answer replaced the data")
	}
}

// The agent goes away: the status says so in the reference's words, the last data stays,
// and the next successful fetch clears the error by itself.
func TestModelErrorAndRecovery(t *testing.T) {
	f := newFake(t, "attack-window5.json", "attack-bucket0.json")
	srv := startAgent(t, f, "127.0.0.1:0")
	cfg := configFor(t, srv, "default")
	m := newTestModel(NewClient(cfg, nil), 160, 48)
	run(m, m.Init())
	good := m.View()
	pkts := wantSegments(t, recorded(t, "attack-window5.json"), "default")[0]
	if !strings.Contains(good, pkts) {
		t.Fatalf("no %q before the outage", pkts)
	}

	srv.Close()
	refresh(m)
	view := m.View()
	checkFits(t, view, 160, 48)
	status := strings.Split(view, "\n")[1]
	want := "! cannot reach " + cfg.Addr() + ": connection refused — retrying (data shown is from 16:00:00)"
	if status != want+strings.Repeat(" ", 160-len([]rune(want))) && strings.TrimRight(status, " ") != want {
		t.Errorf("status %q, want %q", status, want)
	}
	if !strings.Contains(view, pkts) || !strings.Contains(view, " Top QName 2 ") {
		t.Error("last good data left the screen")
	}
	refresh(m) // still down: still the same message, data kept
	if !strings.Contains(m.View(), "connection refused — retrying") || !strings.Contains(m.View(), pkts) {
		t.Error("second failed refresh lost the status or the data")
	}

	// Back on the same port, with other numbers: recovered without a key press.
	f2 := newFake(t, "sample-window5.json", "sample-bucket0.json")
	f2.app = []byte(`{"app":{"version":"3.9.0","up_time_min":0.1}}`)
	startAgent(t, f2, cfg.Addr())
	refresh(m)
	view = m.View()
	if strings.Contains(view, "cannot reach") {
		t.Error("error still shown after recovery")
	}
	if !strings.Contains(view, wantSegments(t, recorded(t, "sample-window5.json"), "default")[0]) {
		t.Error("new data not shown after recovery")
	}
	// The restarted agent is another major version: the reference's warning.
	if !strings.Contains(view, "WARNING: this version of pktvisor-cli was written for a different major pktvisord version (server:3, client:4)") {
		t.Errorf("no version warning after reconnecting to a 3.x agent:\n%s", strings.Split(view, "\n")[1])
	}
}

func TestModelHTTPErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		window string
		want   string
	}{
		{"unknown policy", http.StatusNotFound, `{"error":"policy does not exist"}`, "", "answered 404 Not Found: policy does not exist — retrying"},
		{"server error text", http.StatusInternalServerError, "boom", "", "answered 500 Internal Server Error: boom — retrying"},
		{"not JSON", 0, "", "<html>", "bad answer from 127.0.0.1:"},
		{"other policy", 0, "", `{"other":{}}`, `policy "default" missing from the answer`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, "sample-window5.json", "sample-bucket0.json")
			srv := startAgent(t, f, "127.0.0.1:0")
			m := newTestModel(NewClient(configFor(t, srv, "default"), nil), 120, 40)
			run(m, m.Init())
			f.set(func(f *fakeAgent) {
				f.status, f.errBody = tc.status, tc.body
				if tc.window != "" {
					f.window = []byte(tc.window)
				}
			})
			refresh(m)
			view := m.View()
			checkFits(t, view, 120, 40)
			if status := strings.Split(view, "\n")[1]; !strings.Contains(status, tc.want) {
				t.Errorf("status %q, want %q", status, tc.want)
			}
			if !strings.Contains(view, wantSegments(t, recorded(t, "sample-window5.json"), "default")[0]) {
				t.Error("last good data left the screen")
			}
		})
	}
}

func TestModelErrorBeforeAnyData(t *testing.T) {
	f := newFake(t, "sample-window5.json", "sample-bucket0.json")
	srv := startAgent(t, f, "127.0.0.1:0")
	cfg := configFor(t, srv, "default")
	srv.Close()
	m := newTestModel(NewClient(cfg, nil), 80, 24)
	run(m, m.Init())
	view := m.View()
	checkFits(t, view, 80, 24)
	if !strings.Contains(view, "! cannot reach "+cfg.Addr()+": connection refused — retrying") {
		t.Errorf("view:\n%s", view)
	}
	if m.serverVersion != "" {
		t.Error("server version set without an agent")
	}
	startAgent(t, f, cfg.Addr())
	refresh(m)
	if m.err != nil || !m.hasData || m.serverVersion != "4.5.0-go" {
		t.Errorf("after the agent came up: err %v data %v server %q", m.err, m.hasData, m.serverVersion)
	}
}
