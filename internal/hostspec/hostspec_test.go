package hostspec

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
)

// Examples of spec §6.18 (libs/visor_utils/test_utils.cpp) and §6.11 (dnstap invalid filters).
func TestParse(t *testing.T) {
	tests := []struct {
		spec string
		want []string // prefixes as kept (address not masked)
		v4   int
		v6   int
	}{
		{"", nil, 0, 0},
		{"192.168.0.0/24", []string{"192.168.0.0/24"}, 1, 0},
		{"192.168.1.1/23", []string{"192.168.1.1/23"}, 1, 0},
		{"192.168.1.5/32", []string{"192.168.1.5/32"}, 1, 0},
		{"192.168.1.5/30,192.168.1.20/32", []string{"192.168.1.5/30", "192.168.1.20/32"}, 2, 0},
		{"2001:7f8:1::a506:2597:1/48", []string{"2001:7f8:1::a506:2597:1/48"}, 0, 1},
		{"192.168.1.5/32,2001:7f8:1::a506:2597:1/48", []string{"192.168.1.5/32", "2001:7f8:1::a506:2597:1/48"}, 1, 1},
		{"192.168.0.0/24,2001:db8::/32", []string{"192.168.0.0/24", "2001:db8::/32"}, 1, 1},
		// Whitespace trimmed, empty entries skipped.
		{"  10.0.0.0/8 ,\t fd00::/8\n", []string{"10.0.0.0/8", "fd00::/8"}, 1, 1},
		{"10.0.0.0/8,", []string{"10.0.0.0/8"}, 1, 0},
		{" , ", nil, 0, 0},
		// Leading zeros in the length are accepted, as by the reference's stoi.
		{"10.0.0.0/008", []string{"10.0.0.0/8"}, 1, 0},
		{"0.0.0.0/0", []string{"0.0.0.0/0"}, 1, 0},
		{"::/0", []string{"::/0"}, 0, 1},
		{"::ffff:1.2.3.4/128", []string{"::ffff:1.2.3.4/128"}, 0, 1},
		{"FE80::1/10", []string{"fe80::1/10"}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := Parse(tt.spec)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.spec, err)
			}
			got := s.Prefixes()
			if len(got) != len(tt.want) {
				t.Fatalf("Prefixes() = %v, want %v", got, tt.want)
			}
			v4, v6 := 0, 0
			for i, p := range got {
				if p.String() != tt.want[i] {
					t.Errorf("prefix %d = %s, want %s", i, p, tt.want[i])
				}
				if p.Addr().Is4() {
					v4++
				} else {
					v6++
				}
			}
			if v4 != tt.v4 || v6 != tt.v6 {
				t.Errorf("families v4=%d v6=%d, want %d %d", v4, v6, tt.v4, tt.v6)
			}
			if s.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", s.Len(), len(tt.want))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr string
		is      error
	}{
		// §6.11, verbatim.
		{"192.168.0.0/24/12ac", "invalid CIDR: 192.168.0.0/24/12ac", ErrInvalidCIDR},
		{"192.168.0.0/64", "invalid CIDR: 192.168.0.0/64", ErrInvalidCIDR},
		{"192.168.AE.0/24", "invalid IPv4 address: 192.168.AE.0", ErrInvalidIPv4},
		{"2001:db8::/48/12ac", "invalid CIDR: 2001:db8::/48/12ac", ErrInvalidCIDR},
		{"2001:db8::/256", "invalid CIDR: 2001:db8::/256", ErrInvalidCIDR},
		{"fe80:2030:31:24/12", "invalid IPv6 address: fe80:2030:31:24", ErrInvalidIPv6},
		// A CIDR is mandatory.
		{"192.168.0.1", "invalid CIDR: 192.168.0.1", ErrInvalidCIDR},
		{"2001:db8::1", "invalid CIDR: 2001:db8::1", ErrInvalidCIDR},
		{"10.0.0.0/", "invalid CIDR: 10.0.0.0/", ErrInvalidCIDR},
		{"10.0.0.0/-1", "invalid CIDR: 10.0.0.0/-1", ErrInvalidCIDR},
		{"10.0.0.0/+8", "invalid CIDR: 10.0.0.0/+8", ErrInvalidCIDR},
		{"10.0.0.0/ 8", "invalid CIDR: 10.0.0.0/ 8", ErrInvalidCIDR},
		{"10.0.0.0/33", "invalid CIDR: 10.0.0.0/33", ErrInvalidCIDR},
		{"10.0.0.0/99999999999999999999", "invalid CIDR: 10.0.0.0/99999999999999999999", ErrInvalidCIDR},
		{"::/129", "invalid CIDR: ::/129", ErrInvalidCIDR},
		// Length is checked before the address, like the reference.
		{"192.168.AE.0/64", "invalid CIDR: 192.168.AE.0/64", ErrInvalidCIDR},
		// Addresses must be what inet_pton accepts.
		{"/24", "invalid IPv4 address: ", ErrInvalidIPv4},
		{"1.2.3/24", "invalid IPv4 address: 1.2.3", ErrInvalidIPv4},
		{"1.2.3.256/24", "invalid IPv4 address: 1.2.3.256", ErrInvalidIPv4},
		{"01.2.3.4/24", "invalid IPv4 address: 01.2.3.4", ErrInvalidIPv4},
		{"fe80::1%eth0/64", "invalid IPv6 address: fe80::1%eth0", ErrInvalidIPv6},
		{"1:2:3:4:5:6:7:8:9/64", "invalid IPv6 address: 1:2:3:4:5:6:7:8:9", ErrInvalidIPv6},
		// The first bad entry of a list is reported.
		{"10.0.0.0/8,10.0.0.0/40,x", "invalid CIDR: 10.0.0.0/40", ErrInvalidCIDR},
		{" 10.0.0.1 ", "invalid CIDR: 10.0.0.1", ErrInvalidCIDR},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := Parse(tt.spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error %q", tt.spec, s, tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error %q, want %q", err, tt.wantErr)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	s, err := ParseList([]string{"192.168.0.0/24", " 2001:db8::/32 "})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "192.168.0.0/24,2001:db8::/32" {
		t.Errorf("String() = %q", got)
	}
	if _, err := ParseList([]string{"192.168.0.0/24/12ac"}); err == nil || err.Error() != "invalid CIDR: 192.168.0.0/24/12ac" {
		t.Errorf("ParseList error = %v", err)
	}
	if _, err := ParseList([]string{""}); err == nil || err.Error() != "invalid CIDR: " {
		t.Errorf("ParseList empty entry error = %v", err)
	}
}

