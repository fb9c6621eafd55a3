import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bareHost } from "./_roles.js";
import type { HostReport, HostStatus } from "../../src/report.js";
import type { Session } from "../../src/session.js";
import type { ResolvedHost } from "../../src/resolve.js";
import { DEFAULT_POLICY, type RolloutPolicy } from "../../src/rollout/policy.js";
import { layoutHosts, layoutRollout } from "../../src/rollout/layout.js";
import { rollout, type RolloutResult } from "../../src/rollout/run.js";
import {
  hostsToResume,
  readRecord,
  recordFor,
  writeRecord,
  type RecordedHost,
  type RunRecord,
} from "../../src/rollout/record.js";
import { checkBudgets, mergeRecords, notReadyForStage, partName, type RecordFile } from "../../src/rollout/merge.js";
import { selectionDigest, type ShardSpec } from "../../src/rollout/shard.js";
import { renderRecord, renderVerdict } from "../../src/output/recordReport.js";
import { ttyStyle } from "../../src/output/format.js";
import { REUSE, changed } from "./_reports.js";

const dir = mkdtempSync(join(tmpdir(), "provision-records-merge-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// A small factory of run records: 9 selected hosts h1..h9, batches [1, 2, "100%"] → sizes 1, 2, 6;
// 20% tolerated per batch (0, 0, 1) and 20% of 9 in all (1). Shard k/3 holds the hosts below.
// ---------------------------------------------------------------------------------------------

const POLICY: RolloutPolicy = {
  ...DEFAULT_POLICY,
  batches: [1, 2, "100%"],
  maxFailPerBatch: "20%",
  maxFailTotal: "20%",
};
const NAMES = Array.from({ length: 9 }, (_, i) => `h${i + 1}`);
const SELECTION = { hosts: 9, digest: selectionDigest(NAMES) };
const BATCHES = [
  { index: 1, size: 1, tolerated: 0 },
  { index: 2, size: 2, tolerated: 0 },
  { index: 3, size: 6, tolerated: 1 },
];
/** Which batch each host is in, and which shard (of 3) holds it. */
const BATCH_OF: Record<string, number> = { h1: 1, h2: 2, h3: 2, h4: 3, h5: 3, h6: 3, h7: 3, h8: 3, h9: 3 };
const SHARD_HOSTS: Record<number, string[]> = { 1: ["h1", "h5", "h8"], 2: ["h2", "h4", "h6"], 3: ["h3", "h7", "h9"] };

/** A host's outcome in a record: changed with 21 changes unless told otherwise. */
function hostOf(host: string, status: HostStatus = "changed", over: Partial<RecordedHost> = {}): RecordedHost {
  return {
    host,
    status,
    batch: BATCH_OF[host] ?? null,
    changes: status === "changed" ? 21 : 0,
    ...(status === "failed" ? { error: "boom" } : status === "unreachable" ? { error: "connection refused" } : {}),
    ...over,
  };
}

let minute = 0;
/** A record of shard `shard`/3 (null: unsharded), of stage `stage` (null: every batch), finishing a minute after the last one. */
function rec(
  part: { shard?: number | null; count?: number; by?: string; stage?: number | null },
  outcomes: Record<string, HostStatus> = {},
  over: Partial<RunRecord> = {},
): RunRecord {
  const shard = part.shard ?? null;
  const stage = part.stage ?? null;
  const names = (shard === null ? NAMES : SHARD_HOSTS[shard]!).filter((h) => stage === null || BATCH_OF[h] === stage);
  minute++;
  const at = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();
  return {
    version: 1,
    id: `run-${minute}`,
    startedAt: at(minute - 1),
    finishedAt: at(minute),
    inventory: "/srv/inventory.yaml",
    playbook: "/srv/playbook.yaml",
    limit: null,
    policy: POLICY,
    stopped: null,
    selection: SELECTION,
    shard: shard === null ? null : { index: shard, count: part.count ?? 3, by: part.by ?? "name" },
    stage,
    batches: BATCHES.filter((b) => stage === null || b.index === stage),
    batchCount: 3,
    totalTolerated: 1,
    hosts: names.map((h) => hostOf(h, outcomes[h])),
    ...over,
  };
}

const file = (name: string, record: RunRecord): RecordFile => ({ file: `/ci/${name}.json`, record });
const shards = (outcomes: Record<string, HostStatus> = {}, stage?: number) =>
  [1, 2, 3].map((k) =>
    file(`${stage !== undefined ? `stage${stage}-` : ""}shard${k}`, rec({ shard: k, stage }, outcomes)),
  );
const hostNames = (r: RunRecord) => r.hosts.map((h) => h.host);

describe("mergeRecords", () => {
  it("joins every shard of a run: each host once, sorted by batch, with the whole rollout's budgets", () => {
    const [s1, s2, s3] = shards();
    const now = new Date("2026-02-03T04:05:06.789Z");
    const { record, problems, notes } = mergeRecords([s3!, s1!, s2!], now);
    expect(problems).toEqual([]);
    expect(notes).toEqual([]);
    expect(hostNames(record)).toEqual(["h1", "h2", "h3", "h5", "h8", "h4", "h6", "h7", "h9"]);
    expect(new Set(hostNames(record)).size).toBe(9);
    expect(record.hosts.map((h) => h.batch)).toEqual([1, 2, 2, 3, 3, 3, 3, 3, 3]);
    expect(record).toMatchObject({
      version: 1,
      startedAt: s1!.record.startedAt,
      finishedAt: s3!.record.finishedAt,
      inventory: "/srv/inventory.yaml",
      playbook: "/srv/playbook.yaml",
      limit: null,
      policy: POLICY,
      stopped: null,
      selection: SELECTION,
      shard: null,
      stage: null,
      batches: BATCHES,
      batchCount: 3,
      totalTolerated: 1,
    });
    expect(record.id).toMatch(/^2026-02-03T04-05-06-789Z-merged-[0-9a-f]{6}$/);
    expect(record.merged).toEqual([
      { file: "/ci/shard1.json", id: s1!.record.id, part: "shard 1/3" },
      { file: "/ci/shard2.json", id: s2!.record.id, part: "shard 2/3" },
      { file: "/ci/shard3.json", id: s3!.record.id, part: "shard 3/3" },
    ]);
  });

  it("joins the stages of a pipeline in order, each stage's shards", () => {
    const files = [...shards({}, 2), ...shards({}, 1), ...shards({}, 3)];
    // shards 2 and 3 have no host in batch 1: their stage-1 records hold none, and still count
    expect(files.filter((f) => f.record.stage === 1).map((f) => f.record.hosts.length)).toEqual([1, 0, 0]);
    const { record, problems } = mergeRecords(files);
    expect(problems).toEqual([]);
    expect(record.hosts.map((h) => h.batch)).toEqual([1, 2, 2, 3, 3, 3, 3, 3, 3]);
    expect(record.batches).toEqual(BATCHES);
    expect(record.merged!.map((m) => m.part)).toEqual([
      "stage 1, shard 1/3",
      "stage 1, shard 2/3",
      "stage 1, shard 3/3",
      "stage 2, shard 1/3",
      "stage 2, shard 2/3",
      "stage 2, shard 3/3",
      "stage 3, shard 1/3",
      "stage 3, shard 2/3",
      "stage 3, shard 3/3",
    ]);
    expect(record.stage).toBeNull();
  });

  it("takes one unsharded record, or the unsharded records of stages 1..k", () => {
    expect(mergeRecords([file("all", rec({}))]).problems).toEqual([]);
    const staged = mergeRecords([file("st1", rec({ stage: 1 })), file("st2", rec({ stage: 2 }))]);
    expect(staged.problems).toEqual([]);
    expect(hostNames(staged.record)).toEqual(["h1", "h2", "h3"]);
    expect(staged.record.batches).toEqual(BATCHES.slice(0, 2));
  });

  it.each<[string, () => RecordFile[], RegExp[]]>([
    [
      "a missing shard",
      () => shards().slice(0, 2),
      [
        /^no record of shard 3\/3: a job did not finish or its record was not collected; its hosts' outcomes are unknown$/,
      ],
    ],
    ["two missing shards", () => shards().slice(1, 2), [/^no record of shard 1\/3, 3\/3: /]],
    [
      "a missing shard of one stage",
      () => [...shards({}, 1), ...shards({}, 2).slice(0, 2)],
      [/^stage 2: no record of shard 3\/3: /],
    ],
    [
      "a missing shard in each of two stages",
      () => [...shards({}, 1).slice(1), ...shards({}, 2).slice(0, 2)],
      [/^stage 1: no record of shard 1\/3/, /^stage 2: no record of shard 3\/3/],
    ],
    [
      "another selection",
      () => [
        ...shards().slice(0, 2),
        file("shard3", rec({ shard: 3 }, {}, { selection: { hosts: 10, digest: "0123456789abcdef" } })),
      ],
      [
        /^\/ci\/shard3\.json: its hosts are another selection \(10 hosts, digest 0123456789abcdef, not 9 hosts, [0-9a-f]{16}: another inventory, playbook or --limit\) than \/ci\/shard1\.json; it belongs to another run$/,
      ],
    ],
    [
      "another selection of as many hosts",
      () => [
        ...shards().slice(0, 2),
        file("shard3", rec({ shard: 3 }, {}, { selection: { hosts: 9, digest: "ffffffffffffffff" } })),
      ],
      [/^\/ci\/shard3\.json: its hosts are another selection .* than \/ci\/shard1\.json/],
    ],
    [
      "another policy",
      () => [
        ...shards().slice(0, 2),
        file("shard3", rec({ shard: 3 }, {}, { policy: { ...POLICY, maxFailTotal: 5 } })),
      ],
      [
        /^\/ci\/shard3\.json: it was run with another rollout policy than \/ci\/shard1\.json; it belongs to another run$/,
      ],
    ],
    [
      "another number of batches",
      () => [...shards().slice(0, 2), file("shard3", rec({ shard: 3 }, {}, { batchCount: 4 }))],
      [/^\/ci\/shard3\.json: its rollout has another number of batches than \/ci\/shard1\.json/],
    ],
    [
      "a stage missing between two",
      () => [...shards({}, 1), ...shards({}, 3)],
      [
        /^no record of stage 2: the total failure budget counts every stage so far, so give the records of stages 1 to 3$/,
      ],
    ],
    [
      "no stage 1",
      () => [file("st2", rec({ stage: 2 })), file("st3", rec({ stage: 3 }))],
      [/^no record of stage 1: .* stages 1 to 3$/],
    ],
    [
      "a whole run with stages",
      () => [file("whole", rec({})), file("st1", rec({ stage: 1 }))],
      [
        /^\/ci\/whole\.json: a whole rollout mixed with records of single stages \(--stage\); merge one or the other$/,
        // and, as a consequence, the hosts of stage 1 are in both
        /^h1 is in both \/ci\/whole\.json and \/ci\/st1\.json: shards must not overlap$/,
      ],
    ],
    [
      "whole sharded runs with a stage",
      () => [...shards(), file("st1", rec({ stage: 1 }))],
      [
        /^\/ci\/shard1\.json, \/ci\/shard2\.json, \/ci\/shard3\.json: a whole rollout mixed with records of single stages/,
        /^h1 is in both \/ci\/shard1\.json and \/ci\/st1\.json/,
      ],
    ],
    [
      "a host in two shards",
      () => [
        ...shards().slice(0, 2),
        file("shard3", rec({ shard: 3 }, {}, { hosts: ["h3", "h4", "h7", "h9"].map((h) => hostOf(h)) })),
      ],
      [/^h4 is in both \/ci\/shard2\.json and \/ci\/shard3\.json: shards must not overlap$/],
    ],
    [
      "shards of another count",
      () => [...shards().slice(0, 2), file("half", rec({ shard: 2, count: 2 }))],
      [
        /^the records are cut into shards differently \(\/ci\/shard1\.json: shard 1\/3, \/ci\/shard2\.json: shard 2\/3, \/ci\/half\.json: shard 2\/2\)$/,
        // the factory's shard 2/2 holds the hosts of shard 2/3
        /^h2 is in both \/ci\/shard2\.json and \/ci\/half\.json/,
        /^h4 is in both/,
        /^h6 is in both/,
      ],
    ],
    [
      "shards cut another way",
      () => [...shards().slice(0, 2), file("east", rec({ shard: 3, by: "group:east,west,central" }))],
      [/^the records are cut into shards differently/],
    ],
  ])("refuses %s", (_what, files, expected) => {
    const { problems } = mergeRecords(files());
    expect(problems).toHaveLength(expected.length);
    expected.forEach((pattern, i) => expect(problems[i]).toMatch(pattern));
  });

  it("refuses records without a selection digest, and says nothing else", () => {
    const old = rec({}, {}, {});
    delete old.selection;
    const { problems, record } = mergeRecords([file("old", old), ...shards().slice(0, 1)]);
    expect(problems).toEqual([
      "/ci/old.json: has no selection digest (a record of provision before shards); run again with this version",
    ]);
    expect(record).toBe(old);
  });

  it("names every file without a selection digest", () => {
    const [a, b] = shards();
    delete a!.record.selection;
    delete b!.record.selection;
    expect(mergeRecords([a!, b!]).problems.map((p) => p.split(":")[0])).toEqual(["/ci/shard1.json", "/ci/shard2.json"]);
  });

  it("keeps an overlapping host once, from the first shard", () => {
    const files = [
      ...shards().slice(0, 2),
      file("shard3", rec({ shard: 3 }, {}, { hosts: ["h3", "h4", "h7", "h9"].map((h) => hostOf(h, "failed")) })),
    ];
    const { record } = mergeRecords(files);
    expect(record.hosts.filter((h) => h.host === "h4")).toEqual([hostOf("h4")]);
  });

  it.each<[string, boolean]>([
    ["the retry given last", false],
    ["the retry given first", true],
  ])("a retried shard: the newest record of a part wins, with a note (%s)", (_what, retryFirst) => {
    const [s1, s2, s3] = shards({ h4: "failed", h6: "unreachable" });
    const retry = file("shard2-retry", rec({ shard: 2 }));
    expect(retry.record.finishedAt > s2!.record.finishedAt).toBe(true);
    const files = retryFirst ? [retry, s1!, s2!, s3!] : [s1!, s2!, s3!, retry];
    const { record, problems, notes } = mergeRecords(files);
    expect(problems).toEqual([]);
    expect(notes).toEqual([
      `shard 2/3: /ci/shard2-retry.json (finished ${retry.record.finishedAt}) replaces /ci/shard2.json, an earlier try`,
    ]);
    expect(record.hosts.filter((h) => ["h2", "h4", "h6"].includes(h.host)).map((h) => h.status)).toEqual([
      "changed",
      "changed",
      "changed",
    ]);
    expect(record.hosts).toHaveLength(9);
    expect(record.merged!.map((m) => m.file)).toEqual(["/ci/shard1.json", "/ci/shard2-retry.json", "/ci/shard3.json"]);
  });

  it("a retried stage of a shard: the newest wins, the other stages stay", () => {
    const stage1 = shards({}, 1);
    const stage2 = shards({ h2: "failed" }, 2);
    const retry = file("stage2-shard2-retry", rec({ shard: 2, stage: 2 }));
    const { record, notes, problems } = mergeRecords([...stage1, ...stage2, retry]);
    expect(problems).toEqual([]);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(
      /^stage 2, shard 2\/3: \/ci\/stage2-shard2-retry\.json \(finished .*\) replaces \/ci\/stage2-shard2\.json/,
    );
    expect(record.hosts.find((h) => h.host === "h2")!.status).toBe("changed");
  });

  it("says why each shard stopped, in shard order", () => {
    const [s1, s2, s3] = shards();
    s3!.record.stopped = "batch 3: 2 of 2 hosts of this shard (the batch has 6) failed";
    s1!.record.stopped = "stopped at the pause before batch 2";
    const { record } = mergeRecords([s3!, s2!, s1!]);
    expect(record.stopped).toBe(
      "shard 1/3: stopped at the pause before batch 2; shard 3/3: batch 3: 2 of 2 hosts of this shard (the batch has 6) failed",
    );
  });

  it("needs a record", () => {
    expect(() => mergeRecords([])).toThrow(/at least one record/);
  });
});

describe("partName", () => {
  it.each<[Parameters<typeof rec>[0], string]>([
    [{}, "the whole run"],
    [{ shard: 2 }, "shard 2/3"],
    [{ stage: 1 }, "stage 1"],
    [{ stage: 2, shard: 3 }, "stage 2, shard 3/3"],
  ])("%j is %j", (part, expected) => {
    expect(partName(rec(part))).toBe(expected);
  });
});

describe("checkBudgets", () => {
  /** A merged-like record of every shard: the outcomes given, every other host changed. */
  const merged = (outcomes: Record<string, HostStatus>, over: Partial<RunRecord> = {}) =>
    ({ ...mergeRecords(shards(outcomes)).record, ...over }) as RunRecord;

  it.each<[string, Record<string, HostStatus>, Partial<RunRecord>, boolean, string[]]>([
    [
      "no failure",
      {},
      {},
      true,
      [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 0 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 3: 0 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%)",
        "in all: 0 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%)",
      ],
    ],
    [
      "as many failures as tolerated: passes",
      { h4: "failed" },
      {},
      true,
      [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 0 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 3: 1 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%)",
        "in all: 1 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%)",
      ],
    ],
    [
      "an unreachable host counts as failed",
      { h2: "unreachable" },
      {},
      false,
      [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 1 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%): OVER BUDGET",
        "batch 3: 0 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%)",
        "in all: 1 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%)",
      ],
    ],
    [
      "one failure in each of two shards, over the whole batch's budget together",
      { h4: "failed", h5: "unreachable" },
      {},
      false,
      [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 0 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 3: 2 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%): OVER BUDGET",
        "in all: 2 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%): OVER BUDGET",
      ],
    ],
    [
      "not reached does not count as failed",
      { h5: "not-reached", h6: "not-reached", h7: "not-reached", h8: "not-reached", h9: "unchanged" },
      {},
      true,
      [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 0 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 3: 0 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%)",
        "in all: 0 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%)",
      ],
    ],
    [
      "within every batch's budget, over the total",
      { h4: "failed" },
      { totalTolerated: 0, policy: { ...POLICY, maxFailTotal: 0 } },
      false,
      [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 0 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 3: 1 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%)",
        "in all: 1 of 9 hosts failed so far, 0 tolerated (max_fail_total 0): OVER BUDGET",
      ],
    ],
    [
      "failures in batches that each tolerate them, too many in all",
      { h4: "failed" },
      {
        batches: BATCHES.map((b) => ({ ...b, tolerated: 1 })),
        policy: { ...POLICY, maxFailPerBatch: 1 },
        hosts: NAMES.map((h) => hostOf(h, h === "h1" || h === "h4" ? "failed" : "changed")),
      },
      false,
      [
        "batch 1: 1 of 1 hosts failed, 1 tolerated (max_fail_per_batch 1)",
        "batch 2: 0 of 2 hosts failed, 1 tolerated (max_fail_per_batch 1)",
        "batch 3: 1 of 6 hosts failed, 1 tolerated (max_fail_per_batch 1)",
        "in all: 2 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%): OVER BUDGET",
      ],
    ],
    [
      "a shard that stopped on its own, within every budget",
      {},
      { stopped: "shard 2/3: stopped at the pause before batch 3" },
      false,
      [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 0 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 3: 0 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%)",
        "in all: 0 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%)",
        "stopped: shard 2/3: stopped at the pause before batch 3",
      ],
    ],
    [
      "a batch of which the records hold only some hosts",
      {},
      { hosts: NAMES.filter((h) => h !== "h7" && h !== "h9").map((h) => hostOf(h)) },
      true,
      [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 0 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 3: 0 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%) — only 4 of its hosts are in these records",
        "in all: 0 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%)",
      ],
    ],
  ])("%s", (_what, outcomes, over, pass, lines) => {
    const verdict = checkBudgets(merged(outcomes, over));
    expect(verdict).toEqual({ pass, lines });
  });

  it("a stopped shard's reason reaches the verdict through the merge", () => {
    const [s1, s2, s3] = shards({ h4: "failed" });
    s2!.record.stopped = "batch 3: 1 of 2 hosts of this shard (the batch has 6) failed, more than the 0 tolerated";
    const verdict = checkBudgets(mergeRecords([s1!, s2!, s3!]).record);
    expect(verdict.pass).toBe(false);
    expect(verdict.lines.at(-1)).toBe(
      "stopped: shard 2/3: batch 3: 1 of 2 hosts of this shard (the batch has 6) failed, more than the 0 tolerated",
    );
  });

  it("a stage's gate: only that stage's batches, the total over every selected host", () => {
    const verdict = checkBudgets(mergeRecords([...shards({}, 1), ...shards({ h3: "failed" }, 2)]).record);
    expect(verdict).toEqual({
      pass: false,
      lines: [
        "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 1 of 2 hosts failed, 0 tolerated (max_fail_per_batch 20%): OVER BUDGET",
        "in all: 1 of 9 hosts failed so far, 1 tolerated (max_fail_total 20%)",
      ],
    });
  });

  it("a record without budgets (before shards): no batch line, nothing tolerated, its own hosts counted", () => {
    const old = rec({}, { h2: "failed" });
    delete old.selection;
    delete old.batches;
    delete old.totalTolerated;
    expect(checkBudgets(old)).toEqual({
      pass: false,
      lines: ["in all: 1 of 9 hosts failed so far, 0 tolerated (max_fail_total 20%): OVER BUDGET"],
    });
  });
});

