package gen

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Format selects the capture file format written by Write.
type Format int

const (
	FormatPcap     Format = iota // classic pcap, microsecond timestamps (magic a1b2c3d4)
	FormatPcapNano               // classic pcap, nanosecond timestamps (magic a1b23c4d)
	FormatPcapNG                 // pcapng (via gopacket's pcapgo.NgWriter), nanosecond timestamps
)

// ParseFormat maps "pcap", "pcap-ns" and "pcapng" to a Format.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "pcap", "pcap-us":
		return FormatPcap, nil
	case "pcap-ns", "pcapns", "nano":
		return FormatPcapNano, nil
	case "pcapng", "ng":
		return FormatPcapNG, nil
	}
	return 0, fmt.Errorf("gen: unknown format %q (want pcap, pcap-ns or pcapng)", s)
}

func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapNano:
		return "pcap-ns"
	case FormatPcapNG:
		return "pcapng"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// QTypeWeight is one entry of the query-type mix: the type and its relative weight.
type QTypeWeight struct {
	Type   uint16
	Weight float64
}

// Config describes the capture to generate. Shares are probabilities in [0,1]; the zero value
// is not useful, start from DefaultConfig.
type Config struct {
	Packets int    // normal-traffic packets to write (transactions are whole, so approximate)
	Seed    uint64 // same Config and Seed ⇒ byte-identical output

	Names int      // distinct forward (and reverse, for PTR) query names
	Zipf  float64  // Zipf exponent of name popularity (> 0)
	Zones []string // parent zones query names are drawn under

	NXDomain float64 // share of replies with RCODE NXDOMAIN
	Refused  float64 // share of replies with RCODE REFUSED
	ServFail float64 // share of replies with RCODE SERVFAIL
	NoData   float64 // share of NOERROR replies with no answer

	TCP  float64 // share of transactions carried over TCP
	IPv6 float64 // share of transactions over IPv6

	QPS           float64       // query arrival rate (Poisson); sets the timestamps
	LatencyMedian time.Duration // median of the lognormal server latency
	LatencySigma  float64       // sigma of the lognormal server latency
	Timeout       float64       // share of queries that never get a reply

	Clients int // client address pool (each client has a v4 and a v6 address)
	Servers int // server address pool (1..254)

	QTypes []QTypeWeight // query type mix

	EDNS      float64 // share of (ordinary) queries carrying an OPT record; ECS/DO force one
	ECS       float64 // share of queries carrying an EDNS Client Subnet option
	DO        float64 // share of queries with the DO bit; their replies carry RRSIGs
	MixedCase float64 // share of queries whose name is 0x20 case-randomized

	TCPMulti      float64 // share of TCP connections carrying 2-5 pipelined queries
	TCPSplit      float64 // share of TCP replies split across 2-3 segments
	TCPReorder    float64 // share of split replies whose segments are captured out of order
	TCPRetransmit float64 // share of TCP data segments that appear again later

	Fragment float64 // share of UDP replies that are big TXT answers, IP-fragmented at MTU 1500

	RandomSubdomain int    // extra flood queries for <random>.FloodZone (NXDOMAIN)
	FloodZone       string // zone of the random-subdomain flood

	Malformed float64 // extra garbage UDP/53 packets, as a share of Packets

	Format Format
	Start  time.Time // timestamp of the first arrival
}

// DefaultQTypes is the default query-type mix, "A:60,AAAA:25,HTTPS:5,MX:3,TXT:3,NS:2,PTR:2".
const DefaultQTypes = "A:60,AAAA:25,HTTPS:5,MX:3,TXT:3,NS:2,PTR:2"

// DefaultZones are the default parent zones of query names.
var DefaultZones = []string{"example.com", "example.net", "example.org", "test.org", "corp.example", "shop.test"}

// DefaultConfig returns the documented defaults of pktvisor-gen.
func DefaultConfig() Config {
	qt, err := ParseQTypes(DefaultQTypes)
	if err != nil {
		panic(err) // a constant that fails to parse is a programming error
	}
	return Config{
		Packets:         100000,
		Seed:            1,
		Names:           10000,
		Zipf:            1.1,
		Zones:           append([]string(nil), DefaultZones...),
		NXDomain:        0.05,
		Refused:         0.01,
		ServFail:        0.005,
		NoData:          0.1,
		TCP:             0.05,
		IPv6:            0.2,
		QPS:             50000,
		LatencyMedian:   2 * time.Millisecond,
		LatencySigma:    1.0,
		Timeout:         0.002,
		Clients:         5000,
		Servers:         4,
		QTypes:          qt,
		EDNS:            0.8,
		ECS:             0,
		DO:              0.1,
		MixedCase:       0.1,
		TCPMulti:        0.2,
		TCPSplit:        0.2,
		TCPReorder:      0.02,
		TCPRetransmit:   0.01,
		Fragment:        0,
		RandomSubdomain: 0,
		FloodZone:       "victim.example",
		Malformed:       0,
		Format:          FormatPcap,
		Start:           time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC),
	}
}

