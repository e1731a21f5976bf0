package tui

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// modelWith is a model showing a recorded answer, as if fetched.
func modelWith(t testing.TB, file string, w, h int) *Model {
	t.Helper()
	s, err := Decode(recorded(t, file), "default")
	if err != nil {
		t.Fatal(err)
	}
	m := newTestModel(NewClient(Config{Host: "localhost", Port: 10853, Policy: "default"}, nil), w, h)
	m.Update(fetchMsg{snap: s, periods: 5, at: testClock})
	m.Update(appMsg{info: AppInfo{Version: "4.5.0-go"}})
	return m
}

// checkFits asserts the screen invariants: exactly h lines, none wider than w cells, no
// control characters (the plain renderer emits no escape sequences).
func checkFits(t *testing.T, view string, w, h int) []string {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Errorf("%d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if got := lipgloss.Width(l); got > w {
			t.Errorf("line %d is %d cells wide (terminal %d): %q", i, got, w, l)
		}
		for _, r := range l {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Errorf("line %d holds control %U: %q", i, r, l)
				break
			}
		}
	}
	return lines
}

// tableOracle is, per table title, where its items are in the JSON and which base its
// shares are of (spec §5), for the row checks.
type tableOracle struct {
	schema, path string
	base         func(p, d map[string]any) float64
}

func oracleTables() map[string]tableOracle {
	rate := func(p map[string]any) float64 {
		if num(p, "total") > 0 {
			return num(p, "deep_samples") / num(p, "total")
		}
		return 1
	}
	wire := func(p, d map[string]any) float64 { return num(d, "wire_packets.total") * rate(p) }
	replies := func(p, d map[string]any) float64 { return num(d, "wire_packets.replies") * rate(p) }
	xacts := func(p, d map[string]any) float64 { return num(d, "xact.counts.total") * rate(p) }
	pkts := func(p, _ map[string]any) float64 { return num(p, "deep_samples") }
	return map[string]tableOracle{
		"Top QName 2": {"dns", "top_qname2", wire}, "Top QName 3": {"dns", "top_qname3", wire},
		"Top NX": {"dns", "top_nxdomain", replies}, "Slow In": {"dns", "xact.in.top_slow", xacts},
		"Top QTypes": {"dns", "top_qtype", wire}, "Top RCodes": {"dns", "top_rcode", replies},
		"Top SRVFAILS": {"dns", "top_srvfail", replies}, "Slow Out": {"dns", "xact.out.top_slow", xacts},
		"Top REFUSED": {"dns", "top_refused", replies}, "IPv4": {"packets", "top_ipv4", pkts},
		"IPv6": {"packets", "top_ipv6", pkts}, "Top DNS UDP Ports": {"dns", "top_udp_ports", wire},
		"Top GeoLoc": {"packets", "top_geoLoc", pkts}, "Top ASN": {"packets", "top_ASN", pkts},
	}
}

// checkFirstRows asserts, for every table whose title is on screen, that its first item
// shows with its estimate and share on one line.
func checkFirstRows(t *testing.T, view string, body []byte) {
	t.Helper()
	g := generic(t, body)
	p, d := schemaOf(t, g, "default", "packets"), schemaOf(t, g, "default", "dns")
	for title, o := range oracleTables() {
		if !strings.Contains(view, "─ "+title+" ") && !strings.Contains(view, "━ "+title+" ") {
			continue
		}
		src := d
		if o.schema == "packets" {
			src = p
		}
		items := list(src, o.path)
		if len(items) == 0 {
			continue
		}
		name, est := items[0]["name"].(string), int64(items[0]["estimate"].(float64))
		share := fmt.Sprintf(`\(%.1f%%\)`, 100*float64(est)/o.base(p, d))
		re := regexp.MustCompile(regexp.QuoteMeta(name) + ` +` + fmt.Sprint(est) + ` +` + share)
		if !re.MatchString(view) {
			t.Errorf("%s: no row %q %d %s", title, name, est, share)
		}
	}
}

