import { randomBytes } from "node:crypto";
import { exceeds } from "./policy.js";
import { lastBatchOf, type RecordedHost, type RunRecord } from "./record.js";

/** A run record and the file it came from (named in every problem). */
export interface RecordFile {
  file: string;
  record: RunRecord;
}

export interface MergedRecords {
  /** One run record of every shard and stage; `run --resume` takes it like any other. */
  record: RunRecord;
  /** Records that make the merge meaningless (another selection, a missing shard): each is an error. */
  problems: string[];
  /** What was decided on the way (a retried shard's older record set aside). */
  notes: string[];
}

const FAILED = new Set(["failed", "unreachable"]);

/**
 * The shards' records of a pipeline as one run: every record must come from the same selection
 * and policy; per stage, every shard 1..N must be there once (a retried job's newest record wins);
 * stages run from 1 without a gap, since the total budget counts every stage so far.
 */
export function mergeRecords(
  files: RecordFile[],
  now: Date = new Date(),
  /** The gate after stage K: every shard of stages 1..K must be there, and nothing later. */
  upTo?: number,
): MergedRecords {
  const problems: string[] = [];
  const notes: string[] = [];
  const first = files[0];
  if (!first) throw new Error("mergeRecords needs at least one record");
  for (const f of files)
    if (!f.record.selection)
      problems.push(
        `${f.file}: has no selection digest (a record of provision before shards); run again with this version`,
      );
  if (problems.length > 0) return { record: first.record, problems, notes };

  for (const f of files.slice(1)) {
    const why = differs(first.record, f.record);
    if (why) problems.push(`${f.file}: ${why} than ${first.file}; it belongs to another run`);
  }
  const staged = files.filter((f) => f.record.stage != null);
  if (staged.length > 0 && staged.length < files.length)
    problems.push(
      `${files
        .filter((f) => f.record.stage == null)
        .map((f) => f.file)
        .join(", ")}: a whole rollout mixed with records of single stages (--stage); merge one or the other`,
    );

  const kept = newestPerPart(files, notes);
  const byStage = new Map<number | null, RecordFile[]>();
  for (const f of kept) byStage.set(f.record.stage ?? null, [...(byStage.get(f.record.stage ?? null) ?? []), f]);
  for (const [stage, parts] of byStage) problems.push(...missingShards(stage, parts));
  const stages = [...byStage.keys()].filter((s): s is number => s !== null).sort((a, b) => a - b);
  if (upTo !== undefined) {
    const later = stages.filter((s) => s > upTo);
    if (later.length > 0)
      problems.push(
        `records of stage ${later.join(", ")} given to the gate after stage ${upTo}: records of another rollout? Give each rollout its own records directory`,
      );
    if (staged.length === 0)
      problems.push(`--stage ${upTo}: these are records of whole runs, not of stages (run --stage)`);
  }
  const last = upTo ?? stages.at(-1);
  if (last !== undefined) {
    const gaps = Array.from({ length: last }, (_, i) => i + 1).filter((s) => !byStage.has(s));
    if (gaps.length > 0)
      problems.push(
        `no record of stage ${gaps.join(", ")}: the total failure budget counts every stage so far, so give the records of stages 1 to ${last}`,
      );
  }

  const seen = new Map<string, string>();
  const hosts: RecordedHost[] = [];
  const ordered = [...kept].sort(
    (a, b) =>
      (a.record.stage ?? 0) - (b.record.stage ?? 0) || (a.record.shard?.index ?? 0) - (b.record.shard?.index ?? 0),
  );
  for (const f of ordered)
    for (const h of f.record.hosts) {
      const other = seen.get(h.host);
      if (other !== undefined) problems.push(`${h.host} is in both ${other} and ${f.file}: shards must not overlap`);
      else {
        seen.set(h.host, f.file);
        hosts.push(h);
      }
    }
  hosts.sort((a, b) => (a.batch ?? Infinity) - (b.batch ?? Infinity));

  const batches = new Map<number, { index: number; size: number; tolerated: number }>();
  for (const f of kept) for (const b of f.record.batches ?? []) batches.set(b.index, b);
  const stops = ordered
    .filter((f) => f.record.stopped !== null)
    .map((f) => `${partName(f.record)}: ${f.record.stopped}`);
  const record: RunRecord = {
    version: 1,
    id: `${now.toISOString().replace(/[:.]/g, "-")}-merged-${randomBytes(3).toString("hex")}`,
    startedAt: kept.map((f) => f.record.startedAt).sort()[0]!,
    finishedAt: kept
      .map((f) => f.record.finishedAt)
      .sort()
      .at(-1)!,
    inventory: first.record.inventory,
    playbook: first.record.playbook,
    limit: first.record.limit,
    ...(first.record.plan !== undefined ? { plan: first.record.plan } : {}),
    policy: first.record.policy,
    stopped: stops.length > 0 ? stops.join("; ") : null,
    selection: first.record.selection!,
    shard: null,
    stage: null,
    batches: [...batches.values()].sort((a, b) => a.index - b.index),
    ...(first.record.batchCount !== undefined ? { batchCount: first.record.batchCount } : {}),
    ...(first.record.totalTolerated !== undefined ? { totalTolerated: first.record.totalTolerated } : {}),
    merged: ordered.map((f) => ({ file: f.file, id: f.record.id, part: partName(f.record) })),
    hosts,
  };
  return { record, problems, notes };
}

