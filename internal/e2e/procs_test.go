package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a long-running helper process (unbound, the agent, tcpdump, prometheus) in its own
// process group, so that stopping it also stops anything it forked.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when Wait returned
	waitErr error
}

// startProc starts name with args, stdout and stderr going to <dir>/<name>.log. The process is
// stopped (SIGTERM to its group, SIGKILL after 5 s) by t.Cleanup, and its log is printed there
// when the test failed, so a failure always shows what each program said.
func startProc(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	label := filepath.Base(name)
	logPath := filepath.Join(dir, label+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create %s: %v", logPath, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Setpgid: stop the whole group. Pdeathsig: a crash of the test binary still ends them
	// (the namespace then disappears with its last process).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t.Logf("start: %s %s", name, shellQuote(args))
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: label, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.stop(5 * time.Second); err != nil {
			t.Logf("stop %s: %v", label, err)
		}
		if t.Failed() {
			t.Logf("---- %s log (%s) ----\n%s", label, logPath, tailFile(logPath, 64<<10))
		}
	})
	return p
}

// exited reports whether the process has ended, with its wait error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace. It is idempotent.
func (p *proc) stop(grace time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGTERM group %d: %w", pgid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGKILL group %d: %w", pgid, err)
	}
	<-p.done
	return fmt.Errorf("%s needed SIGKILL after %v", p.name, grace)
}

// log returns what the process has written so far.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// mustRun runs a short-lived command in its own process group and returns its combined
// output; ctx's end kills the whole group.
func mustRun(ctx context.Context, t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, shellQuote(args), err, out)
	}
	return out
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("run %s: %w", name, err)
	}
	return buf.String(), err
}

// runStdout is run with stdout and stderr kept apart (tshark warns on stderr when run as root).
func runStdout(ctx context.Context, name string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), errb.String(), fmt.Errorf("run %s: %w", name, err)
	}
	return out.String(), errb.String(), nil
}

// waitFor polls cond every interval until it returns true or an error, or timeout passes. The
// watched processes are checked on every round so that a crash fails at once, with its log.
func waitFor(t *testing.T, what string, timeout, interval time.Duration, watch []*proc, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		for _, p := range watch {
			if done, err := p.exited(); done {
				t.Fatalf("waiting for %s: %s exited (%v)", what, p.name, err)
			}
		}
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(interval)
	}
}

// freePort asks the kernel for an unused TCP port on addr. Inside the private namespace nobody
// else binds ports, so the short window before the real user binds it is harmless.
func freePort(t *testing.T, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tailFile returns at most the last limit bytes of a file.
func tailFile(path string, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	off := int64(0)
	if st.Size() > limit {
		off = st.Size() - limit
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if off > 0 {
		return "[...]\n" + string(buf)
	}
	return string(buf)
}

// shellQuote renders args for a log line that can be pasted into a shell.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$*?[]{}()|&;<>\\") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}
