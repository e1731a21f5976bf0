package bpf

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// vm is a classic BPF interpreter over a pre-decoded program. It exists beside x/net/bpf's VM
// because that one cannot be given the wire length (its "len" is the captured length, which
// differs from tcpdump on snaplen-truncated captures) and dispatches through an interface per
// instruction; the tests run both on the same programs and frames and require equal results.
type vm struct {
	prog []vmInsn
}

type vmInsn struct {
	op     vmOp
	jt, jf uint8
	k      uint32
}

type vmOp uint8

const (
	opLdAbsW vmOp = iota
	opLdAbsH
	opLdAbsB
	opLdIndW
	opLdIndH
	opLdIndB
	opLdImm
	opLdMem
	opLdLen
	opLdxImm
	opLdxMem
	opLdxLen
	opLdxMsh
	opSt
	opStx
	opAddK
	opSubK
	opMulK
	opDivK
	opModK
	opOrK
	opAndK
	opXorK
	opLshK
	opRshK
	opAddX
	opSubX
	opMulX
	opDivX
	opModX
	opOrX
	opAndX
	opXorX
	opLshX
	opRshX
	opNeg
	opJa
	opJeqK
	opJgtK
	opJgeK
	opJsetK
	opJeqX
	opJgtX
	opJgeX
	opJsetX
	opRetK
	opRetA
	opTax
	opTxa
)

// Classic BPF opcode fields (linux/filter.h).
const (
	clsMask = 0x07
	clsLD   = 0x00
	clsLDX  = 0x01
	clsST   = 0x02
	clsSTX  = 0x03
	clsALU  = 0x04
	clsJMP  = 0x05
	clsRET  = 0x06
	clsMISC = 0x07
)

var aluOpsK = map[uint16]vmOp{0x00: opAddK, 0x10: opSubK, 0x20: opMulK, 0x30: opDivK, 0x40: opOrK,
	0x50: opAndK, 0x60: opLshK, 0x70: opRshK, 0x90: opModK, 0xa0: opXorK}

var jmpOpsK = map[uint16]vmOp{0x10: opJeqK, 0x20: opJgtK, 0x30: opJgeK, 0x40: opJsetK}

// newVM decodes and validates raw: every opcode known, every jump inside the program, scratch
// indexes below 16, no division by a constant zero, ending in a return. run relies on this.
func newVM(raw []bpf.RawInstruction) (*vm, error) {
	if len(raw) == 0 || len(raw) > MaxInstructions {
		return nil, fmt.Errorf("program length %d outside 1..%d", len(raw), MaxInstructions)
	}
	prog := make([]vmInsn, len(raw))
	for i, r := range raw {
		in := vmInsn{jt: r.Jt, jf: r.Jf, k: r.K}
		op := r.Op
		bad := fmt.Errorf("invalid instruction %d: opcode %#x", i, op)
		if op > 0xff {
			return nil, bad
		}
		switch op & clsMask {
		case clsLD:
			switch op {
			case 0x20:
				in.op = opLdAbsW
			case 0x28:
				in.op = opLdAbsH
			case 0x30:
				in.op = opLdAbsB
			case 0x40:
				in.op = opLdIndW
			case 0x48:
				in.op = opLdIndH
			case 0x50:
				in.op = opLdIndB
			case 0x00:
				in.op = opLdImm
			case 0x60:
				in.op = opLdMem
			case 0x80:
				in.op = opLdLen
			default:
				return nil, bad
			}
		case clsLDX:
			switch op {
			case 0x01:
				in.op = opLdxImm
			case 0x61:
				in.op = opLdxMem
			case 0x81:
				in.op = opLdxLen
			case 0xb1:
				in.op = opLdxMsh
			default:
				return nil, bad
			}
		case clsST:
			if op != 0x02 {
				return nil, bad
			}
			in.op = opSt
		case clsSTX:
			if op != 0x03 {
				return nil, bad
			}
			in.op = opStx
		case clsALU:
			code := op & 0xf0
			if code == 0x80 {
				if op != 0x84 {
					return nil, bad
				}
				in.op = opNeg
				break
			}
			k, ok := aluOpsK[code]
			if !ok {
				return nil, bad
			}
			if op&0x08 != 0 {
				k += opAddX - opAddK
			} else if r.K == 0 && (k == opDivK || k == opModK) {
				return nil, fmt.Errorf("instruction %d: division by constant zero", i)
			}
			in.op = k
		case clsJMP:
			code := op & 0xf0
			if code == 0x00 {
				if op != 0x05 {
					return nil, bad
				}
				in.op = opJa
				if uint64(r.K) >= uint64(len(raw)-i-1) {
					return nil, fmt.Errorf("instruction %d: jump out of program", i)
				}
				break
			}
			k, ok := jmpOpsK[code]
			if !ok {
				return nil, bad
			}
			if op&0x08 != 0 {
				k += opJeqX - opJeqK
			}
			in.op = k
			if int(r.Jt) >= len(raw)-i-1 || int(r.Jf) >= len(raw)-i-1 {
				return nil, fmt.Errorf("instruction %d: jump out of program", i)
			}
		case clsRET:
			switch op {
			case 0x06:
				in.op = opRetK
			case 0x16:
				in.op = opRetA
			default:
				return nil, bad
			}
		case clsMISC:
			switch op {
			case 0x07:
				in.op = opTax
			case 0x87:
				in.op = opTxa
			default:
				return nil, bad
			}
		}
		if (in.op == opLdMem || in.op == opLdxMem || in.op == opSt || in.op == opStx) && r.K >= 16 {
			return nil, fmt.Errorf("instruction %d: scratch index %d out of range", i, r.K)
		}
		prog[i] = in
	}
	switch prog[len(prog)-1].op {
	case opRetK, opRetA:
	default:
		return nil, fmt.Errorf("program does not end with a return")
	}
	return &vm{prog: prog}, nil
}

