// Package hostspec holds the "host" address set of pktvisor (`host_spec`, `-H`, the dnstap
// `only_hosts` filter): a list of CIDR prefixes, and the per-packet direction derived from it
// (destination in the set ⇒ toward the host, "in"; else source in the set ⇒ from the host, "out").
//
// Design choices:
//   - Only the standard library (net/netip) is used; parsing follows the reference's rules and
//     error strings exactly, because the same messages are part of the externally visible
//     behaviour (config validation errors).
//   - Entries keep the address as written (192.168.1.1/23 stays 192.168.1.1/23, as the reference
//     reports it); matching uses the masked network.
//   - The matcher is immutable and published through an atomic pointer, so Contains on the hot
//     path is one atomic load plus integer compares: no lock, no allocation, and Add (interface
//     addresses appended later by the live agent) is safe while workers are reading.
//   - Up to linearMax prefixes per family are scanned linearly (fastest for the usual handful);
//     larger sets are grouped per prefix length with sorted networks and a binary search per
//     length, so the cost grows with the number of distinct lengths, not the number of prefixes.
//
// Reference quirks kept: the address 0.0.0.0 never matches (it is the unspecified address) and
// an IPv4 /0 entry matches every other IPv4 address. Quirk NOT kept: in the reference an IPv6 /0
// entry matches nothing; here ::/0 matches every IPv6 address (see README.md).
package hostspec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Errors returned by Parse, wrapped with the offending text so the message reads exactly as the
// reference's ("invalid CIDR: 192.168.0.0/64").
var (
	ErrInvalidCIDR = errors.New("invalid CIDR")
	ErrInvalidIPv4 = errors.New("invalid IPv4 address")
	ErrInvalidIPv6 = errors.New("invalid IPv6 address")
)

// Direction of a packet relative to the host set.
type Direction uint8

const (
	Unknown  Direction = iota // neither address is in the set (or not IP)
	ToHost                    // destination in the set: "in"
	FromHost                  // source in the set (destination not): "out"
)

// String returns the metric label of the direction ("in", "out", "unknown").
func (d Direction) String() string {
	switch d {
	case ToHost:
		return "in"
	case FromHost:
		return "out"
	default:
		return "unknown"
	}
}

// Set is a set of host prefixes. The zero value is an empty set ready to use. Contains and
// Direction are safe for concurrent use with each other and with Add. A Set must not be copied.
type Set struct {
	mu sync.Mutex // serialises writers (Add); readers never take it
	m  atomic.Pointer[matcher]
}

// Parse parses a comma-separated list of CIDRs ("192.168.0.0/24,2001:db8::/32"). Whitespace
// around entries is trimmed and empty entries are skipped; "" gives an empty set.
func Parse(spec string) (*Set, error) {
	var prefixes []netip.Prefix
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, err := ParsePrefix(entry)
		if err != nil {
			return nil, err
		}
		prefixes = append(prefixes, p)
	}
	s := &Set{}
	s.m.Store(build(prefixes, linearMax))
	return s, nil
}

// ParseList parses one CIDR per element (the YAML list form of dnstap `only_hosts`).
func ParseList(entries []string) (*Set, error) {
	prefixes := make([]netip.Prefix, 0, len(entries))
	for _, entry := range entries {
		p, err := ParsePrefix(strings.TrimSpace(entry))
		if err != nil {
			return nil, err
		}
		prefixes = append(prefixes, p)
	}
	s := &Set{}
	s.m.Store(build(prefixes, linearMax))
	return s, nil
}

// maxBitsDigits bounds the digits of a prefix length we bother converting; anything longer is
// out of range anyway and must not overflow the conversion.
const maxBitsDigits = 4

