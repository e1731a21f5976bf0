#!/usr/bin/env bash
# Soak test (root): pktvisord captures one end of a veth pair between two private network
# namespaces for MINUTES minutes while tcpreplay loops a generated capture onto the other end
# at a constant rate: normal resolver traffic plus a random-subdomain flood of FLOOD distinct
# names per loop (about one loop a minute at the default rate, so each one-minute bucket sees
# about FLOOD distinct names). Every minute it prints the agent's RSS, packets, drops and
# cardinality. Usage: sudo bash scripts/soak-live.sh [minutes] [pps] [flood names]
# Benchmark, not test: it reports, it does not fail.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-30}"; PPS="${2:-40000}"; FLOOD="${3:-1000000}"
WORK=/tmp/pktvisor-bench-live
mkdir -p "$WORK"
command -v tcpreplay >/dev/null || { echo "tcpreplay is needed: apt-get install tcpreplay"; exit 1; }
go build -o "$WORK/pktvisord" ./cmd/pktvisord
go build -o "$WORK/pktvisor-gen" ./cmd/pktvisor-gen
CAP="$WORK/soak-$FLOOD.pcap"
# Normal traffic ≈ 20% of the packets; the flood (query + NXDOMAIN reply) the rest.
[ -s "$CAP" ] || "$WORK/pktvisor-gen" -q -n "$((FLOOD / 2))" --random-subdomain "$FLOOD" -o "$CAP"

A=pvsoakA$$; B=pvsoakB$$
cleanup() {
  [ -n "${REPLAY:-}" ] && kill "$REPLAY" 2>/dev/null || true
  [ -n "${AGENT:-}" ] && kill "$AGENT" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add vA netns "$A" type veth peer name vB netns "$B"
ip -n "$A" link set vA up; ip -n "$B" link set vB up; ip -n "$B" link set lo up

ip netns exec "$B" "$WORK/pktvisord" -l 127.0.0.1 -p 10853 vB >"$WORK/soak-agent.log" 2>&1 &
AGENT=$!
for _ in $(seq 50); do ip netns exec "$B" curl -sf 127.0.0.1:10853/api/v1/metrics/app >/dev/null && break; sleep 0.1; done
ip netns exec "$A" tcpreplay -K --loop 0 --pps="$PPS" -i vA "$CAP" >"$WORK/soak-replay.log" 2>&1 &
REPLAY=$!

metric() { ip netns exec "$B" curl -s 127.0.0.1:10853/metrics | awk -v m="$1" '$1 ~ "^"m"[{]" {s+=$2} END {printf "%d", s}'; }
printf "%6s %10s %14s %10s %14s\n" minute rss_kib packets os_drops qname_card_b1
for m in $(seq "$MINUTES"); do
  sleep 60
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT/status")
  card=$(ip netns exec "$B" curl -s 127.0.0.1:10853/api/v1/policies/default/metrics/bucket/1 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["default"]["default-default-dns"]["dns"]["cardinality"]["qname"])' 2>/dev/null || echo -)
  printf "%6d %10d %14d %10d %14s\n" "$m" "$rss" "$(metric pktvisord_input_packets_total)" "$(metric pktvisord_input_os_drops_total)" "$card"
done