/** Why two records can't be parts of one run, or null. */
function differs(a: RunRecord, b: RunRecord): string | null {
  if (a.selection!.digest !== b.selection!.digest)
    return `its hosts are another selection (${b.selection!.hosts} hosts, digest ${b.selection!.digest}, not ${a.selection!.hosts} hosts, ${a.selection!.digest}: another inventory, playbook or --limit)`;
  if (JSON.stringify(a.policy) !== JSON.stringify(b.policy)) return "it was run with another rollout policy";
  if (a.batchCount !== b.batchCount) return "its rollout has another number of batches";
  return null;
}

/** A retried job leaves two records of one part: the newest counts. */
function newestPerPart(files: RecordFile[], notes: string[]): RecordFile[] {
  const byPart = new Map<string, RecordFile>();
  for (const f of files) {
    const key = partName(f.record);
    const other = byPart.get(key);
    if (!other) byPart.set(key, f);
    else {
      const [older, newer] = other.record.finishedAt <= f.record.finishedAt ? [other, f] : [f, other];
      byPart.set(key, newer);
      notes.push(`${key}: ${newer.file} (finished ${newer.record.finishedAt}) replaces ${older.file}, an earlier try`);
    }
  }
  return [...byPart.values()];
}

/** "stage 2, shard 1/3", "shard 2/3", "stage 1", or "the whole run". */
export function partName(r: RunRecord): string {
  const parts = [
    ...(r.stage != null ? [`stage ${r.stage}`] : []),
    ...(r.shard ? [`shard ${r.shard.index}/${r.shard.count}`] : []),
  ];
  return parts.length > 0 ? parts.join(", ") : "the whole run";
}

function missingShards(stage: number | null, parts: RecordFile[]): string[] {
  const where = stage === null ? "" : `stage ${stage}: `;
  const counts = new Set(parts.map((f) => f.record.shard?.count ?? 1));
  const ways = new Set(parts.map((f) => f.record.shard?.by ?? "name"));
  if (counts.size > 1 || ways.size > 1)
    return [
      `${where}the records are cut into shards differently (${parts.map((f) => `${f.file}: ${partName(f.record)}`).join(", ")})`,
    ];
  const count = [...counts][0]!;
  const have = new Set(parts.map((f) => f.record.shard?.index ?? 1));
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !have.has(i));
  return missing.length === 0
    ? []
    : [
        `${where}no record of shard ${missing.map((i) => `${i}/${count}`).join(", ")}: a job did not finish or its record was not collected; its hosts' outcomes are unknown`,
      ];
}

