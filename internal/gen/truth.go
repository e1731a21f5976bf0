package gen

// Truth is the exact content of a generated capture, counted while writing it (from the
// generator's own decisions, never by parsing its output), so tests can hold a decoder or a
// handler against it as a second oracle beside tshark.
//
// Definitions:
//   - Packet-level counts are per frame written. UDP and TCP count frames whose IP payload is
//     UDP/TCP, IP fragments included (a non-first fragment has no UDP header but is UDP by its
//     protocol field); Other counts frames that are neither (always 0 today). TCPSyn counts
//     frames with the SYN flag (SYN and SYN-ACK), as pktvisor's protocol.tcp.syn does.
//   - DNS counts are per DNS message: a TCP message split over segments or a UDP reply split
//     into IP fragments counts once, a retransmitted segment does not count again, and the
//     Malformed garbage packets never count as messages.
//   - Rcodes counts replies by pktvisor's RCODE names (NOERROR, NXDOMAIN, SRVFAIL, REFUSED);
//     QTypes counts queries plus replies by first-question type; NoData counts NOERROR replies
//     with ANCOUNT 0.
//   - Transactions counts replies whose query was written earlier with the same 5-tuple and
//     DNS ID and that completed less than 5 s after the query completed (message completion =
//     timestamp of its last segment or fragment). LateReplies are replies at 5 s or later;
//     Timeouts are queries that never get a reply. Queries = Transactions + LateReplies +
//     Timeouts. No two queries that a matcher keyed on (transport, addresses, ports, DNS ID)
//     could confuse are ever open at once: a key stays reserved until its reply, or for 65 s
//     when it gets none (or a late one).
//   - DistinctQNames counts distinct lower-cased first-question names.
type Truth struct {
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"` // sum of frame lengths
	IPv4        uint64 `json:"ipv4"`
	IPv6        uint64 `json:"ipv6"`
	UDP         uint64 `json:"udp"`
	TCP         uint64 `json:"tcp"`
	TCPSyn      uint64 `json:"tcp_syn"`
	Other       uint64 `json:"other"`
	IPFragments uint64 `json:"ip_fragments"` // frames that are IP fragments (first included)

	TCPConnections uint64 `json:"tcp_connections"`
	TCPRetransmits uint64 `json:"tcp_retransmits"` // duplicated data segments

	DNSQueries uint64            `json:"dns_queries"`
	DNSReplies uint64            `json:"dns_replies"`
	DNSUDP     uint64            `json:"dns_udp"` // messages (queries+replies) over UDP
	DNSTCP     uint64            `json:"dns_tcp"`
	DNSIPv4    uint64            `json:"dns_ipv4"`
	DNSIPv6    uint64            `json:"dns_ipv6"`
	Rcodes     map[string]uint64 `json:"rcodes"`
	QTypes     map[string]uint64 `json:"qtypes"`
	NoData     uint64            `json:"nodata"`

	Transactions uint64 `json:"transactions"`
	Timeouts     uint64 `json:"timeouts"`
	LateReplies  uint64 `json:"late_replies"`

	DistinctQNames uint64 `json:"distinct_qnames"`
	ECSQueries     uint64 `json:"ecs_queries"`
	DOQueries      uint64 `json:"do_queries"`
	FloodQueries   uint64 `json:"flood_queries"`
	Malformed      uint64 `json:"malformed"` // garbage UDP/53 packets (not DNS messages)

	FirstTS int64 `json:"first_ts_ns"` // Unix ns of the first and last frame
	LastTS  int64 `json:"last_ts_ns"`

	Servers []string `json:"servers"` // server addresses (v4 then v6): the "host" side
}

// rcodeNames are pktvisor's names for the rcodes the generator writes.
var rcodeNames = map[int]string{rcodeNoError: "NOERROR", rcodeServFail: "SRVFAIL", rcodeNXDomain: "NXDOMAIN", rcodeRefused: "REFUSED"}
