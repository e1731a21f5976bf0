package tui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Limits that keep a hostile or broken agent answer from growing the client's memory or
// screen work: the body is capped before decoding, lists and names after it.
const (
	// MaxBodyBytes caps one metrics answer. A real window of one policy is a few tens of KiB.
	MaxBodyBytes = 16 << 20
	// maxTopItems caps a top-N list; the agent's own limit is far below it.
	maxTopItems = 1000
	// maxNameBytes caps a name kept from a top-N item (DNS names are at most 253 bytes).
	maxNameBytes = 512
)

// Int is a counter decoded leniently: any JSON number (integer or not, clamped to int64),
// anything else (null, string, object) is 0. One odd field must not blank the screen.
type Int int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int) UnmarshalJSON(b []byte) error {
	*n = Int(parseNumber(b))
	return nil
}

// Float is Int's floating-point sibling (latency quantiles, ratios).
type Float float64

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(b)), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	*f = Float(v)
	return nil
}

// OptInt is a counter that may be absent: rates carry "live" only in a live bucket.
type OptInt struct {
	V     int64
	Valid bool
}

// UnmarshalJSON implements json.Unmarshaler; only a number makes the value valid.
func (o *OptInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		*o = OptInt{}
		return nil
	}
	*o = OptInt{V: parseNumber(b), Valid: true}
	return nil
}

// parseNumber turns a JSON number into an int64, truncating fractions and clamping to the
// int64 range; anything that is not a number gives 0.
func parseNumber(b []byte) int64 {
	s := string(bytes.TrimSpace(b))
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0
	}
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// NameCount is one top-N item.
type NameCount struct {
	Name     string
	Estimate int64
}

// TopList is a top-N list decoded leniently: a non-array is empty, items that are not
// objects are skipped, and the list and its names are capped.
type TopList []NameCount

// UnmarshalJSON implements json.Unmarshaler.
func (t *TopList) UnmarshalJSON(b []byte) error {
	*t = nil
	var raw []json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		return nil
	}
	out := make(TopList, 0, min(len(raw), maxTopItems))
	for _, r := range raw {
		if len(out) == maxTopItems {
			break
		}
		var item struct {
			Name     json.RawMessage `json:"name"`
			Estimate Int             `json:"estimate"`
		}
		if json.Unmarshal(r, &item) != nil {
			continue
		}
		out = append(out, NameCount{Name: decodeName(item.Name), Estimate: int64(item.Estimate)})
	}
	*t = out
	return nil
}

// decodeName accepts a JSON string (or, leniently, a number) and caps its length; the
// screen-safety of its characters is the view's job (sanitize).
func decodeName(b json.RawMessage) string {
	var s string
	if json.Unmarshal(b, &s) != nil {
		b = bytes.TrimSpace(b)
		if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
			return ""
		}
		s = string(b)
	}
	if len(s) > maxNameBytes {
		s = s[:maxNameBytes]
	}
	return s
}

// Rates is a rate metric: per-second quantiles, plus the last second when live.
type Rates struct {
	Live OptInt `json:"live"`
	P50  Int    `json:"p50"`
	P90  Int    `json:"p90"`
	P95  Int    `json:"p95"`
	P99  Int    `json:"p99"`
}

// Quantiles holds the p50…p99 of a distribution.
type Quantiles struct {
	P50 Float `json:"p50"`
	P90 Float `json:"p90"`
	P95 Float `json:"p95"`
	P99 Float `json:"p99"`
}

// Period is a bucket's or window's time span.
type Period struct {
	StartTS Int `json:"start_ts"`
	Length  Int `json:"length"`
}

// Packets is the `packets` schema (net v1 handler). encoding/json matches keys
// case-insensitively, as the reference's mapstructure did (`top_ASN`, `top_geoLoc`).
type Packets struct {
	Cardinality struct {
		DstIPsOut Int `json:"dst_ips_out"`
		SrcIPsIn  Int `json:"src_ips_in"`
	} `json:"cardinality"`
	IPv4        Int `json:"ipv4"`
	IPv6        Int `json:"ipv6"`
	TCP         Int `json:"tcp"`
	UDP         Int `json:"udp"`
	OtherL4     Int `json:"other_l4"`
	Total       Int `json:"total"`
	In          Int `json:"in"`
	Out         Int `json:"out"`
	UnknownDir  Int `json:"unknown_dir"`
	DeepSamples Int `json:"deep_samples"`
	Filtered    Int `json:"filtered"`
	Events      Int `json:"events"`
	Rates       struct {
		PpsIn    Rates `json:"pps_in"`
		PpsOut   Rates `json:"pps_out"`
		PpsTotal Rates `json:"pps_total"`
	} `json:"rates"`
	TopIPv4   TopList `json:"top_ipv4"`
	TopIPv6   TopList `json:"top_ipv6"`
	TopGeoLoc TopList `json:"top_geoLoc"`
	TopASN    TopList `json:"top_ASN"`
	Period    Period  `json:"period"`
}

