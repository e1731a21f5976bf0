package gen

import "math"

// zipf samples ranks 1..n with P(k) ∝ k^-q for any q > 0, by rejection-inversion
// (W. Hörmann, G. Derflinger, "Rejection-inversion to generate variates from monotone discrete
// distributions", ACM TOMACS 1996). It needs O(1) memory, so --names can be large without a
// CDF table, and unlike math/rand.Zipf it also accepts exponents ≤ 1.
type zipf struct {
	q      float64 // exponent
	n      float64
	hX1    float64 // H(1.5) - h(1)
	hN     float64 // H(n + 0.5)
	shortc float64 // acceptance shortcut s = 2 - Hinv(H(2.5) - h(2))
}

func newZipf(n int, q float64) zipf {
	z := zipf{q: q, n: float64(n)}
	z.hX1 = z.bigH(1.5) - 1
	z.hN = z.bigH(z.n + 0.5)
	z.shortc = 2 - z.bigHInv(z.bigH(2.5)-z.h(2))
	return z
}

// h is the unnormalized density x^-q.
func (z *zipf) h(x float64) float64 { return math.Exp(-z.q * math.Log(x)) }

// bigH is an antiderivative of h: (x^(1-q) - 1)/(1-q), or ln x for q = 1, written with
// expm1 so it stays accurate near q = 1.
func (z *zipf) bigH(x float64) float64 {
	lx := math.Log(x)
	return expm1OverX((1-z.q)*lx) * lx
}

// bigHInv inverts bigH.
func (z *zipf) bigHInv(y float64) float64 {
	t := y * (1 - z.q)
	if t < -1 {
		t = -1 // guards rounding at the upper end when q > 1
	}
	return math.Exp(log1pOverX(t) * y)
}

func expm1OverX(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x/2*(1+x/3*(1+x/4))
}

func log1pOverX(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x*(0.5-x*(1.0/3-0.25*x))
}

// sample returns a rank in [1,n].
func (z *zipf) sample(r *rng) int {
	for {
		u := z.hN + r.float64()*(z.hX1-z.hN)
		x := z.bigHInv(u)
		k := math.Floor(x + 0.5)
		if k < 1 {
			k = 1
		} else if k > z.n {
			k = z.n
		}
		if k-x <= z.shortc || u >= z.bigH(k+0.5)-z.h(k) {
			return int(k)
		}
	}
}
