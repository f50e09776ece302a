// Validates prometheus-operator objects (monitoring.coreos.com/v1) in the given YAML
// files against the operator's CRD schemas, as compiled by @kubernetes-models (types,
// enums, required fields). Other kinds are left to kubernetes-validate. Prints one
// line per object; exits 1 if any fails or names a kind it has no schema for.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const models = { PodMonitor, PrometheusRule, ServiceMonitor };
let failed = false;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const object = doc.toJS();
    if (!object || !String(object.apiVersion ?? "").startsWith("monitoring.coreos.com/")) continue;
    const name = `${object.kind}/${object.metadata?.name}`;
    const Model = object.apiVersion === "monitoring.coreos.com/v1" && models[object.kind];
    if (!Model) {
      console.log(`FAIL ${file} ${name}: no schema for ${object.apiVersion} ${object.kind}`);
      failed = true;
      continue;
    }
    try {
      new Model(object).validate();
      console.log(`PASS ${file} ${name}`);
    } catch (e) {
      console.log(`FAIL ${file} ${name}: ${e.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
