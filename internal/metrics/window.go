package metrics

import "fmt"

// PeriodSeconds is the length of one bucket period.
const PeriodSeconds = 60

// Window is a handler's window configuration (policy handlers.window_config).
type Window struct {
	NumPeriods     int // [1, 10]; 1 = one cumulative bucket, never shifted
	DeepSampleRate int // [1, 100] percent of events that update the deep (sketch) metrics
	TopNCount      int // rows kept in each top-N list
	TopNPercentile int // 0–100: cut a top-N list below this percentile of its estimates
}

// DefaultWindow is the reference's default window configuration.
var DefaultWindow = Window{NumPeriods: 5, DeepSampleRate: 100, TopNCount: 10, TopNPercentile: 0}

// Normalize clamps the values as the reference does and rejects an out-of-range percentile.
func (w *Window) Normalize() error {
	w.NumPeriods = clamp(w.NumPeriods, 1, 10)
	w.DeepSampleRate = clamp(w.DeepSampleRate, 1, 100)
	if w.TopNCount <= 0 {
		w.TopNCount = DefaultWindow.TopNCount
	}
	if w.TopNPercentile < 0 || w.TopNPercentile > 100 {
		return fmt.Errorf("threshold must be between 0 and 100 but has value %d", w.TopNPercentile)
	}
	return nil
}

func clamp(v, lo, hi int) int {
	return max(lo, min(v, hi))
}
