import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { writeAtomically } from "../writeAtomically.js";
import { join, resolve } from "node:path";
import type { HostReport, HostStatus } from "../report.js";
import type { RolloutPolicy } from "./policy.js";
import type { RolloutResult } from "./run.js";
import type { RolloutLayout } from "./layout.js";
import { describeShardBy } from "./shard.js";

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
  /** Every host the playbook and --limit selected, before any shard: what every job of a pipeline must agree on. */
  selection?: { hosts: number; digest: string };
  /** `run --shard K/N`: this record holds part K. */
  shard?: { index: number; count: number; by: string } | null;
  /** `run --stage K`: this record holds batch K only. */
  stage?: number | null;
  /** Batches of the whole rollout; each this record holds part of, with its size and budget across every shard. */
  batches?: Array<{ index: number; size: number; tolerated: number }>;
  batchCount?: number;
  /** Failed hosts tolerated in the whole run (max_fail_total of every selected host). */
  totalTolerated?: number;
  /** `records merge`: the records this one was merged from. */
  merged?: Array<{ file: string; id: string; part: string }>;
  hosts: RecordedHost[];
}

export interface RecordedHost {
  host: string;
  status: HostStatus;
  batch: number | null;
  changes: number;
  error?: string;
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
    layout?: RolloutLayout<{ name: string }>;
    /** The record's id: the same for every checkpoint of one run, so each replaces the last. */
    id?: string;
  },
): RunRecord {
  const batchOf = new Map<string, number>();
  for (const b of meta.layout?.batches ?? []) for (const h of b.hosts) batchOf.set(h.name, b.index);
  for (const b of result.batches) for (const h of b.hosts) batchOf.set(h, b.index);
  const layout = meta.layout;
  return {
    version: 1,
    id: meta.id ?? newRecordId(meta.startedAt),
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
    ...(layout
      ? {
          selection: layout.selected,
          shard: layout.shard
            ? { index: layout.shard.index, count: layout.shard.count, by: describeShardBy(layout.shard) }
            : null,
          stage: layout.stage ?? null,
          batches: layout.batches.map((b) => ({ index: b.index, size: b.size, tolerated: b.tolerated })),
          batchCount: layout.batchCount,
          totalTolerated: layout.totalTolerated,
        }
      : {}),
    hosts: result.reports.map((r: HostReport) => ({
      host: r.host,
      status: r.status,
      batch: batchOf.get(r.host) ?? null,
      changes: r.outcomes?.filter((o) => o.ok).length ?? 0,
      ...(r.error ? { error: r.error.message } : {}),
    })),
  };
}

export function newRecordId(startedAt: Date): string {
  return `${startedAt.toISOString().replace(/[:.]/g, "-")}-${randomBytes(3).toString("hex")}`;
}

/** Written atomically (temp file + rename), so a killed run never leaves a half record. */
export function writeRecord(stateDir: string, record: RunRecord): string {
  const dir = join(stateDir, RUNS);
  mkdirSync(dir, { recursive: true });
  return writeRecordTo(join(dir, `${record.id}.json`), record);
}

/** A record at a path of the user's choosing (`records merge -o`), written the same way. */
export function writeRecordTo(file: string, record: RunRecord): string {
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

/** The last batch a record holds part of (0 when none). */
export function lastBatchOf(record: RunRecord): number {
  return Math.max(0, ...(record.batches ?? []).map((b) => b.index));
}

/**
 * Hosts a resume retries: every one that failed, was unreachable, or was not reached. A record of
 * one shard, or of the stages so far of a staged pipeline, does not name the hosts of the other
 * shards or of the stages not run: resuming it would leave them out without a word.
 */
export function hostsToResume(record: RunRecord): string[] {
  if (record.shard)
    throw new RecordError(
      `this record holds shard ${record.shard.index}/${record.shard.count} only: merge every shard's record (provision records merge …) and resume the merged one`,
    );
  const lastBatch = lastBatchOf(record);
  if (record.batchCount !== undefined && (record.stage != null || record.merged) && lastBatch < record.batchCount)
    throw new RecordError(
      `this record holds batches 1 to ${lastBatch} of ${record.batchCount}: run the remaining stages (--stage ${lastBatch + 1} …) rather than resume, or resume once every stage has a record`,
    );
  return record.hosts
    .filter((h) => h.status === "failed" || h.status === "unreachable" || h.status === "not-reached")
    .map((h) => h.host);
}
