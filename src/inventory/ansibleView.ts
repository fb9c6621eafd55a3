import type { Inventory, InventoryHost } from "./load.js";
import { isSecretName } from "./usedVars.js";

/**
 * What `ansible-inventory --list | --host | --graph` prints for the same inventory, so users can
 * check what provision sees against Ansible, and tests can use ansible-inventory as the oracle.
 * Vars are merged as Ansible merges them (a later layer replaces a whole var); secrets are masked.
 */

export const REDACTED = "<redacted: provision never prints secrets>";

export function hostVars(host: InventoryHost): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of host.layers) Object.assign(out, layer.vars);
  for (const key of Object.keys(out)) if (isSecretName(key) && typeof out[key] === "string") out[key] = REDACTED;
  return out;
}

export function listJson(inventory: Inventory): string {
  const result: Record<string, unknown> = {};
  const seen = new Set<string>(["all"]);
  const format = (name: string) => {
    const g = inventory.groups.get(name)!;
    const entry: { hosts?: string[]; children?: string[] } = {};
    if (name !== "all" && g.hosts.length > 0) entry.hosts = [...g.hosts];
    if (g.children.length > 0) entry.children = [...g.children];
    if (entry.hosts || entry.children) result[name] = entry;
    for (const child of g.children) {
      if (seen.has(child)) continue;
      seen.add(child);
      format(child);
    }
  };
  format("all");
  const hostvars: Record<string, unknown> = {};
  for (const host of inventory.hosts) {
    const vars = hostVars(host);
    if (Object.keys(vars).length > 0) hostvars[host.name] = vars;
  }
  result._meta = { hostvars };
  return pythonJson(result);
}

export function hostJson(inventory: Inventory, name: string): string | null {
  const host = inventory.hosts.find((h) => h.name === name);
  return host ? pythonJson(hostVars(host)) : null;
}

/** `--graph [group]`: groups as `@name:`, children first, then hosts, indented with `  |--`. */
export function graph(inventory: Inventory, start = "all"): string | null {
  if (!inventory.groups.has(start)) return null;
  const lines: string[] = [];
  const line = (text: string, depth: number) => lines.push(depth === 0 ? text : `${"  |".repeat(depth)}--${text}`);
  const walk = (name: string, depth: number) => {
    const g = inventory.groups.get(name)!;
    line(`@${name}:`, depth);
    for (const child of g.children) walk(child, depth + 1);
    if (name !== "all") for (const h of g.hosts) line(h, depth + 1);
  };
  walk(start, 0);
  return lines.join("\n");
}

/** Python's json.dumps(sort_keys=True, indent=4, ensure_ascii=False), as ansible-inventory prints. */
export function pythonJson(value: unknown, depth = 0): string {
  if (value !== null && typeof value === "object" && "toJSON" in value && typeof value.toJSON === "function") return pythonJson(value.toJSON(), depth);
  const pad = " ".repeat(4 * (depth + 1));
  const end = " ".repeat(4 * depth);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[\n${value.map((v) => pad + pythonJson(v, depth + 1)).join(",\n")}\n${end}]`;
  }
  if (value !== null && typeof value === "object") {
    // Sorted by code point as Python sorts; a plain object would put integer-like keys first.
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort(codepointOrder);
    if (keys.length === 0) return "{}";
    return `{\n${keys.map((k) => `${pad}${JSON.stringify(k)}: ${pythonJson(obj[k], depth + 1)}`).join(",\n")}\n${end}}`;
  }
  if (value === undefined) return "null";
  if (typeof value === "number" && !Number.isFinite(value)) return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
  return JSON.stringify(value);
}

function codepointOrder(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
