// Package metrics holds what every stream handler shares: the description of a metric (its
// JSON name path and Prometheus name), the sinks that render a bucket (JSON today, Prometheus
// and OTLP later — one description serves all), the ring of time buckets with its period
// bookkeeping, window configuration, metric groups and the deep-sampling generator.
//
// A handler's bucket renders itself by calling the Sink methods in its Prometheus emission order;
// the JSON sink nests the name paths into objects (keys sorted on output, as the reference's
// std::map did), so the same Render code yields both formats.
package metrics

import (
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// Desc describes one metric: Schema is the Prometheus prefix (usually the handler's schema key,
// but net v1 puts its byte rates under "payload"), Name the JSON path below the handler object
// (joined with "_" after Schema it is the Prometheus name), Help the description.
type Desc struct {
	Schema string
	Name   []string
	Help   string
}

// TopItem is one rendered row of a top-N list.
type TopItem struct {
	Name     string
	Estimate uint64
	// Lat and Lon are set for geo tops (both or neither).
	Lat, Lon string
	// MaxError bounds how much Estimate can exceed the true count (the same for every item of
	// a list: the frequent-items sketch's error after purges and merges; 0 when exact).
	MaxError uint64
}

// Sink receives the metrics of a bucket. Label is the Prometheus label name of top-N items
// (for example "qname"); IsFloat says whether quantile values are real numbers (ratios) or
// integers (sizes, microseconds, counts).
type Sink interface {
	Counter(d *Desc, v uint64)
	Cardinality(d *Desc, v uint64)
	TopN(d *Desc, label string, items []TopItem)
	Quantiles(d *Desc, q *sketch.Quantiles, isFloat bool)
	// Rate renders per-second rate quantiles; live is the last completed second, shown when
	// showLive is true (a live, not recorded, bucket).
	Rate(d *Desc, r *sketch.Rate, showLive bool)
	Histogram(d *Desc, h *sketch.Histogram)
}

// Quantile fractions emitted everywhere (p50, p90, p95, p99).
var QuantileFractions = []float64{0.50, 0.90, 0.95, 0.99}

// QuantileKeys are the JSON keys of QuantileFractions; QuantileLabels their Prometheus labels.
var (
	QuantileKeys   = []string{"p50", "p90", "p95", "p99"}
	QuantileLabels = []string{"0.5", "0.9", "0.95", "0.99"}
)
