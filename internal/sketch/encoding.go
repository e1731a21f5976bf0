package sketch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Every encoding starts with a two-byte envelope: a type tag, so that bytes
// of one sketch type are never decoded as another, and a format version, so
// that the layout can change without breaking stored or in-flight data.
const (
	tagCardinality = 'C'
	tagTopN        = 'T'
	tagQuantiles   = 'Q'
	tagHistogram   = 'H'
	tagRate        = 'R'
	tagCounts16    = 'U'

	encVersion1 = 1
)

// ErrInvalidEncoding is wrapped by every UnmarshalBinary error caused by
// malformed, truncated or inconsistent input.
var ErrInvalidEncoding = errors.New("sketch: invalid encoding")

// ErrUnsupportedVersion is wrapped by UnmarshalBinary when the envelope
// names a format version this build does not know.
var ErrUnsupportedVersion = errors.New("sketch: unsupported encoding version")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("sketch: %s: %w", fmt.Sprintf(format, args...), ErrInvalidEncoding)
}

// decoder reads the package's binary layouts. The first error sticks and
// every later read returns a zero value, so decode functions can read a
// whole record and check the error once; nothing here can panic on short or
// hostile input.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = invalidf(format, args...)
	}
}

func (d *decoder) header(tag byte, name string) {
	if len(d.b) < 2 {
		d.fail("%s: %d bytes, need at least 2", name, len(d.b))
		return
	}
	if d.b[0] != tag {
		d.fail("%s: type tag %#02x, want %#02x", name, d.b[0], tag)
		return
	}
	if d.b[1] != encVersion1 {
		d.err = fmt.Errorf("sketch: %s: version %d: %w", name, d.b[1], ErrUnsupportedVersion)
		return
	}
	d.b = d.b[2:]
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		// Non-minimal forms are rejected so that an accepted encoding is
		// the one this package writes (equal sketches, equal bytes).
		d.fail("bad, non-minimal or truncated varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || n != uvarintLen(uint64(v<<1)^uint64(v>>63)) {
		d.fail("bad, non-minimal or truncated varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) float64() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// bytes returns the next n bytes without copying them.
func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// finish reports the sticky error, or an error when bytes are left over:
// an encoding is a whole buffer, trailing garbage means it is not ours.
func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return invalidf("%d trailing bytes", len(d.b))
	}
	return nil
}

func appendFloat64(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// satAdd adds without wrapping: counters saturate at the maximum instead of
// silently restarting from zero on absurd (attacker-supplied) weights.
func satAdd(a, b uint64) uint64 {
	s := a + b
	if s < a {
		return math.MaxUint64
	}
	return s
}
