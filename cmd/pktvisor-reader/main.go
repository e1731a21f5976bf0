// Command pktvisor-reader summarizes a capture file into pktvisor's net, dns and pcap metrics
// and prints them as one JSON document on stdout (logs go to stderr).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/spf13/pflag"

	"github.com/pktvisor-go/pktvisor/internal/reader"
	"github.com/pktvisor-go/pktvisor/internal/version"
)

const usage = `Usage: pktvisor-reader [options] FILE

Summarize a pcap or pcapng capture with pktvisor's net, dns and pcap handlers (or, with
-i dnstap, a dnstap Frame Streams file with the net and dns handlers) and print the
result as JSON on stdout: {"1m": {...}} with --periods 1, else {"<P>m": {...}} merged over
the window of P one-minute periods.

Options:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("pktvisor-reader", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var o reader.Options
	var verbose, showVersion, help, pretty bool
	fs.StringVarP(&o.InputType, "input", "i", "pcap", "input type: pcap (pcap and pcapng files) or dnstap (a Frame Streams file; net and dns handlers)")
	fs.StringVarP(&o.BPF, "bpf", "b", "", "tcpdump-style capture filter, e.g. \"port 53\"")
	fs.StringVarP(&o.HostSpec, "host-spec", "H", "", "comma-separated CIDRs of the host(s): decides in/out direction")
	fs.IntVar(&o.Periods, "periods", 5, "one-minute periods to keep; 1 = one cumulative bucket")
	fs.IntVar(&o.MaxDeepSample, "max-deep-sample", 100, "percent of events sampled for deep (sketch) metrics")
	fs.StringVar(&o.GeoCity, "geo-city", "", "MaxMind GeoIP2/GeoLite2 City database, for top_geoLoc")
	fs.StringVar(&o.GeoASN, "geo-asn", "", "MaxMind ASN (or ISP) database, for top_ASN")
	fs.IntVar(&o.GeoCacheSize, "geo-cache-size", 10000, "GeoIP lookup cache entries per worker (0 disables)")
	fs.IntVarP(&o.Workers, "workers", "w", 0, "worker threads (0 = number of CPUs); results do not depend on it")
	fs.StringVar(&o.ConfigFile, "config", "", "YAML file with a policy's handlers section (window_config, modules)")
	fs.BoolVar(&pretty, "pretty", false, "indent the JSON output")
	fs.BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.BoolVarP(&help, "help", "h", false, "show this help")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "pktvisor-reader: %v\n", err)
		return 1
	}
	if help {
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, usage)
		fs.PrintDefaults()
		return 0
	}
	if showVersion {
		fmt.Fprintln(stdout, version.Version)
		return 0
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if fs.NArg() != 1 {
		fs.Usage()
		return 1
	}
	o.File = fs.Arg(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := reader.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "pktvisor-reader: %v\n", err)
		return 1
	}
	st := res.Stats
	log.Info("processed", "file", o.File, "frames", st.Frames, "bpf_filtered", st.BPFFiltered,
		"malformed", st.Malformed, "unsupported_link", st.UnknownLink, "dns_malformed", st.DNSMalformed,
		"ip_fragments", st.Fragments, "reassembled_datagrams", st.Reassembled,
		"tcp_flows", st.TCP.Created, "tcp_evicted", st.TCP.Evicted, "dnstap_skipped", st.DnstapSkipped)
	if res.Warning != nil {
		log.Warn("capture ended early; the summary covers the packets read before the error", "err", res.Warning)
	}
	enc := json.NewEncoder(stdout)
	if pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(res.Output); err != nil {
		fmt.Fprintf(stderr, "pktvisor-reader: writing output: %v\n", err)
		return 1
	}
	return 0
}
