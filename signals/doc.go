// Package signals answers the engine's metric and alert questions
// (rollout.Metrics, rollout.BatchMetrics, rollout.Alerts) in two ways that
// give the same answers to the same PromQL:
//
//   - Prometheus talks to a Prometheus server over its HTTP API: production.
//   - Embedded is an in-process TSDB, PromQL engine and rule evaluator on
//     virtual time: the demo, with no server to run.
//
// Both reduce a query's result to one number the same way: a scalar or a
// single series is a value (NaN included: the engine decides what NaN
// means); an empty result wraps rollout.ErrNoValues; several series are an
// error asking the query to aggregate. An error is never turned into a
// value.
package signals
