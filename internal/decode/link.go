package decode

import "strconv"

// LinkType is a pcap LINKTYPE_* number: the framing of a captured frame.
type LinkType uint32

// Link types the decoder understands. The numbers are the tcpdump.org LINKTYPE_* values, which
// is what pcap and pcapng files store.
const (
	LinkNull      LinkType = 0   // BSD loopback: 4-byte address family in the writer's byte order
	LinkEthernet  LinkType = 1   // Ethernet II / 802.3
	LinkDLTRaw12  LinkType = 12  // DLT_RAW on most BSDs and Linux: raw IPv4/IPv6
	LinkDLTRaw14  LinkType = 14  // DLT_RAW on OpenBSD: raw IPv4/IPv6
	LinkRaw       LinkType = 101 // raw IPv4/IPv6, version from the first nibble
	LinkLoop      LinkType = 108 // OpenBSD loopback: 4-byte address family, network byte order
	LinkLinuxSLL  LinkType = 113 // Linux "cooked" capture v1 (the "any" device)
	LinkIPv4      LinkType = 228 // raw IPv4 only
	LinkIPv6      LinkType = 229 // raw IPv6 only
	LinkLinuxSLL2 LinkType = 276 // Linux "cooked" capture v2
)

// Supported reports whether Decode understands frames of this link type.
func (lt LinkType) Supported() bool {
	switch lt {
	case LinkNull, LinkEthernet, LinkDLTRaw12, LinkDLTRaw14, LinkRaw, LinkLoop,
		LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2:
		return true
	}
	return false
}

// String names the link type as tcpdump does (LINKTYPE_ without the prefix), with its number.
func (lt LinkType) String() string {
	var name string
	switch lt {
	case LinkNull:
		name = "NULL"
	case LinkEthernet:
		name = "ETHERNET"
	case LinkDLTRaw12, LinkDLTRaw14, LinkRaw:
		name = "RAW"
	case LinkLoop:
		name = "LOOP"
	case LinkLinuxSLL:
		name = "LINUX_SLL"
	case LinkIPv4:
		name = "IPV4"
	case LinkIPv6:
		name = "IPV6"
	case LinkLinuxSLL2:
		name = "LINUX_SLL2"
	default:
		return "link type " + strconv.FormatUint(uint64(lt), 10)
	}
	return name + "(" + strconv.FormatUint(uint64(lt), 10) + ")"
}
