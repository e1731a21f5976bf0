package tui

import (
	"testing"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
)

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"www.example.com", "www.example.com"},
		{"", ""},
		{"a\x1b[2Jb", `a\x1b[2Jb`},                 // ESC: would clear the operator's screen
		{"a\x00b\x7f\n", `a\x00b\x7f\x0a`},         // C0 controls and DEL
		{"a\u009bb", `a\u009bb`},                   // C1 CSI
		{"evil\u202etxt.exe", `evil\u202etxt.exe`}, // bidi override
		{"a\u200db", `a\u200db`},                   // zero-width joiner
		{"e\u0301", `e\u0301`},                     // combining mark: zero width
		{"\xff\xfeok", `\xff\xfeok`},               // invalid UTF-8
		{"München", "München"},                     // letters of other scripts stay
		{"例え.jp", "例え.jp"},                         // wide letters stay (measured as 2 cells)
		{"пример.рф", "пример.рф"},
		{"a\U0001F600b", `a\U0001f600b`}, // emoji: terminals disagree on its width
	}
	for _, tc := range tests {
		got := sanitize(tc.in)
		if got != tc.want {
			t.Errorf("sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Errorf("sanitize(%q) kept control %U", tc.in, r)
			}
		}
		if !utf8.ValidString(got) {
			t.Errorf("sanitize(%q) is not valid UTF-8", tc.in)
		}
	}
}

func TestTruncatePad(t *testing.T) {
	tests := []struct {
		in   string
		w    int
		want string
	}{
		{"abcdef", 6, "abcdef"},
		{"abcdef", 5, "abcd…"},
		{"abcdef", 1, "…"},
		{"abcdef", 0, ""},
		{"例え例え", 5, "例え…"}, // 2+2 cells, then the ellipsis
		{"例え例え", 4, "例…"},  // a wide rune that does not fit is dropped whole
		{"München", 4, "Mün…"},
	}
	for _, tc := range tests {
		got := truncate(tc.in, tc.w)
		if got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.w, got, tc.want)
		}
		if lipgloss.Width(got) > max(tc.w, 0) {
			t.Errorf("truncate(%q, %d) is %d cells", tc.in, tc.w, lipgloss.Width(got))
		}
	}
	for _, w := range []int{0, 1, 3, 7, 12} {
		for _, s := range []string{"", "ab", "例え例え", "München.example"} {
			if got := lipgloss.Width(padRight(s, w)); got != w {
				t.Errorf("padRight(%q, %d) is %d cells", s, w, got)
			}
			if got := lipgloss.Width(padLeft(s, w)); got != w {
				t.Errorf("padLeft(%q, %d) is %d cells", s, w, got)
			}
		}
	}
}
