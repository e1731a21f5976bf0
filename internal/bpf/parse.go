package bpf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Protocol qualifiers.
const (
	qpDefault = iota
	qpLink    // ether, link
	qpIP
	qpIP6
	qpARP
	qpRARP
	qpTCP
	qpUDP
	qpSCTP
	qpICMP
	qpICMP6
	qpIGMP
)

var protoQualifiers = map[string]int{
	"ether": qpLink, "link": qpLink, "ip": qpIP, "ip6": qpIP6, "arp": qpARP, "rarp": qpRARP,
	"tcp": qpTCP, "udp": qpUDP, "sctp": qpSCTP, "icmp": qpICMP, "icmp6": qpICMP6, "igmp": qpIGMP,
}

// Address-type qualifiers.
const (
	qaDefault = iota
	qaHost
	qaNet
	qaPort
	qaPortRange
	qaProto
)

var addrQualifiers = map[string]int{"host": qaHost, "net": qaNet, "port": qaPort, "portrange": qaPortRange}

// keywords are the words that never stand for an identifier.
var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "src": true, "dst": true, "mask": true, "proto": true,
	"vlan": true, "less": true, "greater": true, "len": true, "broadcast": true, "multicast": true,
}

func isKeyword(w string) bool {
	if keywords[w] || unsupportedKeywords[w] {
		return true
	}
	if _, ok := protoQualifiers[w]; ok {
		return true
	}
	_, ok := addrQualifiers[w]
	return ok
}

// qual is the qualifier set of a primitive; pcap-filter(7) lets "host a or b" reuse the
// qualifiers of the previous primitive, so the parser carries the last one along.
type qual struct {
	valid     bool
	proto     int
	protoName string
	dir       int
	addr      int
}

// maxDepth bounds recursion (parentheses, not chains, arithmetic nesting).
const maxDepth = 200

type parser struct {
	expr  string
	toks  []token
	p     int
	l     *link
	depth int
}

