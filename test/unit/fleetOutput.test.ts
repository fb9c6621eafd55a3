import { describe, expect, it } from "vitest";
import type { HostReport } from "../../src/report.js";
import type { CheckResult } from "../../src/verify.js";
import { renderErrors, renderPlan, renderRollback, renderRunResult, renderVerify } from "../../src/output/format.js";
import { Progress } from "../../src/output/progress.js";
import { expandHostPattern } from "../../src/inventory/hostRange.js";
import { changed, failed, REUSE } from "./_reports.js";
import {
  addressOf,
  FLEET_SIZE,
  hostNames,
  liveDriftFleet,
  liveDriftPlan,
  lockedOutFleet,
  lockoutMessage,
  ownPlansFleet,
  unreachableFleet,
  verifiedFleet,
  verifiedHost,
} from "./_fleet.js";

/** "Done" at fleet size: 200 hosts failing alike print at most this many lines per section. */
const MAX_SECTION_LINES = 5;
const COMMENT = 65_536;

const linesOf = (text: string) => text.trimEnd().split("\n");

/** The hosts a folded list names: `web[001:003], db1` → web001, web002, web003, db1. */
function unfold(list: string): string[] {
  return list.split(", ").flatMap((piece) => expandHostPattern(piece));
}

function errorsSection(planText: string): string[] {
  const lines = planText.split("\n");
  const start = lines.indexOf("errors:");
  return lines.slice(start, lines.indexOf("", start));
}

function appliedHost(host: string): HostReport {
  return {
    ...changed(host, [REUSE]),
    outcomes: [{ change: REUSE, ok: true }],
    checks: [
      {
        check: { kind: "sysctl", key: "net.ipv4.tcp_tw_reuse", expected: "1", message: "m", role: "tw-reuse" },
        actual: "1",
        ok: true,
      },
    ],
  };
}

