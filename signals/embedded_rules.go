package signals

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"
)

// defaultGroupInterval is Prometheus's default evaluation_interval. Groups
// are evaluated after every scrape regardless; the interval only sets how
// long a sent alert stays valid.
const defaultGroupInterval = time.Minute

// loadRules parses a rule file and builds its groups the way
// rules.Manager.LoadGroups does, without a Manager: a Manager would evaluate
// on its own wall-clock ticker, and the store evaluates at virtual time
// after each scrape instead.
func (e *Embedded) loadRules(content []byte) ([]*rules.Group, error) {
	rgs, errs := rulefmt.Parse(content, false, model.UTF8Validation, e.parser, e.logger)
	if len(errs) > 0 {
		return nil, fmt.Errorf("signals: the rule file is invalid: %w", errors.Join(errs...))
	}
	logger := e.logger.With("component", "rules")
	opts := &rules.ManagerOptions{
		QueryFunc: rules.EngineQueryFunc(e.engine, e.db),
		// Nobody receives notifications: Firing reads the rules' state.
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Context:      context.Background(),
		AppendableV2: e.db,
		Queryable:    e.db,
		Logger:       logger,
		Parser:       e.parser,
	}
	groups := make([]*rules.Group, 0, len(rgs.Groups))
	for _, rg := range rgs.Groups {
		interval := defaultGroupInterval
		if rg.Interval != 0 {
			interval = time.Duration(rg.Interval)
		}
		rs := make([]rules.Rule, 0, len(rg.Rules))
		for i, r := range rg.Rules {
			expr, err := e.parser.ParseExpr(r.Expr)
			if err != nil {
				// rulefmt.Parse has already parsed every expression.
				return nil, fmt.Errorf("signals: group %q, rule %d: %w", rg.Name, i, err)
			}
			ls := rules.FromMaps(rg.Labels, r.Labels)
			if r.Alert == "" {
				rs = append(rs, rules.NewRecordingRule(r.Record, expr, ls))
				continue
			}
			rs = append(rs, rules.NewAlertingRule(
				r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
				ls, labels.FromMap(r.Annotations), labels.EmptyLabels(), "",
				// There is no earlier state to restore: the store is new.
				true, logger.With("alert", r.Alert),
			))
		}
		groups = append(groups, rules.NewGroup(rules.GroupOptions{
			Name:        rg.Name,
			File:        "embedded",
			Interval:    interval,
			Limit:       rg.Limit,
			Rules:       rs,
			Opts:        opts,
			QueryOffset: (*time.Duration)(rg.QueryOffset),
		}))
	}
	return groups, nil
}
