//go:build !linux

package capture

import "github.com/pktvisor-go/pktvisor/internal/decode"

// LiveSource is a live capture; on this system OpenLive always fails with
// ErrLiveUnsupported.
type LiveSource struct{}

// OpenLive fails: live capture needs Linux.
func OpenLive(LiveConfig) (*LiveSource, error) { return nil, ErrLiveUnsupported }

// OpenLiveFanout fails: live capture needs Linux.
func OpenLiveFanout(LiveConfig, int) ([]*LiveSource, error) { return nil, ErrLiveUnsupported }

// Next fails: live capture needs Linux.
func (*LiveSource) Next() ([]byte, PacketInfo, error) { return nil, PacketInfo{}, ErrLiveUnsupported }

// Stats fails: live capture needs Linux.
func (*LiveSource) Stats() (osDrops, ifDrops uint64, err error) { return 0, 0, ErrLiveUnsupported }

// LinkType is 0: live capture needs Linux.
func (*LiveSource) LinkType() decode.LinkType { return 0 }

// Iface is empty: live capture needs Linux.
func (*LiveSource) Iface() string { return "" }

// FanoutGroup reports no group: live capture needs Linux.
func (*LiveSource) FanoutGroup() (id int, ok bool) { return 0, false }

// Close does nothing.
func (*LiveSource) Close() error { return nil }
