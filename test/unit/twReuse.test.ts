import { describe, expect, it } from "vitest";
import twReuse, { type TwReuseParams } from "../../roles/tw-reuse.js";
import { planHost, type HostPlan } from "../../src/plan.js";
import type { Facts } from "../../src/role.js";
import { evaluateChecks } from "../../src/verify.js";
import { facts, factsAfter, fileOf, hostWith, paramsOf, settings, settingsWithoutComment } from "./_roles.js";
import { withoutBootChecks } from "./_roles.js";

const REUSE = "net.ipv4.tcp_tw_reuse";
const TS = "net.ipv4.tcp_timestamps";
const FIN = "net.ipv4.tcp_fin_timeout";
const BUCKETS = "net.ipv4.tcp_max_tw_buckets";
const PATH = "/etc/sysctl.d/60-provision-tw-reuse.conf";

function plan(over: Record<string, unknown>, f: Facts): HostPlan {
  return planHost(hostWith("web01", [[twReuse, over]]), f);
}

const kernelDefaults = facts({ sysctl: { [REUSE]: "2", [TS]: "1", [FIN]: "60", [BUCKETS]: "262144" } });

describe("tw-reuse on a fresh host", () => {
  it("creates the drop-in and sets only the live values that differ", () => {
    const p = plan({}, kernelDefaults);
    expect(
      p.changes.map((c) =>
        c.kind === "command"
          ? [c.kind, c.argv]
          : [c.kind, c.kind === "file" ? c.path : c.key, c.before, c.kind === "file" ? "(content)" : c.after],
      ),
    ).toEqual([
      ["file", PATH, null, "(content)"],
      ["sysctl", REUSE, "2", "1"],
    ]);
    expect(
      withoutBootChecks(p.checks).map((c) =>
        c.kind === "sysctl" ? `${c.key}=${c.expected}` : c.kind === "file" ? c.path : c.label,
      ),
    ).toEqual([`${REUSE}=1`, `${TS}=1`, PATH]);
    expect(p.notes).toEqual([]);
  });

  it("sets the optional keys when given", () => {
    const p = plan({ tcp_fin_timeout: 30, tcp_max_tw_buckets: 2000000 }, kernelDefaults);
    expect(
      p.changes
        .filter((c) => c.kind === "sysctl")
        .map((c) => [c.kind === "sysctl" && c.key, c.before, c.kind === "sysctl" && c.after]),
    ).toEqual([
      [REUSE, "2", "1"],
      [FIN, "60", "30"],
      [BUCKETS, "262144", "2000000"],
    ]);
    expect(settings(fileOf(p))).toEqual([
      [REUSE, "1"],
      [TS, "1"],
      [FIN, "30"],
      [BUCKETS, "2000000"],
    ]);
  });

  it("plans a key the host does not have (before: null)", () => {
    const p = plan({ tcp_fin_timeout: 30 }, facts({ sysctl: { [REUSE]: "1", [TS]: "1" } }));
    expect(p.changes.find((c) => c.kind === "sysctl")).toMatchObject({ key: FIN, before: null, after: "30" });
  });
});

describe("tw-reuse optional keys", () => {
  it.each<[string, Record<string, unknown>, string[]]>([
    ["both null", {}, [REUSE, TS]],
    ["fin timeout only", { tcp_fin_timeout: 15 }, [REUSE, TS, FIN]],
    ["buckets only", { tcp_max_tw_buckets: 1024 }, [REUSE, TS, BUCKETS]],
    ["both set", { tcp_fin_timeout: 300, tcp_max_tw_buckets: 16777216 }, [REUSE, TS, FIN, BUCKETS]],
  ])("%s: only those keys are read, written, set and checked", (_what, over, keys) => {
    const params = paramsOf(twReuse, over) as unknown as TwReuseParams;
    expect(twReuse.facts(params)).toEqual([
      ...keys.map((key) => ({ kind: "sysctl", key })),
      { kind: "file", path: PATH },
    ]);
    const p = plan(over, facts());
    const content = fileOf(p);
    expect(settings(content).map(([k]) => k)).toEqual(keys);
    expect(p.changes.filter((c) => c.kind === "sysctl").map((c) => c.kind === "sysctl" && c.key)).toEqual(keys);
    expect(p.checks.filter((c) => c.kind === "sysctl").map((c) => c.kind === "sysctl" && c.key)).toEqual(keys);
    for (const absent of [FIN, BUCKETS].filter((k) => !keys.includes(k))) {
      expect(content).not.toContain(`${absent} =`);
    }
    expect(content).not.toMatch(/ = (null|undefined)?$/m);
  });
});

