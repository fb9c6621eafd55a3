import type { ConfigProblem } from "../../config/errors.js";
import { closest } from "../../config/suggest.js";
import { refusedKey } from "../../config/validate.js";
import { formatKeyPath, type KeyPath, type YamlFile } from "../../config/yamlFile.js";
import { expandHostPattern, hasHostRange, HostPatternError } from "../hostRange.js";
import { parseAddress } from "./ini.js";
import type { ParsedSource, SourceEvent } from "./model.js";

const GROUP_KEYS = ["hosts", "vars", "children"];

/**
 * Ansible's YAML inventory (the yaml plugin): groups with `hosts`, `vars` and `children`, nested to
 * any depth, top-level groups beside or instead of `all`. Host keys may carry ranges and `:port`.
 */
export function parseYamlInventory(yaml: YamlFile, problems: ConfigProblem[]): ParsedSource | null {
  const events: SourceEvent[] = [];
  const problem = (path: KeyPath, at: "key" | "value", text: string, fix: string) =>
    problems.push({ file: yaml.file, ...yaml.locate(path, at), keyPath: formatKeyPath(path), severity: "error", problem: text, fix });

  const walkGroup = (name: string, body: unknown, path: KeyPath) => {
    events.push({ kind: "group", name, at: { source: yaml, path } });
    if (body === null || body === undefined) return;
    if (!isMapping(body)) {
      problem(path, "value", `group "${name}" must be a mapping with hosts, vars or children, not ${describe(body)}`, "write `hosts:`, `vars:` or `children:` under the group, or leave it empty");
      return;
    }
    // In the order written, as Ansible's yaml plugin walks them: it decides the order of hosts and groups.
    for (const [key, raw] of Object.entries(body)) {
      if (!GROUP_KEYS.includes(key)) {
        // Ansible warns and skips it; so do we, loudly, since what it holds applies to nothing.
        problems.push({
          file: yaml.file, ...yaml.locate([...path, key], "key"), keyPath: formatKeyPath([...path, key]), severity: "warning",
          problem: `unknown key "${key}" in group "${name}", so what it holds applies to nothing (Ansible skips it too)`,
          fix: `a group holds only hosts, vars and children${nearest(key)}`,
        });
        continue;
      }
      if (raw === null || raw === undefined) continue;
      // Ansible accepts a single name as a string: `hosts: web1`, `children: web`.
      const section = typeof raw === "string" && key !== "vars" ? { [raw]: null } : raw;
      if (!isMapping(section)) {
        const what = key === "vars" ? "a mapping of variables" : key === "hosts" ? "a mapping of host names" : "a mapping of group names";
        const fix = key === "vars" ? "write one `name: value` per line under vars:" : key === "hosts" ? "write each host as `name:` (with its vars below it, or nothing) under hosts:" : "write each child group as `name:` under children:";
        problem([...path, key], "value", `${key} of group "${name}" must be ${what}, not ${describe(section)}`, fix);
        continue;
      }
      if (key === "vars") {
        events.push({ kind: "groupVars", group: name, block: { vars: section, source: yaml, basePath: [...path, "vars"] } });
      } else if (key === "hosts") {
        for (const [pattern, hostVars] of Object.entries(section)) addHosts(name, pattern, hostVars, [...path, "hosts", pattern]);
      } else {
        for (const [child, childBody] of Object.entries(section)) {
          const at = [...path, "children", child];
          if (child === name) {
            problem(at, "key", `group "${name}" is its own child`, "remove it from its own children");
            continue;
          }
          walkGroup(child, childBody, at);
          events.push({ kind: "child", parent: name, child, at: { source: yaml, path: at } });
        }
      }
    }
  };

  const addHosts = (group: string, pattern: string, hostVars: unknown, path: KeyPath) => {
    if (hostVars !== null && hostVars !== undefined && !isMapping(hostVars)) {
      problem(path, "value", `host "${pattern}" must have a mapping of vars or nothing, not ${describe(hostVars)}`, "write its vars as `name: value` lines under it, or leave it empty");
      return;
    }
    const { names, port } = splitPort(pattern);
    let expanded: string[];
    try {
      expanded = hasHostRange(names) ? expandHostPattern(names) : [names];
    } catch (err) {
      if (!(err instanceof HostPatternError)) throw err;
      problem(path, "key", err.problem, err.fix);
      return;
    }
    for (const host of expanded) {
      events.push({ kind: "host", group, name: host, at: { source: yaml, path }, ...(port === undefined ? {} : { port }) });
      if (hostVars) events.push({ kind: "hostVars", host, block: { vars: hostVars as Record<string, unknown>, source: yaml, basePath: path } });
    }
  };

  if (yaml.data === null || yaml.data === undefined) return { file: yaml.file, events };
  if (!isMapping(yaml.data)) {
    problems.push({
      file: yaml.file, ...yaml.locate([]), keyPath: "", severity: "error",
      problem: `an inventory must be a mapping of groups, not ${describe(yaml.data)}`,
      fix: "start the inventory with `all:` and list hosts under `hosts:` or groups under `children:`",
    });
    return null;
  }
  for (const [name, body] of Object.entries(yaml.data)) {
    // A setting written where groups go would otherwise read as a group named after it.
    const refused = refusedKey(name);
    if (refused) problems.push({ file: yaml.file, ...yaml.locate([name], "key"), keyPath: name, severity: "error", ...refused });
    else walkGroup(name, body, [name]);
  }
  // With errors too: the rest of the file still counts, so later checks report their problems in the same run.
  return { file: yaml.file, events };
}

/**
 * Ansible's _expand_hostpattern: `host:2222` and `[2001:db8::1]:2222` carry a port (port 0 is no
 * port, as in Ansible); anything parse_address refuses is taken whole as the name.
 */
export function splitPort(pattern: string): { names: string; port?: number } {
  const parsed = parseAddress(pattern);
  if (!parsed) return { names: pattern };
  const port = parsed.port === undefined ? 0 : Number(parsed.port);
  return port > 0 ? { names: parsed.host, port } : { names: parsed.host };
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `the text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `the value ${JSON.stringify(v)}`;
}

function nearest(key: string): string {
  const guess = closest(key, GROUP_KEYS) ?? (key.length >= 4 ? GROUP_KEYS.find((k) => k.startsWith(key.slice(0, 4).toLowerCase())) : undefined);
  return guess ? `: did you mean "${guess}"?` : ": move variables under vars:";
}
