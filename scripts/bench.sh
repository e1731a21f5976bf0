#!/usr/bin/env bash
# End-to-end benchmark of pktvisor-reader (docs/benchmarks.md): builds the reader and the
# generator, generates the benchmark captures once, times the reader (one core, two cores, the
# default 5-period window) and tshark on the same files in the same run, and prints a markdown
# table with packets/s, peak RSS and the ratios. Speed is quoted as ratios measured in one run
# because absolute numbers on shared machines are noise.
#
# Everything big (binaries, captures, outputs, profile) goes under $BENCH_DIR, never into the
# repository. Re-running reuses the captures when their generator command line is unchanged.
#
# Environment:
#   BENCH_DIR       work dir (default /tmp/pktvisor-bench)
#   RUNS            rounds (one run of every configuration each); medians are reported (default 3)
#   TSHARK_RUNS     rounds that also run tshark (default 1: it takes a minute or more on 6M packets)
#   BENCH_FLOOD     0 skips the 10M-packet flood capture (default 1)
#   BENCH_TSHARK    0 skips tshark (default 1)
#   BENCH_PROFILE   0 skips the one-core CPU profile of BenchmarkReaderEndToEnd (default 1)
#   BENCH_MAX_BUSY  before each run, wait until other jobs use less than this % of all CPUs
#                   (default 10), to stay clear of other jobs on a shared machine ...
#   BENCH_WAIT      ... spending at most this many seconds waiting in the whole script (default 1800)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

BENCH_DIR="${BENCH_DIR:-/tmp/pktvisor-bench}"
RUNS="${RUNS:-3}"
TSHARK_RUNS="${TSHARK_RUNS:-1}"
BENCH_FLOOD="${BENCH_FLOOD:-1}"
BENCH_TSHARK="${BENCH_TSHARK:-1}"
BENCH_PROFILE="${BENCH_PROFILE:-1}"
BENCH_MAX_BUSY="${BENCH_MAX_BUSY:-10}"
BENCH_WAIT="${BENCH_WAIT:-1800}"

