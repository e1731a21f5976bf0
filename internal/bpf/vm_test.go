package bpf

import (
	"errors"
	"math/rand/v2"
	"testing"

	"golang.org/x/net/bpf"
)

// TestVMAgainstXNet runs every oracle expression, compiled for every link type, on every
// generated frame with both interpreters.
func TestVMAgainstXNet(t *testing.T) {
	for _, c := range generatedCaptures(t) {
		for _, expr := range oracleExprs {
			raw, err := Compile(expr, c.linkType, 0)
			if err != nil {
				continue
			}
			v, err := newVM(raw)
			if err != nil {
				t.Fatalf("%q: %v", expr, err)
			}
			ins := make([]bpf.Instruction, len(raw))
			for i, r := range raw {
				ins[i] = r.Disassemble()
			}
			xv, err := bpf.NewVM(ins)
			if err != nil {
				t.Fatalf("%s %q: x/net/bpf refuses our program: %v", c.name, expr, err)
			}
			for i, fr := range c.frames {
				want, err := xv.Run(fr.data)
				if err != nil {
					t.Fatal(err)
				}
				if got := v.run(fr.data, uint32(len(fr.data))); got != uint32(want) {
					t.Errorf("%s %q frame %d: ours %d, x/net/bpf %d", c.name, expr, i, got, want)
				}
			}
		}
	}
}

// randomProgram builds a valid program from every instruction x/net/bpf's VM implements
// (it has no NEG), with forward jumps only and a final return.
func randomProgram(r *rand.Rand, n int) []bpf.Instruction {
	sizes := []int{1, 2, 4}
	aluOps := []bpf.ALUOp{bpf.ALUOpAdd, bpf.ALUOpSub, bpf.ALUOpMul, bpf.ALUOpDiv, bpf.ALUOpOr,
		bpf.ALUOpAnd, bpf.ALUOpShiftLeft, bpf.ALUOpShiftRight, bpf.ALUOpMod, bpf.ALUOpXor}
	tests := []bpf.JumpTest{bpf.JumpEqual, bpf.JumpNotEqual, bpf.JumpGreaterThan, bpf.JumpLessThan,
		bpf.JumpGreaterOrEqual, bpf.JumpLessOrEqual, bpf.JumpBitsSet, bpf.JumpBitsNotSet}
	small := func() uint32 {
		if r.IntN(4) == 0 {
			return r.Uint32()
		}
		return uint32(r.IntN(40))
	}
	prog := make([]bpf.Instruction, 0, n+1)
	for i := 0; i < n; i++ {
		left := n - i // instructions after this one, the final return included
		skip := func() uint8 { return uint8(r.IntN(min(left, 256))) }
		var ins bpf.Instruction
		switch r.IntN(17) {
		case 0:
			ins = bpf.LoadAbsolute{Off: small(), Size: sizes[r.IntN(3)]}
		case 1:
			ins = bpf.LoadIndirect{Off: small(), Size: sizes[r.IntN(3)]}
		case 2:
			ins = bpf.LoadMemShift{Off: small()}
		case 3:
			ins = bpf.LoadConstant{Dst: bpf.Register(r.IntN(2)), Val: small()}
		case 4:
			ins = bpf.LoadScratch{Dst: bpf.Register(r.IntN(2)), N: r.IntN(16)}
		case 5:
			ins = bpf.StoreScratch{Src: bpf.Register(r.IntN(2)), N: r.IntN(16)}
		case 6:
			ins = bpf.LoadExtension{Num: bpf.ExtLen}
		case 7, 8:
			op := aluOps[r.IntN(len(aluOps))]
			v := small()
			if (op == bpf.ALUOpDiv || op == bpf.ALUOpMod) && v == 0 {
				v = 3
			}
			ins = bpf.ALUOpConstant{Op: op, Val: v}
		case 9:
			ins = bpf.ALUOpX{Op: aluOps[r.IntN(len(aluOps))]}
		case 10, 11:
			ins = bpf.JumpIf{Cond: tests[r.IntN(len(tests))], Val: small(), SkipTrue: skip(), SkipFalse: skip()}
		case 12:
			ins = bpf.JumpIfX{Cond: tests[r.IntN(len(tests))], SkipTrue: skip(), SkipFalse: skip()}
		case 13:
			ins = bpf.Jump{Skip: uint32(skip())}
		case 14:
			ins = bpf.TAX{}
		case 15:
			ins = bpf.TXA{}
		default:
			if r.IntN(2) == 0 {
				ins = bpf.RetA{}
			} else {
				ins = bpf.RetConstant{Val: small()}
			}
		}
		prog = append(prog, ins)
	}
	return append(prog, bpf.RetA{})
}

