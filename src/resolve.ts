import { homedir } from "node:os";
import { isAbsolute, join, dirname } from "node:path";
import type { ConfigProblem } from "./config/errors.js";
import { satisfies } from "./config/validate.js";
import { formatKeyPath, type KeyPath, type YamlFile } from "./config/yamlFile.js";
import type { Inventory, InventoryHost, VarLayer } from "./inventory/load.js";
import { plain, USED_VARS, type UsedVarKey } from "./inventory/usedVars.js";
import { LimitError, selectHosts } from "./inventory/limit.js";
import type { Play } from "./playbook.js";
import type { AnyRole, InventoryHints } from "./role.js";
import { roleVarName } from "./roles.js";
import { checkSshArgs } from "./transport/sshArgs.js";

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

/**
 * What the inventory says about reaching a host. Only what it sets is set: ssh_config fills the
 * rest when the route is resolved (transport/sshConfig.ts), as with Ansible's ssh plugin.
 */
export interface ConnectionSettings {
  /** `local`: the machine provision runs on, without SSH (ansible_connection: local). */
  kind: "ssh" | "local";
  /** ansible_host, else the inventory name: the destination given to ssh. */
  host: string;
  port: number | undefined;
  user: string | undefined;
  privateKeyFile: string | undefined;
  /** ansible_ssh_common_args + ansible_ssh_extra_args, checked (transport/sshArgs.ts). */
  sshArgs: string[];
  /** Options in sshArgs only the OpenSSH client honours (the host is reached through it). */
  openSshOnlyOptions: string[];
}

/** `user@host:port` with what the inventory leaves to ssh_config shown as such. */
export function describeConnection(c: ConnectionSettings): string {
  if (c.kind === "local") return "local";
  const user = c.user === undefined ? "" : `${c.user}@`;
  const port = c.port === undefined ? "" : `:${c.port}`;
  const via = c.sshArgs.length > 0 ? ` ${c.sshArgs.join(" ")}` : "";
  return `${user}${c.host}${port}${via}`;
}

export interface ResolvedHost {
  name: string;
  connection: ConnectionSettings;
  become: boolean;
  roles: ResolvedRole[];
  hints: InventoryHints;
  /** Every group the host is in, `all` first (shared between hosts of the same groups). */
  groups: readonly string[];
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
      problems.push({
        file: "--limit",
        line: 1,
        col: 1,
        keyPath: "",
        severity: "error",
        problem: err.problem,
        fix: err.fix,
      });
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
        file: play.source.file,
        ...play.source.locate([play.index, "hosts"]),
        keyPath: formatKeyPath([play.index, "hosts"]),
        severity: "error",
        problem: err.problem,
        fix: err.fix,
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
  const merged = new MergedParams();
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
          file: play.source.file,
          ...play.source.locate(playRole.path),
          keyPath: formatKeyPath(playRole.path),
          severity: "error",
          problem: `role ${playRole.role.name} applies to host ${host.name} twice (plays "${earlier.name}" and "${play.name}")`,
          fix: "apply each role to a host from one play only",
        });
        continue;
      }
      seen.set(playRole.role.name, play);
      if (play.become !== undefined) become = play.become;
      const { resolved: r, fresh } = merged.get(play, playRole, host.layers);
      // Equal params give equal problems: reported for the first host that has them. Params that
      // break the schema were reported where they are written; the role's own checks would repeat them.
      if (fresh && satisfies(playRole.role.schema, r.params)) {
        for (const p of playRole.role.validate?.(r.params) ?? []) {
          const at = r.sources[p.param]!;
          problems.push({
            file: at.file,
            line: at.line,
            col: at.col,
            keyPath: at.keyPath,
            severity: p.severity,
            problem: `${p.problem} (host ${host.name})`,
            fix: p.fix,
          });
        }
      }
      roles.push(r);
    }
    const vars = usedVars(host.layers);
    if (vars.host === undefined && !isLocal(vars.connection?.value)) checkNameAsAddress(host, problems);
    const hostBecome = (vars.become?.value as boolean | undefined) ?? become ?? false;
    checkPrivilegeAndConnection(host.name, vars, hostBecome && roles.length > 0, problems);
    resolved.push({
      name: host.name,
      become: hostBecome,
      roles,
      connection: connectionFor(host.name, vars, inventory.file),
      hints: hintsFrom(vars),
      groups: host.groups,
    });
  }
  return dedupe(problems, resolved);
}

