// Recording rules. None yet: every alert and panel is cheap enough to evaluate from the
// raw series (a few dozen per pod), and a rule Prometheus must run for a dashboard to
// work is one more thing to deploy. Add groups here; they are written to
// alerts/jans-exporter.rules.yml with the alerts.
{
  prometheusRules+:: {
    groups+: [],
  },
}
