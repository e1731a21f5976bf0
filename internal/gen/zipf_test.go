package gen

import (
	"math"
	"sort"
	"testing"
)

// TestZipfDistribution compares sampled frequencies with the exact probabilities
// k^-q / Σ j^-q (chi-square, 0.1% critical value).
func TestZipfDistribution(t *testing.T) {
	const n, samples = 10, 200000
	const chi2Crit = 27.88 // df = 9, p = 0.001
	for _, q := range []float64{0.3, 0.5, 1, 1.1, 2.5} {
		r := newRNG(42)
		z := newZipf(n, q)
		var obs [n + 1]int
		for i := 0; i < samples; i++ {
			k := z.sample(&r)
			if k < 1 || k > n {
				t.Fatalf("q=%v: rank %d out of [1,%d]", q, k, n)
			}
			obs[k]++
		}
		norm := 0.0
		for k := 1; k <= n; k++ {
			norm += math.Pow(float64(k), -q)
		}
		chi2 := 0.0
		for k := 1; k <= n; k++ {
			exp := samples * math.Pow(float64(k), -q) / norm
			chi2 += (float64(obs[k]) - exp) * (float64(obs[k]) - exp) / exp
		}
		if chi2 > chi2Crit {
			t.Errorf("q=%v: chi2 = %.1f > %.1f (obs %v)", q, chi2, chi2Crit, obs[1:])
		}
	}
}

func TestZipfLargeAndDegenerate(t *testing.T) {
	r := newRNG(1)
	one := newZipf(1, 1.1)
	for i := 0; i < 1000; i++ {
		if k := one.sample(&r); k != 1 {
			t.Fatalf("n=1 gave %d", k)
		}
	}
	const n, samples = 1000000, 400000
	z := newZipf(n, 1.1)
	hits := 0
	for i := 0; i < samples; i++ {
		k := z.sample(&r)
		if k < 1 || k > n {
			t.Fatalf("rank %d", k)
		}
		if k == 1 {
			hits++
		}
	}
	norm := 0.0
	for k := n; k >= 1; k-- { // small terms first for accuracy
		norm += math.Pow(float64(k), -1.1)
	}
	p := 1 / norm
	mean, sd := samples*p, math.Sqrt(samples*p*(1-p))
	if math.Abs(float64(hits)-mean) > 5*sd {
		t.Errorf("rank 1: %d hits, want %.0f ± %.0f", hits, mean, 5*sd)
	}
}

func TestRNGDistributions(t *testing.T) {
	r := newRNG(5)
	const n = 200000
	xs := make([]float64, n)
	sumExp, sumN, sumN2 := 0.0, 0.0, 0.0
	for i := range xs {
		xs[i] = r.lognormal(2e6, 1)
		sumExp += r.exp()
		v := r.normal()
		sumN += v
		sumN2 += v * v
		if f := r.float64(); f < 0 || f >= 1 {
			t.Fatalf("float64 %v", f)
		}
		if k := r.intn(7); k < 0 || k >= 7 {
			t.Fatalf("intn %d", k)
		}
	}
	sort.Float64s(xs)
	if med := xs[n/2]; math.Abs(med/2e6-1) > 0.02 {
		t.Errorf("lognormal median %.0f, want 2e6", med)
	}
	if m := sumExp / n; math.Abs(m-1) > 0.01 {
		t.Errorf("exp mean %.4f", m)
	}
	if m, v := sumN/n, sumN2/n; math.Abs(m) > 0.01 || math.Abs(v-1) > 0.01 {
		t.Errorf("normal mean %.4f var %.4f", m, v)
	}
	// Different seeds give different streams; the same seed the same one.
	a, b, c := newRNG(1), newRNG(1), newRNG(2)
	for i := 0; i < 4; i++ {
		x, y, z := a.next(), b.next(), c.next()
		if x != y || x == z {
			t.Fatal("seeding is not deterministic or not seed-dependent")
		}
	}
}
