// Package version holds the version reported by every binary. The agent reports the
// reference's major version (4) so that clients checking it (pktvisor-cli) accept it.
package version

// Version is the product version; release builds may override it with
// -ldflags "-X github.com/pktvisor-go/pktvisor/internal/version.Version=...".
var Version = "4.5.0-go"
