//go:build linux

package capture

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// The interface counters come from rtnetlink (RTM_GETLINK, IFLA_STATS64): the same
// dev_get_stats numbers /proc/net/dev prints, but always for the network namespace of the
// calling thread, which /proc/net/dev (the process's namespace) and sysfs (the mounter's)
// are not.

// linkInfo is one interface as rtnetlink describes it.
type linkInfo struct {
	index    int
	name     string
	hatype   uint16 // ARPHRD_*
	flags    uint32 // IFF_*
	hasStats bool
	rxBytes  uint64
	txBytes  uint64
	ifDrops  uint64 // rx_missed_errors + rx_fifo_errors
}

// rtnl_link_stats64 fields, as indexes of 64-bit words.
const (
	statRxBytes  = 2
	statTxBytes  = 3
	statRxFIFO   = 14
	statRxMissed = 15
	statMinWords = 16
)

// parseLink decodes an RTM_NEWLINK message.
func parseLink(m *syscall.NetlinkMessage) (linkInfo, bool) {
	if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
		return linkInfo{}, false
	}
	li := linkInfo{
		hatype: ne.Uint16(m.Data[2:]),
		index:  int(int32(ne.Uint32(m.Data[4:]))),
		flags:  ne.Uint32(m.Data[8:]),
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return linkInfo{}, false
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_IFNAME:
			v := a.Value
			for i, c := range v {
				if c == 0 {
					v = v[:i]
					break
				}
			}
			li.name = string(v)
		case unix.IFLA_STATS64:
			if len(a.Value) >= statMinWords*8 {
				w := func(i int) uint64 { return ne.Uint64(a.Value[i*8:]) }
				li.hasStats = true
				li.rxBytes, li.txBytes = w(statRxBytes), w(statTxBytes)
				li.ifDrops = w(statRxMissed) + w(statRxFIFO)
			}
		}
	}
	return li, true
}

// links lists the interfaces of the calling thread's network namespace.
func links() ([]linkInfo, error) {
	rib, err := syscall.NetlinkRIB(unix.RTM_GETLINK, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("RTM_GETLINK: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("RTM_GETLINK: %w", err)
	}
	var out []linkInfo
	for i := range msgs {
		if li, ok := parseLink(&msgs[i]); ok {
			out = append(out, li)
		}
	}
	return out, nil
}

func ifaceCounters() ([]ifaceCounter, error) {
	ls, err := links()
	if err != nil {
		return nil, err
	}
	out := make([]ifaceCounter, len(ls))
	for i, l := range ls {
		out[i] = ifaceCounter{
			name:     l.name,
			up:       l.flags&unix.IFF_UP != 0,
			loopback: l.flags&unix.IFF_LOOPBACK != 0,
			bytes:    l.rxBytes + l.txBytes,
		}
	}
	return out, nil
}

// IfaceLinkType is the link type of the frames a capture on the interface yields: compile
// the capture filter for it. Ethernet and loopback devices give Ethernet frames, devices
// without a link header (tun, WireGuard: ARPHRD_NONE, ARPHRD_RAWIP) raw IP; other device
// types are refused (the error wraps decode.ErrUnsupportedLink).
func IfaceLinkType(name string) (decode.LinkType, error) {
	ls, err := links()
	if err != nil {
		return 0, fmt.Errorf("capture: %w", err)
	}
	for _, l := range ls {
		if l.name == name {
			if lt, ok := linkForHatype(l.hatype); ok {
				return lt, nil
			}
			return 0, fmt.Errorf("capture on %s: device type ARPHRD %d: %w", name, l.hatype, decode.ErrUnsupportedLink)
		}
	}
	return 0, fmt.Errorf("capture: interface %s: %w", name, ErrNoSuchIface)
}

// linkForHatype maps a device type to the link type of what a SOCK_RAW packet socket reads
// on it (libpcap's map_arphrd_to_dlt for the types we decode without a cooked header).
func linkForHatype(hatype uint16) (decode.LinkType, bool) {
	switch hatype {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return decode.LinkEthernet, true
	case unix.ARPHRD_NONE, unix.ARPHRD_RAWIP:
		return decode.LinkRaw, true
	}
	return 0, false
}

// ifDropCounter asks the kept rtnetlink socket for the capture interface's counters.
func (r *liveRes) ifDropCounter() (uint64, error) {
	r.nlSeq++
	seq := r.nlSeq
	req := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg)
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.RTM_GETLINK)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], seq)
	req[unix.NLMSG_HDRLEN] = unix.AF_UNSPEC
	ne.PutUint32(req[unix.NLMSG_HDRLEN+4:], uint32(r.ifindex))
	if err := unix.Sendto(r.nl, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, err
	}
	// Replies to earlier requests that timed out may still be queued: skip them.
	for range 8 {
		n, _, err := unix.Recvfrom(r.nl, r.nlBuf, 0)
		if err != nil {
			return 0, err
		}
		msgs, err := syscall.ParseNetlinkMessage(r.nlBuf[:n])
		if err != nil {
			return 0, err
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != seq {
				continue
			}
			if m.Header.Type == unix.NLMSG_ERROR {
				if len(m.Data) >= 4 {
					if e := -int32(ne.Uint32(m.Data)); e != 0 {
						return 0, syscall.Errno(e)
					}
				}
				return 0, errors.New("empty RTM_GETLINK reply")
			}
			if li, ok := parseLink(m); ok && li.hasStats {
				return li.ifDrops, nil
			}
			return 0, errors.New("RTM_GETLINK reply without IFLA_STATS64")
		}
	}
	return 0, errors.New("no RTM_GETLINK reply")
}
