import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, extname, isAbsolute, join, resolve as resolvePath } from "node:path";
import { sortProblems, unreadableFile, type ConfigProblem } from "./errors.js";
import { iniValue, parseIni, type IniFile } from "./ini.js";
import { closest } from "./suggest.js";

/**
 * The defaults a team commits, so every call needn't repeat them. Sources, lowest first:
 *
 *   built-in defaults < ansible.cfg `[defaults]` < ANSIBLE_* environment < provision.cfg < flags
 *
 * ansible.cfg and the ANSIBLE_* variables are read exactly as Ansible reads them (one layer:
 * what Ansible itself would use); provision.cfg is provision's own, so it beats them however they
 * were given. Everything here is plain data with its origin; applySettings.ts hands the values
 * to the command line's options and checks each with that option's own rules.
 */

/** provision.cfg's keys: the long flag names, with `_` for `-`. */
export const SETTING_KEYS = {
  inventory: { kind: "paths", help: "inventory sources, comma-separated (as -i, repeated)" },
  playbook: { kind: "path", help: "the playbook (as -p)" },
  forks: { kind: "text", help: "hosts handled at once (as -f)" },
  user: { kind: "text", help: "login user for hosts that set no ansible_user (as -u)" },
  private_key: {
    kind: "path",
    help: "private key for hosts that set no ansible_ssh_private_key_file (as --private-key)",
  },
  known_hosts: { kind: "paths", help: "known_hosts files, comma-separated (as --known-hosts, repeated)" },
  accept_new_host_keys: { kind: "boolean", help: "record keys of hosts not yet known (as --accept-new-host-keys)" },
  connect_timeout: { kind: "text", help: "seconds (as --connect-timeout)" },
  command_timeout: { kind: "text", help: "seconds (as --command-timeout)" },
  ssh_config: { kind: "path", help: "ssh_config file (as --ssh-config)" },
  ssh_client: { kind: "text", help: "auto, ssh2 or openssh (as --ssh-client)" },
  state_dir: { kind: "path", help: "where run records are kept (as --state-dir)" },
  batches: { kind: "text", help: "batch sizes, e.g. 1,10%,100% (as --batches)" },
  max_fail_per_batch: { kind: "text", help: "count or percentage (as --max-fail-per-batch)" },
  max_fail_total: { kind: "text", help: "count or percentage (as --max-fail-total)" },
  pause: { kind: "text", help: "seconds or prompt (as --pause)" },
} as const satisfies Record<string, { kind: "text" | "path" | "paths" | "boolean"; help: string }>;

export type SettingKey = keyof typeof SETTING_KEYS;

export const PROVISION_CONFIG = "provision.cfg";
export const ANSIBLE_CONFIG = "ansible.cfg";

export interface SettingOrigin {
  source: "ansible.cfg" | "environment" | "provision.cfg";
  /** The file it is written in, or the environment variable's name. */
  file: string;
  line: number;
  /** 1-based column of the value. */
  col: number;
  /** The name it was given under: `remote_user`, `ANSIBLE_FORKS`, `forks`. */
  name: string;
}

export interface Setting {
  key: SettingKey;
  /** The value as written (comments stripped, quotes as Ansible unquotes); a `path` already resolved. */
  text: string;
  /** For `paths`: the items, each resolved. */
  items?: string[];
  /** host_key_checking: its boolean is the opposite of accept_new_host_keys. */
  negated?: boolean;
  origin: SettingOrigin;
}

export interface Settings {
  /** The config files read, lowest precedence first. */
  files: Array<{ file: string; source: "ansible.cfg" | "provision.cfg" }>;
  /** The value each key ends up with across all sources, with where it came from. */
  values: Map<SettingKey, Setting>;
  /** What the user should know even without -v (a file ignored). */
  notes: string[];
  /** Ansible settings that change how Ansible reaches hosts and that provision does not read: said by commands that connect. */
  connectionNotes: string[];
  problems: ConfigProblem[];
}

/** Where settings are looked for; `fs` is swapped out in tests. */
export interface SettingsContext {
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Ansible's `~`: $HOME (Python's expanduser), else the account's home. */
  home: string;
  /** --config FILE. */
  configFlag?: string | undefined;
  fs: SettingsFs;
}

