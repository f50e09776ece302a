"""Renders the mixin (mixin/) into the files we ship, or checks that they match.

    python scripts/mixin.py generate   # writes the files
    python scripts/mixin.py check      # exit 1 and name the files that drifted

Run through scripts/mixin.sh, which provides the pinned jsonnet evaluator.
"""
import json
import os
import sys

import _jsonnet
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATED = "# Generated from mixin/ by scripts/mixin.sh generate; do not edit (tests/mixin.rs).\n"

# Everything the mixin renders, in one evaluation; written out below (jsonnet sorts
# object keys, so the output is stable).
PROGRAM = r"""
local mixin = import 'mixin/mixin.libsonnet';
{
  groups: mixin.prometheusAlerts.groups + mixin.prometheusRules.groups,
  dashboards: mixin.grafanaDashboards,
}
"""


class Dumper(yaml.SafeDumper):
    """Lists indented under their key; multi-line strings as literal blocks."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _str(dumper, text):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


Dumper.add_representer(str, _str)


def to_yaml(value):
    return yaml.dump(value, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)


def render():
    out = json.loads(_jsonnet.evaluate_snippet("render", PROGRAM, jpathdir=[ROOT]))
    groups = out["groups"]
    files = {
        "alerts/jans-exporter.rules.yml": GENERATED + to_yaml({"groups": groups}),
        "examples/kubernetes/prometheusrule.yaml": GENERATED
        + "# kube-prometheus-stack only picks up rules carrying its `release` label.\n"
        + to_yaml(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": {
                    "name": "jans-exporter",
                    "labels": {"app.kubernetes.io/name": "jans-exporter", "release": "kube-prometheus-stack"},
                },
                "spec": {"groups": groups},
            }
        ),
    }
    dashboards = out["dashboards"]
    for name, dashboard in sorted(dashboards.items()):
        files["dashboards/" + name] = json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"
    # The Grafana sidecar's ConfigMap: every dashboard under the label it watches.
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "jans-exporter-dashboards",
            "labels": {"app.kubernetes.io/name": "jans-exporter", "grafana_dashboard": "1"},
            "annotations": {"grafana_folder": "Janssen"},
        },
        "data": {name: json.dumps(d, indent=2, ensure_ascii=False) + "\n" for name, d in sorted(dashboards.items())},
    }
    files["examples/kubernetes/grafana-dashboards.yaml"] = (
        GENERATED
        + "# For the Grafana sidecar of kube-prometheus-stack (sidecar.dashboards.enabled), which\n"
        + "# loads every ConfigMap labelled grafana_dashboard into the folder named below.\n"
        + to_yaml(configmap)
    )
    return files


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    files = render()
    if mode == "generate":
        for path, text in files.items():
            with open(os.path.join(ROOT, path), "w", encoding="utf-8") as f:
                f.write(text)
        print("wrote " + ", ".join(sorted(files)))
        return 0
    drifted = []
    for path, text in sorted(files.items()):
        try:
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            drifted.append(path)
    shipped = {"dashboards/" + n for n in os.listdir(os.path.join(ROOT, "dashboards")) if n.endswith(".json")}
    extra = sorted(shipped - set(files))
    for path in drifted:
        print("drift: %s differs from what mixin/ renders" % path)
    for path in extra:
        print("drift: %s is not rendered by mixin/" % path)
    if drifted or extra:
        print("run scripts/mixin.sh generate")
        return 1
    print("mixin: %d files match" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
