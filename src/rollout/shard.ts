import { createHash } from "node:crypto";
import { foldHosts } from "../output/hostList.js";

/**
 * `run --shard K/N`: the K-th of N parts of the selected hosts, so N jobs of a CI matrix or a
 * Kubernetes Indexed Job each run one part. Every job computes the same partition from the same
 * inventory, with no coordinator: a host's part depends only on its name (or its groups).
 */
export interface ShardSpec {
  /** 1-based. */
  index: number;
  count: number;
  /** "name": by a hash of the host's name; or one inventory group per part, in order. */
  by: "name" | { groups: string[] };
}

export class ShardError extends Error {}

/** "2/3" and "name" or "group:east,west,central" → a spec; every problem at once. */
export function parseShard(text: string, by: string = "name"): ShardSpec {
  const problems: string[] = [];
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m) problems.push(`--shard "${text}" is not K/N (e.g. 2/3: the second of three parts)`);
  else if (count < 1 || index < 1 || index > count)
    problems.push(`--shard ${text}: K must be from 1 to N (N at least 1)`);
  let spec: ShardSpec["by"] = "name";
  if (by.startsWith("group:")) {
    const groups = by
      .slice("group:".length)
      .split(",")
      .map((g) => g.trim())
      .filter((g) => g !== "");
    if (groups.length === 0) problems.push(`--shard-by ${by}: name the groups, one per part (group:east,west)`);
    else {
      if (new Set(groups).size !== groups.length) problems.push(`--shard-by ${by}: a group is listed twice`);
      if (m && groups.length !== count)
        problems.push(
          `--shard-by ${by} names ${groups.length} groups, but --shard ${text} makes ${count} parts: one group per part`,
        );
    }
    spec = { groups };
  } else if (by !== "name") {
    problems.push(`--shard-by "${by}" is neither "name" nor "group:G1,G2,…"`);
  }
  if (problems.length > 0) throw new ShardError(problems.join("\n"));
  return { index, count, by: spec };
}

/** "2/3", or "2/3 (group west)". */
export function describeShard(s: ShardSpec): string {
  return typeof s.by === "string"
    ? `${s.index}/${s.count}`
    : `${s.index}/${s.count} (group ${s.by.groups[s.index - 1]})`;
}

/** "name", or "group:east,west": as --shard-by takes it. */
export function describeShardBy(s: ShardSpec): string {
  return typeof s.by === "string" ? s.by : `group:${s.by.groups.join(",")}`;
}

/** 1-based part of a host name: a hash, so adding a host never moves another. */
export function shardOfName(name: string, count: number): number {
  const h = createHash("sha256").update(name, "utf8").digest();
  return (h.readUInt32BE(0) % count) + 1;
}

/**
 * The hosts of part K, in their given order. By group, a host must be in exactly one of the
 * groups: a host in none or in two would be run by no job or by two, so that is an error.
 */
export function selectShard<T extends { name: string; groups: readonly string[] }>(
  hosts: readonly T[],
  spec: ShardSpec,
): T[] {
  if (typeof spec.by === "string") return hosts.filter((h) => shardOfName(h.name, spec.count) === spec.index);
  const groups = spec.by.groups;
  const inNone: string[] = [];
  const inSeveral: string[] = [];
  const mine: T[] = [];
  for (const h of hosts) {
    const parts = groups.flatMap((g, i) => (h.groups.includes(g) ? [i + 1] : []));
    if (parts.length === 0) inNone.push(h.name);
    else if (parts.length > 1) inSeveral.push(h.name);
    else if (parts[0] === spec.index) mine.push(h);
  }
  const problems = [
    ...(inNone.length > 0
      ? [
          `${foldHosts(inNone)}: in none of the shard groups (${groups.join(", ")}); no job would run them. Add them to one, or leave them out with --limit`,
        ]
      : []),
    ...(inSeveral.length > 0
      ? [
          `${foldHosts(inSeveral)}: in more than one shard group (${groups.join(", ")}); two jobs would run them. Make the groups disjoint`,
        ]
      : []),
  ];
  if (problems.length > 0) throw new ShardError(problems.join("\n"));
  return mine;
}

/** Names every job of a pipeline must agree on: a digest of the selected hosts, in order. */
export function selectionDigest(names: readonly string[]): string {
  const h = createHash("sha256");
  for (const n of names) h.update(`${n}\n`, "utf8");
  return h.digest("hex").slice(0, 16);
}
