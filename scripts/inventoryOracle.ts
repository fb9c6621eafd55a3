/**
 * Records what Ansible itself makes of every inventory case under test/fixtures/inventories/:
 * `ansible-inventory -i … --list` (parsed, re-serialised with 2-space indent and sorted keys) into
 * ansible-inventory.json, and `ansible-inventory -i … --graph` into ansible-graph.txt.
 *
 *   npm run inventory:oracle                     rewrite every case's recordings
 *   npm run inventory:oracle -- --check          regenerate in memory, list every case that differs (exit 1)
 *   npm run inventory:oracle -- [--check] NAME…  only these cases
 *
 * ansible-inventory runs in an empty temporary cwd, with ANSIBLE_CONFIG an empty file, ANSIBLE_HOME
 * (and HOME) in a temporary directory, no inherited ANSIBLE_* variables, every unparsable source
 * fatal, and every `[WARNING]` an error unless the case's expectedWarnings justifies it.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import { listCases, INVENTORY_CASES_DIR, type InventoryCase } from "./inventoryCases.js";
import { plural } from "../src/output/words.js";

const INSTALL_HINT = "ansible-inventory not found: apt-get install -y --no-install-recommends ansible-core";

interface Sandbox {
  root: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  scripts: string;
}

interface Recording {
  list: string;
  graph: string;
}

class CaseError extends Error {}

function makeSandbox(): Sandbox {
  const root = mkdtempSync(join(tmpdir(), "inventory-oracle-"));
  const cwd = join(root, "cwd");
  const home = join(root, "home");
  const ansibleHome = join(root, "ansible-home");
  const scripts = join(root, "list-json");
  for (const d of [cwd, home, ansibleHome, scripts]) mkdirSync(d);
  const config = join(root, "ansible.cfg");
  writeFileSync(config, "");
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("ANSIBLE_")) env[k] = v;
  Object.assign(env, {
    HOME: home,
    ANSIBLE_CONFIG: config,
    ANSIBLE_HOME: ansibleHome,
    ANSIBLE_INVENTORY_UNPARSED_FAILED: "1",
    ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED: "1",
    ANSIBLE_NOCOLOR: "1",
    LC_ALL: "C.UTF-8",
  });
  return { root, cwd, env, scripts };
}

/**
 * A `--list` JSON file as Ansible's script inventory plugin would run it: an executable that prints
 * the file (and `{}` for `--host`, which Ansible doesn't ask for since the JSON carries `_meta`).
 */
function listJsonScript(sandbox: Sandbox, c: InventoryCase, file: string, index: number): string {
  const dir = join(sandbox.scripts, `${c.name}-${index}`);
  mkdirSync(dir, { recursive: true });
  const script = join(dir, basename(file).replace(/\.json$/, ""));
  const quoted = `'${file.replace(/'/g, `'\\''`)}'`;
  writeFileSync(script, `#!/bin/sh\nif [ "$1" = "--host" ]; then echo '{}'; else cat ${quoted}; fi\n`);
  chmodSync(script, 0o755);
  return script;
}

function inventoryArgs(sandbox: Sandbox, c: InventoryCase): string[] {
  const args: string[] = [];
  c.sources.forEach((src, i) => args.push("-i", c.listJson.includes(src) ? listJsonScript(sandbox, c, src, i) : src));
  if (c.playbookDir !== null) args.push("--playbook-dir", c.playbookDir);
  if (c.vaultPasswordFile !== null) args.push("--vault-password-file", c.vaultPasswordFile);
  return args;
}

/** `[WARNING]: …` and `[DEPRECATION WARNING]: …` messages in stderr, each unwrapped to one line. */
function parseWarnings(stderr: string): string[] {
  const out: string[] = [];
  let current: string[] | null = null;
  for (const line of stderr.split("\n")) {
    const m = /^\[(?:DEPRECATION )?WARNING\]:?\s*(.*)$/.exec(line);
    if (m) {
      if (current) out.push(current.join(" "));
      current = [m[1] ?? ""];
    } else if (current && line.trim() !== "" && !line.startsWith("[") && !line.startsWith("ERROR!")) {
      current.push(line.trim());
    } else if (current) {
      out.push(current.join(" "));
      current = null;
    }
  }
  if (current) out.push(current.join(" "));
  return out;
}

function checkWarnings(c: InventoryCase, warnings: string[], what: string): void {
  const patterns = c.expectedWarnings.map((re) => new RegExp(re));
  const unexpected = warnings.filter((w) => !patterns.some((p) => p.test(w)));
  if (unexpected.length > 0) {
    throw new CaseError(
      `ansible-inventory ${what} printed warnings the case doesn't expect (fix the fixture, or justify them in case.json "expectedWarnings"):\n` +
        unexpected.map((w) => `    [WARNING]: ${w}`).join("\n"),
    );
  }
  const unused = c.expectedWarnings.filter((_, i) => !warnings.some((w) => patterns[i]!.test(w)));
  if (unused.length > 0) {
    throw new CaseError(
      `ansible-inventory ${what} no longer prints these expected warnings (remove them from case.json): ${unused.map((s) => JSON.stringify(s)).join(", ")}`,
    );
  }
}

