import { bareHost } from "./_roles.js";
import { describe, expect, it } from "vitest";
import type { HostReport } from "../../src/report.js";
import type { ResolvedHost } from "../../src/resolve.js";
import { DEFAULT_POLICY, type RolloutPolicy } from "../../src/rollout/policy.js";
import { layoutHosts, layoutRollout, type RolloutLayout } from "../../src/rollout/layout.js";
import { selectionDigest, type ShardSpec } from "../../src/rollout/shard.js";
import { rollout, type BatchSummary } from "../../src/rollout/run.js";
import { REUSE, changed, fakeSession } from "./_reports.js";

const host = bareHost;

const policy = (over: Partial<RolloutPolicy>): RolloutPolicy => ({ ...DEFAULT_POLICY, ...over });
const REGIONS = ["east", "west", "central"];
/** h1..hN, round-robin in east, west, central: h1 east, h2 west, h3 central, h4 east, … */
const fleet = (n: number) => Array.from({ length: n }, (_, i) => host(`h${i + 1}`, REGIONS[i % 3]!));
const byName = (index: number, count = 3): ShardSpec => ({ index, count, by: "name" });
const byRegion = (index: number): ShardSpec => ({ index, count: 3, by: { groups: REGIONS } });
const namesOf = <T extends { name: string }>(hosts: T[]) => hosts.map((h) => h.name);
const shape = (l: RolloutLayout<ResolvedHost>) => l.batches.map((b) => [b.index, b.size, b.tolerated]);

describe("layoutRollout: batches of every selected host", () => {
  it.each<[string, number, Partial<RolloutPolicy>, number[], number[]]>([
    [
      '"1,10%,100%" over 25, 10% tolerated',
      25,
      { batches: [1, "10%", "100%"], maxFailPerBatch: "10%" },
      [1, 2, 22],
      [0, 0, 2],
    ],
    ["one batch of everything, nothing tolerated", 25, {}, [25], [0]],
    [
      "a count per batch: tolerated as given, even above a batch's size",
      12,
      { batches: [5], maxFailPerBatch: 3 },
      [5, 5, 2],
      [3, 3, 3],
    ],
    ["50% batches, 50% tolerated, rounded down", 7, { batches: ["50%"], maxFailPerBatch: "50%" }, [3, 3, 1], [1, 1, 0]],
    [
      "a percentage that rounds to 0 hosts makes batches of 1",
      4,
      { batches: ["1%"], maxFailPerBatch: "100%" },
      [1, 1, 1, 1],
      [1, 1, 1, 1],
    ],
    ["34% of each batch", 25, { batches: [3, "100%"], maxFailPerBatch: "34%" }, [3, 22], [1, 7]],
    ["one host", 1, { batches: [1, "10%"], maxFailPerBatch: "10%" }, [1], [0]],
  ])("%s", (_what, n, over, sizes, tolerated) => {
    const hosts = fleet(n);
    const l = layoutRollout(hosts, policy(over));
    expect(l.batches.map((b) => b.size)).toEqual(sizes);
    expect(l.batches.map((b) => b.hosts.length)).toEqual(sizes);
    expect(l.batches.map((b) => b.tolerated)).toEqual(tolerated);
    expect(l.batches.map((b) => b.index)).toEqual(sizes.map((_, i) => i + 1));
    expect(l.batchCount).toBe(sizes.length);
    expect(layoutHosts(l)).toEqual(hosts);
    expect(l.selected).toEqual({ hosts: n, digest: selectionDigest(namesOf(hosts)) });
    expect(l).not.toHaveProperty("shard");
    expect(l).not.toHaveProperty("stage");
  });

  it("cuts batches in inventory order", () => {
    const l = layoutRollout(fleet(25), policy({ batches: [1, "10%", "100%"] }));
    expect(l.batches.map((b) => namesOf(b.hosts))).toEqual([
      ["h1"],
      ["h2", "h3"],
      Array.from({ length: 22 }, (_, i) => `h${i + 4}`),
    ]);
  });

  it("of no hosts: no batches", () => {
    const l = layoutRollout([], policy({ batches: [2] }));
    expect(l.batches).toEqual([]);
    expect(l.batchCount).toBe(0);
    expect(l.selected.hosts).toBe(0);
  });

  it.each<[string, number, RolloutPolicy["maxFailTotal"], ShardSpec | undefined, number | undefined, number]>([
    ["10% of 25", 25, "10%", undefined, undefined, 2],
    ["5% of 25, rounded down", 25, "5%", undefined, undefined, 1],
    ["a count", 25, 3, undefined, undefined, 3],
    ["none", 25, 0, undefined, undefined, 0],
    ["100%", 25, "100%", undefined, undefined, 25],
    ["10% of every selected host, not of a shard's part", 25, "10%", byName(2), undefined, 2],
    ["20% of every selected host, not of a shard's part by group", 30, "20%", byRegion(1), undefined, 6],
    ["10% of every selected host, not of one stage", 25, "10%", undefined, 3, 2],
    ["40% of every selected host, not of one stage of one shard", 25, "40%", byName(3), 1, 10],
  ])("totalTolerated: %s", (_what, n, maxFailTotal, shard, stage, expected) => {
    const l = layoutRollout(fleet(n), policy({ batches: [1, "10%", "100%"], maxFailTotal }), {
      ...(shard ? { shard } : {}),
      ...(stage !== undefined ? { stage } : {}),
    });
    expect(l.totalTolerated).toBe(expected);
    expect(l.selected.hosts).toBe(n);
  });
});

