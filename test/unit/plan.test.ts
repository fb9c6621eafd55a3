import { describe, expect, it } from "vitest";
import ephemeralPorts from "../../roles/ephemeral-ports.js";
import twReuse from "../../roles/tw-reuse.js";
import { factRequestsFor, planHost, whyOf } from "../../src/plan.js";
import { commentLines } from "../../src/render.js";
import { facts, hostWith } from "./_roles.js";

describe("planHost", () => {
  const host = hostWith("web01", [[ephemeralPorts], [twReuse]]);
  const f = facts({
    sysctl: {
      "net.ipv4.ip_local_port_range": "32768\t60999",
      "net.ipv4.tcp_tw_reuse": "2",
      "net.ipv4.tcp_timestamps": "1",
    },
    listeningPorts: { tcp: [8080], udp: [] },
  });

  it("tags every change, check and note with its role, in role order", () => {
    const p = planHost(host, f);
    expect(p.host).toBe("web01");
    expect([...new Set(p.changes.map((c) => c.role))]).toEqual(["ephemeral-ports", "tw-reuse"]);
    expect([...new Set(p.checks.map((c) => c.role))]).toEqual(["ephemeral-ports", "tw-reuse"]);
    expect(p.notes.every((n) => n.role === "ephemeral-ports")).toBe(true);
  });

  it("is pure: the same input gives the same plan, and the facts are not modified", () => {
    const copy = structuredClone(f);
    const a = planHost(host, f);
    const b = planHost(host, f);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(f).toEqual(copy);
  });

  it("is plain JSON data", () => {
    const p = planHost(host, f);
    expect(JSON.parse(JSON.stringify(p))).toEqual(p);
  });

  it("plans nothing for a host without roles", () => {
    expect(planHost(hostWith("idle", []), f)).toEqual({
      host: "idle",
      changes: [],
      checks: [],
      notes: [],
      refusals: [],
    });
  });
});

describe("factRequestsFor / whyOf", () => {
  it("collects the fact requests of every role", () => {
    const reqs = factRequestsFor(hostWith("h", [[ephemeralPorts], [twReuse]]));
    expect(reqs).toContainEqual({ kind: "listening-ports" });
    expect(reqs).toContainEqual({ kind: "sysctl", key: "net.ipv4.tcp_tw_reuse" });
    expect(reqs).toContainEqual({ kind: "file", path: "/etc/sysctl.d/60-provision-tw-reuse.conf" });
  });

  it.each<[string, ReturnType<typeof hostWith>, boolean]>([
    [
      "sysctl roles: with which file wins at boot, so run and verify read it in the same round trip",
      hostWith("h", [[ephemeralPorts], [twReuse]]),
      true,
    ],
    ["no role that reads sysctls: not read", hostWith("h", []), false],
  ])("%s", (_what, host, wanted) => {
    expect(factRequestsFor(host).some((r) => r.kind === "probe" && r.probe.name === "sysctl-boot")).toBe(wanted);
  });

  it("maps each param to its schema description", () => {
    const host = hostWith("h", [[twReuse]]);
    const why = whyOf(host.roles[0]!);
    expect(Object.keys(why)).toEqual(["tcp_tw_reuse", "tcp_timestamps", "tcp_fin_timeout", "tcp_max_tw_buckets"]);
    expect(why.tcp_tw_reuse).toBe(twReuse.schema.properties.tcp_tw_reuse!.description);
  });
});

describe("commentLines", () => {
  it.each<[string, string]>([
    ["", "#"],
    ["short", "# short"],
    ["two\nparagraphs", "# two\n# paragraphs"],
    ["  extra   spaces  ", "# extra spaces"],
  ])("%j → %j", (text, expected) => {
    expect(commentLines(text)).toBe(expected);
  });

  it("wraps at 96 columns without splitting words", () => {
    const text = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ");
    const lines = commentLines(text).split("\n");
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) {
      expect(l.startsWith("# ")).toBe(true);
      expect(l.length).toBeLessThanOrEqual(96);
    }
    expect(lines.map((l) => l.slice(2)).join(" ")).toBe(text);
  });

  it("keeps a word longer than the width on its own line", () => {
    const long = "x".repeat(120);
    expect(commentLines(`a ${long} b`)).toBe(`# a\n# ${long}\n# b`);
  });
});
