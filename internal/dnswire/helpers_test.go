package dnswire

import (
	"fmt"
	"strconv"
	"strings"
)

// Hand-assembly of wire messages for tests: every byte is placed explicitly, so the expected
// values in the tests are read off the construction, not off the parser.

type wire []byte

func (w wire) u8(v byte) wire    { return append(w, v) }
func (w wire) u16(v uint16) wire { return append(w, byte(v>>8), byte(v)) }
func (w wire) u32(v uint32) wire { return append(w, byte(v>>24), byte(v>>16), byte(v>>8), byte(v)) }
func (w wire) raw(b ...byte) wire {
	return append(w, b...)
}

// header appends a 12-byte header.
func (w wire) header(id, flags, qd, an, ns, ar uint16) wire {
	return w.u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar)
}

// name appends uncompressed labels and the root label.
func (w wire) name(labels ...string) wire {
	for _, l := range labels {
		w = append(w, byte(len(l)))
		w = append(w, l...)
	}
	return append(w, 0)
}

// ptr appends a compression pointer to off.
func (w wire) ptr(off int) wire { return w.u16(0xC000 | uint16(off)) }

// rr appends the fixed part of a record after its owner name, then rdata.
func (w wire) rr(typ, class uint16, ttl uint32, rdata []byte) wire {
	w = w.u16(typ).u16(class).u32(ttl).u16(uint16(len(rdata)))
	return append(w, rdata...)
}

// opt builds OPT rdata from (code, data) pairs.
func opt(opts ...any) []byte {
	var w wire
	for i := 0; i+1 < len(opts); i += 2 {
		code := opts[i].(int)
		data := opts[i+1].([]byte)
		w = w.u16(uint16(code)).u16(uint16(len(data)))
		w = append(w, data...)
	}
	return w
}

// ecs builds ECS option data.
func ecs(family uint16, src, scope byte, addr ...byte) []byte {
	return wire{}.u16(family).u8(src).u8(scope).raw(addr...)
}

// decodePresentation splits a name in presentation form into raw labels. strict accepts
// only this package's canonical escapes (\. \\ and \DDD for bytes outside 0x21..0x7e, no
// other byte outside 0x21..0x7e); otherwise it also accepts miekg/dns's \X escapes and a
// trailing dot.
func decodePresentation(s string, strict bool) ([][]byte, error) {
	if !strict {
		// miekg/dns names are fully qualified: the last byte is always the root's dot (a
		// dot inside the last label is escaped before it, as in "a\..").
		if !strings.HasSuffix(s, ".") {
			return nil, fmt.Errorf("not fully qualified: %q", s)
		}
		s = s[:len(s)-1]
	}
	if s == "" {
		return nil, nil
	}
	var labels [][]byte
	cur := []byte{}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("dangling backslash in %q", s)
			}
			if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
				v, _ := strconv.Atoi(s[i+1 : i+4])
				if v > 255 {
					return nil, fmt.Errorf("bad \\DDD in %q", s)
				}
				if strict && v >= 0x21 && v <= 0x7e {
					return nil, fmt.Errorf("printable byte %d escaped as \\DDD in %q", v, s)
				}
				cur = append(cur, byte(v))
				i += 3
				continue
			}
			if strict && s[i+1] != '.' && s[i+1] != '\\' {
				return nil, fmt.Errorf("non-canonical escape \\%c in %q", s[i+1], s)
			}
			cur = append(cur, s[i+1])
			i++
		case c == '.':
			labels = append(labels, cur)
			cur = []byte{}
		default:
			if strict && (c < 0x21 || c > 0x7e) {
				return nil, fmt.Errorf("raw byte %#x in %q", c, s)
			}
			cur = append(cur, c)
		}
	}
	return append(labels, cur), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// lowerASCII lower-cases A-Z only, the way DNS compares names.
func lowerASCII(labels [][]byte) [][]byte {
	out := make([][]byte, len(labels))
	for i, l := range labels {
		out[i] = make([]byte, len(l))
		for j, c := range l {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			out[i][j] = c
		}
	}
	return out
}

func labelsEqual(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if string(a[i]) != string(b[i]) {
			return false
		}
	}
	return true
}
