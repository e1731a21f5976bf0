package handler

// Binary form of a handler's bucket, so that buckets travel between agents (sketch export,
// aggregator). Every handler's bucket is one record:
//
//	tag version counter… sketch…
//
// tag is one byte naming the handler's layout ('N' net, 'D' dns, 'P' pcap, 'I'
// input_resources) and version the layout's version (1); counters are unsigned varints and
// every sketch is an unsigned varint length followed by the sketch's own versioned encoding
// (internal/sketch AppendBinary). docs/sketch-format.md documents each layout byte by byte.
//
// The helpers below are shared by the handlers' codecs. Decoding never trusts a length: a
// length is checked against the bytes left before it is used, nothing is allocated ahead from
// a length, and the sketch decoders allocate at most in proportion to their input (plus small
// fixed tables), so memory stays bounded whatever the input says.

import (
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// BucketCodec: buckets that travel between agents (sketch export, aggregator). Every Spec of
// this module implements it.
type BucketCodec interface {
	// AppendBucket merges the selection of the instances (as Render does: same MergeRings
	// path, same period) and appends the merged bucket's binary form to dst.
	AppendBucket(dst []byte, instances []Handler, sel metrics.Selection, nowNs int64) ([]byte, metrics.RenderedPeriod, error)
	// MergeBucket decodes data (from AppendBucket of a Spec of the same schema) and merges
	// it into the instance's live bucket (bucket 0). inst was built by this Spec. On error
	// the instance is unchanged.
	MergeBucket(inst Handler, data []byte) error
}

// ErrBucketEncoding is wrapped by every bucket decoding error caused by malformed, truncated,
// oversized or inconsistent input (a sketch's own error, wrapping sketch.ErrInvalidEncoding or
// sketch.ErrUnsupportedVersion, is wrapped as well).
var ErrBucketEncoding = errors.New("handler: invalid bucket encoding")

// ErrBucketVersion is wrapped when a bucket's tag is right but its layout version is one this
// build does not know (a newer agent): the caller can tell "upgrade me" from garbage.
var ErrBucketVersion = errors.New("handler: unsupported bucket encoding version")

// MaxBucketSize is the largest bucket encoding a decoder accepts. The largest legitimate bucket
// is a dns bucket whose 13 top-N sketches are full (6144 keys of at most 1024 bytes each),
// about 82 MB; anything longer is not ours.
const MaxBucketSize = 128 << 20

// AppendBucketHeader appends a bucket record's tag and version.
func AppendBucketHeader(dst []byte, tag, version byte) []byte {
	return append(dst, tag, version)
}

// AppendCounter appends a counter as an unsigned varint.
func AppendCounter(dst []byte, v uint64) []byte {
	return binary.AppendUvarint(dst, v)
}

// AppendSketch appends a sketch as its encoding's length (unsigned varint) followed by the
// encoding. The sketch is encoded in place after dst and the length inserted before it, so no
// scratch buffer is needed.
func AppendSketch(dst []byte, s encoding.BinaryAppender) ([]byte, error) {
	start := len(dst)
	out, err := s.AppendBinary(dst)
	if err != nil {
		return dst, fmt.Errorf("handler: encoding %T: %w", s, err)
	}
	n := uint64(len(out) - start)
	k := uvarintLen(n)
	var pre [binary.MaxVarintLen64]byte
	binary.PutUvarint(pre[:], n)
	out = append(out, pre[:k]...) // grow by k; the bytes are overwritten below
	copy(out[start+k:], out[start:start+int(n)])
	copy(out[start:], pre[:k])
	return out, nil
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// BucketDecoder reads a bucket record. The first error sticks and every later read returns
// a zero value, so a decoder reads a whole record and checks Finish once; nothing here panics
// on short or hostile input.
type BucketDecoder struct {
	name string
	b    []byte
	err  error
	idx  int // fields read, for error messages
}

// NewBucketDecoder starts reading data, a record of the named layout (for messages), which
// must start with tag and version.
func NewBucketDecoder(data []byte, name string, tag, version byte) *BucketDecoder {
	d := &BucketDecoder{name: name, b: data}
	switch {
	case len(data) > MaxBucketSize:
		d.fail("%d bytes, more than the %d a bucket can take", len(data), MaxBucketSize)
	case len(data) < 2:
		d.fail("%d bytes, need at least 2", len(data))
	case data[0] != tag:
		d.fail("tag %#02x, want %#02x", data[0], tag)
	case data[1] != version:
		d.err = fmt.Errorf("handler: %s bucket: version %d (this build reads %d): %w", name, data[1], version, ErrBucketVersion)
	default:
		d.b = data[2:]
	}
	return d
}

func (d *BucketDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("handler: %s bucket: %s: %w", d.name, fmt.Sprintf(format, args...), ErrBucketEncoding)
	}
}

// Counter reads an unsigned varint. Non-minimal forms are rejected, so an accepted record is
// the one the encoder writes.
func (d *BucketDecoder) Counter() uint64 {
	if d.err != nil {
		return 0
	}
	d.idx++
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		d.fail("field %d: bad, non-minimal or truncated varint", d.idx)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Sketch reads a length-prefixed sketch into s (a fresh sketch: decoders replace it).
func (d *BucketDecoder) Sketch(s encoding.BinaryUnmarshaler) {
	n := d.Counter()
	if d.err != nil {
		return
	}
	if n > uint64(len(d.b)) {
		d.fail("field %d: sketch of %d bytes, %d left", d.idx, n, len(d.b))
		return
	}
	if err := s.UnmarshalBinary(d.b[:n]); err != nil {
		d.err = fmt.Errorf("handler: %s bucket: field %d (%T): %w: %w", d.name, d.idx, s, ErrBucketEncoding, err)
		return
	}
	d.b = d.b[n:]
}

// Finish reports the sticky error, or an error when bytes are left over: a record is a whole
// buffer, and trailing bytes mean it is not one this version wrote.
func (d *BucketDecoder) Finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("handler: %s bucket: %d trailing bytes: %w", d.name, len(d.b), ErrBucketEncoding)
	}
	return nil
}

