package dns

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/dnswire"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// Metric groups, in bit order.
const (
	grpCardinality = 1 << iota
	grpCounters
	grpQuantiles
	grpXact
	grpTopQnames
	grpTopPorts
	grpHistograms
	grpTopECS
	grpTopQnamesDetails
)

// Groups are dns v1's metric groups.
var Groups = metrics.Groups{
	Names: []string{"cardinality", "counters", "quantiles", "dns_transaction", "top_qnames", "top_ports",
		"histograms", "top_ecs", "top_qnames_details"},
	Defaults: []string{"cardinality", "counters", "quantiles", "dns_transaction", "top_qnames", "top_ports"},
}

// ConfigKeys are dns v1's own config/filter keys, in the reference's order.
var ConfigKeys = []string{"exclude_noerror", "only_rcode", "only_queries", "only_responses", "only_dnssec_response",
	"answer_count", "only_qtype", "only_qname", "only_qname_suffix", "geoloc_notfound", "asn_notfound",
	"dnstap_msg_type", "public_suffix_list", "recorded_stream", "xact_ttl_secs", "xact_ttl_ms"}

// dnstapTypes are the valid dnstap_msg_type values.
var dnstapTypes = []string{"auth", "client", "forwarder", "resolver", "stub", "tool", "update"}

// dnstapQueryTypes maps a dnstap_msg_type value to its *_QUERY message type (the *_RESPONSE
// type is the next number in dnstap.proto).
var dnstapQueryTypes = map[string]dnstap.MessageType{
	"auth": dnstap.AuthQuery, "client": dnstap.ClientQuery, "forwarder": dnstap.ForwarderQuery,
	"resolver": dnstap.ResolverQuery, "stub": dnstap.StubQuery, "tool": dnstap.ToolQuery,
	"update": dnstap.UpdateQuery,
}

// DefaultXactTTL is the transaction timeout when none is configured.
const DefaultXactTTL = 5000 // ms

// Spec is a validated dns v1 configuration.
type Spec struct {
	common handler.Common

	excludeNoerror   bool
	onlyRcode        []uint16 // empty = no filter
	onlyQueries      bool
	onlyResponses    bool
	onlyDNSSEC       bool
	answerCount      int // -1 = no filter
	onlyQtype        []uint16
	onlyQname        []string
	onlyQnameSuffix  []string
	geoNotFound      bool
	asnNotFound      bool
	dnstapMsgType    string
	dnstapQuery      dnstap.MessageType // 0 = no dnstap_msg_type filter
	publicSuffixList bool
	xactTTLNs        int64

	filtering bool // any packet-level filter set
	needScan  bool // record scan needed per message (RRSIG or ECS)
}

func rcodeErr(v string) error {
	if v == "" {
		return fmt.Errorf("DnsStreamHandler: only_rcode filter contained an invalid/unsupported rcode")
	}
	return fmt.Errorf("DnsStreamHandler: only_rcode filter contained an invalid/unsupported rcode: %s", v)
}

// validRcode reports whether rc has a name in the rcode table (the reference accepted only those).
func validRcode(rc uint64) bool {
	if rc > 0xffff {
		return false
	}
	_, err := strconv.Atoi(dnswire.RcodeName(uint16(rc)))
	return err != nil // a name, not the decimal fallback
}

