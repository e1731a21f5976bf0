package tui

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// Options configure a Model.
type Options struct {
	Client        *Client
	ClientVersion string
	// Interval between refreshes; the reference's 1 s when 0. Negative disables the timer
	// (tests send refreshes themselves).
	Interval time.Duration
	// Renderer for colors; lipgloss's default (the terminal's profile, NO_COLOR honoured)
	// when nil.
	Renderer *lipgloss.Renderer
	// Location of the time window shown; local time when nil.
	Location *time.Location
	// Now is the clock (tests fix it); time.Now when nil.
	Now func() time.Time
}

// Model is the Bubble Tea model of pktvisor-cli. All state changes happen in Update; the
// HTTP requests run in commands (goroutines) and come back as messages, so a slow or dead
// agent never blocks the keys.
type Model struct {
	client        *Client
	clientVersion string
	interval      time.Duration
	st            styles
	loc           *time.Location
	now           func() time.Time

	width, height int

	snap     Snapshot
	hasData  bool
	dataAt   time.Time
	dataLive bool // the shown data is the live bucket, not a window
	dataN    int  // window size of the shown data

	err      error // last fetch error; nil once a fetch succeeds again
	errSince time.Time

	serverVersion string
	versionWarn   string
	appInFlight   bool

	paused   bool
	live     bool // fetch the live bucket instead of the merged window
	help     bool
	expanded bool
	focus    int
	rowOff   int // first row shown of the expanded table

	inFlight bool
	seq      int // fetch generation: answers from before a mode switch are dropped
}

// New returns a model for opts.
func New(opts Options) *Model {
	m := &Model{
		client:        opts.Client,
		clientVersion: opts.ClientVersion,
		interval:      opts.Interval,
		st:            newStyles(opts.Renderer),
		loc:           opts.Location,
		now:           opts.Now,
		width:         80,
		height:        24,
	}
	if m.interval == 0 {
		m.interval = time.Second
	}
	if m.loc == nil {
		m.loc = time.Local
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

func (m *Model) config() Config {
	if m.client == nil {
		return Config{}
	}
	return m.client.Config()
}

// Messages.
type (
	tickMsg  struct{}
	fetchMsg struct {
		seq     int
		snap    Snapshot
		err     error
		live    bool
		periods int
		at      time.Time
	}
	appMsg struct {
		info AppInfo
		err  error
	}
)

// Init starts the first fetches at once (as the reference does) and the refresh timer.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.startApp(), m.startFetch(), m.tick())
}

func (m *Model) tick() tea.Cmd {
	if m.interval < 0 {
		return nil
	}
	return tea.Tick(m.interval, func(time.Time) tea.Msg { return tickMsg{} })
}

// startApp asks for the agent's version (once per connection: again after an outage, the
// agent may have been upgraded).
func (m *Model) startApp() tea.Cmd {
	if m.appInFlight || m.client == nil {
		return nil
	}
	m.appInFlight = true
	c := m.client
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		info, err := c.App(ctx)
		return appMsg{info: info, err: err}
	}
}

// startFetch asks for the data of the current mode unless a request is out already.
func (m *Model) startFetch() tea.Cmd {
	if m.inFlight || m.client == nil {
		return nil
	}
	m.inFlight = true
	c, live, seq := m.client, m.live, m.seq
	now := m.now
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		var snap Snapshot
		var err error
		if live {
			snap, err = c.Live(ctx)
		} else {
			snap, err = c.Window(ctx)
			if err == nil {
				// Merged windows carry no "live" rate; the live bucket has it.
				if b, berr := c.Live(ctx); berr == nil {
					overlayLive(&snap, &b)
				}
			}
		}
		return fetchMsg{seq: seq, snap: snap, err: err, live: live, periods: c.Periods(), at: now()}
	}
}

