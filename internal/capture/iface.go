package capture

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ifaceErr carries one of the reference's error texts verbatim (users and scripts match
// them) and wraps ErrNoSuchIface.
type ifaceErr string

func (e ifaceErr) Error() string { return string(e) }
func (e ifaceErr) Unwrap() error { return ErrNoSuchIface }

// ifaceCounter is what "auto" weighs an interface by.
type ifaceCounter struct {
	name     string
	up       bool
	loopback bool
	bytes    uint64 // received + transmitted
}

// ResolveIface turns an iface setting into an interface name, as the reference does:
//   - "auto": the busiest interface, by bytes received plus sent, among those that are up
//     and not loopback; a loopback interface only when there is no other (a container with
//     nothing but lo). Ties go to the lower interface index.
//   - an IPv4 or IPv6 address (with an optional %zone that must name the interface): the
//     interface holding it;
//   - otherwise an interface name.
//
// The errors are the reference's texts and wrap ErrNoSuchIface.
func ResolveIface(spec string) (string, error) {
	if spec == "auto" {
		return autoIface()
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("capture: listing interfaces: %w", err)
	}
	if addr, err := netip.ParseAddr(spec); err == nil {
		zone := addr.Zone()
		addr = addr.WithZone("").Unmap()
		for _, ifi := range ifs {
			if zone != "" && zone != ifi.Name {
				continue
			}
			prefixes, err := ifacePrefixes(&ifi)
			if err != nil {
				continue
			}
			for _, p := range prefixes {
				if p.Addr() == addr {
					return ifi.Name, nil
				}
			}
		}
		return "", ifaceErr("Couldn't find interface by provided IP: " + spec)
	}
	for _, ifi := range ifs {
		if ifi.Name == spec {
			return spec, nil
		}
	}
	return "", ifaceErr(`Couldn't find interface by provided name: "` + spec + `". Available interfaces: ` + joinNames(ifs))
}

// autoIface picks the busiest interface (see ResolveIface).
func autoIface() (string, error) {
	counters, err := ifaceCounters()
	if err != nil {
		return "", fmt.Errorf("capture: reading interface counters: %w", err)
	}
	return pickAuto(counters)
}

// pickAuto is autoIface's choice among the interfaces, in index order.
func pickAuto(counters []ifaceCounter) (string, error) {
	best, bestLo := -1, -1
	for i, c := range counters {
		switch {
		case c.loopback:
			if bestLo < 0 {
				bestLo = i
			}
		case c.up && (best < 0 || c.bytes > counters[best].bytes):
			best = i
		}
	}
	if best < 0 {
		best = bestLo
	}
	if best < 0 {
		return "", ifaceErr("iface was set to 'auto' but no interface was found")
	}
	return counters[best].name, nil
}

// InterfacePrefixes returns the interface's addresses, each with its prefix length (the
// address itself, not the network: 192.0.2.2/24), IPv4 ones unmapped. The live input adds
// them to the host spec, so the interface's subnets count as the host.
func InterfacePrefixes(name string) ([]netip.Prefix, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("capture: interface %s: %w", name, err)
	}
	return ifacePrefixes(ifi)
}

func ifacePrefixes(ifi *net.Interface) ([]netip.Prefix, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("capture: addresses of %s: %w", ifi.Name, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		ones, bits := ipn.Mask.Size()
		switch {
		case bits == 0: // a non-canonical mask: keep the address alone
			ones = addr.BitLen()
		case bits == 128 && addr.Is4(): // a 16-byte mask over a mapped IPv4 address
			ones -= 96
		}
		if ones >= 0 && ones <= addr.BitLen() {
			out = append(out, netip.PrefixFrom(addr, ones))
		}
	}
	return out, nil
}

// AvailableInterfaces lists the interface names in index order, comma-separated ("lo,eth0"),
// for error messages and the input's info JSON (available_iface). Empty if they cannot be
// listed.
func AvailableInterfaces() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	return joinNames(ifs)
}

func joinNames(ifs []net.Interface) string {
	names := make([]string, len(ifs))
	for i, ifi := range ifs {
		names[i] = ifi.Name
	}
	return strings.Join(names, ",")
}
