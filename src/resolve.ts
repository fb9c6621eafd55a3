import { homedir, userInfo } from "node:os";
import { isAbsolute, join, dirname } from "node:path";
import type { ConfigProblem } from "./config/errors.js";
import { formatKeyPath, type KeyPath, type YamlFile } from "./config/yamlFile.js";
import { CONNECTION_VARS } from "./config/schemas.js";
import type { Inventory, InventoryHost, VarLayer } from "./inventory/load.js";
import { LimitError, selectHosts } from "./inventory/limit.js";
import type { Play } from "./playbook.js";
import type { AnyRole, InventoryHints } from "./role.js";
import { roleVarName } from "./roles.js";

/** Where a param's value came from: `provision explain` prints this, errors point at it. */
export interface ParamSource {
  kind: "default" | "group" | "host" | "playbook";
  /** Group or host name for group/host values. */
  name?: string;
  file: string;
  line: number;
  col: number;
  keyPath: string;
}

export interface ResolvedRole {
  role: AnyRole;
  params: Record<string, unknown>;
  sources: Record<string, ParamSource>;
}

export interface ConnectionSettings {
  host: string;
  port: number;
  user: string;
  privateKeyFile: string | undefined;
}

export interface ResolvedHost {
  name: string;
  connection: ConnectionSettings;
  become: boolean;
  roles: ResolvedRole[];
  hints: InventoryHints;
}

/**
 * Which roles apply to which hosts, with which params: role default < group vars < host vars <
 * playbook params. Appends every problem; returns hosts in inventory order.
 */
export function resolveTargets(
  inventory: Inventory,
  plays: Play[],
  limit: string | undefined,
  problems: ConfigProblem[],
): ResolvedHost[] {
  let limited: Set<string> | null = null;
  if (limit !== undefined) {
    try {
      limited = new Set(selectHosts(limit, inventory.universe));
    } catch (err) {
      if (!(err instanceof LimitError)) throw err;
      // Keep resolving every host, so the role checks below are reported in the same run.
      problems.push({ file: "--limit", line: 1, col: 1, keyPath: "", severity: "error", problem: err.problem, fix: err.fix });
    }
  }
  const rolesByHost = new Map<string, Array<{ play: Play; index: number }>>();
  for (const play of plays) {
    let selected: string[];
    try {
      selected = selectHosts(play.hosts, inventory.universe);
    } catch (err) {
      if (!(err instanceof LimitError)) throw err;
      problems.push({
        file: play.source.file, ...play.source.locate([play.index, "hosts"]), keyPath: formatKeyPath([play.index, "hosts"]),
        severity: "error", problem: err.problem, fix: err.fix,
      });
      continue;
    }
    for (const host of selected) {
      if (limited && !limited.has(host)) continue;
      const list = rolesByHost.get(host) ?? [];
      play.roles.forEach((_, index) => list.push({ play, index }));
      rolesByHost.set(host, list);
    }
  }

  const resolved: ResolvedHost[] = [];
  for (const host of inventory.hosts) {
    const entries = rolesByHost.get(host.name);
    if (!entries) continue;
    const seen = new Map<string, Play>();
    const roles: ResolvedRole[] = [];
    let become: boolean | undefined;
    for (const { play, index } of entries) {
      const playRole = play.roles[index]!;
      const earlier = seen.get(playRole.role.name);
      if (earlier) {
        problems.push({
          file: play.source.file, ...play.source.locate(playRole.path), keyPath: formatKeyPath(playRole.path), severity: "error",
          problem: `role ${playRole.role.name} applies to host ${host.name} twice (plays "${earlier.name}" and "${play.name}")`,
          fix: "apply each role to a host from one play only",
        });
        continue;
      }
      seen.set(playRole.role.name, play);
      if (play.become !== undefined) become = play.become;
      const r = mergeParams(playRole.role, host.layers, playRole.params, play.source, playRole.path);
      for (const p of playRole.role.validate?.(r.params) ?? []) {
        const at = r.sources[p.param]!;
        problems.push({ file: at.file, line: at.line, col: at.col, keyPath: at.keyPath, severity: p.severity, problem: `${p.problem} (host ${host.name})`, fix: p.fix });
      }
      roles.push(r);
    }
    const vars = mergedVars(host.layers);
    if (vars.ansible_host === undefined) checkNameAsAddress(host, problems);
    const becomeVar = vars.ansible_become as boolean | undefined;
    resolved.push({
      name: host.name,
      become: becomeVar ?? become ?? false,
      roles,
      connection: connectionFor(host.name, vars, inventory.file),
      hints: hintsFrom(vars),
    });
  }
  return dedupe(problems, resolved);
}

