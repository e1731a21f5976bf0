package e2e

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// dnsperfResult is dnsperf's own summary of one run.
type dnsperfResult struct {
	Sent, Completed, Lost int64
	RCodes                map[string]int64 // "NOERROR" → count, from "Response codes:"
}

var (
	dpSent      = regexp.MustCompile(`(?m)^\s*Queries sent:\s+(\d+)`)
	dpCompleted = regexp.MustCompile(`(?m)^\s*Queries completed:\s+(\d+)`)
	dpLost      = regexp.MustCompile(`(?m)^\s*Queries lost:\s+(\d+)`)
	dpRCodes    = regexp.MustCompile(`(?m)^\s*Response codes:\s+(.*)$`)
	dpOneRCode  = regexp.MustCompile(`^([A-Z0-9]+) (\d+) \(`)
)

// parseDNSPerf reads the "Statistics:" block that dnsperf 2.x prints at the end of a run.
func parseDNSPerf(out string) (dnsperfResult, error) {
	r := dnsperfResult{RCodes: map[string]int64{}}
	for _, f := range []struct {
		re  *regexp.Regexp
		dst *int64
	}{{dpSent, &r.Sent}, {dpCompleted, &r.Completed}, {dpLost, &r.Lost}} {
		m := f.re.FindStringSubmatch(out)
		if m == nil {
			return r, fmt.Errorf("dnsperf output lacks %q", f.re)
		}
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return r, fmt.Errorf("dnsperf %q: %w", m[0], err)
		}
		*f.dst = n
	}
	// No responses at all ⇒ dnsperf omits the line.
	if m := dpRCodes.FindStringSubmatch(out); m != nil {
		for _, part := range strings.Split(m[1], ", ") {
			pm := dpOneRCode.FindStringSubmatch(strings.TrimSpace(part))
			if pm == nil {
				return r, fmt.Errorf("dnsperf response code %q not understood", part)
			}
			n, _ := strconv.ParseInt(pm[2], 10, 64)
			r.RCodes[pm[1]] += n
		}
	}
	return r, nil
}

// wireTruth is what the dns handler's wire_packets counters must show, one count per DNS
// message (several TCP messages may share a segment, one may span several).
type wireTruth struct {
	Queries, Replies, NoError, NXDomain, NoData, UDP, TCP, IPv4, IPv6, Total int64
}

// frameTruth is what the net handler's counters must show, one count per captured frame.
type frameTruth struct {
	Total, UDP, TCP, IPv4, IPv6 int64
}

// tsharkArgs makes tshark's DNS-over-TCP count the truth (DESIGN.md §7): reassemble TCP
// streams, out-of-order segments included, and DNS messages across segments. The DNS port is
// 53, which tshark decodes as DNS without -d.
func tsharkArgs(pcap string) []string {
	return []string{
		"-n", "-r", pcap,
		"-o", "tcp.desegment_tcp_streams:TRUE",
		"-o", "tcp.reassemble_out_of_order:TRUE",
		"-o", "dns.desegment_dns_messages:TRUE",
		"-T", "fields",
		"-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "frame.protocols",
		"-e", "dns.flags.response",
		"-e", "dns.flags.rcode",
		"-e", "dns.count.answers",
	}
}

// tsharkTruth decodes a capture with tshark and counts frames and DNS messages.
func tsharkTruth(ctx context.Context, pcap string) (wireTruth, frameTruth, error) {
	out, stderr, err := runStdout(ctx, "tshark", tsharkArgs(pcap)...)
	if err != nil {
		return wireTruth{}, frameTruth{}, fmt.Errorf("tshark: %w: %s", err, stderr)
	}
	return parseTsharkFields(out)
}

// parseTsharkFields counts the output of tsharkArgs: one line per frame with the protocol
// stack ("eth:ethertype:ip:udp:dns") and, per DNS message in the frame, its QR flag, (for
// replies) RCODE and ANCOUNT, comma-separated in message order.
func parseTsharkFields(out string) (wireTruth, frameTruth, error) {
	var w wireTruth
	var f frameTruth
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		cols := strings.Split(sc.Text(), "\t")
		for len(cols) < 4 {
			cols = append(cols, "")
		}
		protos := strings.Split(cols[0], ":")
		var l3, l4 string
		for i, p := range protos {
			if p == "ethertype" && i+1 < len(protos) {
				l3 = protos[i+1]
				if i+2 < len(protos) {
					l4 = protos[i+2]
				}
				break
			}
		}
		f.Total++
		switch l3 {
		case "ip":
			f.IPv4++
		case "ipv6":
			f.IPv6++
		}
		switch l4 {
		case "udp":
			f.UDP++
		case "tcp":
			f.TCP++
		}
		if cols[1] == "" {
			continue
		}
		qr := strings.Split(cols[1], ",")
		ans := strings.Split(cols[3], ",")
		if len(ans) != len(qr) {
			return w, f, fmt.Errorf("tshark line %d: %d QR flags but %d answer counts: %q", line, len(qr), len(ans), sc.Text())
		}
		var rcodes []string
		if cols[2] != "" {
			rcodes = strings.Split(cols[2], ",")
		}
		nReplies := 0
		for _, v := range qr {
			switch v {
			case "0", "False":
				w.Queries++
			case "1", "True":
				w.Replies++
				nReplies++
			default:
				return w, f, fmt.Errorf("tshark line %d: QR flag %q", line, v)
			}
		}
		// tshark shows an RCODE for replies only; a frame's messages all travel one way.
		if len(rcodes) != nReplies || (nReplies != 0 && nReplies != len(qr)) {
			return w, f, fmt.Errorf("tshark line %d: %d replies of %d messages but %d rcodes: %q", line, nReplies, len(qr), len(rcodes), sc.Text())
		}
		for i, rc := range rcodes {
			switch rc {
			case "0":
				w.NoError++
				if ans[i] == "0" {
					w.NoData++
				}
			case "3":
				w.NXDomain++
			}
		}
		n := int64(len(qr))
		w.Total += n
		switch l3 {
		case "ip":
			w.IPv4 += n
		case "ipv6":
			w.IPv6 += n
		}
		switch l4 {
		case "udp":
			w.UDP += n
		case "tcp":
			w.TCP += n
		}
	}
	if err := sc.Err(); err != nil {
		return w, f, fmt.Errorf("read tshark output: %w", err)
	}
	return w, f, nil
}

var tcpdumpDropped = regexp.MustCompile(`(?m)^(\d+) packets dropped by kernel`)

// tcpdumpKernelDrops reads the count tcpdump prints when it stops: a capture that lost
// packets is no truth.
func tcpdumpKernelDrops(log string) (int64, error) {
	m := tcpdumpDropped.FindStringSubmatch(log)
	if m == nil {
		return 0, fmt.Errorf("tcpdump printed no drop count")
	}
	return strconv.ParseInt(m[1], 10, 64)
}
