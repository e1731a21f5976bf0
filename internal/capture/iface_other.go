//go:build !linux

package capture

import (
	"net"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// ifaceCounters has no traffic counters here: "auto" takes the first interface that is up
// and not loopback.
func ifaceCounters() ([]ifaceCounter, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]ifaceCounter, len(ifs))
	for i, ifi := range ifs {
		out[i] = ifaceCounter{name: ifi.Name, up: ifi.Flags&net.FlagUp != 0, loopback: ifi.Flags&net.FlagLoopback != 0}
	}
	return out, nil
}

// IfaceLinkType fails: live capture needs Linux.
func IfaceLinkType(string) (decode.LinkType, error) { return 0, ErrLiveUnsupported }
