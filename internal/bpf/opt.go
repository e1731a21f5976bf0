package bpf

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// The optimizer works on the control-flow graph (a DAG: classic BPF only jumps forward) of the
// short-circuit code. It does what matters of libpcap's optimizer for the result of a filter:
//
//   - jump threading: a test whose outcome is implied by the tests already passed on the way
//     (packet bytes never change, so "[12:2] = 0x800" stays known) is bypassed;
//   - a test whose two branches lead to the same place is removed;
//   - loads whose value nobody uses are removed.
//
// Besides making programs shorter, this makes results on frames truncated inside a header
// agree with tcpdump: a BPF load beyond the captured bytes rejects the frame, so which loads a
// program still performs after optimization is part of its observable behaviour.

type blockKind uint8

const (
	bCond blockKind = iota
	bJump           // unconditional: falls to jt
	bRet
)

type block struct {
	stmts  []bpf.Instruction
	kind   blockKind
	test   bpf.JumpTest
	k      uint32
	useX   bool
	jt, jf *block
	ret    uint32

	// Per-round analysis.
	seen   int
	order  int
	in     *state
	hasIn  bool
	liveIn uint32
	pos    int
}

func (b *block) succs() []*block {
	switch b.kind {
	case bCond:
		return []*block{b.jt, b.jf}
	case bJump:
		return []*block{b.jt}
	}
	return nil
}

// buildBlocks turns a condition tree into blocks: control reaches t when c holds, f otherwise.
func buildBlocks(c *cond, t, f *block) *block {
	switch c.kind {
	case cTest:
		return &block{stmts: c.stmts, kind: bCond, test: c.test, k: c.k, useX: c.useX, jt: t, jf: f}
	case cAnd:
		return buildBlocks(c.a, buildBlocks(c.b, t, f), f)
	case cOr:
		return buildBlocks(c.a, t, buildBlocks(c.b, t, f))
	case cNot:
		return buildBlocks(c.a, f, t)
	case cTrue:
		return t
	}
	return f
}

// Register liveness bits: A, X, then the 16 scratch slots.
const (
	liveA uint32 = 1 << 0
	liveX uint32 = 1 << 1
)

func liveM(n int) uint32 { return 1 << (2 + uint(n&15)) }

// usesDefs returns the registers an instruction reads and writes.
func usesDefs(ins bpf.Instruction) (uses, defs uint32) {
	switch i := ins.(type) {
	case bpf.LoadAbsolute, bpf.LoadExtension:
		return 0, liveA
	case bpf.LoadIndirect:
		return liveX, liveA
	case bpf.LoadMemShift:
		return 0, liveX
	case bpf.LoadConstant:
		if i.Dst == bpf.RegX {
			return 0, liveX
		}
		return 0, liveA
	case bpf.LoadScratch:
		if i.Dst == bpf.RegX {
			return liveM(i.N), liveX
		}
		return liveM(i.N), liveA
	case bpf.StoreScratch:
		if i.Src == bpf.RegX {
			return liveX, liveM(i.N)
		}
		return liveA, liveM(i.N)
	case bpf.ALUOpConstant, bpf.NegateA:
		return liveA, liveA
	case bpf.ALUOpX:
		return liveA | liveX, liveA
	case bpf.TAX:
		return liveA, liveX
	case bpf.TXA:
		return liveX, liveA
	}
	// Unknown instruction: keep everything alive.
	return ^uint32(0), 0
}

func (b *block) condUses() uint32 {
	if b.kind != bCond {
		return 0
	}
	if b.useX {
		return liveA | liveX
	}
	return liveA
}

// Known facts about packet-derived values along a path. A value is named by a key that
// describes how it was computed from the packet ("H[12]", "B[X(14)+23]&15"); "" means unknown.
type fact struct {
	key  string
	test bpf.JumpTest
	k    uint32
}

type state struct {
	facts map[fact]bool
	eq    map[string]uint32
	a, x  string
}

// maxFacts bounds the analysis on huge programs; forgetting facts is always safe.
const maxFacts = 256

