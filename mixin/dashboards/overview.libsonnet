// Janssen / Overview: what the auth server did, row by row.
local g = import '../lib/grafana.libsonnet';

function(c)
  local s = g.selector(c);
  // Gauges polled from cluster-wide APIs (the stat endpoint's monthly figures) are
  // reported alike by every sidecar that polls them: one copy per cluster and
  // namespace, then summed, never summed across pods.
  local once(by, expr) = 'sum by (%s) (max by (%s, namespace, %s) (%s))' % [by, c.clusterLabel, by, expr];
  local sel(extra='') = '{%s%s}' % [s, if extra == '' then '' else ',' + extra];
  local rate(metric, extra='') = 'rate(%s%s[$__rate_interval])' % [metric, sel(extra)];
  // Their counters: counted once, with or without a cluster.
  local polled(by, expr) = g.polled(c, by, expr, sel());
  g.dashboard(c, 'jans-overview', 'Janssen / Overview',
              'Logins, authorizations, tokens, active users, passkeys and the health of the Janssen auth server, from jans-exporter.', [
    g.row('Status'),
    g.stat('Auth server', 'The health check of the auth server next to each sidecar: running with the database online, the database alone, and a server still starting (a rollout). Red means an alert is or will be firing.', 'none', [
      g.target('min(jans_auth_server_up%s)' % sel(), 'running'),
      g.target('min(jans_auth_server_db_online%s)' % sel(), 'database'),
      g.target('max(jans_auth_server_starting%s)' % sel(), 'starting'),
    ], width=10, mappings=g.upDown('up', 'down')),
    g.stat('Exporters scraped', 'jans-exporter targets Prometheus scrapes (up), and those it cannot reach (down). No target at all fires JansExporterAbsent.', 'none', [
      g.target('sum(up%s)' % sel(), 'up'),
      g.target('count(up%s == 0) or vector(0)' % sel(), 'down'),
    ], width=6, thresholds=g.thresholds('green')),
    g.stat('Exporter version', 'Versions and revisions of jans-exporter running, with how many targets run each.', 'none', [
      g.target('count by (version, revision) (jans_exporter_build_info%s)' % sel(), '{{version}} ({{revision}})'),
    ], width=8, textMode='value_and_name'),

    g.row('Logins'),
    g.timeseries('Logins', 'Interactive user logins per second by outcome, from the server log (jans-auth.log) Authenticator lines. Zero when only the audit log is followed: a wrong password writes no audit record.', 'reqps', [
      g.target('sum by (outcome) (%s)' % rate('jans_authentications_total', 'kind="user"'), '{{outcome}}'),
    ]),
    g.ratio('Login failure ratio', 'Share of interactive logins that failed; the dashed line is where JansAuthenticationFailureRatioHigh fires (with at least %d logins in 5 minutes).' % c.ratioMinEvents, [
      g.target('sum(%s) / sum(%s)' % [rate('jans_authentications_total', 'kind="user",outcome="failure"'), rate('jans_authentications_total', 'kind="user"')], 'failed'),
    ], c.loginFailureRatio),
    g.timeseries('Authentications by kind', 'Authenticator lines per second by kind and outcome: user (interactive logins), service (non-interactive checks), client (client authentication at the token endpoint), unknown (older builds, user or client).', 'ops', [
      g.target('sum by (kind, outcome) (%s)' % rate('jans_authentications_total'), '{{kind}} {{outcome}}'),
    ], width=24),

    g.row('Authorizations'),
    g.timeseries('Authorization requests', 'Authorization requests per second by what their USER_AUTHORIZATION records mean: success (code or token issued), interaction (a redirect to the login or consent page, two identical records counted once; healthy), error (rejected).', 'reqps', [
      g.target('sum by (outcome) (%s)' % rate('jans_authorization_requests_total'), '{{outcome}}'),
    ]),
    g.ratio('Authorization error ratio', 'Share of authorization requests rejected; the dashed line is where JansAuthorizationErrorRatioHigh fires.', [
      g.target('sum(%s) / sum(%s)' % [rate('jans_authorization_requests_total', 'outcome="error"'), rate('jans_authorization_requests_total')], 'rejected'),
    ], c.authorizationErrorRatio),
    g.timeseries('Audit events by action', 'Audit records per second by action and outcome, as the audit log writes them (its outcome flag, not what happened: see the panels above).', 'ops', [
      g.target('sum by (action, outcome) (%s)' % rate('jans_audit_events_total'), '{{action}} {{outcome}}'),
    ], width=24),

    g.row('Tokens'),
    g.timeseries('Token requests: user vs machine', 'TOKEN_REQUEST audit records per second: user (a username is present) versus machine-to-machine (client credentials), by outcome.', 'reqps', [
      g.target('sum by (kind, outcome) (%s)' % rate('jans_token_requests_total'), '{{kind}} {{outcome}}'),
    ]),
    g.ratio('User token request failure ratio', 'Share of token requests for users that failed; the dashed line is where JansTokenRequestFailureRatioHigh fires. Device-code and CIBA polls are machine traffic and not in it.', [
      g.target('sum(%s) / sum(%s)' % [rate('jans_token_requests_total', 'kind="user",outcome="failure"'), rate('jans_token_requests_total', 'kind="user"')], 'failed'),
    ], c.tokenRequestFailureRatio),
    g.timeseries('Tokens issued by grant type', "Tokens issued per second by grant type, from the increases of the stat endpoint's monthly counts (one copy per deployment).", 'ops', [
      g.target(polled('grant_type', rate('jans_tokens_issued_total')), '{{grant_type}}'),
    ]),
    g.timeseries('Tokens issued by token type', 'Tokens issued per second by token type (access, id, refresh, UMA), one copy per deployment.', 'ops', [
      g.target(polled('token_type', rate('jans_tokens_issued_total')), '{{token_type}}'),
    ]),
    g.bars('Tokens issued per month', "Tokens issued in each month, as the stat endpoint counts them (cumulative within the month), by grant type: the billing figure, per month rather than as a rate.", 'short', [
      g.target(once('month, grant_type', 'jans_upstream_tokens%s' % sel()), '{{month}} {{grant_type}}'),
    ]),

    g.row('Active users'),
    g.stat('Active users now', 'Distinct users active in the current UTC day, ISO week and month, from the logs (HyperLogLog, about 1 % error): across every replica when the sidecars sync through Redis (cluster.redis_url), else the largest pod, a lower bound.', 'short', [
      g.target(g.unionOr('period', 'jans_cluster_active_users', 'jans_active_users', sel()), '{{period}}'),
    ], width=8, height=8, textMode='value_and_name'),
    g.bars('Monthly active users (sidecars)', 'Distinct active users per UTC month from the logs (retained months): across every replica with a cluster configured, else the largest pod.', 'short', [
      g.target(g.unionOr('month', 'jans_cluster_monthly_active_users', 'jans_monthly_active_users', sel()), '{{month}}'),
    ], width=8),
    g.bars('Monthly active users (stat endpoint)', "Monthly active users as the auth server's stat endpoint reports them for the whole cluster (Janssen caches it for an hour).", 'short', [
      g.target(once('month', 'jans_upstream_monthly_active_users%s' % sel()), '{{month}}'),
    ], width=8),

    // An Okta org's System Log, when okta.org_url is set: one copy per org (max across
    // the exporters that poll it, should several).
    g.row('Okta'),
    g.stat('Okta active users now', 'Distinct Okta users with a successful grant in a user-based flow of a custom authorization server in the current UTC day, ISO week and month, from the System Log (okta.org_url; empty without it): API Access Management\'s MAU as its own queries count it.', 'short', [
      g.target(once('period', 'jans_okta_active_users%s' % sel()), '{{period}}'),
    ], width=8, height=8, textMode='value_and_name'),
    g.bars('Okta monthly active users', 'Distinct Okta users of user-based flows per UTC month (retained months), the billed figure.', 'short', [
      g.target(once('month', 'jans_okta_monthly_active_users%s' % sel()), '{{month}}'),
    ], width=8),
    g.timeseries('Okta M2M tokens', 'Access tokens issued per second to client-credentials clients by Okta custom authorization servers, by server id (the largest; the rest other).', 'ops', [
      g.target(once('authorization_server', rate('jans_okta_m2m_tokens_total')), '{{authorization_server}}'),
    ], width=8),

    g.row('FIDO2'),
    g.timeseries('Passkey ceremonies', 'FIDO2 registrations and authentications per second by status, from the FIDO2 metrics API (details: the FIDO2 dashboard).', 'ops', [
      g.target(polled('operation, status', rate('jans_fido2_operations_total')), '{{operation}} {{status}}'),
    ]),
    g.stat('Passkey active users', 'Distinct users with a successful passkey ceremony in the current UTC day, ISO week and month: the union in Redis with a cluster (each poller adds the users it saw), else the largest pod.', 'short', [
      g.target(g.unionOr('period', 'jans_cluster_fido2_active_users', 'jans_fido2_active_users', sel()), '{{period}}'),
    ], width=12, height=8, textMode='value_and_name'),

    g.row('Upstream'),
    g.stat('Auth server endpoints', 'Whether the last call of each polled endpoint answered usefully (any pod failing shows down).', 'none', [
      g.target('min by (endpoint) (jans_upstream_up%s)' % sel(), '{{endpoint}}'),
    ], width=8, height=8, mappings=g.upDown('up', 'down'), textMode='value_and_name'),
    g.timeseries('Server log errors and warnings', 'Events per second of the auth server log at WARN, ERROR and FATAL (no message text is kept; read jans-auth.log for them).', 'ops', [
      g.target('sum by (level) (%s)' % rate('jans_server_log_messages_total', 'level=~"WARN|ERROR|FATAL"'), '{{level}}'),
    ], width=16),

    g.row('Exporter'),
    g.stat('Log files followed', 'Files the sidecars follow; 0 fires JansExporterNoLogFollowed (a wrong path, or audit logging off). Details: the jans-exporter health dashboard.', 'none', [
      g.target('min(jans_exporter_log_files%s)' % sel(), 'fewest on a pod'),
    ], width=8, thresholds=g.thresholds('red', [[1, 'green']])),
    g.stat('Newest record', 'Age of the newest record read, on the stalest pod: hours without a record mean no traffic or logs written elsewhere (JansExporterNoRecords).', 's', [
      g.target('time() - min(jans_exporter_last_record_timestamp_seconds%s)' % sel(), 'age'),
    ], width=8, thresholds=g.thresholds('green', [[3600, 'yellow'], [10800, 'red']])),
    g.timeseries('Records read', 'Records read per second by log format.', 'ops', [
      g.target('sum by (format) (%s)' % rate('jans_exporter_records_total'), '{{format}}'),
    ], width=8),
  ])
