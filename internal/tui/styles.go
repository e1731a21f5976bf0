package tui

import "github.com/charmbracelet/lipgloss"

// styles are built on a renderer so that the color profile is the terminal's (lipgloss's
// default renderer honours NO_COLOR and plain pipes) and tests can pick one. Colors are the
// 16 ANSI palette entries, which every terminal theme, dark or light, tunes to be readable
// on its own background; no background detection (an OSC 11 query racing Bubble Tea's
// input reader) is needed. Nothing relies on color alone: the focused table has a heavy
// border, errors start with "!".
type styles struct {
	title, dim, bold, err, warn, ok, focus, boxTitle style
}

// style is a lipgloss style that is skipped altogether when the profile renders no
// attributes (NO_COLOR, pipes): Render's width and alignment work is most of a frame's cost.
type style struct {
	s     lipgloss.Style
	plain bool
}

// Render styles text (a single line that already fits).
func (s style) Render(text string) string {
	if s.plain {
		return text
	}
	return s.s.Render(text)
}

func newStyles(r *lipgloss.Renderer) styles {
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	plain := r.NewStyle().Bold(true).Render("x") == "x"
	mk := func(s lipgloss.Style) style { return style{s: s, plain: plain} }
	return styles{
		title:    mk(r.NewStyle().Bold(true)),
		dim:      mk(r.NewStyle().Faint(true)),
		bold:     mk(r.NewStyle().Bold(true)),
		err:      mk(r.NewStyle().Bold(true).Foreground(lipgloss.Color("1"))),
		warn:     mk(r.NewStyle().Bold(true).Foreground(lipgloss.Color("5"))),
		ok:       mk(r.NewStyle().Foreground(lipgloss.Color("2"))),
		focus:    mk(r.NewStyle().Bold(true).Foreground(lipgloss.Color("6"))),
		boxTitle: mk(r.NewStyle().Bold(true)),
	}
}
