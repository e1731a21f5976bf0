package bpf

// Name tables. tcpdump resolves names through the system (/etc/protocols, /etc/services); a
// capture agent must not depend on the host's files, so the names are built in from the IANA
// registries (and the Debian netbase files tcpdump reads, for the port/protocol pairing).

// ipProtoNames maps IP protocol names (proto \name) to numbers: IANA keyword (lower case, as in
// /etc/protocols) and its upper-case alias. "icmp6" is deliberately absent, as in tcpdump.
var ipProtoNames = map[string]uint32{}

func init() {
	for _, p := range []struct {
		name  string
		num   uint32
		alias string
	}{
		{"ip", 0, "IP"}, {"hopopt", 0, "HOPOPT"}, {"icmp", 1, "ICMP"}, {"igmp", 2, "IGMP"},
		{"ggp", 3, "GGP"}, {"ipencap", 4, "IP-ENCAP"}, {"st", 5, "ST"}, {"tcp", 6, "TCP"},
		{"egp", 8, "EGP"}, {"igp", 9, "IGP"}, {"pup", 12, "PUP"}, {"udp", 17, "UDP"},
		{"hmp", 20, "HMP"}, {"xns-idp", 22, "XNS-IDP"}, {"rdp", 27, "RDP"},
		{"iso-tp4", 29, "ISO-TP4"}, {"dccp", 33, "DCCP"}, {"xtp", 36, "XTP"}, {"ddp", 37, "DDP"},
		{"idpr-cmtp", 38, "IDPR-CMTP"}, {"ipv6", 41, "IPv6"}, {"ipv6-route", 43, "IPv6-Route"},
		{"ipv6-frag", 44, "IPv6-Frag"}, {"idrp", 45, "IDRP"}, {"rsvp", 46, "RSVP"},
		{"gre", 47, "GRE"}, {"esp", 50, "IPSEC-ESP"}, {"ah", 51, "IPSEC-AH"}, {"skip", 57, "SKIP"},
		{"ipv6-icmp", 58, "IPv6-ICMP"}, {"ipv6-nonxt", 59, "IPv6-NoNxt"},
		{"ipv6-opts", 60, "IPv6-Opts"}, {"rspf", 73, "RSPF"}, {"vmtp", 81, "VMTP"},
		{"eigrp", 88, "EIGRP"}, {"ospf", 89, "OSPFIGP"}, {"ax.25", 93, "AX.25"},
		{"ipip", 94, "IPIP"}, {"etherip", 97, "ETHERIP"}, {"encap", 98, "ENCAP"},
		{"pim", 103, "PIM"}, {"ipcomp", 108, "IPCOMP"}, {"vrrp", 112, "VRRP"},
		{"l2tp", 115, "L2TP"}, {"isis", 124, "ISIS"}, {"sctp", 132, "SCTP"}, {"fc", 133, "FC"},
		{"mobility-header", 135, "Mobility-Header"}, {"udplite", 136, "UDPLite"},
		{"mpls-in-ip", 137, "MPLS-in-IP"}, {"hip", 139, "HIP"}, {"shim6", 140, "Shim6"},
		{"wesp", 141, "WESP"}, {"rohc", 142, "ROHC"}, {"ethernet", 143, "Ethernet"},
	} {
		ipProtoNames[p.name] = p.num
		ipProtoNames[p.alias] = p.num
	}
}

// etherProtoNames are the Ethernet-type names libpcap knows that are plain ethertype
// comparisons (its LLC-encapsulated ones, such as ipx and atalk, are not supported).
var etherProtoNames = map[string]uint32{
	"ip":       etherTypeIPv4,
	"ip6":      etherTypeIPv6,
	"arp":      etherTypeARP,
	"rarp":     etherTypeRARP,
	"decnet":   0x6003,
	"lat":      0x6004,
	"sca":      0x6007,
	"moprc":    0x6002,
	"mopdl":    0x6001,
	"loopback": 0x9000,
}

// portName is a service name: its port and the transport it is registered for (0: both TCP
// and UDP, which tcpdump then also applies to SCTP).
type portName struct {
	port  uint32
	proto uint32
}

