//go:build race

package sketch

// The race detector's instrumentation defeats some of the compiler's
// allocation elisions (append(s, make(…)…) into spare capacity), so
// allocation counts are only asserted in normal builds.
const raceEnabled = true
