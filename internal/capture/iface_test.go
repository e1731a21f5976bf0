package capture

import (
	"errors"
	"testing"
)

func TestPickAuto(t *testing.T) {
	up := func(name string, bytes uint64) ifaceCounter { return ifaceCounter{name: name, up: true, bytes: bytes} }
	lo := ifaceCounter{name: "lo", up: true, loopback: true, bytes: 1 << 40}
	tests := []struct {
		name     string
		counters []ifaceCounter
		want     string
	}{
		{"busiest wins", []ifaceCounter{lo, up("eth0", 10), up("eth1", 20), up("eth2", 5)}, "eth1"},
		{"tie goes to the lower index", []ifaceCounter{lo, up("eth0", 7), up("eth1", 7)}, "eth0"},
		{"idle interfaces still beat loopback", []ifaceCounter{lo, up("eth0", 0)}, "eth0"},
		{"down interfaces are skipped", []ifaceCounter{lo, {name: "eth0", bytes: 1 << 50}, up("eth1", 1)}, "eth1"},
		{"only loopback", []ifaceCounter{lo}, "lo"},
		{"loopback when every other is down", []ifaceCounter{{name: "eth0", bytes: 9}, lo}, "lo"},
		{"a down loopback still", []ifaceCounter{{name: "lo", loopback: true}}, "lo"},
		{"first of several loopbacks", []ifaceCounter{{name: "lo", loopback: true}, {name: "lo2", loopback: true, up: true}}, "lo"},
	}
	for _, tt := range tests {
		got, err := pickAuto(tt.counters)
		if err != nil || got != tt.want {
			t.Errorf("%s: pickAuto = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	_, err := pickAuto(nil)
	if err == nil || err.Error() != "iface was set to 'auto' but no interface was found" || !errors.Is(err, ErrNoSuchIface) {
		t.Errorf("pickAuto(nil) = %v", err)
	}
	_, err = pickAuto([]ifaceCounter{{name: "eth0"}})
	if !errors.Is(err, ErrNoSuchIface) {
		t.Errorf("pickAuto(one down interface) = %v", err)
	}
}
