// Alerting rules. Selectors come from _config.jansExporterSelector; ratios aggregate
// per job, namespace and instance so that one pod's trouble is one alert, and every
// ratio alert has a volume guard. Severities as kube-prometheus uses them: critical
// pages, warning is looked at within the day, info only annotates.
local runbook(c, name) = c.runbookURL % std.asciiLower(name);

// `part` of `metric` over all of it, above `threshold`, with at least `min` events.
local ratio(c, metric, part, whole, window, threshold, min) =
  local sel(extra) = '{%s%s}' % [c.jansExporterSelector, if extra == '' then '' else ', ' + extra];
  |||
    (
      sum by (%(g)s) (rate(%(m)s%(part)s[%(w)s]))
      /
      sum by (%(g)s) (rate(%(m)s%(whole)s[%(w)s]))
    ) > %(t)s
    and
    sum by (%(g)s) (increase(%(m)s%(whole)s[%(w)s])) >= %(min)d
  ||| % { g: c.groupLabels, m: metric, part: sel(part), whole: sel(whole), w: window, t: threshold, min: min };

// An increase of a family polled from a cluster-wide API (stat, FIDO2), counted once
// per deployment: every sidecar polls it without a cluster, one at a time with one
// (jans_upstream_poller_leader), so the sum over pods divided by the number polling is
// right either way.
local polledIncrease(c, metric, extra, window) =
  |||
    (
      sum by (%(d)s) (increase(%(m)s{%(s)s%(x)s}[%(w)s]))
      / on (%(d)s)
      count by (%(d)s) (jans_upstream_poller_leader{%(s)s} == 1)
    )
  ||| % { d: c.deploymentLabels, m: metric, s: c.jansExporterSelector, x: if extra == '' then '' else ', ' + extra, w: window };

