// Package deploycheck holds the deployment checks that need libraries the service itself does
// not: the Prometheus rule expressions and the Grafana dashboard of the Helm chart, checked
// with Prometheus's own PromQL parser (rules_test.go), and two commands used by the scripts:
// cmd/crdschema turns CustomResourceDefinitions into kubeconform JSON schemas, and
// cmd/composeconfig loads a docker compose file with compose-go, the library `docker compose
// config` uses. It is its own module so that none of this reaches the service's go.mod.
package deploycheck
