import type { Change, Check, Facts, FactRequest } from "./role.js";

export interface ManagedFile {
  path: string;
  /** The whole file: a role owns every byte of it (no line edits of shared files). */
  content: string;
  mode?: string;
  owner?: string;
  group?: string;
  /** Which role writes it; named in the check's message. */
  role: string;
}

export function managedFileFact(path: string): FactRequest {
  return { kind: "file", path };
}

/** Plans one whole managed file: a change when its bytes differ, and a check that reads it back. */
export function planManagedFile(f: ManagedFile, facts: Facts): { changes: Change[]; checks: Check[] } {
  const changes = managedFileChanges(f, facts.files[f.path] ?? null, facts.fileSha256?.[f.path]);
  const checks: Check[] = [
    {
      kind: "file",
      path: f.path,
      expected: f.content,
      message: `${f.path} differs from what ${f.role} renders: edited by hand or by another tool`,
    },
  ];
  return { changes, checks };
}

/**
 * The change planManagedFile plans, from the file's current content (null: absent) and sha256 as
 * something other than a file fact read them (a probe that finds the file's path on the host).
 */
export function managedFileChanges(f: ManagedFile, before: string | null, beforeSha256: string | undefined): Change[] {
  if (before === f.content) return [];
  return [
    {
      kind: "file",
      path: f.path,
      before,
      after: f.content,
      mode: f.mode ?? "0644",
      owner: f.owner ?? "root",
      group: f.group ?? "root",
      ...(beforeSha256 ? { beforeSha256 } : {}),
      description: before === null ? `create ${f.path}` : `update ${f.path}`,
    },
  ];
}

export interface StaleFile {
  path: string;
  /** Why it goes, for the change's description: "remove <path>: <why>". */
  why: string;
  /** What verify says when the file is back. */
  message: string;
}

/**
 * A file this role wrote in an earlier run and no longer wants: removed, and checked gone (a file
 * check that expects no file, so verify needs no probe for it). The role must only pass paths of
 * its own file names: this plans a deletion.
 */
export function planStaleFile(f: StaleFile): { changes: Change[]; checks: Check[] } {
  return {
    changes: [{ kind: "command", argv: ["rm", "-f", "--", f.path], description: `remove ${f.path}: ${f.why}` }],
    checks: [{ kind: "file", path: f.path, expected: null, message: f.message }],
  };
}
