package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarybot/canarybot/bot"
	"github.com/canarybot/canarybot/rollout"
)

// loadResult is what the load client reports, in milliseconds.
type loadResult struct {
	N      int     `json:"n"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
	Rate   float64 `json:"req_per_s"`
}

// BenchmarkSlashCommandAckUnderLoad measures how long Slack would wait for
// the ack of a signed slash command while a release runs: serve with a
// hosted engine ticking every 30 ms (saving the release each time) on
// loopback, and a second process — this test binary run again as the
// client — sending `/canary status` and `/canary signals` from 50
// concurrent requesters. Slack's limit is 3 s.
func BenchmarkSlashCommandAckUnderLoad(b *testing.B) {
	const requests, concurrency = 2000, 50
	plan := fastPlan()
	plan.Timeline = nil
	plan.Stages = []rollout.Stage{{Weight: 5, Dwell: time.Hour}, {Weight: 100, Dwell: time.Hour}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWarRoom(ctx, b, plan, "", 0)
	done := make(chan error, 1)
	go func() { done <- w.h.host.Run(ctx) }()
	must(b, w.command(userRita, "start v1.4.0"), "started")
	w.waitFor("stage 1 ticks", func(r *rollout.Release) bool { return r.CurrentStage() == 1 && len(r.Rows) > 2 })

	var res loadResult
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSlashCommandLoadClient$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "CANARYBOT_LOAD_URL="+w.http.URL+"/slack/commands", "CANARYBOT_LOAD_SECRET="+warRoomSecret,
			"CANARYBOT_LOAD_N="+strconv.Itoa(requests), "CANARYBOT_LOAD_CONCURRENCY="+strconv.Itoa(concurrency))
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("load client: %v\n%s", err, out)
		}
		found := false
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if j, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "LOADRESULT "); ok {
				found = json.Unmarshal([]byte(j), &res) == nil
			}
		}
		if !found {
			b.Fatalf("load client printed no result:\n%s", out)
		}
		if res.Errors > 0 {
			b.Fatalf("%d of %d requests failed", res.Errors, res.N)
		}
	}
	if r, _ := w.h.p.store.Load(ctx, ""); r == nil || r.Phase != rollout.PhaseStage {
		b.Fatalf("the release was not running throughout: %+v", r)
	}
	b.ReportMetric(res.P50, "p50-ms")
	b.ReportMetric(res.P99, "p99-ms")
	b.ReportMetric(res.Max, "max-ms")
	b.ReportMetric(res.Rate, "req/s")
	cancel()
	<-done
	w.srv.Wait()
}

// TestSlashCommandLoadClient is the second process of
// BenchmarkSlashCommandAckUnderLoad; run on its own it has nothing to do.
func TestSlashCommandLoadClient(t *testing.T) {
	target := os.Getenv("CANARYBOT_LOAD_URL")
	if target == "" {
		t.Skip("the load client of BenchmarkSlashCommandAckUnderLoad; it runs only as that benchmark's second process")
	}
	secret := os.Getenv("CANARYBOT_LOAD_SECRET")
	n, _ := strconv.Atoi(os.Getenv("CANARYBOT_LOAD_N"))
	conc, _ := strconv.Atoi(os.Getenv("CANARYBOT_LOAD_CONCURRENCY"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}, Timeout: 30 * time.Second}
	lat := make([]time.Duration, n)
	failed := make([]bool, n)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for i := range next {
				text := "status"
				if i%5 == 0 {
					text = "signals"
				}
				// A distinct body per request: the replay cache refuses a
				// signature seen before.
				body := url.Values{"command": {"/canary"}, "user_id": {userOther}, "text": {text}, "channel_id": {"C1"},
					"response_url": {"https://hooks.slack.com/commands/T1/1/x"}, "trigger_id": {strconv.Itoa(i)}}.Encode()
				ts := strconv.FormatInt(time.Now().Unix(), 10)
				req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set(bot.HeaderTimestamp, ts)
				req.Header.Set(bot.HeaderSignature, bot.SignatureHeader(secret, ts, []byte(body)))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed[i] = true
					continue
				}
				var a slackAnswer
				derr := json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				failed[i] = resp.StatusCode != 200 || derr != nil || !strings.Contains(a.Text, "v1.4.0")
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	res := loadResult{N: n}
	var ok []time.Duration
	for i, d := range lat {
		if failed[i] {
			res.Errors++
			continue
		}
		ok = append(ok, d)
	}
	slices.Sort(ok)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	if len(ok) > 0 {
		res.P50, res.P99, res.Max = ms(ok[len(ok)/2]), ms(ok[len(ok)*99/100]), ms(ok[len(ok)-1])
	}
	res.Rate = float64(n) / elapsed.Seconds()
	data, _ := json.Marshal(res)
	fmt.Printf("LOADRESULT %s\n", data)
}