func (p *parser) peek() token { return p.toks[p.p] }
func (p *parser) peekN(n int) token {
	if p.p+n < len(p.toks) {
		return p.toks[p.p+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.p]
	if t.kind != tEOF {
		p.p++
	}
	return t
}

func (p *parser) errAt(t token, format string, args ...any) *Error {
	return errAt(p.expr, t.pos, fmt.Sprintf(format, args...))
}

func (p *parser) syntaxError(t token) *Error {
	if t.kind == tEOF {
		return errAt(p.expr, t.pos, "syntax error: unexpected end of expression")
	}
	return errAt(p.expr, t.pos, fmt.Sprintf("syntax error at '%s'", t.text))
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errAt(p.peek(), "expression nested too deeply")
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// furthest picks, of two failed alternatives, the error that got further into the input: it
// is the one that names what the user most likely got wrong.
func furthest(a, b error) error {
	ea, oka := a.(*Error)
	eb, okb := b.(*Error)
	if oka && okb && eb.Pos > ea.Pos {
		return b
	}
	if a == nil {
		return b
	}
	return a
}

func isWordTok(t token, w string) bool { return t.kind == tWord && t.text == w }

func isAnd(t token) bool { return t.kind == tAndAnd || isWordTok(t, "and") }
func isOr(t token) bool  { return t.kind == tOrOr || isWordTok(t, "or") }
func isNot(t token) bool { return t.kind == tNot || isWordTok(t, "not") }

// parse parses the whole expression.
func (p *parser) parse() (*cond, error) {
	if p.peek().kind == tEOF {
		return condTrue, nil
	}
	c, _, err := p.parseExpr(qual{})
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.syntaxError(t)
	}
	return c, nil
}

// parseExpr: term { (and|or) (term | id) }. "and" and "or" have equal precedence and
// associate to the left, as in libpcap's grammar.
func (p *parser) parseExpr(inh qual) (*cond, qual, error) {
	if err := p.enter(); err != nil {
		return nil, qual{}, err
	}
	defer p.leave()
	c, q, err := p.parseTerm(inh)
	if err != nil {
		return nil, q, err
	}
	for {
		t := p.peek()
		conj := isAnd(t)
		if !conj && !isOr(t) {
			return c, q, nil
		}
		p.next()
		var rhs *cond
		var idErr error
		if q.valid && p.startsID() {
			save := p.p
			r, err := p.parseIDUnary(q)
			if err == nil && p.endsID() {
				rhs = r
			} else {
				idErr = err
				if idErr == nil {
					idErr = p.syntaxError(p.peek())
				}
				p.p = save
			}
		}
		if rhs == nil {
			r, q2, err := p.parseTerm(q)
			if err != nil {
				return nil, q, furthest(err, idErr)
			}
			rhs, q = r, q2
		}
		if conj {
			c = and(c, rhs)
		} else {
			c = or(c, rhs)
		}
	}
}

// startsID reports whether the next tokens may be a bare identifier continuing the previous
// primitive's qualifiers ("host a or b", "port 53 and not 54", "host a or (b or c)").
func (p *parser) startsID() bool {
	t := p.peek()
	switch t.kind {
	case tEscaped, tLParen, tNot:
		return true
	case tWord:
		return !isKeyword(t.text) || t.text == "not"
	}
	return false
}

func (p *parser) endsID() bool {
	t := p.peek()
	return t.kind == tEOF || t.kind == tRParen || isAnd(t) || isOr(t)
}

// parseTerm: not term | ( expr ) | arithmetic relation | primitive.
func (p *parser) parseTerm(inh qual) (*cond, qual, error) {
	if err := p.enter(); err != nil {
		return nil, qual{}, err
	}
	defer p.leave()
	t := p.peek()
	switch {
	case isNot(t):
		p.next()
		c, q, err := p.parseTerm(inh)
		if err != nil {
			return nil, q, err
		}
		return not(c), q, nil
	case t.kind == tLParen:
		// "(" opens either a boolean group or an arithmetic operand ("(ip[0] & 0xf) > 5"): try
		// the relation first, then the group; report the error that got further.
		save := p.p
		c, errRel := p.parseRelation()
		if errRel == nil {
			return c, qual{}, nil
		}
		p.p = save
		p.next()
		c, _, err := p.parseExpr(inh)
		if err != nil {
			return nil, inh, furthest(err, errRel)
		}
		if r := p.peek(); r.kind != tRParen {
			return nil, inh, furthest(p.syntaxError(r), errRel)
		}
		p.next()
		return c, inh, nil
	case t.kind == tOp && t.text == "-":
		c, err := p.parseRelation()
		return c, qual{}, err
	case t.kind != tWord:
		return nil, qual{}, p.syntaxError(t)
	}

	w := t.text
	if pq, ok := protoQualifiers[w]; ok {
		n := p.peekN(1)
		switch {
		case n.kind == tLBrack:
			c, err := p.parseRelation()
			return c, qual{}, err
		case n.kind == tWord && (n.text == "src" || n.text == "dst" || n.text == "proto" || addrQualifiers[n.text] != 0):
			return p.parseHeadID()
		case isWordTok(n, "broadcast") || isWordTok(n, "multicast"):
			p.next()
			p.next()
			c, err := p.castCond(pq, w, n)
			return c, qual{}, err
		}
		p.next()
		c, err := p.protoAbbrev(pq, t)
		return c, qual{}, err
	}
	switch {
	case w == "src" || w == "dst" || w == "proto" || addrQualifiers[w] != 0:
		return p.parseHeadID()
	case w == "vlan":
		p.next()
		if !p.l.vlanOK {
			return nil, qual{}, p.errAt(t, "no VLAN support for %s", p.l.name)
		}
		n := p.peek()
		if n.kind == tWord && !isKeyword(n.text) {
			v, ok, err := p.number(n)
			if err != nil {
				return nil, qual{}, err
			}
			if !ok {
				return nil, qual{}, p.syntaxError(n)
			}
			if v > 4095 {
				return nil, qual{}, p.errAt(n, "VLAN tag %d greater than maximum 4095", v)
			}
			p.next()
			return p.l.vlan(v, true), qual{}, nil
		}
		return p.l.vlan(0, false), qual{}, nil
	case w == "less" || w == "greater":
		p.next()
		n := p.next()
		v, ok, err := p.number(n)
		if err != nil {
			return nil, qual{}, err
		}
		if !ok {
			return nil, qual{}, p.syntaxError(n)
		}
		return lenCond(w == "less", v), qual{}, nil
	case w == "broadcast" || w == "multicast":
		p.next()
		c, err := p.castCond(qpDefault, "", t)
		return c, qual{}, err
	case w == "len":
		c, err := p.parseRelation()
		return c, qual{}, err
	case unsupportedKeywords[w]:
		return nil, qual{}, p.errAt(t, "'%s' is not supported", w)
	case isKeyword(w):
		return nil, qual{}, p.syntaxError(t)
	}
	if _, ok := arithConstants[w]; ok || (w[0] >= '0' && w[0] <= '9' && !strings.ContainsAny(w, ".:")) {
		c, err := p.parseRelation()
		return c, qual{}, err
	}
	return nil, qual{}, p.syntaxError(t)
}

// parseHeadID parses qualifiers (proto, direction, address type) and the identifier(s).
func (p *parser) parseHeadID() (*cond, qual, error) {
	q := qual{valid: true}
	t := p.peek()
	if pq, ok := protoQualifiers[t.text]; ok && t.kind == tWord {
		q.proto, q.protoName = pq, t.text
		p.next()
	}
	t = p.peek()
	if t.kind == tWord && (t.text == "src" || t.text == "dst") {
		p.next()
		q.dir = dirSrc
		if t.text == "dst" {
			q.dir = dirDst
		}
		// "src or dst" / "src and dst" (either order) is one qualifier.
		n1, n2 := p.peek(), p.peekN(1)
		if (isAnd(n1) || isOr(n1)) && n2.kind == tWord && (n2.text == "src" || n2.text == "dst") && n2.text != t.text {
			p.next()
			p.next()
			q.dir = dirOr
			if isAnd(n1) {
				q.dir = dirAnd
			}
		}
	}
	t = p.peek()
	switch {
	case t.kind == tWord && addrQualifiers[t.text] != 0:
		q.addr = addrQualifiers[t.text]
		p.next()
	case isWordTok(t, "proto") && q.dir == dirDefault:
		q.addr = qaProto
		p.next()
	}
	c, err := p.parseIDUnary(q)
	return c, q, err
}

// parseIDUnary: not id | ( id {(and|or) id} ) | value.
func (p *parser) parseIDUnary(q qual) (*cond, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	t := p.peek()
	switch {
	case isNot(t):
		p.next()
		c, err := p.parseIDUnary(q)
		if err != nil {
			return nil, err
		}
		return not(c), nil
	case t.kind == tLParen:
		p.next()
		c, err := p.parseIDUnary(q)
		if err != nil {
			return nil, err
		}
		for {
			n := p.peek()
			if n.kind == tRParen {
				p.next()
				return c, nil
			}
			if !isAnd(n) && !isOr(n) {
				return nil, p.syntaxError(n)
			}
			p.next()
			r, err := p.parseIDUnary(q)
			if err != nil {
				return nil, err
			}
			if isAnd(n) {
				c = and(c, r)
			} else {
				c = or(c, r)
			}
		}
	case t.kind == tEscaped:
		p.next()
		return p.nameID(q, t)
	case t.kind == tWord && !isKeyword(t.text):
		p.next()
		return p.valueID(q, t)
	}
	return nil, p.syntaxError(t)
}

// number parses a libpcap number token: decimal, 0x hex, 0 octal, or a named constant.
// ok is false when the word is not a number at all.
func (p *parser) number(t token) (uint32, bool, error) {
	if t.kind != tWord {
		return 0, false, nil
	}
	w := t.text
	if v, ok := arithConstants[w]; ok {
		return v, true, nil
	}
	if w == "" || w[0] < '0' || w[0] > '9' {
		return 0, false, nil
	}
	base, digits := 10, w
	switch {
	case len(w) > 2 && (w[:2] == "0x" || w[:2] == "0X"):
		base, digits = 16, w[2:]
	case len(w) > 1 && w[0] == '0':
		base, digits = 8, w[1:]
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		isDigit := c >= '0' && c <= '9'
		isHex := isDigit || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
		switch {
		case base == 16 && !isHex, base == 10 && !isDigit:
			return 0, false, nil
		case base == 8 && !isDigit:
			return 0, false, nil
		case base == 8 && c > '7':
			return 0, false, p.errAt(t, "number %s contains non-octal digit", w)
		}
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		return 0, false, p.errAt(t, "number %s overflows 32 bits", w)
	}
	return uint32(v), true, nil
}

// dotted parses libpcap's short IPv4 forms ("10", "10.1", "10.1.2", "10.1.2.3"): the value
// left-aligned and the number of significant bits.
func dotted(w string) (v uint32, nbits int, ok bool, bad bool) {
	parts := strings.Split(w, ".")
	if len(parts) < 1 || len(parts) > 4 {
		return 0, 0, false, false
	}
	for _, s := range parts {
		if s == "" {
			return 0, 0, false, false
		}
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, 0, false, false
			}
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n > 255 {
			return 0, 0, true, true
		}
		v = v<<8 | uint32(n)
	}
	nbits = 8 * len(parts)
	return v << (32 - nbits), nbits, true, false
}