func a4(s string) []byte {
	a := netip.MustParseAddr(s).As4()
	return a[:]
}

func a16(s string) []byte {
	a := netip.MustParseAddr(s).As16()
	return a[:]
}

func TestContains(t *testing.T) {
	tests := []struct {
		spec string
		addr []byte
		want bool
	}{
		{"192.168.0.0/24", a4("192.168.0.1"), true},
		{"192.168.0.0/24", a4("192.168.0.255"), true},
		{"192.168.0.0/24", a4("192.168.1.0"), false},
		// Entry keeps .1.1 but matching is by the /23 network 192.168.0.0-192.168.1.255.
		{"192.168.1.1/23", a4("192.168.0.7"), true},
		{"192.168.1.1/23", a4("192.168.2.0"), false},
		{"192.168.1.5/30,192.168.1.20/32", a4("192.168.1.7"), true},
		{"192.168.1.5/30,192.168.1.20/32", a4("192.168.1.8"), false},
		{"192.168.1.5/30,192.168.1.20/32", a4("192.168.1.20"), true},
		{"2001:7f8:1::a506:2597:1/48", a16("2001:7f8:1:ffff::"), true},
		{"2001:7f8:1::a506:2597:1/48", a16("2001:7f8:2::"), false},
		{"2001:db8::/33", a16("2001:db8:7fff::1"), true},
		{"2001:db8::/33", a16("2001:db8:8000::1"), false},
		{"2001:db8::1/128", a16("2001:db8::1"), true},
		{"2001:db8::1/128", a16("2001:db8::2"), false},
		{"2001:db8::/65", a16("2001:db8::7fff:ffff:ffff:ffff"), true},
		{"2001:db8::/65", a16("2001:db8::8000:0:0:0"), false},
		// Families never cross.
		{"192.168.0.0/16", a16("::ffff:192.168.0.1"), false},
		{"::ffff:192.168.0.0/120", a16("::ffff:192.168.0.1"), true},
		{"::ffff:192.168.0.0/120", a4("192.168.0.1"), false},
		{"::/0", a4("1.2.3.4"), false},
		// Reference quirk kept: 0.0.0.0 never matches, IPv4 /0 matches every other address.
		{"0.0.0.0/0", a4("0.0.0.0"), false},
		{"0.0.0.0/8", a4("0.0.0.0"), false},
		{"0.0.0.0/0", a4("255.255.255.255"), true},
		{"0.0.0.0/0", a4("8.8.8.8"), true},
		{"10.1.2.3/0", a4("8.8.8.8"), true},
		// Reference quirk NOT kept: ::/0 matches every IPv6.
		{"::/0", a16("2001:db8::1"), true},
		{"::/0", a16("::"), true},
		{"::/127", a16("::1"), true},
		// Bad lengths never match.
		{"0.0.0.0/0", nil, false},
		{"0.0.0.0/0", []byte{1, 2, 3}, false},
		{"::/0", make([]byte, 15), false},
		{"", a4("1.2.3.4"), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%x", tt.spec, tt.addr), func(t *testing.T) {
			s, err := Parse(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Contains(tt.addr); got != tt.want {
				t.Errorf("Contains = %v, want %v", got, tt.want)
			}
			// Same answer with the per-length grouped structure.
			if got := build(s.Prefixes(), 0).contains(tt.addr); got != tt.want {
				t.Errorf("grouped contains = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDirection(t *testing.T) {
	s, err := Parse("192.168.0.0/24,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	host, other := a4("192.168.0.10"), a4("8.8.8.8")
	host6, other6 := a16("2001:db8::53"), a16("2001:4860::8888")
	tests := []struct {
		name     string
		src, dst []byte
		want     Direction
		label    string
	}{
		{"to host", other, host, ToHost, "in"},
		{"from host", host, other, FromHost, "out"},
		{"local to local is in", host, a4("192.168.0.11"), ToHost, "in"},
		{"neither", other, a4("1.1.1.1"), Unknown, "unknown"},
		{"v6 to host", other6, host6, ToHost, "in"},
		{"v6 from host", host6, other6, FromHost, "out"},
		{"v6 neither", other6, other6, Unknown, "unknown"},
		{"non-IP", nil, nil, Unknown, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Direction(tt.src, tt.dst)
			if got != tt.want || got.String() != tt.label {
				t.Errorf("Direction = %v (%s), want %v (%s)", got, got, tt.want, tt.label)
			}
		})
	}
	var empty Set
	if d := empty.Direction(host, host); d != Unknown {
		t.Errorf("zero Set Direction = %v", d)
	}
}

func TestAdd(t *testing.T) {
	var s Set
	if s.Contains(a4("10.0.0.1")) || s.String() != "" || s.Prefixes() != nil || s.Len() != 0 {
		t.Fatal("zero Set is not empty")
	}
	s.Add(netip.MustParsePrefix("10.0.0.1/8"))
	s.Add(netip.Prefix{}) // invalid: ignored
	s.Add(netip.MustParsePrefix("fe80::1/64"))
	if got := s.String(); got != "10.0.0.1/8,fe80::1/64" {
		t.Errorf("String() = %q", got)
	}
	if !s.Contains(a4("10.255.0.1")) || !s.Contains(a16("fe80::2")) || s.Contains(a4("11.0.0.1")) {
		t.Error("added prefixes not matched")
	}
	// Prefixes returns a copy.
	p := s.Prefixes()
	p[0] = netip.MustParsePrefix("1.0.0.0/8")
	if s.Contains(a4("1.0.0.1")) {
		t.Error("Prefixes() aliases the set")
	}
	// Growing past the linear threshold switches structure without changing answers.
	for i := range 40 {
		s.Add(netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(i), 0}), 24))
	}
	if !s.Contains(a4("172.16.39.9")) || s.Contains(a4("172.16.40.9")) || !s.Contains(a4("10.1.1.1")) {
		t.Error("large set mismatch")
	}
	if m := s.m.Load(); len(m.v4.groups) == 0 {
		t.Error("expected grouped v4 structure above linearMax")
	}
}

// Add while readers run: must be race-free (run with -race).
func TestAddConcurrent(t *testing.T) {
	s, _ := Parse("10.0.0.0/8")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			addr := a4("10.1.2.3")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !s.Contains(addr) {
					t.Error("lost an entry during Add")
					return
				}
			}
		})
	}
	for i := range 100 {
		s.Add(netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 24))
	}
	close(stop)
	wg.Wait()
	if s.Len() != 101 {
		t.Errorf("Len = %d", s.Len())
	}
}

