import { describe, expect, it } from "vitest";
import { Progress } from "../../src/output/progress.js";
import { changed, failed, REUSE } from "./_reports.js";

function capture(tty: boolean) {
  const out: string[] = [];
  const p = new Progress(3, (t) => out.push(t), tty);
  return { p, text: () => out.join("") };
}

describe("Progress", () => {
  it("prints plain lines without a terminal (CI): a failure at once, the other hosts at the batch's end", async () => {
    const { p, text } = capture(false);
    const hooks = p.hooks(async () => true);
    p.stage("a", "connecting");
    hooks.batchStart!(1, 2, ["a", "b"]);
    hooks.hostDone!({ ...changed("a", [REUSE]), checks: [] });
    hooks.hostDone!(failed("b", "unreachable", "connection refused"));
    hooks.batchEnd!({ index: 1, hosts: ["a", "b"], failed: 1, size: 2, tolerated: 0 }, 2);
    expect(text()).toBe(
      [
        "batch 1/2: 2 hosts (a, b)",
        "b: unreachable: connection refused",
        "a: changed, verified 0/0",
        "batch 1/2 done: 1 failed (0 tolerated)",
        "",
      ].join("\n"),
    );
    expect(text()).not.toContain("\r");
  });

  it("redraws one status line on a terminal, and forgets the first plan's stages when a phase ends", () => {
    const { p, text } = capture(true);
    p.stage("c", "reading facts");
    p.finish();
    const hooks = p.hooks(async () => true);
    hooks.batchStart!(1, 1, ["a"]);
    p.stage("a", "applying");
    const last = text().split("\r\x1b[K").at(-1)!;
    expect(last).toBe("batch 1/1 · 0/3 hosts done · 0 failed · a: applying");
    expect(last).not.toContain("c: reading facts");
  });

  it("counts hosts planned, verified or rolled back on a terminal, and starts the rollout's count afresh", () => {
    const { p, text } = capture(true);
    p.stage("a", "reading facts");
    p.finished(changed("a", [REUSE]), "plan");
    p.finished(failed("b", "unreachable", "connection refused"), "plan");
    expect(text().split("\r\x1b[K").at(-1)).toBe("2/3 hosts planned · 1 failed");
    p.finish();
    const hooks = p.hooks(async () => true);
    hooks.batchStart!(1, 1, ["a"]);
    // A rollout's own re-plan is not counted twice: its hosts come through hostDone.
    p.finished(changed("a", [REUSE]), "plan");
    p.stage("a", "applying");
    expect(text().split("\r\x1b[K").at(-1)).toBe("batch 1/1 · 0/3 hosts done · 0 failed · a: applying");
  });

  it("draws nothing for a finished host without a terminal", () => {
    const { p, text } = capture(false);
    p.finished(changed("a", [REUSE]), "verify");
    p.finished(changed("b", [REUSE]), "rollback");
    expect(text()).toBe("");
  });
});
