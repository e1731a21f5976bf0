package dnstap

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFstrmCapture uses fstrm's own receiver (Debian fstrm-bin) as the oracle for our
// bidirectional writer: it must accept our handshake and write a file our reader reads back.
func TestFstrmCapture(t *testing.T) {
	bin, err := exec.LookPath("fstrm_capture")
	if err != nil {
		t.Skip("fstrm_capture not installed (apt-get install fstrm-bin)")
	}
	dir := t.TempDir()
	sock, out := filepath.Join(dir, "cap.sock"), filepath.Join(dir, "out.fstrm")
	cmd := exec.Command(bin, "-t", ContentType, "-u", sock, "-w", out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var c net.Conn
	waitFor(t, "fstrm_capture socket", func() bool {
		c, err = net.Dial("unix", sock)
		return err == nil
	})
	frames := testFrames(t, 1000)
	w, err := NewBidirectionalWriter(c, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil { // FINISH from fstrm
		t.Fatal(err)
	}
	c.Close()
	time.Sleep(100 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rd := NewReader(bytes.NewReader(data), nil, ReaderOptions{})
	var d Dnstap
	for i := 0; ; i++ {
		f, err := rd.Next()
		if err == io.EOF {
			if i != len(frames) {
				t.Fatalf("%d frames captured, want %d", i, len(frames))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f, frames[i]) || d.Unmarshal(f) != nil {
			t.Fatalf("frame %d differs", i)
		}
	}
}

// TestFstrmReplay uses fstrm's own sender (fstrm_replay) against our server: its handshake
// (READY/ACCEPT/START/STOP/FINISH) must succeed and every frame of the file arrive.
func TestFstrmReplay(t *testing.T) {
	bin, err := exec.LookPath("fstrm_replay")
	if err != nil {
		t.Skip("fstrm_replay not installed (apt-get install fstrm-bin)")
	}
	frames := testFrames(t, 1000)
	file := filepath.Join(t.TempDir(), "in.fstrm")
	if err := os.WriteFile(file, theirFile(t, frames), 0o600); err != nil {
		t.Fatal(err)
	}
	s := listenTest(t, "unix", ServerConfig{})
	got := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range s.Batches() {
			for _, f := range b.Frames {
				if !bytes.Equal(f, frames[got]) {
					t.Errorf("frame %d differs", got)
				}
				got++
			}
			s.Release(b)
		}
	}()
	if out, err := exec.Command(bin, "-t", ContentType, "-u", s.Addr().String(), "-r", file).CombinedOutput(); err != nil {
		t.Fatalf("fstrm_replay: %v: %s", err, out)
	}
	waitFor(t, "frames", func() bool { return s.Stats().Frames == uint64(len(frames)) })
	waitFor(t, "disconnect", func() bool { return s.Stats().ActiveConnections == 0 })
	s.Close()
	<-done
	if st := s.Stats(); got != len(frames) || st.ConnErrors != 0 {
		t.Fatalf("got %d, stats %+v, %v", got, st, s.LastError())
	}
}
