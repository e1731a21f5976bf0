package bpf

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// MaxInstructions is the largest program the Linux kernel accepts as a socket filter
// (BPF_MAXINSNS); longer programs are refused at compile time.
const MaxInstructions = 4096

// assemble lays the blocks out in topological order (so every jump goes forward) with the
// two return blocks last, and encodes them. A conditional jump whose target is more than 255
// instructions away becomes a conditional jump over two unconditional (32-bit offset) jumps.
func (g *graph) assemble() ([]bpf.Instruction, error) {
	g.order()
	var lay []*block
	var rets []*block
	for _, b := range g.topo {
		if b.kind == bRet {
			rets = append(rets, b)
		} else {
			lay = append(lay, b)
		}
	}
	lay = append(lay, rets...)
	next := func(i int) *block {
		if i+1 < len(lay) {
			return lay[i+1]
		}
		return nil
	}
	long := make([]bool, len(lay))
	for {
		n := 0
		for i, b := range lay {
			b.pos = n
			n += len(b.stmts)
			switch {
			case b.kind == bRet, b.kind == bCond:
				n++
				if long[i] {
					n += 2
				}
			case b.kind == bJump && b.jt != next(i):
				n++
			}
		}
		if n > 4*MaxInstructions {
			return nil, fmt.Errorf("bpf: program too large (%d instructions, limit %d)", n, MaxInstructions)
		}
		changed := false
		for i, b := range lay {
			if b.kind != bCond || long[i] {
				continue
			}
			at := b.pos + len(b.stmts) + 1
			if b.jt.pos-at > 255 || b.jf.pos-at > 255 {
				long[i], changed = true, true
			}
		}
		if !changed {
			break
		}
	}
	var out []bpf.Instruction
	for i, b := range lay {
		out = append(out, b.stmts...)
		at := b.pos + len(b.stmts) + 1
		switch b.kind {
		case bRet:
			out = append(out, bpf.RetConstant{Val: b.ret})
		case bJump:
			if b.jt != next(i) {
				out = append(out, bpf.Jump{Skip: uint32(b.jt.pos - at)})
			}
		case bCond:
			dt, df := b.jt.pos-at, b.jf.pos-at
			if dt < 0 || df < 0 {
				return nil, fmt.Errorf("bpf: internal error: backward jump")
			}
			if long[i] {
				out = append(out, jumpIf(b, 0, 1), bpf.Jump{Skip: uint32(dt - 1)}, bpf.Jump{Skip: uint32(df - 2)})
				continue
			}
			out = append(out, jumpIf(b, uint8(dt), uint8(df)))
		}
	}
	return out, nil
}

func jumpIf(b *block, skipTrue, skipFalse uint8) bpf.Instruction {
	if b.useX {
		return bpf.JumpIfX{Cond: b.test, SkipTrue: skipTrue, SkipFalse: skipFalse}
	}
	return bpf.JumpIf{Cond: b.test, Val: b.k, SkipTrue: skipTrue, SkipFalse: skipFalse}
}
