import { bareHost } from "./_roles.js";
import { describe, expect, it } from "vitest";
import type { HostReport } from "../../src/report.js";
import { DEFAULT_POLICY, type RolloutPolicy } from "../../src/rollout/policy.js";
import { rollout } from "../../src/rollout/run.js";
import { REUSE, changed, fakeSession } from "./_reports.js";

const host = (name: string) => bareHost(name);

const hosts = ["a", "b", "c", "d", "e"].map(host);
const shown = hosts.map((h) => changed(h.name, [REUSE]));
const policy = (over: Partial<RolloutPolicy>): RolloutPolicy => ({ ...DEFAULT_POLICY, ...over });
const go = { pause: async () => true };
const statuses = (r: { reports: HostReport[] }) => Object.fromEntries(r.reports.map((x) => [x.host, x.status]));

describe("rollout", () => {
  it("re-plans then applies batch by batch, in inventory order", async () => {
    const { session, calls } = fakeSession();
    const r = await rollout(session, hosts, shown, policy({ batches: [1, 2] }), go);
    expect(calls).toEqual(["plan a", "apply a", "plan b,c", "apply b,c", "plan d,e", "apply d,e"]);
    expect(r.batches.map((b) => b.hosts)).toEqual([["a"], ["b", "c"], ["d", "e"]]);
    expect(r.stopped).toBeUndefined();
    expect(Object.values(statuses(r))).toEqual(["changed", "changed", "changed", "changed", "changed"]);
  });

  it("stops when a batch's failures exceed max_fail_per_batch; later hosts are not reached", async () => {
    const { session, calls } = fakeSession({ failing: ["b"] });
    const r = await rollout(
      session,
      hosts,
      shown,
      policy({ batches: [1, 2], maxFailPerBatch: 0, maxFailTotal: 5 }),
      go,
    );
    expect(calls).toEqual(["plan a", "apply a", "plan b,c", "apply b,c"]);
    expect(statuses(r)).toEqual({ a: "changed", b: "failed", c: "changed", d: "not-reached", e: "not-reached" });
    expect(r.stopped).toBe("batch 2: 1 of 2 hosts failed, more than the 0 tolerated per batch (max_fail_per_batch 0)");
  });

  it("reaching the threshold is tolerated; exceeding the total budget stops", async () => {
    const { session } = fakeSession({ failing: ["b", "d"] });
    const r = await rollout(
      session,
      hosts,
      shown,
      policy({ batches: [1, 2], maxFailPerBatch: 1, maxFailTotal: 1 }),
      go,
    );
    expect(statuses(r)).toEqual({ a: "changed", b: "failed", c: "changed", d: "failed", e: "changed" });
    expect(r.stopped).toBe(
      "after batch 3: 2 of 5 hosts failed in this run, more than the 1 tolerated (max_fail_total 1)",
    );
  });

  it("percentages: 50% of a 2-host batch tolerates 1", async () => {
    const { session } = fakeSession({ failing: ["b"] });
    const r = await rollout(
      session,
      hosts,
      shown,
      policy({ batches: [1, 2], maxFailPerBatch: "50%", maxFailTotal: "20%" }),
      go,
    );
    expect(r.stopped).toBeUndefined();
    expect(r.batches.map((b) => b.tolerated)).toEqual([0, 1, 1]);
  });

  it("counts an unreachable host as failed", async () => {
    const { session, calls } = fakeSession({ unreachable: ["a"] });
    const unreachableShown = shown.map((s) =>
      s.host === "a" ? { host: "a", status: "unreachable" as const, error: { kind: "unreachable", message: "x" } } : s,
    );
    const r = await rollout(session, hosts, unreachableShown, policy({ batches: [1] }), go);
    expect(calls).toEqual(["plan a", "apply "]);
    expect(statuses(r).a).toBe("unreachable");
    expect(r.stopped).toMatch(/^batch 1: 1 of 1 hosts failed/);
  });

  it("stops before applying a batch whose fresh plan differs from the one shown, and returns that plan", async () => {
    const { session, calls } = fakeSession({ drifted: ["c"] });
    const r = await rollout(session, hosts, shown, policy({ batches: [1, 2] }), go);
    expect(calls).toEqual(["plan a", "apply a", "plan b,c"]);
    expect(r.drift?.map((d) => d.host)).toEqual(["c"]);
    expect(r.stopped).toMatch(/^batch 2: the plan of c changed since it was shown/);
    expect(statuses(r)).toEqual({
      a: "changed",
      b: "not-reached",
      c: "not-reached",
      d: "not-reached",
      e: "not-reached",
    });
  });

  it.each<[string, boolean, string[]]>([
    [
      "a plan shown moments ago (no prompt): batch 1 applies it, later batches re-plan",
      true,
      ["apply a", "plan b,c", "apply b,c", "plan d,e", "apply d,e"],
    ],
    [
      "a plan someone may have looked at for a while: every batch re-plans",
      false,
      ["plan a", "apply a", "plan b,c", "apply b,c", "plan d,e", "apply d,e"],
    ],
  ])("%s", async (_what, shownIsFresh, expected) => {
    const { session, calls } = fakeSession({ drifted: ["a"] });
    const r = await rollout(session, hosts, shown, policy({ batches: [1, 2], allowPlanDrift: true }), go, {
      shownIsFresh,
    });
    expect(calls).toEqual(expected);
    // the first batch applies the plan that was shown, or the one just read
    expect(r.reports[0]!.plan!.changes[0]).toMatchObject({ before: shownIsFresh ? "2" : "0" });
  });

  it("goes on through drift when allowed", async () => {
    const { session } = fakeSession({ drifted: ["c"] });
    const r = await rollout(session, hosts, shown, policy({ batches: [1, 2], allowPlanDrift: true }), go);
    expect(r.stopped).toBeUndefined();
    expect(r.drift).toBeUndefined();
  });

  it("pauses between batches only, and stops when the pause says no", async () => {
    const pauses: unknown[] = [];
    const { session } = fakeSession();
    const r = await rollout(session, hosts, shown, policy({ batches: [2], pause: 7 }), {
      pause: async (p) => {
        pauses.push(p);
        return pauses.length < 2;
      },
    });
    expect(pauses).toEqual([7, 7]);
    expect(r.stopped).toBe("stopped at the pause before batch 3");
    expect(statuses(r)).toEqual({ a: "changed", b: "changed", c: "changed", d: "changed", e: "not-reached" });
  });
});

