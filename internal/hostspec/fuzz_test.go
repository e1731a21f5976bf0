package hostspec

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// FuzzParse: never panics; errors are one of the three kinds; an accepted spec round-trips
// through String and matches like net/netip on addresses derived from the input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "192.168.0.0/24", "192.168.1.1/23,2001:db8::/32", "192.168.0.0/24/12ac",
		"192.168.0.0/64", "192.168.AE.0/24", "2001:db8::/48/12ac", "2001:db8::/256",
		"fe80:2030:31:24/12", "0.0.0.0/0,::/0", " 10.0.0.0/008 , ", "::ffff:1.2.3.4/96",
		"fe80::1%eth0/64", "1.2.3.4/99999999999999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec)
		if err != nil {
			if !errors.Is(err, ErrInvalidCIDR) && !errors.Is(err, ErrInvalidIPv4) && !errors.Is(err, ErrInvalidIPv6) {
				t.Fatalf("Parse(%q): unexpected error kind %v", spec, err)
			}
			return
		}
		ps := s.Prefixes()
		for _, p := range ps {
			if !p.IsValid() || p.Addr().Zone() != "" {
				t.Fatalf("Parse(%q) produced invalid prefix %v", spec, p)
			}
		}
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not re-parse: %v", s.String(), spec, err)
		}
		if !slices.Equal(again.Prefixes(), ps) {
			t.Fatalf("round trip %q: %v != %v", spec, again.Prefixes(), ps)
		}
		grouped := build(ps, 0)
		probe := func(addr []byte) {
			want := oracle(ps, addr)
			if got := s.Contains(addr); got != want {
				t.Fatalf("%q Contains %x = %v, want %v", spec, addr, got, want)
			}
			if got := grouped.contains(addr); got != want {
				t.Fatalf("%q grouped contains %x = %v, want %v", spec, addr, got, want)
			}
		}
		for _, p := range ps {
			// The entry's own address, the first address after its network, and the byte-wise
			// complement: inside, just outside, far outside.
			if p.Addr().Is4() {
				a := p.Addr().As4()
				probe(a[:])
				last := lastAddr(p)
				probe(next(last))
				for i := range a {
					a[i] = ^a[i]
				}
				probe(a[:])
			} else {
				a := p.Addr().As16()
				probe(a[:])
				probe(next(lastAddr(p)))
				for i := range a {
					a[i] = ^a[i]
				}
				probe(a[:])
			}
		}
	})
}

// lastAddr returns the highest address of p's network.
func lastAddr(p netip.Prefix) []byte {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for bit := range 8 {
			if i*8+bit >= bits {
				b[i] |= 0x80 >> bit
			}
		}
	}
	return b
}

// next returns addr+1 (wrapping).
func next(addr []byte) []byte {
	b := slices.Clone(addr)
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			break
		}
	}
	return b
}

// FuzzContains builds arbitrary prefix sets from raw bytes and compares the linear and grouped
// matchers with net/netip.
func FuzzContains(f *testing.F) {
	f.Add([]byte{4, 24, 192, 168, 0, 0, 16, 32, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{192, 168, 0, 9})
	f.Add([]byte{4, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data, addr []byte) {
		var ps []netip.Prefix
		for len(data) >= 2 {
			n := 4
			if data[0]&1 == 0 {
				n = 16
			}
			if len(data) < 2+n {
				break
			}
			a, _ := netip.AddrFromSlice(data[2 : 2+n])
			ps = append(ps, netip.PrefixFrom(a, int(data[1])%(n*8+1)))
			data = data[2+n:]
		}
		want := oracle(ps, addr)
		for _, lin := range []int{0, 3, linearMax, 1 << 30} {
			if got := build(ps, lin).contains(addr); got != want {
				t.Fatalf("linear=%d %v contains %x = %v, want %v", lin, ps, addr, got, want)
			}
		}
	})
}
