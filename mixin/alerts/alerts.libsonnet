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
        alert(
          'JansFido2FailureRatioHigh', 'warning',
          ratio(c, 'jans_fido2_operations_total', 'operation=~"registration|authentication", status="failure"', 'operation=~"registration|authentication", status=~"success|failure"', '15m', c.fido2FailureRatio, c.fido2MinEvents),
          '15m',
          'Passkey ceremonies are failing more than usual.',
          '{{ $value | humanizePercentage }} of FIDO2 registrations and authentications failed over the last 15 minutes on {{ $labels.instance }}.',
        ),
        alert(
          'JansFido2CeremoniesSlow', 'warning',
          |||
            histogram_quantile(0.95, sum by (%(g)s, le) (rate(jans_fido2_operation_duration_seconds_bucket{%(s)s, status="success"}[15m]))) > %(slow)s
            and
            sum by (%(g)s) (increase(jans_fido2_operation_duration_seconds_count{%(s)s, status="success"}[15m])) >= %(min)d
          ||| % { g: c.groupLabels, s: s, slow: c.fido2SlowSeconds, min: c.fido2MinEvents },
          '15m',
          'Passkey ceremonies are slow.',
          'The 95th percentile of successful FIDO2 ceremonies took {{ $value | humanizeDuration }} over the last 15 minutes on {{ $labels.instance }}.',
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
