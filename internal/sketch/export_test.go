package sketch

import (
	"math"
	"slices"
	"testing"
)

// ForEachValue gives the exact values while exact, then bins whose counts add up to Count,
// the zero bin first, bins ascending, each value within the relative accuracy of its inputs.
func TestQuantilesForEachValue(t *testing.T) {
	var q Quantiles
	q.ForEachValue(func(float64, uint64) { t.Fatal("values of an empty sketch") })
	for _, v := range []float64{3, 1, 2} {
		q.Add(v)
	}
	var got []float64
	q.ForEachValue(func(v float64, n uint64) {
		if n != 1 {
			t.Errorf("exact value %v with count %d", v, n)
		}
		got = append(got, v)
	})
	if !slices.Equal(got, []float64{3, 1, 2}) {
		t.Fatalf("exact values %v", got)
	}

	q.Reset()
	q.AddN(0, 10)
	q.AddN(500, 300)
	q.AddN(70000, 5)
	type bin struct {
		v float64
		n uint64
	}
	var bins []bin
	q.ForEachValue(func(v float64, n uint64) { bins = append(bins, bin{v, n}) })
	if len(bins) != 3 || bins[0] != (bin{0, 10}) || bins[1].n != 300 || bins[2].n != 5 {
		t.Fatalf("bins %v", bins)
	}
	for i, want := range map[int]float64{1: 500, 2: 70000} {
		if math.Abs(bins[i].v-want) > QuantilesRelativeAccuracy*want {
			t.Errorf("bin %d value %v, want %v ± 1 %%", i, bins[i].v, want)
		}
	}
}
