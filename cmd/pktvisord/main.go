// Command pktvisord is the pktvisor agent: it captures an interface (or replays a capture
// file) into policies of stream handlers and serves their metrics over a REST API and
// Prometheus. Options follow the reference's docopt interface (spec §4.5).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/pktvisor-go/pktvisor/internal/agent"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/export"
	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/policy"
	"github.com/pktvisor-go/pktvisor/internal/version"
)

const usage = `Usage: pktvisord [options] [IFACE]

Capture IFACE (an interface name, one of its addresses, or "auto" for the busiest interface)
into the "default" policy (net, dns and pcap handlers), and/or run the taps and policies of
--config, and serve their metrics: REST API under /api/v1, Prometheus at /metrics.
With --aggregate URL,URL,... pull those agents' buckets as sketches instead and serve their
merged, fleet-wide view on the same routes (docs/central-collection.md).

Options:
`

// opts are the command line and visor.config settings.
type opts struct {
	verbose, noTrack, showVersion, help, daemon    bool
	host                                           string
	port                                           int
	tls                                            bool
	tlsCert, tlsKey                                string
	adminAPI                                       bool
	geoCity, geoASN, defaultGeoCity, defaultGeoASN string
	geoCacheSize                                   int
	configFile, logFile                            string
	syslog                                         bool
	promInstance                                   string
	maxDeepSample, periods, workers                int
	bpf, hostSpec                                  string
	prometheus                                     bool
	cpDisable                                      bool
	cpToken, cpURL, cpPath, moduleDir              string
	cpCustom                                       []string
	moduleList                                     bool
	otel                                           bool
	otelHost, otelPath, otelTLSCert, otelTLSKey    string
	otelPort, otelInterval                         int
	otelTLS                                        bool
	ianaRegistry, defaultRegistry                  string
	remoteWrite, remoteWriteUser                   string
	remoteWritePassword, remoteWriteBearer         string
	remoteWriteBearerFile                          string
	remoteWriteInterval                            int
	remoteWriteInsecure, remoteWriteClassic        bool
	aggregate, aggregatePolicy, aggregatePush      string
	aggregateToken                                 string
	aggregateInterval                              int
	aggregateAcceptPush                            bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("pktvisord", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var o opts
	fs.BoolVarP(&o.daemon, "daemon", "d", false, "not supported: run under systemd (contrib/pktvisord.service) or another supervisor")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "debug logging")
	fs.BoolVar(&o.noTrack, "no-track", false, "accepted for compatibility; pktvisord never phones home")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.BoolVarP(&o.help, "help", "h", false, "show this help")
	fs.StringVarP(&o.host, "host", "l", "localhost", "address to listen on")
	fs.IntVarP(&o.port, "port", "p", 10853, "port to listen on")
	fs.BoolVar(&o.tls, "tls", false, "serve HTTPS (needs --tls-cert and --tls-key)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.BoolVar(&o.adminAPI, "admin-api", false, "enable the admin API (create and delete taps and policies, stop the server)")
	fs.StringVar(&o.geoCity, "geo-city", "", "MaxMind City database, for top_geoLoc")
	fs.StringVar(&o.geoASN, "geo-asn", "", "MaxMind ASN database, for top_ASN")
	fs.StringVar(&o.defaultGeoCity, "default-geo-city", "", "City database used when --geo-city is not given")
	fs.StringVar(&o.defaultGeoASN, "default-geo-asn", "", "ASN database used when --geo-asn is not given")
	fs.IntVar(&o.geoCacheSize, "geo-cache-size", 10000, "GeoIP lookup cache entries per worker (0 disables)")
	fs.StringVar(&o.configFile, "config", "", "YAML file with visor.config, taps, global_handler_config and policies")
	fs.StringVar(&o.logFile, "log-file", "", "log to this file instead of stderr")
	fs.BoolVar(&o.syslog, "syslog", false, "log to syslog")
	fs.StringVar(&o.promInstance, "prom-instance", "", "instance label on every Prometheus sample")
	fs.IntVar(&o.maxDeepSample, "max-deep-sample", 100, "default percent of events deep-sampled")
	fs.IntVar(&o.periods, "periods", 5, "default number of one-minute periods kept (1-10)")
	fs.IntVarP(&o.workers, "workers", "w", 0, "worker goroutines per input (0 = number of CPUs, at most 4)")
	fs.StringVarP(&o.bpf, "bpf", "b", "", "capture filter of the default policy (tcpdump syntax)")
	fs.StringVarP(&o.hostSpec, "host-spec", "H", "", "comma-separated CIDRs of the host(s), for in/out direction (default policy)")
	// Accepted for compatibility with the reference's command line, without effect.
	fs.BoolVar(&o.prometheus, "prometheus", false, "ignored (/metrics is always on)")
	fs.BoolVar(&o.cpDisable, "cp-disable", false, "ignored (no crash reporter)")
	fs.StringVar(&o.cpToken, "cp-token", "", "ignored")
	fs.StringVar(&o.cpURL, "cp-url", "", "ignored")
	fs.StringVar(&o.cpPath, "cp-path", "", "ignored")
	fs.StringSliceVar(&o.cpCustom, "cp-custom", nil, "ignored")
	fs.BoolVar(&o.moduleList, "module-list", false, "list the available input and handler modules and exit")
	fs.StringVar(&o.moduleDir, "module-dir", "", "ignored (modules are built in)")
	fs.BoolVar(&o.otel, "otel", false, "push metrics over OTLP/HTTP (protobuf) to --otel-host:--otel-port--otel-path")
	fs.StringVar(&o.otelHost, "otel-host", "localhost", "OTLP receiver host")
	fs.IntVar(&o.otelPort, "otel-port", 4318, "OTLP receiver port")
	fs.StringVar(&o.otelPath, "otel-path", "/v1/metrics", "OTLP receiver path")
	fs.IntVar(&o.otelInterval, "otel-interval", 60, "seconds between OTLP pushes")
	fs.BoolVar(&o.otelTLS, "otel-tls", false, "push OTLP over HTTPS")
	fs.StringVar(&o.otelTLSCert, "otel-tls-cert", "", "client certificate (PEM) for the OTLP receiver")
	fs.StringVar(&o.otelTLSKey, "otel-tls-key", "", "client certificate key (PEM) for the OTLP receiver")
	fs.StringVar(&o.remoteWrite, "remote-write", "", "push metrics with Prometheus remote write to this URL (e.g. http://host:8428/api/v1/write)")
	fs.IntVar(&o.remoteWriteInterval, "remote-write-interval", 0, "seconds between remote write pushes (0: once per closed bucket)")
	fs.StringVar(&o.remoteWriteUser, "remote-write-user", "", "basic authentication user for --remote-write")
	fs.StringVar(&o.remoteWritePassword, "remote-write-password", "", "basic authentication password for --remote-write")
	fs.StringVar(&o.remoteWriteBearer, "remote-write-bearer", "", "bearer token for --remote-write")
	fs.StringVar(&o.remoteWriteBearerFile, "remote-write-bearer-file", "", "file holding the bearer token for --remote-write (read at every push)")
	fs.BoolVar(&o.remoteWriteInsecure, "remote-write-insecure", false, "accept any TLS certificate from the --remote-write server")
	fs.BoolVar(&o.remoteWriteClassic, "remote-write-classic-histograms", false, "push latency histograms as classic le histograms, for receivers without native histograms")
	fs.StringVar(&o.aggregate, "aggregate", "", "aggregator mode: comma-separated base URLs of agents (http://host:10853) whose buckets are pulled as sketches and merged")
	fs.StringVar(&o.aggregatePolicy, "aggregate-policy", "default", "the policy pulled from every agent in aggregator mode")
	fs.IntVar(&o.aggregateInterval, "aggregate-interval", 5, "seconds between pulls (aggregator) or pushes (--aggregate-push)")
	fs.BoolVar(&o.aggregateAcceptPush, "aggregate-accept-push", false, "aggregator mode: also accept exports pushed by agents (POST /api/v1/aggregate/buckets); --aggregate may then be empty (\"push\")")
	fs.StringVar(&o.aggregateToken, "aggregate-token", "", "shared secret: the aggregator accepts pushes only with it; an agent sends it with --aggregate-push (or set PKTVISORD_AGGREGATE_TOKEN)")
	fs.StringVar(&o.aggregatePush, "aggregate-push", "", "push the --aggregate-policy's buckets as sketches to this aggregator URL (http://host:10853) every --aggregate-interval")
	fs.StringVar(&o.ianaRegistry, "iana-service-port-registry", "", "not implemented yet")
	fs.StringVar(&o.defaultRegistry, "default-service-registry", "", "not implemented yet")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "pktvisord: %v\n", err)
		return 1
	}
	if o.help {
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, usage)
		fs.PrintDefaults()
		return 0
	}
	if o.showVersion {
		fmt.Fprintln(stdout, version.Version)
		return 0
	}
	if o.moduleList {
		fmt.Fprintln(stdout, "input: pcap\nhandler: net 1.0, dns 1.0, pcap 1.0, input_resources 1.0")
		return 0
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 1
	}

	// visor.config from --config, the command line winning (boolean flags OR-ed).
	var cfgData []byte
	var doc *policy.Document
	if o.configFile != "" {
		var err error
		if cfgData, err = os.ReadFile(o.configFile); err != nil {
			fmt.Fprintf(stderr, "pktvisord: config: %v\n", err)
			return 1
		}
		if doc, err = policy.ParseDocument(cfgData, policy.Options{}); err != nil {
			fmt.Fprintf(stderr, "pktvisord: config %s: %v\n", o.configFile, err)
			return 1
		}
		if err := applyVisorConfig(fs, &o, doc.VisorConfig); err != nil {
			fmt.Fprintf(stderr, "pktvisord: config %s: visor.config: %v\n", o.configFile, err)
			return 1
		}
		if err := applyExportConfig(fs, &o, doc.VisorConfig); err != nil {
			fmt.Fprintf(stderr, "pktvisord: config %s: visor.config: %v\n", o.configFile, err)
			return 1
		}
	}
	if o.daemon {
		fmt.Fprintln(stderr, "pktvisord: -d is not supported: run pktvisord under systemd (see contrib/pktvisord.service) or another supervisor")
		return 1
	}
	iface := fs.Arg(0)
	if o.aggregate == "push" {
		o.aggregate, o.aggregateAcceptPush = "", true
	}
	aggregator := o.aggregate != "" || o.aggregateAcceptPush
	if aggregator && o.aggregatePush != "" {
		fmt.Fprintln(stderr, "pktvisord: --aggregate-push is for agents, not for the aggregator")
		return 1
	}
	if aggregator && (iface != "" || o.adminAPI || (doc != nil && doc.HasPolicies())) {
		fmt.Fprintln(stderr, "pktvisord: --aggregate serves other agents' data: it cannot be combined with IFACE, --admin-api or policies")
		return 1
	}
	if o.aggregateToken == "" {
		o.aggregateToken = os.Getenv("PKTVISORD_AGGREGATE_TOKEN") // kept out of the process list
	}
	if o.aggregatePush != "" && o.promInstance == "" {
		fmt.Fprintln(stderr, "pktvisord: --aggregate-push needs --prom-instance: the aggregator tells pushing agents apart by it")
		return 1
	}
	if (aggregator || o.aggregatePush != "") && o.aggregateInterval <= 0 {
		fmt.Fprintln(stderr, "pktvisord: --aggregate-interval must be a positive number of seconds")
		return 1
	}
	if iface == "" && !o.adminAPI && !aggregator && (doc == nil || !doc.HasPolicies()) {
		fmt.Fprintln(stderr, "Nothing to do: specify --admin-api or IFACE.")
		return 1
	}
	if o.tls && (o.tlsCert == "" || o.tlsKey == "") {
		fmt.Fprintln(stderr, "pktvisord: --tls needs --tls-cert and --tls-key")
		return 1
	}

	log, closeLog, err := newLogger(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pktvisord: %v\n", err)
		return 1
	}
	defer closeLog()

	aopts := agent.Options{Periods: o.periods, MaxDeepSample: o.maxDeepSample, Workers: workers(o.workers),
		GeoCacheSize: o.geoCacheSize, PromInstance: o.promInstance, Version: version.Version, Log: log}
	for _, g := range []struct {
		path, fallback string
		db             **geo.DB
	}{{o.geoCity, o.defaultGeoCity, &aopts.City}, {o.geoASN, o.defaultGeoASN, &aopts.ASN}} {
		path := g.path
		if path == "" {
			path = g.fallback
		}
		if path == "" {
			continue
		}
		if *g.db, err = geo.Open(path); err != nil {
			log.Error("cannot open GeoIP database", "err", err)
			return 1
		}
		defer (*g.db).Close()
	}

	a := agent.New(aopts)
	defer a.Close()
	if iface != "" {
		if err := a.AddDefault(iface, o.hostSpec, o.bpf); err != nil {
			log.Error("cannot start the default policy", "iface", iface, "err", err)
			return 1
		}
	}
	if cfgData != nil {
		if _, err := a.LoadConfig(cfgData); err != nil {
			log.Error("cannot load config", "file", o.configFile, "err", err)
			return 1
		}
	}

	if ecfg, ok, err := exportConfig(o, log); err != nil {
		log.Error("cannot start the push export", "err", err)
		return 1
	} else if ok {
		pusher, err := export.Start(a.ExportClosed, ecfg)
		if err != nil {
			log.Error("cannot start the push export", "err", err)
			return 1
		}
		// Before a.Close (deferred earlier, so run later): the final push still renders.
		defer pusher.Stop(5 * time.Second)
		a.AddHealth(func(w io.Writer) { pusher.WriteHealth(w, o.promInstance) })
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := net.JoinHostPort(o.host, strconv.Itoa(o.port))
	h := a.Handler(o.adminAPI, stop)
	interval := time.Duration(o.aggregateInterval) * time.Second
	if o.aggregatePush != "" {
		go a.PushSketches(ctx, strings.TrimRight(o.aggregatePush, "/")+"/api/v1/aggregate/buckets", o.aggregatePolicy, o.aggregateToken, interval, nil, log)
	}
	if aggregator {
		var urls []string
		if o.aggregate != "" {
			urls = strings.Split(o.aggregate, ",")
		}
		g, err := agent.NewAggregator(agent.AggregateOptions{Agents: urls, Policy: o.aggregatePolicy,
			Interval: interval, Periods: o.periods, Instance: o.promInstance,
			Version: version.Version, Log: log, AcceptPush: o.aggregateAcceptPush, PushToken: o.aggregateToken})
		if err != nil {
			log.Error("cannot start the aggregator", "err", err)
			return 1
		}
		go g.Run(ctx)
		h = g.Handler()
	}
	srv := agent.NewServer(addr, h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("cannot listen", "addr", addr, "err", err)
		return 1
	}
	if o.tls {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			log.Error("cannot load TLS certificate", "err", err)
			return 1
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	log.Info("pktvisord started", "version", version.Version, "listen", addr, "tls", o.tls, "admin_api", o.adminAPI, "aggregate", o.aggregate, "aggregate_push", o.aggregatePush)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("server failed", "err", err)
			return 1
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return 0
}

// workers picks the worker count per input: the CPUs, at most 4 (a dispatcher feeds them).
func workers(n int) int {
	if n > 0 {
		return n
	}
	return min(max(runtime.NumCPU(), 1), 4)
}

// applyVisorConfig sets the options visor.config gives, unless the command line set them.
func applyVisorConfig(fs *pflag.FlagSet, o *opts, vc config.Map) error {
	if vc == nil {
		return nil
	}
	str := map[string]*string{"host": &o.host, "tls_cert": &o.tlsCert, "tls_key": &o.tlsKey, "geo_city": &o.geoCity,
		"geo_asn": &o.geoASN, "default_geo_city": &o.defaultGeoCity, "default_geo_asn": &o.defaultGeoASN,
		"log_file": &o.logFile, "prom_instance": &o.promInstance}
	flagOf := map[string]string{"host": "host", "tls_cert": "tls-cert", "tls_key": "tls-key", "geo_city": "geo-city",
		"geo_asn": "geo-asn", "default_geo_city": "default-geo-city", "default_geo_asn": "default-geo-asn",
		"log_file": "log-file", "prom_instance": "prom-instance", "port": "port", "geo_cache_size": "geo-cache-size",
		"max_deep_sample": "max-deep-sample", "periods": "periods"}
	for key, dst := range str {
		if v, ok, err := vc.String(key); err != nil {
			return err
		} else if ok && !fs.Changed(flagOf[key]) {
			*dst = v
		}
	}
	ints := map[string]*int{"port": &o.port, "geo_cache_size": &o.geoCacheSize, "max_deep_sample": &o.maxDeepSample, "periods": &o.periods}
	for key, dst := range ints {
		if v, ok, err := vc.Uint(key); err != nil {
			return err
		} else if ok && !fs.Changed(flagOf[key]) {
			*dst = int(min(v, 1<<20))
		}
	}
	bools := map[string]*bool{"verbose": &o.verbose, "tls": &o.tls, "admin_api": &o.adminAPI, "syslog": &o.syslog,
		"no_track": &o.noTrack, "daemon": &o.daemon}
	for key, dst := range bools {
		if v, ok, err := vc.Bool(key); err != nil {
			return err
		} else if ok {
			*dst = *dst || v
		}
	}
	return nil
}

// newLogger logs to stderr, --log-file or --syslog.
func newLogger(o opts, stderr io.Writer) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch {
	case o.syslog:
		w, err := syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, "pktvisord")
		if err != nil {
			return nil, nil, fmt.Errorf("syslog: %w", err)
		}
		return slog.New(slog.NewTextHandler(w, hopts)), func() { w.Close() }, nil
	case o.logFile != "":
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		return slog.New(slog.NewTextHandler(f, hopts)), func() { f.Close() }, nil
	}
	return slog.New(slog.NewTextHandler(stderr, hopts)), func() {}, nil
}

