import { isIP } from "node:net";
import type { ConfigProblem } from "../../config/errors.js";
import { formatKeyPath, type KeyPath } from "../../config/yamlFile.js";
import { expandHostPattern, HostPatternError, MAX_EXPANDED_HOSTS } from "../hostRange.js";
import type { ParsedSource, SourceEvent, SourceFile } from "./model.js";
import { parseIniValue, PythonLiteralError } from "./pythonLiteral.js";
import { ShlexError, shlexTokens, sourceOffset, type ShlexToken } from "./shlex.js";

/**
 * Ansible 2.14's INI inventory plugin (plugins/inventory/ini.py), line for line: the same
 * sections, the same host-line lexing (shlex with comments), the same value typing
 * (ast.literal_eval, see pythonLiteral.ts), the same host:port and range handling
 * (parse_address, then expand_hostname_range), and the same InventoryData calls in the same
 * order, as events. Ansible's quirks are kept: `x="1"` is the integer 1 (shlex removes the quotes
 * before literal_eval), `host:port` sets ansible_port only when the host is new, and the vars of a
 * host named like an existing group go to that group (InventoryData.set_variable looks up groups
 * first).
 *
 * Locations: a header is recorded at `[web]`, `[web:vars]`, `[web:children]` (the group name's
 * column); a `[web:vars]` entry at `["web:vars", key]`; a host entry at `[group, token]` and its
 * vars at `[group, token, key]`, token being the host as written (`web[01:03]:2222`); a child at
 * `["parent:children", child]`. Lines and columns are 1-based, columns in UTF-16 units, lines as
 * Python's str.splitlines() counts them (as Ansible's messages do).
 *
 * Where Ansible stops at the first error, this reports every problem in the file (each with its
 * line and column) and returns null. Deliberate differences, all on input Ansible rejects:
 * - a line that starts like YAML (`---`) stops the parse after one problem: the rest of a YAML
 *   file read as INI would only repeat it;
 * - after a bad section header the lines up to the next header are skipped, not parsed into the
 *   previous section;
 * - a `[g:children]` entry that names a group never declared is reported at every line that names
 *   it (Ansible names only the first such group);
 * - ranges that Ansible expands oddly (`[3:1]` to no hosts, `[-1:1]` to h-1 h0 h1) expand as
 *   Ansible does, with a warning that explains the range (hostRange.ts refuses them).
 */

export interface IniOptions {
  /**
   * Groups that earlier `-i` sources already added. Ansible's sources share one InventoryData, so
   * a `[g:vars]` or `[p:children]` entry may name such a group without declaring it here.
   * Defaults to none besides `all` and `ungrouped`, as for the first source.
   */
  knownGroups?: Iterable<string>;
  /** Hosts that earlier sources already added: Ansible applies `host:port` only when it creates the host. */
  knownHosts?: Iterable<string>;
}

/** Reads an INI inventory; appends every problem to `problems` and returns null if any is an error. */
export function parseIniSource(text: string, file: string, problems: ConfigProblem[], options: IniOptions = {}): ParsedSource | null {
  return new IniParser(text, file, problems, options).parse();
}

// Python's str.isspace() characters: what str.strip() removes and what `\s` matches in re.
const PY_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
// Python's `\w` on str: letters, numbers and underscore (exactly, for the Unicode version Python has).
const PY_WORD = "\\p{L}\\p{N}_";
// str.splitlines() boundaries.
const LINE_BREAK = /\r\n|[\n\v\f\r\x1c-\x1e\x85\u2028\u2029]/;
const PY_SPACE_CHAR = new RegExp(`[${PY_SPACE}]`, "u");

const SECTION = new RegExp(`^\\[([^:\\]${PY_SPACE}]+)(?::([${PY_WORD}]+))?\\][${PY_SPACE}]*(?:#.*)?$`, "u");
const GROUP_NAME = new RegExp(`^([^:\\]${PY_SPACE}]+)[${PY_SPACE}]*(?:#.*)?$`, "u");

