package gen

import (
	"math"
	"math/bits"
)

// rng is xoshiro256** seeded through splitmix64. The generator owns its PRNG instead of using
// math/rand/v2 so that the byte stream for a given seed can never change under a Go upgrade
// (the standard library reserves the right to change derived distributions).
type rng struct{ s0, s1, s2, s3 uint64 }

func splitmix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func newRNG(seed uint64) rng {
	s := seed
	return rng{splitmix64(&s), splitmix64(&s), splitmix64(&s), splitmix64(&s)}
}

func (r *rng) next() uint64 {
	res := bits.RotateLeft64(r.s1*5, 7) * 9
	t := r.s1 << 17
	r.s2 ^= r.s0
	r.s3 ^= r.s1
	r.s1 ^= r.s2
	r.s0 ^= r.s3
	r.s2 ^= t
	r.s3 = bits.RotateLeft64(r.s3, 45)
	return res
}

// float64 is uniform in [0,1).
func (r *rng) float64() float64 { return float64(r.next()>>11) * 0x1p-53 }

// intn is uniform in [0,n) for n > 0 (multiply-shift; the bias is below n/2^64).
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

// between is uniform in [lo,hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// chance is true with probability p.
func (r *rng) chance(p float64) bool { return p > 0 && r.float64() < p }

// normal is a standard normal deviate (Box–Muller; one of the pair is discarded so the stream
// position does not depend on call history).
func (r *rng) normal() float64 {
	u1 := 1 - r.float64() // (0,1]
	u2 := r.float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// exp is an exponential deviate with mean 1.
func (r *rng) exp() float64 { return -math.Log(1 - r.float64()) }

// lognormal returns median·e^(sigma·N(0,1)).
func (r *rng) lognormal(median, sigma float64) float64 {
	if sigma == 0 {
		return median
	}
	return median * math.Exp(sigma*r.normal())
}

// mix64 is a stateless 64-bit hash (splitmix64 finalizer) used to derive per-name properties so
// a name always gets the same answers.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
