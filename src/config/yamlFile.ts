import { readFileSync } from "node:fs";
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type Node,
  type Tags,
} from "yaml";
import { UnsafeValue, VaultValue } from "./ansibleValues.js";
import { unreadableFile, type ConfigProblem } from "./errors.js";

export type KeyPath = ReadonlyArray<string | number>;

/** A parsed YAML file that remembers where every key and value came from. */
export interface YamlFile {
  file: string;
  data: unknown;
  /** Line/column of the value at `path` (or of its key, when `at` is "key"); falls back to the nearest parent. */
  locate(path: KeyPath, at?: "key" | "value"): { line: number; col: number };
}

export function loadYamlFile(file: string, problems: ConfigProblem[]): YamlFile | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    problems.push(unreadableFile(file, err));
    return null;
  }
  return parseYamlText(text, file, problems);
}

export function parseYamlText(text: string, file: string, problems: ConfigProblem[]): YamlFile | null {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    version: "1.1",
    merge: true,
    customTags: asPyYaml,
  });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = lineCounter.linePos(e.pos[0]);
      problems.push({
        file,
        line: pos.line,
        col: pos.col,
        keyPath: "",
        severity: "error",
        problem: `YAML syntax error: ${firstLine(e.message)}`,
        fix: "fix the YAML syntax at this position (indentation, quotes, a missing colon)",
      });
    }
    return null;
  }
  // Memoized: every host of a large inventory asks for the same group and role keys.
  const located = new Map<string, { line: number; col: number }>();
  const locate = (path: KeyPath, at: "key" | "value" = "value") => {
    const id = `${at}\u0000${path.join("\u0000")}`;
    const known = located.get(id);
    if (known) return { ...known };
    const pos = lineCounter.linePos(findOffset(doc, path, at));
    located.set(id, { line: pos.line, col: pos.col });
    return { line: pos.line, col: pos.col };
  };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const at = lineCounter.linePos(firstBadAliasOffset(doc) ?? 0);
    problems.push({
      file,
      line: at.line,
      col: at.col,
      keyPath: "",
      severity: "error",
      problem: `YAML cannot be expanded: ${firstLine((err as Error).message)}`,
      fix: "define every *alias with an &anchor before it, and don't nest aliases to expand into huge documents",
    });
    return null;
  }
  if (isCyclic(data)) {
    problems.push({
      file,
      line: 1,
      col: 1,
      keyPath: "",
      severity: "error",
      problem: "an alias refers to a mapping that contains it, so the document never ends",
      fix: "replace the self-referencing *alias with the values it should hold",
    });
    return null;
  }
  return { file, data, locate };
}

// Ansible reads YAML with PyYAML: YAML 1.1 scalars, but `y`/`n` stay strings, an exponent needs a
// dot and a sign (`1e3` is a string), and dates stay text in what ansible-inventory prints.
const PYYAML_TESTS: Record<string, RegExp> = {
  "/^(?:Y|y|[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/": /^(?:[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/,
  "/^(?:N|n|[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/": /^(?:[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/,
  "/^[-+]?(?:[0-9][0-9_]*)?(?:\\.[0-9_]*)?[eE][-+]?[0-9]+$/":
    /^[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)[eE][-+][0-9]+$/,
};

const TIMESTAMP =
  /^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?(?:[ \t]*(Z|([-+])([0-9]{1,2})(?::([0-9]{2}))?))?)?$/;

/** A YAML timestamp as ansible-inventory prints it: Python's isoformat() of what PyYAML builds. */
function pythonIsoTimestamp(text: string): string {
  const m = TIMESTAMP.exec(text);
  if (!m) return text;
  const two = (s: string | undefined) => (s ?? "0").padStart(2, "0");
  const date = `${m[1]}-${two(m[2])}-${two(m[3])}`;
  if (m[4] === undefined) return date;
  const fraction = m[7] ? `.${m[7].slice(0, 6).padEnd(6, "0")}` : "";
  const zone = m[8] === undefined ? "" : m[8] === "Z" ? "+00:00" : `${m[9]}${two(m[10])}:${two(m[11])}`;
  return `${date}T${two(m[4])}:${m[5]}:${m[6]}${fraction === ".000000" ? "" : fraction}${zone}`;
}

function asPyYaml(tags: Tags): Tags {
  const adjusted = tags
    .filter((t) => typeof t === "string" || t.tag !== "tag:yaml.org,2002:timestamp")
    .map((t) => {
      if (typeof t === "string" || !("test" in t) || !t.test) return t;
      const test = PYYAML_TESTS[String(t.test)];
      return test ? { ...t, test } : t;
    });
  return [
    ...adjusted,
    { tag: "tag:yaml.org,2002:timestamp", test: TIMESTAMP, default: true, resolve: pythonIsoTimestamp },
    { tag: "!vault", resolve: (s: string) => new VaultValue(s) },
    { tag: "!unsafe", resolve: (s: string) => new UnsafeValue(s) },
  ];
}

function isCyclic(value: unknown, ancestors = new Set<unknown>()): boolean {
  if (value === null || typeof value !== "object" || value instanceof VaultValue || value instanceof UnsafeValue)
    return false;
  if (ancestors.has(value)) return true;
  ancestors.add(value);
  const children = Array.isArray(value) ? value : Object.values(value as object);
  const found = children.some((child) => isCyclic(child, ancestors));
  ancestors.delete(value);
  return found;
}

function firstBadAliasOffset(doc: Document): number | undefined {
  let offset: number | undefined;
  visit(doc, {
    Alias(_, node) {
      if (offset === undefined && node.resolve(doc) === undefined) offset = node.range?.[0];
    },
  });
  return offset;
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? message).replace(/ at line \d+, column \d+:?$/, "");
}

function findOffset(doc: Document, path: KeyPath, at: "key" | "value"): number {
  let node: unknown = doc.contents;
  let best = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    const isLast = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && keyText(p.key) === String(segment));
      if (!pair) return best;
      const keyStart = rangeStart(pair.key);
      if (isLast && at === "key" && keyStart !== undefined) return keyStart;
      node = pair.value;
      best = rangeStart(node) ?? keyStart ?? best;
    } else if (isSeq(node) && typeof segment === "number") {
      node = node.items[segment];
      best = rangeStart(node) ?? best;
    } else {
      return best;
    }
  }
  return best;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return undefined;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/** `a.b[0].c` — how key paths are printed in errors. */
export function formatKeyPath(path: KeyPath): string {
  let out = "";
  for (const seg of path) {
    // A hostile key (a newline, a quote) is printed escaped, so one problem stays one line.
    const name = /^[\w@%+,:[\]*./-]*$/.test(seg as string) ? String(seg) : JSON.stringify(seg);
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? name : `.${name}`;
  }
  return out;
}
