package tui

// table is one top-N table of spec §5: its title, its items and the base its shares are
// taken of.
type table struct {
	Title string
	items func(*Snapshot) TopList
	base  func(*Snapshot) float64
}

// tables in the reference's reading order (row by row of its 4-column grid); the view
// reflows them into as many columns as fit.
var tables = []table{
	{"Top QName 2", func(s *Snapshot) TopList { return s.DNS.TopQName2 }, dnsWireBase},
	{"Top QName 3", func(s *Snapshot) TopList { return s.DNS.TopQName3 }, dnsWireBase},
	{"Top NX", func(s *Snapshot) TopList { return s.DNS.TopNXDomain }, dnsReplyBase},
	{"Slow In", func(s *Snapshot) TopList { return s.DNS.Xact.In.TopSlow }, dnsXactBase},
	{"Top QTypes", func(s *Snapshot) TopList { return s.DNS.TopQType }, dnsWireBase},
	{"Top RCodes", func(s *Snapshot) TopList { return s.DNS.TopRCode }, dnsReplyBase},
	{"Top SRVFAILS", func(s *Snapshot) TopList { return s.DNS.TopSrvFail }, dnsReplyBase},
	{"Slow Out", func(s *Snapshot) TopList { return s.DNS.Xact.Out.TopSlow }, dnsXactBase},
	{"Top REFUSED", func(s *Snapshot) TopList { return s.DNS.TopRefused }, dnsReplyBase},
	{"IPv4", func(s *Snapshot) TopList { return s.Packets.TopIPv4 }, packetBase},
	{"IPv6", func(s *Snapshot) TopList { return s.Packets.TopIPv6 }, packetBase},
	{"Top DNS UDP Ports", func(s *Snapshot) TopList { return s.DNS.TopUDPPorts }, dnsWireBase},
	{"Top GeoLoc", func(s *Snapshot) TopList { return s.Packets.TopGeoLoc }, packetBase},
	{"Top ASN", func(s *Snapshot) TopList { return s.Packets.TopASN }, packetBase},
}

// TableTitles lists the table titles in display order.
func TableTitles() []string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = t.Title
	}
	return out
}

// Shares follow the reference: top-N sketches count deep-sampled events only, so a base
// counter of all events is scaled by the sampling rate (deep_samples/total of the packets
// handler, 1 when it has none).
func sampleRate(s *Snapshot) float64 {
	if s.Packets.Total > 0 && s.Packets.DeepSamples >= 0 {
		return float64(s.Packets.DeepSamples) / float64(s.Packets.Total)
	}
	return 1
}

func packetBase(s *Snapshot) float64 { return float64(s.Packets.DeepSamples) }

func dnsWireBase(s *Snapshot) float64 {
	return float64(s.DNS.WirePackets.Total) * sampleRate(s)
}

func dnsReplyBase(s *Snapshot) float64 {
	return float64(s.DNS.WirePackets.Replies) * sampleRate(s)
}

func dnsXactBase(s *Snapshot) float64 {
	return float64(s.DNS.Xact.Counts.Total) * sampleRate(s)
}
