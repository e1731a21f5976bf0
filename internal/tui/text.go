package tui

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
)

// sanitize makes an attacker-chosen name (a query name, a geo location) safe to print: a
// name is bytes off the wire, so an ESC, a C1 control or a bidi override in it would
// drive the operator's terminal. ASCII printables, and letters, digits and punctuation
// of other scripts (whose cell width terminals agree on), are kept; every other rune is
// shown as a Go-style escape (\x1b, \u202e), and invalid UTF-8 as \xNN.
func sanitize(s string) string {
	if isPlainASCII(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.In(r, unicode.L, unicode.N, unicode.P) && runeWidth(r) > 0:
			b.WriteRune(r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// runeWidth is the cell width of one rune (0 for combining and zero-width ones).
func runeWidth(r rune) int {
	if r >= 0x20 && r < 0x7f {
		return 1
	}
	return lipgloss.Width(string(r))
}

// textWidth is the cell width of text without escape sequences.
func textWidth(s string) int {
	if isPlainASCII(s) {
		return len(s)
	}
	return lipgloss.Width(s)
}

// truncate cuts plain text (no escape sequences) to at most w cells, ending in "…" when
// something was cut.
func truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if textWidth(s) <= w {
		return s
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		rw := runeWidth(r)
		if used+rw > w-1 {
			break
		}
		b.WriteRune(r)
		used += rw
	}
	b.WriteString("…")
	return b.String()
}

// padRight pads plain text with spaces to w cells (truncating first if needed).
func padRight(s string, w int) string {
	s = truncate(s, w)
	if n := w - textWidth(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s
}

// padLeft right-aligns plain text in w cells (truncating first if needed).
func padLeft(s string, w int) string {
	s = truncate(s, w)
	if n := w - textWidth(s); n > 0 {
		return strings.Repeat(" ", n) + s
	}
	return s
}