describe("renderRecord", () => {
  const SELECTED = { hosts: 25, digest: "0123456789abcdef" };
  const h = (host: string, status: HostStatus, changes = 0, error?: string): RecordedHost => ({
    host,
    status,
    batch: 1,
    changes,
    ...(error !== undefined ? { error } : {}),
  });
  const render = (hosts: RecordedHost[], over: Partial<RunRecord> = {}) =>
    renderRecord({ ...rec({}), selection: SELECTED, hosts, ...over });

  it.each<[string, RecordedHost[], string[]]>([
    [
      "hosts that ended alike share a line, their names folded",
      [...[1, 2, 3, 4, 5, 6].map((i) => h(`h${i}`, "changed", 21))],
      [
        "h[1:6] (6 hosts): changed (21 changes applied)",
        "Run: 6 changed, 0 unchanged, 0 failed, 0 unreachable (6 hosts of 25 selected).",
      ],
    ],
    [
      "another change count is another line; one change, one host",
      [h("h1", "changed", 21), h("h2", "changed", 1), h("h3", "changed", 21), h("h4", "changed", 21)],
      [
        "h1, h3, h4 (3 hosts): changed (21 changes applied)",
        "h2: changed (1 change applied)",
        "Run: 4 changed, 0 unchanged, 0 failed, 0 unreachable (4 hosts of 25 selected).",
      ],
    ],
    [
      "failures with one message share a line",
      [
        h("db1", "failed", 0, "boom"),
        h("web1", "unchanged"),
        h("db2", "failed", 0, "boom"),
        h("db3", "failed", 0, "boom"),
      ],
      [
        "db[1:3] (3 hosts): FAILED: boom",
        "web1: unchanged",
        "Run: 0 changed, 1 unchanged, 3 failed, 0 unreachable (4 hosts of 25 selected).",
      ],
    ],
    [
      "failures that differ in per-host details only share a line, the details folded",
      [
        h("a", "unreachable", 0, "connection refused by 10.0.0.1:22"),
        h("b", "unreachable", 0, "connection refused by 10.0.0.2:22"),
        h("c", "unreachable", 0, "connection refused by 10.0.0.3:22"),
      ],
      [
        "a, b, c (3 hosts): UNREACHABLE: connection refused by 10.0.0.[1:3]:22",
        "Run: 0 changed, 0 unchanged, 0 failed, 3 unreachable (3 hosts of 25 selected).",
      ],
    ],
    [
      "failed and unreachable with one message are two lines; other messages, other lines",
      [
        h("h1", "failed", 0, "boom"),
        h("h2", "unreachable", 0, "boom"),
        h("h3", "failed", 0, "sysctl: permission denied"),
        h("h4", "failed", 0, "boom"),
      ],
      [
        "h1, h4 (2 hosts): FAILED: boom",
        "h2: UNREACHABLE: boom",
        "h3: FAILED: sysctl: permission denied",
        "Run: 0 changed, 0 unchanged, 3 failed, 1 unreachable (4 hosts of 25 selected).",
      ],
    ],
    [
      "every outcome, in the order of each line's first host, not reached counted when there are any",
      [
        h("h1", "changed", 3),
        h("h2", "failed", 0, "boom"),
        h("h3", "changed", 3),
        h("h4", "unchanged"),
        h("h5", "not-reached"),
        h("h6", "changed", 3),
        h("h7", "not-reached"),
        h("h8", "unreachable", 0, "refused"),
        h("h9", "not-reached"),
      ],
      [
        "h1, h3, h6 (3 hosts): changed (3 changes applied)",
        "h2: FAILED: boom",
        "h4: unchanged",
        "h5, h7, h9 (3 hosts): not reached",
        "h8: UNREACHABLE: refused",
        "Run: 3 changed, 1 unchanged, 1 failed, 1 unreachable, 3 not reached (9 hosts of 25 selected).",
      ],
    ],
    [
      "one host",
      [h("solo", "changed", 1)],
      [
        "solo: changed (1 change applied)",
        "Run: 1 changed, 0 unchanged, 0 failed, 0 unreachable (1 host of 25 selected).",
      ],
    ],
  ])("%s", (_what, hosts, lines) => {
    expect(render(hosts)).toBe(`${lines.join("\n")}\n`);
  });

  it("without a selection (a record before shards), counts its own hosts as selected", () => {
    const old = { ...rec({}), hosts: [h("a", "unchanged"), h("b", "unchanged")] };
    delete old.selection;
    expect(renderRecord(old).split("\n").at(-2)).toBe(
      "Run: 0 changed, 2 unchanged, 0 failed, 0 unreachable (2 hosts of 2 selected).",
    );
  });

  it("tells a merged run", () => {
    const { record } = mergeRecords(shards({ h2: "failed", h4: "unreachable", h7: "not-reached", h9: "not-reached" }));
    expect(renderRecord(record)).toBe(
      [
        "h1, h3, h5, h8, h6 (5 hosts): changed (21 changes applied)",
        "h2: FAILED: boom",
        "h4: UNREACHABLE: connection refused",
        "h7, h9 (2 hosts): not reached",
        "Run: 5 changed, 0 unchanged, 1 failed, 1 unreachable, 2 not reached (9 hosts of 9 selected).",
        "",
      ].join("\n"),
    );
  });

  it("colours with a terminal's style, and only then", () => {
    const hosts = [h("h1", "changed", 2), h("h2", "failed", 0, "boom")];
    const tty = render(hosts, {});
    expect(tty).not.toMatch(/\x1b\[/);
    const coloured = renderRecord({ ...rec({}), selection: SELECTED, hosts }, ttyStyle);
    expect(coloured).toContain("\x1b[32mchanged (2 changes applied)\x1b[0m");
    expect(coloured).toContain("\x1b[31mFAILED\x1b[0m: boom");
  });
});

describe("renderVerdict", () => {
  it.each<[boolean, string]>([
    [true, "PASS: within every failure budget; the next stage may start."],
    [false, "STOP: a failure budget is exceeded or a shard stopped; the next stage must not start."],
  ])("pass %s: every line, then the verdict last", (pass, last) => {
    const lines = [
      "batch 1: 0 of 1 hosts failed, 0 tolerated (max_fail_per_batch 0)",
      "in all: 0 of 9 hosts failed so far",
    ];
    expect(renderVerdict({ pass, lines })).toBe(`${[...lines, last].join("\n")}\n`);
  });

  it.each<[string, Record<string, HostStatus>, string]>([
    ["within budget", { h4: "failed" }, "PASS"],
    ["over a batch's budget", { h2: "failed" }, "STOP"],
  ])("of a merged run %s: %s", (_what, outcomes, word) => {
    const text = renderVerdict(checkBudgets(mergeRecords(shards(outcomes)).record));
    expect(text.split("\n").at(-2)).toMatch(new RegExp(`^${word}: `));
  });

  it("colours the verdict on a terminal", () => {
    expect(renderVerdict({ pass: true, lines: [] }, ttyStyle)).toBe(
      "\x1b[32mPASS: within every failure budget; the next stage may start.\x1b[0m\n",
    );
    expect(renderVerdict({ pass: false, lines: [] }, ttyStyle)).toMatch(/^\x1b\[31mSTOP: /);
  });
});

// ---------------------------------------------------------------------------------------------
// Records written by runs: recordFor with a layout, written and read back, then merged.
// ---------------------------------------------------------------------------------------------

const REGIONS = ["east", "west", "central"];
const resolved = bareHost;
/** h1..h12, round-robin east, west, central; batches [3, 6, 3]: h1-h3 | h4-h9 | h10-h12. */
const FLEET = Array.from({ length: 12 }, (_, i) => resolved(`h${i + 1}`, REGIONS[i % 3]!));
const RUN_POLICY: RolloutPolicy = {
  ...DEFAULT_POLICY,
  batches: [3, 6, 3],
  maxFailPerBatch: "20%",
  maxFailTotal: "10%",
};
const byRegion = (index: number): ShardSpec => ({ index, count: 3, by: { groups: REGIONS } });

function fakeSession(failing: string[]): Session {
  return {
    async plan(hosts: ResolvedHost[]): Promise<HostReport[]> {
      return hosts.map((h) => changed(h.name, [REUSE]));
    },
    async apply(_hosts: ResolvedHost[], planned: HostReport[]): Promise<HostReport[]> {
      return planned.map((r) =>
        failing.includes(r.host)
          ? { ...r, status: "failed", error: { kind: "apply", message: "boom" } }
          : { ...r, outcomes: [{ change: REUSE, ok: true }], checks: [] },
      );
    },
  } as unknown as Session;
}

/** One job of the pipeline: its layout, its rollout with a fake session, its record written and read back. */
async function job(
  part: { shard?: ShardSpec; stage?: number },
  failing: string[] = [],
  name = "job",
): Promise<RecordFile> {
  const layout = layoutRollout(FLEET, RUN_POLICY, part);
  const hosts = layoutHosts(layout);
  const result: RolloutResult = await rollout(
    fakeSession(failing),
    hosts,
    hosts.map((h) => changed(h.name, [REUSE])),
    RUN_POLICY,
    { pause: async () => true },
    { layout },
  );
  const record = recordFor(result, {
    startedAt: new Date("2026-03-01T10:00:00Z"),
    inventory: "inventory.yaml",
    playbook: "playbook.yaml",
    limit: "all",
    policy: RUN_POLICY,
    layout,
  });
  const state = join(dir, name);
  const written = writeRecord(state, record);
  const read = readRecord(state, written);
  expect(read.record).toEqual(record);
  return read;
}

describe("recordFor with a layout, written and read back", () => {
  it.each<
    [string, { shard?: ShardSpec; stage?: number }, string[], Partial<RunRecord>, Array<[string, HostStatus, number]>]
  >([
    [
      "shard 2/3 by group",
      { shard: byRegion(2) },
      [],
      {
        shard: { index: 2, count: 3, by: "group:east,west,central" },
        stage: null,
        batches: [
          { index: 1, size: 3, tolerated: 0 },
          { index: 2, size: 6, tolerated: 1 },
          { index: 3, size: 3, tolerated: 0 },
        ],
        stopped: null,
      },
      [
        ["h2", "changed", 1],
        ["h5", "changed", 2],
        ["h8", "changed", 2],
        ["h11", "changed", 3],
      ],
    ],
    [
      "shard 1/3 by group that stopped: hosts not reached keep their batch",
      { shard: byRegion(1) },
      ["h4", "h7"],
      {
        shard: { index: 1, count: 3, by: "group:east,west,central" },
        stage: null,
        stopped:
          "batch 2: 2 of 2 hosts of this shard (the batch has 6) failed, more than the 1 tolerated per batch (max_fail_per_batch 20%)",
      },
      [
        ["h1", "changed", 1],
        ["h4", "failed", 2],
        ["h7", "failed", 2],
        ["h10", "not-reached", 3],
      ],
    ],
    [
      "stage 2 of shard 3/3",
      { shard: byRegion(3), stage: 2 },
      [],
      {
        shard: { index: 3, count: 3, by: "group:east,west,central" },
        stage: 2,
        batches: [{ index: 2, size: 6, tolerated: 1 }],
      },
      [
        ["h6", "changed", 2],
        ["h9", "changed", 2],
      ],
    ],
    [
      "stage 3, unsharded",
      { stage: 3 },
      [],
      { shard: null, stage: 3, batches: [{ index: 3, size: 3, tolerated: 0 }] },
      [
        ["h10", "changed", 3],
        ["h11", "changed", 3],
        ["h12", "changed", 3],
      ],
    ],
    ["stage 4, beyond the rollout: no host, no batch", { stage: 4 }, [], { shard: null, stage: 4, batches: [] }, []],
    [
      "by name",
      { shard: { index: 1, count: 1, by: "name" } },
      [],
      { shard: { index: 1, count: 1, by: "name" }, stage: null },
      FLEET.map((h, i) => [h.name, "changed", i < 3 ? 1 : i < 9 ? 2 : 3] as [string, HostStatus, number]),
    ],
  ])("%s", async (_what, part, failing, expected, hosts) => {
    const { record } = await job(part, failing);
    expect(record).toMatchObject({
      selection: { hosts: 12, digest: selectionDigest(FLEET.map((h) => h.name)) },
      batchCount: 3,
      totalTolerated: 1,
      limit: "all",
      policy: RUN_POLICY,
      ...expected,
    });
    expect(record.hosts.map((h) => [h.host, h.status, h.batch])).toEqual(hosts);
    for (const h of record.hosts) expect(h.changes).toBe(h.status === "changed" ? 1 : 0);
  });

  it("without a layout, has none of the shard fields (as before)", () => {
    const result: RolloutResult = {
      reports: [{ host: "a", status: "unchanged" }],
      batches: [{ index: 1, hosts: ["a"], failed: 0, size: 1, tolerated: 0 }],
    };
    const record = recordFor(result, {
      startedAt: new Date(),
      inventory: "inv.yaml",
      playbook: "pb.yaml",
      limit: undefined,
      policy: DEFAULT_POLICY,
    });
    for (const key of ["selection", "shard", "stage", "batches", "batchCount", "totalTolerated", "merged"])
      expect(record).not.toHaveProperty(key);
    expect(record.hosts).toEqual([{ host: "a", status: "unchanged", batch: 1, changes: 0 }]);
  });
});

describe("a sharded pipeline, end to end", () => {
  it.each<[string, string[], boolean, string | null, string[]]>([
    ["no failure", [], true, null, []],
    ["one failure, within the whole batch's budget", ["h5"], true, null, []],
    [
      "one failure in each of two shards: each within budget alone, over it together",
      ["h4", "h5"],
      false,
      null,
      [
        "batch 2: 2 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%): OVER BUDGET",
        "in all: 2 of 12 hosts failed so far, 1 tolerated (max_fail_total 10%): OVER BUDGET",
      ],
    ],
    [
      "two failures in one shard: that shard stops on its own",
      ["h5", "h8"],
      false,
      "shard 2/3: batch 2: 2 of 2 hosts of this shard (the batch has 6) failed, more than the 1 tolerated per batch (max_fail_per_batch 20%)",
      [
        "batch 2: 2 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%): OVER BUDGET",
        "in all: 2 of 12 hosts failed so far, 1 tolerated (max_fail_total 10%): OVER BUDGET",
      ],
    ],
  ])("%s", async (_what, failing, pass, stopped, overLines) => {
    const files = await Promise.all([1, 2, 3].map((k) => job({ shard: byRegion(k) }, failing, `e2e-${k}`)));
    const { record, problems } = mergeRecords(files);
    expect(problems).toEqual([]);
    expect(record.hosts.map((h) => h.host).sort()).toEqual(FLEET.map((h) => h.name).sort());
    expect(record.stopped).toBe(stopped);
    const verdict = checkBudgets(record);
    expect(verdict.pass).toBe(pass);
    expect(verdict.lines.filter((l) => l.includes("OVER BUDGET"))).toEqual(overLines);
  });

  it("stage by stage: each gate sees every stage so far", async () => {
    const stage = (k: number, failing: string[] = []) =>
      Promise.all([1, 2, 3].map((s) => job({ shard: byRegion(s), stage: k }, failing, `st${k}-${s}`)));
    const s1 = await stage(1);
    const s2 = await stage(2, ["h6"]);
    const s3 = await stage(3, ["h12"]);
    const gate1 = mergeRecords(s1);
    expect(gate1.problems).toEqual([]);
    expect(checkBudgets(gate1.record).pass).toBe(true);
    const gate2 = mergeRecords([...s1, ...s2]);
    expect(gate2.problems).toEqual([]);
    expect(checkBudgets(gate2.record)).toEqual({
      pass: true,
      lines: [
        "batch 1: 0 of 3 hosts failed, 0 tolerated (max_fail_per_batch 20%)",
        "batch 2: 1 of 6 hosts failed, 1 tolerated (max_fail_per_batch 20%)",
        "in all: 1 of 12 hosts failed so far, 1 tolerated (max_fail_total 10%)",
      ],
    });
    // Batch 3 (3 hosts) tolerates none: h12 stops its own shard, and with h6 the run has 2 failures, 1 over its budget.
    const gate3 = mergeRecords([...s1, ...s2, ...s3]);
    expect(gate3.problems).toEqual([]);
    const verdict = checkBudgets(gate3.record);
    expect(verdict.pass).toBe(false);
    expect(verdict.lines.filter((l) => l.includes("OVER BUDGET"))).toEqual([
      "batch 3: 1 of 3 hosts failed, 0 tolerated (max_fail_per_batch 20%): OVER BUDGET",
      "in all: 2 of 12 hosts failed so far, 1 tolerated (max_fail_total 10%): OVER BUDGET",
    ]);
    expect(gate3.record.stopped).toMatch(
      /^stage 3, shard 3\/3: batch 3: 1 of 1 hosts of this shard \(the batch has 3\) failed/,
    );
    expect(mergeRecords([...s1, ...s3]).problems).toEqual([
      "no record of stage 2: the total failure budget counts every stage so far, so give the records of stages 1 to 3",
    ]);
  });
});

describe("the gate after stage K (records merge --stage K, --final)", () => {
  it("a stage with no record at all is missing, not skipped", () => {
    const { problems } = mergeRecords(shards({}, 1), new Date(), 2);
    expect(problems).toEqual([
      "no record of stage 2: the total failure budget counts every stage so far, so give the records of stages 1 to 2",
    ]);
  });

  it("records of a later stage (another rollout's) are refused", () => {
    const { problems } = mergeRecords([...shards({}, 1), ...shards({}, 2), ...shards({}, 3)], new Date(), 2);
    expect(problems).toEqual([
      "records of stage 3 given to the gate after stage 2: records of another rollout? Give each rollout its own records directory",
    ]);
  });

  it("records of whole runs are not a stage's", () => {
    expect(mergeRecords(shards(), new Date(), 1).problems).toContain(
      "--stage 1: these are records of whole runs, not of stages (run --stage)",
    );
  });

  it("stages 1..K complete pass; --final fails while batches no stage ran remain", () => {
    const two = mergeRecords([...shards({}, 1), ...shards({}, 2)], new Date(), 2);
    expect(two.problems).toEqual([]);
    expect(checkBudgets(two.record).pass).toBe(true);
    const final = checkBudgets(two.record, { final: true });
    expect(final.pass).toBe(false);
    expect(final.lines[0]).toBe(
      "the rollout has 3 batches and these records end at batch 2: the pipeline needs a stage per batch (batches 3 to 3 were never run)",
    );
    const all = mergeRecords([...shards({}, 1), ...shards({}, 2), ...shards({}, 3)], new Date(), 3);
    expect(checkBudgets(all.record, { final: true }).pass).toBe(true);
  });
});

describe("resuming a record of part of a pipeline", () => {
  it("refuses one shard's record, and a merged record of the first stages only", () => {
    expect(() => hostsToResume(rec({ shard: 2, stage: 1 }))).toThrow(
      /holds shard 2\/3 only: merge every shard's record/,
    );
    const firstTwo = mergeRecords([...shards({}, 1), ...shards({}, 2)], new Date(), 2).record;
    expect(() => hostsToResume(firstTwo)).toThrow(
      /holds batches 1 to 2 of 3: run the remaining stages \(--stage 3 …\)/,
    );
    const all = mergeRecords(
      [...shards({ h5: "failed" }, 1), ...shards({ h5: "failed" }, 2), ...shards({ h5: "failed" }, 3)],
      new Date(),
      3,
    ).record;
    expect(hostsToResume(all)).toEqual(["h5"]);
  });
});

describe("notReadyForStage (run --stage K --after the gate's record)", () => {
  const gate1 = () => mergeRecords(shards({}, 1), new Date(), 1).record;
  const now = { selection: SELECTION, policy: POLICY, batchCount: 3 };
  it("starts after a passed gate of stage K-1 over the same hosts and policy", () => {
    expect(notReadyForStage(gate1(), 2, now)).toEqual([]);
  });
  it("says every reason not to start", () => {
    const failed = mergeRecords(shards({ h1: "failed" }, 1), new Date(), 1).record;
    const reasons = notReadyForStage(failed, 3, {
      selection: { hosts: 10, digest: "other" },
      policy: { ...POLICY, maxFailTotal: 5 },
      batchCount: 3,
    });
    expect(reasons).toHaveLength(4);
    expect(reasons[0]).toMatch(
      /^the selected hosts or their config changed since the earlier stages \(10 hosts, digest other; the record has 9/,
    );
    expect(reasons[1]).toBe("the rollout policy changed since the earlier stages");
    expect(reasons[2]).toBe(
      "the record ends at batch 1, not at batch 2: give the merged record of the gate after stage 2",
    );
    expect(reasons[3]).toMatch(
      /^the gate after stage 2 did not pass: batch 1: 1 of 1 hosts failed, 0 tolerated .*OVER BUDGET/,
    );
  });
});
