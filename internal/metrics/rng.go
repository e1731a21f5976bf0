package metrics

// JSF32 is Bob Jenkins' small fast generator (jsf32, rotations 27 and 17), the generator the
// reference used for deep sampling, seeded as it was (seed 1), so a given event order samples
// the same events.
type JSF32 struct{ a, b, c, d uint32 }

// NewJSF32 returns a generator seeded with seed and warmed up with 20 rounds.
func NewJSF32(seed uint32) *JSF32 {
	r := &JSF32{a: 0xf1ea5eed, b: seed, c: seed, d: seed}
	for range 20 {
		r.Next()
	}
	return r
}

func rotl(x uint32, k uint) uint32 { return x<<k | x>>(32-k) }

// Next returns the next 32-bit value.
func (r *JSF32) Next() uint32 {
	e := r.a - rotl(r.b, 27)
	r.a = r.b ^ rotl(r.c, 17)
	r.b = r.c + r.d
	r.c = r.d + e
	r.d = e + r.a
	return r.d
}
