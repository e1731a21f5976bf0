package sketch

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/axiomhq/hyperloglog"
)

const (
	// CardinalityPrecision is the HyperLogLog precision p of the dense
	// phase: m = 2^p = 16384 one-byte registers (16 KiB).
	CardinalityPrecision = 14

	// CardinalityStdError is the documented relative standard error of the
	// dense phase: 1.04/sqrt(2^14).
	CardinalityStdError = 0.008125

	// CardinalityExactLimit is the number of distinct hashes a Cardinality
	// counts exactly (in a set of 2048 8-byte slots, 16 KiB) before it
	// switches to HyperLogLog registers.
	CardinalityExactLimit = 1536

	cardSetMaxSlots = 2048
	cardSetMinSlots = 16
)

// Cardinality counts distinct keys: exactly (a set of 64-bit hashes) up to
// CardinalityExactLimit distinct hashes, then with a dense HyperLogLog of
// precision 14 (axiomhq/hyperloglog, LogLog-Beta estimator, standard error
// 0.81 %).
//
// The state is a function of the set of inserted hashes alone: the exact
// set while it holds at most CardinalityExactLimit hashes, otherwise the
// registers, which are the maximum over all hashes. So the estimate is
// identical however a stream was split across sketches and in whatever
// order they were merged.
//
// The zero value is an empty sketch. Inserting a known key never
// allocates; new keys allocate only while the exact set grows and once for
// the registers, and Reset keeps both for the next bucket.
type Cardinality struct {
	set     []uint64 // open addressing on the hash; 0 marks an empty slot
	n       int      // hashes in set
	hasZero bool     // the hash 0, which cannot be stored in set
	dense   bool     // the registers hold the state; set is unused
	hll     *hyperloglog.Sketch
}

// Insert adds the key b. An empty key is ignored, as the reference ignores
// updates with an empty string.
func (c *Cardinality) Insert(b []byte) {
	if len(b) == 0 {
		return
	}
	c.InsertHash(Hash(b))
}

// InsertHash adds a key by its 64-bit hash (Hash or HashUint64, or another
// well-mixed hash used consistently by every sketch that will be merged).
func (c *Cardinality) InsertHash(h uint64) {
	if c.dense {
		c.hll.InsertHash(h)
		return
	}
	if h == 0 {
		if !c.hasZero {
			c.hasZero = true
			c.grown()
		}
		return
	}
	if c.set == nil {
		c.set = make([]uint64, cardSetMinSlots)
	}
	mask := uint64(len(c.set) - 1)
	i := h & mask
	for {
		switch c.set[i] {
		case h:
			return
		case 0:
			c.set[i] = h
			c.n++
			c.grown()
			return
		}
		i = (i + 1) & mask
	}
}

// grown keeps the set below 3/4 load, or switches to registers once it
// holds more than CardinalityExactLimit hashes.
func (c *Cardinality) grown() {
	switch total := c.exactCount(); {
	case total > CardinalityExactLimit:
		c.toDense()
	case c.n*4 > len(c.set)*3:
		old := c.set
		c.set = make([]uint64, min(len(old)*2, cardSetMaxSlots))
		mask := uint64(len(c.set) - 1)
		for _, h := range old {
			if h == 0 {
				continue
			}
			i := h & mask
			for c.set[i] != 0 {
				i = (i + 1) & mask
			}
			c.set[i] = h
		}
	}
}

func (c *Cardinality) exactCount() int {
	if c.hasZero {
		return c.n + 1
	}
	return c.n
}

func (c *Cardinality) toDense() {
	if c.hll == nil {
		c.hll = hyperloglog.NewNoSparse()
	} else {
		c.hll.Reset() // a dense sketch: clears the registers in place
	}
	for _, h := range c.set {
		if h != 0 {
			c.hll.InsertHash(h)
		}
	}
	if c.hasZero {
		c.hll.InsertHash(0)
	}
	c.dense = true
	clear(c.set)
	c.n, c.hasZero = 0, false
}

// Estimate returns the number of distinct keys: exact up to
// CardinalityExactLimit, estimated beyond. It does not modify c.
func (c *Cardinality) Estimate() uint64 {
	if c.dense {
		return c.hll.Estimate() // dense: computed from the registers only
	}
	return uint64(c.exactCount())
}

