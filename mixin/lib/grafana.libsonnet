// A few Grafana building blocks, enough for our dashboards without a vendored
// library: panels, rows, the variables, and a layout that places panels row by row.
{
  datasource:: { type: 'prometheus', uid: '${datasource}' },

  // The label matchers every query carries, from the dashboard's variables.
  selector(c):: '%s=~"$cluster",job=~"$job",namespace=~"$namespace",instance=~"$instance"' % c.clusterLabel,

  // A family polled from a cluster-wide API (the stat endpoint, FIDO2), by `by`,
  // counted once per deployment: every sidecar polls it without a cluster, one at a
  // time with one (jans_upstream_poller_leader), so the sum over pods divided by the
  // number polling is right either way. `expr` is a rate or an increase.
  polled(c, by, expr, sel)::
    'sum by (%(by)s) (sum by (%(cl)s, namespace, %(by)s) (%(e)s) / on (%(cl)s, namespace) group_left count by (%(cl)s, namespace) (jans_upstream_poller_leader%(sel)s == 1))' % { by: by, cl: c.clusterLabel, e: expr, sel: sel },

  // The cluster-wide union when the sidecars sync through Redis, else the largest
  // pod's own figure (a lower bound), by `by`.
  unionOr(by, cluster, perPod, sel)::
    'max by (%(by)s) (%(c)s%(sel)s) or max by (%(by)s) (%(l)s%(sel)s)' % { by: by, c: cluster, l: perPod, sel: sel },

  target(expr, legend='', instant=false):: {
    expr: expr,
    legendFormat: legend,
    datasource: $.datasource,
    [if instant then 'instant']: true,
    [if instant then 'range']: false,
  },

  // Thresholds as Grafana wants them: a base colour, then [value, colour] steps.
  thresholds(base, steps=[]):: {
    mode: 'absolute',
    steps: [{ color: base, value: null }] + [{ color: s[1], value: s[0] } for s in steps],
  },

  // 1 is good, 0 is bad: for health gauges.
  upDown(up='up', down='down'):: [{
    type: 'value',
    options: {
      '0': { text: down, color: 'red', index: 0 },
      '1': { text: up, color: 'green', index: 1 },
    },
  }],

  panel(type, title, description, unit, targets, width=12, height=8):: {
    type: type,
    title: title,
    description: description,
    datasource: $.datasource,
    fieldConfig: { defaults: { unit: unit }, overrides: [] },
    options: {},
    targets: std.mapWithIndex(function(i, t) t { refId: std.char(65 + i) }, targets),
    width:: width,
    height:: height,
  },

  timeseries(title, description, unit, targets, width=12, height=8)::
    $.panel('timeseries', title, description, unit, targets, width, height) {
      options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi', sort: 'desc' } },
    },

  // A ratio against a threshold, drawn as a dashed line where alerts fire.
  ratio(title, description, targets, threshold, width=12, height=8)::
    $.timeseries(title, description, 'percentunit', targets, width, height) {
      fieldConfig+: { defaults+: {
        min: 0,
        max: 1,
        thresholds: $.thresholds('green', [[std.parseJson(threshold), 'red']]),
        custom: { thresholdsStyle: { mode: 'dashed' } },
      } },
    },

  stat(title, description, unit, targets, width=6, height=5, thresholds=null, mappings=[], textMode='auto')::
    $.panel('stat', title, description, unit, targets, width, height) {
      fieldConfig+: { defaults+: {
        [if thresholds != null then 'thresholds']: thresholds,
        mappings: mappings,
        color: { mode: if thresholds != null || mappings != [] then 'thresholds' else 'fixed', fixedColor: 'blue' },
      } },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'background',
        graphMode: 'none',
        textMode: textMode,
        justifyMode: 'auto',
        orientation: 'auto',
      },
    },

  // One bar per series, from an instant query: figures per month.
  bars(title, description, unit, targets, width=12, height=8)::
    $.panel('bargauge', title, description, unit, [t { instant: true, range: false } for t in targets], width, height) {
      fieldConfig+: { defaults+: { min: 0, color: { mode: 'continuous-BlPu' } } },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        orientation: 'horizontal',
        displayMode: 'gradient',
        showUnfilled: true,
        valueMode: 'color',
      },
    },

  heatmap(title, description, unit, targets, width=12, height=8)::
    $.panel('heatmap', title, description, unit, [t { format: 'heatmap' } for t in targets], width, height) {
      options: { calculate: false, yAxis: { unit: unit }, cellGap: 1, color: { mode: 'scheme', scheme: 'Spectral' } },
    },

  row(title):: { type: 'row', title: title, collapsed: false, panels: [], width:: 24, height:: 1 },

  // Places panels left to right, wrapping at 24 columns; a row starts a new line.
  layout(panels)::
    local step(acc, p) =
      local wrap = p.type == 'row' || acc.x + p.width > 24;
      local x = if wrap then 0 else acc.x;
      local y = if wrap then acc.y + acc.lineHeight else acc.y;
      {
        x: if p.type == 'row' then 0 else x + p.width,
        y: if p.type == 'row' then y + 1 else y,
        lineHeight: if p.type == 'row' then 0 else if wrap then p.height else std.max(acc.lineHeight, p.height),
        out: acc.out + [p { id: std.length(acc.out) + 1, gridPos: { x: x, y: y, w: p.width, h: p.height } }],
      };
    std.foldl(step, panels, { x: 0, y: 0, lineHeight: 0, out: [] }).out,

  local query(name, label, q) = {
    name: name,
    label: label,
    type: 'query',
    datasource: $.datasource,
    query: { query: q, refId: name },
    definition: q,
    includeAll: true,
    allValue: '.*',
    multi: true,
    refresh: 2,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    sort: 1,
  },

  // No `${DS_...}` input anywhere: the datasource variable picks the default
  // Prometheus, so the same file works imported by hand and provisioned from disk.
  variables(c):: [
    { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1 },
    query('cluster', 'Cluster', 'label_values(jans_exporter_build_info, %s)' % c.clusterLabel),
    query('job', 'Job', 'label_values(jans_exporter_build_info{%s=~"$cluster"}, job)' % c.clusterLabel),
    query('namespace', 'Namespace', 'label_values(jans_exporter_build_info{%s=~"$cluster",job=~"$job"}, namespace)' % c.clusterLabel),
    query('instance', 'Instance', 'label_values(jans_exporter_build_info{%s=~"$cluster",job=~"$job",namespace=~"$namespace"}, instance)' % c.clusterLabel),
  ],

  dashboard(c, uid, title, description, panels):: {
    local laid = $.layout(panels),
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: c.grafanaMinVersion },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
    ] + [
      { type: 'panel', id: t, name: t, version: '' }
      for t in std.set([p.type for p in laid if p.type != 'row'])
    ],
    uid: uid,
    title: title,
    description: description,
    tags: c.dashboardTags,
    timezone: c.dashboardTimezone,
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    refresh: c.dashboardRefresh,
    time: { from: 'now-6h', to: 'now' },
    links: [{ title: 'jans-exporter dashboards', type: 'dashboards', tags: c.dashboardTags, asDropdown: true, includeVars: true, keepTime: true }],
    templating: { list: $.variables(c) },
    annotations: { list: [] },
    panels: laid,
  },
}
