// Command pktvisor-cli is the terminal "DNS top" of pktvisord: it reads a policy's metrics
// from the agent's REST API once a second and shows the reference's summary header and
// top-N tables (see internal/tui).
//
//	pktvisor-cli [-H HOST] [-p PORT] [-P POLICY] [--tls] [--tls-noverify] [-h] [--version]
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/pflag"

	"github.com/pktvisor-go/pktvisor/internal/tui"
	"github.com/pktvisor-go/pktvisor/internal/version"
)

// options are the parsed command line.
type options struct {
	cfg         tui.Config
	help        bool
	showVersion bool
}

// errHelp asks main to exit 0 after the usage was printed.
var errHelp = errors.New("help requested")

func parseArgs(args []string, out io.Writer) (options, error) {
	var o options
	fs := pflag.NewFlagSet("pktvisor-cli", pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVarP(&o.cfg.Host, "host", "H", "localhost", "agent host")
	fs.IntVarP(&o.cfg.Port, "port", "p", 10853, "agent port")
	fs.StringVarP(&o.cfg.Policy, "policy", "P", "default", "policy to show")
	fs.BoolVar(&o.cfg.TLS, "tls", false, "use HTTPS")
	fs.BoolVar(&o.cfg.TLSNoVerify, "tls-noverify", false, "use HTTPS without verifying the agent's certificate")
	fs.BoolVarP(&o.help, "help", "h", false, "show this help")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: pktvisor-cli [-H HOST] [-p PORT] [-P POLICY] [--tls] [--tls-noverify] [-h] [--version]\n\n"+
			"Terminal \"DNS top\" of a pktvisord agent: the policy's merged window, refreshed every second.\n"+
			"Keys: q quit, p pause, tab/arrows focus, enter expand, w window/live bucket, ? help.\n"+
			"NO_COLOR=1 turns colors off.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("pktvisor-cli: %w", err)
	}
	if o.help {
		fs.Usage()
		return o, errHelp
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("pktvisor-cli: unexpected argument %q", fs.Arg(0))
	}
	if o.cfg.Port < 1 || o.cfg.Port > 65535 {
		return o, fmt.Errorf("pktvisor-cli: invalid port %d", o.cfg.Port)
	}
	if o.cfg.Host == "" || o.cfg.Policy == "" {
		return o, errors.New("pktvisor-cli: host and policy must not be empty")
	}
	return o, nil
}

func main() {
	o, err := parseArgs(os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, errHelp):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.showVersion {
		fmt.Println(version.Version)
		return
	}
	m := tui.New(tui.Options{
		Client:        tui.NewClient(o.cfg, nil),
		ClientVersion: version.Version,
	})
	if _, err := tea.NewProgram(m, tea.WithAltScreen()).Run(); err != nil {
		fmt.Fprintf(os.Stderr, "pktvisor-cli: %v\n", err)
		os.Exit(1)
	}
}
