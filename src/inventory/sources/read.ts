import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import type { ConfigProblem } from "../../config/errors.js";
import { parseYamlText, type YamlFile } from "../../config/yamlFile.js";
import { parseIniSource } from "./ini.js";
import { isListJson, parseListJson } from "./listJson.js";
import type { ParsedSource, SourceEvent } from "./model.js";
import { parseYamlInventory, splitPort } from "./yaml.js";

/** One `-i` argument after reading: what it declares, and where its group_vars/ and host_vars/ live. */
export interface ReadSource {
  /** The argument as given (`-` for stdin). */
  arg: string;
  parsed: ParsedSource[];
  /** The directory Ansible looks for group_vars/ and host_vars/ in: the file's own, or the directory itself. */
  varsDir: string | null;
}

// Ansible's INVENTORY_IGNORE_EXTS and the names it always skips inside an inventory directory.
const IGNORED_IN_DIRECTORY = /^\.|^host_vars$|^group_vars$|^vars_plugins$|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.ini|\.cfg|\.retry)$/;

/** Reads every `-i` source in order, the way `ansible-inventory -i A -i B` does; appends every problem. */
export function readSources(args: string[], problems: ConfigProblem[], readStdin: () => string = () => readFileSync(0, "utf8")): ReadSource[] {
  const seen: Seen = { groups: new Set(), hosts: new Set() };
  return args.map((arg) => readArg(arg, problems, readStdin, seen));
}

/** What earlier sources declared: Ansible's sources share one inventory, and INI checks groups against it. */
interface Seen {
  groups: Set<string>;
  hosts: Set<string>;
}

function remember(parsed: ParsedSource, seen: Seen): ParsedSource {
  for (const e of parsed.events) {
    if (e.kind === "group") seen.groups.add(e.name);
    else if (e.kind === "host") seen.hosts.add(e.name);
  }
  return parsed;
}

function readArg(arg: string, problems: ConfigProblem[], readStdin: () => string, seen: Seen): ReadSource {
  if (arg === "-") return { arg, parsed: compact([parseText(readStdin(), "<stdin>", "", problems, seen)]), varsDir: null };
  const path = resolve(arg);
  if (!existsSync(path)) {
    if (arg.includes(",")) return { arg, parsed: [remember(hostList(arg), seen)], varsDir: null };
    problems.push({
      file: arg, line: 1, col: 1, keyPath: "", severity: "error",
      problem: "no such inventory file or directory",
      fix: "check the path, or write hosts as a comma-separated list (-i 'web1,web2,')",
    });
    return { arg, parsed: [], varsDir: null };
  }
  if (statSync(path).isDirectory()) return { arg, parsed: readDirectory(path, problems, seen), varsDir: path };
  return { arg, parsed: compact([readFile(path, problems, seen)]), varsDir: dirname(path) };
}