// oracle is the standard library's answer plus the documented rules (0.0.0.0 never matches,
// families never cross).
func oracle(prefixes []netip.Prefix, addr []byte) bool {
	a, ok := netip.AddrFromSlice(addr)
	if !ok {
		return false
	}
	if len(addr) == 4 && a.IsUnspecified() {
		return false
	}
	for _, p := range prefixes {
		if p.Addr().Is4() != (len(addr) == 4) {
			continue
		}
		if p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

// Random sets (small and large, linear and grouped) checked against net/netip.
func TestContainsRandomOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randAddr := func(v6 bool) []byte {
		if v6 {
			b := make([]byte, 16)
			for i := range b {
				b[i] = byte(r.UintN(4)) // few distinct values ⇒ many hits
			}
			return b
		}
		b := make([]byte, 4)
		for i := range b {
			b[i] = byte(r.UintN(4))
		}
		return b
	}
	for round := range 200 {
		n := r.IntN(60)
		var ps []netip.Prefix
		for range n {
			v6 := r.IntN(2) == 0
			a, _ := netip.AddrFromSlice(randAddr(v6))
			ps = append(ps, netip.PrefixFrom(a, r.IntN(a.BitLen()+1)))
		}
		for _, lin := range []int{0, linearMax, 1 << 30} {
			m := build(ps, lin)
			for range 200 {
				addr := randAddr(r.IntN(2) == 0)
				if got, want := m.contains(addr), oracle(ps, addr); got != want {
					t.Fatalf("round %d linear=%d: %v contains %x = %v, want %v", round, lin, ps, addr, got, want)
				}
			}
		}
	}
}

func TestContainsNoAlloc(t *testing.T) {
	small, _ := Parse("192.168.0.0/24,2001:db8::/32")
	large := bigSet(1000)
	v4, v6 := a4("192.168.0.1"), a16("2001:db8::1")
	for name, s := range map[string]*Set{"small": small, "large": large} {
		if n := testing.AllocsPerRun(1000, func() {
			s.Contains(v4)
			s.Contains(v6)
			s.Direction(v4, v6)
		}); n != 0 {
			t.Errorf("%s: %v allocs per run", name, n)
		}
	}
}

// bigSet builds n /24 and /64 prefixes spread over a few lengths.
func bigSet(n int) *Set {
	s := &Set{}
	var ps []netip.Prefix
	for i := range n {
		ps = append(ps,
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24+i%3),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 48+8*(i%3)))
	}
	s.m.Store(build(ps, linearMax))
	return s
}

