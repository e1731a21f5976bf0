package handler

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// blob is a stand-in sketch: n bytes of a counting pattern, or an encoding error.
type blob struct {
	n    int
	fail bool
	got  []byte
}

var errBlob = errors.New("blob failed")

func (b *blob) AppendBinary(dst []byte) ([]byte, error) {
	if b.fail {
		return nil, errBlob
	}
	for i := range b.n {
		dst = append(dst, byte(i*7))
	}
	return dst, nil
}

func (b *blob) UnmarshalBinary(data []byte) error {
	if len(data) > 0 && data[0] == 0xee {
		return errBlob
	}
	b.got = append([]byte(nil), data...)
	return nil
}

// TestAppendSketch checks the length prefix against encoding/binary around every varint size
// boundary (the prefix is inserted after the sketch was written in place).
func TestAppendSketch(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 300, 16383, 16384, 70000, 2097151, 2097152} {
		for _, capHint := range []int{0, n + 16} {
			dst := make([]byte, 3, 3+capHint)
			copy(dst, "abc")
			out, err := AppendSketch(dst, &blob{n: n})
			if err != nil {
				t.Fatal(err)
			}
			payload, _ := (&blob{n: n}).AppendBinary(nil)
			want := append(binary.AppendUvarint([]byte("abc"), uint64(n)), payload...)
			if !bytes.Equal(out, want) {
				t.Fatalf("n = %d: prefix or payload wrong", n)
			}
			d := NewBucketDecoder(append([]byte{'X', 1}, out[3:]...), "test", 'X', 1)
			var b blob
			d.Sketch(&b)
			if err := d.Finish(); err != nil || !bytes.Equal(b.got, payload) {
				t.Fatalf("n = %d: read back %d bytes, %v", n, len(b.got), err)
			}
		}
	}
	if out, err := AppendSketch([]byte("abc"), &blob{fail: true}); !errors.Is(err, errBlob) || string(out) != "abc" {
		t.Errorf("failing sketch: %q, %v", out, err)
	}
}

func TestBucketDecoder(t *testing.T) {
	rec := AppendBucketHeader(nil, 'X', 3)
	rec = AppendCounter(rec, 0)
	rec = AppendCounter(rec, 1<<63)
	rec, _ = AppendSketch(rec, &blob{n: 5})
	d := NewBucketDecoder(rec, "test", 'X', 3)
	var b blob
	if c0, c1 := d.Counter(), d.Counter(); c0 != 0 || c1 != 1<<63 {
		t.Errorf("counters %d %d", c0, c1)
	}
	d.Sketch(&b)
	if err := d.Finish(); err != nil || len(b.got) != 5 {
		t.Fatalf("%v, %d bytes", err, len(b.got))
	}

	read := func(data []byte) error {
		d := NewBucketDecoder(data, "test", 'X', 3)
		d.Counter()
		d.Counter()
		d.Sketch(&blob{})
		return d.Finish()
	}
	for i := range len(rec) {
		if err := read(rec[:i]); !errors.Is(err, ErrBucketEncoding) {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	bad := append(bytes.Clone(rec[:len(rec)-5]), 0xee, 0, 0, 0, 0)
	for _, tc := range []struct {
		name string
		data []byte
		want []error
	}{
		{"wrong tag", append([]byte{'Y'}, rec[1:]...), []error{ErrBucketEncoding}},
		{"newer version", append([]byte{'X', 4}, rec[2:]...), []error{ErrBucketVersion}},
		{"trailing", append(bytes.Clone(rec), 0), []error{ErrBucketEncoding}},
		{"non-minimal", append([]byte{'X', 3, 0x80, 0x00}, rec[3:]...), []error{ErrBucketEncoding}},
		{"length beyond the input", append(bytes.Clone(rec[:len(rec)-6]), 0xff, 0xff, 0xff, 0xff, 0x0f), []error{ErrBucketEncoding}},
		{"sketch error", bad, []error{ErrBucketEncoding, errBlob}},
	} {
		err := read(tc.data)
		for _, w := range tc.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: %v, want %v", tc.name, err, w)
			}
		}
	}
}
