package bpf

import "golang.org/x/net/bpf"

// condKind is the shape of a node of the boolean tree the parser builds.
type condKind uint8

const (
	cTrue condKind = iota
	cFalse
	cAnd
	cOr
	cNot
	cTest
)

// cond is a boolean expression over packet tests. A test is straight-line code (loads and
// arithmetic, no branches) followed by one conditional jump comparing A with K or X. The
// emitter turns the tree into short-circuit code, so a test's code runs only when the test
// is reached — which is why "in set" chains may reuse the A loaded by their first test.
type cond struct {
	kind  condKind
	a, b  *cond
	stmts []bpf.Instruction
	test  bpf.JumpTest // JumpEqual, JumpGreaterThan, JumpGreaterOrEqual or JumpBitsSet
	k     uint32
	useX  bool
}

var (
	condTrue  = &cond{kind: cTrue}
	condFalse = &cond{kind: cFalse}
)

func constCond(v bool) *cond {
	if v {
		return condTrue
	}
	return condFalse
}

// test builds a leaf: run stmts, then compare A against k with t.
func test(t bpf.JumpTest, k uint32, stmts ...bpf.Instruction) *cond {
	return &cond{kind: cTest, test: t, k: k, stmts: stmts}
}

// testX compares A against X.
func testX(t bpf.JumpTest, stmts ...bpf.Instruction) *cond {
	return &cond{kind: cTest, test: t, useX: true, stmts: stmts}
}

// and/or/not fold constants so that link types without a field (raw IPv4 has no ethertype)
// produce no dead code, and so that a filter that can never match is detected.
func and(a, b *cond) *cond {
	switch {
	case a.kind == cFalse || b.kind == cFalse:
		return condFalse
	case a.kind == cTrue:
		return b
	case b.kind == cTrue:
		return a
	}
	return &cond{kind: cAnd, a: a, b: b}
}

func or(a, b *cond) *cond {
	switch {
	case a.kind == cTrue || b.kind == cTrue:
		return condTrue
	case a.kind == cFalse:
		return b
	case b.kind == cFalse:
		return a
	}
	return &cond{kind: cOr, a: a, b: b}
}

func not(a *cond) *cond {
	switch a.kind {
	case cTrue:
		return condFalse
	case cFalse:
		return condTrue
	case cNot:
		return a.a
	}
	return &cond{kind: cNot, a: a}
}

func andAll(cs ...*cond) *cond {
	r := condTrue
	for _, c := range cs {
		r = and(r, c)
	}
	return r
}

// inSet tests whether the value computed by stmts is one of vals, loading it once: the second
// and later comparisons are only reachable through the false edge of the previous one, so A
// still holds the value.
func inSet(stmts []bpf.Instruction, vals ...uint32) *cond {
	if len(vals) == 0 {
		return condFalse
	}
	r := test(bpf.JumpEqual, vals[len(vals)-1])
	for i := len(vals) - 2; i >= 1; i-- {
		r = or(test(bpf.JumpEqual, vals[i]), r)
	}
	if len(vals) == 1 {
		r.stmts = stmts
		return r
	}
	return or(test(bpf.JumpEqual, vals[0], stmts...), r)
}

// inRange tests lo <= value <= hi, loading the value once (the second comparison is only
// reachable through the first one's true edge).
func inRange(stmts []bpf.Instruction, lo, hi uint32) *cond {
	return and(test(bpf.JumpGreaterOrEqual, lo, stmts...), not(test(bpf.JumpGreaterThan, hi)))
}