func (s *state) clone() *state {
	n := &state{facts: make(map[fact]bool, len(s.facts)+1), eq: make(map[string]uint32, len(s.eq)+1), a: s.a, x: s.x}
	for k, v := range s.facts {
		n.facts[k] = v
	}
	for k, v := range s.eq {
		n.eq[k] = v
	}
	return n
}

// meet keeps what holds on both incoming paths.
func meet(a, b *state) *state {
	n := &state{facts: map[fact]bool{}, eq: map[string]uint32{}}
	for k, v := range a.facts {
		if w, ok := b.facts[k]; ok && w == v {
			n.facts[k] = v
		}
	}
	for k, v := range a.eq {
		if w, ok := b.eq[k]; ok && w == v {
			n.eq[k] = v
		}
	}
	if a.a == b.a {
		n.a = a.a
	}
	if a.x == b.x {
		n.x = a.x
	}
	return n
}

func (s *state) learn(key string, t bpf.JumpTest, k uint32, outcome bool) {
	if key == "" || len(s.facts) >= maxFacts {
		return
	}
	s.facts[fact{key, t, k}] = outcome
	if t == bpf.JumpEqual && outcome {
		s.eq[key] = k
	}
}

// decide reports the outcome of comparing the value key with k, if the facts imply it.
func (s *state) decide(key string, t bpf.JumpTest, k uint32) (outcome, known bool) {
	if key == "" {
		return false, false
	}
	if v, ok := s.facts[fact{key, t, k}]; ok {
		return v, true
	}
	if v, ok := s.eq[key]; ok {
		switch t {
		case bpf.JumpEqual:
			return v == k, true
		case bpf.JumpGreaterThan:
			return v > k, true
		case bpf.JumpGreaterOrEqual:
			return v >= k, true
		case bpf.JumpBitsSet:
			return v&k != 0, true
		}
	}
	return false, false
}

// step applies one instruction to the register keys.
func step(a, x string, ins bpf.Instruction) (string, string) {
	switch i := ins.(type) {
	case bpf.LoadAbsolute:
		return fmt.Sprintf("%d[%d]", i.Size, i.Off), x
	case bpf.LoadIndirect:
		if x == "" {
			return "", x
		}
		return fmt.Sprintf("%d[%s+%d]", i.Size, x, i.Off), x
	case bpf.LoadMemShift:
		return a, fmt.Sprintf("msh[%d]", i.Off)
	case bpf.LoadExtension:
		if i.Num == bpf.ExtLen {
			return "len", x
		}
		return "", x
	case bpf.LoadConstant:
		if i.Dst == bpf.RegX {
			return a, fmt.Sprintf("#%d", i.Val)
		}
		return fmt.Sprintf("#%d", i.Val), x
	case bpf.ALUOpConstant:
		if a == "" {
			return "", x
		}
		return fmt.Sprintf("(%s op%d %d)", a, i.Op, i.Val), x
	case bpf.ALUOpX:
		if a == "" || x == "" {
			return "", x
		}
		return fmt.Sprintf("(%s opx%d %s)", a, i.Op, x), x
	case bpf.TAX:
		return a, a
	case bpf.TXA:
		return x, x
	}
	_, defs := usesDefs(ins)
	if defs&liveA != 0 {
		a = ""
	}
	if defs&liveX != 0 {
		x = ""
	}
	return a, x
}

func (b *block) exitKeys(a, x string) (string, string) {
	for _, s := range b.stmts {
		a, x = step(a, x, s)
	}
	return a, x
}

func (b *block) defs() uint32 {
	var d uint32
	for _, s := range b.stmts {
		_, df := usesDefs(s)
		d |= df
	}
	return d
}

// graph is the optimizer's view of a program.
type graph struct {
	entry    *block
	round    int
	topo     []*block // reverse postorder: every edge goes forward
	acc, rej *block
}

func (g *graph) order() {
	g.round++
	g.topo = g.topo[:0]
	var post []*block
	var visit func(b *block)
	visit = func(b *block) {
		if b.seen == g.round {
			return
		}
		b.seen = g.round
		if b.kind == bCond {
			visit(b.jf)
			visit(b.jt)
		} else if b.kind == bJump {
			visit(b.jt)
		}
		post = append(post, b)
	}
	visit(g.entry)
	for i := len(post) - 1; i >= 0; i-- {
		g.topo = append(g.topo, post[i])
	}
	for i, b := range g.topo {
		b.order = i
		b.hasIn = false
		b.in = nil
	}
}

