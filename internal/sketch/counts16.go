package sketch

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// Counts16 counts the events of each 16-bit key exactly: ports, query types, response
// codes. It serves the same top-N listings as TopN, but the key space is small enough to
// count everything, so there is no error bound to report, no purge on the hot path (a port
// top-N sees tens of thousands of distinct client ports and would purge constantly), and no
// hashing. Counters live in 256 lazily allocated pages of 256, so a few distinct keys cost
// one or two 2 KiB pages, and every key of the space at most 512 KiB.
//
// The zero value is empty. Add does not allocate once the key's page exists.
type Counts16 struct {
	pages [256]*[256]uint64
	total uint64
}

// Add counts w events for key k.
func (c *Counts16) Add(k uint16, w uint64) {
	p := c.pages[k>>8]
	if p == nil {
		p = new([256]uint64)
		c.pages[k>>8] = p
	}
	p[k&0xff] = satAdd(p[k&0xff], w)
	c.total = satAdd(c.total, w)
}

// Count returns the events counted for k.
func (c *Counts16) Count(k uint16) uint64 {
	if p := c.pages[k>>8]; p != nil {
		return p[k&0xff]
	}
	return 0
}

// Total returns the events counted for all keys.
func (c *Counts16) Total() uint64 { return c.total }

// Merge adds other's counts to c.
func (c *Counts16) Merge(other *Counts16) {
	for i, op := range other.pages {
		if op == nil {
			continue
		}
		p := c.pages[i]
		if p == nil {
			p = new([256]uint64)
			c.pages[i] = p
		}
		for j, v := range op {
			p[j] = satAdd(p[j], v)
		}
	}
	c.total = satAdd(c.total, other.total)
}

// Reset clears the counts, keeping the pages.
func (c *Counts16) Reset() {
	for _, p := range c.pages {
		if p != nil {
			*p = [256]uint64{}
		}
	}
	c.total = 0
}

// Items lists at most n keys (all when n < 0) with a non-zero count, by count descending, ties
// by key ascending, as TopN.Items does; Key is the key's 2 big-endian bytes, and Estimate and
// Lower are both the exact count.
func (c *Counts16) Items(n int, dst []Item) []Item {
	dst = dst[:0]
	type kv struct {
		k uint16
		v uint64
	}
	var all []kv
	for i, p := range c.pages {
		if p == nil {
			continue
		}
		for j, v := range p {
			if v != 0 {
				all = append(all, kv{uint16(i<<8 | j), v})
			}
		}
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return cmp.Compare(a.k, b.k)
	})
	if n >= 0 && len(all) > n {
		all = all[:n]
	}
	for _, e := range all {
		var key [2]byte
		binary.BigEndian.PutUint16(key[:], e.k)
		dst = append(dst, Item{Key: string(key[:]), Estimate: e.v, Lower: e.v})
	}
	return dst
}

// AppendBinary appends the encoding: 'U' 0x01 k {gap count}×k — k non-zero keys ascending,
// each as the gap after the previous key (from −1), unsigned varints.
func (c *Counts16) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, tagCounts16, encVersion1)
	k := 0
	for _, p := range c.pages {
		if p != nil {
			for _, v := range p {
				if v != 0 {
					k++
				}
			}
		}
	}
	dst = binary.AppendUvarint(dst, uint64(k))
	prev := -1
	for i, p := range c.pages {
		if p == nil {
			continue
		}
		for j, v := range p {
			if v != 0 {
				key := i<<8 | j
				dst = binary.AppendUvarint(dst, uint64(key-prev))
				dst = binary.AppendUvarint(dst, v)
				prev = key
			}
		}
	}
	return dst, nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (c *Counts16) MarshalBinary() ([]byte, error) { return c.AppendBinary(nil) }

// UnmarshalBinary implements encoding.BinaryUnmarshaler; on error c is unchanged.
func (c *Counts16) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(tagCounts16, "counts16")
	k := d.uvarint()
	if d.err == nil && k > 1<<16 {
		d.fail("counts16: %d keys", k)
	}
	var out Counts16
	prev := -1
	for i := uint64(0); d.err == nil && i < k; i++ {
		gap, v := d.uvarint(), d.uvarint()
		key := prev + int(min(gap, 1<<17))
		switch {
		case d.err != nil:
		case gap == 0 || key > 0xffff:
			d.fail("counts16: key gap %d after %d", gap, prev)
		case v == 0:
			d.fail("counts16: zero count for key %d", key)
		default:
			out.Add(uint16(key), v)
			prev = key
		}
	}
	if err := d.finish(); err != nil {
		return err
	}
	*c = out
	return nil
}
