package sketch

import (
	"encoding/binary"
	"strconv"
	"testing"
)

func BenchmarkTopNUpdateKnown(b *testing.B) {
	topn := NewTopN(0)
	keys := make([][]byte, 1000)
	hashes := make([]uint64, len(keys))
	for i := range keys {
		keys[i] = []byte("qname-" + strconv.Itoa(i) + ".example.com")
		hashes[i] = Hash(keys[i])
		topn.Update(keys[i], hashes[i], 1)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % len(keys)
		topn.Update(keys[j], hashes[j], 1)
		i++
	}
}

// BenchmarkTopNUpdateFlood: every update is a new random key and the table
// is full (a random-subdomain attack); the hash is computed once per key as
// the caller would.
func BenchmarkTopNUpdateFlood(b *testing.B) {
	topn := NewTopN(0)
	key := []byte("xxxxxxxx.random.example.com")
	r := newRand(1)
	for range 20000 {
		binary.LittleEndian.PutUint64(key, r.Uint64())
		topn.Update(key, Hash(key), 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		binary.LittleEndian.PutUint64(key, r.Uint64())
		topn.Update(key, Hash(key), 1)
	}
}

func BenchmarkCardinalityInsert(b *testing.B) {
	b.Run("dense", func(b *testing.B) {
		var c Cardinality
		for i := range uint64(50000) {
			c.InsertHash(HashUint64(i))
		}
		b.ReportAllocs()
		key := []byte("xxxxxxxx.example.com")
		i := uint64(0)
		for b.Loop() {
			binary.LittleEndian.PutUint64(key, i)
			c.Insert(key)
			i++
		}
	})
	b.Run("exact_known", func(b *testing.B) {
		var c Cardinality
		keys := make([][]byte, 500)
		for i := range keys {
			keys[i] = []byte("qname-" + strconv.Itoa(i) + ".example.com")
			c.Insert(keys[i])
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Insert(keys[i%len(keys)])
			i++
		}
	})
}

func BenchmarkQuantilesAdd(b *testing.B) {
	var q Quantiles
	r := newRand(3)
	vals := make([]float64, 4096)
	for i := range vals {
		vals[i] = r.ExpFloat64() * 1000
		q.Add(vals[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q.Add(vals[i&4095])
		i++
	}
}

func BenchmarkRateAdd(b *testing.B) {
	var r Rate
	b.ReportAllocs()
	sec := int64(1_700_000_000)
	i := 0
	for b.Loop() {
		// About 1000 events per second, bucket rotation every minute.
		if i%1000 == 0 {
			sec++
			if sec%60 == 0 {
				r.Reset()
			}
		}
		r.Add(sec, 1)
		i++
	}
}

func BenchmarkHistogramAdd(b *testing.B) {
	var h Histogram
	r := newRand(4)
	vals := make([]uint64, 4096)
	for i := range vals {
		vals[i] = uint64(r.ExpFloat64() * 5000)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Add(vals[i&4095])
		i++
	}
}