export interface SettingsFs {
  /** An existing file this process may read (Ansible: os.path.exists and os.access R_OK). */
  readable(path: string): boolean;
  isDirectory(path: string): boolean;
  /** Whether others may write the directory (S_IWOTH); undefined when it can't be looked at. */
  worldWritable(dir: string): boolean | undefined;
  read(path: string): string;
}

export const realFs: SettingsFs = {
  readable(path) {
    try {
      accessSync(path, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  },
  isDirectory(path) {
    try {
      return statSync(path).isDirectory();
    } catch {
      return false;
    }
  },
  worldWritable(dir) {
    try {
      return (statSync(dir).mode & 0o002) !== 0;
    } catch {
      return undefined;
    }
  },
  read: (path) => readFileSync(path, "utf8"),
};

export function processContext(configFlag: string | undefined): SettingsContext {
  return { env: process.env, cwd: process.cwd(), home: process.env.HOME || homedir(), configFlag, fs: realFs };
}

/** Finds, reads and merges every source. Reads files through `ctx.fs` only. */
export function loadSettings(ctx: SettingsContext): Settings {
  const problems: ConfigProblem[] = [];
  const notes: string[] = [];
  const connectionNotes: string[] = [];
  const files: Settings["files"] = [];
  const values = new Map<SettingKey, Setting>();
  const layer = (settings: Setting[]) => settings.forEach((s) => values.set(s.key, s));

  const ansible = findAnsibleConfig(ctx);
  notes.push(...ansible.notes);
  problems.push(...ansible.problems);
  if (ansible.file !== null) {
    const ini = readIni(ansible.file, ctx, problems);
    if (ini) {
      files.push({ file: ansible.file, source: "ansible.cfg" });
      layer(fromAnsibleConfig(ini, ctx));
      connectionNotes.push(...unreadAnsibleSettings(ini));
    }
  }
  layer(fromAnsibleEnvironment(ctx));

  const own = findProvisionConfig(ctx);
  notes.push(...own.notes);
  problems.push(...own.problems);
  if (own.file !== null) {
    const ini = readIni(own.file, ctx, problems);
    if (ini) {
      files.push({ file: own.file, source: "provision.cfg" });
      layer(fromProvisionConfig(ini, ctx, problems));
    }
  }
  return { files, values, notes, connectionNotes, problems: sortProblems(problems) };
}

function readIni(file: string, ctx: SettingsContext, problems: ConfigProblem[]): IniFile | null {
  let text: string;
  try {
    text = ctx.fs.read(file);
  } catch (err) {
    problems.push(unreadableFile(file, err));
    return null;
  }
  const before = problems.length;
  const ini = parseIni(text, file, problems);
  return problems.length > before ? null : ini;
}

/**
 * Ansible's search (find_ini_config_file in ansible/config/manager.py), first found only:
 * $ANSIBLE_CONFIG (a directory means its ansible.cfg), ./ansible.cfg unless the current directory
 * is world-writable, ~/.ansible.cfg, /etc/ansible/ansible.cfg.
 */
export function findAnsibleConfig(ctx: SettingsContext): {
  file: string | null;
  notes: string[];
  problems: ConfigProblem[];
} {
  const candidates: string[] = [];
  const fromEnv = ctx.env.ANSIBLE_CONFIG;
  let envPath: string | undefined;
  if (fromEnv !== undefined) {
    envPath = expandPath(fromEnv, ctx.cwd, ctx, true);
    if (ctx.fs.isDirectory(envPath)) envPath = join(envPath, ANSIBLE_CONFIG);
    candidates.push(envPath);
  }
  const inCwd = join(ctx.cwd, ANSIBLE_CONFIG);
  const skipCwd = ctx.fs.worldWritable(ctx.cwd);
  if (skipCwd === false) candidates.push(inCwd);
  candidates.push(join(ctx.home, ".ansible.cfg"), "/etc/ansible/ansible.cfg");
  const file = candidates.find((c) => ctx.fs.readable(c) && !ctx.fs.isDirectory(c)) ?? null;
  const notes: string[] = [];
  if (skipCwd === true && file !== envPath && ctx.fs.readable(inCwd))
    notes.push(
      `ignoring ${inCwd}: ${ctx.cwd} is world-writable, so anyone could have put it there (Ansible ignores it too). Point ANSIBLE_CONFIG at it to use it anyway`,
    );
  const problems: ConfigProblem[] = [];
  if (file !== null && ![".cfg", ".ini"].includes(extname(file))) {
    problems.push({
      file,
      line: 1,
      col: 1,
      keyPath: "",
      severity: "error",
      problem: `ANSIBLE_CONFIG names a file Ansible cannot read as its configuration (only .cfg and .ini files are)`,
      fix: "rename it to end in .cfg, or unset ANSIBLE_CONFIG",
    });
    return { file: null, notes, problems };
  }
  return { file, notes, problems };
}

/**
 * provision.cfg: --config FILE, else $PROVISION_CONFIG, else ./provision.cfg — which, like
 * ./ansible.cfg, is not read from a world-writable directory: its ssh_config or known_hosts would
 * decide which hosts are trusted, and ssh_config can run commands (ProxyCommand).
 */
export function findProvisionConfig(ctx: SettingsContext): {
  file: string | null;
  notes: string[];
  problems: ConfigProblem[];
} {
  const given =
    ctx.configFlag !== undefined
      ? { path: ctx.configFlag, by: "--config" }
      : ctx.env.PROVISION_CONFIG
        ? { path: ctx.env.PROVISION_CONFIG, by: "PROVISION_CONFIG" }
        : undefined;
  if (given) {
    const file = expandPath(given.path, ctx.cwd, ctx, false);
    if (ctx.fs.readable(file) && !ctx.fs.isDirectory(file)) return { file, notes: [], problems: [] };
    return {
      file: null,
      notes: [],
      problems: [
        {
          file: given.path,
          line: 1,
          col: 1,
          keyPath: "",
          severity: "error",
          problem: `${given.by} names a file that cannot be read${ctx.fs.isDirectory(file) ? " (it is a directory)" : ""}`,
          fix: `check the path (relative paths are from ${ctx.cwd}) and its permissions`,
        },
      ],
    };
  }
  const inCwd = join(ctx.cwd, PROVISION_CONFIG);
  if (!ctx.fs.readable(inCwd)) return { file: null, notes: [], problems: [] };
  if (ctx.fs.worldWritable(ctx.cwd) !== false)
    return {
      file: null,
      notes: [
        `ignoring ${inCwd}: ${ctx.cwd} is world-writable, so anyone could have put it there (as Ansible ignores ansible.cfg there). Pass --config ${inCwd} to use it anyway`,
      ],
      problems: [],
    };
  return { file: inCwd, notes: [], problems: [] };
}

/** What provision takes from Ansible's settings, with Ansible's names; the last of several found wins, as in Ansible. */
const FROM_ANSIBLE: ReadonlyArray<{
  key: SettingKey;
  ini: ReadonlyArray<readonly [section: string, name: string]>;
  env: readonly string[];
  /** Ansible's type: `string` values are unquoted, `path`/`pathlist` resolved, `text` taken as written. */
  type: "string" | "path" | "pathlist" | "text";
  negated?: boolean;
}> = [
  { key: "inventory", ini: [["defaults", "inventory"]], env: ["ANSIBLE_INVENTORY"], type: "pathlist" },
  { key: "forks", ini: [["defaults", "forks"]], env: ["ANSIBLE_FORKS"], type: "text" },
  { key: "user", ini: [["defaults", "remote_user"]], env: ["ANSIBLE_REMOTE_USER"], type: "string" },
  { key: "private_key", ini: [["defaults", "private_key_file"]], env: ["ANSIBLE_PRIVATE_KEY_FILE"], type: "path" },
  {
    key: "accept_new_host_keys",
    ini: [
      ["defaults", "host_key_checking"],
      ["ssh_connection", "host_key_checking"],
    ],
    env: ["ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_SSH_HOST_KEY_CHECKING"],
    type: "text",
    negated: true,
  },
  {
    key: "connect_timeout",
    ini: [
      ["defaults", "timeout"],
      ["ssh_connection", "timeout"],
    ],
    env: ["ANSIBLE_TIMEOUT", "ANSIBLE_SSH_TIMEOUT"],
    type: "text",
  },
];

/** ansible.cfg names provision reads, for messages: `remote_user` → user. */
export const ANSIBLE_NAMES: Readonly<Record<string, SettingKey>> = {
  inventory: "inventory",
  forks: "forks",
  remote_user: "user",
  private_key_file: "private_key",
  host_key_checking: "accept_new_host_keys",
  timeout: "connect_timeout",
};

export function fromAnsibleConfig(ini: IniFile, ctx: SettingsContext): Setting[] {
  const out: Setting[] = [];
  for (const spec of FROM_ANSIBLE) {
    let found: Setting | undefined;
    for (const [section, name] of spec.ini) {
      const entry = iniValue(ini, section, name);
      if (entry === undefined || entry.value === "") continue;
      const origin: SettingOrigin = {
        source: "ansible.cfg",
        file: ini.file,
        line: entry.line,
        col: entry.valueCol,
        name: section === "defaults" ? name : `[${section}] ${name}`,
      };
      found = typed(spec, entry.value, dirname(ini.file), origin, ctx);
    }
    if (found) out.push(found);
  }
  return out;
}

/** ANSIBLE_* variables beat ansible.cfg, as in Ansible; paths in them are relative to the current directory. */
export function fromAnsibleEnvironment(ctx: SettingsContext): Setting[] {
  const out: Setting[] = [];
  for (const spec of FROM_ANSIBLE) {
    let found: Setting | undefined;
    for (const name of spec.env) {
      const value = ctx.env[name];
      if (value === undefined || value === "") continue;
      found = typed(spec, value, ctx.cwd, { source: "environment", file: name, line: 1, col: 1, name }, ctx);
    }
    if (found) out.push(found);
  }
  return out;
}

function typed(
  spec: (typeof FROM_ANSIBLE)[number],
  value: string,
  baseDir: string,
  origin: SettingOrigin,
  ctx: SettingsContext,
): Setting {
  const base = { key: spec.key, origin, ...(spec.negated ? { negated: true } : {}) };
  switch (spec.type) {
    case "string":
      return { ...base, text: unquote(value) };
    case "path":
      return { ...base, text: ansiblePath(value, baseDir, ctx) };
    case "pathlist": {
      // An empty item (`a.yml,`) would be the config file's directory itself; it is left out.
      const items = value
        .split(",")
        .map((p) => p.trim())
        .filter((p) => p !== "")
        .map((p) => ansiblePath(p, baseDir, ctx));
      return { ...base, text: items.join(","), items };
    }
    case "text":
      return { ...base, text: value };
  }
}

/** Ansible settings provision does not take, which would make it reach hosts differently from Ansible. */
const UNREAD_ANSIBLE: ReadonlyArray<readonly [section: string, name: string, instead: string]> = [
  ["defaults", "remote_port", "set ansible_port in the inventory (group_vars/all) or Port in ssh_config"],
  ["ssh_connection", "ssh_common_args", "set ansible_ssh_common_args in the inventory (group_vars/all)"],
  ["ssh_connection", "ssh_extra_args", "set ansible_ssh_extra_args in the inventory (group_vars/all)"],
];

function unreadAnsibleSettings(ini: IniFile): string[] {
  return UNREAD_ANSIBLE.flatMap(([section, name, instead]) => {
    const entry = iniValue(ini, section, name);
    if (entry === undefined || entry.value === "") return [];
    return [
      `${ini.file}:${entry.line}: provision does not read ${section === "defaults" ? "" : `[${section}] `}${name}; ${instead}`,
    ];
  });
}

/** Per-call flags a committed file must not decide for everyone. */
const PER_CALL = new Set([
  "yes",
  "limit",
  "tags",
  "skip_tags",
  "list_hosts",
  "json",
  "format",
  "color",
  "no_color",
  "verbose",
  "out",
  "plan",
  "resume",
  "allow_plan_drift",
  "ask_become_pass",
  "config",
]);

export function fromProvisionConfig(ini: IniFile, ctx: SettingsContext, problems: ConfigProblem[]): Setting[] {
  const at = (line: number, col: number, keyPath: string, problem: string, fix: string) =>
    problems.push({ file: ini.file, line, col, keyPath, severity: "error", problem, fix });
  for (const entry of ini.defaults.values())
    at(
      entry.line,
      entry.keyCol,
      entry.key,
      "provision.cfg has no [DEFAULT] section",
      "put the setting under [defaults]",
    );
  for (const section of ini.sections.values()) {
    if (section.name === "defaults") continue;
    const guess = closest(section.name, ["defaults"]);
    at(
      section.line,
      1,
      `[${section.name}]`,
      `unknown section [${section.name}]`,
      guess ? `did you mean [defaults]?` : "provision.cfg has one section, [defaults]",
    );
  }
  const out: Setting[] = [];
  const entries = ini.sections.get("defaults")?.entries ?? new Map();
  for (const entry of entries.values()) {
    if (!(entry.key in SETTING_KEYS)) {
      at(entry.line, entry.keyCol, entry.key, `unknown key ${JSON.stringify(entry.key)}`, unknownKeyFix(entry.key));
      continue;
    }
    const key = entry.key as SettingKey;
    if (entry.value === "") continue;
    const text = unquote(entry.value);
    const origin: SettingOrigin = {
      source: "provision.cfg",
      file: ini.file,
      line: entry.line,
      col: entry.valueCol,
      name: key,
    };
    const baseDir = dirname(ini.file);
    switch (SETTING_KEYS[key].kind) {
      case "path":
        out.push({ key, text: expandPath(text, baseDir, ctx, true), origin });
        break;
      case "paths": {
        const items = text
          .split(",")
          .map((p) => unquote(p.trim()))
          .filter((p) => p !== "")
          .map((p) => expandPath(p, baseDir, ctx, true));
        out.push({ key, text: items.join(","), items, origin });
        break;
      }
      default:
        out.push({ key, text, origin });
    }
  }
  return out;
}

function unknownKeyFix(key: string): string {
  const ansible = ANSIBLE_NAMES[key];
  if (ansible && ansible !== key) return `write ${ansible} = … (${key} is ansible.cfg's name for it)`;
  if (PER_CALL.has(key.replace(/-/g, "_")))
    return `remove it: ${key} is chosen on each call, with its flag, never for every call in a file`;
  const guess = closest(key.replace(/-/g, "_"), Object.keys(SETTING_KEYS));
  return guess ? `did you mean "${guess}"?` : `the keys are: ${Object.keys(SETTING_KEYS).join(", ")}`;
}

/** Python's unquote as Ansible applies it to string settings: one pair of matching outer quotes goes. */
export function unquote(value: string): string {
  if (value.length > 1 && value[0] === value[value.length - 1] && (value[0] === '"' || value[0] === "'")) {
    if (value[value.length - 2] !== "\\") return value.slice(1, -1);
  }
  return value;
}

/**
 * Ansible's resolve_path: `{{CWD}}` is the current directory, $VAR and ${VAR} expand when set,
 * `~` is $HOME, a relative path is from `baseDir` (the config file's directory), normalized.
 */
export function ansiblePath(path: string, baseDir: string, ctx: Pick<SettingsContext, "env" | "cwd" | "home">): string {
  const withCwd = path.split("{{CWD}}").join(ctx.cwd);
  return expandPath(withCwd, baseDir, ctx, true);
}

function expandPath(
  path: string,
  baseDir: string,
  ctx: Pick<SettingsContext, "env" | "home">,
  expandVars: boolean,
): string {
  let p = expandVars
    ? path.replace(/\$(\w+|\{[^}]*\})/g, (whole, name: string) => {
        const value = ctx.env[name.startsWith("{") ? name.slice(1, -1) : name];
        return value === undefined ? whole : value;
      })
    : path;
  // ~user is left as written: Node has no portable way to look another account up.
  if (p === "~" || p.startsWith("~/")) p = ctx.home + p.slice(1);
  return isAbsolute(p) ? resolvePath(p) : resolvePath(baseDir, p);
}
