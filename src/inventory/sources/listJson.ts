import { fromAnsibleJson } from "../../config/ansibleValues.js";
import type { ConfigProblem } from "../../config/errors.js";
import { formatKeyPath, type KeyPath, type YamlFile } from "../../config/yamlFile.js";
import type { ParsedSource, SourceEvent } from "./model.js";

/**
 * The JSON `ansible-inventory --list` (and every dynamic inventory script) prints: groups with
 * `hosts` and `children` as lists and optional `vars`, host vars under `_meta.hostvars`. It is the
 * bridge to cloud inventories (aws_ec2, gcp_compute, azure_rm, netbox, …): render once, read here.
 */
export function isListJson(data: unknown): boolean {
  if (!isMapping(data)) return false;
  if ("_meta" in data) return true;
  return Object.values(data).some((g) => isMapping(g) && (Array.isArray(g.hosts) || Array.isArray(g.children)));
}

export function parseListJson(json: YamlFile, problems: ConfigProblem[]): ParsedSource | null {
  const before = problems.length;
  const events: SourceEvent[] = [];
  const data = json.data as Record<string, unknown>;
  const problem = (path: KeyPath, text: string, fix: string) =>
    problems.push({ file: json.file, ...json.locate(path), keyPath: formatKeyPath(path), severity: "error", problem: text, fix });
  const names = (value: unknown, path: KeyPath, what: string): string[] => {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
      problem(path, `${what} must be a list of names`, `write ["name1", "name2"], as ansible-inventory --list prints it`);
      return [];
    }
    return value as string[];
  };

  const listed = new Set<string>();
  for (const [group, body] of Object.entries(data)) {
    if (group === "_meta") continue;
    const path = [group];
    events.push({ kind: "group", name: group, at: { source: json, path } });
    // Old-style scripts print a bare list of hosts for a group.
    if (Array.isArray(body)) {
      for (const host of names(body, path, `group "${group}"`)) {
        listed.add(host);
        events.push({ kind: "host", group, name: host, at: { source: json, path } });
      }
      continue;
    }
    if (body === null) continue;
    if (!isMapping(body)) {
      problem(path, `group "${group}" must be a mapping with hosts, children or vars`, "write it as ansible-inventory --list prints groups");
      continue;
    }
    for (const host of names(body.hosts, [...path, "hosts"], `hosts of group "${group}"`)) {
      listed.add(host);
      events.push({ kind: "host", group, name: host, at: { source: json, path: [...path, "hosts"] } });
    }
    if (body.vars !== undefined && body.vars !== null) {
      if (isMapping(body.vars)) events.push({ kind: "groupVars", group, block: { vars: fromAnsibleJson(body.vars) as Record<string, unknown>, source: json, basePath: [...path, "vars"] } });
      else problem([...path, "vars"], `vars of group "${group}" must be a mapping`, "write them as a JSON object");
    }
    for (const child of names(body.children, [...path, "children"], `children of group "${group}"`)) {
      events.push({ kind: "group", name: child, at: { source: json, path: [...path, "children"] } });
      events.push({ kind: "child", parent: group, child, at: { source: json, path: [...path, "children"] } });
    }
  }
  const meta = data._meta;
  const hostvars = isMapping(meta) ? meta.hostvars : undefined;
  if (meta !== undefined && !isMapping(hostvars ?? {})) problem(["_meta", "hostvars"], "_meta.hostvars must map host names to their vars", "write it as ansible-inventory --list prints it");
  if (isMapping(hostvars)) {
    for (const [host, vars] of Object.entries(hostvars)) {
      const path = ["_meta", "hostvars", host];
      if (!isMapping(vars)) {
        problem(path, `the vars of host "${host}" must be a mapping`, "write them as a JSON object");
        continue;
      }
      if (!listed.has(host)) {
        problems.push({
          file: json.file, ...json.locate(path, "key"), keyPath: formatKeyPath(path), severity: "warning",
          problem: `host "${host}" has vars here but is in no group, so it is not in the inventory (Ansible skips it too)`,
          fix: `list it under a group's hosts, or under "ungrouped"`,
        });
        continue;
      }
      events.push({ kind: "hostVars", host, block: { vars: fromAnsibleJson(vars) as Record<string, unknown>, source: json, basePath: path } });
    }
  }
  return problems.some((p, i) => i >= before && p.severity === "error") ? null : { file: json.file, events };
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
