import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import type { ConfigProblem } from "../config/errors.js";
import { parseYamlText } from "../config/yamlFile.js";
import type { VarBlock } from "./sources/model.js";

const VARS_EXTENSIONS = ["", ".yml", ".yaml", ".json"];

/**
 * group_vars/ and host_vars/ as Ansible's host_group_vars plugin reads them: for a name, the first
 * of `name` (file or directory), `name.yml`, `name.yaml`, `name.json`; a directory is read
 * recursively in sorted order, skipping hidden files, backups (`~`) and other extensions.
 */
export class VarsFiles {
  private readonly blocks = new Map<string, VarBlock | null>();
  /** Names in each vars directory, read once: a 10,000-host inventory would otherwise stat 40,000 paths. */
  private readonly entries = new Map<string, Set<string> | null>();
  /** Wholly vault-encrypted files: provision never decrypts, so their vars are not read. */
  readonly encrypted: string[] = [];

  constructor(private readonly problems: ConfigProblem[]) {}

  /** The vars blocks for `name` under `baseDir/subdir`, in the order Ansible combines them. */
  find(baseDir: string, subdir: "group_vars" | "host_vars", name: string): VarBlock[] {
    // Ansible skips names that look like absolute paths (chroot-style host names).
    if (name.startsWith("/")) return [];
    const dir = join(baseDir, subdir);
    const names = this.namesIn(dir);
    if (names === null) return [];
    for (const ext of VARS_EXTENSIONS) {
      if (!names.has(name + ext)) continue;
      const full = join(dir, name + ext);
      if (!existsSync(full)) continue;
      const files = isDirectory(full) ? filesIn(full) : [full];
      return files.map((f) => this.load(f)).filter((b): b is VarBlock => b !== null);
    }
    return [];
  }

  /** Entries of `baseDir/subdir` that name nothing in `known` (Ansible ignores them silently; we warn), and broken ones. */
  checkEntries(baseDir: string, subdir: "group_vars" | "host_vars", known: Set<string>, kind: "group" | "host"): void {
    const dir = join(baseDir, subdir);
    if (!isDirectory(dir)) return;
    for (const entry of readdirSync(dir).sort()) {
      if (entry.startsWith(".") || entry.endsWith("~")) continue;
      const ext = extname(entry);
      const full = join(dir, entry);
      try {
        statSync(full);
      } catch (err) {
        // Ansible passes over a broken link silently; the vars it was meant to bring would be missing.
        this.problems.push({
          file: full, line: 1, col: 1, keyPath: "", severity: "error",
          problem: `cannot read ${subdir}/${entry} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
          fix: "fix or remove the broken link or file",
        });
        continue;
      }
      const isDir = isDirectory(full);
      const names = isDir || !VARS_EXTENSIONS.includes(ext) ? [entry] : [entry, entry.slice(0, -ext.length)];
      // README.md, notes.txt: not a vars file for any name Ansible would look up.
      if (!isDir && ext !== "" && !VARS_EXTENSIONS.includes(ext) && !known.has(entry)) continue;
      if (names.some((n) => known.has(n))) continue;
      this.problems.push({
        file: full, line: 1, col: 1, keyPath: "", severity: "warning",
        problem: `${subdir}/${entry} names no ${kind} in the inventory, so it applies to nothing`,
        fix: `rename it after a ${kind} of the inventory, or delete it`,
      });
    }
  }

  private namesIn(dir: string): Set<string> | null {
    let names = this.entries.get(dir);
    if (names === undefined) {
      names = isDirectory(dir) ? new Set(readdirSync(dir)) : null;
      this.entries.set(dir, names);
    }
    return names;
  }

  private load(file: string): VarBlock | null {
    const cached = this.blocks.get(file);
    if (cached !== undefined) return cached;
    let block: VarBlock | null = null;
    let text: string | undefined;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      this.problems.push({
        file, line: 1, col: 1, keyPath: "", severity: "error",
        problem: `cannot read ${basename(file)} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        fix: "fix or remove the broken link or file",
      });
    }
    if (text !== undefined && text.startsWith("$ANSIBLE_VAULT;")) {
      this.encrypted.push(file);
    } else if (text !== undefined) {
      const yaml = parseYamlText(text, file, this.problems);
      if (yaml && yaml.data !== null && yaml.data !== undefined) {
        if (typeof yaml.data === "object" && !Array.isArray(yaml.data)) {
          block = { vars: yaml.data as Record<string, unknown>, source: yaml, basePath: [] };
        } else {
          this.problems.push({
            file, ...yaml.locate([]), keyPath: "", severity: "error",
            problem: "a vars file must be a mapping of variable names to values",
            fix: "write one `name: value` per line",
          });
        }
      }
    }
    this.blocks.set(file, block);
    return block;
  }
}

function filesIn(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    if (entry.startsWith(".") || entry.endsWith("~")) continue;
    const full = join(dir, entry);
    const ext = extname(entry);
    if (isDirectory(full)) {
      if (ext === "") out.push(...filesIn(full));
    } else if (VARS_EXTENSIONS.includes(ext)) {
      out.push(full);
    }
  }
  return out;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Ansible resolves vars directories through symlinks; two sources in one directory share its files. */
export function canonicalDir(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}