// exportConfig builds the push export configuration of the --otel* and --remote-write* options;
// ok is false when neither is on.
func exportConfig(o opts, log *slog.Logger) (cfg export.Config, ok bool, err error) {
	instance := o.promInstance
	if instance == "" {
		// Series of agents pushing into one backend must differ by something: the host name,
		// when no --prom-instance names the agent.
		instance, _ = os.Hostname()
	}
	cfg = export.Config{Resource: export.Resource{ServiceName: "pktvisord", Instance: instance, Version: version.Version}, Log: log}
	if o.otel {
		if o.otelInterval <= 0 {
			return cfg, false, fmt.Errorf("--otel-interval must be positive, not %d", o.otelInterval)
		}
		if (o.otelTLSCert == "") != (o.otelTLSKey == "") {
			return cfg, false, errors.New("--otel-tls-cert and --otel-tls-key go together")
		}
		scheme := "http"
		if o.otelTLS {
			scheme = "https"
		}
		path := o.otelPath
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		cfg.OTLP = &export.OTLPConfig{URL: scheme + "://" + net.JoinHostPort(o.otelHost, strconv.Itoa(o.otelPort)) + path,
			Interval: time.Duration(o.otelInterval) * time.Second, CertFile: o.otelTLSCert, KeyFile: o.otelTLSKey}
	}
	if o.remoteWrite != "" {
		if o.remoteWriteInterval < 0 {
			return cfg, false, fmt.Errorf("--remote-write-interval must not be negative, not %d", o.remoteWriteInterval)
		}
		cfg.RemoteWrite = &export.RemoteWriteConfig{URL: o.remoteWrite, Interval: time.Duration(o.remoteWriteInterval) * time.Second,
			Username: o.remoteWriteUser, Password: o.remoteWritePassword, BearerToken: o.remoteWriteBearer,
			BearerTokenFile: o.remoteWriteBearerFile, InsecureSkipVerify: o.remoteWriteInsecure,
			ClassicHistograms: o.remoteWriteClassic}
	}
	return cfg, cfg.OTLP != nil || cfg.RemoteWrite != nil, nil
}

