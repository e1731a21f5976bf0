package bpf

import (
	"golang.org/x/net/bpf"
)

// Arithmetic relations: "udp[10] & 0x80 = 0", "len > 512", "tcp[tcpflags] & tcp-syn != 0".

type arithKind uint8

const (
	aConst arithKind = iota
	aLen
	aLoad
	aBin
	aNeg
)

type arith struct {
	kind  arithKind
	k     uint32
	op    bpf.ALUOp
	x, y  *arith // aBin operands; aLoad index in x; aNeg operand in x
	proto int    // aLoad: qp* of proto[...]
	base  uint32 // aLoad: offset of that protocol's header (before any IPv4 header length)
	size  int
	chk   *cond // aLoad: the packet must contain the protocol
}

// maxScratch is the number of BPF scratch memory slots.
const maxScratch = 16

// parseRelation: arith relop arith.
func (p *parser) parseRelation() (*cond, error) {
	a, err := p.parseArith()
	if err != nil {
		return nil, err
	}
	t := p.next()
	if t.kind != tOp {
		return nil, p.syntaxError(t)
	}
	switch t.text {
	case ">", ">=", "<", "<=", "=", "==", "!=":
	default:
		return nil, p.syntaxError(t)
	}
	b, err := p.parseArith()
	if err != nil {
		return nil, err
	}
	return p.relation(t, a, b)
}

// Binary operator levels, loosest first. '^' and '%' are absent on purpose: libpcap's grammar
// gives them no precedence, so yacc always shifts on them — each takes the single operand
// before it and the whole expression after it: "9 % 4 + 1" is 9 % 5 (see parsePrimaryXor).
var arithLevels = [][]string{{"|"}, {"&"}, {"<<", ">>"}, {"+", "-"}, {"*", "/"}}

var aluOps = map[string]bpf.ALUOp{
	"|": bpf.ALUOpOr, "&": bpf.ALUOpAnd, "<<": bpf.ALUOpShiftLeft, ">>": bpf.ALUOpShiftRight,
	"+": bpf.ALUOpAdd, "-": bpf.ALUOpSub, "*": bpf.ALUOpMul, "/": bpf.ALUOpDiv, "%": bpf.ALUOpMod,
	"^": bpf.ALUOpXor,
}

func (p *parser) parseArith() (*arith, error) { return p.parseLevel(0) }