// valueID generates the code for one identifier under qualifiers q.
func (p *parser) valueID(q qual, t token) (*cond, error) {
	w := t.text
	// HID/len, HID6/len, HID mask HID.
	if n := p.peek(); n.kind == tSlash {
		p.next()
		lt := p.next()
		bitsLen, ok, err := p.number(lt)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, p.syntaxError(lt)
		}
		if isIPv6Word(w) {
			return p.net6(q, t, w, int(bitsLen), fmt.Sprintf("%s/%d", w, bitsLen))
		}
		if !strings.Contains(w, ".") {
			return nil, p.syntaxError(n)
		}
		v, _, ok, bad := dotted(w)
		if !ok || bad {
			return nil, p.errAt(t, "invalid IPv4 address '%s'", w)
		}
		if bitsLen > 32 {
			return nil, p.errAt(lt, "mask length must be <= 32")
		}
		mask := uint32(0)
		if bitsLen > 0 {
			mask = ^uint32(0) << (32 - bitsLen)
		}
		return p.net4(q, t, v, mask, fmt.Sprintf("%s/%s", w, lt.text))
	}
	if n := p.peek(); isWordTok(n, "mask") {
		p.next()
		mt := p.next()
		v, _, ok, bad := dotted(w)
		m, _, okm, badm := dotted(mt.text)
		if mt.kind != tWord || !strings.Contains(w, ".") || !strings.Contains(mt.text, ".") || !ok || !okm {
			return nil, p.syntaxError(mt)
		}
		if bad || badm {
			return nil, p.errAt(t, "invalid IPv4 address in '%s mask %s'", w, mt.text)
		}
		return p.net4(q, t, v, m, fmt.Sprintf("%s mask %s", w, mt.text))
	}
	if isIPv6Word(w) {
		return p.net6(q, t, w, 128, w)
	}
	if mac, ok := parseMAC(w); ok {
		if q.proto != qpLink || (q.addr != qaDefault && q.addr != qaHost) {
			return nil, p.errAt(t, "ethernet address used in non-ether expression")
		}
		if !p.l.macOK {
			return nil, p.errAt(t, "ethernet addresses supported only on Ethernet (link type is %s)", p.l.name)
		}
		return etherHost(mac, q.dir), nil
	}
	num, isNum, err := p.number(t)
	if err != nil {
		return nil, err
	}
	switch q.addr {
	case qaPort, qaPortRange:
		if !isNum {
			return p.nameID(q, t)
		}
		if num > 65535 {
			return nil, p.errAt(t, "illegal port number %d > 65535", num)
		}
		protos, err := p.portProtos(q, t, 0)
		if err != nil {
			return nil, err
		}
		if q.addr == qaPort {
			return p.l.port(protos, num, q.dir), nil
		}
		return p.l.portRange(protos, num, num, q.dir), nil
	case qaProto:
		if !isNum {
			return p.nameID(q, t)
		}
		return p.protoCond(q, t, num)
	}
	// host / net / default.
	if q.proto == qpLink {
		return nil, p.errAt(t, "illegal link layer address")
	}
	if isNum {
		v, mask := num, ^uint32(0)
		if q.addr == qaNet {
			// libpcap promotes a bare network number: "net 10" is 10.0.0.0/8.
			for v != 0 && v&0xff000000 == 0 {
				v <<= 8
				mask <<= 8
			}
		}
		return p.host4(q, t, v, mask)
	}
	if v, nbits, ok, bad := dotted(w); ok && strings.Contains(w, ".") {
		if bad {
			return nil, p.errAt(t, "invalid IPv4 address '%s'", w)
		}
		return p.host4(q, t, v, ^uint32(0)<<(32-nbits))
	}
	return p.nameID(q, t)
}

