// Package dnswire summarizes DNS messages for the metrics hot path: the header (ID, flags,
// opcode, rcode, section counts), the first question (name in presentation form, original and
// lower case, type, class) and, on request, a walk over the resource records for what the DNS
// handlers count (an RRSIG in the answer section, the EDNS0 OPT record with its UDP size, DO
// bit, extended rcode and the EDNS Client Subnet option). It also holds the name tables for
// rcodes and RR types and the qname2/qname3 aggregation of the reference pktvisor.
//
// Design choices:
//
//   - Our own parser instead of golang.org/x/net/dns/dnsmessage or github.com/miekg/dns: both
//     build full message values (strings, slices, RR structs) and allocate per message, while
//     the hot path must not allocate (DESIGN.md §5). A [Message] owns fixed-size buffers for the
//     two renderings of the question name and is reused for every packet; nothing else is
//     decoded until [Message.ScanRecords] is asked for. miekg/dns is used only in tests, as the
//     oracle the parser is checked against.
//   - Every input byte is attacker controlled: all reads are bounds-checked, compression
//     pointers are limited to 20 jumps, names to 255 wire octets and the record walk to
//     [MaxRecords] entries, and a fuzz target runs the whole API. Nothing here panics.
//   - Names are rendered so that the text is always valid UTF-8 and unambiguous (bytes outside
//     0x21..0x7e become \DDD, '.' and '\' inside a label become \. and \\), unlike the
//     reference, whose raw bytes produced invalid JSON.
//   - Errors are package-level sentinels (matchable with errors.Is) so that reporting a
//     malformed packet costs no allocation.
//   - The public suffix list comes from golang.org/x/net/publicsuffix (ICANN section only):
//     the maintained Go copy of the list, with label-exact matching. Its lookup allocates on
//     every call (an error value from netip.ParseAddr inside it), so [PublicSuffixSize] puts a
//     small lock-free cache in front of it.
//
// README.md in this folder lists what is parsed, what is not, and every deliberate difference
// from the reference implementation.
package dnswire
