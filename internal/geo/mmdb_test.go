package geo

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
)

// A minimal MaxMind DB writer for tests, written from the format specification
// (https://maxmind.github.io/MaxMind-DB/), so records with odd field types can be built.

// Typed values for the encoder (Go's own types are ambiguous: int could be any MMDB integer).
type (
	mUint16 uint16
	mUint32 uint32
	mUint64 uint64
	mInt32  int32
	mFloat  float32
	mDouble float64
	mBool   bool
	mBytes  []byte
	mArr    []any
	// mMap keeps key order (the encoder writes keys in the given order).
	mMap []mKV
	mKV  struct {
		k string
		v any
	}
)

const (
	tPointer = 1
	tString  = 2
	tDouble  = 3
	tBytes   = 4
	tUint16  = 5
	tUint32  = 6
	tMap     = 7
	tInt32   = 8
	tUint64  = 9
	tArray   = 11
	tBool    = 14
	tFloat   = 15
)

func ctrl(b []byte, typ int, size int) []byte {
	var sizeBits byte
	var extra []byte
	switch {
	case size < 29:
		sizeBits = byte(size)
	case size < 29+256:
		sizeBits, extra = 29, []byte{byte(size - 29)}
	case size < 285+65536:
		s := size - 285
		sizeBits, extra = 30, []byte{byte(s >> 8), byte(s)}
	default:
		s := size - 65821
		sizeBits, extra = 31, []byte{byte(s >> 16), byte(s >> 8), byte(s)}
	}
	if typ <= 7 {
		b = append(b, byte(typ<<5)|sizeBits)
	} else {
		b = append(b, sizeBits, byte(typ-7))
	}
	return append(b, extra...)
}

func trimmedBE(v uint64, n int) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	out := buf[8-n:]
	for len(out) > 0 && out[0] == 0 {
		out = out[1:]
	}
	return slices.Clone(out)
}

func encode(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return append(ctrl(b, tString, len(v)), v...)
	case mBytes:
		return append(ctrl(b, tBytes, len(v)), v...)
	case mDouble:
		b = ctrl(b, tDouble, 8)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(float64(v)))
	case mFloat:
		b = ctrl(b, tFloat, 4)
		return binary.BigEndian.AppendUint32(b, math.Float32bits(float32(v)))
	case mUint16:
		p := trimmedBE(uint64(v), 2)
		return append(ctrl(b, tUint16, len(p)), p...)
	case mUint32:
		p := trimmedBE(uint64(v), 4)
		return append(ctrl(b, tUint32, len(p)), p...)
	case mUint64:
		p := trimmedBE(uint64(v), 8)
		return append(ctrl(b, tUint64, len(p)), p...)
	case mInt32:
		p := trimmedBE(uint64(uint32(v)), 4)
		return append(ctrl(b, tInt32, len(p)), p...)
	case mBool:
		n := 0
		if v {
			n = 1
		}
		return ctrl(b, tBool, n)
	case mArr:
		b = ctrl(b, tArray, len(v))
		for _, e := range v {
			b = encode(b, e)
		}
		return b
	case mMap:
		b = ctrl(b, tMap, len(v))
		for _, kv := range v {
			b = encode(b, kv.k)
			b = encode(b, kv.v)
		}
		return b
	default:
		panic(fmt.Sprintf("encode: unsupported %T", v))
	}
}

// buildDB makes an IPv4 database with one node: 0.0.0.0/1 is empty, 128.0.0.0/1 maps to the
// record encoded as data (raw bytes of the data section, starting with the record).
func buildDB(data []byte) []byte {
	const nodeCount = 1
	var db []byte
	// Record size 24: left and right records of node 0.
	put24 := func(v uint32) { db = append(db, byte(v>>16), byte(v>>8), byte(v)) }
	put24(nodeCount)          // == node_count: no data
	put24(nodeCount + 16 + 0) // data section offset 0
	db = append(db, make([]byte, 16)...)
	db = append(db, data...)
	db = append(db, "\xab\xcd\xefMaxMind.com"...)
	meta := mMap{
		{"binary_format_major_version", mUint16(2)},
		{"binary_format_minor_version", mUint16(0)},
		{"build_epoch", mUint64(1700000000)},
		{"database_type", "Test"},
		{"description", mMap{{"en", "test"}}},
		{"ip_version", mUint16(4)},
		{"languages", mArr{"en"}},
		{"node_count", mUint32(nodeCount)},
		{"record_size", mUint16(24)},
	}
	return encode(db, meta)
}

// dbFromRecord opens a synthetic database holding rec for 128.0.0.0/1.
func dbFromRecord(t testing.TB, rec any) *DB {
	t.Helper()
	return dbFromData(t, encode(nil, rec))
}

func dbFromData(t testing.TB, data []byte) *DB {
	t.Helper()
	r, err := maxminddb.OpenBytes(buildDB(data))
	if err != nil {
		t.Fatalf("OpenBytes: %v", err)
	}
	return &DB{r: r, path: "synthetic"}
}

// The writer itself is checked against the library's generic decoder.
func TestSyntheticWriter(t *testing.T) {
	db := dbFromRecord(t, mMap{{"a", mUint16(300)}, {"b", mArr{"x", mDouble(1.5)}}, {"c", mInt32(-7)}})
	var v map[string]any
	if err := db.r.Lookup(addr4(200, 1, 1, 1)).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(v); got != "map[a:300 b:[x 1.5] c:-7]" {
		t.Errorf("decoded %s", got)
	}
	if db.r.Lookup(addr4(1, 1, 1, 1)).Found() {
		t.Error("0.0.0.0/1 should be empty")
	}
}
