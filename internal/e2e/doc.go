// Package e2e holds the end-to-end test of the live agent: pktvisord captures the loopback
// interface of a private network namespace while dnsperf queries a real unbound over UDP and
// TCP, IPv4 and IPv6; the agent's counters are then checked against three independent truths
// (tcpdump's capture decoded by tshark, dnsperf's own summary, and arithmetic on the query
// file), and a real Prometheus scrapes the agent.
//
// Design choices:
//   - Everything runs inside `unshare -n` (the test re-executes its own binary there), so the
//     test owns port 53 and the loopback interface and no packet touches the host's network.
//   - The tools are the distribution's programs (unbound, dnsperf, tcpdump, tshark, prometheus,
//     promtool) rather than Go stand-ins: the point is to meet real implementations. miekg/dns
//     is used only to probe readiness.
//   - The agent runs with `-b "port 53"` and tcpdump with the same filter, so the net handler's
//     frame counts have an exact truth: the test's own HTTP polls of the agent (also on
//     loopback) are outside both captures.
//   - The agent's counters are read as differences between a baseline (taken after the agent
//     is seen capturing) and the end, and tcpdump starts only after the baseline, so packets
//     that raced the agent's start-up are in neither.
//
// The package has no non-test code besides this comment; see README.md for how to run it.
package e2e