function mergeParams(role: AnyRole, layers: VarLayer[], playParams: Record<string, unknown>, playbook: YamlFile, rolePath: KeyPath): ResolvedRole {
  const varName = roleVarName(role.name);
  const params: Record<string, unknown> = {};
  const sources: Record<string, ParamSource> = {};
  const defaultAt = { file: playbook.file, ...playbook.locate(rolePath), keyPath: formatKeyPath(rolePath) };
  for (const [key, schema] of Object.entries(role.schema.properties)) {
    params[key] = structuredClone(schema.default);
    sources[key] = { kind: "default", ...defaultAt };
  }
  for (const layer of layers) {
    const block = layer.vars[varName] as Record<string, unknown> | null | undefined;
    if (!block) continue;
    for (const [key, value] of Object.entries(block)) {
      const path = [...layer.basePath, varName, key];
      params[key] = value;
      sources[key] = { kind: layer.kind, name: layer.name, file: layer.source.file, ...layer.source.locate(path), keyPath: formatKeyPath(path) };
    }
  }
  for (const [key, value] of Object.entries(playParams)) {
    const path = [...rolePath, "params", key];
    params[key] = value;
    sources[key] = { kind: "playbook", file: playbook.file, ...playbook.locate(path), keyPath: formatKeyPath(path) };
  }
  return { role, params, sources };
}

const ADDRESS = CONNECTION_VARS.ansible_host;

/** Without ansible_host the name is what ssh2 connects to and known_hosts records, so it must be an address like ansible_host. */
function checkNameAsAddress(host: InventoryHost, problems: ConfigProblem[]): void {
  if (host.name.length <= ADDRESS.maxLength && new RegExp(ADDRESS.pattern, "u").test(host.name)) return;
  const { source, path } = host.definedAt;
  problems.push({
    file: source.file, ...source.locate(path, "key"), keyPath: formatKeyPath(path), severity: "error",
    problem: `host ${JSON.stringify(host.name.length > 80 ? `${host.name.slice(0, 80)}…` : host.name)} has no ansible_host, so its name is the address to connect to, and it is not a host name or IP address`,
    fix: "set ansible_host to the host's address, or name it by its address (letters, digits and . : _ - only, at most 253 characters)",
  });
}

function hintsFrom(vars: Record<string, unknown>): InventoryHints {
  const port = vars.ansible_port as number | undefined;
  const listen = (vars.listen_ports as number[] | undefined) ?? [];
  const ports = port !== undefined && port !== 22 ? [...listen, port] : listen;
  return {
    listenPorts: [...new Set(ports)].sort((a, b) => a - b),
    memTotalMb: (vars.ansible_memtotal_mb as number | undefined) ?? null,
  };
}

function mergedVars(layers: VarLayer[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) Object.assign(out, layer.vars);
  return out;
}

function connectionFor(name: string, vars: Record<string, unknown>, inventoryFile: string): ConnectionSettings {
  const keyFile = vars.ansible_ssh_private_key_file as string | undefined;
  return {
    host: (vars.ansible_host as string | undefined) ?? name,
    port: (vars.ansible_port as number | undefined) ?? 22,
    user: (vars.ansible_user as string | undefined) ?? defaultUser(),
    privateKeyFile: keyFile === undefined ? undefined : expandPath(keyFile, inventoryFile),
  };
}

/** Ansible resolves relative key paths from where it runs; we resolve them from the inventory so a repo works from any directory. */
function expandPath(p: string, inventoryFile: string): string {
  if (p.startsWith("~/")) return join(homedir(), p.slice(2));
  return isAbsolute(p) ? p : join(dirname(inventoryFile), p);
}

function defaultUser(): string {
  try {
    return userInfo().username;
  } catch {
    return "root";
  }
}

/** The same cross-field problem found on many hosts is reported once per location. */
function dedupe(problems: ConfigProblem[], resolved: ResolvedHost[]): ResolvedHost[] {
  const seen = new Set<string>();
  for (let i = problems.length - 1; i >= 0; i--) {
    const p = problems[i]!;
    const id = `${p.file}:${p.line}:${p.col}:${p.problem.replace(/ \(host [^)]+\)$/, "")}`;
    if (seen.has(id)) problems.splice(i, 1);
    else seen.add(id);
  }
  return resolved;
}
