import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { writeAtomically } from "../writeAtomically.js";
import { join, resolve } from "node:path";
import type { HostReport, HostStatus } from "../report.js";
import type { RolloutPolicy } from "./policy.js";
import type { RolloutResult } from "./run.js";

/**
 * What a run did to each host, kept under the project's state directory so `run --resume` can
 * retry only what failed or was not reached. Holds no secret: only host names, outcomes, change
 * counts and error messages (which never contain a password: sudo's prompt and input are never
 * captured).
 */
export interface RunRecord {
  version: 1;
  id: string;
  startedAt: string;
  finishedAt: string;
  inventory: string;
  playbook: string;
  limit: string | null;
  /** The saved plan applied (`run --plan`), if any. */
  plan?: string;
  policy: RolloutPolicy;
  stopped: string | null;
  hosts: Array<{ host: string; status: HostStatus; batch: number | null; changes: number; error?: string }>;
}

export const STATE_DIR = ".provision";
const RUNS = "runs";

export function recordFor(
  result: RolloutResult,
  meta: {
    startedAt: Date;
    inventory: string | string[];
    playbook: string;
    limit: string | undefined;
    plan?: string;
    policy: RolloutPolicy;
  },
): RunRecord {
  const batchOf = new Map<string, number>();
  for (const b of result.batches) for (const h of b.hosts) batchOf.set(h, b.index);
  return {
    version: 1,
    id: `${meta.startedAt.toISOString().replace(/[:.]/g, "-")}-${randomBytes(3).toString("hex")}`,
    startedAt: meta.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    inventory: [meta.inventory]
      .flat()
      .map((i) => (i === "-" || (i.includes(",") && !existsSync(i)) ? i : resolve(i)))
      .join(" "),
    playbook: resolve(meta.playbook),
    limit: meta.limit ?? null,
    ...(meta.plan !== undefined ? { plan: resolve(meta.plan) } : {}),
    policy: meta.policy,
    stopped: result.stopped ?? null,
    hosts: result.reports.map((r: HostReport) => ({
      host: r.host,
      status: r.status,
      batch: batchOf.get(r.host) ?? null,
      changes: r.outcomes?.filter((o) => o.ok).length ?? 0,
      ...(r.error ? { error: r.error.message } : {}),
    })),
  };
}

/** Written atomically (temp file + rename), so a killed run never leaves a half record. */
export function writeRecord(stateDir: string, record: RunRecord): string {
  const dir = join(stateDir, RUNS);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${record.id}.json`);
  writeAtomically(file, `${JSON.stringify(record, null, 2)}\n`, 0o600);
  return file;
}

export class RecordError extends Error {}

/** The named record, or the newest one under the state directory. */
export function readRecord(stateDir: string, file?: string): { file: string; record: RunRecord } {
  const path = file ?? latestRecord(stateDir);
  let record: RunRecord;
  try {
    record = JSON.parse(readFileSync(path, "utf8")) as RunRecord;
  } catch (err) {
    throw new RecordError(`cannot read run record ${path}: ${(err as Error).message}`);
  }
  if (record.version !== 1 || !Array.isArray(record.hosts))
    throw new RecordError(`${path} is not a provision run record`);
  return { file: path, record };
}

function latestRecord(stateDir: string): string {
  const dir = join(stateDir, RUNS);
  let names: string[] = [];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith(".json"))
      .sort();
  } catch {
    // no runs yet
  }
  const last = names.at(-1);
  if (!last) throw new RecordError(`no run record under ${dir}: nothing to resume`);
  return join(dir, last);
}

/** Hosts a resume retries: every one that failed, was unreachable, or was not reached. */
export function hostsToResume(record: RunRecord): string[] {
  return record.hosts
    .filter((h) => h.status === "failed" || h.status === "unreachable" || h.status === "not-reached")
    .map((h) => h.host);
}
