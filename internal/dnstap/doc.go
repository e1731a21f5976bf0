// Package dnstap reads dnstap (https://dnstap.info): the Frame Streams transport (files and
// the bidirectional socket handshake), a socket server for many concurrent senders, and a
// zero-allocation decoder of the dnstap protobuf.
//
// Design choices:
//   - Frame Streams is implemented here rather than with farsightsec/golang-framestream,
//     whose reader copies every frame into a caller buffer and is not restartable after a read
//     deadline. Our Reader returns frames that alias one bounded buffer and resumes after a
//     deadline, which the server uses to flush partial batches. ACCEPT always carries the
//     content type (unbound hangs up otherwise; the reference omits it).
//   - The protobuf is decoded by hand with google.golang.org/protobuf/encoding/protowire (the
//     low-level wire helpers, no reflection), into a reusable struct whose byte fields alias
//     the frame: generated code allocates a message and copies every bytes field per frame,
//     which would cap throughput far below the 3 M messages/s target. The decoder follows
//     protobuf-go's rules (unknown fields skipped, last scalar wins, sub-messages merge) so
//     that it agrees with github.com/dnstap/golang-dnstap, which the tests use as the oracle
//     together with golang-framestream (both test-only dependencies).
//   - Memory is bounded: a data frame is at most MaxFrameSize bytes (1 MiB by default, as
//     fstrm), a control frame at most 512 bytes, the server has a connection limit and a
//     fixed pool of batches; when the consumer is slow, frames are dropped and counted.
package dnstap
