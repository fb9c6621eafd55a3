import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * One case of the Ansible inventory corpus (test/fixtures/inventories/<name>/): inventory sources
 * shaped like real repositories, and what ansible-inventory 2.14 printed for them
 * (`ansible-inventory.json`, `ansible-graph.txt`, written by scripts/inventoryOracle.ts).
 */
export interface InventoryCase {
  /** The case's directory name, e.g. `ini-basic`. */
  name: string;
  /** Absolute path of the case directory. */
  dir: string;
  description: string;
  /** Absolute paths of the `-i` sources, in order; files or directories. */
  sources: string[];
  /** The subset of `sources` that are `ansible-inventory --list` JSON (absolute paths, in source order). */
  listJson: string[];
  /** Absolute path passed as `--playbook-dir` (its group_vars/ and host_vars/ apply), or null. */
  playbookDir: string | null;
  /** Absolute path passed as `--vault-password-file`, or null. */
  vaultPasswordFile: string | null;
  /** Regexes, each matching one `[WARNING]` Ansible prints for this case (justified in the description). */
  expectedWarnings: string[];
  /** Absolute path of the recorded `ansible-inventory --list` output (2-space indent, sorted keys). */
  listFile: string;
  /** Absolute path of the recorded `ansible-inventory --graph` output. */
  graphFile: string;
}

export const CASE_FILE = "case.json";
export const LIST_FILE = "ansible-inventory.json";
export const GRAPH_FILE = "ansible-graph.txt";

const KNOWN_KEYS = new Set([
  "description",
  "sources",
  "listJson",
  "playbookDir",
  "vaultPasswordFile",
  "expectedWarnings",
]);

/** The repository root: the nearest directory above this file (scripts/ or dist/scripts/) with provision's package.json (the one whose bin is `provision`). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        // The package is published under another name; its command is what makes it provision.
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { bin?: { provision?: unknown } }).bin?.provision) return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find provision's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Absolute path of test/fixtures/inventories. */
export const INVENTORY_CASES_DIR = join(repoRoot(), "test", "fixtures", "inventories");

/** Every case under `root` (default test/fixtures/inventories), sorted by name. Throws on a malformed case.json. */
export function listCases(root: string = INVENTORY_CASES_DIR): InventoryCase[] {
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith("."))
    .map((e) => e.name)
    .sort()
    .map((name) => readCase(join(root, name)));
}

/** Reads one case directory's case.json. */
export function readCase(dir: string): InventoryCase {
  const name = dir.split(sep).pop() ?? dir;
  const file = join(dir, CASE_FILE);
  const fail = (msg: string): never => {
    throw new Error(`${file}: ${msg}`);
  };
  if (!existsSync(file)) fail("missing: every directory here is a case and needs a case.json");
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    fail(`not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("must be a JSON object");
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj))
    if (!KNOWN_KEYS.has(key)) fail(`unknown key "${key}" (known: ${[...KNOWN_KEYS].join(", ")})`);

  const description = obj.description;
  if (typeof description !== "string" || description.trim() === "") fail(`"description" must be a non-empty string`);

  const strings = (key: string, required: boolean): string[] => {
    const v = obj[key];
    if (v === undefined && !required) return [];
    if (!Array.isArray(v) || (required && v.length === 0) || !v.every((s) => typeof s === "string" && s !== "")) {
      fail(`"${key}" must be ${required ? "a non-empty" : "an"} array of non-empty strings`);
    }
    return v as string[];
  };
  const inCase = (key: string, rel: string, kind: "file" | "dir" | "any"): string => {
    if (isAbsolute(rel)) fail(`"${key}": "${rel}" must be relative to the case directory`);
    const abs = resolve(dir, rel);
    const r = relative(dir, abs);
    if (r === "" || r.startsWith("..") || isAbsolute(r))
      fail(`"${key}": "${rel}" must name a path inside the case directory`);
    if (!existsSync(abs)) fail(`"${key}": ${rel} does not exist`);
    const st = statSync(abs);
    if (kind === "file" && !st.isFile()) fail(`"${key}": ${rel} must be a file`);
    if (kind === "dir" && !st.isDirectory()) fail(`"${key}": ${rel} must be a directory`);
    return abs;
  };

  const sourcesRel = strings("sources", true);
  const sources = sourcesRel.map((s) => inCase("sources", s, "any"));
  const listJsonRel = strings("listJson", false);
  const listJsonSet = new Set(listJsonRel.map((s) => inCase("listJson", s, "file")));
  for (const abs of listJsonSet)
    if (!sources.includes(abs))
      fail(`"listJson": ${relative(dir, abs)} must also be listed in "sources" (its place among the -i arguments)`);
  const listJson = sources.filter((s) => listJsonSet.has(s));

  const optional = (key: string, kind: "file" | "dir"): string | null => {
    const v = obj[key];
    if (v === undefined) return null;
    if (typeof v !== "string" || v === "") fail(`"${key}" must be a non-empty string`);
    return inCase(key, v as string, kind);
  };
  const playbookDir = optional("playbookDir", "dir");
  const vaultPasswordFile = optional("vaultPasswordFile", "file");

  const expectedWarnings = strings("expectedWarnings", false);
  for (const re of expectedWarnings) {
    try {
      new RegExp(re);
    } catch (e) {
      fail(`"expectedWarnings": ${JSON.stringify(re)} is not a valid regex: ${(e as Error).message}`);
    }
  }

  return {
    name,
    dir,
    description: description as string,
    sources,
    listJson,
    playbookDir,
    vaultPasswordFile,
    expectedWarnings,
    listFile: join(dir, LIST_FILE),
    graphFile: join(dir, GRAPH_FILE),
  };
}