func TestVMRandomProgramsAgainstXNet(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	n := 3000
	if testing.Short() {
		n = 300
	}
	pkt := make([]byte, 64)
	for i := 0; i < n; i++ {
		prog := randomProgram(r, 1+r.IntN(40))
		raw, err := bpf.Assemble(prog)
		if err != nil {
			t.Fatalf("assemble: %v", err)
		}
		v, err := newVM(raw)
		if err != nil {
			t.Fatalf("newVM refuses a valid program: %v\n%v", err, prog)
		}
		xv, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatalf("x/net/bpf: %v", err)
		}
		for j := 0; j < 8; j++ {
			p := pkt[:r.IntN(len(pkt)+1)]
			for k := range p {
				p[k] = byte(r.IntN(256))
				if r.IntN(3) == 0 {
					p[k] = byte(r.IntN(8))
				}
			}
			want, err := xv.Run(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.run(p, uint32(len(p))); got != uint32(want) {
				t.Fatalf("program %v on % x: ours %d, x/net/bpf %d", prog, p, got, want)
			}
		}
	}
}

func TestNewVMRejectsInvalid(t *testing.T) {
	ret := bpf.RawInstruction{Op: 0x06}
	tests := []struct {
		name string
		prog []bpf.RawInstruction
	}{
		{"empty", nil},
		{"no return at end", []bpf.RawInstruction{{Op: 0x20, K: 0}}},
		{"jump past end", []bpf.RawInstruction{{Op: 0x15, Jt: 1, Jf: 0}, ret}},
		{"ja past end", []bpf.RawInstruction{{Op: 0x05, K: 1}, ret}},
		{"division by constant zero", []bpf.RawInstruction{{Op: 0x34, K: 0}, ret}},
		{"modulus by constant zero", []bpf.RawInstruction{{Op: 0x94, K: 0}, ret}},
		{"scratch out of range", []bpf.RawInstruction{{Op: 0x02, K: 16}, ret}},
		{"unknown opcode", []bpf.RawInstruction{{Op: 0xff}, ret}},
		{"wide opcode", []bpf.RawInstruction{{Op: 0x106}, ret}},
		{"unknown alu op", []bpf.RawInstruction{{Op: 0xb4}, ret}},
		{"too long", make([]bpf.RawInstruction, MaxInstructions+1)},
	}
	for _, tc := range tests {
		if _, err := newVM(tc.prog); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// TestVMSemantics checks corner cases by hand.
func TestVMSemantics(t *testing.T) {
	asm := func(ins ...bpf.Instruction) *vm {
		raw, err := bpf.Assemble(ins)
		if err != nil {
			t.Fatal(err)
		}
		v, err := newVM(raw)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	pkt := []byte{0x45, 0x01, 0x02, 0x03}
	tests := []struct {
		name    string
		v       *vm
		wireLen uint32
		want    uint32
		aborted bool
	}{
		{"word load", asm(bpf.LoadAbsolute{Off: 0, Size: 4}, bpf.RetA{}), 4, 0x45010203, false},
		{"load past end aborts", asm(bpf.LoadAbsolute{Off: 1, Size: 4}, bpf.RetConstant{Val: 9}), 4, 0, true},
		{"huge offset aborts", asm(bpf.LoadAbsolute{Off: 0xffffffff, Size: 1}, bpf.RetConstant{Val: 9}), 4, 0, true},
		{"indirect offset does not wrap", asm(bpf.LoadConstant{Dst: bpf.RegX, Val: 0xffffffff}, bpf.LoadIndirect{Off: 1, Size: 1}, bpf.RetA{}), 4, 0, true},
		{"msh", asm(bpf.LoadMemShift{Off: 0}, bpf.TXA{}, bpf.RetA{}), 4, 20, false},
		{"len is the wire length", asm(bpf.LoadExtension{Num: bpf.ExtLen}, bpf.RetA{}), 1500, 1500, false},
		{"division by zero X aborts", asm(bpf.LoadConstant{Dst: bpf.RegA, Val: 7}, bpf.ALUOpX{Op: bpf.ALUOpDiv}, bpf.RetConstant{Val: 1}), 4, 0, true},
		{"shift by 32 is 0", asm(bpf.LoadConstant{Dst: bpf.RegA, Val: 7}, bpf.LoadConstant{Dst: bpf.RegX, Val: 32}, bpf.ALUOpX{Op: bpf.ALUOpShiftLeft}, bpf.RetA{}), 4, 0, false},
		{"neg", asm(bpf.LoadConstant{Dst: bpf.RegA, Val: 1}, bpf.NegateA{}, bpf.RetA{}), 4, 0xffffffff, false},
		{"scratch", asm(bpf.LoadConstant{Dst: bpf.RegA, Val: 5}, bpf.StoreScratch{Src: bpf.RegA, N: 15}, bpf.LoadConstant{Dst: bpf.RegA, Val: 0}, bpf.LoadScratch{Dst: bpf.RegA, N: 15}, bpf.RetA{}), 4, 5, false},
		{"jset", asm(bpf.LoadAbsolute{Off: 1, Size: 1}, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 1, SkipTrue: 1}, bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: 2}), 4, 2, false},
	}
	for _, tc := range tests {
		got, aborted := tc.v.exec(pkt, tc.wireLen)
		if got != tc.want || aborted != tc.aborted {
			t.Errorf("%s: got %#x aborted=%v, want %#x aborted=%v", tc.name, got, aborted, tc.want, tc.aborted)
		}
	}
}

// TestOptimizerPreservesResults: on every frame where the unoptimized program performs all
// its loads in bounds, the optimized program gives the same answer (the optimizer may only
// change results by dropping a load that would have failed, as libpcap's does).
func TestOptimizerPreservesResults(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	exprs := append([]string(nil), oracleExprs...)
	n := 1500
	if testing.Short() {
		n = 200
	}
	for i := 0; i < n; i++ {
		exprs = append(exprs, randomExpr(r, 5))
	}
	caps := generatedCaptures(t)
	for _, c := range caps {
		for _, expr := range exprs {
			checkOptimizer(t, expr, c.linkType, c.frames)
		}
	}
}

func checkOptimizer(t testing.TB, expr string, linkType uint32, frames []frame) {
	t.Helper()
	plain, err := compile(expr, linkType, 0, false)
	if err != nil {
		return
	}
	opt, err := compile(expr, linkType, 0, true)
	if err != nil {
		if errors.Is(err, ErrRejectsAll) {
			opt = []bpf.Instruction{bpf.RetConstant{Val: 0}}
		} else {
			t.Fatalf("%q: optimized compile fails: %v", expr, err)
		}
	}
	vp, vo := mustVM(t, plain), mustVM(t, opt)
	for i, fr := range frames {
		want, aborted := vp.exec(fr.data, uint32(fr.wireLen))
		if aborted {
			continue
		}
		if got := vo.run(fr.data, uint32(fr.wireLen)); got != want {
			t.Errorf("%q frame %d: optimized %d, unoptimized %d", expr, i, got, want)
		}
	}
}

func mustVM(t testing.TB, ins []bpf.Instruction) *vm {
	t.Helper()
	raw, err := bpf.Assemble(ins)
	if err != nil {
		t.Fatal(err)
	}
	v, err := newVM(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