func overlayLive(dst, src *Snapshot) {
	fill := func(d *Rates, s Rates) {
		if !d.Live.Valid && s.Live.Valid {
			d.Live = s.Live
		}
	}
	fill(&dst.Packets.Rates.PpsTotal, src.Packets.Rates.PpsTotal)
	fill(&dst.Packets.Rates.PpsIn, src.Packets.Rates.PpsIn)
	fill(&dst.Packets.Rates.PpsOut, src.Packets.Rates.PpsOut)
	fill(&dst.DNS.Rates.Total, src.DNS.Rates.Total)
	fill(&dst.DHCP.Rates.Total, src.DHCP.Rates.Total)
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = max(msg.Width, 0), max(msg.Height, 0)
		m.clampScroll()
		return m, nil
	case tickMsg:
		cmds := []tea.Cmd{m.tick()}
		if !m.paused {
			cmds = append(cmds, m.startFetch())
			if m.serverVersion == "" {
				cmds = append(cmds, m.startApp())
			}
		}
		return m, tea.Batch(cmds...)
	case fetchMsg:
		if msg.seq != m.seq {
			return m, nil // stale: the mode changed while it was out
		}
		m.inFlight = false
		if msg.err != nil {
			if m.err == nil {
				m.errSince = msg.at
			}
			m.err = msg.err
			return m, nil
		}
		recovered := m.err != nil
		m.err = nil
		m.snap, m.hasData, m.dataAt, m.dataLive, m.dataN = msg.snap, true, msg.at, msg.live, msg.periods
		m.clampScroll()
		if recovered || m.serverVersion == "" {
			return m, m.startApp()
		}
		return m, nil
	case appMsg:
		m.appInFlight = false
		if msg.err == nil {
			m.serverVersion = sanitize(msg.info.Version)
			if m.serverVersion == "" {
				m.serverVersion = "?"
			}
			m.versionWarn = versionWarning(m.serverVersion, m.clientVersion)
		}
		return m, nil
	case tea.KeyMsg:
		return m.key(msg)
	}
	return m, nil
}

func (m *Model) key(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	s := k.String()
	switch s {
	case "q", "ctrl+c":
		return m, tea.Quit
	case "?":
		m.help = !m.help
		return m, nil
	case "esc":
		m.help, m.expanded = false, false
		return m, nil
	}
	if m.help {
		m.help = false // any other key closes the key list, then acts
	}
	switch s {
	case "p", " ":
		m.paused = !m.paused
		if !m.paused {
			return m, m.startFetch()
		}
	case "w":
		m.live = !m.live
		m.seq++ // drop the answer of the other mode if one is out
		m.inFlight = false
		if !m.paused {
			return m, m.startFetch()
		}
	case "enter":
		m.expanded = !m.expanded
		m.rowOff = 0
	case "tab", "right", "l":
		m.moveFocus(1)
	case "shift+tab", "left", "h":
		m.moveFocus(-1)
	case "down", "j":
		if m.expanded {
			m.rowOff++
			m.clampScroll()
		} else {
			m.moveFocus(m.layout().cols)
		}
	case "up", "k":
		if m.expanded {
			m.rowOff--
			m.clampScroll()
		} else {
			m.moveFocus(-m.layout().cols)
		}
	case "pgdown":
		if m.expanded {
			m.rowOff += max(m.layout().area-3, 1)
			m.clampScroll()
		}
	case "pgup":
		if m.expanded {
			m.rowOff -= max(m.layout().area-3, 1)
			m.clampScroll()
		}
	case "home", "g":
		m.rowOff = 0
	}
	return m, nil
}

// moveFocus moves between tables, wrapping around for tab and stopping at the grid's edge
// for vertical moves that would leave it.
func (m *Model) moveFocus(d int) {
	n := len(tables)
	f := m.focus + d
	if d == 1 || d == -1 {
		f = (f + n) % n
	} else if f < 0 || f >= n {
		return
	}
	if f != m.focus {
		m.focus = f
		m.rowOff = 0
	}
}

func (m *Model) clampScroll() {
	if !m.expanded {
		m.rowOff = 0
		return
	}
	items := len(tables[m.focus].items(&m.snap))
	visible := max(m.layout().area-2, 1)
	m.rowOff = max(min(m.rowOff, items-visible), 0)
}

// versionWarning is the reference's major-version check, shown instead of slept through.
func versionWarning(server, client string) string {
	sm, ok1 := major(server)
	cm, ok2 := major(client)
	if !ok1 || !ok2 || sm == cm {
		return ""
	}
	return fmt.Sprintf("WARNING: this version of pktvisor-cli was written for a different major pktvisord version (server:%d, client:%d)", sm, cm)
}

func major(v string) (int, bool) {
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}