export interface BudgetVerdict {
  /** True when the next stage may start. */
  pass: boolean;
  lines: string[];
}

/**
 * The gate between stages: each batch's failures (every shard's together) against
 * max_fail_per_batch of the whole batch, every failure so far against max_fail_total, and any
 * shard that stopped on its own (drift, its own failures, a pause).
 */
export function checkBudgets(record: RunRecord, options: { final?: boolean } = {}): BudgetVerdict {
  const lines: string[] = [];
  let pass = true;
  const lastBatch = lastBatchOf(record);
  if (options.final && record.batchCount !== undefined && lastBatch < record.batchCount) {
    pass = false;
    lines.push(
      `the rollout has ${record.batchCount} batches and these records end at batch ${lastBatch}: the pipeline needs a stage per batch (batches ${lastBatch + 1} to ${record.batchCount} were never run)`,
    );
  }
  for (const b of record.batches ?? []) {
    const hosts = record.hosts.filter((h) => h.batch === b.index);
    const failed = hosts.filter((h) => FAILED.has(h.status)).length;
    const over = exceeds(failed, b.tolerated);
    if (over) pass = false;
    lines.push(
      `batch ${b.index}: ${failed} of ${b.size} hosts failed, ${b.tolerated} tolerated (max_fail_per_batch ${String(record.policy.maxFailPerBatch)})${over ? ": OVER BUDGET" : ""}${hosts.length < b.size ? ` — only ${hosts.length} of its hosts are in these records` : ""}`,
    );
  }
  const failed = record.hosts.filter((h) => FAILED.has(h.status)).length;
  const tolerated = record.totalTolerated ?? 0;
  const over = exceeds(failed, tolerated);
  if (over) pass = false;
  lines.push(
    `in all: ${failed} of ${record.selection?.hosts ?? record.hosts.length} hosts failed so far, ${tolerated} tolerated (max_fail_total ${String(record.policy.maxFailTotal)})${over ? ": OVER BUDGET" : ""}`,
  );
  if (record.stopped !== null) {
    pass = false;
    lines.push(`stopped: ${record.stopped}`);
  }
  return { pass, lines };
}

/**
 * Why stage K must not start after `previous` (the merged record of the gate after stage K-1), or
 * nothing: the same hosts with the same config and policy (else batch K would be other hosts), a
 * record that ends at batch K-1, and a gate that passed.
 */
export function notReadyForStage(
  previous: RunRecord,
  stage: number,
  now: { selection: { hosts: number; digest: string }; policy: RunRecord["policy"]; batchCount: number },
): string[] {
  const reasons: string[] = [];
  if (previous.selection?.digest !== now.selection.digest)
    reasons.push(
      `the selected hosts or their config changed since the earlier stages (${now.selection.hosts} hosts, digest ${now.selection.digest}; the record has ${previous.selection?.hosts ?? "?"}, ${previous.selection?.digest ?? "none"}): batch ${stage} would be other hosts. Finish the rollout with what it started with, then roll out the change`,
    );
  if (JSON.stringify(previous.policy) !== JSON.stringify(now.policy))
    reasons.push("the rollout policy changed since the earlier stages");
  const lastBatch = lastBatchOf(previous);
  if (lastBatch !== stage - 1)
    reasons.push(
      `the record ends at batch ${lastBatch}, not at batch ${stage - 1}: give the merged record of the gate after stage ${stage - 1}`,
    );
  const verdict = checkBudgets(previous);
  if (!verdict.pass)
    reasons.push(
      `the gate after stage ${stage - 1} did not pass: ${verdict.lines.filter((l) => /OVER BUDGET|^stopped/.test(l)).join("; ")}`,
    );
  return reasons;
}
