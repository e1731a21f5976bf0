package gen

import (
	"sort"
	"testing"
)

// TestKeyTableModel runs random operations against the table and a plain map with the same
// semantics (a key is busy while its deadline is >= now).
func TestKeyTableModel(t *testing.T) {
	r := newRNG(3)
	kt := newKeyTable(16)
	model := map[uint64]int64{}
	now := int64(1)
	for op := 0; op < 300000; op++ {
		now += int64(r.intn(3))
		key := uint64(r.intn(5000)) * 0x9e3779b97f4a7c15
		want := true
		if u, ok := model[key]; ok && u >= now {
			want = false
		}
		if got := kt.free(key, now); got != want {
			t.Fatalf("op %d: free(%x) = %v, want %v", op, key, got, want)
		}
		if want {
			until := now + int64(r.intn(2000))
			kt.put(key, until, now)
			model[key] = until
		}
	}
	live := 0
	for _, u := range model {
		if u >= now {
			live++
		}
	}
	if len(kt.slots) > 16*(live+1024) {
		t.Errorf("table has %d slots for %d live keys", len(kt.slots), live)
	}
}

func TestPendHeapOrder(t *testing.T) {
	r := newRNG(9)
	var h pendHeap
	var all []pending
	for i := 0; i < 5000; i++ {
		p := pending{ts: int64(r.intn(300)), seq: uint64(i)}
		h.push(p)
		all = append(all, p)
		if r.intn(3) == 0 {
			got := h.pop()
			sort.Slice(all, func(a, b int) bool { return all[a].less(&all[b]) })
			if got != all[0] {
				t.Fatalf("pop %v, want %v", got, all[0])
			}
			all = all[1:]
		}
	}
	for len(h) > 0 {
		got := h.pop()
		sort.Slice(all, func(a, b int) bool { return all[a].less(&all[b]) })
		if got != all[0] {
			t.Fatalf("pop %v, want %v", got, all[0])
		}
		all = all[1:]
	}
}

func TestSlotStore(t *testing.T) {
	var s slotStore
	ids := map[uint32][]byte{}
	r := newRNG(4)
	for i := 0; i < 20000; i++ {
		n := 1 + r.intn(2048)
		id, buf := s.alloc(n)
		if len(buf) < n {
			t.Fatalf("slot of %d bytes for %d", len(buf), n)
		}
		for k := range buf[:n] {
			buf[k] = byte(i)
		}
		ids[id] = buf[:n]
		if r.intn(2) == 0 {
			for id, want := range ids {
				got := s.get(id, len(want))
				for k := range got {
					if got[k] != want[0] {
						t.Fatalf("slot %x overwritten", id)
					}
				}
				s.release(id)
				delete(ids, id)
				break
			}
		}
	}
}