func TestViewSizes(t *testing.T) {
	for _, file := range recordedAnswers {
		for _, size := range []struct{ w, h int }{{200, 50}, {160, 48}, {120, 40}, {80, 24}, {60, 30}} {
			t.Run(fmt.Sprintf("%s/%dx%d", file, size.w, size.h), func(t *testing.T) {
				body := recorded(t, file)
				m := modelWith(t, file, size.w, size.h)
				view := m.View()
				lines := checkFits(t, view, size.w, size.h)
				if !strings.HasPrefix(lines[0], "pktvisor-cli ") || !strings.Contains(lines[0], "window 5m") {
					t.Errorf("title line %q", lines[0])
				}
				if !strings.HasPrefix(lines[1], "connected to localhost:10853") {
					t.Errorf("status line %q", lines[1])
				}
				if !strings.HasPrefix(lines[len(lines)-1], "q quit") {
					t.Errorf("key line %q", lines[len(lines)-1])
				}
				if size.w >= 120 {
					// Wide enough for every header segment whole, and all tables fit.
					for _, want := range wantSegments(t, body, "default") {
						if !strings.Contains(view, want) {
							t.Errorf("header lacks %q", want)
						}
					}
					checkLatency(t, view, body, "default")
					for _, title := range TableTitles() {
						if !strings.Contains(view, " "+title+" ") {
							t.Errorf("table %q not on screen", title)
						}
					}
				} else {
					for _, want := range wantSegments(t, body, "default")[:1] {
						if !strings.Contains(view, want) {
							t.Errorf("header lacks %q", want)
						}
					}
					for _, prefix := range []string{"Pkt Rates Total ", "DNS Wire Pkts ", "DNS Xacts ", "DNS NOERROR "} {
						if !strings.Contains(view, "\n"+prefix) {
							t.Errorf("header line %q missing", prefix)
						}
					}
				}
				checkFirstRows(t, view, body)
				if !strings.Contains(view, "┏━ Top QName 2 ") {
					t.Error("the first table is not shown focused (heavy border)")
				}
				// Grid geometry: columns as the width allows (4, 4, 3, 2, 1).
				wantCols := map[int]int{200: 4, 160: 4, 120: 3, 80: 2, 60: 1}[size.w]
				for _, l := range lines {
					if strings.Contains(l, " Top QName 2 ") {
						if got := strings.Count(l, "╮") + strings.Count(l, "┓"); got != wantCols {
							t.Errorf("%d tables in the first grid row, want %d: %q", got, wantCols, l)
						}
					}
				}
			})
		}
	}
}

// On a small terminal not every table fits: tab pages through all of them, and the key line
// says which ones are shown.
func TestViewPagesTablesOnSmallTerminal(t *testing.T) {
	m := modelWith(t, "attack-window5.json", 80, 24)
	seen := map[string]bool{}
	for i := 0; i < len(tables); i++ {
		view := m.View()
		checkFits(t, view, 80, 24)
		for _, title := range TableTitles() {
			if strings.Contains(view, " "+title+" ") {
				seen[title] = true
			}
		}
		focused := TableTitles()[i]
		if !strings.Contains(view, "┏━ "+focused+" ") {
			t.Errorf("focus %d: %q not on screen with a heavy border", i, focused)
		}
		if !regexp.MustCompile(`tables \d+–\d+ of 14$`).MatchString(strings.Split(view, "\n")[23]) {
			t.Errorf("key line lacks the table range: %q", strings.Split(view, "\n")[23])
		}
		press(m, "tab")
	}
	if len(seen) != len(tables) {
		t.Errorf("saw %d of %d tables while tabbing", len(seen), len(tables))
	}
}

func TestViewTinyTerminals(t *testing.T) {
	for _, size := range []struct{ w, h int }{{1, 1}, {10, 3}, {20, 6}, {40, 10}, {37, 30}, {300, 5}, {60, 100}} {
		for _, mode := range []string{"grid", "expanded", "help"} {
			m := modelWith(t, "attack-window5.json", size.w, size.h)
			switch mode {
			case "expanded":
				press(m, "enter")
			case "help":
				press(m, "?")
			}
			t.Run(fmt.Sprintf("%dx%d/%s", size.w, size.h, mode), func(t *testing.T) {
				checkFits(t, m.View(), size.w, size.h)
			})
		}
	}
	m := modelWith(t, "attack-window5.json", 0, 0)
	if v := m.View(); v != "" {
		t.Errorf("zero-size view %q", v)
	}
}

func TestViewExpanded(t *testing.T) {
	body := recorded(t, "attack-window5.json")
	m := modelWith(t, "attack-window5.json", 120, 40)
	press(m, "tab") // Top QName 3
	press(m, "enter")
	view := m.View()
	checkFits(t, view, 120, 40)
	items := list(schemaOf(t, generic(t, body), "default", "dns"), "top_qname3")
	if len(items) < 5 {
		t.Fatalf("recording has %d qname3 items", len(items))
	}
	for _, it := range items {
		re := regexp.MustCompile(regexp.QuoteMeta(it["name"].(string)) + ` +` + fmt.Sprint(int64(it["estimate"].(float64))) + ` `)
		if !re.MatchString(view) {
			t.Errorf("expanded view lacks %v", it)
		}
	}
	if !strings.Contains(view, fmt.Sprintf("1–%d of %d", len(items), len(items))) {
		t.Error("expanded footer lacks the row range")
	}
	if strings.Contains(view, " Top QName 2 ") {
		t.Error("other tables shown in the expanded view")
	}
	// Scrolling in a view shorter than the list.
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 16})
	press(m, "down", "down")
	view = m.View()
	checkFits(t, view, 120, 16)
	if !strings.Contains(view, fmt.Sprintf("3–8 of %d", len(items))) || strings.Contains(view, " "+items[0]["name"].(string)+" ") {
		t.Errorf("scrolled view does not start at row 3:\n%s", view)
	}
	press(m, "enter")
	if strings.Contains(m.View(), "↑↓ scroll") {
		t.Error("enter did not close the expanded view")
	}
}

