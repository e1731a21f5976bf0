// Package tcpflow tracks TCP connections and reassembles the DNS messages they carry (RFC 1035
// §4.2.2, RFC 7766: each message is preceded by a two-byte big-endian length).
//
// A Reassembler is fed every TCP packet of the DNS flows a worker owns (the caller filters by
// port; see IsDNSPort) and calls back once per complete DNS message, with the packet whose
// bytes completed it. It reorders segments by sequence number (mod 2^32), trims retransmitted
// and overlapping bytes so that no message is emitted twice, and picks up connections whose
// handshake it never saw.
//
// Design choices, all driven by "an attacker controls the input" and "no allocation per packet":
//
//   - Flows live in one slice (an arena) and refer to each other by int32 index: an intrusive
//     doubly-linked LRU list, intrusive hash chains and a free list. After warm-up a new flow
//     reuses a freed slot, so a SYN flood of millions of distinct flows costs a fixed amount of
//     memory (about 120 bytes per tracked flow) and no allocation. Go maps were not used: their
//     deletes leave tombstones that force periodic rehashing (allocation) under churn, and their
//     values would have to be indices anyway.
//   - The hash chains are indexed by a seeded remix of the caller's flow hash, so an attacker
//     who knows decode.Packet.FlowHash cannot aim many flows at one bucket; a chain longer than
//     maxChain (only reachable with full 64-bit hash collisions) evicts its oldest member.
//   - Bytes are copied only when a message is split across segments or a segment arrives early.
//     Whole messages are emitted straight from the packet payload. Buffers ("pends") are pooled
//     with their capacity and grow progressively, so an idle partial message claiming 65535
//     bytes holds only what was actually received. The capacity of every buffer, in use or
//     pooled, is counted against Config.MaxTotalBytes; beyond it the pool is trimmed and then
//     the flows whose buffers were least recently used are evicted.
//   - Out-of-order data is written at its final offset into the same per-direction buffer (a
//     window of Config.MaxSideBytes starting at the first unframed byte) and described by a
//     short sorted list of filled spans, so filling a gap needs no re-sorting of segments.
//   - Idle expiry follows event time (packet timestamps) and inspects at most MaxCleanups of the
//     least recently used flows per packet, like the reference's MAX_TCP_CLEANUPS.
//
// Connection end: a direction is finished when its FIN has been seen and every byte before the
// FIN has arrived (or the direction is broken). The flow closes when both directions are
// finished (so a client that half-closes after its last query still gets its replies counted),
// on RST, on idle timeout, or on FlushAll. A closed flow stays in the table as a tombstone until
// it ages out, so that a late retransmission is ignored instead of being picked up as a new
// connection and counted twice; a SYN with a new initial sequence number replaces it.
//
// The only dependency is package decode (the Packet type). Tests use gopacket (pcapgo, layers)
// to read captures and miekg/dns to check that every reassembled message parses.
package tcpflow
