package metrics

import (
	"fmt"
	"slices"
	"strings"
)

// Groups is the set of metric groups a handler knows, with the ones enabled by default.
// A handler's enabled groups are a bit mask indexed by the position in Names.
type Groups struct {
	Names    []string // in the handler's own order; bit i = Names[i]
	Defaults []string
}

// Bit returns the mask bit of group name (0 if unknown).
func (g *Groups) Bit(name string) uint32 {
	if i := slices.Index(g.Names, name); i >= 0 {
		return 1 << uint(i)
	}
	return 0
}

func (g *Groups) all() uint32 { return 1<<uint(len(g.Names)) - 1 }

// Resolve applies metric_groups: disable is processed first, then enable; "all" clears or sets
// every group. Unknown names give the reference's error text.
func (g *Groups) Resolve(enable, disable []string) (uint32, error) {
	var mask uint32
	for _, n := range g.Defaults {
		mask |= g.Bit(n)
	}
	for _, n := range disable {
		if n == "all" {
			mask = 0
			continue
		}
		b := g.Bit(n)
		if b == 0 {
			return 0, g.invalid(n)
		}
		mask &^= b
	}
	for _, n := range enable {
		if n == "all" {
			mask = g.all()
			continue
		}
		b := g.Bit(n)
		if b == 0 {
			return 0, g.invalid(n)
		}
		mask |= b
	}
	return mask, nil
}

func (g *Groups) invalid(name string) error {
	valid := slices.Clone(g.Names)
	slices.Sort(valid)
	return fmt.Errorf("%s is an invalid/unsupported metric group. The valid groups are: all, %s", name, strings.Join(valid, ", "))
}