// Err is the sticky error so far.
func (d *BucketDecoder) Err() error { return d.err }

// Sketch is one sketch field of a bucket, in its binary form.
type Sketch interface {
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// Fields are a bucket's counters and sketches in format order: the whole layout of a record
// after its tag and version. Reordering them changes the format (bump the version).
type Fields struct {
	Counters []*uint64
	Sketches []Sketch
}

// Layout names a handler's bucket record: Name for messages (the schema), its tag and version.
type Layout struct {
	Name         string
	Tag, Version byte
}

// Append appends the record of f.
func (l Layout) Append(dst []byte, f Fields) ([]byte, error) {
	dst = AppendBucketHeader(dst, l.Tag, l.Version)
	for _, c := range f.Counters {
		dst = AppendCounter(dst, *c)
	}
	var err error
	for _, s := range f.Sketches {
		if dst, err = AppendSketch(dst, s); err != nil {
			return dst, fmt.Errorf("%s: %w", l.Name, err)
		}
	}
	return dst, nil
}

// Decode reads a record into f's fields (those of a fresh bucket: on error they hold partial
// data, so decode into a temporary and keep it only on success).
func (l Layout) Decode(data []byte, f Fields) error {
	d := NewBucketDecoder(data, l.Name, l.Tag, l.Version)
	for _, c := range f.Counters {
		*c = d.Counter()
	}
	for _, s := range f.Sketches {
		d.Sketch(s)
	}
	return d.Finish()
}

// BinaryBucket is a bucket that lists its Fields.
type BinaryBucket[B any] interface {
	metrics.Bucket[B]
	Fields() Fields
}

// AppendMerged implements BucketCodec.AppendBucket for a handler whose instances are I and
// whose rings hold B: the same merge as Render (MergeInstances), then the record.
func AppendMerged[I Handler, B any, PB BinaryBucket[B]](dst []byte, l Layout, instances []Handler, ring func(I) *metrics.Ring[B, PB],
	sel metrics.Selection, recorded bool, nowNs int64) ([]byte, metrics.RenderedPeriod, error) {
	b, rp, err := MergeInstances(instances, ring, sel, recorded, nowNs)
	if err != nil {
		return dst, rp, err
	}
	dst, err = l.Append(dst, b.Fields())
	return dst, rp, err
}

// MergeEncoded implements BucketCodec.MergeBucket: data is decoded into a fresh bucket, merged
// into the instance's live bucket only when the whole record decoded.
func MergeEncoded[I Handler, B any, PB BinaryBucket[B]](l Layout, inst Handler, data []byte, ring func(I) *metrics.Ring[B, PB]) error {
	h, ok := inst.(I)
	if !ok {
		return fmt.Errorf("%s: merge bucket: handler instance %T is not a %s instance", l.Name, inst, l.Name)
	}
	b := PB(new(B))
	if err := l.Decode(data, b.Fields()); err != nil {
		return err
	}
	ring(h).Live().Merge((*B)(b))
	return nil
}
