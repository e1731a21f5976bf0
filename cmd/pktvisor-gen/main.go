// Command pktvisor-gen writes realistic synthetic DNS captures (pcap or pcapng) with their
// exact ground truth, for benchmarks and correctness tests that should not commit big files.
// The same flags and --seed always give byte-identical output. See README.md for examples.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/pktvisor-go/pktvisor/internal/gen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it parses args, writes the capture and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, out, truthPath, quiet, err := parseFlags(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "pktvisor-gen:", err)
		return 2
	}
	began := time.Now()
	var w io.Writer = stdout
	var f *os.File
	if out != "-" {
		f, err = os.Create(out)
		if err != nil {
			fmt.Fprintln(stderr, "pktvisor-gen:", err)
			return 1
		}
		w = f
	}
	truth, err := gen.Write(w, cfg)
	if f != nil {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", out, cerr)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "pktvisor-gen:", err)
		return 1
	}
	if truthPath != "" {
		if err := writeTruth(truthPath, &truth); err != nil {
			fmt.Fprintln(stderr, "pktvisor-gen:", err)
			return 1
		}
	}
	if !quiet {
		el := time.Since(began)
		span := time.Duration(truth.LastTS - truth.FirstTS)
		fmt.Fprintf(stderr, "pktvisor-gen: %d packets (%d bytes), %d queries, %d replies, capture span %v; written in %v (%.2f Mpkt/s)\n",
			truth.Packets, truth.Bytes, truth.DNSQueries, truth.DNSReplies, span.Round(time.Millisecond),
			el.Round(time.Millisecond), float64(truth.Packets)/el.Seconds()/1e6)
	}
	return 0
}

func writeTruth(path string, t *gen.Truth) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encode truth: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (cfg gen.Config, out, truth string, quiet bool, err error) {
	cfg = gen.DefaultConfig()
	fs := pflag.NewFlagSet("pktvisor-gen", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pktvisor-gen -o FILE [options]\n\nWrites a synthetic DNS capture; the same options and --seed give identical bytes.\n\nOptions:")
		fs.PrintDefaults()
	}
	var zones, qtypes, format, start string
	fs.StringVarP(&out, "output", "o", "", "capture file to write (\"-\" for stdout)")
	fs.IntVarP(&cfg.Packets, "packets", "n", cfg.Packets, "normal-traffic packets to write (approx: transactions are whole)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	fs.IntVar(&cfg.Names, "names", cfg.Names, "distinct query names")
	fs.Float64Var(&cfg.Zipf, "zipf", cfg.Zipf, "Zipf exponent of name popularity")
	fs.StringVar(&zones, "zones", strings.Join(cfg.Zones, ","), "parent zones names are drawn under")
	fs.Float64Var(&cfg.NXDomain, "nxdomain", cfg.NXDomain, "share of replies with NXDOMAIN")
	fs.Float64Var(&cfg.Refused, "refused", cfg.Refused, "share of replies with REFUSED")
	fs.Float64Var(&cfg.ServFail, "servfail", cfg.ServFail, "share of replies with SERVFAIL")
	fs.Float64Var(&cfg.NoData, "nodata", cfg.NoData, "share of NOERROR replies with ANCOUNT 0")
	fs.Float64Var(&cfg.TCP, "tcp", cfg.TCP, "share of transactions over TCP")
	fs.Float64Var(&cfg.IPv6, "ipv6", cfg.IPv6, "share of transactions over IPv6")
	fs.Float64Var(&cfg.QPS, "qps", cfg.QPS, "query rate (capture duration = queries/qps)")
	fs.DurationVar(&cfg.LatencyMedian, "latency-median", cfg.LatencyMedian, "median of the lognormal reply latency")
	fs.Float64Var(&cfg.LatencySigma, "latency-sigma", cfg.LatencySigma, "sigma of the lognormal reply latency")
	fs.Float64Var(&cfg.Timeout, "timeout", cfg.Timeout, "share of queries that get no reply")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "client address pool (v4 10/8 and v6 fd00::/8)")
	fs.IntVar(&cfg.Servers, "servers", cfg.Servers, "server address pool (172.16.53.x, fd53::x)")
	fs.StringVar(&qtypes, "qtypes", gen.DefaultQTypes, "query type mix TYPE:weight,...")
	fs.Float64Var(&cfg.EDNS, "edns", cfg.EDNS, "share of queries with an OPT record (ECS and DO imply one)")
	fs.Float64Var(&cfg.ECS, "ecs", cfg.ECS, "share of queries with an EDNS Client Subnet option")
	fs.Float64Var(&cfg.DO, "do", cfg.DO, "share of queries with the DO bit (replies carry RRSIGs)")
	fs.Float64Var(&cfg.MixedCase, "mixed-case", cfg.MixedCase, "share of queries with 0x20 mixed-case names")
	fs.Float64Var(&cfg.TCPMulti, "tcp-multi", cfg.TCPMulti, "share of TCP connections with 2-5 pipelined queries")
	fs.Float64Var(&cfg.TCPSplit, "tcp-split", cfg.TCPSplit, "share of TCP replies split across 2-3 segments")
	fs.Float64Var(&cfg.TCPReorder, "tcp-reorder", cfg.TCPReorder, "share of split replies captured out of order")
	fs.Float64Var(&cfg.TCPRetransmit, "tcp-retransmit", cfg.TCPRetransmit, "share of TCP data segments retransmitted")
	fs.Float64Var(&cfg.Fragment, "fragment", cfg.Fragment, "share of UDP replies that are big, IP-fragmented TXT answers")
	fs.IntVar(&cfg.RandomSubdomain, "random-subdomain", cfg.RandomSubdomain, "extra flood queries for <random>.<flood-zone> (NXDOMAIN)")
	fs.StringVar(&cfg.FloodZone, "flood-zone", cfg.FloodZone, "zone of the random-subdomain flood")
	fs.Float64Var(&cfg.Malformed, "malformed", cfg.Malformed, "extra garbage UDP/53 packets, as a share of --packets")
	fs.StringVar(&format, "format", cfg.Format.String(), "pcap (µs), pcap-ns or pcapng")
	fs.StringVar(&start, "start", cfg.Start.Format(time.RFC3339), "timestamp of the first packet (RFC 3339)")
	fs.StringVar(&truth, "truth", "", "write the exact ground-truth counts as JSON to this file")
	fs.BoolVarP(&quiet, "quiet", "q", false, "no summary on stderr")
	if err = fs.Parse(args); err != nil {
		return
	}
	if fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		return
	}
	if out == "" {
		err = errors.New("-o FILE is required")
		return
	}
	cfg.Zones = gen.ParseZones(zones)
	cfg.FloodZone = strings.ToLower(strings.TrimSuffix(cfg.FloodZone, "."))
	if cfg.QTypes, err = gen.ParseQTypes(qtypes); err != nil {
		return
	}
	if cfg.Format, err = gen.ParseFormat(format); err != nil {
		return
	}
	if cfg.Start, err = time.Parse(time.RFC3339Nano, start); err != nil {
		err = fmt.Errorf("--start: %w", err)
		return
	}
	err = cfg.Validate()
	return
}
