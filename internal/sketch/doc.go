// Package sketch holds the mergeable streaming summaries behind every
// non-counter metric of pktvisor-go: Cardinality (distinct counts), TopN
// (frequent items), Quantiles (distributions), Histogram (fixed-bound
// cumulative histograms) and Rate (per-second event rates summarized as
// quantiles), plus the hash functions that feed them.
//
// Every type follows the same contract, because buckets of several workers,
// of several minutes and finally of several agents are merged on read:
//
//   - Update methods (Insert, Update, Add) are allocation-free in steady
//     state and never panic, whatever the input; memory is bounded by
//     constants (an attacker controls the input).
//   - Merge(other) folds other in without modifying it; Reset empties the
//     sketch and keeps its memory for the next bucket. Read methods
//     (Estimate, Items, Quantile, Buckets, Count, MarshalBinary, …) never
//     modify the sketch, so several readers may share a closed bucket. A
//     sketch is owned by one goroutine while it is written: there are no
//     locks.
//   - MarshalBinary/AppendBinary produce a versioned encoding (type tag and
//     format version first; layouts in README.md) and UnmarshalBinary
//     rejects anything malformed with an error wrapping ErrInvalidEncoding
//     (all decoders are fuzzed).
//   - Results do not depend on how a stream was split across workers where
//     the algorithm allows it: Cardinality, Quantiles, Histogram and Rate
//     give identical results for any split; TopN is exact below capacity
//     and within its documented bound above it.
//
// Design choices and dependencies:
//
//   - Hash is xxHash64 (github.com/cespare/xxhash/v2): fast on short keys,
//     allocation-free, and a stable published algorithm, so sketches of
//     different processes merge. HashUint64 is the splitmix64 mixer.
//   - Cardinality counts distinct 64-bit hashes exactly up to 1536 (small
//     buckets are common, and the reference's counts are exact there), then
//     switches to a dense HyperLogLog of precision 14 from
//     github.com/axiomhq/hyperloglog (LogLog-Beta estimator, standard error
//     1.04/√16384 ≈ 0.81 %, mergeable registers, binary form). The library's
//     own sparse mode was measured and dropped: it keeps the split
//     invariance but re-sorts its whole sparse list every 164 inserts even of
//     known keys (≈ 0.1–1 µs and 18 B per insert). The reference uses a CPC
//     sketch, whose exact numbers we do not reproduce above the exact limit.
//   - TopN is our own Misra-Gries with DataSketches' reverse purge (no
//     maintained Go library has mergeable frequent items with error
//     bounds): an open-addressing table keyed by the caller's hash with a
//     full key compare, keys interned in an arena that is compacted on each
//     purge, so neither known keys nor floods of new keys allocate.
//   - Quantiles stores up to 200 values exactly (the reference's KLL k=200
//     is exact there, and small buckets are common), then moves them into a
//     DDSketch (github.com/DataDog/sketches-go; cubically interpolated mapping with 1 %
//     relative accuracy, collapsing-lowest dense store of 2048 bins for
//     bounded memory): a relative-error guarantee, merges that are sums of
//     bin counts (so split-independent), and bins that map onto exponential
//     histograms for export. DDSketch decoding is done by this package with
//     the library's primitives because the library's decoder trusts its
//     input.
//   - Histogram is exact counts per pktvisor histogram_us bound (the
//     reference approximates them through a KLL sketch).
//   - Rate keeps per-second counts in event time and merges them second by
//     second, so W workers merged equal one worker (see Rate).
package sketch
