import { batchSizes, partition, resolveAmount, type RolloutPolicy } from "./policy.js";
import { selectShard, selectionDigest, type ShardSpec } from "./shard.js";

/** One batch of the whole rollout, and the part of it this run handles. */
export interface RolloutBatch<T> {
  /** 1-based, numbered over every selected host: batch 2 is batch 2 in every shard. */
  index: number;
  /** This run's hosts of the batch: all of them, or this shard's part. */
  hosts: T[];
  /** Hosts in the whole batch, across every shard. */
  size: number;
  /** Failed hosts tolerated in the whole batch (max_fail_per_batch of `size`). */
  tolerated: number;
}

/**
 * Which hosts this run handles, batch by batch. Batches are cut from every selected host, in
 * inventory order, before any shard is taken: so every job of a sharded pipeline agrees on what
 * batch k is, and its budgets are those of the whole batch, not of one job's part.
 */
export interface RolloutLayout<T> {
  batches: Array<RolloutBatch<T>>;
  /** Batches of the whole rollout (a stage beyond them has nothing to do). */
  batchCount: number;
  selected: { hosts: number; digest: string };
  /** Failed hosts tolerated in the whole run, across every shard and stage. */
  totalTolerated: number;
  shard?: ShardSpec;
  /** Only this batch (`run --stage K`: one batch per stage of a pipeline). */
  stage?: number;
}

export function layoutRollout<T extends { name: string; groups: readonly string[] }>(
  selected: readonly T[],
  policy: RolloutPolicy,
  options: {
    shard?: ShardSpec;
    stage?: number;
    /** What each host's run depends on besides its name (resolved roles, params, address): in the digest. */
    configOf?: (host: T) => string;
  } = {},
): RolloutLayout<T> {
  const mine = options.shard ? new Set(selectShard(selected, options.shard)) : undefined;
  const all = partition(selected, batchSizes(selected.length, policy.batches));
  const batches = all
    .map((hosts, i) => ({
      index: i + 1,
      hosts: mine ? hosts.filter((h) => mine.has(h)) : hosts,
      size: hosts.length,
      tolerated: resolveAmount(policy.maxFailPerBatch, hosts.length),
    }))
    .filter((b) => options.stage === undefined || b.index === options.stage);
  return {
    batches,
    batchCount: all.length,
    selected: {
      hosts: selected.length,
      digest: selectionDigest(selected.map((h) => (options.configOf ? `${h.name} ${options.configOf(h)}` : h.name))),
    },
    totalTolerated: resolveAmount(policy.maxFailTotal, selected.length),
    ...(options.shard ? { shard: options.shard } : {}),
    ...(options.stage !== undefined ? { stage: options.stage } : {}),
  };
}

/** Every host this run handles, in inventory order. */
export function layoutHosts<T>(layout: RolloutLayout<T>): T[] {
  return layout.batches.flatMap((b) => b.hosts);
}
