//go:build depsprobe

// Package depsprobe keeps go.sum complete for modules being wired in.
package depsprobe

import (
	_ "github.com/CycloneDX/cyclonedx-go"
	_ "github.com/anchore/syft/syft"
	_ "github.com/anchore/syft/syft/format"
	_ "github.com/anchore/syft/syft/format/cyclonedxjson"
	_ "github.com/anchore/syft/syft/format/spdxjson"
	_ "github.com/getkin/kin-openapi/openapi3"
	_ "github.com/getkin/kin-openapi/openapi3filter"
	_ "github.com/getkin/kin-openapi/routers/gorillamux"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgconn"
	_ "github.com/slack-go/slack/socketmode"
	_ "github.com/spdx/tools-golang/json"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/rest"
	_ "k8s.io/client-go/tools/clientcmd"
	_ "k8s.io/client-go/tools/leaderelection"
	_ "k8s.io/client-go/tools/leaderelection/resourcelock"
	_ "modernc.org/sqlite"
)