// run executes the program on pkt; wireLen is the value of "len". A load outside pkt or a
// division by zero ends the program with 0 (drop), as in the kernel and libpcap.
func (v *vm) run(pkt []byte, wireLen uint32) uint32 {
	r, _ := v.exec(pkt, wireLen)
	return r
}

// exec is run that also reports whether the program was aborted by a load outside the packet
// or a division by zero (the tests need to tell that apart from a plain reject).
func (v *vm) exec(pkt []byte, wireLen uint32) (ret uint32, aborted bool) {
	var a, x uint32
	var mem [16]uint32
	prog := v.prog
	n := uint64(len(pkt))
	for pc := 0; pc < len(prog); pc++ {
		in := &prog[pc]
		switch in.op {
		case opLdAbsW:
			o := uint64(in.k)
			if o+4 > n {
				return 0, true
			}
			a = uint32(pkt[o])<<24 | uint32(pkt[o+1])<<16 | uint32(pkt[o+2])<<8 | uint32(pkt[o+3])
		case opLdAbsH:
			o := uint64(in.k)
			if o+2 > n {
				return 0, true
			}
			a = uint32(pkt[o])<<8 | uint32(pkt[o+1])
		case opLdAbsB:
			o := uint64(in.k)
			if o+1 > n {
				return 0, true
			}
			a = uint32(pkt[o])
		case opLdIndW:
			o := uint64(in.k) + uint64(x)
			if o+4 > n {
				return 0, true
			}
			a = uint32(pkt[o])<<24 | uint32(pkt[o+1])<<16 | uint32(pkt[o+2])<<8 | uint32(pkt[o+3])
		case opLdIndH:
			o := uint64(in.k) + uint64(x)
			if o+2 > n {
				return 0, true
			}
			a = uint32(pkt[o])<<8 | uint32(pkt[o+1])
		case opLdIndB:
			o := uint64(in.k) + uint64(x)
			if o+1 > n {
				return 0, true
			}
			a = uint32(pkt[o])
		case opLdImm:
			a = in.k
		case opLdMem:
			a = mem[in.k&15]
		case opLdLen:
			a = wireLen
		case opLdxImm:
			x = in.k
		case opLdxMem:
			x = mem[in.k&15]
		case opLdxLen:
			x = wireLen
		case opLdxMsh:
			o := uint64(in.k)
			if o+1 > n {
				return 0, true
			}
			x = uint32(pkt[o]&0x0f) << 2
		case opSt:
			mem[in.k&15] = a
		case opStx:
			mem[in.k&15] = x
		case opAddK:
			a += in.k
		case opSubK:
			a -= in.k
		case opMulK:
			a *= in.k
		case opDivK:
			a /= in.k
		case opModK:
			a %= in.k
		case opOrK:
			a |= in.k
		case opAndK:
			a &= in.k
		case opXorK:
			a ^= in.k
		case opLshK:
			a = shl(a, in.k)
		case opRshK:
			a = shr(a, in.k)
		case opAddX:
			a += x
		case opSubX:
			a -= x
		case opMulX:
			a *= x
		case opDivX:
			if x == 0 {
				return 0, true
			}
			a /= x
		case opModX:
			if x == 0 {
				return 0, true
			}
			a %= x
		case opOrX:
			a |= x
		case opAndX:
			a &= x
		case opXorX:
			a ^= x
		case opLshX:
			a = shl(a, x)
		case opRshX:
			a = shr(a, x)
		case opNeg:
			a = -a
		case opJa:
			pc += int(in.k)
		case opJeqK:
			pc += branch(a == in.k, in)
		case opJgtK:
			pc += branch(a > in.k, in)
		case opJgeK:
			pc += branch(a >= in.k, in)
		case opJsetK:
			pc += branch(a&in.k != 0, in)
		case opJeqX:
			pc += branch(a == x, in)
		case opJgtX:
			pc += branch(a > x, in)
		case opJgeX:
			pc += branch(a >= x, in)
		case opJsetX:
			pc += branch(a&x != 0, in)
		case opRetK:
			return in.k, false
		case opRetA:
			return a, false
		case opTax:
			x = a
		case opTxa:
			a = x
		}
	}
	return 0, false
}

func branch(c bool, in *vmInsn) int {
	if c {
		return int(in.jt)
	}
	return int(in.jf)
}

// Shifts by 32 or more give 0, as in libpcap's interpreter and x/net/bpf's.
func shl(a, s uint32) uint32 {
	if s >= 32 {
		return 0
	}
	return a << s
}

func shr(a, s uint32) uint32 {
	if s >= 32 {
		return 0
	}
	return a >> s
}
