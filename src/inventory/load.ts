import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { ConfigProblem } from "../config/errors.js";
import { INVENTORY_SCHEMA, VARS_SCHEMA } from "../config/schemas.js";
import { refusedKey, validateAgainstSchema } from "../config/validate.js";
import { formatKeyPath, loadYamlFile, type KeyPath, type YamlFile } from "../config/yamlFile.js";
import { expandHostPattern, hasHostRange, HostPatternError } from "./hostRange.js";
import type { HostUniverse } from "./limit.js";

/** One mapping of variables and where it was written, so every value can say where it came from. */
export interface VarLayer {
  kind: "group" | "host";
  /** Group or host name the layer belongs to. */
  name: string;
  vars: Record<string, unknown>;
  source: YamlFile;
  basePath: KeyPath;
}

export interface InventoryHost {
  name: string;
  /** Where the host is first listed under a `hosts:` mapping, for errors about the name itself. */
  definedAt: { source: YamlFile; path: KeyPath };
  /** Variable layers in precedence order, lowest first: `all`, parent groups, child groups, then the host's own. */
  layers: VarLayer[];
  groups: string[];
}

export interface Inventory {
  file: string;
  hosts: InventoryHost[];
  universe: HostUniverse;
}

interface GroupInfo {
  name: string;
  children: Set<string>;
  hosts: string[];
  layers: VarLayer[];
}

/** Reads an Ansible YAML inventory and its group_vars/ and host_vars/; appends every problem found. */
export function loadInventory(file: string, problems: ConfigProblem[]): Inventory | null {
  const yaml = loadYamlFile(file, problems);
  if (!yaml) return null;
  const refused = refusedTopLevelKeys(yaml, problems);
  const groupsOnly = refused.length === 0 ? yaml.data : Object.fromEntries(Object.entries(yaml.data as object).filter(([k]) => !refused.includes(k)));
  if (!validateAgainstSchema(INVENTORY_SCHEMA, groupsOnly, yaml, [], problems) || refused.length > 0) {
    // Still validate group_vars/ and host_vars/ so every file's problems are reported in one go.
    loadVarsDir(join(dirname(file), "group_vars"), "group", null, problems, () => undefined);
    loadVarsDir(join(dirname(file), "host_vars"), "host", null, problems, () => undefined);
    return null;
  }

  const groups = new Map<string, GroupInfo>();
  const hostLayers = new Map<string, VarLayer[]>();
  const hostOrder: string[] = [];
  const hostPaths = new Map<string, KeyPath>();
  const group = (name: string) => {
    let g = groups.get(name);
    if (!g) {
      g = { name, children: new Set(), hosts: [], layers: [] };
      groups.set(name, g);
    }
    return g;
  };
  group("all");

  const walkGroup = (name: string, body: unknown, path: KeyPath) => {
    const g = group(name);
    const b = (body ?? {}) as { hosts?: Record<string, unknown> | null; vars?: Record<string, unknown> | null; children?: Record<string, unknown> | null };
    if (b.vars) g.layers.push({ kind: "group", name, vars: b.vars, source: yaml, basePath: [...path, "vars"] });
    for (const [pattern, hostVars] of Object.entries(b.hosts ?? {})) {
      const hostPath = [...path, "hosts", pattern];
      for (const host of expandHosts(pattern, yaml, hostPath, problems)) {
        if (!hostLayers.has(host)) {
          hostLayers.set(host, []);
          hostOrder.push(host);
          hostPaths.set(host, hostPath);
        }
        if (!g.hosts.includes(host)) g.hosts.push(host);
        if (hostVars) hostLayers.get(host)!.push({ kind: "host", name: host, vars: hostVars as Record<string, unknown>, source: yaml, basePath: hostPath });
      }
    }
    for (const [child, childBody] of Object.entries(b.children ?? {})) {
      if (child === name) {
        const at = [...path, "children", child];
        problems.push({
          file, ...yaml.locate(at, "key"), keyPath: formatKeyPath(at), severity: "error",
          problem: `group "${name}" is its own child`, fix: "remove it from its own children",
        });
        continue;
      }
      g.children.add(child);
      walkGroup(child, childBody, [...path, "children", child]);
    }
  };
  for (const [name, body] of Object.entries(yaml.data as Record<string, unknown>)) {
    walkGroup(name, body, [name]);
    if (name !== "all") group("all").children.add(name);
  }
  const cycle = findCycle(groups);
  if (cycle) {
    problems.push({
      file, line: 1, col: 1, keyPath: "", severity: "error",
      problem: `groups form a cycle: ${cycle.join(" → ")}`, fix: "remove one of these children links",
    });
    return null;
  }

  loadVarsDir(join(dirname(file), "group_vars"), "group", new Set(groups.keys()), problems, (name, layer) => group(name).layers.push(layer));
  loadVarsDir(join(dirname(file), "host_vars"), "host", new Set(hostOrder), problems, (name, layer) => hostLayers.get(name)?.push(layer));

  const depth = groupDepths(groups);
  const members = groupMembers(groups);
  const hosts: InventoryHost[] = hostOrder.map((name) => {
    const hostGroups = [...groups.keys()]
      .filter((g) => members.get(g)!.has(name))
      .sort((a, b) => (depth.get(a) ?? 0) - (depth.get(b) ?? 0) || a.localeCompare(b));
    const layers = [...hostGroups.flatMap((g) => groups.get(g)!.layers), ...(hostLayers.get(name) ?? [])];
    return { name, definedAt: { source: yaml, path: hostPaths.get(name)! }, layers, groups: hostGroups };
  });
  const universe: HostUniverse = {
    hosts: hostOrder,
    groups: Object.fromEntries([...groups.keys()].map((g) => [g, hostOrder.filter((h) => members.get(g)!.has(h))])),
  };
  universe.groups.all = [...hostOrder];
  return { file, hosts, universe };
}

