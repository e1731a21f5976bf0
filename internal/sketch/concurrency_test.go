package sketch

import (
	"bytes"
	"strconv"
	"sync"
	"testing"
)

// TestConcurrentReaders: a closed bucket is read and merged by several
// goroutines at once (run with -race); reading must not modify a sketch.
func TestConcurrentReaders(t *testing.T) {
	var card Cardinality
	topn := NewTopN(100)
	var q, small Quantiles
	var h Histogram
	var rate Rate
	for i := range 5000 {
		k := []byte(strconv.Itoa(i % 700))
		card.Insert([]byte(strconv.Itoa(i))) // past the exact limit: dense
		topn.Update(k, Hash(k), 1)
		q.Add(float64(i))
		h.Add(uint64(i))
		rate.Add(int64(i/37), 1)
	}
	small.Add(1)
	small.Add(2)
	snapshot := func() [][]byte {
		var out [][]byte
		for _, m := range []interface{ MarshalBinary() ([]byte, error) }{&card, topn, &q, &small, &h, &rate} {
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	before := snapshot()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var c2 Cardinality
			_ = c2.Merge(&card)
			_ = card.Estimate()
			t2 := NewTopN(50)
			t2.Merge(topn)
			_ = topn.Items(10, nil)
			var q2 Quantiles
			q2.Merge(&q)
			q2.Merge(&small)
			_ = q.Quantiles([]float64{0.5, 0.99}, nil)
			_ = small.Quantile(0.5)
			var h2 Histogram
			h2.Merge(&h)
			_ = h.Buckets(nil)
			var r2 Rate
			r2.Merge(&rate)
			_ = rate.Quantiles([]float64{0.5}, nil)
			_ = rate.Live()
			_ = snapshot()
		})
	}
	wg.Wait()
	after := snapshot()
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Errorf("sketch %d modified by readers", i)
		}
	}
}