// nameID handles a non-numeric identifier: a service, protocol or port range.
func (p *parser) nameID(q qual, t token) (*cond, error) {
	w := t.text
	switch q.addr {
	case qaPort:
		pn, ok := portNames[w]
		if !ok {
			return nil, p.errAt(t, "unknown port '%s'", w)
		}
		protos, err := p.portProtos(q, t, pn.proto)
		if err != nil {
			return nil, err
		}
		return p.l.port(protos, pn.port, q.dir), nil
	case qaPortRange:
		lo, hi, ok := portRangeWord(w)
		if !ok {
			return nil, p.errAt(t, "invalid port range '%s' (numeric A-B expected)", w)
		}
		if lo > 65535 || hi > 65535 {
			return nil, p.errAt(t, "illegal port number %d > 65535", max(lo, hi))
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		protos, err := p.portProtos(q, t, 0)
		if err != nil {
			return nil, err
		}
		return p.l.portRange(protos, lo, hi, q.dir), nil
	case qaProto:
		if q.proto == qpLink {
			v, ok := etherProtoNames[w]
			if !ok {
				return nil, p.errAt(t, "unknown ether proto '%s'", w)
			}
			return p.protoCond(q, t, v)
		}
		v, ok := ipProtoNames[w]
		if !ok {
			return nil, p.errAt(t, "unknown ip proto '%s'", w)
		}
		return p.protoCond(q, t, v)
	}
	return nil, p.errAt(t, "host names are not supported ('%s'): use an address", w)
}

func portRangeWord(w string) (uint32, uint32, bool) {
	a, b, ok := strings.Cut(w, "-")
	if !ok {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(a, 10, 32)
	hi, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(lo), uint32(hi), true
}

// portProtos returns the transports a port primitive applies to; registered is the transport
// a service name is registered for (0: any).
func (p *parser) portProtos(q qual, t token, registered uint32) ([]uint32, error) {
	var want uint32
	switch q.proto {
	case qpDefault:
	case qpTCP:
		want = protoTCP
	case qpUDP:
		want = protoUDP
	case qpSCTP:
		want = protoSCTP
	default:
		kind := "port"
		if q.addr == qaPortRange {
			kind = "portrange"
		}
		return nil, p.errAt(t, "illegal qualifier of '%s'", kind)
	}
	switch {
	case want != 0 && registered != 0 && want != registered:
		name := "tcp"
		if registered == protoUDP {
			name = "udp"
		}
		return nil, p.errAt(t, "port '%s' is %s", t.text, name)
	case want != 0:
		return []uint32{want}, nil
	case registered != 0:
		return []uint32{registered}, nil
	}
	return []uint32{protoSCTP, protoTCP, protoUDP}, nil
}

// protoCond is "[ip|ip6|ether] proto N".
func (p *parser) protoCond(q qual, t token, v uint32) (*cond, error) {
	switch q.proto {
	case qpDefault:
		return or(p.l.ipv4Proto(v), p.l.ipv6Proto(v)), nil
	case qpIP:
		return p.l.ipv4Proto(v), nil
	case qpIP6:
		return p.l.ipv6Proto(v), nil
	case qpLink:
		if v <= etherMTU {
			return nil, p.errAt(t, "ether proto %d (an 802.2 LLC SAP) is not supported", v)
		}
		return p.l.linkProto(v), nil
	}
	return nil, p.errAt(t, "'%s proto' is bogus", q.protoName)
}

func addrKind(q qual) string {
	if q.addr == qaNet {
		return "net"
	}
	return "host"
}

// host4 is "[ip|arp|rarp] [src|dst] host|net" for an IPv4 address under mask.
func (p *parser) host4(q qual, t token, v, mask uint32) (*cond, error) {
	switch q.proto {
	case qpDefault:
		return or(or(
			p.l.hostV4(v, mask, q.dir, etherTypeIPv4, 12, 16),
			p.l.hostV4(v, mask, q.dir, etherTypeARP, 14, 24)),
			p.l.hostV4(v, mask, q.dir, etherTypeRARP, 14, 24)), nil
	case qpIP:
		return p.l.hostV4(v, mask, q.dir, etherTypeIPv4, 12, 16), nil
	case qpARP:
		return p.l.hostV4(v, mask, q.dir, etherTypeARP, 14, 24), nil
	case qpRARP:
		return p.l.hostV4(v, mask, q.dir, etherTypeRARP, 14, 24), nil
	case qpIP6:
		return nil, p.errAt(t, "'ip6' modifier applied to ip %s", addrKind(q))
	}
	return nil, p.errAt(t, "'%s' modifier applied to %s", q.protoName, addrKind(q))
}

func (p *parser) net4(q qual, t token, v, mask uint32, text string) (*cond, error) {
	if q.addr != qaNet {
		return nil, p.errAt(t, "Mask syntax for networks only")
	}
	if v&^mask != 0 {
		return nil, p.errAt(t, "non-network bits set in \"%s\"", text)
	}
	return p.host4(q, t, v, mask)
}

func (p *parser) net6(q qual, t token, w string, nbits int, text string) (*cond, error) {
	a, err := netip.ParseAddr(w)
	if err != nil || !a.Is6() {
		return nil, p.errAt(t, "invalid IPv6 address '%s'", w)
	}
	if nbits > 128 {
		return nil, p.errAt(t, "mask length must be <= 128")
	}
	addr := a.As16()
	var mask [16]byte
	for i := 0; i < nbits; i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	for i := range addr {
		if addr[i]&^mask[i] != 0 {
			return nil, p.errAt(t, "non-network bits set in \"%s\"", text)
		}
	}
	switch q.addr {
	case qaDefault, qaHost:
		if nbits != 128 {
			return nil, p.errAt(t, "Mask syntax for networks only")
		}
	case qaNet:
	default:
		return nil, p.errAt(t, "illegal use of an IPv6 address ('%s')", w)
	}
	switch q.proto {
	case qpDefault, qpIP6:
		return p.l.hostV6(addr, mask, q.dir), nil
	case qpLink:
		return nil, p.errAt(t, "illegal link layer address")
	}
	return nil, p.errAt(t, "'%s' modifier applied to ip6 %s", q.protoName, addrKind(q))
}

// protoAbbrev is a bare protocol keyword: ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6, igmp.
func (p *parser) protoAbbrev(pq int, t token) (*cond, error) {
	l := p.l
	switch pq {
	case qpIP:
		return l.linkProto(etherTypeIPv4), nil
	case qpIP6:
		return l.linkProto(etherTypeIPv6), nil
	case qpARP:
		return l.linkProto(etherTypeARP), nil
	case qpRARP:
		return l.linkProto(etherTypeRARP), nil
	case qpTCP:
		return or(l.ipv4Proto(protoTCP), l.ipv6Proto(protoTCP)), nil
	case qpUDP:
		return or(l.ipv4Proto(protoUDP), l.ipv6Proto(protoUDP)), nil
	case qpSCTP:
		return or(l.ipv4Proto(protoSCTP), l.ipv6Proto(protoSCTP)), nil
	case qpICMP:
		return l.ipv4Proto(protoICMP), nil
	case qpIGMP:
		return l.ipv4Proto(protoIGMP), nil
	case qpICMP6:
		return l.ipv6Proto(protoICMPv6), nil
	}
	return nil, p.errAt(t, "link layer applied in wrong context")
}

// castCond is [ether|ip|ip6] broadcast|multicast.
func (p *parser) castCond(pq int, pname string, kw token) (*cond, error) {
	l := p.l
	bcast := kw.text == "broadcast"
	switch pq {
	case qpDefault, qpLink:
		if !l.macOK {
			return nil, p.errAt(kw, "'%s' is only supported on Ethernet (link type is %s)", kw.text, l.name)
		}
		if bcast {
			return etherAddr(0, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), nil
		}
		return test(bpf.JumpBitsSet, 1, ldAbs(0, 1)), nil
	case qpIP:
		if bcast {
			// tcpdump reading a file has no netmask (0), so the whole address is the host
			// part: all zeros or all ones.
			return and(l.linkProto(etherTypeIPv4), inSet([]bpf.Instruction{ldAbs(l.offNL+16, 4)}, 0, 0xffffffff)), nil
		}
		return and(l.linkProto(etherTypeIPv4), test(bpf.JumpGreaterOrEqual, 224, ldAbs(l.offNL+16, 1))), nil
	case qpIP6:
		if bcast {
			return nil, p.errAt(kw, "only link-layer/IP broadcast filters supported")
		}
		return and(l.linkProto(etherTypeIPv6), test(bpf.JumpEqual, 255, ldAbs(l.offNL+24, 1))), nil
	}
	return nil, p.errAt(kw, "'%s %s' is not supported", pname, kw.text)
}
