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
  const before = facts.files[f.path] ?? null;
  const changes: Change[] = [];
  if (before !== f.content) {
    changes.push({
      kind: "file", path: f.path, before, after: f.content,
      mode: f.mode ?? "0644", owner: f.owner ?? "root", group: f.group ?? "root",
      ...(facts.fileSha256?.[f.path] ? { beforeSha256: facts.fileSha256[f.path] } : {}),
      description: before === null ? `create ${f.path}` : `update ${f.path}`,
    });
  }
  const checks: Check[] = [{
    kind: "file", path: f.path, expected: f.content,
    message: `${f.path} differs from what ${f.role} renders: edited by hand or by another tool`,
  }];
  return { changes, checks };
}