describe("layoutRollout of a shard", () => {
  const hosts = fleet(25);
  const p = policy({ batches: [1, "10%", "100%"], maxFailPerBatch: "10%", maxFailTotal: "10%" });
  const whole = layoutRollout(hosts, p);

  it.each<[string, (k: number) => ShardSpec]>([
    ["by name", (k) => byName(k)],
    ["by group", byRegion],
  ])("%s: every host is in exactly one shard's layout, and batch k is the union of the shards' batch k", (_w, spec) => {
    const shards = [1, 2, 3].map((k) => layoutRollout(hosts, p, { shard: spec(k) }));
    const everyHost = shards.flatMap((l) => namesOf(layoutHosts(l)));
    expect(everyHost.sort()).toEqual(namesOf(hosts).sort());
    for (const l of shards) {
      // numbering, sizes and budgets are the whole rollout's, in every shard
      expect(shape(l)).toEqual(shape(whole));
      expect(l.batchCount).toBe(whole.batchCount);
      expect(l.selected).toEqual(whole.selected);
      expect(l.totalTolerated).toBe(whole.totalTolerated);
    }
    for (const b of whole.batches) {
      const parts = shards.map((l) => l.batches.find((x) => x.index === b.index)!.hosts);
      const union = new Set(parts.flat());
      expect(union.size).toBe(b.hosts.length);
      expect(parts.flat()).toHaveLength(b.hosts.length);
      // each shard's part is the whole batch's hosts that are its own, in inventory order
      for (const part of parts) expect(part).toEqual(b.hosts.filter((h) => part.includes(h)));
      expect(b.hosts.filter((h) => union.has(h))).toEqual(b.hosts);
    }
  });

  it("by group, the parts are the groups' hosts", () => {
    const l = layoutRollout(hosts, p, { shard: byRegion(2) });
    expect(l.shard).toEqual(byRegion(2));
    expect(l.batches.map((b) => namesOf(b.hosts))).toEqual([
      [],
      ["h2"],
      ["h5", "h8", "h11", "h14", "h17", "h20", "h23"],
    ]);
  });

  it("keeps a batch in which the shard has no host, empty, with its size and budget", () => {
    const l = layoutRollout(hosts, p, { shard: byRegion(3) });
    expect(l.batches[0]).toEqual({ index: 1, hosts: [], size: 1, tolerated: 0 });
    expect(namesOf(l.batches[1]!.hosts)).toEqual(["h3"]);
  });

  it("refuses a grouping with a host in no shard group", () => {
    expect(() => layoutRollout([...hosts, host("lonely")], p, { shard: byRegion(1) })).toThrow(/^lonely: in none/);
  });
});