case "$BENCH_DIR" in
"$REPO" | "$REPO"/*) echo "BENCH_DIR must be outside the repository" >&2; exit 1 ;;
esac
mkdir -p "$BENCH_DIR/bin" "$BENCH_DIR/out"
BIN="$BENCH_DIR/bin"
NCPU=$(nproc)

# Resolver-like traffic (docs/benchmarks.md explains each value). Identical options and seed
# give a byte-identical capture, so the command line is the capture's identity.
REALISTIC=(--seed 1 --names 200000 --zipf 1.1 --tcp 0.02 --ipv6 0.3 --nxdomain 0.05
  --servfail 0.005 --refused 0.01 --clients 20000 --servers 4 --qps 50000
  --fragment 0.001 --malformed 0.0001)

need() { command -v "$1" >/dev/null || { echo "bench.sh: $1 is required ($2)" >&2; exit 1; }; }
need taskset "util-linux"
need python3 "for the medians and the table"
if [ ! -x /usr/bin/time ]; then
  echo "== installing GNU time (/usr/bin/time)"
  apt-get install -y time >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi
if [ "$BENCH_TSHARK" = 1 ] && ! command -v tshark >/dev/null; then
  echo "tshark not installed: skipping the tshark baseline" >&2
  BENCH_TSHARK=0
fi

echo "== build ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ', dirty tree'))"
go build -o "$BIN/pktvisor-reader" ./cmd/pktvisor-reader
go build -o "$BIN/pktvisor-gen" ./cmd/pktvisor-gen

# gen NAME ARGS...: writes $BENCH_DIR/NAME.pcap (+ NAME.json ground truth) unless a capture from
# the same command line is already there.
gen() {
  local name=$1; shift
  local pcap="$BENCH_DIR/$name.pcap" truth="$BENCH_DIR/$name.json" cmdf="$BENCH_DIR/$name.cmd"
  local want="$*"
  if [ -s "$pcap" ] && [ -s "$truth" ] && [ "$(cat "$cmdf" 2>/dev/null)" = "$want" ]; then
    echo "== reusing $pcap"
    return
  fi
  echo "== generating $pcap: pktvisor-gen $want"
  rm -f "$pcap" "$truth" "$cmdf"
  "$BIN/pktvisor-gen" -o "$pcap.tmp" --truth "$truth" "$@"
  mv "$pcap.tmp" "$pcap"
  printf '%s' "$want" >"$cmdf"
}

gen realistic-6m -n 6000000 "${REALISTIC[@]}"
# The same traffic at a quarter of the length: peak RSS must not grow with the capture.
gen realistic-1.5m -n 1500000 "${REALISTIC[@]}"
if [ "$BENCH_FLOOD" = 1 ]; then
  # 8M packets of the same traffic plus 1M flood queries and their 1M NXDOMAIN replies: 10M
  # packets, 1M distinct random-subdomain qnames on top of the ordinary names.
  gen flood-10m -n 8000000 --random-subdomain 1000000 "${REALISTIC[@]}"
fi

# busy_pct: percent of all CPUs' time that is not idle over the next 2 s. Unlike the load average it
# does not remember our own previous run.
busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# wait_quiet: waits until the machine is quiet (other jobs use < BENCH_MAX_BUSY % of the CPUs),
# spending at most BENCH_WAIT seconds in the whole script; then measures anyway and says so.
WAITED=0
wait_quiet() {
  local busy
  while :; do
    busy=$(busy_pct)
    [ "$busy" -lt "$BENCH_MAX_BUSY" ] && return 0
    if [ "$WAITED" -ge "$BENCH_WAIT" ]; then
      echo "   (CPUs ${busy}% busy with other jobs, wait budget spent: measuring anyway, may be noisy)"
      return 0
    fi
    [ $((WAITED % 60)) = 0 ] && echo "   (CPUs ${busy}% busy with other jobs: waiting; load $(cut -d' ' -f1-3 /proc/loadavg))"
    sleep 8; WAITED=$((WAITED + 10))
  done
}

RESULTS="$BENCH_DIR/results.tsv"
: >"$RESULTS"

# cpu_ticks: the aggregate "cpu" line of /proc/stat as "busy steal total" (USER_HZ ticks).
cpu_ticks() {
  awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6 - $9, $9, t}' /proc/stat
}

# measure LABEL CAPTURE ROUND CMD...: one timed run of "CMD CAPTURE" (stdout to a file). Appends
# "label capture round wall_s maxrss_kib user_s sys_s others% steal%" to $RESULTS: others% is
# the share of all CPUs' time used by other processes during the run, steal% the share the
# hypervisor gave to other guests; both say how far to trust the run.
measure() {
  local label=$1 name=$2 r=$3; shift 3
  local pcap="$BENCH_DIR/$name.pcap" out="$BENCH_DIR/out/$name.$label"
  cat "$pcap" >/dev/null # keep it in the page cache: we time the reader, not the disk
  wait_quiet
  local a b t0 t1
  a=$(cpu_ticks)
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$out.time" "$@" "$pcap" >"$out.stdout" 2>"$out.stderr" || {
    echo "bench.sh: $label on $name failed:" >&2; cat "$out.stderr" "$out.time" >&2; exit 1
  }
  t1=$(date +%s%N)
  b=$(cpu_ticks)
  local rss usr sys line
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out.time")
  usr=$(awk -F': ' '/User time/ {print $2}' "$out.time")
  sys=$(awk -F': ' '/System time/ {print $2}' "$out.time")
  line=$(awk -v label="$label" -v name="$name" -v r="$r" -v t0="$t0" -v t1="$t1" -v rss="$rss" \
    -v usr="$usr" -v sys="$sys" -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN {
      split(a, x, " "); split(b, y, " ")
      total = y[3] - x[3]; if (total < 1) total = 1
      others = (y[1] - x[1] - (usr + sys) * hz) / total * 100; if (others < 0) others = 0
      printf "%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%.0f\t%.0f\n", label, name, r, (t1 - t0) / 1e9,
        rss, usr, sys, others, (y[2] - x[2]) / total * 100 }')
  printf '%s\n' "$line" >>"$RESULTS"
  awk -F'\t' '{printf "   %-8s %-15s %7.2f s %7.1f MiB  (user %s s, sys %s s; others %s%%, steal %s%%)\n",
    $1, $2, $4, $5 / 1024, $6, $7, $8, $9}' <<<"$line"
}

# Rounds interleave the configurations, so that a noisy minute on this shared machine hits every
# configuration alike rather than all the runs of one: the ratios are what we quote.
R="$BIN/pktvisor-reader"
CAPTURES=(realistic-6m realistic-1.5m)
[ "$BENCH_FLOOD" = 1 ] && CAPTURES+=(flood-10m)
TSHARK_VERSION=$(tshark --version 2>/dev/null | head -1 | awk '{print $3}')
for r in $(seq "$RUNS"); do
  echo "== round $r/$RUNS"
  for name in "${CAPTURES[@]}"; do
    measure 1core "$name" "$r" taskset -c 0 "$R" --periods 1 -w 1
    measure "${NCPU}core" "$name" "$r" "$R" --periods 1 -w "$NCPU"
    measure default "$name" "$r" "$R"
    if [ "$name" = realistic-6m ] && [ "$BENCH_TSHARK" = 1 ] && [ "$r" -le "$TSHARK_RUNS" ]; then
      # Pinned to the core of our one-core run: tshark dissects on one thread.
      measure tshark realistic-6m "$r" taskset -c 0 tshark -n -q -z dns,tree -r
    fi
  done
done

if [ "$BENCH_PROFILE" = 1 ]; then
  echo "== CPU profile: BenchmarkReaderEndToEnd/w1 on realistic-6m, one core"
  wait_quiet
  PKTVISOR_BENCH_PCAP="$BENCH_DIR/realistic-6m.pcap" taskset -c 0 go test -run '^$' \
    -bench 'ReaderEndToEnd/w1$' -benchtime 5x -benchmem \
    -o "$BENCH_DIR/reader.test" -cpuprofile "$BENCH_DIR/cpu-1core.prof" ./internal/reader/ |
    grep -E '^Benchmark|^ok' || true
  go tool pprof -top -nodecount=15 "$BENCH_DIR/reader.test" "$BENCH_DIR/cpu-1core.prof" 2>/dev/null |
    tee "$BENCH_DIR/cpu-1core.top"
  go tool pprof -top -cum -nodecount=25 "$BENCH_DIR/reader.test" "$BENCH_DIR/cpu-1core.prof" 2>/dev/null \
    >"$BENCH_DIR/cpu-1core.cum"
fi

echo
echo "== results ($(date -u +%Y-%m-%dT%H:%MZ), $NCPU CPUs, $(uname -r)); raw runs in $RESULTS"
python3 - "$RESULTS" "$BENCH_DIR" "$NCPU" "$TSHARK_VERSION" <<'EOF'
import json, statistics, sys
from collections import defaultdict
results, bench_dir, ncpu, tshark_version = sys.argv[1:]
runs = defaultdict(dict)  # (label, capture) -> round -> (wall s, rss KiB, cpu s, others %, steal %)
for line in open(results):
    label, name, r, wall, rss, usr, sys_, others, steal = line.rstrip("\n").split("\t")
    runs[(label, name)][int(r)] = (float(wall), int(rss), float(usr) + float(sys_), int(others), int(steal))
packets = {name: json.load(open(f"{bench_dir}/{name}.json"))["packets"] for _, name in runs}
what = {"1core": "reader `--periods 1 -w 1`, `taskset -c 0`",
        f"{ncpu}core": f"reader `--periods 1 -w {ncpu}`",
        "default": "reader defaults (`--periods 5`)",
        "tshark": f"tshark {tshark_version} `-q -z dns,tree`, `taskset -c 0`"}
print("| capture | packets | run | wall s (median) | Mpkt/s | CPU s | peak RSS MiB (max) | runs | others % / steal % (max) |")
print("|---|---:|---|---:|---:|---:|---:|---:|---|")
for (label, name), v in runs.items():
    n = packets[name]
    w = statistics.median(x[0] for x in v.values())
    cpu = statistics.median(x[2] for x in v.values())
    rss = max(x[1] for x in v.values()) / 1024
    others, steal = max(x[3] for x in v.values()), max(x[4] for x in v.values())
    print(f"| {name} | {n:,} | {what.get(label, label)} | {w:.2f} | {n / w / 1e6:.2f} | {cpu:.2f} | {rss:.1f} | {len(v)} | {others} / {steal} |")
print()

def ratio(name, num, den):
    """Median over the rounds of wall(num)/wall(den) measured in the same round, and all of them."""
    a, b = runs.get((num, name), {}), runs.get((den, name), {})
    rs = sorted(a[r][0] / b[r][0] for r in a if r in b)
    if not rs:
        return None
    return f"**{statistics.median(rs):.2f}x** (per round: {', '.join(f'{x:.2f}' for x in rs)})"

for name in sorted({n for _, n in runs}):
    if x := ratio(name, "1core", f"{ncpu}core"):
        print(f"- {name}: speed with {ncpu} cores / 1 core = {x}")
    if x := ratio(name, "tshark", "1core"):
        print(f"- {name}: speed of ours / tshark, both on 1 core = {x}")
EOF
