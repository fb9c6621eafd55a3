import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/errors.js";
import { loadPlaybook } from "../../src/playbook.js";
import { rolloutPolicy } from "../../src/rollout/fromConfig.js";
import { DEFAULT_POLICY } from "../../src/rollout/policy.js";
import { hostsToResume, readRecord, recordFor, RecordError, writeRecord } from "../../src/rollout/record.js";

const dir = mkdtempSync(join(tmpdir(), "provision-rollout-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function playbook(text: string): { policy: ReturnType<typeof rolloutPolicy>; problems: ConfigProblem[] } {
  const file = join(dir, `pb-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  const problems: ConfigProblem[] = [];
  const plays = loadPlaybook(file, problems) ?? [];
  return { policy: rolloutPolicy(plays, {}, problems), problems };
}

describe("rollout policy from the playbook", () => {
  it("defaults to one batch of everything, nothing tolerated", () => {
    expect(playbook("- hosts: all\n  roles: [tw-reuse]\n").policy).toEqual(DEFAULT_POLICY);
  });

  it("reads rollout: from a play", () => {
    const { policy, problems } = playbook(
      '- hosts: all\n  rollout:\n    batches: [1, "10%", "100%"]\n    max_fail_per_batch: 1\n    max_fail_total: "5%"\n    pause: prompt\n  roles: [tw-reuse]\n',
    );
    expect(problems).toEqual([]);
    expect(policy).toEqual({
      batches: [1, "10%", "100%"],
      maxFailPerBatch: 1,
      maxFailTotal: "5%",
      pause: "prompt",
      allowPlanDrift: false,
    });
  });

  it.each([
    ["a batch of 0", "batches: [0]", "[0].rollout.batches[0]"],
    ["a batch written as words", "batches: [ten]", "[0].rollout.batches[0]"],
    ["a negative budget", "max_fail_total: -1", "[0].rollout.max_fail_total"],
    ["a pause that is neither", "pause: later", "[0].rollout.pause"],
    ["an unknown key", "serial: 3", "[0].rollout.serial"],
  ])("refuses %s, located", (_what, line, keyPath) => {
    const { problems } = playbook(`- hosts: all\n  rollout:\n    ${line}\n  roles: [tw-reuse]\n`);
    expect(problems.map((p) => p.keyPath)).toContain(keyPath);
  });

  it("refuses two plays with different rollouts", () => {
    const { problems } = playbook(
      "- hosts: all\n  rollout: {batches: [1]}\n  roles: [tw-reuse]\n- hosts: all\n  rollout: {batches: [2]}\n  roles: [keepalive]\n",
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 5, keyPath: "[1].rollout" });
  });

  it("flags override the playbook, and bad flags are reported", () => {
    const file = join(dir, "flags.yaml");
    writeFileSync(file, "- hosts: all\n  rollout: {batches: [1], pause: 5}\n  roles: [tw-reuse]\n");
    const problems: ConfigProblem[] = [];
    const plays = loadPlaybook(file, problems)!;
    expect(rolloutPolicy(plays, { batches: "2,50%", maxFailTotal: "10%", allowPlanDrift: true }, problems)).toEqual({
      batches: [2, "50%"],
      maxFailPerBatch: 0,
      maxFailTotal: "10%",
      pause: 5,
      allowPlanDrift: true,
    });
    rolloutPolicy(plays, { batches: "1,x", pause: "soon", maxFailPerBatch: "5 %" }, problems);
    expect(problems.map((p) => p.file)).toEqual(["--batches", "--max-fail-per-batch", "--pause"]);
  });
});

describe("run records", () => {
  const result = {
    reports: [
      { host: "a", status: "changed" as const, outcomes: [{ change: {} as never, ok: true }] },
      { host: "b", status: "failed" as const, error: { kind: "apply", message: "boom" } },
      { host: "c", status: "unreachable" as const, error: { kind: "unreachable", message: "refused" } },
      { host: "d", status: "not-reached" as const },
      { host: "e", status: "unchanged" as const },
    ],
    batches: [{ index: 1, hosts: ["a", "b", "c"], failed: 2, size: 3, tolerated: 0 }],
    stopped: "batch 1: 2 of 3 hosts failed",
  };

  it("are written atomically and read back, the latest by default", () => {
    const state = join(dir, "state");
    const meta = { inventory: "inv.yaml", playbook: "pb.yaml", limit: undefined, policy: DEFAULT_POLICY };
    const first = writeRecord(state, recordFor(result, { ...meta, startedAt: new Date("2026-01-01T00:00:00Z") }));
    const second = writeRecord(state, recordFor(result, { ...meta, startedAt: new Date("2026-01-02T00:00:00Z") }));
    expect(readRecord(state).file).toBe(second);
    expect(readRecord(state, first).record.startedAt).toBe("2026-01-01T00:00:00.000Z");
    const { record } = readRecord(state);
    expect(record.hosts).toEqual([
      { host: "a", status: "changed", batch: 1, changes: 1 },
      { host: "b", status: "failed", batch: 1, changes: 0, error: "boom" },
      { host: "c", status: "unreachable", batch: 1, changes: 0, error: "refused" },
      { host: "d", status: "not-reached", batch: null, changes: 0 },
      { host: "e", status: "unchanged", batch: null, changes: 0 },
    ]);
    expect(hostsToResume(record)).toEqual(["b", "c", "d"]);
  });

  it("a missing record or state dir is a clear error", () => {
    expect(() => readRecord(join(dir, "nothing"))).toThrow(RecordError);
    expect(() => readRecord(dir, join(dir, "no.json"))).toThrow(/cannot read run record/);
  });
});
