// Janssen / FIDO2 and passkeys: ceremonies, latency, errors and fallbacks, from the
// FIDO2 metrics API. Its figures are cluster-wide: counted once per deployment.
local g = import '../lib/grafana.libsonnet';

function(c)
  local s = g.selector(c);
  local sel(extra='') = '{%s%s}' % [s, if extra == '' then '' else ',' + extra];
  local rate(metric, extra='') = 'rate(%s%s[$__rate_interval])' % [metric, sel(extra)];
  local once(by, expr) = g.polled(c, by, expr, sel());
  local quantile(q) = 'histogram_quantile(%s, %s)' % [q, once('le', rate('jans_fido2_operation_duration_seconds_bucket', 'status="success"'))];
  g.dashboard(c, 'jans-fido2', 'Janssen / FIDO2 and passkeys',
              'FIDO2 / passkey registrations and authentications from the Janssen FIDO2 metrics API, via jans-exporter.', [
    g.row('Service'),
    g.stat('FIDO2 service', 'Whether the FIDO2 metrics health endpoint answers UP (any pod failing shows down).', 'none', [
      g.target('min(jans_fido2_up%s)' % sel(), 'FIDO2'),
    ], width=8, mappings=g.upDown('UP', 'down')),
    g.stat('Passkey active users', 'Distinct users with a successful passkey ceremony in the current UTC day, ISO week and month: the union in Redis with a cluster, else the largest pod.', 'short', [
      g.target(g.unionOr('period', 'jans_cluster_fido2_active_users', 'jans_fido2_active_users', sel()), '{{period}}'),
    ], width=16, textMode='value_and_name'),

    g.row('Ceremonies'),
    g.timeseries('Ceremonies by operation and status', 'FIDO2 ceremonies per second by operation and status.', 'ops', [
      g.target(once('operation, status', rate('jans_fido2_operations_total')), '{{operation}} {{status}}'),
    ]),
    g.timeseries('Success rate by operation', 'Successful ceremonies among successful and failed ones, by operation. JansFido2FailureRatioHigh fires when more than %s fail with enough volume.' % c.fido2FailureRatio, 'percentunit', [
      g.target('%s / %s' % [
        once('operation', rate('jans_fido2_operations_total', 'operation=~"registration|authentication",status="success"')),
        once('operation', rate('jans_fido2_operations_total', 'operation=~"registration|authentication",status=~"success|failure"')),
      ], '{{operation}}'),
    ]) { fieldConfig+: { defaults+: { min: 0, max: 1, thresholds: g.thresholds('red', [[1 - std.parseJson(c.fido2FailureRatio), 'green']]), custom: { thresholdsStyle: { mode: 'dashed' } } } } },

    g.row('Latency'),
    g.timeseries('Ceremony duration p50 / p95 / p99', 'Quantiles of successful ceremony durations, from the histogram; JansFido2CeremoniesSlow fires when p95 stays above %ss.' % c.fido2SlowSeconds, 's', [
      g.target(quantile('0.5'), 'p50'),
      g.target(quantile('0.95'), 'p95'),
      g.target(quantile('0.99'), 'p99'),
    ]),
    g.heatmap('Ceremony duration heatmap', 'Distribution of ceremony durations over time.', 's', [
      g.target(once('le', rate('jans_fido2_operation_duration_seconds_bucket')), '{{le}}'),
    ]),

    g.row('Errors and fallbacks'),
    g.timeseries('Errors by category', 'Failed ceremonies per second by normalised error category (at most 20 categories, the rest other).', 'ops', [
      g.target(once('operation, category', rate('jans_fido2_errors_total')), '{{operation}} {{category}}'),
    ]),
    g.timeseries('Fallbacks', 'Fallbacks from passkeys to another method per second.', 'ops', [
      g.target(once('method', rate('jans_fido2_fallbacks_total')), '{{method}}'),
    ]),
  ])