function readDirectory(dir: string, problems: ConfigProblem[], seen: Seen): ParsedSource[] {
  const out: ParsedSource[] = [];
  for (const entry of readdirSync(dir).sort()) {
    if (IGNORED_IN_DIRECTORY.test(entry)) continue;
    const full = join(dir, entry);
    let isDir: boolean;
    try {
      isDir = statSync(full).isDirectory();
    } catch (err) {
      problems.push({ file: full, line: 1, col: 1, keyPath: "", severity: "error", problem: `cannot read ${entry} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, fix: "fix or remove the broken link or file" });
      continue;
    }
    out.push(...(isDir ? readDirectory(full, problems, seen) : compact([readFile(full, problems, seen)])));
  }
  return out;
}

function readFile(file: string, problems: ConfigProblem[], seen: Seen): ParsedSource | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    problems.push({ file, line: 1, col: 1, keyPath: "", severity: "error", problem: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`, fix: "check the path and its permissions" });
    return null;
  }
  if (text.startsWith("#!") && isExecutable(file)) {
    problems.push({
      file, line: 1, col: 1, keyPath: "", severity: "error",
      problem: "this is an executable inventory script; provision does not run programs from the inventory",
      fix: `save what it prints and read that: ${file} --list > inventory.json, then -i inventory.json (or: ansible-inventory -i ${file} --list | provision plan -i -)`,
    });
    return null;
  }
  return parseText(text, file, extname(file).toLowerCase(), problems, seen);
}

/**
 * Which of Ansible's file plugins reads the text: `.yml`/`.yaml`/`.json` are YAML (or the JSON of
 * `ansible-inventory --list`); a file without extension is YAML when it is a mapping of groups,
 * else INI; any other extension is INI, as Ansible's ini plugin takes any file.
 */
function parseText(text: string, file: string, ext: string, problems: ConfigProblem[], seen: Seen): ParsedSource | null {
  const parsed = parseWithPlugin(text, file, ext, problems, seen);
  return parsed && remember(parsed, seen);
}

function parseWithPlugin(text: string, file: string, ext: string, problems: ConfigProblem[], seen: Seen): ParsedSource | null {
  if (text.startsWith("$ANSIBLE_VAULT;")) {
    problems.push({
      file, line: 1, col: 1, keyPath: "", severity: "error",
      problem: "the inventory file is vault-encrypted; provision never decrypts vault",
      fix: "keep the host list in plain text and vault only the secret vars, or pass a rendered copy: ansible-inventory -i FILE --list --export | provision plan -i -",
    });
    return null;
  }
  if (ext === ".toml") {
    problems.push({ file, line: 1, col: 1, keyPath: "", severity: "error", problem: "TOML inventories are not read", fix: "convert it: ansible-inventory -i FILE --list --export > inventory.json, then -i inventory.json" });
    return null;
  }
  const yamlFirst = [".yml", ".yaml", ".json"].includes(ext);
  if (yamlFirst || ext === "") {
    const yamlProblems: ConfigProblem[] = [];
    const yaml = parseYamlText(text, file, yamlProblems);
    if (yamlFirst || (yaml && looksLikeYamlInventory(yaml.data))) {
      problems.push(...yamlProblems);
      return yaml ? fromYaml(yaml, problems) : null;
    }
  }
  return parseIniSource(text, file, problems, { knownGroups: seen.groups, knownHosts: seen.hosts });
}

function fromYaml(yaml: YamlFile, problems: ConfigProblem[]): ParsedSource | null {
  const data = yaml.data as Record<string, unknown> | null;
  if (data && typeof data === "object" && typeof data.plugin === "string") {
    problems.push({
      file: yaml.file, ...yaml.locate(["plugin"]), keyPath: "plugin", severity: "error",
      problem: `this configures the dynamic inventory plugin ${data.plugin}; provision does not run inventory plugins (they need cloud credentials and Ansible's collections)`,
      fix: `render it once and read that: ansible-inventory -i ${yaml.file} --list --export > inventory.json, then -i inventory.json (or pipe it: ansible-inventory -i ${yaml.file} --list --export | provision plan -i -)`,
    });
    return null;
  }
  return isListJson(data) ? parseListJson(yaml, problems) : parseYamlInventory(yaml, problems);
}

/**
 * A mapping of groups (mappings or empty), the JSON of ansible-inventory --list, or a plugin's
 * config: INI text never parses as any of these, except a lone `host:port` line.
 */
function looksLikeYamlInventory(data: unknown): boolean {
  if (data === null || data === undefined) return false;
  if (typeof data !== "object" || Array.isArray(data)) return false;
  if (isListJson(data) || typeof (data as Record<string, unknown>).plugin === "string") return true;
  return Object.values(data).every((v) => v === null || (typeof v === "object" && !Array.isArray(v)));
}

/** Ansible's host_list plugin: `-i 'web1,web2:2222,'` lists hosts directly. */
function hostList(arg: string): ParsedSource {
  const source = { file: "-i", locate: () => ({ line: 1, col: 1 }) };
  const events: SourceEvent[] = [];
  for (const item of arg.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const { names, port } = splitPort(item);
    events.push({ kind: "host", group: "ungrouped", name: names, at: { source, path: [item] }, ...(port === undefined ? {} : { port }) });
  }
  return { file: "-i", events };
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function compact<T>(items: Array<T | null>): T[] {
  return items.filter((x): x is T => x !== null);
}