{
  prometheusAlerts+:: {
    local c = $._config,
    local s = c.jansExporterSelector,
    local alert(name, severity, expr, for_, summary, description) = {
      alert: name,
      expr: expr,
      'for': for_,
      labels: { severity: severity },
      annotations: {
        summary: summary,
        description: description,
        runbook_url: runbook(c, name),
      },
    },

    groups+: [{
      name: 'jans-exporter',
      rules: [
        // Interactive logins as the server log reports them (jans-auth.log must be
        // followed): a wrong password writes no audit record, and the audit log's
        // USER_AUTHORIZATION failures are mostly redirects to the login page.
        alert(
          'JansAuthenticationFailureRatioHigh', 'critical',
          ratio(c, 'jans_authentications_total', 'kind="user", outcome="failure"', 'kind="user"', '5m', c.loginFailureRatio, c.ratioMinEvents),
          '5m',
          'Many logins are failing.',
          '{{ $value | humanizePercentage }} of interactive logins failed over the last 5 minutes on {{ $labels.instance }} ({{ $labels.namespace }}).',
        ),
        // Rejected authorization requests only: redirects to the login or consent
        // page (interaction) are healthy traffic.
        alert(
          'JansAuthorizationErrorRatioHigh', 'warning',
          ratio(c, 'jans_authorization_requests_total', 'outcome="error"', '', '5m', c.authorizationErrorRatio, c.ratioMinEvents),
          '10m',
          'Many authorization requests are rejected.',
          '{{ $value | humanizePercentage }} of authorization requests were rejected over the last 5 minutes on {{ $labels.instance }} ({{ $labels.namespace }}).',
        ),
        // User token requests only: every device-code and CIBA poll is written as a
        // failure with no user, so machine failures are normal traffic.
        alert(
          'JansTokenRequestFailureRatioHigh', 'warning',
          ratio(c, 'jans_token_requests_total', 'kind="user", outcome="failure"', 'kind="user"', '5m', c.tokenRequestFailureRatio, c.ratioMinEvents),
          '10m',
          'Many user token requests are failing.',
          '{{ $value | humanizePercentage }} of token requests for users failed over the last 5 minutes on {{ $labels.instance }} ({{ $labels.namespace }}).',
        ),
        // FIDO2 figures are the whole deployment's (one FIDO2 API): one alert per
        // deployment. Copies from several pods cancel out of a ratio and a quantile.
        alert(
          'JansFido2FailureRatioHigh', 'warning',
          |||
            (
              sum by (%(d)s) (rate(jans_fido2_operations_total{%(s)s, operation=~"registration|authentication", status="failure"}[15m]))
              /
              sum by (%(d)s) (rate(jans_fido2_operations_total{%(s)s, operation=~"registration|authentication", status=~"success|failure"}[15m]))
            ) > %(t)s
            and
            %(volume)s >= %(min)d
          ||| % { d: c.deploymentLabels, s: s, t: c.fido2FailureRatio, min: c.fido2MinEvents, volume: std.stripChars(polledIncrease(c, 'jans_fido2_operations_total', 'operation=~"registration|authentication", status=~"success|failure"', '15m'), '\n') },
          '15m',
          'Passkey ceremonies are failing more than usual.',
          '{{ $value | humanizePercentage }} of FIDO2 registrations and authentications failed over the last 15 minutes in {{ $labels.namespace }}.',
        ),
        alert(
          'JansFido2CeremoniesSlow', 'warning',
          |||
            histogram_quantile(0.95, sum by (%(d)s, le) (rate(jans_fido2_operation_duration_seconds_bucket{%(s)s, status="success"}[15m]))) > %(slow)s
            and
            %(volume)s >= %(min)d
          ||| % { d: c.deploymentLabels, s: s, slow: c.fido2SlowSeconds, min: c.fido2MinEvents, volume: std.stripChars(polledIncrease(c, 'jans_fido2_operation_duration_seconds_count', 'status="success"', '15m'), '\n') },
          '15m',
          'Passkey ceremonies are slow.',
          'The 95th percentile of successful FIDO2 ceremonies took {{ $value | humanizeDuration }} over the last 15 minutes in {{ $labels.namespace }}.',
        ),
        // Not while a server that was not starting 15 minutes ago is starting (a
        // rollout or a restart); one stuck starting for 15 minutes pages.
        alert(
          'JansAuthServerDown', 'critical',
          |||
            jans_auth_server_up{%(s)s} == 0
            unless on (%(g)s)
            (
              jans_auth_server_starting{%(s)s} == 1
              and
              min_over_time(jans_auth_server_starting{%(s)s}[15m]) == 0
            )
          ||| % { g: c.groupLabels, s: s },
          '3m',
          'The Janssen auth server is not healthy.',
          'The health check of the auth server next to {{ $labels.instance }} has not answered running with the database online for 3 minutes.',
        ),
        alert(
          'JansAuthDatabaseOffline', 'critical',
          'jans_auth_server_db_online{%s} == 0' % s,
          '3m',
          "The auth server's database is offline.",
          'The auth server next to {{ $labels.instance }} reports db_status offline for 3 minutes.',
        ),
        alert(
          'JansUpstreamUnreachable', 'warning',
          'jans_upstream_up{%s} == 0' % s,
          '15m',
          'The exporter cannot reach an auth server endpoint.',
          'Requests from {{ $labels.instance }} to the {{ $labels.endpoint }} endpoint have failed for 15 minutes.',
        ),
        // Billing's cluster-wide active users and the one poller of the stat endpoint
        // and the FIDO2 API both need Redis; local figures go on without it.
        alert(
          'JansClusterSyncFailing', 'warning',
          'jans_cluster_up{%s} == 0' % s,
          c.clusterSyncFailingFor,
          'A sidecar cannot sync with the cluster\'s Redis.',
          '{{ $labels.instance }} has failed every sync with Redis for %s: cluster-wide active users are not updated, and no sidecar polls the stat endpoint and the FIDO2 entries while none can hold the lease (counted late, not lost, once Redis answers).' % c.clusterSyncFailingFor,
        ),
        // The Okta billing figures stop while the System Log cannot be read; the
        // checkpoint waits, so they are counted late, not lost (within Okta's 90 days).
        alert(
          'JansOktaPollingFailing', 'warning',
          'jans_okta_up{%s} == 0' % s,
          c.oktaPollingFailingFor,
          'The exporter cannot read the Okta System Log.',
          'Every request from {{ $labels.instance }} to the Okta System Log has failed for %s: the Okta active users and M2M tokens are not updated (the checkpoint waits: counted late, not lost).' % c.oktaPollingFailingFor,
        ),
        alert(
          'JansLogIngestionStalled', 'warning',
          |||
            jans_exporter_log_lag_bytes{%(s)s} > 0
            and
            rate(jans_exporter_log_read_bytes_total{%(s)s}[10m]) == 0
          ||| % { s: s },
          '10m',
          'The exporter has stopped reading the audit log.',
          '{{ $labels.instance }} has {{ $value | humanize1024 }}B of audit log unread and read nothing for 10 minutes.',
        ),
        alert(
          'JansLogParseErrorsRising', 'warning',
          |||
            (
              sum by (%(g)s) (rate(jans_exporter_parse_errors_total{%(s)s}[15m]))
              /
              (sum by (%(g)s) (rate(jans_exporter_records_total{%(s)s}[15m])) + sum by (%(g)s) (rate(jans_exporter_parse_errors_total{%(s)s}[15m])))
            ) > 0.01
            and
            sum by (%(g)s) (increase(jans_exporter_parse_errors_total{%(s)s}[15m])) >= 10
          ||| % { g: c.groupLabels, s: s },
          '15m',
          'Audit records are failing to parse.',
          '{{ $value | humanizePercentage }} of audit log input on {{ $labels.instance }} could not be parsed over the last 15 minutes.',
        ),
        alert(
          'JansExporterStateNotSaved', 'warning',
          'increase(jans_exporter_state_save_failures_total{%s}[15m]) > 0' % s,
          '15m',
          'The exporter cannot save its state.',
          '{{ $labels.instance }} failed to save its snapshot {{ $value | humanize }} times in 15 minutes; a restart would re-read or lose what was not saved.',
        ),
        // A warning, as kube-prometheus's TargetDown: the auth server may be fine; its
        // figures are not.
        alert(
          'JansExporterDown', 'warning',
          'up{%s} == 0' % s,
          '5m',
          'Prometheus cannot scrape jans-exporter.',
          'The jans-exporter target {{ $labels.instance }} has been down for 5 minutes: no figures, no alerts from it.',
        ),
        alert(
          'JansExporterAbsent', 'warning',
          'absent(up{%s})' % s,
          '15m',
          'Prometheus scrapes no jans-exporter target.',
          'No target of job {{ $labels.job }} has been scraped for 15 minutes: the PodMonitor or scrape config selects nothing, so none of the Janssen alerts can fire.',
        ),
        alert(
          'JansExporterNoLogFollowed', 'warning',
          'jans_exporter_log_files{%s} == 0' % s,
          '15m',
          'The exporter follows no log file.',
          'No file matches logs.paths on {{ $labels.instance }} for 15 minutes: a wrong path or volume, or the auth server writes no audit log (enabledOAuthAuditLogging off).',
        ),
        alert(
          'JansExporterNoRecords', 'info',
          |||
            sum by (%(g)s) (increase(jans_exporter_records_total{%(s)s}[3h])) == 0
            and
            sum by (%(g)s) (jans_exporter_log_files{%(s)s}) > 0
          ||| % { g: c.groupLabels, s: s },
          '30m',
          'The exporter has read no record for hours.',
          '{{ $labels.instance }} follows log files but has read no record in 3 hours: no traffic, or the auth server logs elsewhere.',
        ),
      ],
    }],
  },
}