func (g *graph) liveness() {
	for i := len(g.topo) - 1; i >= 0; i-- {
		g.topo[i].liveIn = g.computeLiveIn(g.topo[i])
	}
}

func (g *graph) computeLiveIn(b *block) uint32 {
	var live uint32
	for _, s := range b.succs() {
		live |= s.liveIn
	}
	live |= b.condUses()
	for i := len(b.stmts) - 1; i >= 0; i-- {
		u, d := usesDefs(b.stmts[i])
		live = live&^d | u
	}
	return live
}

// flow computes each reachable block's entry state (meet over incoming edges).
func (g *graph) flow() {
	g.entry.in = &state{facts: map[fact]bool{}, eq: map[string]uint32{}}
	g.entry.hasIn = true
	for _, b := range g.topo {
		if !b.hasIn {
			continue
		}
		for i, s := range b.succs() {
			es := g.edgeState(b, i == 0)
			if !s.hasIn {
				s.in, s.hasIn = es, true
			} else {
				s.in = meet(s.in, es)
			}
		}
	}
}

// edgeState is the state on b's true (or false) out-edge.
func (g *graph) edgeState(b *block, taken bool) *state {
	es := b.in.clone()
	es.a, es.x = b.exitKeys(b.in.a, b.in.x)
	if b.kind == bCond && !b.useX {
		es.learn(es.a, b.test, b.k, taken)
	}
	return es
}

// thread follows edge from src (its true edge if taken) through blocks whose tests are
// decided, and returns the farthest block the edge may jump to directly: one where every
// register still live holds the value the skipped code would have computed.
func (g *graph) thread(src *block, taken bool, to *block) *block {
	es := g.edgeState(src, taken)
	actA, actX := es.a, es.x
	simA, simX := es.a, es.x
	var skippedDefs uint32
	best := to
	cur := to
	for hops := 0; hops < 64 && cur.kind != bRet; hops++ {
		a, x := cur.exitKeys(simA, simX)
		var next *block
		if cur.kind == bJump {
			next = cur.jt
		} else {
			if cur.useX {
				break
			}
			out, known := es.decide(a, cur.test, cur.k)
			if !known {
				break
			}
			next = cur.jf
			if out {
				next = cur.jt
			}
		}
		skippedDefs |= cur.defs()
		simA, simX = a, x
		cur = next
		live := cur.liveIn & skippedDefs
		ok := live&^(liveA|liveX) == 0 &&
			(live&liveA == 0 || (simA != "" && simA == actA)) &&
			(live&liveX == 0 || (simX != "" && simX == actX))
		if ok {
			best = cur
		}
	}
	return best
}

// optimize runs the passes to a fixed point.
func (g *graph) optimize() {
	for rounds := 0; rounds < 100; rounds++ {
		changed := false
		g.order()
		g.flow()
		// A test decided by everything known on entry: both branches go the decided way.
		for _, b := range g.topo {
			if b.kind != bCond || b.useX || !b.hasIn {
				continue
			}
			a, _ := b.exitKeys(b.in.a, b.in.x)
			if out, known := b.in.decide(a, b.test, b.k); known {
				if !out {
					b.jt = b.jf
				}
				b.kind, b.jf = bJump, nil
				changed = true
			}
		}
		if g.dropReloads() {
			changed = true
		}
		// Thread edges, sinks first so that the liveness of every target is final.
		for i := len(g.topo) - 1; i >= 0; i-- {
			b := g.topo[i]
			if b.hasIn {
				switch b.kind {
				case bCond:
					if nt := g.thread(b, true, b.jt); nt != b.jt {
						b.jt, changed = nt, true
					}
					if nf := g.thread(b, false, b.jf); nf != b.jf {
						b.jf, changed = nf, true
					}
				case bJump:
					if nt := g.thread(b, true, b.jt); nt != b.jt {
						b.jt, changed = nt, true
					}
				}
			}
			b.liveIn = g.computeLiveIn(b)
		}
		// Branches with one destination become jumps.
		for _, b := range g.topo {
			if b.kind == bCond && b.jt == b.jf {
				b.kind, b.jf = bJump, nil
				changed = true
			}
		}
		// Jumps to empty jumps go straight through.
		for _, b := range g.topo {
			for _, p := range []**block{&b.jt, &b.jf} {
				for *p != nil && (*p).kind == bJump && len((*p).stmts) == 0 && *p != b {
					*p = (*p).jt
					changed = true
				}
			}
		}
		for g.entry.kind == bJump && len(g.entry.stmts) == 0 {
			g.entry = g.entry.jt
			changed = true
		}
		if g.mergeSame() {
			changed = true
		}
		// Dead code: recompute liveness on the final edges of this round.
		g.order()
		g.liveness()
		for _, b := range g.topo {
			if g.removeDead(b) {
				changed = true
			}
		}
		if !changed {
			return
		}
	}
}