func TestViewHelpAndStates(t *testing.T) {
	m := modelWith(t, "sample-window5.json", 120, 40)
	press(m, "?")
	view := m.View()
	for _, k := range []string{"q, Ctrl+C", "pause", "enter", "w ", "?"} {
		if !strings.Contains(view, k) {
			t.Errorf("help lacks %q", k)
		}
	}
	press(m, "?")
	if strings.Contains(m.View(), "─ Keys ") || strings.Contains(m.View(), "━ Keys ") {
		t.Error("? did not close the help")
	}
	press(m, "p")
	view = m.View()
	if !strings.Contains(view, "PAUSED") || !strings.Contains(view, "paused — press p to resume") {
		t.Error("paused state not shown")
	}

	// Before any data: a "connecting" status and no numbers.
	c := NewClient(Config{Host: "agent.example", Port: 10853, Policy: "default"}, nil)
	m = newTestModel(c, 80, 24)
	view = m.View()
	checkFits(t, view, 80, 24)
	if !strings.Contains(view, "connecting to agent.example:10853…") || strings.Contains(view, "Pkts ") {
		t.Errorf("initial view:\n%s", view)
	}
}

// Names are attacker-chosen: escape sequences in them must reach the screen escaped, and
// wide or long names must not break the grid.
func TestViewHostileNames(t *testing.T) {
	body := `{"default":{"h":{"dns":{"wire_packets":{"total":10,"replies":5},` +
		`"top_qname2":[{"name":"\u001b[2J\u001b]0;pwned\u0007","estimate":5},{"name":"` + strings.Repeat("例", 100) + `","estimate":4},` +
		`{"name":"evil\u202egnp.exe","estimate":3},{"name":"` + strings.Repeat("x", 600) + `","estimate":2}]}}}}`
	s, err := Decode([]byte(body), "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{200, 80, 41, 39} {
		m := newTestModel(NewClient(Config{Host: "h", Port: 1, Policy: "default"}, nil), w, 30)
		m.Update(fetchMsg{snap: s, periods: 5, at: testClock})
		view := checkFits(t, m.View(), w, 30)
		joined := strings.Join(view, "\n")
		if !strings.Contains(joined, `\x1b[2J\x1b]0;pwned\x07`[:min(len(`\x1b[2J\x1b]0;pwned\x07`), w/3)]) {
			t.Errorf("width %d: escaped name not shown", w)
		}
		if !strings.Contains(joined, "(none)") { // other tables still render
			t.Errorf("width %d: grid broken", w)
		}
	}
}

// With colors on, the text is the same as without; NO_COLOR turns them off.
func TestViewColors(t *testing.T) {
	plain := modelWith(t, "attack-window5.json", 160, 48).View()
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI256)
	s, _ := Decode(recorded(t, "attack-window5.json"), "default")
	m := New(Options{Client: NewClient(Config{Host: "localhost", Port: 10853, Policy: "default"}, nil),
		ClientVersion: "4.5.0-go", Interval: -1, Renderer: r, Location: time.UTC, Now: func() time.Time { return testClock }})
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 48})
	m.Update(fetchMsg{snap: s, periods: 5, at: testClock})
	m.Update(appMsg{info: AppInfo{Version: "4.5.0-go"}})
	colored := m.View()
	if !strings.Contains(colored, "\x1b[") {
		t.Fatal("no escape sequences with a 256-color profile")
	}
	if got := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(colored, ""); got != plain {
		t.Errorf("colored text differs from plain text")
	}

	t.Setenv("NO_COLOR", "1")
	t.Setenv("TERM", "xterm-256color")
	nc := lipgloss.NewRenderer(io.Discard, termenv.WithTTY(true))
	if nc.ColorProfile() != termenv.Ascii {
		t.Errorf("NO_COLOR: profile %v, want Ascii", nc.ColorProfile())
	}
	t.Setenv("NO_COLOR", "")
	tty := lipgloss.NewRenderer(io.Discard, termenv.WithTTY(true))
	if tty.ColorProfile() == termenv.Ascii {
		t.Error("a 256-color terminal without NO_COLOR gets no colors")
	}
}

func BenchmarkView(b *testing.B) {
	m := modelWith(b, "attack-window5.json", 160, 48)
	b.ReportAllocs()
	for b.Loop() {
		_ = m.View()
	}
}
