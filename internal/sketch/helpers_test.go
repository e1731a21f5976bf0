package sketch

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// newRand returns a deterministic generator per test case.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// keyOf makes distinct keys per (stream, index) without relying on a hash.
func keyOf(stream uint64, i uint64) []byte {
	b := strconv.AppendUint(nil, stream, 10)
	b = append(b, '.')
	return strconv.AppendUint(b, i, 10)
}

// zipfStream draws n ranks from a Zipf(s) law over 1..imax.
func zipfStream(r *rand.Rand, s float64, imax uint64, n int) []uint64 {
	z := rand.NewZipf(r, s, 1, imax-1)
	out := make([]uint64, n)
	for i := range out {
		out[i] = z.Uint64()
	}
	return out
}

func uniformStream(r *rand.Rand, imax uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.Uint64N(imax)
	}
	return out
}

// splitIndex assigns each of n elements to one of k parts at random.
func splitIndex(r *rand.Rand, n, k int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = r.IntN(k)
	}
	return out
}

func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}
