// Janssen / jans-exporter health: is the sidecar reading, polling, saving, and at
// what cost.
local g = import '../lib/grafana.libsonnet';

function(c)
  local s = g.selector(c);
  local sel(extra='') = '{%s%s}' % [s, if extra == '' then '' else ',' + extra];
  local rate(metric, extra='') = 'rate(%s%s[$__rate_interval])' % [metric, sel(extra)];
  g.dashboard(c, 'jans-exporter-health', 'Janssen / jans-exporter health',
              'Ingestion, upstream polling, state and resources of the jans-exporter sidecars.', [
    g.row('Status'),
    g.stat('Targets', 'jans-exporter targets Prometheus scrapes (up) and cannot reach (down).', 'none', [
      g.target('sum(up%s)' % sel(), 'up'),
      g.target('count(up%s == 0) or vector(0)' % sel(), 'down'),
    ], width=6, thresholds=g.thresholds('green')),
    g.stat('Version', 'Versions and revisions running, with how many targets run each.', 'none', [
      g.target('count by (version, revision, rustc) (jans_exporter_build_info%s)' % sel(), '{{version}} ({{revision}}, {{rustc}})'),
    ], width=10, textMode='value_and_name'),
    g.stat('Files per pattern', 'Files each logs.paths pattern matches (the fewest on any pod); 0 is a wrong path or a log not written.', 'none', [
      g.target('min by (pattern) (jans_exporter_log_pattern_files%s)' % sel(), '{{pattern}}'),
    ], width=8, thresholds=g.thresholds('red', [[1, 'green']]), textMode='value_and_name'),

    g.row('Ingest'),
    g.timeseries('Ingest rate', 'Well-formed records read per second, by log format.', 'ops', [
      g.target('sum by (format) (%s)' % rate('jans_exporter_records_total'), '{{format}}'),
    ]),
    g.timeseries('Unread log bytes', 'Bytes written to followed logs and not read yet (should stay near 0), and bytes read per second.', 'bytes', [
      g.target('max by (instance) (jans_exporter_log_lag_bytes%s)' % sel(), '{{instance}}'),
      g.target('sum by (instance) (%s)' % rate('jans_exporter_log_read_bytes_total'), '{{instance}} read/s'),
    ]),
    g.timeseries('Parse errors by reason', 'Malformed records and stray lines per second, by reason.', 'ops', [
      g.target('sum by (reason) (%s)' % rate('jans_exporter_parse_errors_total'), '{{reason}}'),
    ]),
    g.timeseries('Rotations and truncations', 'Log rotations, copytruncate truncations and files lost while the exporter was down, per hour.', 'short', [
      g.target('sum(increase(jans_exporter_log_rotations_total%s[1h]))' % sel(), 'rotations'),
      g.target('sum(increase(jans_exporter_log_truncations_total%s[1h]))' % sel(), 'truncations'),
      g.target('sum(increase(jans_exporter_log_files_lost_total%s[1h]))' % sel(), 'files lost'),
    ]),

    g.row('Upstream'),
    g.stat('Endpoints', 'Whether the last request to each auth server endpoint succeeded (any pod failing shows down).', 'none', [
      g.target('min by (endpoint) (jans_upstream_up%s)' % sel(), '{{endpoint}}'),
    ], width=8, height=8, mappings=g.upDown('up', 'down'), textMode='value_and_name'),
    g.timeseries('Upstream latency p95', '95th percentile of request time to each auth server endpoint.', 's', [
      g.target('histogram_quantile(0.95, sum by (le, endpoint) (%s))' % rate('jans_upstream_request_duration_seconds_bucket'), '{{endpoint}}'),
    ], width=8),
    g.timeseries('Upstream errors', 'Failed requests to the auth server per second, by endpoint and reason.', 'ops', [
      g.target('sum by (endpoint, reason) (%s)' % rate('jans_upstream_errors_total'), '{{endpoint}} {{reason}}'),
    ], width=8),

    g.row('Okta'),
    g.stat('Okta System Log', 'Whether the last request of each exporter to the Okta System Log succeeded (okta.org_url; empty without it). JansOktaPollingFailing fires after 15 minutes down.', 'none', [
      g.target('min by (instance) (jans_okta_up%s)' % sel(), '{{instance}}'),
    ], width=8, height=8, mappings=g.upDown('up', 'down'), textMode='value_and_name'),
    g.timeseries('Okta lag', 'Age of the newest System Log event read (grows while the org is quiet too), and requests left in the current rate-limit window of /api/v1/logs.', 's', [
      g.target('max by (instance) (jans_okta_lag_seconds%s)' % sel(), '{{instance}} lag'),
      g.target('min by (instance) (jans_okta_rate_limit_remaining%s)' % sel(), '{{instance}} requests left'),
    ], width=8),
    g.timeseries('Okta errors and latency', 'Failed System Log requests by reason, and the 95th percentile of request time.', 's', [
      g.target('sum by (reason) (increase(jans_okta_errors_total%s[$__rate_interval]))' % sel(), '{{reason}} errors'),
      g.target('histogram_quantile(0.95, sum by (le) (%s))' % rate('jans_okta_request_duration_seconds_bucket'), 'p95'),
    ], width=8),

    g.row('Cluster'),
    g.stat('Redis sync', 'Whether the last sync of each sidecar with the cluster\'s Redis succeeded (cluster.redis_url; empty without one). JansClusterSyncFailing fires after 10 minutes down.', 'none', [
      g.target('min by (instance) (jans_cluster_up%s)' % sel(), '{{instance}}'),
    ], width=8, height=8, mappings=g.upDown('synced', 'failing'), textMode='value_and_name'),
    g.stat('Poller of the cluster-wide endpoints', 'The sidecar polling the stat endpoint and the FIDO2 entries: 1 on the lease holder with a cluster (exactly one), on every sidecar without one.', 'none', [
      g.target('max by (instance) (jans_upstream_poller_leader%s)' % sel(), '{{instance}}'),
    ], width=8, height=8, textMode='value_and_name'),
    g.timeseries('Redis sync', 'Age of each sidecar\'s last successful sync, failed syncs and failed lease rounds by reason.', 's', [
      g.target('time() - max by (instance) (jans_cluster_last_sync_timestamp_seconds%s)' % sel(), '{{instance}} age'),
      g.target('sum by (reason) (increase(jans_cluster_sync_errors_total%s[$__rate_interval]))' % sel(), '{{reason}} errors'),
      g.target('sum by (reason) (increase(jans_cluster_lease_errors_total%s[$__rate_interval]))' % sel(), 'lease {{reason}} errors'),
    ], width=8),

    g.row('State'),
    g.timeseries('State snapshot', 'Age of the last saved snapshot, and save failures in the last hour.', 's', [
      g.target('time() - max by (instance) (jans_exporter_state_last_save_timestamp_seconds%s)' % sel(), '{{instance}} age'),
      g.target('sum(increase(jans_exporter_state_save_failures_total%s[1h]))' % sel(), 'save failures'),
    ]),
    g.timeseries('Snapshot size', 'Size of the last snapshot written.', 'bytes', [
      g.target('max by (instance) (jans_exporter_state_bytes%s)' % sel(), '{{instance}}'),
    ]),

    g.row('Process'),
    g.timeseries('Resident memory', 'Resident memory of the exporter (the example limits it to 128 MiB).', 'bytes', [
      g.target('max by (instance) (process_resident_memory_bytes%s)' % sel(), '{{instance}}'),
    ], width=8),
    g.timeseries('CPU', 'CPU used by the exporter, in cores.', 'short', [
      g.target('sum by (instance) (%s)' % rate('process_cpu_seconds_total'), '{{instance}}'),
    ], width=8),
    g.timeseries('File descriptors', 'Open file descriptors against the limit: each followed file holds one.', 'percentunit', [
      g.target('max by (instance) (process_open_fds%s / process_max_fds%s)' % [sel(), sel()], '{{instance}}'),
    ], width=8),
  ])