describe("tw-reuse rendered file", () => {
  it.each<[string, Record<string, unknown>]>([
    ["defaults", {}],
    ["every option", { tcp_fin_timeout: 30, tcp_max_tw_buckets: 400000 }],
    ["reuse off", { tcp_tw_reuse: 0, tcp_timestamps: 0 }],
  ])("%s: header names the role, a comment precedes every setting", (_what, over) => {
    const content = fileOf(plan(over, facts()));
    expect(content.split("\n")[0]).toMatch(/^# Managed by provision, role tw-reuse\./);
    expect(settingsWithoutComment(content)).toEqual([]);
    expect(content.endsWith("\n")).toBe(true);
    expect(content.endsWith("\n\n")).toBe(false);
  });

  it("never sets tcp_tw_recycle (only explains why)", () => {
    const content = fileOf(plan({ tcp_fin_timeout: 30, tcp_max_tw_buckets: 400000 }, facts()));
    expect(settings(content).map(([k]) => k)).not.toContain("net.ipv4.tcp_tw_recycle");
    expect(content).toMatch(/^# tcp_tw_recycle is never set/m);
  });

  it("renders 0 values as 0", () => {
    expect(settings(fileOf(plan({ tcp_tw_reuse: 0, tcp_timestamps: 0 }, facts())))).toEqual([
      [REUSE, "0"],
      [TS, "0"],
    ]);
  });

  it("explains that tcp_fin_timeout is not the TIME_WAIT length", () => {
    const content = fileOf(plan({ tcp_fin_timeout: 30 }, facts())).replace(/\n# /g, " ");
    expect(content).toContain("This is NOT the TIME_WAIT length");
  });
});

describe("tw-reuse idempotence", () => {
  it.each<[string, Record<string, unknown>]>([
    ["defaults", {}],
    ["every option", { tcp_fin_timeout: 30, tcp_max_tw_buckets: 400000 }],
    ["loopback-only reuse", { tcp_tw_reuse: 2 }],
  ])("%s: a host matching the plan gets zero changes", (_what, over) => {
    const first = plan(over, kernelDefaults);
    const after = factsAfter(first, kernelDefaults);
    const second = plan(over, after);
    expect(second.changes).toEqual([]);
    expect(evaluateChecks(second.checks, after).every((r) => r.ok)).toBe(true);
  });

  it("accepts read-back values with a trailing newline or spaces", () => {
    const first = plan({}, kernelDefaults);
    const after = factsAfter(first, kernelDefaults);
    after.sysctl[REUSE] = "1\n";
    after.sysctl[TS] = " 1 ";
    expect(plan({}, after).changes).toEqual([]);
  });
});

describe("tw-reuse validate()", () => {
  const validate = twReuse.validate!;

  it.each<[string, Record<string, unknown>, number]>([
    ["defaults", {}, 0],
    ["reuse 1 with timestamps 1", { tcp_tw_reuse: 1, tcp_timestamps: 1 }, 0],
    ["reuse 1 with timestamps 2", { tcp_tw_reuse: 1, tcp_timestamps: 2 }, 0],
    ["reuse 0 with timestamps 0", { tcp_tw_reuse: 0, tcp_timestamps: 0 }, 0],
    ["reuse 1 with timestamps 0", { tcp_tw_reuse: 1, tcp_timestamps: 0 }, 1],
    ["reuse 2 with timestamps 0", { tcp_tw_reuse: 2, tcp_timestamps: 0 }, 1],
  ])("%s → %i problem(s)", (_what, over, count) => {
    const problems = validate(paramsOf(twReuse, over) as unknown as TwReuseParams);
    expect(problems).toHaveLength(count);
    for (const p of problems) {
      expect(p).toEqual({
        param: "tcp_timestamps",
        severity: "error",
        problem: `tcp_tw_reuse ${String(over.tcp_tw_reuse)} needs TCP timestamps, but tcp_timestamps is 0: reuse would silently never happen`,
        fix: "set tcp_timestamps to 1, or tcp_tw_reuse to 0",
      });
    }
  });
});

describe("tw-reuse schema", () => {
  it("has these defaults", () => {
    expect(paramsOf(twReuse)).toEqual({
      tcp_tw_reuse: 1,
      tcp_timestamps: 1,
      tcp_fin_timeout: null,
      tcp_max_tw_buckets: null,
    });
  });
});