// Merge adds every key of other to c. other is not modified.
func (c *Cardinality) Merge(other *Cardinality) error {
	if other == nil || other == c {
		return nil
	}
	if other.dense {
		if !c.dense {
			c.toDense()
		}
		if err := c.hll.Merge(other.hll); err != nil {
			return fmt.Errorf("sketch: cardinality merge: %w", err)
		}
		return nil
	}
	for _, h := range other.set {
		if h != 0 {
			c.InsertHash(h)
		}
	}
	if other.hasZero {
		c.InsertHash(0)
	}
	return nil
}

// Reset empties c, keeping its memory.
func (c *Cardinality) Reset() {
	clear(c.set)
	c.n, c.hasZero, c.dense = 0, false, false
}

// Encoding modes of a Cardinality.
const (
	cardModeEmpty = 0
	cardModeExact = 1
	cardModeDense = 2
)

// MarshalBinary encodes c; see AppendBinary.
func (c *Cardinality) MarshalBinary() ([]byte, error) { return c.AppendBinary(nil) }

// AppendBinary appends the encoding of c to dst:
//
//	'C' 0x01 0x00                     empty
//	'C' 0x01 0x01 k h1 … hk           exact: k ≤ 1536 distinct hashes,
//	                                  ascending, 8 bytes little-endian each
//	'C' 0x01 0x02 hll                 dense: the axiomhq/hyperloglog binary
//	                                  form (version 2, p = 14, dense) to the end
func (c *Cardinality) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, tagCardinality, encVersion1)
	if c.dense {
		dst = append(dst, cardModeDense)
		return c.hll.AppendBinary(dst)
	}
	k := c.exactCount()
	if k == 0 {
		return append(dst, cardModeEmpty), nil
	}
	hs := make([]uint64, 0, k)
	if c.hasZero {
		hs = append(hs, 0)
	}
	for _, h := range c.set {
		if h != 0 {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	dst = append(dst, cardModeExact)
	dst = binary.AppendUvarint(dst, uint64(k))
	for _, h := range hs {
		dst = binary.LittleEndian.AppendUint64(dst, h)
	}
	return dst, nil
}

// UnmarshalBinary replaces c with the decoded sketch. Malformed input
// returns an error wrapping ErrInvalidEncoding and leaves c unchanged.
func (c *Cardinality) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	d.header(tagCardinality, "cardinality")
	mode := d.byte()
	if d.err != nil {
		return d.err
	}
	var tmp Cardinality
	switch mode {
	case cardModeEmpty:
		if err := d.finish(); err != nil {
			return err
		}
	case cardModeExact:
		k := d.uvarint()
		if d.err != nil {
			return d.err
		}
		if k == 0 || k > CardinalityExactLimit {
			return invalidf("cardinality: %d exact hashes", k)
		}
		raw := d.bytes(8 * k)
		if err := d.finish(); err != nil {
			return err
		}
		for i := uint64(0); i < k; i++ {
			h := binary.LittleEndian.Uint64(raw[8*i:])
			if i > 0 && h <= binary.LittleEndian.Uint64(raw[8*(i-1):]) {
				return invalidf("cardinality: hashes not strictly ascending")
			}
			tmp.InsertHash(h)
		}
	case cardModeDense:
		rest := d.b
		// Only the form this package writes: version 2, precision 14,
		// dense. Other precisions could not be merged, and a sparse payload
		// would break the state invariant.
		if len(rest) < 4 || rest[0] != 2 || rest[1] != CardinalityPrecision || rest[3] != 0 {
			return invalidf("cardinality: not a dense precision-%d HyperLogLog", CardinalityPrecision)
		}
		hll := hyperloglog.NewNoSparse()
		if err := hll.UnmarshalBinary(rest); err != nil {
			return fmt.Errorf("sketch: cardinality: %w: %w", ErrInvalidEncoding, err)
		}
		tmp.hll, tmp.dense = hll, true
	default:
		return invalidf("cardinality: mode %d", mode)
	}
	// Keep c's buffers when it has them (decoding into a reused bucket).
	c.Reset()
	return c.Merge(&tmp)
}
