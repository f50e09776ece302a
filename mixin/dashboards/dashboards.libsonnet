// The Grafana dashboards, by file name under dashboards/.
{
  grafanaDashboards+:: {
    'jans-overview.json': (import 'overview.libsonnet')($._config),
    'jans-fido2.json': (import 'fido2.libsonnet')($._config),
    'jans-exporter-health.json': (import 'exporter-health.libsonnet')($._config),
  },
}
