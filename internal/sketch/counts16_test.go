package sketch

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestCounts16AgainstMap(t *testing.T) {
	for seed := range 20 {
		var a, b Counts16
		model := map[uint16]uint64{}
		x := uint64(seed + 1)
		for i := range 5000 {
			x = HashUint64(x)
			k := uint16(x)
			if seed%2 == 0 {
				k %= 40 // few keys: ties and one page
			}
			w := x>>40%3 + 1
			if i%2 == 0 {
				a.Add(k, w)
			} else {
				b.Add(k, w)
			}
			model[k] += w
		}
		a.Merge(&b)
		var total uint64
		for k, v := range model {
			if got := a.Count(k); got != v {
				t.Fatalf("seed %d: count(%d) = %d, want %d", seed, k, got, v)
			}
			total += v
		}
		if a.Total() != total {
			t.Fatalf("total %d, want %d", a.Total(), total)
		}
		keys := slices.Collect(maps.Keys(model))
		slices.SortFunc(keys, func(p, q uint16) int {
			if model[p] != model[q] {
				if model[p] > model[q] {
					return -1
				}
				return 1
			}
			return int(p) - int(q)
		})
		items := a.Items(10, nil)
		for i, it := range items {
			k := binary.BigEndian.Uint16([]byte(it.Key))
			if k != keys[i] || it.Estimate != model[k] || it.Lower != model[k] {
				t.Fatalf("seed %d: item %d = %d/%d, want %d/%d", seed, i, k, it.Estimate, keys[i], model[keys[i]])
			}
		}
		if len(items) != min(10, len(keys)) || len(a.Items(-1, nil)) != len(keys) {
			t.Fatalf("seed %d: item counts", seed)
		}
		enc, _ := a.MarshalBinary()
		var back Counts16
		if err := back.UnmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
		for k, v := range model {
			if back.Count(k) != v {
				t.Fatalf("round trip: count(%d) = %d, want %d", k, back.Count(k), v)
			}
		}
		a.Reset()
		if a.Total() != 0 || len(a.Items(-1, nil)) != 0 {
			t.Fatalf("reset left data")
		}
	}
}

func TestCounts16Rejects(t *testing.T) {
	for _, bad := range [][]byte{nil, {'U'}, {'U', 2, 0}, {'T', 1, 0}, {'U', 1, 1, 0, 5}, {'U', 1, 2, 1, 1, 0, 1},
		{'U', 1, 1, 0x81, 0x80, 0x04, 1}, {'U', 1, 1, 1, 1, 9}} {
		var c Counts16
		c.Add(7, 1)
		err := c.UnmarshalBinary(bad)
		if err == nil {
			t.Errorf("%x: accepted", bad)
			continue
		}
		if !errors.Is(err, ErrInvalidEncoding) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("%x: %v", bad, err)
		}
		if c.Count(7) != 1 || c.Total() != 1 {
			t.Errorf("%x: receiver changed", bad)
		}
	}
}

func TestCounts16NoAllocs(t *testing.T) {
	var c Counts16
	c.Add(53, 1)
	if n := testing.AllocsPerRun(1000, func() { c.Add(53, 1) }); n != 0 {
		t.Errorf("%v allocs per Add", n)
	}
}

func FuzzCounts16Unmarshal(f *testing.F) {
	var c Counts16
	c.Add(53, 3)
	c.Add(65535, 1)
	enc, _ := c.MarshalBinary()
	f.Add(enc)
	f.Add([]byte{'U', 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Counts16
		if err := c.UnmarshalBinary(data); err != nil {
			return
		}
		again, _ := c.MarshalBinary()
		var d Counts16
		if err := d.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoding rejected: %v", err)
		}
		if d.Total() != c.Total() {
			t.Fatalf("totals differ")
		}
	})
}