describe("200 hosts failing alike (each message naming its host, address, key fingerprint and pid)", () => {
  it("plan: the errors section is one entry, the summary one line", () => {
    const text = renderPlan(lockedOutFleet(), "text");
    const errors = errorsSection(text);
    expect(errors.length).toBeLessThanOrEqual(MAX_SECTION_LINES);
    expect(errors[1]).toMatch(
      /^ {2}web\[001:200\] \(200 hosts\): FAILED: lockout: a fresh login to web\[001:200\] failed after the change \(connection refused by 198\.18\.0\.\[1:200\]:22, host key \{SHA256:\S+…, SHA256:\S+…, SHA256:\S+…, … 197 more\}, sshd pid \{4000, 4037, 4074, … 197 more\}\); reverted \{3, 4\} changes/,
    );
    expect(linesOf(text).at(-1)).toBe("Plan: 0 changes on 0 hosts, 0 unchanged, 200 failed.");
    expect(renderErrors(lockedOutFleet(), "markdown").length).toBeLessThanOrEqual(MAX_SECTION_LINES);
  });

  it("plan: unreachable hosts each at their own address are one entry", () => {
    expect(renderErrors(unreachableFleet(), "text")).toEqual([
      "errors:",
      "  web[001:200] (200 hosts): UNREACHABLE: no SSH handshake from 198.18.0.[1:200]:22 within 5 s (host down, packets dropped, or a firewall)",
      "",
    ]);
  });

  it("run: one line per outcome, then the summary", () => {
    const out = renderRunResult(lockedOutFleet());
    expect(linesOf(out).length).toBeLessThanOrEqual(MAX_SECTION_LINES);
    expect(linesOf(out).at(-1)).toBe("Run: 0 changed, 0 unchanged, 200 failed, 0 unreachable.");
  });

  it("run: a mixed fleet reads as its outcomes", () => {
    const reports = hostNames().map((h, i) => {
      if (i < 150) return appliedHost(h);
      if (i < 198) return failed(h, "failed", lockoutMessage(h, i));
      return failed(h, "unreachable", `connection refused by ${addressOf(i)}:22: is sshd running and listening there?`);
    });
    expect(linesOf(renderRunResult(reports))).toEqual([
      "web[001:150] (150 hosts): changed (1 applied), verified 1/1",
      expect.stringMatching(/^web\[151:198\] \(48 hosts\): FAILED: lockout: a fresh login to web\[151:198\] failed/),
      "web199, web200 (2 hosts): UNREACHABLE: connection refused by {198.18.0.199, 198.18.0.200}:22: is sshd running and listening there?",
      "Run: 150 changed, 0 unchanged, 48 failed, 2 unreachable.",
    ]);
  });

  it("batch lines (CI): the batch, the first failure when it happens, one line per outcome, the end", () => {
    const out: string[] = [];
    const hooks = new Progress(FLEET_SIZE, (t) => out.push(t), false).hooks(async () => true);
    const reports = lockedOutFleet();
    const names = hostNames();
    for (let batch = 0; batch < 4; batch++) {
      out.length = 0;
      const hosts = names.slice(batch * 50, batch * 50 + 50);
      hooks.batchStart!(batch + 1, 4, hosts);
      // Hosts finish in any order.
      for (const r of reports.slice(batch * 50, batch * 50 + 50).reverse()) hooks.hostDone!(r);
      hooks.batchEnd!({ index: batch + 1, hosts, failed: 50, size: 50, tolerated: 50 }, 4);
      const lines = linesOf(out.join(""));
      expect(lines.length).toBeLessThanOrEqual(MAX_SECTION_LINES);
      expect(lines[0]).toBe(`batch ${batch + 1}/4: 50 hosts (web[${hosts[0]!.slice(3)}:${hosts.at(-1)!.slice(3)}])`);
      expect(lines[1]).toBe(`${hosts.at(-1)}: failed: ${lockoutMessage(hosts.at(-1)!, batch * 50 + 49)}`);
      expect(lines[2]).toMatch(/^web\[\d{3}:\d{3}\] \(50 hosts\): failed: lockout: /);
      expect(lines.at(-1)).toBe(`batch ${batch + 1}/4 done: 50 failed (50 tolerated)`);
    }
  });

  it("batch lines (CI): successes are one line at the batch's end, in the batch's order", () => {
    const out: string[] = [];
    const hooks = new Progress(FLEET_SIZE, (t) => out.push(t), false).hooks(async () => true);
    const names = hostNames();
    hooks.batchStart!(1, 1, names);
    for (const h of [...names].reverse()) hooks.hostDone!({ ...appliedHost(h), checks: [] });
    hooks.batchEnd!({ index: 1, hosts: names, failed: 0, size: names.length, tolerated: 0 }, 1);
    expect(linesOf(out.join(""))).toEqual([
      "batch 1/1: 200 hosts (web[001:200])",
      "web[001:200] (200 hosts): changed, verified 0/0",
      "batch 1/1 done: 0 failed (0 tolerated)",
    ]);
  });

  it("verify: one group with its mismatch, then the summary", () => {
    const reports = hostNames().map((h, i) => {
      const r = verifiedHost(h, 1);
      const checks: CheckResult[] = r.checks!.map((c, k) =>
        k === 3 ? { ...c, actual: String(100 + i), ok: false } : c,
      );
      return { ...r, status: "failed" as const, checks };
    });
    const out = linesOf(renderVerify(reports, "text"));
    expect(out.length).toBeLessThanOrEqual(MAX_SECTION_LINES);
    expect(out).toEqual([
      "web[001:200] (200 hosts): 1 of 30 MISMATCH",
      "  MISMATCH net.core.tuning_key_3: expected 3000, found [100:299] — net.core.tuning_key_3 is live",
      "",
      "Verify: 5800/6000 checks ok on 0/200 hosts; 200 mismatches, 0 host errors.",
    ]);
    expect(linesOf(renderVerify(unreachableFleet(), "text")).length).toBeLessThanOrEqual(MAX_SECTION_LINES);
  });

  it("rollback: one line for the failures, one for the hosts restored alike", () => {
    expect(linesOf(renderRollback(unreachableFleet())).length).toBeLessThanOrEqual(MAX_SECTION_LINES);
    const restored = hostNames().map((h) => ({ ...appliedHost(h), outcomes: [{ change: REUSE, ok: true }] }));
    expect(linesOf(renderRollback(restored))).toEqual([
      "web[001:200] (200 hosts): restored (1 step), verified 1/1",
      "  set net.ipv4.tcp_tw_reuse live",
      "Rollback: 200 restored, 0 with nothing to roll back, 0 failed.",
    ]);
  });
});

