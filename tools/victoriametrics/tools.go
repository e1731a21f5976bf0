//go:build tools

// Package tools pins the test-only servers that the end-to-end tests run (VictoriaMetrics
// single-node, for the push export). It is a separate module so that their dependencies never
// enter the agent's go.mod; scripts/build-tools.sh builds the binaries.
package tools

import _ "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics"
