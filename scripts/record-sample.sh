#!/usr/bin/env bash
# Records real DNS traffic on loopback: unbound answers dnsperf over UDP and TCP, IPv4 and
# IPv6, with existing names, non-existent names (NXDOMAIN), names without the queried type
# (NODATA), a refused zone (REFUSED) and names outside every local zone (SERVFAIL: there is no
# network in the private namespace). tcpdump captures lo. Everything runs in a private network
# namespace (unshare -n), as root, touching no real network.
#
#   scripts/record-sample.sh OUT.pcap [QUERIES]
#
# testdata/sample.pcap, the README's demo capture, was recorded with QUERIES=600.
set -euo pipefail
out=$(realpath -m "${1:?usage: $0 OUT.pcap [QUERIES]}")
n=${2:-600}
if [ -z "${IN_NETNS:-}" ]; then
  exec unshare -n env IN_NETNS=1 "$0" "$out" "$n"
fi
for c in unbound dnsperf tcpdump; do command -v $c >/dev/null || { echo "$c is required" >&2; exit 1; }; done

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; sleep 0.3; rm -rf "$dir"' EXIT
ip link set lo up

cat > "$dir/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  interface: ::1
  port: 53
  do-ip6: yes
  access-control: 127.0.0.0/8 allow
  access-control: ::1/128 allow
  username: ""
  chroot: ""
  directory: "$dir"
  pidfile: "$dir/unbound.pid"
  use-syslog: no
  logfile: "$dir/unbound.log"
  do-daemonize: no
  num-threads: 1
  local-zone: "example.test." static
  local-data: "example.test. SOA ns.example.test. admin.example.test. 1 3600 600 86400 300"
  local-data: "www.example.test. A 192.0.2.10"
  local-data: "www.example.test. AAAA 2001:db8::10"
  local-data: "mail.example.test. A 192.0.2.25"
  local-data: "example.test. MX 10 mail.example.test."
  local-data: "example.test. TXT \"v=spf1 mx -all\""
  local-data: "api.example.test. A 192.0.2.80"
  local-data: "api.example.test. A 192.0.2.81"
  local-data: "cdn.example.test. CNAME www.example.test."
  local-zone: "blocked.test." refuse
CONF
unbound -d -c "$dir/unbound.conf" &
for _ in $(seq 50); do [ -s "$dir/unbound.pid" ] && break; sleep 0.1; done
sleep 0.3

# A mix of names: most exist, some do not exist (NXDOMAIN), some exist without the type
# (NODATA), some are refused, some are outside every local zone (SERVFAIL).
awk -v n="$n" 'BEGIN {
  srand(20261127)
  split("www.example.test A|www.example.test AAAA|api.example.test A|mail.example.test A|example.test MX|example.test TXT|cdn.example.test A|www.example.test HTTPS|api.example.test AAAA|example.test SOA", ok, "|")
  for (i = 0; i < n; i++) {
    r = rand()
    if (r < 0.70) print ok[int(rand()*10)+1]
    else if (r < 0.85) printf "nx%d.example.test A\n", int(rand()*100000)
    else if (r < 0.93) printf "host%d.blocked.test A\n", int(rand()*1000)
    else printf "unknown%d.example.org AAAA\n", int(rand()*1000)
  }
}' > "$dir/queries.txt"

tcpdump -i lo -U -w "$out" -s 1500 'port 53' 2>"$dir/tcpdump.log" &
tcpdump_pid=$!
sleep 1
dnsperf -s 127.0.0.1 -d "$dir/queries.txt" -n 1 -m udp -c 4 -q 20 -Q 2000 -t 2 >"$dir/perf1.txt"
dnsperf -s ::1       -d "$dir/queries.txt" -n 1 -m udp -c 4 -q 20 -Q 2000 -t 2 >"$dir/perf2.txt"
head -n $((n / 6)) "$dir/queries.txt" > "$dir/tcp.txt"
dnsperf -s 127.0.0.1 -d "$dir/tcp.txt" -n 1 -m tcp -c 2 -q 5 -t 2 >"$dir/perf3.txt"
dnsperf -s ::1       -d "$dir/tcp.txt" -n 1 -m tcp -c 2 -q 5 -t 2 >"$dir/perf4.txt"
sleep 1
kill -INT $tcpdump_pid; wait $tcpdump_pid 2>/dev/null || true
grep -h -E "Queries (sent|completed)" "$dir"/perf*.txt >&2
echo "wrote $out" >&2
