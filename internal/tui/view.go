package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// Layout constants: a table needs about 38 cells for a name, a count and a share; the grid
// has at most the reference's 4 columns. A table box is its title border, rows, and a
// bottom border; it shows at least one and at most 10 rows outside the expanded view.
const (
	minTableWidth = 38
	maxCols       = 4
	minBoxHeight  = 5
	maxBoxHeight  = 12
	chromeLines   = 3 // title, status and key lines
	shareWidth    = 8 // "(100.0%)"
	// maxExpandedWidth caps the expanded table (names are at most 253 bytes, usually far
	// shorter).
	maxExpandedWidth = 100
	sep              = " | "
)

// layout is where everything goes for the current size and data.
type layout struct {
	header   []string // physical header lines, plain text
	cols     int      // table columns
	boxW     int      // table box width
	boxH     int      // table box height (grid view)
	gridRows int      // rows of the table grid
	visRows  int      // grid rows that fit
	firstRow int      // first grid row shown (keeps the focused table on screen)
	area     int      // lines left for the tables
}

func (m *Model) layout() layout {
	var l layout
	w, h := max(m.width, 1), max(m.height, 1)
	if m.hasData {
		l.header = packHeader(headerLines(&m.snap, m.loc), w, (h-chromeLines)/2)
	} else {
		l.header = []string{""}
	}
	l.cols = min(max(w/minTableWidth, 1), maxCols)
	l.boxW = (w - (l.cols - 1)) / l.cols
	l.gridRows = (len(tables) + l.cols - 1) / l.cols
	l.area = max(h-chromeLines-len(l.header), 0)
	l.boxH = min(max(l.area/l.gridRows, minBoxHeight), maxBoxHeight)
	if l.boxH > l.area {
		l.boxH = l.area
	}
	if l.boxH >= 3 {
		l.visRows = min(max(l.area/l.boxH, 1), l.gridRows)
	}
	if l.visRows > 0 {
		focusRow := m.focus / l.cols
		l.firstRow = min(focusRow/l.visRows*l.visRows, l.gridRows-l.visRows)
	}
	return l
}

// packHeader reflows each logical header line into physical lines of at most w cells,
// breaking only between segments. With little height (budget lines for the whole header)
// each logical line gets an equal share of lines and its rest is cut with "…".
func packHeader(logical [][]string, w, budget int) []string {
	perLine := max(budget/max(len(logical), 1), 1)
	var out []string
	for _, segs := range logical {
		var lines []string
		cur := ""
		for _, s := range segs {
			switch {
			case cur == "":
				cur = s
			case textWidth(cur)+len(sep)+textWidth(s) <= w:
				cur += sep + s
			default:
				lines = append(lines, cur)
				cur = s
			}
		}
		lines = append(lines, cur)
		if len(lines) > perLine {
			rest := strings.Join(lines[perLine-1:], sep)
			lines = append(lines[:perLine-1], truncate(rest, w))
		}
		for i := range lines {
			lines[i] = truncate(lines[i], w)
		}
		out = append(out, lines...)
	}
	return out
}

// View implements tea.Model. Every line fits the terminal width and the whole fits its
// height, whatever the data: nothing wraps.
func (m *Model) View() string {
	w, h := m.width, m.height
	if w <= 0 || h <= 0 {
		return ""
	}
	l := m.layout()
	lines := make([]string, 0, h)
	lines = append(lines, m.titleLine(w), m.statusLine(w))
	if m.hasData {
		for _, hl := range l.header {
			lines = append(lines, m.styleHeader(hl))
		}
	} else {
		lines = append(lines, "")
	}
	var body []string
	switch {
	case m.help:
		body = m.helpBox(w, l.area)
	case m.expanded:
		body = m.expandedBox(w, l.area)
	default:
		body = m.grid(l)
	}
	for len(body) < l.area {
		body = append(body, "")
	}
	lines = append(lines, body...)
	lines = append(lines, m.keyLine(w, l))
	if len(lines) > h {
		// Keep the title and the status, cut from the bottom: the status says what is wrong.
		lines = lines[:h]
	}
	// Lines are built to fit; this guard only cuts (escape-sequence aware) what would not.
	for i, l := range lines {
		if lipgloss.Width(l) > w {
			lines[i] = lipgloss.NewStyle().MaxWidth(w).Render(l)
		}
	}
	return strings.Join(lines, "\n")
}

