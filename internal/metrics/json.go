package metrics

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// JSON is a Sink that builds the handler's JSON object: each Desc.Name path becomes nested
// objects. encoding/json sorts map keys bytewise, which is the reference's key order.
type JSON struct {
	Root map[string]any
	// ErrorBounds adds, beside each top-N list, "<key>_max_error": how much any estimate of the
	// list may exceed the true count (the aggregator's merged views; off for the reference's
	// schema).
	ErrorBounds bool
	buf         []float64
}

// NewJSON returns an empty JSON sink.
func NewJSON() *JSON { return &JSON{Root: map[string]any{}} }

// Set places v at path below the root, creating the intermediate objects.
func (j *JSON) Set(path []string, v any) {
	m := j.Root
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

func (j *JSON) Counter(d *Desc, v uint64)     { j.Set(d.Name, v) }
func (j *JSON) Cardinality(d *Desc, v uint64) { j.Set(d.Name, v) }

func (j *JSON) TopN(d *Desc, _ string, items []TopItem) {
	rows := make([]any, 0, len(items))
	for _, it := range items {
		row := map[string]any{"name": it.Name, "estimate": it.Estimate}
		if it.Lat != "" && it.Lon != "" {
			row["lat"] = it.Lat
			row["lon"] = it.Lon
		}
		rows = append(rows, row)
	}
	j.Set(d.Name, rows)
	if j.ErrorBounds {
		var maxErr uint64
		if len(items) > 0 {
			maxErr = items[0].MaxError
		}
		path := append(d.Name[:len(d.Name)-1:len(d.Name)-1], d.Name[len(d.Name)-1]+"_max_error")
		j.Set(path, maxErr)
	}
}

func (j *JSON) quantileObject(vals []float64, isFloat bool) map[string]any {
	j.buf = vals
	obj := make(map[string]any, len(QuantileKeys)+1)
	for i, k := range QuantileKeys {
		obj[k] = quantileValue(j.buf[i], isFloat)
	}
	return obj
}

// quantileValue keeps integer-typed metrics integers (the reference's Quantile<uint64>) and
// gives real-valued ones (ratios) as floats.
func quantileValue(v float64, isFloat bool) any {
	if isFloat {
		return v
	}
	if v < 0 || math.IsNaN(v) {
		return uint64(0)
	}
	return uint64(math.Round(v))
}

func (j *JSON) Quantiles(d *Desc, q *sketch.Quantiles, isFloat bool) {
	if q == nil || q.Count() == 0 {
		return
	}
	j.Set(d.Name, j.quantileObject(q.Quantiles(QuantileFractions, j.buf[:0]), isFloat))
}

func (j *JSON) Rate(d *Desc, r *sketch.Rate, showLive bool) {
	var obj map[string]any
	if r.Count() > 0 {
		obj = j.quantileObject(r.Quantiles(QuantileFractions, j.buf[:0]), false)
	}
	if showLive {
		if obj == nil {
			obj = map[string]any{}
		}
		obj["live"] = r.Live()
	}
	if obj != nil {
		j.Set(d.Name, obj)
	}
}

func (j *JSON) Histogram(d *Desc, h *sketch.Histogram) {
	if h == nil || h.Count() == 0 {
		return
	}
	buckets := map[string]any{}
	for _, b := range h.Buckets(nil) {
		buckets[b.Label()] = jsonDouble(b.Cumulative)
	}
	j.Set(d.Name, map[string]any{"buckets": buckets})
}

// jsonDouble prints a whole number the way the reference's JSON printed its double histogram
// counts ("4.0").
func jsonDouble(v uint64) json.Number {
	return json.Number(strconv.FormatUint(v, 10) + ".0")
}
