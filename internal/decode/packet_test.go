package decode

import (
	"math/rand/v2"
	"testing"
)

// FlowHash must be direction-independent and spread distinct flows (it routes packets to
// workers and keys DNS transactions).
func TestFlowHash(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := make(map[uint64]struct{}, 1<<20)
	var p Packet
	for i := range 1 << 20 {
		p = Packet{IPProto: 17, SrcPort: uint16(r.Uint32()), DstPort: 53}
		n := 4
		if i%3 == 0 {
			n = 16
		}
		for j := range n {
			p.Src[j], p.Dst[j] = byte(r.Uint32()), byte(r.Uint32())
		}
		h := p.FlowHash()
		q := p
		q.Src, q.Dst, q.SrcPort, q.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		if q.FlowHash() != h {
			t.Fatalf("not symmetric: %+v", p)
		}
		q = p
		q.IPProto = 6
		if q.FlowHash() == h {
			t.Fatalf("protocol ignored: %+v", p)
		}
		seen[h] = struct{}{}
	}
	if len(seen) != 1<<20 {
		t.Errorf("%d collisions among 2^20 random flows", 1<<20-len(seen))
	}
	// Low bits route to workers: they must be balanced too.
	var buckets [64]int
	for h := range seen {
		buckets[h&63]++
	}
	for i, n := range buckets {
		if n < (1<<20)/64*9/10 || n > (1<<20)/64*11/10 {
			t.Errorf("bucket %d holds %d of %d", i, n, 1<<20)
		}
	}
}
