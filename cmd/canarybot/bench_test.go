package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/canarybot/canarybot/demo"
)

// BenchmarkDemoFaultToWeightZero measures, in the demo, the time from the
// canary degrading (p95 +250 ms) to the router's weight reaching 0: in
// virtual time, which is what the runbook's 5-minute budget is about, and in
// ticks. The target is about one tick plus the window the p95 needs to move.
func BenchmarkDemoFaultToWeightZero(b *testing.B) {
	var virtual, wall time.Duration
	runs := 0
	for b.Loop() {
		g := &globals{out: io.Discard, errOut: io.Discard, logLevel: "error"}
		res, err := runDemo(context.Background(), g, demoOptions{
			version: "v1.4.0", speed: 60, fault: demo.FaultLatency, faultStage: 1, faultAfter: 2 * time.Minute,
			rps: 200, wsClients: 100, evidence: b.TempDir(),
		})
		if exitCode(err) != exitRolledBack || res.zeroAt.IsZero() {
			b.Fatalf("no rollback: %v", err)
		}
		virtual += res.zeroAt.Sub(res.faultAt)
		wall += res.zeroWall.Sub(res.faultWall)
		runs++
	}
	b.ReportMetric(virtual.Seconds()/float64(runs), "virtual-s/rollback")
	b.ReportMetric(virtual.Seconds()/float64(runs)/30, "ticks/rollback")
	b.ReportMetric(float64(wall.Milliseconds())/float64(runs), "wall-ms/rollback@60x")
}
