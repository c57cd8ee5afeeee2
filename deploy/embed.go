// Package deploy holds the files that configure what runs beside canarybot
// (Prometheus rules, ...), embedded so that the binary and the demo use the
// very files that are deployed.
package deploy

import _ "embed"

// A string, not a []byte: it cannot be changed, so the embedded file is
// never package-level mutable state.
//
//go:embed prometheus/canary-rules.yml
var canaryRules string

// CanaryRules returns deploy/prometheus/canary-rules.yml: the runbook's 20
// auto-rollback alerting rules, as a fresh copy.
func CanaryRules() []byte { return []byte(canaryRules) }