/** A top-level key is a group name to the schema, so refused settings written there need their own check. */
function refusedTopLevelKeys(yaml: YamlFile, problems: ConfigProblem[]): string[] {
  if (!yaml.data || typeof yaml.data !== "object" || Array.isArray(yaml.data)) return [];
  const found: string[] = [];
  for (const key of Object.keys(yaml.data)) {
    const refused = refusedKey(key);
    if (!refused) continue;
    found.push(key);
    problems.push({ file: yaml.file, ...yaml.locate([key], "key"), keyPath: key, severity: "error", ...refused });
  }
  return found;
}

function expandHosts(pattern: string, yaml: YamlFile, path: KeyPath, problems: ConfigProblem[]): string[] {
  if (!hasHostRange(pattern) && !pattern.includes("[")) return [pattern];
  try {
    return expandHostPattern(pattern);
  } catch (err) {
    if (!(err instanceof HostPatternError)) throw err;
    problems.push({
      file: yaml.file, ...yaml.locate(path, "key"), keyPath: formatKeyPath(path), severity: "error",
      problem: err.problem, fix: err.fix,
    });
    return [];
  }
}

/** group_vars/<name>.yaml (or .yml, .json, no extension) and group_vars/<name>/*.yaml, the way Ansible reads them. */
function loadVarsDir(
  dir: string,
  kind: "group" | "host",
  known: Set<string> | null,
  problems: ConfigProblem[],
  add: (name: string, layer: VarLayer) => void,
): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir).sort()) {
    if (entry.startsWith(".")) continue;
    const full = join(dir, entry);
    let isDir: boolean;
    try {
      isDir = statSync(full).isDirectory();
    } catch (err) {
      problems.push({
        file: full, line: 1, col: 1, keyPath: "", severity: "error",
        problem: `cannot read ${basename(dir)}/${entry} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        fix: "fix or remove the broken link or file",
      });
      continue;
    }
    // Ansible reads `name`, `name.yml`, `name.yaml`, `name.json`; host names often contain dots.
    const hasVarsExtension = /\.(ya?ml|json)$/.test(entry);
    const name = isDir || (known?.has(entry) ?? false) || !hasVarsExtension ? entry : entry.replace(/\.(ya?ml|json)$/, "");
    if (!isDir && !hasVarsExtension && !(known?.has(entry) ?? false)) continue; // README.md, notes.txt, …
    const files = isDir
      ? readdirSync(full).filter((f) => /\.(ya?ml|json)$/.test(f)).sort().map((f) => join(full, f))
      : [full];
    for (const f of files) {
      const yaml = loadYamlFile(f, problems);
      if (!yaml) continue;
      if (known && !known.has(name)) {
        problems.push({
          file: f, line: 1, col: 1, keyPath: "", severity: "warning",
          problem: `${basename(dir)}/${entry} names no ${kind} in the inventory, so it applies to nothing`,
          fix: `rename it after a ${kind} of the inventory, or delete it`,
        });
        continue;
      }
      if (!validateAgainstSchema(VARS_SCHEMA, yaml.data, yaml, [], problems)) continue;
      if (yaml.data) add(name, { kind, name, vars: yaml.data as Record<string, unknown>, source: yaml, basePath: [] });
    }
  }
}

function findCycle(groups: Map<string, GroupInfo>): string[] | null {
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (name: string): string[] | null => {
    if (state.get(name) === "done") return null;
    if (state.get(name) === "visiting") return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, "visiting");
    stack.push(name);
    for (const child of groups.get(name)?.children ?? []) {
      const c = visit(child);
      if (c) return c;
    }
    stack.pop();
    state.set(name, "done");
    return null;
  };
  for (const name of groups.keys()) {
    const c = visit(name);
    if (c) return c;
  }
  return null;
}

/** Distance of each group from `all` along the longest parent chain: deeper groups override shallower ones, as in Ansible. */
function groupDepths(groups: Map<string, GroupInfo>): Map<string, number> {
  const depth = new Map<string, number>([["all", 0]]);
  const visit = (name: string, d: number) => {
    if ((depth.get(name) ?? -1) >= d && name !== "all") return;
    depth.set(name, d);
    for (const child of groups.get(name)?.children ?? []) visit(child, d + 1);
  };
  visit("all", 0);
  return depth;
}

/** Every host of each group, including those of its descendant groups. */
function groupMembers(groups: Map<string, GroupInfo>): Map<string, Set<string>> {
  const memo = new Map<string, Set<string>>();
  const members = (name: string): Set<string> => {
    const cached = memo.get(name);
    if (cached) return cached;
    const g = groups.get(name);
    const set = new Set(g?.hosts ?? []);
    memo.set(name, set);
    for (const child of g?.children ?? []) for (const h of members(child)) set.add(h);
    return set;
  };
  for (const name of groups.keys()) members(name);
  memo.set("all", new Set([...groups.values()].flatMap((g) => [...members(g.name)])));
  return memo;
}