// applyExportConfig sets the export options visor.config gives (the reference's otel_* keys,
// and ours, remote_write_*), unless the command line set them; boolean flags are OR-ed.
func applyExportConfig(fs *pflag.FlagSet, o *opts, vc config.Map) error {
	if vc == nil {
		return nil
	}
	str := map[string]*string{"otel_host": &o.otelHost, "otel_path": &o.otelPath, "otel_tls_cert": &o.otelTLSCert,
		"otel_tls_key": &o.otelTLSKey, "remote_write": &o.remoteWrite, "remote_write_user": &o.remoteWriteUser,
		"remote_write_password": &o.remoteWritePassword, "remote_write_bearer": &o.remoteWriteBearer,
		"remote_write_bearer_file": &o.remoteWriteBearerFile}
	for key, dst := range str {
		if v, ok, err := vc.String(key); err != nil {
			return err
		} else if ok && !fs.Changed(strings.ReplaceAll(key, "_", "-")) {
			*dst = v
		}
	}
	ints := map[string]*int{"otel_port": &o.otelPort, "otel_interval": &o.otelInterval, "remote_write_interval": &o.remoteWriteInterval}
	for key, dst := range ints {
		if v, ok, err := vc.Uint(key); err != nil {
			return err
		} else if ok && !fs.Changed(strings.ReplaceAll(key, "_", "-")) {
			*dst = int(min(v, 1<<20))
		}
	}
	bools := map[string]*bool{"otel": &o.otel, "otel_tls": &o.otelTLS, "remote_write_insecure": &o.remoteWriteInsecure,
		"remote_write_classic_histograms": &o.remoteWriteClassic}
	for key, dst := range bools {
		if v, ok, err := vc.Bool(key); err != nil {
			return err
		} else if ok {
			*dst = *dst || v
		}
	}
	return nil
}
