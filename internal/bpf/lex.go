package bpf

import (
	"fmt"
	"net/netip"
	"strings"
)

// tokKind classifies a lexical token. Words (keywords, numbers, addresses, names) are all one
// kind: what a word means depends on where it stands, as in libpcap's grammar.
type tokKind uint8

const (
	tEOF     tokKind = iota
	tWord            // keyword, number, address, range or name
	tEscaped         // \name: a name that is never read as a keyword (proto \udp)
	tLParen          // (
	tRParen          // )
	tLBrack          // [
	tRBrack          // ]
	tColon           // :
	tSlash           // /
	tNot             // !
	tAndAnd          // &&
	tOrOr            // ||
	tOp              // arithmetic or relational operator: + - * % & | ^ << >> = == != < <= > >=
)

type token struct {
	kind tokKind
	text string
	pos  int // byte offset in the expression
}

// maxExprLen bounds the work done on hostile input (the expression comes from a flag or a
// config file, but the fuzzer and the API must still be safe).
const maxExprLen = 64 << 10

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':'
}

func isWordChar(c byte) bool {
	return isWordStart(c) || c == '.' || c == '-'
}

// lex splits expr into tokens. A word containing ':' that is neither an IPv6 nor a MAC address
// is cut at its first ':' so that "udp[10:2]" lexes as udp [ 10 : 2 ].
func lex(expr string) ([]token, error) {
	if len(expr) > maxExprLen {
		return nil, fmt.Errorf("bpf: expression too long (%d bytes, limit %d)", len(expr), maxExprLen)
	}
	var toks []token
	i := 0
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '\\':
			j := i + 1
			for j < len(expr) && isWordChar(expr[j]) {
				j++
			}
			if j == i+1 {
				return nil, errAt(expr, i, "syntax error at '\\'")
			}
			toks = append(toks, token{tEscaped, expr[i+1 : j], i})
			i = j
			continue
		case isWordStart(c):
			j := i
			for j < len(expr) && isWordChar(expr[j]) {
				j++
			}
			w := expr[i:j]
			if k := strings.IndexByte(w, ':'); k >= 0 && !isIPv6Word(w) && !isMACWord(w) {
				if k == 0 {
					toks = append(toks, token{tColon, ":", i})
					i++
					continue
				}
				w = w[:k]
				j = i + k
			}
			toks = append(toks, token{tWord, w, i})
			i = j
			continue
		}
		two := ""
		if i+1 < len(expr) {
			two = expr[i : i+2]
		}
		switch two {
		case "&&":
			toks = append(toks, token{tAndAnd, two, i})
			i += 2
			continue
		case "||":
			toks = append(toks, token{tOrOr, two, i})
			i += 2
			continue
		case "<<", ">>", "==", "!=", "<=", ">=":
			toks = append(toks, token{tOp, two, i})
			i += 2
			continue
		}
		var k tokKind
		switch c {
		case '(':
			k = tLParen
		case ')':
			k = tRParen
		case '[':
			k = tLBrack
		case ']':
			k = tRBrack
		case '/':
			k = tSlash
		case '!':
			k = tNot
		case '+', '-', '*', '%', '&', '|', '^', '=', '<', '>':
			k = tOp
		default:
			return nil, errAt(expr, i, fmt.Sprintf("unexpected character %q", c))
		}
		toks = append(toks, token{k, expr[i : i+1], i})
		i++
	}
	toks = append(toks, token{tEOF, "", len(expr)})
	return toks, nil
}

func isIPv6Word(w string) bool {
	a, err := netip.ParseAddr(w)
	return err == nil && a.Is6() && a.Zone() == ""
}

func isMACWord(w string) bool {
	_, ok := parseMAC(w)
	return ok
}

// parseMAC accepts the forms libpcap accepts in practice: 0:1:2:3:4:5 (1-2 hex digits per
// group), 00-11-22-33-44-55 and 0011.2233.4455.
func parseMAC(w string) ([6]byte, bool) {
	var mac [6]byte
	if strings.Count(w, ".") == 2 && len(w) == 14 {
		n := 0
		for _, part := range strings.Split(w, ".") {
			if len(part) != 4 {
				return mac, false
			}
			for k := 0; k < 4; k += 2 {
				v, ok := hexByte(part[k : k+2])
				if !ok {
					return mac, false
				}
				mac[n] = v
				n++
			}
		}
		return mac, true
	}
	sep := ":"
	if strings.Contains(w, "-") {
		sep = "-"
	}
	parts := strings.Split(w, sep)
	if len(parts) != 6 {
		return mac, false
	}
	for n, p := range parts {
		if len(p) == 0 || len(p) > 2 {
			return mac, false
		}
		v, ok := hexByte(p)
		if !ok {
			return mac, false
		}
		mac[n] = v
	}
	return mac, true
}

func hexByte(s string) (byte, bool) {
	var v byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// Error is a compile error; Pos is the 0-based byte offset of the offending token (-1 when the
// error is not about one token).
type Error struct {
	Expr string
	Pos  int
	Msg  string
}

func (e *Error) Error() string {
	if e.Pos < 0 {
		return "bpf: " + e.Msg
	}
	return fmt.Sprintf("bpf: %s (column %d)", e.Msg, e.Pos+1)
}

func errAt(expr string, pos int, msg string) *Error {
	return &Error{Expr: expr, Pos: pos, Msg: msg}
}
