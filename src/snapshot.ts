import type { PlannedChange } from "./plan.js";

/**
 * The host's original values, kept before provision first changes them, so `provision rollback`
 * can restore them. It lives outside any `.d` directory, so nothing ever loads it as config.
 */
export const SNAPSHOT_PATH = "/etc/provision/snapshot.json";
export const SNAPSHOT_ROLE = "snapshot";

export interface Snapshot {
  version: 1;
  /** Original content of each file provision wrote or removed; null = it did not exist. */
  files: Record<string, string | null>;
  /** Original live value of each sysctl provision set; null = the key did not exist. */
  sysctl: Record<string, string | null>;
  /** Commands provision ran that have an inverse, in the order they ran. */
  commands: Array<{ argv: string[]; undo: string[] }>;
}

export const EMPTY_SNAPSHOT: Snapshot = { version: 1, files: {}, sysctl: {}, commands: [] };

export class SnapshotError extends Error {}

export function parseSnapshot(text: string | null): Snapshot | null {
  if (text === null) return null;
  try {
    const s = JSON.parse(text) as Snapshot;
    if (s.version !== 1 || typeof s.files !== "object" || typeof s.sysctl !== "object" || !Array.isArray(s.commands))
      throw new Error("unexpected shape");
    return s;
  } catch (err) {
    throw new SnapshotError(
      `${SNAPSHOT_PATH} is not a provision snapshot (${(err as Error).message}); move it away or fix it`,
    );
  }
}

/**
 * Pure: the snapshot after these changes. The earliest original of each file and key is kept — a
 * second run never overwrites it with provision's own values.
 */
export function extendSnapshot(current: Snapshot | null, changes: readonly PlannedChange[]): Snapshot {
  const next: Snapshot = structuredClone(current ?? EMPTY_SNAPSHOT);
  for (const c of changes) {
    if (c.role === SNAPSHOT_ROLE) continue;
    if (c.kind === "file" && !(c.path in next.files)) next.files[c.path] = c.before;
    if (c.kind === "sysctl" && !(c.key in next.sysctl)) next.sysctl[c.key] = c.before;
    if (c.kind === "command" && c.undo && !next.commands.some((x) => sameArgv(x.argv, c.argv)))
      next.commands.push({ argv: c.argv, undo: c.undo });
  }
  return next;
}

export function renderSnapshot(s: Snapshot): string {
  return `${JSON.stringify(s, null, 2)}\n`;
}

/** The change that records the originals, planned first so it is written before anything else. */
export function snapshotChange(before: string | null, changes: readonly PlannedChange[]): PlannedChange | null {
  const real = changes.filter((c) => c.role !== SNAPSHOT_ROLE);
  if (real.length === 0) return null;
  const after = renderSnapshot(extendSnapshot(parseSnapshot(before), real));
  if (after === before) return null;
  return {
    kind: "file",
    path: SNAPSHOT_PATH,
    before,
    after,
    mode: "0600",
    owner: "root",
    group: "root",
    role: SNAPSHOT_ROLE,
    description: "keep the original values for `provision rollback`",
  };
}

/**
 * Pure: what `rollback` does to restore the snapshot, given what the host has now. Commands are
 * undone in reverse order first (e.g. an address added), then files and values are put back;
 * the snapshot itself goes last, so an interrupted rollback can simply be run again.
 */
export function restoreChanges(
  s: Snapshot,
  now: { files: Record<string, string | null>; sysctl: Record<string, string | null> },
): PlannedChange[] {
  const out: PlannedChange[] = [];
  for (const c of [...s.commands].reverse()) {
    out.push({ kind: "command", argv: c.undo, role: SNAPSHOT_ROLE, description: `undo: ${c.argv.join(" ")}` });
  }
  for (const [path, original] of Object.entries(s.files)) {
    const current = now.files[path] ?? null;
    if (current === original) continue;
    if (original === null)
      out.push({
        kind: "command",
        argv: ["rm", "-f", "--", path],
        role: SNAPSHOT_ROLE,
        description: `remove ${path} (it did not exist before provision)`,
      });
    else
      out.push({
        kind: "file",
        path,
        before: current,
        after: original,
        mode: "0644",
        owner: "root",
        group: "root",
        role: SNAPSHOT_ROLE,
        description: `restore ${path}`,
      });
  }
  for (const [key, original] of Object.entries(s.sysctl)) {
    if (original === null) continue;
    const current = now.sysctl[key] ?? null;
    if (current !== null && current.trim().split(/\s+/).join(" ") === original) continue;
    out.push({
      kind: "sysctl",
      key,
      before: current,
      after: original,
      role: SNAPSHOT_ROLE,
      description: `restore ${key}`,
    });
  }
  out.push({
    kind: "command",
    argv: ["rm", "-f", "--", SNAPSHOT_PATH],
    role: SNAPSHOT_ROLE,
    description: "forget the snapshot: the host is back to its original values",
  });
  return out;
}

function sameArgv(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Pure: the changes that undo what was just applied, newest first — the lockout guard's way back
 * through the connection that is still open. Only steps that succeeded are undone.
 */
export function revertChanges(applied: ReadonlyArray<{ change: PlannedChange; ok: boolean }>): PlannedChange[] {
  const out: PlannedChange[] = [];
  for (const { change: c, ok } of [...applied].reverse()) {
    if (!ok) continue;
    if (c.kind === "file") {
      out.push(
        c.before === null
          ? { kind: "command", argv: ["rm", "-f", "--", c.path], role: c.role, description: `revert: remove ${c.path}` }
          : {
              kind: "file",
              path: c.path,
              before: c.after,
              after: c.before,
              mode: c.mode,
              owner: c.owner,
              group: c.group,
              role: c.role,
              description: `revert ${c.path}`,
            },
      );
    } else if (c.kind === "sysctl") {
      if (c.before !== null)
        out.push({
          kind: "sysctl",
          key: c.key,
          before: c.after,
          after: c.before,
          role: c.role,
          description: `revert ${c.key}`,
        });
    } else if (c.undo) {
      out.push({ kind: "command", argv: c.undo, role: c.role, description: `revert: ${c.argv.join(" ")}` });
    }
  }
  return out;
}