// Limits that keep memory bounded and the name/address encodings injective.
const (
	MaxNames      = 1 << 24 // reverse names are 10.x.y.z.in-addr.arpa
	MaxClients    = 1 << 23 // client index is 23 bits of the flow-key guard
	MaxServers    = 254     // servers are 172.16.53.1-254
	MaxPackets    = 1 << 40
	MaxFlood      = 1 << 40
	MaxQPS        = 1e9
	maxLatency    = 30 * time.Second // clamp of the latency tail (bounds in-flight memory)
	maxZoneLength = 120
)

// qtypeNames maps the supported query types to their mnemonics (the answers generated for
// each are in dnsmsg.go).
var qtypeNames = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 65: "HTTPS",
}

// QTypeName returns the mnemonic of a supported query type ("TYPEn" otherwise).
func QTypeName(t uint16) string {
	if s, ok := qtypeNames[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// ParseQTypes parses a mix such as "A:60,AAAA:25,HTTPS:5". Weights are non-negative numbers
// (a missing weight means 1); at least one must be positive. Only types the generator can answer
// are accepted: A NS CNAME SOA PTR MX TXT AAAA SRV HTTPS (or their TYPEn numbers).
func ParseQTypes(s string) ([]QTypeWeight, error) {
	var out []QTypeWeight
	total := 0.0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, ws, hasW := strings.Cut(part, ":")
		w := 1.0
		if hasW {
			v, err := strconv.ParseFloat(strings.TrimSpace(ws), 64)
			if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("gen: qtype mix %q: bad weight %q", s, ws)
			}
			w = v
		}
		t, ok := lookupQType(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("gen: qtype mix %q: unsupported type %q", s, name)
		}
		for i := range out {
			if out[i].Type == t {
				return nil, fmt.Errorf("gen: qtype mix %q: %s listed twice", s, QTypeName(t))
			}
		}
		out = append(out, QTypeWeight{Type: t, Weight: w})
		total += w
	}
	if len(out) == 0 || !(total > 0) || math.IsInf(total, 0) {
		return nil, fmt.Errorf("gen: qtype mix %q: weights must be finite with a positive sum", s)
	}
	return out, nil
}

func lookupQType(name string) (uint16, bool) {
	up := strings.ToUpper(name)
	for t, n := range qtypeNames {
		if n == up {
			return t, true
		}
	}
	if rest, ok := strings.CutPrefix(up, "TYPE"); ok {
		v, err := strconv.ParseUint(rest, 10, 16)
		if err == nil {
			if _, known := qtypeNames[uint16(v)]; known {
				return uint16(v), true
			}
		}
	}
	return 0, false
}

// ParseZones splits a comma-separated zone list and normalizes each zone (lower case, no
// trailing dot). Validation happens in Config.Validate.
func ParseZones(s string) []string {
	var out []string
	for _, z := range strings.Split(s, ",") {
		z = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(z), "."))
		if z != "" {
			out = append(out, z)
		}
	}
	return out
}

