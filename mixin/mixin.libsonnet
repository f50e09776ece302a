// The jans-exporter monitoring mixin: alerts, recording rules and Grafana dashboards.
// The shipped alerts/, dashboards/ and Kubernetes objects are generated from it by
// `scripts/mixin.sh generate`; tests/mixin.rs fails when they drift.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
