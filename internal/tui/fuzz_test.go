package tui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode feeds any bytes to the JSON → Snapshot conversion and renders what decodes at
// a few terminal sizes and in every view: nothing may panic, and the screen invariants
// (line count, widths, no control characters) must hold.
func FuzzDecode(f *testing.F) {
	for _, name := range recordedAnswers {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"default":{"h":{"dns":{"top_qname2":[{"name":"\u001b[2J","estimate":1e308}],"wire_packets":{"total":-1}}}}}`))
	f.Add([]byte(`{"default":{"h":{"packets":{"total":0,"deep_samples":5,"top_ipv4":[{"name":"` + strings.Repeat("例", 40) + `","estimate":-9223372036854775808}],"period":{"start_ts":-1,"length":1e30}}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Decode(body, "default")
		if err != nil {
			return
		}
		for _, size := range []struct{ w, h int }{{80, 24}, {160, 48}, {33, 9}} {
			m := newTestModel(NewClient(Config{Host: "h", Port: 1, Policy: "default"}, nil), size.w, size.h)
			m.Update(fetchMsg{snap: s, periods: 5, at: testClock})
			for _, keys := range [][]string{nil, {"enter", "down", "pgdown"}, {"esc", "tab", "tab", "tab", "enter"}, {"esc", "?"}} {
				press(m, keys...)
				checkFits(t, m.View(), size.w, size.h)
			}
		}
	})
}