func (m *Model) titleLine(w int) string {
	server := m.serverVersion
	if server == "" {
		server = "?"
	}
	left := fmt.Sprintf("pktvisor-cli (client: %s | server: %s) Policy: %s",
		sanitize(m.clientVersion), server, sanitize(m.config().Policy))
	var right string
	if m.hasData {
		if m.dataLive {
			right = "live bucket"
		} else {
			right = fmt.Sprintf("window %dm", m.dataN)
		}
		right += " · " + m.dataAt.In(m.loc).Format("15:04:05")
	}
	if m.paused {
		right = "PAUSED · " + right
	}
	if right == "" {
		return m.st.title.Render(truncate(left, w))
	}
	if textWidth(left)+1+textWidth(right) > w {
		// Narrow: the policy, the mode and the time matter more than the versions.
		left = "pktvisor-cli · Policy: " + sanitize(m.config().Policy)
		if m.versionWarn != "" {
			left += " (server " + m.serverVersion + ")"
		}
		left = truncate(left, max(w-textWidth(right)-1, 0))
		if left == "" {
			return truncate(right, w)
		}
	}
	gap := max(w-textWidth(left)-textWidth(right), 1)
	return m.st.title.Render(left) + strings.Repeat(" ", gap) + m.st.dim.Render(right)
}

func (m *Model) statusLine(w int) string {
	addr := m.config().Addr()
	switch {
	case m.err != nil:
		msg := "! " + m.err.Error() + " — retrying"
		if m.hasData {
			msg += fmt.Sprintf(" (data shown is from %s)", m.dataAt.In(m.loc).Format("15:04:05"))
		}
		return m.st.err.Render(truncate(sanitize(msg), w))
	case m.versionWarn != "":
		return m.st.warn.Render(truncate(m.versionWarn, w))
	case !m.hasData:
		return m.st.dim.Render(truncate("connecting to "+addr+"…", w))
	case m.paused:
		return m.st.warn.Render(truncate("paused — press p to resume", w))
	}
	msg := "connected to " + addr
	if !m.snap.HasDNS {
		msg += " · the policy has no dns handler"
	}
	if !m.snap.HasPackets {
		msg += " · the policy has no net handler"
	}
	return m.st.ok.Render(truncate(msg, w))
}

func (m *Model) styleHeader(line string) string {
	parts := strings.Split(line, sep)
	for i, p := range parts {
		if strings.HasPrefix(p, "DNS ") || strings.HasPrefix(p, "Pkts ") || strings.HasPrefix(p, "Pkt Rates") || strings.HasPrefix(p, "DHCP ") {
			parts[i] = m.st.bold.Render(p)
		}
	}
	return strings.Join(parts, m.st.dim.Render(sep))
}

func (m *Model) keyLine(w int, l layout) string {
	keys := "q quit · p pause · tab/arrows focus · enter expand · w window/live · ? keys"
	var right string
	if !m.expanded && !m.help && l.visRows > 0 && l.visRows < l.gridRows {
		first := l.firstRow*l.cols + 1
		last := min((l.firstRow+l.visRows)*l.cols, len(tables))
		right = fmt.Sprintf("tables %d–%d of %d", first, last, len(tables))
	}
	if right == "" {
		return m.st.dim.Render(truncate(keys, w))
	}
	keys = truncate(keys, max(w-textWidth(right)-1, 0))
	gap := max(w-textWidth(keys)-textWidth(right), 1)
	return m.st.dim.Render(keys) + strings.Repeat(" ", gap) + m.st.bold.Render(truncate(right, w))
}

// grid renders the visible rows of the table grid.
func (m *Model) grid(l layout) []string {
	if l.visRows == 0 {
		if l.area > 0 {
			return []string{m.st.dim.Render(truncate("(enlarge the terminal to see the tables)", m.width))}
		}
		return nil
	}
	var out []string
	for r := l.firstRow; r < l.firstRow+l.visRows; r++ {
		var boxes [][]string
		for c := 0; c < l.cols; c++ {
			i := r*l.cols + c
			if i >= len(tables) {
				break
			}
			boxes = append(boxes, m.box(i, l.boxW, l.boxH, 0, false))
		}
		for y := 0; y < l.boxH; y++ {
			row := make([]string, len(boxes))
			for b := range boxes {
				row[b] = boxes[b][y]
			}
			out = append(out, strings.Join(row, " "))
		}
	}
	return out
}

func (m *Model) expandedBox(w, h int) []string {
	if h < 3 {
		return nil
	}
	// Wider than this, the counts drift too far from their names to be read across.
	return m.box(m.focus, min(w, maxExpandedWidth), h, m.rowOff, true)
}

// borders of a table box: normal, and heavy for the focused one (visible without color).
type borderSet struct{ tl, tr, bl, br, h, v string }

var (
	thinBorder  = borderSet{"╭", "╮", "╰", "╯", "─", "│"}
	heavyBorder = borderSet{"┏", "┓", "┗", "┛", "━", "┃"}
)

