import type { ConfigProblem } from "./errors.js";

/**
 * INI files read the way Ansible reads ansible.cfg: Python's configparser with Ansible's one
 * change, `ConfigParser(inline_comment_prefixes=(';',))` (ansible/config/manager.py), so that
 *
 * - `key = value` and `key: value` (the first `=` or `:` splits; spaces around it are dropped);
 *   keys are lowercased, values are kept as written (no quote handling, no types);
 * - a line whose first non-blank character is `#` or `;` is a comment; inside a line only `;`
 *   after whitespace starts a comment. `#` never does: `forks = 10 # ten` has the value `10 # ten`,
 *   which Ansible cannot read as a number either;
 * - a line indented deeper than its key's line continues the value (joined with a newline), and
 *   blank lines inside such a value are kept; trailing ones are not;
 * - `[section]` headers (case-sensitive); `[DEFAULT]` holds values every section falls back on;
 * - a line before any section, a line without `=` or `:`, a second `[section]` of the same name
 *   or a key twice in one section is an error (configparser's strict mode, which Ansible uses).
 *
 * npm's `ini` package is no substitute: it cuts values at any `#` or `;`, reads no `:` delimiter
 * or continuation lines, nests `[a.b]`, turns `true` into a boolean, silently skips bad lines and
 * keeps no line numbers. Pure.
 */

export interface IniEntry {
  /** The key as configparser stores it: lowercased. */
  key: string;
  value: string;
  line: number;
  /** 1-based columns of the key and of the value's first character. */
  keyCol: number;
  valueCol: number;
}

export interface IniSection {
  name: string;
  line: number;
  entries: Map<string, IniEntry>;
}

export interface IniFile {
  file: string;
  /** In file order; `[DEFAULT]` is not among them. */
  sections: Map<string, IniSection>;
  /** `[DEFAULT]`'s entries. */
  defaults: Map<string, IniEntry>;
}

const DEFAULT_SECTION = "DEFAULT";

export function parseIni(text: string, file: string, problems: ConfigProblem[]): IniFile {
  const out: IniFile = { file, sections: new Map(), defaults: new Map() };
  const problem = (line: number, col: number, keyPath: string, what: string, fix: string) =>
    problems.push({ file, line, col, keyPath, severity: "error", problem: what, fix });
  let section: Map<string, IniEntry> | null = null;
  let sectionName = "";
  let outsideReported = false;
  /** The entry whose value continuation lines extend, with its lines so far. */
  let open: { entry: IniEntry; parts: string[] } | null = null;
  let indentLevel = 0;
  const seenSections = new Set<string>();
  const close = () => {
    if (open) open.entry.value = open.parts.join("\n").trimEnd();
    open = null;
  };

  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    let commentStart = inlineComment(raw);
    const trimmed = raw.trim();
    if (trimmed.startsWith("#") || trimmed.startsWith(";")) commentStart = 0;
    const content = (commentStart === -1 ? raw : raw.slice(0, commentStart)).trim();
    if (content === "") {
      // configparser keeps a blank line inside a value (not a comment line); trailing ones go at the end.
      if (commentStart === -1 && open) open.parts.push("");
      continue;
    }
    const indent = raw.search(/\S/);
    if (open && section && indent > indentLevel) {
      open.parts.push(content);
      continue;
    }
    close();
    indentLevel = indent;
    const header = /^\[(.+)\]/.exec(content);
    if (header) {
      sectionName = header[1]!;
      if (sectionName === DEFAULT_SECTION) {
        section = out.defaults;
        continue;
      }
      const existing = out.sections.get(sectionName);
      if (existing && seenSections.has(sectionName)) {
        problem(
          lineNo,
          indent + 1,
          `[${sectionName}]`,
          `section [${sectionName}] is here a second time (first at line ${existing.line})`,
          "merge its settings into the first one",
        );
        section = existing.entries;
        continue;
      }
      seenSections.add(sectionName);
      const created: IniSection = { name: sectionName, line: lineNo, entries: new Map() };
      out.sections.set(sectionName, created);
      section = created.entries;
      continue;
    }
    if (!section) {
      if (!outsideReported)
        problem(
          lineNo,
          indent + 1,
          "",
          "a setting before any [section] header",
          "put [defaults] on a line above it (settings belong to a section)",
        );
      outsideReported = true;
      continue;
    }
    const option = /^(.*?)\s*([=:])\s*(.*)$/.exec(content);
    if (!option || option[1] === "") {
      problem(
        lineNo,
        indent + 1,
        `[${sectionName}]`,
        `${JSON.stringify(content.length > 60 ? `${content.slice(0, 60)}…` : content)} is not a setting`,
        "write key = value (or key: value); a comment line starts with # or ;",
      );
      continue;
    }
    const key = option[1]!.trimEnd().toLowerCase();
    const value = option[3]!;
    const earlier = section.get(key);
    if (earlier) {
      problem(
        lineNo,
        indent + 1,
        key,
        `${key} is set a second time in [${sectionName}] (first at line ${earlier.line})`,
        "keep one of the two lines",
      );
      continue;
    }
    const entry: IniEntry = {
      key,
      value,
      line: lineNo,
      keyCol: indent + 1,
      valueCol: indent + content.length - value.length + 1,
    };
    section.set(key, entry);
    open = { entry, parts: [value] };
  }
  close();
  return out;
}

/** Index of an inline comment: the first `;` at the start of the line or after whitespace; -1 if none. */
function inlineComment(line: string): number {
  for (let at = line.indexOf(";"); at !== -1; at = line.indexOf(";", at + 1)) {
    if (at === 0 || /\s/.test(line[at - 1]!)) return at;
  }
  return -1;
}

/** configparser's `get(section, key)`: the section's value, else `[DEFAULT]`'s; nothing when the section is missing. */
export function iniValue(ini: IniFile, section: string, key: string): IniEntry | undefined {
  const entries = ini.sections.get(section)?.entries;
  if (!entries) return undefined;
  return entries.get(key) ?? ini.defaults.get(key);
}