describe("layoutRollout of a stage", () => {
  const hosts = fleet(25);
  const p = policy({ batches: [1, "10%", "100%"], maxFailPerBatch: "10%", maxFailTotal: "10%" });

  it.each<[number, ShardSpec | undefined, number[][], string[]]>([
    [1, undefined, [[1, 1, 0]], ["h1"]],
    [2, undefined, [[2, 2, 0]], ["h2", "h3"]],
    [3, undefined, [[3, 22, 2]], Array.from({ length: 22 }, (_, i) => `h${i + 4}`)],
    [2, byRegion(2), [[2, 2, 0]], ["h2"]],
    [2, byRegion(1), [[2, 2, 0]], []],
    [3, byRegion(1), [[3, 22, 2]], ["h4", "h7", "h10", "h13", "h16", "h19", "h22", "h25"]],
  ])("stage %i of shard %j: only that batch", (stage, shard, expectedShape, expectedHosts) => {
    const l = layoutRollout(hosts, p, { stage, ...(shard ? { shard } : {}) });
    expect(shape(l)).toEqual(expectedShape);
    expect(namesOf(layoutHosts(l))).toEqual(expectedHosts);
    expect(l.batchCount).toBe(3);
    expect(l.stage).toBe(stage);
    expect(l.totalTolerated).toBe(2);
  });

  it.each([4, 10])("stage %i, beyond the 3 batches: no batch, and batchCount stays 3", (stage) => {
    for (const shard of [undefined, byName(1)]) {
      const l = layoutRollout(hosts, p, { stage, ...(shard ? { shard } : {}) });
      expect(l.batches).toEqual([]);
      expect(layoutHosts(l)).toEqual([]);
      expect(l.batchCount).toBe(3);
      expect(l.stage).toBe(stage);
    }
  });
});

/** Hooks that count pauses and note every batch start and end. */
function recordingHooks(pauseAnswers: boolean[] = []) {
  const events: string[] = [];
  let pauses = 0;
  return {
    events,
    pauses: () => pauses,
    hooks: {
      pause: async () => (pauses++ < pauseAnswers.length ? pauseAnswers[pauses - 1]! : true),
      batchStart: (batch: number, count: number, hosts: string[]) =>
        events.push(`start ${batch}/${count} ${hosts.join(",")}`),
      batchEnd: (s: BatchSummary, count: number) =>
        events.push(
          `end ${s.index}/${count} ${s.failed} of ${s.hosts.length} (size ${s.size}, tolerated ${s.tolerated})`,
        ),
    },
  };
}

/** The plan shown at the start: what the fake session plans again, so nothing drifts. */
const shownOf = (hosts: ResolvedHost[]) => hosts.map((h) => changed(h.name, [REUSE]));
const statuses = (r: { reports: HostReport[] }) => Object.fromEntries(r.reports.map((x) => [x.host, x.status]));