// ParsePrefix parses one "address/length" entry with the reference's rules: the "/length" is
// mandatory and must be all decimal digits within range (leading zeros allowed), the length is
// checked before the address, an entry whose address holds ':' is IPv6 (no zone), otherwise it
// is a dotted-quad IPv4 address.
func ParsePrefix(entry string) (netip.Prefix, error) {
	slash := strings.IndexByte(entry, '/')
	if slash < 0 {
		return netip.Prefix{}, fmt.Errorf("%w: %s", ErrInvalidCIDR, entry)
	}
	ip, lenText := entry[:slash], entry[slash+1:]
	bits, ok := parseBits(lenText)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%w: %s", ErrInvalidCIDR, entry)
	}
	if strings.IndexByte(ip, ':') >= 0 {
		if bits > 128 {
			return netip.Prefix{}, fmt.Errorf("%w: %s", ErrInvalidCIDR, entry)
		}
		addr, err := netip.ParseAddr(ip)
		// inet_pton knows no zones; netip parses "fe80::1%eth0" and would accept it.
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%w: %s", ErrInvalidIPv6, ip)
		}
		return netip.PrefixFrom(addr, bits), nil
	}
	if bits > 32 {
		return netip.Prefix{}, fmt.Errorf("%w: %s", ErrInvalidCIDR, entry)
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return netip.Prefix{}, fmt.Errorf("%w: %s", ErrInvalidIPv4, ip)
	}
	return netip.PrefixFrom(addr, bits), nil
}

