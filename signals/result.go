package signals

import (
	"fmt"
	"strings"
)

// The errors both providers give for a result that is not one number, so a
// query mistake reads the same against the embedded store and Prometheus.

// errManySeries says a query must aggregate; metrics name its series.
func errManySeries[S fmt.Stringer](query string, series []S) error {
	const shown = 3
	names := make([]string, 0, shown+1)
	for i, s := range series {
		if i == shown {
			names = append(names, "…")
			break
		}
		names = append(names, s.String())
	}
	return fmt.Errorf("signals: query `%s` returned %d series (%s); it must aggregate to one series, e.g. with sum or max",
		query, len(series), strings.Join(names, ", "))
}

func errRangeVector(query string) error {
	return fmt.Errorf("signals: query `%s` returned a range vector; a signal must be an instant vector or a scalar (wrap the range in a function such as rate)", query)
}

func errResultType(query string, typ any) error {
	return fmt.Errorf("signals: query `%s` returned a %v; a signal must be an instant vector or a scalar", query, typ)
}
