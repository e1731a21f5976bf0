package sketch

import "github.com/cespare/xxhash/v2"

// Hash returns the 64-bit hash used for every byte-string key in this
// package: xxHash64 with seed 0. It is fixed forever (it is part of the
// encoding contract): sketches built by different processes or agents are
// only mergeable because they hash identically.
func Hash(b []byte) uint64 { return xxhash.Sum64(b) }

// HashUint64 hashes a numeric key (an IPv4 address as a uint32, a port, ...)
// without going through bytes. It is the splitmix64 output function: a
// fixed bijective 64-bit mixer, so distinct inputs never collide and 0 does
// not map to 0 (a zero hash would be an extreme HyperLogLog register value).
func HashUint64(v uint64) uint64 {
	z := v + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
