// Package export pushes the agent's metrics to a central backend, for agents behind NAT or
// firewalls that nobody can scrape: OTLP/HTTP (protobuf) and Prometheus remote write 1.0.
//
// What is pushed: every closed bucket, once. A Collector polls a Source (the agent's
// ExportClosed: each handler's last closed bucket, rendered through the same code as
// /metrics) every DefaultPoll, and feeds each bucket it has not seen — identified per unit
// (policy, handler, tap) by its period start — into an Accumulator, oldest first, catching up
// on several buckets when more than one closed between two polls (a capture file read at full
// speed). The Accumulator turns the per-bucket values into what a TSDB can aggregate:
//
//   - counters become running totals since the agent started (cumulative, monotonic), named
//     <metric>_total — always appended, so dns_wire_packets_total (the per-minute gauge of
//     /metrics) is pushed as dns_wire_packets_total_total and no pushed name is a /metrics name;
//   - quantile sketches become cumulative exponential histograms, <metric>_histogram, at scale
//     5 (buckets 2.2 % wide, the width of the sketch's own 1 % bins; downscaled past 320
//     buckets), merged bucket after bucket — aggregatable across time and agents, unlike
//     per-minute quantiles;
//   - pktvisor histograms become cumulative explicit histograms, <metric>_cumulative;
//   - cardinalities, top-N items and per-second rate quantiles stay gauges of the last closed
//     bucket, with the /metrics names; a gauge series its unit's newest bucket did not
//     refresh is dropped (a qname seen once does not live on);
//   - resources_policy_count and resources_handler_count, levels rendered as counters, stay
//     gauges.
//
// Series are bounded (DefaultMaxSeries, new ones beyond are dropped and counted) and units
// of removed policies are forgotten. Cumulative series restart from zero when a unit comes
// back, which a TSDB reads as a counter reset.
//
// Exporters push a snapshot of the accumulator: OTLP every interval (the reference's
// --otel-interval, which it parsed and ignored, is applied), remote write after every
// collection that added a bucket (or every interval). A push that fails on a network error,
// 5xx, 408 or 429 is retried with backoff (1 s doubling, 5 tries), each try encoding the
// latest state: a failing endpoint never queues payloads, and because everything is
// cumulative the next success carries all that was missed. Errors are logged at most once a
// minute per exporter; Pusher.WriteHealth gives pktvisord_export_* counters.
//
// Sample timestamps are the push's wall-clock time, not the buckets' event time: a replayed
// capture of last year would otherwise fall outside every retention, and a running total has
// no better time than now. The live bucket and the last, partial bucket of a capture file are
// never pushed (they are not closed); a policy with one period never closes a bucket.
//
// Dependencies, and why:
//
//   - go.opentelemetry.io/proto/otlp (metrics, common and resource packages only): the
//     official generated OTLP types, so the wire format is right by construction. The body is
//     marshalled as MetricsData, which is wire-identical to ExportMetricsServiceRequest
//     (field 1, repeated ResourceMetrics): importing the collector package would bring gRPC
//     and grpc-gateway into the build for a type of one field. It needs only
//     google.golang.org/protobuf, already a dependency.
//   - Remote write's prompb messages are five small messages: they are encoded with
//     google.golang.org/protobuf/encoding/protowire rather than another generated package.
//   - github.com/golang/snappy for the block compression remote write requires: the Go
//     team's implementation, small, single-purpose and what VictoriaMetrics itself decodes
//     with; klauspost/compress is faster but a large module for one small body a minute.
//
// VictoriaMetrics v1.154.1 (tools/victoriametrics), the end-to-end test's receiver, ingests
// native histograms from remote write (lib/prompb/write_request_unmarshaler.go turns them into
// <name>_count, <name>_sum and <name>_bucket{vmrange}) and exponential histograms from OTLP
// the same way, so latency sketches are pushed as native histograms over remote write too.
// A Prometheus without native histograms refuses the whole request (Debian's 2.42: HTTP 500),
// hence RemoteWriteConfig.ClassicHistograms (--remote-write-classic-histograms): classic le
// histograms at ClassicScale.
package export