function runAnsibleInventory(sandbox: Sandbox, c: InventoryCase, args: string[], what: string): string {
  const r = spawnSync("ansible-inventory", args, {
    cwd: sandbox.cwd,
    env: sandbox.env,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === "ENOENT") throw new CaseError(INSTALL_HINT);
    throw new CaseError(`cannot run ansible-inventory: ${r.error.message}`);
  }
  if (r.status !== 0) {
    throw new CaseError(
      `ansible-inventory ${what} exited with ${r.status ?? r.signal}:\n${indent(r.stderr || r.stdout)}`,
    );
  }
  checkWarnings(c, parseWarnings(r.stderr), what);
  return r.stdout;
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

/** JSON with object keys sorted (by code point, as Python's sort_keys) and 2-space indent. */
function stableJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
        out[k] = sort((v as Record<string, unknown>)[k]);
      return out;
    }
    return v;
  };
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

function record(sandbox: Sandbox, c: InventoryCase): Recording {
  const args = inventoryArgs(sandbox, c);
  const listOut = runAnsibleInventory(sandbox, c, [...args, "--list"], "--list");
  let parsed: unknown;
  try {
    parsed = JSON.parse(listOut);
  } catch (e) {
    throw new CaseError(
      `ansible-inventory --list printed something that isn't JSON (${(e as Error).message}):\n${indent(listOut.slice(0, 2000))}`,
    );
  }
  const graph = runAnsibleInventory(sandbox, c, [...args, "--graph"], "--graph");
  return { list: stableJson(parsed), graph };
}

function readOrNull(file: string): string | null {
  return existsSync(file) ? readFileSync(file, "utf8") : null;
}

/** The first differing line of two texts, for the report. */
function firstDifference(recorded: string | null, actual: string): string {
  if (recorded === null) return "not recorded";
  const a = recorded.split("\n");
  const b = actual.split("\n");
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i])
      return `line ${i + 1}: recorded ${JSON.stringify(a[i] ?? "<end>")}, ansible-inventory prints ${JSON.stringify(b[i] ?? "<end>")}`;
  }
  return "differs";
}

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const unknownFlags = argv.filter((a) => a.startsWith("-") && a !== "--check");
  if (unknownFlags.length > 0) {
    console.error(`unknown option ${unknownFlags.join(" ")}; usage: inventoryOracle [--check] [CASE…]`);
    return 2;
  }
  const wanted = argv.filter((a) => !a.startsWith("-"));

  const version = spawnSync("ansible-inventory", ["--version"], { encoding: "utf8" });
  if (version.error || version.status !== 0) {
    console.error(INSTALL_HINT);
    return 1;
  }
  const versionLine = (version.stdout.split("\n")[0] ?? "").trim();

  let cases: InventoryCase[];
  try {
    cases = listCases();
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
  const unknownCases = wanted.filter((w) => !cases.some((c) => c.name === w));
  if (unknownCases.length > 0) {
    console.error(
      `no such case: ${unknownCases.join(", ")} (cases are the directories of ${relative(process.cwd(), INVENTORY_CASES_DIR) || "."})`,
    );
    return 1;
  }
  if (wanted.length > 0) cases = cases.filter((c) => wanted.includes(c.name));

  console.log(`${versionLine}: ${check ? "checking" : "recording"} ${plural(cases.length, "inventory case")}`);
  const sandbox = makeSandbox();
  const failed: string[] = [];
  const differ: string[] = [];
  try {
    for (const c of cases) {
      let rec: Recording;
      try {
        rec = record(sandbox, c);
      } catch (e) {
        if (!(e instanceof CaseError)) throw e;
        console.error(`FAIL ${c.name}: ${e.message}`);
        failed.push(c.name);
        continue;
      }
      if (check) {
        const problems: string[] = [];
        const list = readOrNull(c.listFile);
        const graph = readOrNull(c.graphFile);
        if (list !== rec.list) problems.push(`${relative(c.dir, c.listFile)} ${firstDifference(list, rec.list)}`);
        if (graph !== rec.graph) problems.push(`${relative(c.dir, c.graphFile)} ${firstDifference(graph, rec.graph)}`);
        if (problems.length > 0) {
          console.error(`DIFF ${c.name}:\n${problems.map((p) => `    ${p}`).join("\n")}`);
          differ.push(c.name);
        } else {
          console.log(`ok   ${c.name}`);
        }
      } else {
        writeFileSync(c.listFile, rec.list);
        writeFileSync(c.graphFile, rec.graph);
        console.log(`wrote ${c.name}`);
      }
    }
  } finally {
    rmSync(sandbox.root, { recursive: true, force: true });
  }

  if (failed.length > 0) console.error(`${plural(failed.length, "case")} failed: ${failed.join(", ")}`);
  if (differ.length > 0) {
    console.error(
      `${plural(differ.length, "recording")} differ from ansible-inventory: ${differ.join(", ")} (npm run inventory:oracle rewrites them)`,
    );
  }
  if (failed.length > 0 || differ.length > 0) return 1;
  if (check) console.log(`all ${cases.length} recordings match ansible-inventory`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