// XactDir is one direction of DNS transactions.
type XactDir struct {
	QuantilesUS Quantiles `json:"quantiles_us"`
	TopSlow     TopList   `json:"top_slow"`
	Total       Int       `json:"total"`
}

// DNS is the `dns` schema (dns v1 handler).
type DNS struct {
	WirePackets struct {
		IPv4        Int `json:"ipv4"`
		IPv6        Int `json:"ipv6"`
		Queries     Int `json:"queries"`
		Replies     Int `json:"replies"`
		TCP         Int `json:"tcp"`
		UDP         Int `json:"udp"`
		Total       Int `json:"total"`
		Events      Int `json:"events"`
		DeepSamples Int `json:"deep_samples"`
		Filtered    Int `json:"filtered"`
		NoError     Int `json:"noerror"`
		NXDomain    Int `json:"nxdomain"`
		SrvFail     Int `json:"srvfail"`
		Refused     Int `json:"refused"`
		NoData      Int `json:"nodata"`
	} `json:"wire_packets"`
	Rates struct {
		Total Rates `json:"total"`
	} `json:"rates"`
	Cardinality struct {
		QName Int `json:"qname"`
	} `json:"cardinality"`
	Xact struct {
		Counts struct {
			Total    Int `json:"total"`
			TimedOut Int `json:"timed_out"`
		} `json:"counts"`
		In  XactDir `json:"in"`
		Out XactDir `json:"out"`
	} `json:"xact"`
	TopQName2   TopList `json:"top_qname2"`
	TopQName3   TopList `json:"top_qname3"`
	TopNXDomain TopList `json:"top_nxdomain"`
	TopQType    TopList `json:"top_qtype"`
	TopRCode    TopList `json:"top_rcode"`
	TopSrvFail  TopList `json:"top_srvfail"`
	TopRefused  TopList `json:"top_refused"`
	TopUDPPorts TopList `json:"top_udp_ports"`
	Period      Period  `json:"period"`
}

// Pcap is the `pcap` schema (capture health).
type Pcap struct {
	TCPReassemblyErrors Int `json:"tcp_reassembly_errors"`
	IfDrops             Int `json:"if_drops"`
	OSDrops             Int `json:"os_drops"`
}

// DHCP is the `dhcp` schema; our agent has no dhcp handler yet, a reference agent does.
type DHCP struct {
	WirePackets struct {
		Total    Int `json:"total"`
		Filtered Int `json:"filtered"`
		Discover Int `json:"discover"`
		Offer    Int `json:"offer"`
		Request  Int `json:"request"`
		Ack      Int `json:"ack"`
	} `json:"wire_packets"`
	Rates struct {
		Total Rates `json:"total"`
	} `json:"rates"`
}

// Snapshot is one decoded metrics answer: the handlers of one policy, routed by schema key
// as the reference client did. Has* say which schemas the policy carried.
type Snapshot struct {
	Packets Packets
	DNS     DNS
	Pcap    Pcap
	DHCP    DHCP

	HasPackets, HasDNS, HasPcap, HasDHCP bool
}

// Decode converts a `/api/v1/policies/<policy>/metrics/{window,bucket}/<n>` answer into a
// Snapshot. Handlers are visited in name order and the first of each schema wins, so the
// result does not depend on Go's map order. Unknown schemas (dns v2's, net v2's `net`,
// flow, input_resources) are ignored, as in the reference.
func Decode(body []byte, policy string) (Snapshot, error) {
	var s Snapshot
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return s, fmt.Errorf("decode metrics: %w", err)
	}
	raw, ok := top[policy]
	if !ok {
		return s, fmt.Errorf("decode metrics: policy %q missing from the answer", policy)
	}
	var handlers map[string]json.RawMessage
	if err := json.Unmarshal(raw, &handlers); err != nil {
		return s, fmt.Errorf("decode metrics of policy %q: %w", policy, err)
	}
	names := make([]string, 0, len(handlers))
	for name := range handlers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		var schemas map[string]json.RawMessage
		if json.Unmarshal(handlers[name], &schemas) != nil {
			continue // not a handler object; keep the others
		}
		for schema, body := range schemas {
			// Lenient field types mean Unmarshal fails only on a non-object; skip it then.
			switch schema {
			case "packets":
				if !s.HasPackets && json.Unmarshal(body, &s.Packets) == nil {
					s.HasPackets = true
				}
			case "dns":
				if !s.HasDNS && json.Unmarshal(body, &s.DNS) == nil {
					s.HasDNS = true
				}
			case "pcap":
				if !s.HasPcap && json.Unmarshal(body, &s.Pcap) == nil {
					s.HasPcap = true
				}
			case "dhcp":
				if !s.HasDHCP && json.Unmarshal(body, &s.DHCP) == nil {
					s.HasDHCP = true
				}
			}
		}
	}
	return s, nil
}