// Validate reports the first problem with cfg, or nil.
func (c *Config) Validate() error {
	shares := []struct {
		name string
		v    float64
	}{
		{"nxdomain", c.NXDomain}, {"refused", c.Refused}, {"servfail", c.ServFail}, {"nodata", c.NoData},
		{"tcp", c.TCP}, {"ipv6", c.IPv6}, {"timeout", c.Timeout}, {"edns", c.EDNS}, {"ecs", c.ECS},
		{"do", c.DO}, {"mixed-case", c.MixedCase}, {"tcp-multi", c.TCPMulti}, {"tcp-split", c.TCPSplit},
		{"tcp-reorder", c.TCPReorder}, {"tcp-retransmit", c.TCPRetransmit}, {"fragment", c.Fragment},
		{"malformed", c.Malformed},
	}
	for _, s := range shares {
		if !(s.v >= 0 && s.v <= 1) {
			return fmt.Errorf("gen: --%s must be in [0,1], got %v", s.name, s.v)
		}
	}
	if c.NXDomain+c.Refused+c.ServFail > 1 {
		return errors.New("gen: --nxdomain + --refused + --servfail exceed 1")
	}
	if c.Packets < 0 || c.Packets > MaxPackets {
		return fmt.Errorf("gen: --packets must be in [0,%d]", int64(MaxPackets))
	}
	if c.RandomSubdomain < 0 || c.RandomSubdomain > MaxFlood {
		return fmt.Errorf("gen: --random-subdomain must be in [0,%d]", int64(MaxFlood))
	}
	if c.Names < 1 || c.Names > MaxNames {
		return fmt.Errorf("gen: --names must be in [1,%d]", MaxNames)
	}
	if !(c.Zipf > 0 && c.Zipf <= 20) {
		return fmt.Errorf("gen: --zipf must be in (0,20], got %v", c.Zipf)
	}
	if !(c.QPS > 0 && c.QPS <= MaxQPS) {
		return fmt.Errorf("gen: --qps must be in (0,%g], got %v", MaxQPS, c.QPS)
	}
	if c.LatencyMedian <= 0 || c.LatencyMedian > maxLatency {
		return fmt.Errorf("gen: --latency-median must be in (0,%v], got %v", maxLatency, c.LatencyMedian)
	}
	if !(c.LatencySigma >= 0 && c.LatencySigma <= 10) {
		return fmt.Errorf("gen: --latency-sigma must be in [0,10], got %v", c.LatencySigma)
	}
	if c.Clients < 1 || c.Clients > MaxClients {
		return fmt.Errorf("gen: --clients must be in [1,%d]", MaxClients)
	}
	if c.Servers < 1 || c.Servers > MaxServers {
		return fmt.Errorf("gen: --servers must be in [1,%d]", MaxServers)
	}
	if len(c.QTypes) == 0 {
		return errors.New("gen: empty qtype mix")
	}
	total := 0.0
	for _, q := range c.QTypes {
		if _, ok := qtypeNames[q.Type]; !ok {
			return fmt.Errorf("gen: unsupported qtype %d", q.Type)
		}
		if !(q.Weight >= 0) || math.IsInf(q.Weight, 0) {
			return fmt.Errorf("gen: bad weight %v for %s", q.Weight, QTypeName(q.Type))
		}
		total += q.Weight
	}
	if !(total > 0) || math.IsInf(total, 0) {
		return errors.New("gen: qtype mix has no positive weight")
	}
	if c.Format < FormatPcap || c.Format > FormatPcapNG {
		return fmt.Errorf("gen: unknown format %d", c.Format)
	}
	if y := c.Start.Year(); y < 1971 || y > 2100 {
		return fmt.Errorf("gen: start time %v out of range", c.Start)
	}
	if len(c.Zones) == 0 || len(c.Zones) > 1000 {
		return errors.New("gen: need 1 to 1000 zones")
	}
	if err := checkZone(c.FloodZone); err != nil {
		return fmt.Errorf("gen: flood zone: %w", err)
	}
	for _, z := range c.Zones {
		if err := checkZone(z); err != nil {
			return fmt.Errorf("gen: zone: %w", err)
		}
		// Names are distinct by construction only if the three name families (zone names,
		// reverse names, flood names) live in disjoint trees.
		for _, other := range []string{c.FloodZone, "in-addr.arpa"} {
			if related(z, other) {
				return fmt.Errorf("gen: zone %q overlaps %q", z, other)
			}
		}
	}
	if related(c.FloodZone, "in-addr.arpa") {
		return fmt.Errorf("gen: flood zone %q overlaps in-addr.arpa", c.FloodZone)
	}
	return nil
}

// related reports whether a equals b or one is a subdomain of the other.
func related(a, b string) bool {
	return a == b || strings.HasSuffix(a, "."+b) || strings.HasSuffix(b, "."+a)
}

// checkZone accepts lower-case LDH names with 1..10 labels of at most 63 bytes.
func checkZone(z string) error {
	if z == "" || len(z) > maxZoneLength {
		return fmt.Errorf("%q: length must be 1..%d", z, maxZoneLength)
	}
	labels := strings.Split(z, ".")
	if len(labels) > 10 {
		return fmt.Errorf("%q: too many labels", z)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%q: empty or long label", z)
		}
		for i := 0; i < len(l); i++ {
			ch := l[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return fmt.Errorf("%q: label %q: only lower-case letters, digits and '-'", z, l)
			}
		}
	}
	return nil
}