/**
 * A role's params depend only on the layers that hold its block; across a fleet few combinations
 * exist, so each is merged once and shared (frozen: no host may change another's params).
 */
class MergedParams {
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private readonly cache = new Map<string, ResolvedRole>();

  get(play: Play, playRole: Play["roles"][number], layers: VarLayer[]): { resolved: ResolvedRole; fresh: boolean } {
    const varName = roleVarName(playRole.role.name);
    const relevant = layers.filter((l) => l.vars[varName] !== undefined && l.vars[varName] !== null);
    const key = [this.id(playRole), ...relevant.map((l) => this.id(l))].join(",");
    const cached = this.cache.get(key);
    if (cached) return { resolved: cached, fresh: false };
    const resolved = mergeParams(playRole.role, relevant, playRole.params, play.source, playRole.path);
    deepFreeze(resolved.params);
    deepFreeze(resolved.sources);
    this.cache.set(key, resolved);
    return { resolved, fresh: true };
  }

  private id(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(o, id);
    }
    return id;
  }
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v);
}

function mergeParams(
  role: AnyRole,
  layers: VarLayer[],
  playParams: Record<string, unknown>,
  playbook: YamlFile,
  rolePath: KeyPath,
): ResolvedRole {
  const varName = roleVarName(role.name);
  const params: Record<string, unknown> = {};
  const sources: Record<string, ParamSource> = {};
  const defaultAt = { file: playbook.file, ...playbook.locate(rolePath), keyPath: formatKeyPath(rolePath) };
  for (const [key, schema] of Object.entries(role.schema.properties)) {
    params[key] = structuredClone(schema.default);
    sources[key] = { kind: "default", ...defaultAt };
  }
  for (const layer of layers) {
    const block = plain(layer.vars[varName]) as Record<string, unknown> | null | undefined;
    if (!block) continue;
    for (const [key, value] of Object.entries(block)) {
      const path = [...layer.basePath, varName, key];
      params[key] = value;
      sources[key] = {
        kind: layer.kind,
        name: layer.name,
        file: layer.source.file,
        ...layer.source.locate(path),
        keyPath: formatKeyPath(path),
      };
    }
  }
  for (const [key, value] of Object.entries(playParams)) {
    const path = [...rolePath, "params", key];
    params[key] = value;
    sources[key] = { kind: "playbook", file: playbook.file, ...playbook.locate(path), keyPath: formatKeyPath(path) };
  }
  return { role, params, sources };
}

/** A var provision uses, as the host ends up with it, and the layer that set it. */
interface UsedValue {
  value: unknown;
  name: string;
  layer: VarLayer;
}

/**
 * The vars provision uses, merged as Ansible merges them (a later layer replaces a var); where a
 * var has several names (ansible_host, ansible_ssh_host) the name Ansible's ssh plugin prefers
 * wins, wherever each was set. Values were checked per layer, so `check` only converts here.
 */
function usedVars(layers: VarLayer[]): Partial<Record<UsedVarKey, UsedValue>> {
  const last = new Map<string, { raw: unknown; layer: VarLayer }>();
  for (const layer of layers) for (const [k, v] of Object.entries(layer.vars)) last.set(k, { raw: v, layer });
  const out: Partial<Record<UsedVarKey, UsedValue>> = {};
  for (const [key, spec] of Object.entries(USED_VARS) as Array<[UsedVarKey, (typeof USED_VARS)[UsedVarKey]]>) {
    for (const name of spec.names) {
      const found = last.get(name);
      if (found === undefined || found.raw === null) continue;
      const checked = spec.check(plain(found.raw));
      if (checked.ok) out[key] = { value: checked.value, name, layer: found.layer };
    }
  }
  return out;
}

function isLocal(value: unknown): boolean {
  return value === "local" || value === "ansible.builtin.local";
}

const CONNECTIONS_OVER_SSH = [
  "ssh",
  "smart",
  "paramiko",
  "ansible.builtin.ssh",
  "ansible.builtin.paramiko_ssh",
  "paramiko_ssh",
];

