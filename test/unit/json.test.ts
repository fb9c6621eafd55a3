import { describe, expect, it } from "vitest";
import type { HostReport } from "../../src/report.js";
import type { PlannedCheck } from "../../src/plan.js";
import { toJson } from "../../src/output/json.js";
import { changed, failed, FILE, RANGE, REUSE } from "./_reports.js";

const SYSCTL_CHECK: PlannedCheck = {
  kind: "sysctl",
  key: "net.ipv4.tcp_tw_reuse",
  expected: "1",
  message: "drifted",
  role: "tw-reuse",
};
const FILE_CHECK: PlannedCheck = {
  kind: "file",
  path: FILE.kind === "file" ? FILE.path : "",
  expected: "content",
  message: "edited by hand",
  role: "tw-reuse",
};

describe("toJson", () => {
  it("summarises and lists every host of a plan, with changes exactly as planned", () => {
    const reports: HostReport[] = [
      changed("web01", [FILE, REUSE], [{ role: "tw-reuse", text: "note" }]),
      changed("web02", [RANGE]),
      changed("db01", []),
      failed("db02", "unreachable", "connect ECONNREFUSED"),
      failed("db03", "failed", "planning failed: boom"),
    ];
    const out = JSON.parse(toJson("plan", reports));
    expect(out.command).toBe("plan");
    expect(out.summary).toEqual({
      hosts: 5,
      changed: 2,
      unchanged: 1,
      failed: 1,
      unreachable: 1,
      notReached: 0,
      changes: 3,
    });
    expect(out.hosts).toEqual([
      { host: "web01", status: "changed", changes: [FILE, REUSE], notes: [{ role: "tw-reuse", text: "note" }] },
      { host: "web02", status: "changed", changes: [RANGE], notes: [] },
      { host: "db01", status: "unchanged", changes: [], notes: [] },
      { host: "db02", status: "unreachable", error: { kind: "unreachable", message: "connect ECONNREFUSED" } },
      { host: "db03", status: "failed", error: { kind: "command", message: "planning failed: boom" } },
    ]);
  });

  it("keeps file contents byte-exact (tabs, missing final newline)", () => {
    const file = { ...FILE, before: "a\tb", after: "a\tb\n" } as typeof FILE;
    const out = JSON.parse(toJson("plan", [changed("h", [file])]));
    expect(out.hosts[0].changes[0].before).toBe("a\tb");
    expect(out.hosts[0].changes[0].after).toBe("a\tb\n");
  });

  it("reports what run applied, per change", () => {
    const report: HostReport = {
      ...changed("web01", [FILE, REUSE]),
      outcomes: [
        { change: FILE, ok: true },
        { change: REUSE, ok: false, error: "rc=0 sysctl: permission denied" },
      ],
    };
    const out = JSON.parse(toJson("run", [report]));
    expect(out.command).toBe("run");
    expect(out.hosts[0].applied).toEqual([
      { role: "tw-reuse", kind: "file", target: "/etc/sysctl.d/60-provision-tw-reuse.conf", ok: true },
      {
        role: "tw-reuse",
        kind: "sysctl",
        target: "net.ipv4.tcp_tw_reuse",
        ok: false,
        error: "rc=0 sysctl: permission denied",
      },
    ]);
  });

  it("reports verify checks: values for sysctls, never file contents; messages only on mismatch", () => {
    const report: HostReport = {
      host: "web01",
      status: "failed",
      checks: [
        { check: SYSCTL_CHECK, actual: "1", ok: true },
        { check: { ...SYSCTL_CHECK, key: "net.ipv4.tcp_timestamps" } as PlannedCheck, actual: null, ok: false },
        { check: FILE_CHECK, actual: "other content", ok: false },
      ],
    };
    const out = JSON.parse(toJson("verify", [report]));
    expect(out.hosts[0].checks).toEqual([
      { role: "tw-reuse", kind: "sysctl", target: "net.ipv4.tcp_tw_reuse", ok: true, expected: "1", actual: "1" },
      {
        role: "tw-reuse",
        kind: "sysctl",
        target: "net.ipv4.tcp_timestamps",
        ok: false,
        expected: "1",
        actual: null,
        message: "drifted",
      },
      {
        role: "tw-reuse",
        kind: "file",
        target: "/etc/sysctl.d/60-provision-tw-reuse.conf",
        ok: false,
        message: "edited by hand",
      },
    ]);
    expect(out.summary).toMatchObject({ hosts: 1, failed: 1, changes: 0 });
  });

  it("is pretty-printed JSON with two-space indentation", () => {
    const text = toJson("plan", []);
    expect(text).toBe(
      JSON.stringify(
        {
          command: "plan",
          summary: { hosts: 0, changed: 0, unchanged: 0, failed: 0, unreachable: 0, notReached: 0, changes: 0 },
          hosts: [],
        },
        null,
        2,
      ),
    );
  });
});