// parseBits accepts a non-empty run of ASCII digits; values that cannot be a prefix length
// (more than maxBitsDigits digits after leading zeros) report ok with an out-of-range value.
func parseBits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n, digits := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n == 0 && c == '0' {
			continue // leading zero: the reference's stoi accepts "/024"
		}
		digits++
		if digits > maxBitsDigits {
			n = 1 << 20 // out of range for both families; keep scanning for non-digits
			continue
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Add inserts a prefix (an interface address and its netmask, say). Invalid prefixes are
// ignored. The address family is taken as is: an IPv4-mapped IPv6 prefix is an IPv6 entry, so
// callers holding 16-byte IPv4 addresses should Unmap them first.
func (s *Set) Add(prefix netip.Prefix) {
	if !prefix.IsValid() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var old []netip.Prefix
	if m := s.m.Load(); m != nil {
		old = m.prefixes
	}
	next := make([]netip.Prefix, 0, len(old)+1)
	next = append(append(next, old...), prefix)
	s.m.Store(build(next, linearMax))
}

// Contains reports whether addr (4 bytes IPv4 or 16 bytes IPv6, network order) is inside any
// prefix of the set. Other lengths are never contained. A 16-byte IPv4-mapped address is
// matched against the IPv6 entries only, like the reference.
func (s *Set) Contains(addr []byte) bool {
	m := s.m.Load()
	if m == nil {
		return false
	}
	return m.contains(addr)
}

// Direction classifies a packet: dst in the set ⇒ ToHost; else src in the set ⇒ FromHost; else
// Unknown. Traffic between two host addresses is therefore ToHost, as in the reference.
func (s *Set) Direction(src, dst []byte) Direction {
	m := s.m.Load()
	if m == nil {
		return Unknown
	}
	if m.contains(dst) {
		return ToHost
	}
	if m.contains(src) {
		return FromHost
	}
	return Unknown
}

// Len returns the number of entries (duplicates included).
func (s *Set) Len() int {
	if m := s.m.Load(); m != nil {
		return len(m.prefixes)
	}
	return 0
}

// String returns the entries as given, comma-separated, in insertion order.
func (s *Set) String() string {
	m := s.m.Load()
	if m == nil {
		return ""
	}
	var b strings.Builder
	for i, p := range m.prefixes {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Prefixes returns a copy of the entries in insertion order, addresses as given (not masked).
func (s *Set) Prefixes() []netip.Prefix {
	if m := s.m.Load(); m != nil {
		return slices.Clone(m.prefixes)
	}
	return nil
}

// linearMax is the largest per-family entry count matched by a linear scan: 16 branch-free
// (network, mask) compares sit in a few cache lines and cost about what a binary search per
// distinct length would, without its unpredictable branches.
const linearMax = 16

// matcher is an immutable snapshot of a Set.
type matcher struct {
	prefixes []netip.Prefix
	v4       v4matcher
	v6       v6matcher
}

func (m *matcher) contains(addr []byte) bool {
	switch len(addr) {
	case 4:
		a := binary.BigEndian.Uint32(addr)
		if a == 0 {
			return false // reference quirk kept: 0.0.0.0 never matches
		}
		return m.v4.contains(a)
	case 16:
		return m.v6.contains(u128{binary.BigEndian.Uint64(addr[:8]), binary.BigEndian.Uint64(addr[8:])})
	default:
		return false
	}
}

// build makes a matcher; linear is the per-family threshold (a parameter so tests can force
// either structure on the same input).
func build(prefixes []netip.Prefix, linear int) *matcher {
	m := &matcher{prefixes: prefixes}
	var v4 []v4net
	var v6 []v6net
	for _, p := range prefixes {
		if p.Addr().Is4() {
			a := p.Addr().As4()
			mask := v4mask(p.Bits())
			v4 = append(v4, v4net{binary.BigEndian.Uint32(a[:]) & mask, mask})
		} else {
			a := p.Addr().As16()
			mask := v6mask(p.Bits())
			n := u128{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
			v6 = append(v6, v6net{n.and(mask), mask})
		}
	}
	m.v4.init(v4, linear)
	m.v6.init(v6, linear)
	return m
}

func v4mask(bits int) uint32 {
	if bits <= 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

type u128 struct{ hi, lo uint64 }

func (a u128) and(b u128) u128 { return u128{a.hi & b.hi, a.lo & b.lo} }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func v6mask(bits int) u128 {
	switch {
	case bits <= 0:
		return u128{}
	case bits <= 64:
		return u128{^uint64(0) << (64 - bits), 0}
	default:
		return u128{^uint64(0), ^uint64(0) << (128 - bits)}
	}
}

type v4net struct{ net, mask uint32 }

// v4group holds the masked networks of one prefix length, sorted and unique.
type v4group struct {
	mask uint32
	nets []uint32
}

type v4matcher struct {
	linear []v4net
	groups []v4group
}

func (m *v4matcher) init(nets []v4net, linear int) {
	if len(nets) <= linear {
		m.linear = nets
		return
	}
	slices.SortFunc(nets, func(a, b v4net) int {
		if a.mask != b.mask {
			// Wider prefixes first: they are the likeliest to match, ending the loop early.
			if a.mask < b.mask {
				return -1
			}
			return 1
		}
		if a.net < b.net {
			return -1
		}
		if a.net > b.net {
			return 1
		}
		return 0
	})
	for i := 0; i < len(nets); {
		j := i
		g := v4group{mask: nets[i].mask}
		for ; j < len(nets) && nets[j].mask == g.mask; j++ {
			if n := len(g.nets); n == 0 || g.nets[n-1] != nets[j].net {
				g.nets = append(g.nets, nets[j].net)
			}
		}
		m.groups = append(m.groups, g)
		i = j
	}
}

func (m *v4matcher) contains(a uint32) bool {
	for _, n := range m.linear {
		if a&n.mask == n.net {
			return true
		}
	}
	for gi := range m.groups {
		g := &m.groups[gi]
		x := a & g.mask
		lo, hi := 0, len(g.nets)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if g.nets[mid] < x {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo < len(g.nets) && g.nets[lo] == x {
			return true
		}
	}
	return false
}

type v6net struct{ net, mask u128 }

type v6group struct {
	mask u128
	nets []u128
}

type v6matcher struct {
	linear []v6net
	groups []v6group
}

func (m *v6matcher) init(nets []v6net, linear int) {
	if len(nets) <= linear {
		m.linear = nets
		return
	}
	slices.SortFunc(nets, func(a, b v6net) int {
		if a.mask != b.mask {
			if a.mask.less(b.mask) {
				return -1
			}
			return 1
		}
		if a.net.less(b.net) {
			return -1
		}
		if b.net.less(a.net) {
			return 1
		}
		return 0
	})
	for i := 0; i < len(nets); {
		j := i
		g := v6group{mask: nets[i].mask}
		for ; j < len(nets) && nets[j].mask == g.mask; j++ {
			if n := len(g.nets); n == 0 || g.nets[n-1] != nets[j].net {
				g.nets = append(g.nets, nets[j].net)
			}
		}
		m.groups = append(m.groups, g)
		i = j
	}
}

func (m *v6matcher) contains(a u128) bool {
	for _, n := range m.linear {
		if a.and(n.mask) == n.net {
			return true
		}
	}
	for gi := range m.groups {
		g := &m.groups[gi]
		x := a.and(g.mask)
		lo, hi := 0, len(g.nets)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if g.nets[mid].less(x) {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo < len(g.nets) && g.nets[lo] == x {
			return true
		}
	}
	return false
}