func (p *parser) parseLevel(level int) (*arith, error) {
	if level == len(arithLevels) {
		return p.parseUnary()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.parseLevel(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		// '/' is lexed as its own token because it also separates an address from its
		// prefix length.
		if (t.kind != tOp && t.kind != tSlash) || !contains(arithLevels[level], t.text) {
			return x, nil
		}
		p.next()
		y, err := p.parseLevel(level + 1)
		if err != nil {
			return nil, err
		}
		if x, err = p.binary(t, x, y); err != nil {
			return nil, err
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (p *parser) binary(t token, x, y *arith) (*arith, error) {
	op := aluOps[t.text]
	if y.kind == aConst {
		switch {
		case op == bpf.ALUOpDiv && y.k == 0:
			return nil, p.errAt(t, "division by zero")
		case op == bpf.ALUOpMod && y.k == 0:
			return nil, p.errAt(t, "modulus by zero")
		case (op == bpf.ALUOpShiftLeft || op == bpf.ALUOpShiftRight) && y.k > 31:
			return nil, p.errAt(t, "shift by more than 31 bits")
		}
		if x.kind == aConst {
			return &arith{kind: aConst, k: aluConst(op, x.k, y.k)}, nil
		}
	}
	return &arith{kind: aBin, op: op, x: x, y: y}, nil
}

// aluConst folds an operation on constants with the semantics of the BPF machine (uint32
// wrap-around; shifts of 32 or more give 0; the caller has excluded division by zero).
func aluConst(op bpf.ALUOp, a, b uint32) uint32 {
	switch op {
	case bpf.ALUOpAdd:
		return a + b
	case bpf.ALUOpSub:
		return a - b
	case bpf.ALUOpMul:
		return a * b
	case bpf.ALUOpDiv:
		return a / b
	case bpf.ALUOpMod:
		return a % b
	case bpf.ALUOpOr:
		return a | b
	case bpf.ALUOpAnd:
		return a & b
	case bpf.ALUOpXor:
		return a ^ b
	case bpf.ALUOpShiftLeft:
		if b >= 32 {
			return 0
		}
		return a << b
	case bpf.ALUOpShiftRight:
		if b >= 32 {
			return 0
		}
		return a >> b
	}
	return 0
}

func (p *parser) parseUnary() (*arith, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	if t := p.peek(); t.kind == tOp && t.text == "-" {
		p.next()
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if x.kind == aConst {
			return &arith{kind: aConst, k: -x.k}, nil
		}
		return &arith{kind: aNeg, x: x}, nil
	}
	return p.parsePrimaryXor()
}

func (p *parser) parsePrimaryXor() (*arith, error) {
	x, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind == tOp && (t.text == "^" || t.text == "%") {
		p.next()
		y, err := p.parseArith()
		if err != nil {
			return nil, err
		}
		return p.binary(t, x, y)
	}
	return x, nil
}

func (p *parser) parsePrimary() (*arith, error) {
	t := p.next()
	switch t.kind {
	case tLParen:
		x, err := p.parseArith()
		if err != nil {
			return nil, err
		}
		if r := p.next(); r.kind != tRParen {
			return nil, p.syntaxError(r)
		}
		return x, nil
	case tWord:
	default:
		return nil, p.syntaxError(t)
	}
	if t.text == "len" {
		return &arith{kind: aLen}, nil
	}
	if pq, ok := protoQualifiers[t.text]; ok {
		return p.parseLoad(pq, t)
	}
	v, ok, err := p.number(t)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, p.syntaxError(t)
	}
	return &arith{kind: aConst, k: v}, nil
}

// parseLoad parses proto '[' arith [':' size] ']' and attaches libpcap's protocol check.
func (p *parser) parseLoad(pq int, t token) (*arith, error) {
	if b := p.next(); b.kind != tLBrack {
		return nil, p.syntaxError(b)
	}
	idx, err := p.parseArith()
	if err != nil {
		return nil, err
	}
	size := 1
	if c := p.peek(); c.kind == tColon {
		p.next()
		st := p.next()
		v, ok, err := p.number(st)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, p.syntaxError(st)
		}
		if v != 1 && v != 2 && v != 4 {
			return nil, p.errAt(st, "data size must be 1, 2, or 4")
		}
		size = int(v)
	}
	if r := p.next(); r.kind != tRBrack {
		return nil, p.syntaxError(r)
	}
	l := p.l
	ld := &arith{kind: aLoad, x: idx, proto: pq, size: size, chk: condTrue, base: l.offNL}
	switch pq {
	case qpLink:
		ld.base = 0
	case qpIP:
		ld.chk = l.linkProto(etherTypeIPv4)
	case qpIP6:
		ld.chk = l.linkProto(etherTypeIPv6)
	case qpARP:
		ld.chk = l.linkProto(etherTypeARP)
	case qpRARP:
		ld.chk = l.linkProto(etherTypeRARP)
	case qpTCP, qpUDP, qpSCTP, qpICMP, qpIGMP:
		// libpcap: IPv4, the protocol, and not a later fragment; the transport header is
		// found through the IPv4 header length (so these are IPv4-only, as in tcpdump).
		proto := map[int]uint32{qpTCP: protoTCP, qpUDP: protoUDP, qpSCTP: protoSCTP, qpICMP: protoICMP, qpIGMP: protoIGMP}[pq]
		ld.chk = and(l.ipv4Proto(proto), l.notFragment())
	case qpICMP6:
		ld.chk = and(l.linkProto(etherTypeIPv6), test(bpf.JumpEqual, protoICMPv6, ldAbs(l.offNL+6, 1)))
		ld.base = l.offNL + 40
	}
	return ld, nil
}

// relation builds "checks of every load, then compare".
func (p *parser) relation(t token, a, b *arith) (*cond, error) {
	checks := condTrue
	collectChecks(a, &checks)
	collectChecks(b, &checks)
	if checks.kind == cFalse {
		return condFalse, nil
	}
	op := t.text
	if op == "==" {
		op = "="
	}
	var rel *cond
	switch {
	case a.kind == aConst && b.kind == aConst:
		rel = constCond(compareConst(op, a.k, b.k))
	case b.kind == aConst:
		code, err := p.genArith(t, a, 0, nil)
		if err != nil {
			return nil, err
		}
		rel = compareK(op, b.k, code)
	case a.kind == aConst:
		code, err := p.genArith(t, b, 0, nil)
		if err != nil {
			return nil, err
		}
		rel = compareK(mirror(op), a.k, code)
	default:
		code, err := p.genArith(t, b, 0, nil)
		if err != nil {
			return nil, err
		}
		code = append(code, bpf.StoreScratch{Src: bpf.RegA, N: 0})
		if code, err = p.genArith(t, a, 1, code); err != nil {
			return nil, err
		}
		code = append(code, bpf.LoadScratch{Dst: bpf.RegX, N: 0})
		rel = compareX(op, code)
	}
	return and(checks, rel), nil
}

func collectChecks(a *arith, acc **cond) {
	if a == nil {
		return
	}
	if a.kind == aLoad {
		*acc = and(*acc, a.chk)
	}
	collectChecks(a.x, acc)
	collectChecks(a.y, acc)
}

func compareConst(op string, a, b uint32) bool {
	switch op {
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case "=":
		return a == b
	}
	return a != b
}

func mirror(op string) string {
	switch op {
	case ">":
		return "<"
	case ">=":
		return "<="
	case "<":
		return ">"
	case "<=":
		return ">="
	}
	return op
}

func compareK(op string, k uint32, code []bpf.Instruction) *cond {
	switch op {
	case ">":
		return test(bpf.JumpGreaterThan, k, code...)
	case ">=":
		return test(bpf.JumpGreaterOrEqual, k, code...)
	case "<":
		return not(test(bpf.JumpGreaterOrEqual, k, code...))
	case "<=":
		return not(test(bpf.JumpGreaterThan, k, code...))
	case "=":
		return test(bpf.JumpEqual, k, code...)
	}
	return not(test(bpf.JumpEqual, k, code...))
}

func compareX(op string, code []bpf.Instruction) *cond {
	switch op {
	case ">":
		return testX(bpf.JumpGreaterThan, code...)
	case ">=":
		return testX(bpf.JumpGreaterOrEqual, code...)
	case "<":
		return not(testX(bpf.JumpGreaterOrEqual, code...))
	case "<=":
		return not(testX(bpf.JumpGreaterThan, code...))
	case "=":
		return testX(bpf.JumpEqual, code...)
	}
	return not(testX(bpf.JumpEqual, code...))
}

// maxPacketOffset keeps constant offsets below 2^31: the Linux socket-filter machine reads
// larger (negative) offsets as ancillary data instead of failing the load.
const maxPacketOffset = 1<<31 - 1

// genArith appends code leaving the value of a in A. sp is the first free scratch slot; X and
// slots >= sp may be clobbered.
func (p *parser) genArith(t token, a *arith, sp int, code []bpf.Instruction) ([]bpf.Instruction, error) {
	if sp >= maxScratch {
		return nil, p.errAt(t, "expression too complex (more than %d intermediate values)", maxScratch)
	}
	var err error
	switch a.kind {
	case aConst:
		return append(code, bpf.LoadConstant{Dst: bpf.RegA, Val: a.k}), nil
	case aLen:
		return append(code, bpf.LoadExtension{Num: bpf.ExtLen}), nil
	case aNeg:
		if code, err = p.genArith(t, a.x, sp, code); err != nil {
			return nil, err
		}
		// A * 0xffffffff is -A; x/net/bpf's VM has no NEG, so avoid it.
		return append(code, bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0xffffffff}), nil
	case aBin:
		if a.y.kind == aConst {
			if code, err = p.genArith(t, a.x, sp, code); err != nil {
				return nil, err
			}
			return append(code, bpf.ALUOpConstant{Op: a.op, Val: a.y.k}), nil
		}
		if code, err = p.genArith(t, a.y, sp, code); err != nil {
			return nil, err
		}
		code = append(code, bpf.StoreScratch{Src: bpf.RegA, N: sp})
		if code, err = p.genArith(t, a.x, sp+1, code); err != nil {
			return nil, err
		}
		return append(code, bpf.LoadScratch{Dst: bpf.RegX, N: sp}, bpf.ALUOpX{Op: a.op}), nil
	}
	// aLoad.
	transport := a.proto == qpTCP || a.proto == qpUDP || a.proto == qpSCTP || a.proto == qpICMP || a.proto == qpIGMP
	if a.x.kind == aConst {
		off := uint64(a.base) + uint64(a.x.k)
		if off > maxPacketOffset {
			return nil, p.errAt(t, "packet offset %d out of range", off)
		}
		if transport {
			return append(code, bpf.LoadMemShift{Off: a.base}, bpf.LoadIndirect{Off: uint32(off), Size: a.size}), nil
		}
		return append(code, bpf.LoadAbsolute{Off: uint32(off), Size: a.size}), nil
	}
	if code, err = p.genArith(t, a.x, sp, code); err != nil {
		return nil, err
	}
	if transport {
		code = append(code,
			bpf.StoreScratch{Src: bpf.RegA, N: sp},
			bpf.LoadMemShift{Off: a.base},
			bpf.LoadScratch{Dst: bpf.RegA, N: sp},
			bpf.ALUOpX{Op: bpf.ALUOpAdd})
	}
	return append(code, bpf.TAX{}, bpf.LoadIndirect{Off: a.base, Size: a.size}), nil
}