// New validates a dns v1 module configuration.
func New(cfg config.Map) (handler.Spec, error) {
	c, err := handler.ParseCommon(cfg, ConfigKeys, &Groups)
	if err != nil {
		return nil, err
	}
	s := &Spec{common: c, answerCount: -1, xactTTLNs: DefaultXactTTL * 1e6}
	bools := []struct {
		key string
		dst *bool
	}{
		{"exclude_noerror", &s.excludeNoerror}, {"only_queries", &s.onlyQueries}, {"only_responses", &s.onlyResponses},
		{"only_dnssec_response", &s.onlyDNSSEC}, {"geoloc_notfound", &s.geoNotFound}, {"asn_notfound", &s.asnNotFound},
		{"public_suffix_list", &s.publicSuffixList},
	}
	for _, b := range bools {
		if *b.dst, _, err = cfg.Bool(b.key); err != nil {
			return nil, err
		}
	}
	if raw, ok := cfg["only_rcode"]; ok {
		switch v := raw.(type) {
		case uint64:
			if !validRcode(v) {
				return nil, rcodeErr("")
			}
			s.onlyRcode = []uint16{uint16(v)}
		case []string:
			for _, e := range v {
				rc, ok := dnswire.ParseRcode(e)
				if !ok || !validRcode(uint64(rc)) {
					return nil, rcodeErr(e)
				}
				s.onlyRcode = append(s.onlyRcode, rc)
			}
		default:
			return nil, fmt.Errorf("DnsStreamHandler: wrong value type for only_rcode filter. It should be an integer or an array")
		}
	}
	if raw, ok := cfg["answer_count"]; ok {
		v, isUint := raw.(uint64)
		if !isUint || v > 0xffff {
			return nil, fmt.Errorf("DnsStreamHandler: wrong value type for answer_count filter. It should be an integer")
		}
		s.answerCount = int(v)
	}
	qtypes, _, err := cfg.List("only_qtype")
	if err != nil {
		return nil, err
	}
	for _, e := range qtypes {
		qt, ok := dnswire.ParseQType(e)
		if !ok {
			return nil, fmt.Errorf("DnsStreamHandler: only_qtype filter contained an invalid/unsupported qtype: %s", e)
		}
		s.onlyQtype = append(s.onlyQtype, qt)
	}
	names, _, err := cfg.List("only_qname")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		s.onlyQname = append(s.onlyQname, normalizeName(n))
	}
	suffixes, _, err := cfg.List("only_qname_suffix")
	if err != nil {
		return nil, err
	}
	for _, n := range suffixes {
		s.onlyQnameSuffix = append(s.onlyQnameSuffix, strings.ToLower(n))
	}
	if mt, ok, err := cfg.String("dnstap_msg_type"); err != nil {
		return nil, err
	} else if ok {
		found := false
		for _, t := range dnstapTypes {
			found = found || t == mt
		}
		if !found {
			return nil, fmt.Errorf("DnsStreamHandler: dnstap_msg_type contained an invalid/unsupported type. Valid types: %s", strings.Join(dnstapTypes, ", "))
		}
		s.dnstapMsgType = mt
		s.dnstapQuery = dnstapQueryTypes[mt]
	}
	// xact_ttl_ms wins over xact_ttl_secs.
	if v, ok, err := cfg.Uint("xact_ttl_secs"); err != nil {
		return nil, err
	} else if ok {
		s.xactTTLNs = int64(min(v, 86400)) * 1e9
	}
	if v, ok, err := cfg.Uint("xact_ttl_ms"); err != nil {
		return nil, err
	} else if ok {
		s.xactTTLNs = int64(min(v, 86400e3)) * 1e6
	}
	if s.xactTTLNs <= 0 {
		s.xactTTLNs = 1e6
	}
	s.filtering = s.excludeNoerror || len(s.onlyRcode) > 0 || s.answerCount >= 0 || s.onlyQueries || s.onlyResponses ||
		s.onlyDNSSEC || len(s.onlyQtype) > 0 || len(s.onlyQname) > 0 || len(s.onlyQnameSuffix) > 0 ||
		s.geoNotFound || s.asnNotFound
	s.needScan = s.onlyDNSSEC || s.geoNotFound || s.asnNotFound || c.Groups&grpTopECS != 0
	return s, nil
}

// normalizeName lower-cases a configured name and drops a trailing dot, the form names take in
// the metrics.
func normalizeName(n string) string {
	n = strings.ToLower(n)
	if len(n) > 1 {
		n = strings.TrimSuffix(n, ".")
	}
	return n
}

// Schema implements handler.Spec.
func (s *Spec) Schema() string { return Schema }

// Window implements handler.Spec.
func (s *Spec) Window() metrics.Window { return s.common.Window }

// AllGroupsDisabled reports `disable: [all]`: the handler then emits nothing.
func (s *Spec) AllGroupsDisabled() bool { return s.common.Groups == 0 }