// ansible/parsing/utils/addresses.py, as compiled (re.X whitespace and comments removed).
const NUMERIC_RANGE = "\\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\\]";
const HEX_RANGE = "\\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\\]";
const ALNUM_RANGE = "\\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\\]";
const V6 = `(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const V4 = `(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUMERIC_RANGE})`;
const LABEL = `(?:[${PY_WORD}]|${ALNUM_RANGE})(?:[${PY_WORD}_-]|${ALNUM_RANGE})*(?<![_-])`;
// Python's re.match anchors at the start only: the sticky flag does the same here.
const BRACKETED_HOSTPORT = /^\[(.+)\]:([0-9]+)$/y;
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):([0-9]+)$/y;
const IPV4 = new RegExp(`^(?:${V4}\\.){3}${V4}$`, "iy");
// As in Ansible, `^` and `$` bind to the first and last alternatives only.
const IPV6 = new RegExp(
  [
    `^(?:${V6}:){7}${V6}`,
    `(?:${V6}:){1,6}:`,
    `(?:${V6}:)(?::${V6}){1,6}`,
    `(?:${V6}:){2}(?::${V6}){1,5}`,
    `(?:${V6}:){3}(?::${V6}){1,4}`,
    `(?:${V6}:){4}(?::${V6}){1,3}`,
    `(?:${V6}:){5}(?::${V6}){1,2}`,
    `(?:${V6}:){6}(?::${V6})`,
    `:(?::${V6}){1,6}`,
    `${V6}?::`,
    `(?:0:){6}(?:${V6}\\.){3}${V6}`,
    `::(?:ffff:)?(?:${V6}\\.){3}${V6}`,
    `(?:0:){5}ffff:(?:${V6}\\.){3}${V6}$`,
  ].join("|"),
  "iy",
);
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, "iuy");
// The same on ASCII input, where Python's \w is [A-Za-z0-9_]: much faster than the Unicode one.
const ASCII_LABEL = LABEL.replaceAll(PY_WORD, "A-Za-z0-9_");
const HOSTNAME_ASCII = new RegExp(`^${ASCII_LABEL}(?:\\.${ASCII_LABEL})*$`, "iy");

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

type State = "hosts" | "vars" | "children" | "skip";

interface Ref {
  line: number;
  col: number;
}

type Pending = ({ state: "vars" } & Ref) | { state: "children"; refs: Array<Ref & { parent: string }> };

interface Spot {
  line: number;
  keyCol: number;
  valueCol: number;
}

interface SpotNode {
  spot?: Spot;
  children?: Map<string, SpotNode>;
}

/** The SourceFile of an INI file: it locates the paths the parser recorded, else their nearest recorded parent. */
function iniSourceFile(file: string): SourceFile & { record(path: KeyPath, spot: Spot, keepFirst?: boolean): void } {
  const root: SpotNode = {};
  return {
    file,
    record(path, spot, keepFirst = false) {
      let node = root;
      for (const segment of path) {
        node.children ??= new Map();
        let next = node.children.get(String(segment));
        if (!next) {
          next = {};
          node.children.set(String(segment), next);
        }
        node = next;
      }
      if (!(keepFirst && node.spot)) node.spot = spot;
    },
    locate(path, at = "value") {
      let node: SpotNode | undefined = root;
      let best: { line: number; col: number } = { line: 1, col: 1 };
      for (let i = 0; i < path.length && node; i++) {
        node = node.children?.get(String(path[i]));
        const spot = node?.spot;
        if (spot) best = { line: spot.line, col: at === "key" && i === path.length - 1 ? spot.keyCol : spot.valueCol };
      }
      return best;
    },
  };
}

class IniParser {
  private readonly source: ReturnType<typeof iniSourceFile>;
  private readonly events: SourceEvent[] = [];
  private readonly groups: Set<string>;
  private readonly hosts: Set<string>;
  /** Ansible's pending_declarations: groups named before they are declared, in first-mention order. */
  private readonly pending = new Map<string, Pending>();
  /** Parents of each group, to refuse loops as Group.add_child_group does. */
  private readonly parents = new Map<string, Set<string>>([["ungrouped", new Set(["all"])]]);
  /** Groups that have a `[g:vars]` section, for a better message when only that declares them. */
  private readonly varsSections = new Set<string>();
  private errors = 0;
  private lineNo = 0;
  /** Offset of the stripped line in the raw line (Python's line.strip()). */
  private lead = 0;
  private group = "ungrouped";
  private state: State = "hosts";
  /** Problems of the current line, held back in case a better message replaces them. */
  private lineProblems: ConfigProblem[] = [];

  constructor(
    private readonly text: string,
    private readonly file: string,
    private readonly problems: ConfigProblem[],
    options: IniOptions,
  ) {
    this.source = iniSourceFile(file);
    this.groups = new Set(["all", "ungrouped", ...(options.knownGroups ?? [])]);
    this.hosts = new Set(options.knownHosts ?? []);
  }

  parse(): ParsedSource | null {
    if (this.text.startsWith("\ufeff")) {
      this.problems.push({
        file: this.file, line: 1, col: 1, keyPath: "", severity: "warning",
        problem: "the file starts with a byte-order mark, which Ansible reads as part of the first line",
        fix: "save the file as UTF-8 without a BOM",
      });
    }
    const lines = this.text.split(LINE_BREAK);
    for (const raw of lines) {
      this.lineNo++;
      const lead = leadingSpace(raw);
      const stripped = pyStrip(raw, lead);
      if (stripped === "" || stripped.startsWith("#") || stripped.startsWith(";")) continue;
      this.lead = lead;
      this.lineProblems = [];
      const stop = this.parseLine(stripped);
      this.flushLine(stripped);
      if (stop) return null;
    }
    this.reportPending();
    return this.errors > 0 ? null : { file: this.file, events: this.events };
  }

  /** Returns true when the file is not INI at all and parsing should stop. */
  private parseLine(line: string): boolean {
    const m = SECTION.exec(line);
    if (m) {
      this.section(m[1]!, m[2]);
      return false;
    }
    if (line.startsWith("[") && line.endsWith("]")) {
      this.badHeader(line);
      this.state = "skip";
      return false;
    }
    switch (this.state) {
      case "hosts":
        return this.hostLine(line);
      case "vars":
        this.varsLine(line);
        return false;
      case "children":
        this.childrenLine(line);
        return false;
      case "skip":
        return false;
    }
  }

  // ----- sections

  private section(name: string, type: string | undefined): void {
    const state = type ?? "hosts";
    if (state !== "hosts" && state !== "vars" && state !== "children") {
      this.problem(name.length + 2, [`${name}:${type}`], `section [${name}:${type}] has unknown type "${type}"`, `the type after ":" must be vars, children or hosts${suggestType(name, state)}`);
      this.state = "skip";
      return;
    }
    this.group = name;
    this.state = state;
    const path = state === "hosts" ? [name] : [`${name}:${state}`];
    this.source.record(path, this.spot(1, 1), true);
    if (state === "vars") this.varsSections.add(name);
    if (!this.groups.has(name)) {
      // [g] or [g:children] declares a group; [g:vars] only if something else declares it too.
      if (state === "vars" && !this.pending.has(name)) this.pending.set(name, { state: "vars", line: this.lineNo, col: this.col(1) });
      this.groups.add(name);
      this.events.push({ kind: "group", name, at: { source: this.source, path } });
    }
    const pending = this.pending.get(name);
    if (pending && state !== "vars") {
      if (pending.state === "children") this.addPendingChildren(name);
      else this.pending.delete(name);
    }
  }

  private addPendingChildren(group: string): void {
    const pending = this.pending.get(group);
    if (pending?.state !== "children") return;
    for (const ref of pending.refs) {
      this.addChild(ref.parent, group, ref);
      const parentPending = this.pending.get(ref.parent);
      if (parentPending?.state === "children" && ref.parent !== group) this.addPendingChildren(ref.parent);
    }
    this.pending.delete(group);
  }

  private addChild(parent: string, child: string, ref: Ref): void {
    const path = [`${parent}:children`, child];
    const at = (problem: string, fix: string) =>
      this.lineProblems.push({ file: this.file, line: ref.line, col: ref.col, keyPath: formatKeyPath(path), severity: "error", problem, fix });
    if (parent === child) {
      at(`group "${child}" is listed as its own child`, `remove "${child}" from [${parent}:children]`);
      return;
    }
    const childParents = this.parents.get(child) ?? new Set<string>();
    if (childParents.has(parent)) return;
    if (this.isAncestor(child, parent)) {
      at(`making "${child}" a child of "${parent}" creates a loop: "${child}" already contains "${parent}"`, `remove one of the two [..:children] entries`);
      return;
    }
    childParents.add(parent);
    this.parents.set(child, childParents);
    this.events.push({ kind: "child", parent, child, at: { source: this.source, path } });
  }

  /** True when `ancestor` is `group` or one of its parents, grandparents, … */
  private isAncestor(ancestor: string, group: string): boolean {
    const seen = new Set<string>();
    const stack = [group];
    while (stack.length > 0) {
      const g = stack.pop()!;
      if (g === ancestor) return true;
      if (seen.has(g)) continue;
      seen.add(g);
      for (const p of this.parents.get(g) ?? []) stack.push(p);
    }
    return false;
  }

  // ----- [group] host lines

  private hostLine(line: string): boolean {
    let tokens: ShlexToken[];
    try {
      tokens = shlexTokens(line, { comments: true });
    } catch (err) {
      if (!(err instanceof ShlexError)) throw err;
      const quote = line.charAt(err.offset);
      if (err.reason === "No closing quotation") {
        this.problem(err.offset, [this.group], `the ${quote} quote opened here is never closed`, `close it with a matching ${quote}, or escape it as \\${quote}`);
      } else {
        this.problem(err.offset, [this.group], "the line ends with a backslash that escapes nothing", "remove the trailing backslash");
      }
      return false;
    }
    const first = tokens[0];
    if (!first) return false;
    const hostToken = first.value;
    const hostPath = [this.group, hostToken];
    const hostCol = first.start;
    const before = this.lineErrors();

    // InventoryModule._expand_hostpattern
    const address = parseAddress(hostToken);
    const pattern = address ? address.host : hostToken;
    const portText = address?.port;
    let names: string[] = [];
    if (pyStrip(hostToken).endsWith(":") && portText === undefined) {
      this.problem(hostCol, hostPath, `host "${hostToken}" ends in ":" but has no port after it`, `write the port after the colon (${hostToken}2222), or remove the colon`);
    } else {
      names = this.expand(pattern, hostCol, hostPath);
      if (names.some((h) => pyStrip(h) === "---")) {
        this.problem(hostCol, hostPath, `"${hostToken}" starts a YAML document, but this file is read as an INI inventory`, "give a YAML inventory a .yml or .yaml extension");
        return true;
      }
    }

    // Everything after the host: key=value pairs.
    const vars: Record<string, unknown> = {};
    const spots: Array<[string, Spot]> = [];
    for (const token of tokens.slice(1)) {
      const eq = token.value.indexOf("=");
      const keyCol = token.start;
      if (eq === -1) {
        const spaced = tokens.some((t) => t.value.startsWith("=") || t.value.endsWith("="));
        this.problem(keyCol, hostPath, `"${token.value}" after host "${hostToken}" is not a key=value variable`, spaced
          ? 'write key=value with no spaces around "=" (spaces are allowed in [group:vars] sections)'
          : 'write host variables as key=value (quote values with spaces: key="a b"), and each host on its own line');
        continue;
      }
      const key = token.value.slice(0, eq);
      const valueCol = sourceOffset(token, eq) + 1;
      const value = this.value(token.value.slice(eq + 1), valueCol, hostPath, key);
      setOwn(vars, key, value);
      spots.push([key, this.spot(keyCol, valueCol)]);
    }
    if (names.includes("")) this.problem(hostCol, hostPath, "the host name is empty", "give the host a name");
    if (this.lineErrors() > before) return false;

    // InventoryModule._populate_host_vars: add_host(port=) then set_variable, host by host.
    this.source.record(hostPath, this.spot(hostCol, hostCol));
    let port: number | string | undefined;
    if (portText !== undefined && address) {
      port = portNumber(portText);
      this.source.record([...hostPath, "ansible_port"], this.spot(hostCol, sourceOffset(first, address.portIndex)));
    }
    for (const [key, spot] of spots) this.source.record([...hostPath, key], spot);
    // One block per line, shared by the hosts of a range (their vars are the same object in Ansible too).
    const block = spots.length > 0 ? { vars, source: this.source, basePath: hostPath } : null;
    const portBlock = port !== undefined && port !== 0 ? { vars: { ansible_port: port }, source: this.source, basePath: hostPath } : null;
    const at = { source: this.source, path: hostPath };
    for (const name of names) {
      this.events.push({ kind: "host", group: this.group, name, at });
      if (!this.hosts.has(name)) {
        this.hosts.add(name);
        // Host(name, port) sets ansible_port only for a new host, and only for a non-zero port.
        if (portBlock) this.events.push({ kind: "hostVars", host: name, block: portBlock });
      }
      if (!block) continue;
      // InventoryData.set_variable looks the name up among groups first: the vars of a host named
      // like an existing group go to that group (and so to all its hosts), as in Ansible.
      if (this.groups.has(name)) this.events.push({ kind: "groupVars", group: name, block });
      else this.events.push({ kind: "hostVars", host: name, block });
    }
    return false;
  }

  /** Ansible's detect_range/expand_hostname_range, with hostRange.ts doing the expansion. */
  private expand(pattern: string, col: number, path: KeyPath): string[] {
    if (!pattern.includes("[")) return [pattern];
    const bracketed = /^\[([^\]]*)\]$/.exec(pattern);
    if (bracketed && looksLikeAddress(bracketed[1]!)) {
      this.problem(col, path, `"${pattern}" is a bracketed address without a port`, `write the address without brackets (${bracketed[1]}), or give the port after them (${pattern}:22)`);
      return [];
    }
    try {
      return expandHostPattern(pattern);
    } catch (err) {
      if (!(err instanceof HostPatternError)) throw err;
      // hostRange.ts refuses some ranges Ansible accepts (`[3:1]` is no hosts to Ansible, `[-1:1]`
      // is h-1 h0 h1): take Ansible's hosts, and warn with hostRange's explanation.
      const hosts = ansibleExpandHostnameRange(pattern);
      if (hosts === null) {
        // hostRange.ts words its bracketed-address error for YAML inventories.
        if (err.problem.includes("brackets an address")) {
          this.problem(col, path, `"${pattern}" has an address in brackets where a range [start:end] belongs`, "write an IPv6 host without brackets (::1), or bracketed with a port after it ([::1]:22)");
        } else {
          this.problem(col, path, err.problem, err.fix);
        }
        return [];
      }
      const shown = hosts.length === 0 ? "no hosts" : `${hosts.length === 1 ? "the host" : `${hosts.length} hosts`} ${hosts.slice(0, 3).map((h) => JSON.stringify(h)).join(", ")}${hosts.length > 3 ? ", …" : ""}`;
      this.lineProblems.push({
        file: this.file, line: this.lineNo, col: this.col(col), keyPath: formatKeyPath(path), severity: "warning",
        problem: `${err.problem}; Ansible reads it as ${shown}`, fix: err.fix,
      });
      return hosts;
    }
  }

  // ----- [group:vars] lines

  private varsLine(line: string): void {
    const eq = line.indexOf("=");
    const path = [`${this.group}:vars`];
    if (eq === -1) {
      this.problem(0, path, `"${line}" in [${this.group}:vars] is not a key=value variable`, `write one variable per line as key = value; hosts belong under [${this.group}], not [${this.group}:vars]`);
      return;
    }
    const key = pyStrip(line.slice(0, eq));
    const rawValue = line.slice(eq + 1);
    const valueCol = eq + 1 + leadingSpace(rawValue);
    const value = this.value(pyStrip(rawValue), valueCol, path, key);
    if (value === FAILED) return;
    const vars: Record<string, unknown> = {};
    setOwn(vars, key, value);
    this.source.record([...path, key], this.spot(0, valueCol));
    this.events.push({ kind: "groupVars", group: this.group, block: { vars, source: this.source, basePath: path } });
  }

  // ----- [group:children] lines

  private childrenLine(line: string): void {
    const m = GROUP_NAME.exec(line);
    if (!m) {
      this.problem(0, [`${this.group}:children`], `"${line}" in [${this.group}:children] is not a group name`, `list one group name per line; hosts belong under [${this.group}], not [${this.group}:children]`);
      return;
    }
    const child = m[1]!;
    const ref = { line: this.lineNo, col: this.col(0) };
    this.source.record([`${this.group}:children`, child], this.spot(0, 0));
    if (this.groups.has(child)) {
      this.addChild(this.group, child, ref);
      return;
    }
    const pending = this.pending.get(child);
    if (pending === undefined) this.pending.set(child, { state: "children", refs: [{ parent: this.group, ...ref }] });
    else if (pending.state === "children") pending.refs.push({ parent: this.group, ...ref });
  }

  private reportPending(): void {
    this.lineProblems = [];
    for (const [name, decl] of this.pending) {
      const guess = this.nearestGroup(name);
      if (decl.state === "vars") {
        this.lineProblems.push({
          file: this.file, line: decl.line, col: decl.col, keyPath: formatKeyPath([`${name}:vars`]), severity: "error",
          problem: `[${name}:vars] sets variables for group "${name}", which is never declared`,
          fix: guess ? `did you mean [${guess}:vars]? Otherwise declare the group with a [${name}] section` : `declare the group with a [${name}] section (it may be empty) or a [${name}:children] section`,
        });
        continue;
      }
      for (const ref of decl.refs) {
        this.lineProblems.push({
          file: this.file, line: ref.line, col: ref.col, keyPath: formatKeyPath([`${ref.parent}:children`, name]), severity: "error",
          problem: `[${ref.parent}:children] lists "${name}", which is never declared as a group`,
          fix: this.varsSections.has(name)
            ? `a [${name}:vars] section does not declare a group: add a [${name}] section (it may be empty)`
            : guess ? `did you mean "${guess}"? Otherwise declare it with a [${name}] section` : `declare it with a [${name}] section (it may be empty), or remove it`,
        });
      }
    }
    this.flushLine("");
  }

  private nearestGroup(name: string): string | undefined {
    let best: string | undefined;
    let bestDistance = Math.min(2, Math.floor(name.length / 3));
    for (const g of this.groups) {
      if (g === name || this.pending.has(g)) continue;
      const d = editDistance(g, name, bestDistance);
      if (d <= bestDistance && (best === undefined || d < bestDistance)) {
        best = g;
        bestDistance = d;
      }
    }
    return best;
  }

  // ----- values and problems

  private value(text: string, col: number, parent: KeyPath, key: string): unknown {
    try {
      return parseIniValue(text);
    } catch (err) {
      if (!(err instanceof PythonLiteralError)) throw err;
      this.problem(col, [...parent, key], `the value ${shortText(text)} is a Python literal that Ansible cannot load (${err.message})`, "use only strings and numbers as dict keys and set members, or quote the whole value to keep it a string");
      return FAILED;
    }
  }

  private badHeader(line: string): void {
    const { problem, fix } = describeBadHeader(line);
    this.problem(0, [line.slice(1, line.indexOf("]") === -1 ? undefined : line.indexOf("]"))], problem, fix);
  }

  /** The 1-based column in the raw line of index `i` of the stripped line. */
  private col(i: number): number {
    return this.lead + i + 1;
  }

  private spot(keyIndex: number, valueIndex: number): Spot {
    return { line: this.lineNo, keyCol: this.col(keyIndex), valueCol: this.col(valueIndex) };
  }

  /** `index` is where the problem is in the stripped line. */
  private problem(index: number, path: KeyPath, problem: string, fix: string): void {
    this.lineProblems.push({ file: this.file, line: this.lineNo, col: this.col(index), keyPath: formatKeyPath(path), severity: "error", problem, fix });
  }

  private lineErrors(): number {
    let n = 0;
    for (const p of this.lineProblems) if (p.severity === "error") n++;
    return n;
  }

  private flushLine(line: string): void {
    if (this.lineProblems.length === 0) return;
    // A section header with something after it is not a header to Ansible, and the line then
    // fails as a host, variable or child; say what is really wrong.
    const header = /^\[[^\]]*\]/.exec(line);
    const first = this.lineProblems.find((p) => p.severity === "error");
    if (!first) {
      // warnings only
    } else if (header && line !== header[0] && !SECTION.test(line) && new RegExp(`^[;${PY_SPACE}]`, "u").test(line.slice(header[0].length))) {
      const { problem, fix } = describeBadHeader(line);
      this.lineProblems = [{ ...first, col: this.col(0), keyPath: formatKeyPath([header[0].slice(1, -1)]), problem, fix }];
    } else if (line.startsWith("[") && !line.includes("]") && /^\[[^:\s]+(:\w+)?$/.test(line)) {
      this.lineProblems = [{ ...first, col: this.col(0), keyPath: formatKeyPath([line.slice(1)]), problem: `section header "${line}" has no closing "]"`, fix: `close it: ${line}]` }];
    }
    this.errors += this.lineErrors();
    this.problems.push(...this.lineProblems);
    this.lineProblems = [];
  }
}

const FAILED = Symbol("failed");

/** Ansible's parse_address(address, allow_ranges=True); null where it raises. `portIndex` is where the port digits start. */
export function parseAddress(address: string): { host: string; port?: string; portIndex: number } | null {
  let port: string | undefined;
  let portIndex = -1;
  let base = 0;
  let rest = address;
  BRACKETED_HOSTPORT.lastIndex = 0;
  let m = BRACKETED_HOSTPORT.exec(rest);
  if (m) {
    port = m[2]!;
    portIndex = rest.length - port.length;
    rest = m[1]!;
    base = 1;
  }
  HOSTPORT.lastIndex = 0;
  m = HOSTPORT.exec(rest);
  if (m) {
    port = m[2]!;
    portIndex = base + m[1]!.length + 1;
    rest = m[1]!;
  }
  for (const re of [IPV4, IPV6, /^[\x00-\x7f]*$/.test(rest) ? HOSTNAME_ASCII : HOSTNAME]) {
    re.lastIndex = 0;
    if (re.test(rest)) return port === undefined ? { host: rest, portIndex } : { host: rest, port, portIndex };
  }
  return null;
}

/** Python's int(port); kept as its digits if a double cannot hold it exactly. */
function portNumber(digits: string): number | string {
  const big = BigInt(digits);
  return big <= MAX_SAFE ? Number(big) : digits;
}

const ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/**
 * Ansible's expand_hostname_range (plugins/inventory/__init__.py) exactly, quirks included:
 * `[3:1]` and negative steps give no hosts, `[ab:cd]` finds its bounds as substrings of
 * string.ascii_letters. Null where Ansible raises, or where the names would exceed hostRange's
 * MAX_EXPANDED_HOSTS (Ansible would try to build them all).
 */
export function ansibleExpandHostnameRange(line: string): string[] | null {
  const out: string[] = [];
  const expand = (text: string): boolean => {
    if (text === "") return true;
    const parts = text.replace("[", "|").replace("]", "|").split("|");
    if (parts.length !== 3) return false;
    const [head = "", nrange = "", tail = ""] = parts;
    const bounds = nrange.split(":");
    if (bounds.length !== 2 && bounds.length !== 3) return false;
    const beg = bounds[0] || "0";
    const end = bounds[1]!;
    const stepText = bounds[2];
    if (end === "") return false;
    let fill = (x: string | bigint): string => String(x);
    if (beg[0] === "0" && beg.length > 1) {
      if (beg.length !== end.length) return false;
      fill = (x) => zfill(String(x), beg.length);
    }
    let seq: Array<string | bigint> | null = null;
    const iBeg = ASCII_LETTERS.indexOf(beg);
    const iEnd = ASCII_LETTERS.indexOf(end);
    if (iBeg !== -1 && iEnd !== -1) {
      if (iBeg > iEnd) return false;
      const step = stepText === undefined ? 1n : pyInt(stepText);
      if (step !== null && step !== 0n) {
        seq = [];
        // A negative step over an ascending slice selects nothing.
        if (step > 0n) for (let i = iBeg; i <= iEnd; i += Number(step)) seq.push(ASCII_LETTERS.charAt(i));
      }
    }
    if (seq === null) {
      const from = pyInt(beg);
      const to = pyInt(end);
      const step = stepText === undefined ? 1n : pyInt(stepText);
      if (from === null || to === null || step === null || step === 0n) return false;
      const count = step > 0n ? (to + 1n - from + step - 1n) / step : (from - to - 1n + -step - 1n) / -step;
      if (count > BigInt(MAX_EXPANDED_HOSTS)) return false;
      seq = [];
      if (step > 0n) for (let x = from; x < to + 1n; x += step) seq.push(x);
      else for (let x = from; x > to + 1n; x += step) seq.push(x);
    }
    for (const value of seq) {
      const name = `${head}${fill(value)}${tail}`;
      if (name.includes("[")) {
        if (!expand(name)) return false;
      } else {
        out.push(name);
        if (out.length > MAX_EXPANDED_HOSTS) return false;
      }
    }
    return true;
  };
  return expand(line) ? out : null;
}

/** Python's int(text) for ASCII digits: surrounding spaces, a sign, `_` between digits. */
function pyInt(text: string): bigint | null {
  const t = pyStrip(text);
  if (!/^[+-]?[0-9](?:_?[0-9])*$/.test(t)) return null;
  return BigInt(t.replace(/_/g, "").replace(/^\+/, ""));
}

/** Python's str.zfill. */
function zfill(s: string, width: number): string {
  const sign = s.startsWith("-") || s.startsWith("+") ? s[0]! : "";
  const digits = s.slice(sign.length);
  return sign + digits.padStart(width - sign.length, "0");
}

function looksLikeAddress(body: string): boolean {
  return isIP(body) !== 0 || body.includes("::") || body.split(":").length - 1 > 2;
}

function describeBadHeader(line: string): { problem: string; fix: string } {
  const close = line.indexOf("]");
  const header = close === -1 ? line : line.slice(0, close + 1);
  const inner = header.slice(1, close === -1 ? undefined : -1);
  const rest = close === -1 ? "" : pyStrip(line.slice(close + 1));
  if (inner === "") return { problem: `section header "${header}" has no group name`, fix: "write the group name between the brackets, e.g. [web]" };
  if (looksLikeAddress(inner)) {
    return { problem: `"${header}" reads as a section header, not as the host ${inner}`, fix: `write the address without brackets (${inner}), or with a port after them (${header}:22)` };
  }
  if (new RegExp(`[${PY_SPACE}]`, "u").test(inner)) {
    return { problem: `section header "${header}" has a space in it`, fix: `group names cannot contain spaces: write e.g. [${inner.trim().split(new RegExp(`[${PY_SPACE}]+`, "u")).join("_")}]` };
  }
  if (rest.startsWith(";")) return { problem: `the ";" comment after "${header}" makes Ansible read the line as something other than a section header`, fix: "use # for a comment after a section header" };
  if (rest !== "" && !rest.startsWith("#")) return { problem: `"${rest}" follows the section header "${header}" on the same line`, fix: "put it on its own line; only a # comment may follow a section header" };
  return { problem: `"${header}" is not a valid section header`, fix: "write [group], [group:vars] or [group:children], the group name without ':' or ']'" };
}

function suggestType(name: string, type: string): string {
  const lower = type.toLowerCase();
  for (const t of ["vars", "children", "hosts"]) {
    if (lower === t || (lower.length >= 3 && (t.startsWith(lower) || lower.startsWith(t.slice(0, 3))))) return `: did you mean [${name}:${t}]?`;
  }
  return `, e.g. [${name}:vars]`;
}

/** Python's str.strip(). */
function pyStrip(s: string, lead = leadingSpace(s)): string {
  let end = s.length;
  while (end > lead && isPySpace(s.charCodeAt(end - 1))) end--;
  return lead === 0 && end === s.length ? s : s.slice(lead, end);
}

/** How many of Python's whitespace characters `s` starts with. */
function leadingSpace(s: string): number {
  let i = 0;
  while (i < s.length && isPySpace(s.charCodeAt(i))) i++;
  return i;
}

function isPySpace(code: number): boolean {
  if (code > 0x20 && code < 0x85) return false;
  return code <= 0x20 ? code >= 0x1c || (code >= 0x09 && code <= 0x0d) : PY_SPACE_CHAR.test(String.fromCharCode(code));
}

/** obj[key] = value, even for a key named __proto__. */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

function shortText(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** Levenshtein distance, giving up (returning limit + 1) once it must exceed `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      rowMin = Math.min(rowMin, v);
    }
    if (rowMin > limit) return limit + 1;
    prev = cur;
  }
  return prev[b.length]!;
}