describe("rollout of a shard's layout", () => {
  // batches [3, 6, 3] of h1..h12: h1-h3, h4-h9, h10-h12. Shard 1/3 by group (east): h1 | h4, h7 | h10.
  const hosts = fleet(12);
  const run = async (
    over: Partial<RolloutPolicy>,
    failing: string[],
    shard: ShardSpec = byRegion(1),
    stage?: number,
  ) => {
    const p = policy({ batches: [3, 6, 3], maxFailTotal: 10, ...over });
    const layout = layoutRollout(hosts, p, { shard, ...(stage !== undefined ? { stage } : {}) });
    const { session, calls } = fakeSession({ failing });
    const rec = recordingHooks();
    const result = await rollout(session, layoutHosts(layout), shownOf(layoutHosts(layout)), p, rec.hooks, { layout });
    return { result, calls, events: rec.events, pauses: rec.pauses() };
  };

  it("runs only the shard's hosts, batch by batch, numbered as the whole rollout", async () => {
    const { result, calls, events, pauses } = await run({}, []);
    expect(calls).toEqual(["plan h1", "apply h1", "plan h4,h7", "apply h4,h7", "plan h10", "apply h10"]);
    expect(events).toEqual([
      "start 1/3 h1",
      "end 1/3 0 of 1 (size 3, tolerated 0)",
      "start 2/3 h4,h7",
      "end 2/3 0 of 2 (size 6, tolerated 0)",
      "start 3/3 h10",
      "end 3/3 0 of 1 (size 3, tolerated 0)",
    ]);
    expect(pauses).toBe(2);
    expect(result.reports.map((r) => r.host)).toEqual(["h1", "h4", "h7", "h10"]);
    expect(result.stopped).toBeUndefined();
  });

  it.each<[string, Partial<RolloutPolicy>, string[], string | undefined, Record<string, string>]>([
    [
      "1 failure of the shard, the whole batch tolerating 1: goes on",
      { maxFailPerBatch: 1 },
      ["h4"],
      undefined,
      { h1: "changed", h4: "failed", h7: "changed", h10: "changed" },
    ],
    [
      "1 failure of 2 hosts, 20% of the whole batch of 6 tolerating 1 (20% of the shard's 2 would be 0): goes on",
      { maxFailPerBatch: "20%" },
      ["h7"],
      undefined,
      { h1: "changed", h4: "changed", h7: "failed", h10: "changed" },
    ],
    [
      "2 failures of the shard, the whole batch tolerating 1: stops",
      { maxFailPerBatch: 1 },
      ["h4", "h7"],
      "batch 2: 2 of 2 hosts of this shard (the batch has 6) failed, more than the 1 tolerated per batch (max_fail_per_batch 1)",
      { h1: "changed", h4: "failed", h7: "failed", h10: "not-reached" },
    ],
    [
      "2 failures of the shard against 20% of the whole batch: stops, naming the percentage",
      { maxFailPerBatch: "20%" },
      ["h4", "h7"],
      "batch 2: 2 of 2 hosts of this shard (the batch has 6) failed, more than the 1 tolerated per batch (max_fail_per_batch 20%)",
      { h1: "changed", h4: "failed", h7: "failed", h10: "not-reached" },
    ],
    [
      "1 failure in a batch tolerating none: stops at once",
      { maxFailPerBatch: 0 },
      ["h1"],
      "batch 1: 1 of 1 hosts of this shard (the batch has 3) failed, more than the 0 tolerated per batch (max_fail_per_batch 0)",
      { h1: "failed", h4: "not-reached", h7: "not-reached", h10: "not-reached" },
    ],
    [
      "failures of other shards' hosts don't count here",
      { maxFailPerBatch: 0, maxFailTotal: 0 },
      ["h2", "h3", "h5", "h6", "h8"],
      undefined,
      { h1: "changed", h4: "changed", h7: "changed", h10: "changed" },
    ],
    [
      "the shard's failures over the whole run's budget: stops, naming the run's hosts",
      { maxFailPerBatch: 1, maxFailTotal: 1 },
      ["h1", "h7"],
      "after batch 2: 2 of 4 hosts of this shard failed (the run has 12), more than the 1 tolerated (max_fail_total 1)",
      { h1: "failed", h4: "changed", h7: "failed", h10: "not-reached" },
    ],
    [
      "the shard's failures reaching the whole run's 10% (1 of 12): goes on",
      { maxFailPerBatch: 1, maxFailTotal: "10%" },
      ["h7"],
      undefined,
      { h1: "changed", h4: "changed", h7: "failed", h10: "changed" },
    ],
  ])("%s", async (_what, over, failing, stopped, expected) => {
    const { result } = await run(over, failing);
    expect(result.stopped).toBe(stopped);
    expect(statuses(result)).toEqual(expected);
  });

  it("skips, without a pause, a batch in which the shard has no host", async () => {
    // batches [2, 2, 1]: e1, w1 | e2, e3 | w2. Shard 2/2 by group (west): w1 | (none) | w2.
    const hosts = [host("e1", "east"), host("w1", "west"), host("e2", "east"), host("e3", "east"), host("w2", "west")];
    const p = policy({ batches: [2, 2, 1], pause: 30 });
    const layout = layoutRollout(hosts, p, { shard: { index: 2, count: 2, by: { groups: ["east", "west"] } } });
    expect(layout.batches.map((b) => namesOf(b.hosts))).toEqual([["w1"], [], ["w2"]]);
    const { session, calls } = fakeSession();
    const rec = recordingHooks();
    const r = await rollout(session, layoutHosts(layout), shownOf(layoutHosts(layout)), p, rec.hooks, { layout });
    expect(calls).toEqual(["plan w1", "apply w1", "plan w2", "apply w2"]);
    expect(rec.pauses()).toBe(1);
    expect(rec.events.filter((e) => e.startsWith("start"))).toEqual(["start 1/3 w1", "start 3/3 w2"]);
    expect(r.batches.map((b) => b.index)).toEqual([1, 3]);
    expect(statuses(r)).toEqual({ w1: "changed", w2: "changed" });
  });

  it("does not pause before the first batch the shard has a host in, and may reuse the shown plan there", async () => {
    // batches [2]: e1, e2 | w1, w2. Shard 2/2 (west) has no host in batch 1.
    const hosts = [host("e1", "east"), host("e2", "east"), host("w1", "west"), host("w2", "west")];
    const p = policy({ batches: [2], pause: 30 });
    const layout = layoutRollout(hosts, p, { shard: { index: 2, count: 2, by: { groups: ["east", "west"] } } });
    const { session, calls } = fakeSession();
    const rec = recordingHooks();
    const shown = ["w1", "w2"].map((h) => changed(h, [REUSE]));
    const r = await rollout(session, layoutHosts(layout), shown, p, rec.hooks, { layout, shownIsFresh: true });
    expect(calls).toEqual(["apply w1,w2"]);
    expect(rec.pauses()).toBe(0);
    expect(r.batches.map((b) => b.index)).toEqual([2]);
  });

  it("a pause that says no names the whole rollout's next batch", async () => {
    const hosts = [host("e1", "east"), host("w1", "west"), host("e2", "east"), host("e3", "east"), host("w2", "west")];
    const p = policy({ batches: [2, 2, 1], pause: 30 });
    const layout = layoutRollout(hosts, p, { shard: { index: 2, count: 2, by: { groups: ["east", "west"] } } });
    const { session } = fakeSession();
    const rec = recordingHooks([false]);
    const r = await rollout(session, layoutHosts(layout), shownOf(layoutHosts(layout)), p, rec.hooks, { layout });
    expect(r.stopped).toBe("stopped at the pause before batch 3");
    expect(statuses(r)).toEqual({ w1: "changed", w2: "not-reached" });
  });

  it("a shard with no host at all contacts none and reports none", async () => {
    const hosts = [host("e1", "east"), host("e2", "east")];
    const p = policy({ batches: [1] });
    const layout = layoutRollout(hosts, p, { shard: { index: 2, count: 2, by: { groups: ["east", "west"] } } });
    const { session, calls } = fakeSession();
    const rec = recordingHooks();
    const r = await rollout(session, [], [], p, rec.hooks, { layout });
    expect(calls).toEqual([]);
    expect(rec.pauses()).toBe(0);
    expect(r).toEqual({ reports: [], batches: [] });
  });

  it.each<[string, number, ShardSpec | undefined, string[], string[], string | undefined]>([
    ["stage 2 of shard 1/3", 2, byRegion(1), [], ["plan h4,h7", "apply h4,h7"], undefined],
    [
      "stage 2 of shard 1/3, over the whole batch's budget",
      2,
      byRegion(1),
      ["h4", "h7"],
      ["plan h4,h7", "apply h4,h7"],
      "batch 2: 2 of 2 hosts of this shard (the batch has 6) failed, more than the 1 tolerated per batch (max_fail_per_batch 1)",
    ],
    ["stage 3 of shard 2/3", 3, byRegion(2), [], ["plan h11", "apply h11"], undefined],
    ["stage 4, beyond the rollout", 4, byRegion(1), [], [], undefined],
  ])("%s: only that batch, without a pause", async (_what, stage, shard, failing, expectedCalls, stopped) => {
    const { result, calls, pauses, events } = await run({ maxFailPerBatch: 1 }, failing, shard, stage);
    expect(calls).toEqual(expectedCalls);
    expect(pauses).toBe(0);
    expect(result.stopped).toBe(stopped);
    expect(result.batches.map((b) => b.index)).toEqual(expectedCalls.length > 0 ? [stage] : []);
    expect(events.filter((e) => e.startsWith("start")).map((e) => e.split(" ")[1])).toEqual(
      expectedCalls.length > 0 ? [`${stage}/3`] : [],
    );
  });

  it("a stage without a shard: the message has no shard in it", async () => {
    const p = policy({ batches: [3, 6, 3], maxFailPerBatch: 1 });
    const layout = layoutRollout(hosts, p, { stage: 2 });
    const { session, calls } = fakeSession({ failing: ["h5", "h9"] });
    const r = await rollout(session, layoutHosts(layout), shownOf(layoutHosts(layout)), p, recordingHooks().hooks, {
      layout,
    });
    expect(calls).toEqual(["plan h4,h5,h6,h7,h8,h9", "apply h4,h5,h6,h7,h8,h9"]);
    expect(r.stopped).toBe("batch 2: 2 of 6 hosts failed, more than the 1 tolerated per batch (max_fail_per_batch 1)");
    expect(r.reports.map((x) => x.host)).toEqual(["h4", "h5", "h6", "h7", "h8", "h9"]);
  });

  it("without a layout, cuts the batches itself, as before", async () => {
    const p = policy({ batches: [3, 6, 3], maxFailPerBatch: 1 });
    const { session, calls } = fakeSession();
    const r = await rollout(session, hosts, shownOf(hosts), p, recordingHooks().hooks);
    expect(calls.filter((c) => c.startsWith("plan"))).toEqual([
      "plan h1,h2,h3",
      "plan h4,h5,h6,h7,h8,h9",
      "plan h10,h11,h12",
    ]);
    expect(r.batches.map((b) => [b.index, b.size, b.tolerated])).toEqual([
      [1, 3, 1],
      [2, 6, 1],
      [3, 3, 1],
    ]);
  });
});
