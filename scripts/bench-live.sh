#!/usr/bin/env bash
# Live capture benchmark (root): replays a generated DNS capture with pktvisor-replay (ours:
# sendmmsg batches, qdisc bypass; REPLAY=tcpreplay for tcpreplay) onto one end of
# a veth pair between two private network namespaces, while pktvisord captures the other end
# (AF_PACKET, one fanout socket per worker). For each target rate it reports the rate reached,
# the packets the agent counted, kernel drops and the agent's CPU use. Nothing touches the
# host's network. Usage: sudo bash scripts/bench-live.sh [packets per run] [rates...]
# Benchmark, not test: it never fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
PKTS="${1:-2000000}"; shift || true
RATES=("${@:-250000 500000 750000 1000000 1500000 topspeed}")
# shellcheck disable=SC2206
RATES=(${RATES[*]})
WORK=/tmp/pktvisor-bench-live
mkdir -p "$WORK"
REPLAY="${REPLAY:-pktvisor-replay}"
if [ "$REPLAY" = tcpreplay ]; then
  command -v tcpreplay >/dev/null || { echo "tcpreplay is needed: apt-get install tcpreplay"; exit 1; }
fi

go build -o "$WORK/pktvisord" ./cmd/pktvisord
go build -o "$WORK/pktvisor-gen" ./cmd/pktvisor-gen
go build -o "$WORK/pktvisor-replay" ./cmd/pktvisor-replay
CAP="$WORK/dns-$PKTS.pcap"
[ -s "$CAP" ] || "$WORK/pktvisor-gen" -q -n "$PKTS" -o "$CAP"

A=pvbenchA$$; B=pvbenchB$$
cleanup() {
  [ -n "${AGENT:-}" ] && kill "$AGENT" 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip link add vA netns "$A" type veth peer name vB netns "$B"
ip -n "$A" link set vA up; ip -n "$B" link set vB up
ip -n "$A" link set lo up; ip -n "$B" link set lo up

ip netns exec "$B" "$WORK/pktvisord" -l 127.0.0.1 -p 10853 --periods 1 vB >"$WORK/agent.log" 2>&1 &
AGENT=$!
for _ in $(seq 50); do ip netns exec "$B" curl -sf 127.0.0.1:10853/api/v1/metrics/app >/dev/null && break; sleep 0.1; done

metric() { ip netns exec "$B" curl -s 127.0.0.1:10853/metrics | awk -v m="$1" '$1 ~ "^"m"[{]" {s+=$2} END {printf "%d", s}'; }
cputicks() { awk '{print $14+$15}' "/proc/$AGENT/stat"; }
HZ=$(getconf CLK_TCK)

printf "%-10s %12s %12s %12s %10s %8s\n" target reached_pps sent captured os_drops agent_cpu
for rate in "${RATES[@]}"; do
  p0=$(metric pktvisord_input_packets_total); d0=$(metric pktvisord_input_os_drops_total); c0=$(cputicks); t0=$(date +%s.%N)
  if [ "$rate" = topspeed ]; then opt=--topspeed; else opt="--pps=$rate"; fi
  if [ "$REPLAY" = tcpreplay ]; then
    out=$(ip netns exec "$A" tcpreplay -K -i vA $opt "$CAP" 2>&1)
    sent=$(echo "$out" | awk '/Actual:/ {print $2; exit}')
    secs=$(echo "$out" | awk '/Actual:/ {for (i=1;i<=NF;i++) if ($i=="seconds") print $(i-1); exit}')
  else
    out=$(ip netns exec "$A" "$WORK/pktvisor-replay" -q -i vA ${REPLAY_ARGS:-} $opt "$CAP" 2>&1)
    sent=$(echo "$out" | awk '/^sent / {print $2; exit}')
    secs=$(echo "$out" | awk '/^sent / {print $5; exit}')
  fi
  sleep 1.5 # let the agent drain its rings
  p1=$(metric pktvisord_input_packets_total); d1=$(metric pktvisord_input_os_drops_total); c1=$(cputicks); t1=$(date +%s.%N)
  reached=$(awk -v n="$sent" -v s="$secs" 'BEGIN {if (s>0) printf "%d", n/s; else print 0}')
  cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v s="$secs" 'BEGIN {if (s>0) printf "%.0f%%", 100*(b-a)/hz/s}')
  printf "%-10s %12s %12s %12s %10s %8s\n" "$rate" "$reached" "$sent" "$((p1-p0))" "$((d1-d0))" "$cpu"
done
echo "agent RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$AGENT/status)"
