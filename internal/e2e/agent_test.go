package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Handler instance names of the default policy that `pktvisord IFACE` creates (spec §1.3).
const (
	policyName  = "default"
	netHandler  = "default-default-net"
	dnsHandler  = "default-default-dns"
	pcapHandler = "default-default-pcap_stats"
)

// agentCounts holds the counters the test compares, read from the live bucket.
type agentCounts struct {
	DNS struct {
		WirePackets map[string]int64 `json:"wire_packets"`
		Xact        struct {
			Counts struct {
				Total    int64 `json:"total"`
				TimedOut int64 `json:"timed_out"`
			} `json:"counts"`
			In struct {
				Total int64 `json:"total"`
			} `json:"in"`
			Out struct {
				Total int64 `json:"total"`
			} `json:"out"`
		} `json:"xact"`
	}
	Packets struct {
		Total, UDP, TCP, IPv4, IPv6, OtherL4, Filtered int64
	}
	Pcap struct {
		OSDrops             int64 `json:"os_drops"`
		IfDrops             int64 `json:"if_drops"`
		TCPReassemblyErrors int64 `json:"tcp_reassembly_errors"`
	}
}

// key is what "stopped changing" compares: every counter the test asserts.
func (c agentCounts) key() string {
	b, _ := json.Marshal(c)
	return string(b)
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// httpGet returns the body of a 200 answer.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: status %s: %.300s", url, resp.Status, body)
	}
	return body, nil
}

// fetchCounts reads GET /api/v1/policies/default/metrics/bucket/0, whose shape is
// {"default":{"<handler instance>":{"<schema key>":{...}}}} (spec §3).
func fetchCounts(ctx context.Context, base string) (agentCounts, error) {
	var c agentCounts
	url := base + "/api/v1/policies/" + policyName + "/metrics/bucket/0"
	body, err := httpGet(ctx, url)
	if err != nil {
		return c, err
	}
	var top map[string]map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return c, fmt.Errorf("GET %s: decode: %w: %.300s", url, err, body)
	}
	pol, ok := top[policyName]
	if !ok {
		return c, fmt.Errorf("GET %s: no policy %q in %.300s", url, policyName, body)
	}
	get := func(handler, schema string, dst any) error {
		raw, ok := pol[handler][schema]
		if !ok {
			return fmt.Errorf("GET %s: no %s.%s.%s", url, policyName, handler, schema)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("GET %s: decode %s.%s: %w", url, handler, schema, err)
		}
		return nil
	}
	if err := get(dnsHandler, "dns", &c.DNS); err != nil {
		return c, err
	}
	var pk struct {
		Total    int64 `json:"total"`
		UDP      int64 `json:"udp"`
		TCP      int64 `json:"tcp"`
		IPv4     int64 `json:"ipv4"`
		IPv6     int64 `json:"ipv6"`
		OtherL4  int64 `json:"other_l4"`
		Filtered int64 `json:"filtered"`
	}
	if err := get(netHandler, "packets", &pk); err != nil {
		return c, err
	}
	c.Packets.Total, c.Packets.UDP, c.Packets.TCP = pk.Total, pk.UDP, pk.TCP
	c.Packets.IPv4, c.Packets.IPv6, c.Packets.OtherL4, c.Packets.Filtered = pk.IPv4, pk.IPv6, pk.OtherL4, pk.Filtered
	if err := get(pcapHandler, "pcap", &c.Pcap); err != nil {
		return c, err
	}
	return c, nil
}
