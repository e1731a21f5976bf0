// Package gen writes realistic synthetic DNS captures together with their exact ground truth,
// so that benchmarks can use multi-million-packet captures and correctness tests can use
// medium ones without committing big files. Write is the API; cmd/pktvisor-gen is its CLI.
//
// What a capture holds: clients (10.0.0.0/8, fd00::/8) query servers (172.16.53.x, fd53::x)
// on port 53 as seen at the server's interface. Queries arrive as a Poisson process at the
// configured rate; names follow a Zipf popularity under the configured zones (PTR queries ask
// for 10.x.y.z.in-addr.arpa); replies come after a lognormal latency, echo the ID and the
// question (0x20 case included), set QR/AA/RA, carry answers fitting the qtype with
// compression pointers, SOA in the authority section for NXDOMAIN/NODATA, an OPT record
// when the query had one (ECS and cookies echoed) and RRSIGs for DO queries. DNS over TCP has
// a full handshake, length-prefixed pipelined messages, ACKs (delayed ones too), replies split
// over segments, captured out of order or retransmitted, and a FIN exchange. Big TXT replies
// are IP-fragmented at MTU 1500, an optional random-subdomain flood adds unique NXDOMAIN
// names, and optional garbage packets exercise parsers. Timestamps never decrease in file
// order; reordered TCP segments are written in their capture order with increasing times.
//
// Design choices:
//   - Deterministic: the same Config gives byte-identical output (for a given GOARCH: the
//     latency and arrival draws go through math.Exp/Log). The PRNG is our own xoshiro256**
//     so the stream can never change under a Go upgrade, as math/rand/v2's derived
//     distributions may.
//   - Fast (millions of packets per CPU-second) and allocation-free per packet: DNS messages
//     are packed by hand into reused buffers (the layout is known, so compression pointers are
//     written directly; miekg/dns is only a test oracle), frames with real checksums are built
//     in place, and a transaction's packets are built when it starts and queued in a typed
//     min-heap of size-classed slots until the capture clock reaches them. Classic pcap
//     records are written directly into a 1 MiB bufio.Writer; pcapng goes through gopacket's
//     pcapgo.NgWriter (with fixed section options, so output does not name the host).
//   - Names are injective functions of an index (see names.go), popularity is sampled by
//     rejection-inversion (O(1) memory, any exponent > 0), so distinct-name counts are exact
//     with one bit per name.
//   - The truth is counted from the generator's decisions as it writes, never by parsing its
//     output, and is exact: a key table guarantees that no two open transactions share a
//     (transport, addresses, ports, DNS ID) key, so any 5-tuple+ID matcher pairs them as the
//     generator did. See Truth for the definitions.
//   - Memory is bounded by what is in flight (arrival rate × transaction lifetime; the latency
//     tail is clamped at 30 s) and by the key table (keys held up to 65 s).
package gen