// removeDead drops instructions whose results are never used.
func (g *graph) removeDead(b *block) bool {
	var live uint32
	for _, s := range b.succs() {
		live |= s.liveIn
	}
	live |= b.condUses()
	var kept []bpf.Instruction
	removed := false
	for i := len(b.stmts) - 1; i >= 0; i-- {
		u, d := usesDefs(b.stmts[i])
		if d != 0 && d&live == 0 {
			removed = true
			continue
		}
		live = live&^d | u
		kept = append(kept, b.stmts[i])
	}
	if removed {
		for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
			kept[i], kept[j] = kept[j], kept[i]
		}
		b.stmts = kept
	}
	return removed
}

// size counts the instructions of the unoptimized program.
func (g *graph) size() int {
	g.order()
	n := 0
	for _, b := range g.topo {
		n += len(b.stmts) + 1
	}
	return n
}

// dropReloads removes a load of a value the register already holds on every path into the
// block (the second "ldh [12]" of "ip or ip6").
func (g *graph) dropReloads() bool {
	changed := false
	for _, b := range g.topo {
		if !b.hasIn || len(b.stmts) == 0 {
			continue
		}
		a, x := b.in.a, b.in.x
		var kept []bpf.Instruction
		for _, s := range b.stmts {
			na, nx := step(a, x, s)
			pure := false
			switch s.(type) {
			case bpf.LoadAbsolute, bpf.LoadIndirect, bpf.LoadExtension, bpf.LoadConstant, bpf.LoadMemShift:
				pure = true
			}
			if pure && na == a && nx == x && (a != "" || x != "") {
				_, d := usesDefs(s)
				if (d == liveA && a != "") || (d == liveX && x != "") {
					changed = true
					continue
				}
			}
			a, x = na, nx
			kept = append(kept, s)
		}
		if len(kept) != len(b.stmts) {
			b.stmts = kept
		}
	}
	return changed
}

// mergeSame merges blocks with identical code and identical successors, bottom-up, so that
// duplicated alternatives (one per transport for "port 53") share their code again.
func (g *graph) mergeSame() bool {
	g.order()
	canon := map[*block]*block{}
	bySig := map[string]*block{}
	id := map[*block]int{}
	changed := false
	get := func(b *block) *block {
		if c, ok := canon[b]; ok {
			return c
		}
		return b
	}
	for i := len(g.topo) - 1; i >= 0; i-- {
		b := g.topo[i]
		if b.jt != nil && get(b.jt) != b.jt {
			b.jt, changed = get(b.jt), true
		}
		if b.jf != nil && get(b.jf) != b.jf {
			b.jf, changed = get(b.jf), true
		}
		sig := fmt.Sprintf("%d|%v|%d|%d|%v|%d", b.kind, b.stmts, b.test, b.k, b.useX, b.ret)
		if b.jt != nil {
			sig += fmt.Sprintf("|t%d", id[b.jt])
		}
		if b.jf != nil {
			sig += fmt.Sprintf("|f%d", id[b.jf])
		}
		if c, ok := bySig[sig]; ok {
			canon[b] = c
			continue
		}
		bySig[sig] = b
		id[b] = len(id) + 1
	}
	if c := get(g.entry); c != g.entry {
		g.entry, changed = c, true
	}
	return changed
}