/** Settings Ansible users write that provision cannot honour are refused on the hosts they reach, where they were written. */
function checkPrivilegeAndConnection(
  hostName: string,
  vars: Partial<Record<UsedVarKey, UsedValue>>,
  needsRoot: boolean,
  problems: ConfigProblem[],
): void {
  const refuse = (v: UsedValue, problem: string, fix: string) => {
    const path = [...v.layer.basePath, v.name];
    problems.push({
      file: v.layer.source.file,
      ...v.layer.source.locate(path),
      keyPath: formatKeyPath(path),
      severity: "error",
      problem: `${problem} (host ${hostName})`,
      fix,
    });
  };
  const method = vars.becomeMethod;
  if (needsRoot && method && method.value !== "sudo" && method.value !== "ansible.builtin.sudo") {
    refuse(
      method,
      `become method ${JSON.stringify(method.value)} is not supported: provision becomes root with sudo only (su would need root's password typed at a terminal; doas and others are not implemented)`,
      "set ansible_become_method: sudo for the hosts provision tunes (a host_vars/ or group_vars/ entry overrides it), or configure sudo on them",
    );
  }
  const user = vars.becomeUser;
  if (needsRoot && user && user.value !== "root") {
    refuse(
      user,
      `become user ${JSON.stringify(user.value)} cannot run provision's steps: they write /etc/sysctl.d, /etc/security and /proc/sys, which only root may`,
      "set ansible_become_user: root for these hosts, or remove it (root is the default)",
    );
  }
  const connection = vars.connection;
  if (connection && !isLocal(connection.value) && !CONNECTIONS_OVER_SSH.includes(String(connection.value))) {
    refuse(
      connection,
      `connection type ${JSON.stringify(connection.value)} is not supported: provision reaches hosts over SSH, or locally with ansible_connection: local`,
      "remove the host from provision's run (--limit '!NAME' or a play pattern), or reach it over SSH (ansible_connection: ssh)",
    );
  }
  for (const args of [vars.sshCommonArgs, vars.sshExtraArgs]) {
    if (!args) continue;
    const checked = checkSshArgs(String(args.value));
    if (!checked.ok) refuse(args, `${args.name}: ${checked.problem}`, checked.fix);
  }
}

/** Without ansible_host the name is what ssh2 connects to and known_hosts records, so it must be an address like ansible_host. */
function checkNameAsAddress(host: InventoryHost, problems: ConfigProblem[]): void {
  if (USED_VARS.host.check(host.name).ok) return;
  const { source, path } = host.definedAt;
  problems.push({
    file: source.file,
    ...source.locate(path, "key"),
    keyPath: formatKeyPath(path),
    severity: "error",
    problem: `host ${JSON.stringify(host.name.length > 80 ? `${host.name.slice(0, 80)}…` : host.name)} has no ansible_host, so its name is the address to connect to, and it is not a host name or IP address`,
    fix: "set ansible_host to the host's address, or name it by its address (letters, digits and . : _ - only, at most 253 characters)",
  });
}

function hintsFrom(vars: Partial<Record<UsedVarKey, UsedValue>>): InventoryHints {
  const port = vars.port?.value as number | undefined;
  const listen = (vars.listenPorts?.value as number[] | undefined) ?? [];
  const ports = port !== undefined && port !== 22 ? [...listen, port] : listen;
  return {
    listenPorts: [...new Set(ports)].sort((a, b) => a - b),
    memTotalMb: (vars.memTotalMb?.value as number | undefined) ?? null,
  };
}

function connectionFor(
  name: string,
  vars: Partial<Record<UsedVarKey, UsedValue>>,
  inventoryFile: string,
): ConnectionSettings {
  const keyFile = vars.privateKeyFile?.value as string | undefined;
  const sshArgs: string[] = [];
  const openSshOnlyOptions: string[] = [];
  for (const args of [vars.sshCommonArgs, vars.sshExtraArgs]) {
    const checked = args ? checkSshArgs(String(args.value)) : undefined;
    if (checked?.ok) {
      sshArgs.push(...checked.args);
      openSshOnlyOptions.push(...checked.openSshOnly);
    }
  }
  return {
    kind: isLocal(vars.connection?.value) ? "local" : "ssh",
    host: (vars.host?.value as string | undefined) ?? name,
    port: vars.port?.value as number | undefined,
    user: vars.user?.value as string | undefined,
    privateKeyFile: keyFile === undefined ? undefined : expandPath(keyFile, inventoryFile),
    sshArgs,
    openSshOnlyOptions,
  };
}

/** Ansible resolves relative key paths from where it runs; we resolve them from the inventory so a repo works from any directory. */
function expandPath(p: string, inventoryFile: string): string {
  if (p.startsWith("~/")) return join(homedir(), p.slice(2));
  return isAbsolute(p) ? p : join(dirname(inventoryFile), p);
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