describe("rollout of a reviewed plan (run --plan)", () => {
  const reviewed = { explain: (r: HostReport) => `facts of ${r.host} changed` };

  it("refuses only the hosts whose plan changed, applies the rest, and counts the refused as failed", async () => {
    const { session, calls } = fakeSession({ drifted: ["b"] });
    const r = await rollout(session, hosts, shown, policy({ maxFailPerBatch: 1, maxFailTotal: 1 }), go, { reviewed });
    expect(calls).toEqual(["plan a,b,c,d,e", "apply a,c,d,e"]);
    expect(statuses(r)).toEqual({ a: "changed", b: "failed", c: "changed", d: "changed", e: "changed" });
    expect(r.reports[1]!.error).toEqual({ kind: "plan-changed", message: "facts of b changed" });
    expect(r.batches[0]!.failed).toBe(1);
    expect(r.stopped).toBeUndefined();
    expect(r.drift).toBeUndefined();
  });

  it("a refused host counts against the budgets: over them, no later batch starts", async () => {
    const { session, calls } = fakeSession({ drifted: ["a"] });
    const r = await rollout(session, hosts, shown, policy({ batches: [1, 4] }), go, { reviewed });
    expect(calls).toEqual(["plan a", "apply "]);
    expect(statuses(r)).toMatchObject({ a: "failed", b: "not-reached" });
    expect(r.stopped).toMatch(/^batch 1: 1 of 1 hosts failed/);
  });

  it("never reuses the shown plan: every batch reads its hosts again", async () => {
    const { session, calls } = fakeSession();
    await rollout(session, hosts, shown, policy({ batches: [2, 3] }), go, { reviewed, shownIsFresh: true });
    expect(calls[0]).toBe("plan a,b");
  });
});

describe("rollout checkpoints", () => {
  it("after every batch but the last: done hosts as they ended, later ones not reached", async () => {
    const { session } = fakeSession({ failing: ["b"] });
    const seen: Array<Record<string, string>> = [];
    const r = await rollout(
      session,
      hosts,
      shown,
      policy({ batches: [1, 2], maxFailPerBatch: 1, maxFailTotal: 5 }),
      go,
      {
        checkpoint: (sofar) => seen.push(statuses(sofar)),
      },
    );
    expect(seen).toEqual([
      { a: "changed", b: "not-reached", c: "not-reached", d: "not-reached", e: "not-reached" },
      { a: "changed", b: "failed", c: "changed", d: "not-reached", e: "not-reached" },
    ]);
    expect(statuses(r)).toEqual({ a: "changed", b: "failed", c: "changed", d: "changed", e: "changed" });
  });

  it("none when the run stops: its final record follows at once", async () => {
    const { session } = fakeSession({ failing: ["a"] });
    const seen: unknown[] = [];
    const r = await rollout(session, hosts, shown, policy({ batches: [1, 2] }), go, {
      checkpoint: (s) => seen.push(s),
    });
    expect(r.stopped).toMatch(/^batch 1:/);
    expect(seen).toEqual([]);
  });
});