// box renders table i as exactly h lines of exactly w cells: a title border, rows from
// item off on, and a bottom border saying how many items are not shown.
func (m *Model) box(i, w, h, off int, expanded bool) []string {
	t := tables[i]
	focused := i == m.focus
	b, bs := thinBorder, m.st.dim
	if focused {
		b, bs = heavyBorder, m.st.focus
	}
	items := t.items(&m.snap)
	base := t.base(&m.snap)
	inner := max(w-2, 0)
	rows := max(h-2, 0)
	off = max(min(off, len(items)-rows), 0)

	lines := make([]string, 0, h)
	lines = append(lines, m.borderLine(b.tl, b.tr, b.h, " "+t.Title+" ", inner, bs, true))

	shown := items[off:min(off+rows, len(items))]
	cw := 1
	for _, it := range shown {
		cw = max(cw, len(fmt.Sprint(it.Estimate)))
	}
	showShare := base > 0 && inner-2-cw-1-shareWidth-1 >= 8
	nw := inner - 2 - cw - 1
	if showShare {
		nw -= shareWidth + 1
	}
	for r := 0; r < rows; r++ {
		var text string
		switch {
		case r < len(shown):
			it := shown[r]
			text = " " + padRight(sanitize(it.Name), max(nw, 0)) + " " + padLeft(fmt.Sprint(it.Estimate), cw)
			if showShare {
				text += " " + padLeft(share(float64(it.Estimate), base), shareWidth)
			}
			text = padRight(text, inner)
			if r == 0 && focused {
				text = m.st.bold.Render(text)
			}
		case r == 0 && len(items) == 0:
			text = m.st.dim.Render(padRight(" (none)", inner))
		default:
			text = strings.Repeat(" ", inner)
		}
		lines = append(lines, bs.Render(b.v)+text+bs.Render(b.v))
	}

	var foot string
	if hidden := len(items) - len(shown); hidden > 0 || expanded {
		if expanded {
			foot = fmt.Sprintf(" %d–%d of %d · ↑↓ scroll · enter back ", min(off+1, len(items)), off+len(shown), len(items))
		} else {
			foot = fmt.Sprintf(" +%d ", hidden)
		}
	}
	if h >= 2 {
		lines = append(lines, m.borderLine(b.bl, b.br, b.h, foot, inner, bs, false))
	}
	return lines[:min(len(lines), h)]
}

// borderLine is a horizontal border of inner+2 cells with a label (left for the title,
// right for the footer).
func (m *Model) borderLine(l, r, fill, label string, inner int, bs style, left bool) string {
	label = truncate(label, max(inner-2, 0))
	rest := max(inner-textWidth(label)-1, 0)
	if label == "" {
		return bs.Render(l + strings.Repeat(fill, inner) + r)
	}
	if left {
		return bs.Render(l+fill) + m.st.boxTitle.Render(label) + bs.Render(strings.Repeat(fill, rest)+r)
	}
	return bs.Render(l+strings.Repeat(fill, rest)) + m.st.dim.Render(label) + bs.Render(fill+r)
}

// share is an estimate's share of base, "(12.3%)".
func share(v, base float64) string {
	p := pct(v, base)
	if p >= 1000 || p < 0 {
		return "(>999%)"
	}
	return fmt.Sprintf("(%.1f%%)", p)
}

var helpText = []string{
	"q, Ctrl+C     quit",
	"p, space      pause / resume the refresh",
	"tab, →, l     next table          shift+tab, ←, h  previous table",
	"↓ j / ↑ k     table below / above (expanded: scroll rows)",
	"enter         expand the focused table to the full top-N (again: back)",
	"PgUp/PgDn     scroll the expanded table",
	"w             switch between the merged window and the live bucket",
	"esc           close this list or the expanded table",
	"?             show / hide this list",
	"",
	"Shares are of all DNS packets (QName, QType, ports), of replies (NX, RCodes,",
	"SRVFAIL, REFUSED), of transactions (Slow) or of packets (IPs, GeoLoc, ASN).",
	"A \"-\" live rate: the answer carried none (recorded stream or no live bucket).",
}

func (m *Model) helpBox(w, h int) []string {
	if h < 3 {
		return nil
	}
	inner := max(w-2, 0)
	b, bs := heavyBorder, m.st.focus
	lines := []string{m.borderLine(b.tl, b.tr, b.h, " Keys ", inner, bs, true)}
	for r := 0; r < h-2; r++ {
		text := ""
		if r < len(helpText) {
			text = " " + helpText[r]
		}
		lines = append(lines, bs.Render(b.v)+padRight(text, inner)+bs.Render(b.v))
	}
	lines = append(lines, m.borderLine(b.bl, b.br, b.h, " ? or esc closes ", inner, bs, false))
	return lines
}
