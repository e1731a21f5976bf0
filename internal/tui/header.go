package tui

import (
	"fmt"
	"strconv"
	"time"
)

// headerLines builds the summary lines of spec §5, each as a list of segments that the view
// joins with " | " (and reflows on narrow terminals). The DHCP line appears only when the
// policy has a dhcp handler (ours has none yet; a reference agent does).
func headerLines(s *Snapshot, loc *time.Location) [][]string {
	p, d := &s.Packets, &s.DNS
	lines := make([][]string, 0, 6)

	lines = append(lines, []string{
		"Pkts " + itoa(p.Total),
		"UDP " + withPct(p.UDP, p.Total),
		"TCP " + withPct(p.TCP, p.Total),
		"Other " + withPct(p.OtherL4, p.Total),
		"IPv4 " + withPct(p.IPv4, p.Total),
		"IPv6 " + withPct(p.IPv6, p.Total),
		"In " + withPct(p.In, p.In+p.Out),
		"Out " + withPct(p.Out, p.In+p.Out),
		"Deep Samples " + withPct(p.DeepSamples, p.Total),
	})

	lines = append(lines, []string{
		"Pkt Rates Total " + rate(p.Rates.PpsTotal) + " pps",
		"In " + rate(p.Rates.PpsIn) + " pps",
		"Out " + rate(p.Rates.PpsOut) + " pps",
		"IP Card. In: " + itoa(p.Cardinality.SrcIPsIn) + " | Out: " + itoa(p.Cardinality.DstIPsOut),
		"TCP Errors " + itoa(s.Pcap.TCPReassemblyErrors),
		"OS Drops " + itoa(s.Pcap.OSDrops),
		"IF Drops " + itoa(s.Pcap.IfDrops),
	})

	if s.HasDHCP {
		w := &s.DHCP.WirePackets
		base := w.Total - w.Filtered
		lines = append(lines, []string{
			"DHCP Wire Pkts " + itoa(base) + "/" + itoa(w.Total),
			"Rates Total " + rate(s.DHCP.Rates.Total),
			"Discover " + withPct(w.Discover, base),
			"Offer " + withPct(w.Offer, base),
			"Request " + withPct(w.Request, base),
			"Ack " + withPct(w.Ack, base),
		})
	}

	w := &d.WirePackets
	lines = append(lines, []string{
		"DNS Wire Pkts " + itoa(w.Total) + "/" + itoa(w.Events),
		"Rates Total " + rate(d.Rates.Total),
		"UDP " + withPct(w.UDP, w.Total),
		"TCP " + withPct(w.TCP, w.Total),
		"IPv4 " + withPct(w.IPv4, w.Total),
		"IPv6 " + withPct(w.IPv6, w.Total),
		"Query " + withPct(w.Queries, w.Total),
		"Response " + withPct(w.Replies, w.Total),
	})

	x := &d.Xact
	lines = append(lines, []string{
		"DNS Xacts " + itoa(x.Counts.Total),
		"Timed Out " + itoa(x.Counts.TimedOut),
		"In " + withPct(x.In.Total, x.Counts.Total),
		"Out " + withPct(x.Out.Total, x.Counts.Total),
		"In " + msQuantiles(x.In.QuantilesUS) + " ms",
		"Out " + msQuantiles(x.Out.QuantilesUS) + " ms",
		"Qname Card. " + itoa(d.Cardinality.QName),
	})

	lines = append(lines, []string{
		"DNS NOERROR " + withPct(w.NoError, w.Replies),
		"SRVFAIL " + withPct(w.SrvFail, w.Replies),
		"NXDOMAIN " + withPct(w.NXDomain, w.Replies),
		"REFUSED " + withPct(w.Refused, w.Replies),
		"NODATA " + withPct(w.NoData, w.Replies),
		timeWindow(s, loc),
	})
	return lines
}

func itoa(v Int) string { return strconv.FormatInt(int64(v), 10) }

// pct is part's share of whole in percent (0 when whole is not positive).
func pct(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * part / whole
}

// withPct is "N (P%)" with the reference's one decimal.
func withPct(v, whole Int) string {
	return fmt.Sprintf("%d (%.1f%%)", int64(v), pct(float64(v), float64(whole)))
}

// rate is "live/s p50/p90/p95/p99"; "-" stands for a live value the answer did not carry
// (merged windows and recorded streams have none).
func rate(r Rates) string {
	live := "-"
	if r.Live.Valid {
		live = strconv.FormatInt(r.Live.V, 10)
	}
	return fmt.Sprintf("%s/s %d/%d/%d/%d", live, int64(r.P50), int64(r.P90), int64(r.P95), int64(r.P99))
}

// msQuantiles shows microsecond quantiles in milliseconds with three significant digits
// where the reference's %3.1f would print 0.0 for every sub-100 µs loopback answer.
func msQuantiles(q Quantiles) string {
	return ms(q.P50) + "/" + ms(q.P90) + "/" + ms(q.P95) + "/" + ms(q.P99)
}

func ms(us Float) string {
	v := float64(us) / 1000
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a == 0:
		return "0"
	case a < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case a < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// timeWindow is the span of the data, from the packets handler's period (the reference's
// choice), else the dns handler's.
func timeWindow(s *Snapshot, loc *time.Location) string {
	per := s.Packets.Period
	if !s.HasPackets {
		per = s.DNS.Period
	}
	start, length := int64(per.StartTS), int64(per.Length)
	// Clamp to what time.Unix and Format handle sanely; the values are the agent's, not ours.
	const maxTS = 1 << 40
	if start < 0 || start > maxTS || length < 0 || length > maxTS {
		return fmt.Sprintf("Time Window ?, Period %ds", length)
	}
	t0 := time.Unix(start, 0).In(loc)
	t1 := time.Unix(start+length, 0).In(loc)
	return fmt.Sprintf("Time Window %s to %s, Period %ds", t0.Format(time.Kitchen), t1.Format(time.Kitchen), length)
}