func BenchmarkContains(b *testing.B) {
	type namedSet struct {
		name string
		s    *Set
		hit4 []byte
		hit6 []byte
	}
	one, _ := Parse("192.168.0.0/24,2001:db8::/32")
	sets := []namedSet{{"n=1", one, a4("192.168.0.1"), a16("2001:db8::1")}}
	for _, n := range []int{8, 100, 10000} {
		sets = append(sets, namedSet{fmt.Sprintf("n=%d", n), bigSet(n), a4("10.0.5.1"), a16("2001:db8:0:5::1")})
	}
	for _, st := range sets {
		for _, c := range []struct {
			name string
			addr []byte
		}{
			{"v4hit", st.hit4},
			{"v4miss", a4("8.8.8.8")},
			{"v6hit", st.hit6},
			{"v6miss", a16("2001:4860::1")},
		} {
			if !st.s.Contains(c.addr) != (c.name[2:] == "miss") {
				b.Fatalf("%s %s: unexpected answer", st.name, c.name)
			}
			b.Run(st.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					st.s.Contains(c.addr)
				}
			})
		}
	}
}

func BenchmarkDirection(b *testing.B) {
	s, _ := Parse("192.168.0.0/24,2001:db8::/32")
	src, dst := a4("8.8.8.8"), a4("192.168.0.1")
	b.ReportAllocs()
	for b.Loop() {
		s.Direction(src, dst)
	}
}
