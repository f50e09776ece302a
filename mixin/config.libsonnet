// Settings of the jans-exporter mixin. Override them where you import it:
//
//   (import 'mixin/mixin.libsonnet') + { _config+:: { jansExporterSelector: 'job="idp-sidecars"' } }
{
  _config+:: {
    // Selects the jans-exporter targets in every alert.
    jansExporterSelector: 'job="jans-exporter"',
    // One alert per pod: the labels alerts aggregate by.
    groupLabels: 'job, namespace, instance',
    // One alert per deployment, for figures polled from cluster-wide APIs (FIDO2).
    deploymentLabels: 'job, namespace',
    // The label that tells clusters apart in dashboards (the `cluster` variable);
    // absent on a single cluster, where the variable's "All" matches everything.
    clusterLabel: 'cluster',
    runbookURL: 'https://github.com/jans-exporter/jans-exporter/blob/main/docs/runbooks.md#%s',

    // Ratio alerts fire above these shares (written as PromQL numbers), with at
    // least this many events.
    loginFailureRatio: '0.25',
    authorizationErrorRatio: '0.25',
    tokenRequestFailureRatio: '0.25',
    ratioMinEvents: 20,
    fido2FailureRatio: '0.10',
    fido2MinEvents: 10,
    fido2SlowSeconds: 30,
    // JansClusterSyncFailing fires when every sync of a sidecar failed this long.
    clusterSyncFailingFor: '10m',
    // JansOktaPollingFailing fires when every request to the System Log failed this long.
    oktaPollingFailingFor: '15m',

    dashboardTags: ['jans-exporter'],
    dashboardRefresh: '30s',
    dashboardTimezone: 'utc',
    grafanaMinVersion: '10.4.0',
  },
}