// portNames holds the service names operators use with this tool, with the transports listed
// in Debian's netbase /etc/services (what tcpdump resolves them to on Debian).
var portNames = map[string]portName{
	"ftp":      {21, protoTCP},
	"ssh":      {22, protoTCP},
	"telnet":   {23, protoTCP},
	"smtp":     {25, protoTCP},
	"mail":     {25, protoTCP},
	"domain":   {53, 0},
	"bootps":   {67, protoUDP},
	"bootpc":   {68, protoUDP},
	"tftp":     {69, protoUDP},
	"http":     {80, protoTCP},
	"www":      {80, protoTCP},
	"pop3":     {110, protoTCP},
	"ntp":      {123, protoUDP},
	"snmp":     {161, 0},
	"bgp":      {179, protoTCP},
	"ldap":     {389, 0},
	"https":    {443, 0},
	"isakmp":   {500, protoUDP},
	"syslog":   {514, 0}, // also an alias of shell 514/tcp
	"radius":   {1812, 0},
	"sip":      {5060, 0},
	"mdns":     {5353, protoUDP},
	"domain-s": {853, 0},
}

// arithConstants are libpcap's named numbers (tcp[tcpflags] & tcp-syn != 0).
var arithConstants = map[string]uint32{
	"icmptype": 0, "icmpcode": 1,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
	"tcpflags": 13, "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
	"icmp6type": 0, "icmp6code": 1,
	"icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
	"icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
	"icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
	"icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133,
	"icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
	"icmp6-redirect": 137, "icmp6-routerrenum": 138, "icmp6-nodeinformationquery": 139,
	"icmp6-nodeinformationresponse": 140, "icmp6-ineighbordiscoverysolicit": 141,
	"icmp6-ineighbordiscoveryadvert": 142, "icmp6-multicastlistenerreportv2": 143,
	"icmp6-homeagentdiscoveryrequest": 144, "icmp6-homeagentdiscoveryreply": 145,
	"icmp6-mobileprefixsolicit": 146, "icmp6-mobileprefixadvert": 147,
	"icmp6-certpathsolicit": 148, "icmp6-certpathadvert": 149,
	"icmp6-multicastrouteradvert": 151, "icmp6-multicastroutersolicit": 152,
	"icmp6-multicastrouterterm": 153,
}

// unsupportedKeywords are pcap-filter(7) words this compiler rejects with a clear message
// instead of a bare syntax error.
var unsupportedKeywords = map[string]bool{
	"gateway": true, "decnet": true, "iso": true, "esis": true, "es-is": true, "isis": true,
	"is-is": true, "clnp": true, "stp": true, "ipx": true, "netbeui": true, "atalk": true,
	"aarp": true, "lat": true, "sca": true, "moprc": true, "mopdl": true, "llc": true,
	"inbound": true, "outbound": true, "ifindex": true, "ifname": true, "on": true,
	"rnr": true, "rulenum": true, "reason": true, "rset": true, "ruleset": true, "srnr": true,
	"subrulenum": true, "action": true, "fddi": true, "tr": true, "wlan": true, "ppp": true,
	"slip": true, "radio": true, "mpls": true, "pppoes": true, "pppoed": true, "geneve": true,
	"protochain": true, "lane": true, "oamf4": true, "oamf4ec": true, "oamf4sc": true,
	"oam": true, "metac": true, "bcc": true, "sc": true, "ilmic": true, "connectmsg": true,
	"metaconnect": true, "type": true, "subtype": true, "dir": true, "addr1": true,
	"addr2": true, "addr3": true, "addr4": true, "ra": true, "ta": true, "carp": true,
	"vrrp": true, "pim": true, "ah": true, "esp": true, "igrp": true, "vpi": true, "vci": true,
	"fisu": true, "lssu": true, "msu": true, "hfisu": true, "hlssu": true, "hmsu": true,
	"sio": true, "opc": true, "dpc": true, "sls": true, "hsio": true, "hopc": true,
	"hdpc": true, "hsls": true, "vxlan": true,
}
