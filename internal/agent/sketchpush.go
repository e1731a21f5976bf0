package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/bucketwire"
)

// PushSketches posts the policy's live and last closed buckets as sketch exports to an
// aggregator's POST /api/v1/aggregate/buckets every interval until ctx ends: for agents the
// aggregator cannot reach. A failed push is retried at the next tick (the exports are whole
// buckets, so nothing accumulates); failures are logged when they change.
// token, when not empty, is sent as a bearer token (the aggregator's --aggregate-token).
func (a *Agent) PushSketches(ctx context.Context, url, policy, token string, interval time.Duration, client *http.Client, log *slog.Logger) {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	lastErr := ""
	for {
		err := a.pushSketchesOnce(ctx, url, policy, token, client)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != lastErr {
			if err != nil {
				log.Warn("aggregate push failed", "url", url, "error", err)
			} else {
				log.Info("aggregate push recovered", "url", url)
			}
			lastErr = msg
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) pushSketchesOnce(ctx context.Context, url, policy, token string, client *http.Client) error {
	for _, n := range []int{1, 0} {
		data, err := a.SketchBucket(policy, n)
		if IsPeriodError(err) {
			continue // no closed bucket yet
		}
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", bucketwire.MediaType)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
		}
	}
	return nil
}
