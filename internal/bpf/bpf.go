package bpf

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"golang.org/x/net/bpf"
)

// DefaultSnaplen is the accept value of compiled programs when the caller passes snaplen <= 0
// (libpcap's MAXIMUM_SNAPLEN, what tcpdump's programs return).
const DefaultSnaplen = 262144

// ErrRejectsAll is returned (wrapped) for an expression that can never match on the link
// type, as tcpdump refuses it ("expression rejects all packets").
var ErrRejectsAll = errors.New("expression rejects all packets")

// Compile compiles a tcpdump filter expression for frames of the given pcap link type into a
// classic BPF program that returns snaplen for accepted frames and 0 otherwise. The program
// is suitable for SO_ATTACH_FILTER (at most MaxInstructions long) and for Matcher. An empty
// expression accepts everything.
func Compile(expr string, linkType uint32, snaplen int) ([]bpf.RawInstruction, error) {
	ins, err := compile(expr, linkType, snaplen, true)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(ins)
	if err != nil {
		return nil, fmt.Errorf("bpf: assembling %q: %w", expr, err)
	}
	return raw, nil
}

// maxUnoptimized bounds the work of the optimizer on huge expressions.
const maxUnoptimized = 4 * MaxInstructions

func compile(expr string, linkType uint32, snaplen int, optimize bool) ([]bpf.Instruction, error) {
	l, err := newLink(linkType)
	if err != nil {
		return nil, err
	}
	if snaplen <= 0 || snaplen > 1<<31-1 {
		snaplen = DefaultSnaplen
	}
	accept := bpf.RetConstant{Val: uint32(snaplen)}
	if strings.TrimSpace(expr) == "" {
		return []bpf.Instruction{accept}, nil
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{expr: expr, toks: toks, l: l}
	c, err := p.parse()
	if err != nil {
		return nil, err
	}
	if c.kind == cTrue {
		return []bpf.Instruction{accept}, nil
	}
	g := &graph{acc: &block{kind: bRet, ret: uint32(snaplen)}, rej: &block{kind: bRet}}
	g.entry = buildBlocks(c, g.acc, g.rej)
	if n := g.size(); n > maxUnoptimized {
		return nil, fmt.Errorf("bpf: program too large (%d instructions before optimization, limit %d)", n, maxUnoptimized)
	}
	if optimize {
		g.optimize()
	}
	if g.entry == g.rej {
		return nil, fmt.Errorf("bpf: %q on link type %s: %w", expr, l.name, ErrRejectsAll)
	}
	ins, err := g.assemble()
	if err != nil {
		return nil, err
	}
	if len(ins) > MaxInstructions {
		return nil, fmt.Errorf("bpf: program too large (%d instructions, limit %d)", len(ins), MaxInstructions)
	}
	return ins, nil
}

// Matcher evaluates a compiled filter in user space, for capture files. It is immutable and
// safe for concurrent use.
type Matcher struct {
	expr string
	vm   *vm
}

// NewMatcher compiles expr for frames of linkType.
func NewMatcher(expr string, linkType uint32) (*Matcher, error) {
	raw, err := Compile(expr, linkType, DefaultSnaplen)
	if err != nil {
		return nil, err
	}
	v, err := newVM(raw)
	if err != nil {
		return nil, fmt.Errorf("bpf: %q: %w", expr, err)
	}
	return &Matcher{expr: expr, vm: v}, nil
}

// Expr returns the expression the matcher was built from.
func (m *Matcher) Expr() string { return m.expr }

// Match reports whether frame passes the filter, taking the frame's length as its length on
// the wire (for "less", "greater" and "len").
func (m *Matcher) Match(frame []byte) bool {
	return m.vm.run(frame, uint32(len(frame))) != 0
}

// MatchWire is Match for a frame truncated by the capture's snaplen: wireLen is the original
// length, which tcpdump uses for "less", "greater" and "len".
func (m *Matcher) MatchWire(frame []byte, wireLen int) bool {
	if wireLen < len(frame) {
		wireLen = len(frame)
	}
	wl := uint64(wireLen)
	if wl > math.MaxUint32 {
		wl = math.MaxUint32
	}
	return m.vm.run(frame, uint32(wl)) != 0
}
