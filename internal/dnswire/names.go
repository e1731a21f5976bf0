package dnswire

import (
	"strconv"
	"strings"
)

// rcodeNames are the names the reference prints (its RCodeNames table): IANA's mnemonics,
// except SRVFAIL for SERVFAIL. 16 is both BADVERS and BADSIG; output uses BADVERS, the first
// entry of the reference's initializer (a duplicate map key keeps the first), and ParseRcode
// accepts both.
var rcodeNames = [...]string{
	0:  "NOERROR",
	1:  "FORMERR",
	2:  "SRVFAIL",
	3:  "NXDOMAIN",
	4:  "NOTIMP",
	5:  "REFUSED",
	6:  "YXDOMAIN",
	7:  "YXRRSET",
	8:  "NXRRSET",
	9:  "NOTAUTH",
	10: "NOTZONE",
	11: "DSOTYPENI",
	16: "BADVERS",
	17: "BADKEY",
	18: "BADTIME",
	19: "BADMODE",
	20: "BADNAME",
	21: "BADALG",
	22: "BADTRUNC",
	23: "BADCOOKIE",
}

// qtypeNames are the mnemonics of the IANA "Resource Record (RR) TYPEs" registry
// (https://www.iana.org/assignments/dns-parameters, dns-parameters-4, as of 2025: up to
// DSYNC/HHIT/BRID, NXNAME, WALLET/CLA/IPN). 255 is written "*" by IANA and "ANY" here, as
// the reference and every DNS tool print it. Reserved (0, 65535), unassigned, private-use and
// obsolete-but-unnamed values are absent.
var qtypeNames = map[uint16]string{
	1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR",
	10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP",
	18: "AFSDB", 19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG",
	25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC",
	33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK",
	41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC",
	48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA",
	55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY",
	61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 66: "DSYNC",
	67: "HHIT", 68: "BRID",
	99: "SPF", 100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32",
	106: "L64", 107: "LP", 108: "EUI48", 109: "EUI64",
	128: "NXNAME",
	249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "ANY",
	256: "URI", 257: "CAA", 258: "AVC", 259: "DOA", 260: "AMTRELAY", 261: "RESINFO",
	262: "WALLET", 263: "CLA", 264: "IPN",
	32768: "TA", 32769: "DLV",
}

// qtypeDense is qtypeNames for the values below 512, indexed directly: the lookup happens
// for every counted packet and a slice index is cheaper than a map probe.
var qtypeDense [512]string

// Reverse tables for configuration parsing (upper-case keys).
var (
	rcodeByName = map[string]uint16{"BADSIG": 16}
	qtypeByName = map[string]uint16{"*": 255}
)

func init() {
	for t, s := range qtypeNames {
		if int(t) < len(qtypeDense) {
			qtypeDense[t] = s
		}
		qtypeByName[s] = t
	}
	for rc, s := range rcodeNames {
		if s != "" {
			rcodeByName[s] = uint16(rc)
		}
	}
}

// RcodeName returns the reference's name of an rcode (NOERROR, SRVFAIL, NXDOMAIN, …), or the
// decimal number for a value without one. Known names come from a static table and cost no
// allocation.
func RcodeName(rc uint16) string {
	if int(rc) < len(rcodeNames) && rcodeNames[rc] != "" {
		return rcodeNames[rc]
	}
	return strconv.Itoa(int(rc))
}

// QTypeName returns the IANA mnemonic of an RR type (A, AAAA, HTTPS, ANY, CAA, …), or the
// decimal number for an unassigned value. Known names cost no allocation.
func QTypeName(t uint16) string {
	if int(t) < len(qtypeDense) {
		if s := qtypeDense[t]; s != "" {
			return s
		}
	} else if s, ok := qtypeNames[t]; ok {
		return s
	}
	return strconv.Itoa(int(t))
}

// ParseRcode reads an rcode given as a name (case-insensitive, as RcodeName prints it, or
// BADSIG) or as a decimal number. Numbers without a name are rejected, like the reference's
// config validation does.
func ParseRcode(s string) (uint16, bool) {
	if rc, ok := parseDecimal(s); ok {
		if rc < len(rcodeNames) && rcodeNames[rc] != "" {
			return uint16(rc), true
		}
		return 0, false
	}
	rc, ok := rcodeByName[strings.ToUpper(s)]
	return rc, ok
}

// ParseQType reads an RR type given as an IANA mnemonic (case-insensitive: "TxT" is TXT,
// "TEXT" is nothing) or as a decimal number. Numbers that are not assigned types are rejected
// ("270" fails), as the reference rejected numbers missing from its table.
func ParseQType(s string) (uint16, bool) {
	if t, ok := parseDecimal(s); ok {
		if t <= 0xFFFF {
			if _, known := qtypeNames[uint16(t)]; known {
				return uint16(t), true
			}
		}
		return 0, false
	}
	t, ok := qtypeByName[strings.ToUpper(s)]
	return t, ok
}

// parseDecimal accepts only plain ASCII digits (no sign, no spaces, no base prefix).
func parseDecimal(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		// Saturate instead of overflowing: any value this large is rejected by the caller.
		if n = n*10 + int(c-'0'); n > 1<<20 {
			n = 1 << 20
		}
	}
	return n, true
}