describe("Markdown of a 200-host fleet fits one PR comment", () => {
  it("verify, 30 checks a host, values and checked services differing per host: all of it, failures first", () => {
    // 403,064 characters before groups (a table row per host and check).
    const md = renderVerify(verifiedFleet(), "markdown");
    expect(md.length).toBeLessThanOrEqual(COMMENT);
    const lines = md.split("\n");
    expect(lines.slice(0, 3)).toEqual([
      "### provision verify",
      "",
      "Verify: 5977/6000 checks ok on 177/200 hosts; 23 mismatches, 0 host errors.",
    ]);
    expect(md).not.toContain("left out");
    const summaries = [...md.matchAll(/<details( open)?><summary>(.*?)(?: \(\d+ hosts\))?: (.*?)<\/summary>/g)];
    const firstPassing = summaries.findIndex((m) => m[1] === undefined);
    expect(summaries.slice(0, firstPassing).every((m) => m[3]!.endsWith("MISMATCH"))).toBe(true);
    expect(summaries.slice(firstPassing).every((m) => m[1] === undefined && m[3] === "30/30 ok")).toBe(true);
    expect(summaries.flatMap((m) => unfold(m[2]!)).sort()).toEqual(hostNames());
    expect(md).toContain("| `fresh login: soft nofile` | `>= 65536` | `{");
  });

  it("verify over a smaller limit: groups whose checks passed go first, every mismatch stays", () => {
    const md = renderVerify(verifiedFleet(), "markdown", undefined, {
      maxChars: 8_000,
      fullOutput: "provision verify -i prod --json",
    });
    expect(md.length).toBeLessThanOrEqual(8_000);
    const whole = renderVerify(verifiedFleet(), "markdown");
    const count = (text: string, tag: string) => text.split(tag).length - 1;
    expect(count(whole, "<details open>")).toBeGreaterThan(10);
    expect(count(md, "<details open>")).toBe(count(whole, "<details open>"));
    expect(count(md, "<details>")).toBeLessThan(count(whole, "<details>"));
    expect(md).toMatch(
      /\*\*\d+ of \d+ groups left out\*\* to fit one comment \(\d+ hosts: .*\)\. Full verify: `provision verify -i prod --json` \(200 hosts\)\n$/,
    );
  });

  it("plan, each host's plan its own: summary and errors first, whole groups left out, and where the full plan is", () => {
    // 86,345 characters before (no limit; 90,189 now without one, for the <details> around each group).
    const reports = ownPlansFleet();
    const md = renderPlan(reports, "markdown");
    expect(md.length).toBeLessThanOrEqual(COMMENT);
    const lines = md.split("\n");
    expect(lines.slice(0, 6)).toEqual([
      "### provision plan",
      "",
      "Plan: 510 changes on 170 hosts, 20 unchanged, 10 failed.",
      "",
      "#### errors",
      expect.stringMatching(
        /^- \*\*web\[191:200\] \(10 hosts\)\*\* \(failed\): lockout: a fresh login to web\[191:200\]/,
      ),
    ]);
    expect((md.match(/^```/gm) ?? []).length % 2).toBe(0);
    expect((md.match(/<details>/g) ?? []).length).toBe((md.match(/<\/details>/g) ?? []).length);
    expect(md).toContain("**web[171:190] (20 hosts)**: no changes");
    const note =
      /^\*\*(\d+) of 172 groups left out\*\* to fit one comment \((\d+) hosts: (.*)\)\. Full plan: `provision plan … --json` \(200 hosts\)$/m.exec(
        md,
      );
    expect(note).not.toBeNull();
    const shown = [...md.matchAll(/<summary>(\S+) \(1 host\): 3 changes<\/summary>/g)].map((m) => m[1]!);
    expect(shown.length + Number(note![1])).toBe(170);
    expect([...shown, ...unfold(note![3]!)].sort()).toEqual(hostNames().slice(0, 170));
  });

  it("plan, every host's live values changed by hand: one group of 200 hosts, the values folded", () => {
    // Before (a group per host): 299,925 characters, 157 of 200 groups left out to fit 64,649.
    const md = renderPlan(liveDriftFleet(), "markdown");
    expect(md.length).toBeLessThan(2_000);
    expect(md).not.toContain("left out");
    expect([...md.matchAll(/<summary>(.*?)<\/summary>/g)].map((m) => m[1])).toEqual([
      "h[1:200] (200 hosts): 2 changes",
    ]);
    expect(md).toContain("| `net.core.somaxconn` | `[1001:1200]` | `65535` |");
    expect(md).toContain("| `net.ipv4.tcp_keepalive_time` | `[101:300]` | `600` |");
    expect(md).toContain(
      "- _keepalive_: dead-peer detection for SO_KEEPALIVE sockets: [101:300] + 30 × 5 = [251:450] s ([4 min 11 s … 7 min 30 s]) on the host now → 600 + 30 × 5 = 750 s (12 min 30 s)\n",
    );
    // Before: 281,505 characters, 200 groups.
    const text = renderPlan(liveDriftFleet(), "text");
    expect(text.length).toBeLessThan(2_000);
    expect(linesOf(text).filter((l) => /\(\d+ hosts?\)/.test(l))).toEqual(["h[1:200] (200 hosts): 2 changes"]);
    expect(text).toContain("    net.core.somaxconn: [1001:1200] → 65535\n");
    expect(text).toContain("    net.ipv4.tcp_keepalive_time: [101:300] → 600\n");
  });

  it("plan, live values changed by hand and some new values differing: a group per new value", () => {
    const reports = liveDriftFleet().map((r, i) => {
      if (i < 150) return r;
      const changes = r.plan!.changes.map((c) =>
        c.kind === "sysctl" && c.key === "net.core.somaxconn" ? { ...c, after: "4096" } : c,
      );
      return { ...r, plan: { ...r.plan!, changes } } as typeof r;
    });
    const text = renderPlan(reports, "text");
    expect(linesOf(text).filter((l) => /\(\d+ hosts?\)/.test(l))).toEqual([
      "h[1:150] (150 hosts): 2 changes",
      "h[151:200] (50 hosts): 2 changes",
    ]);
    expect(text).toContain("net.core.somaxconn: [1001:1150] → 65535");
    expect(text).toContain("net.core.somaxconn: [1151:1200] → 4096");
    expect(liveDriftPlan(7).plan!.changes[0]).toMatchObject({ before: "1007" });
  });
});
