import { describe, expect, it } from "vitest";
import keepalive, {
  describeDetection,
  detectionSeconds,
  formatDuration,
  KERNEL_DEFAULTS,
  type KeepaliveParams,
} from "../../roles/keepalive.js";
import type { ConfigProblem } from "../../src/config/errors.js";
import { validateAgainstSchema } from "../../src/config/validate.js";
import { parseYamlText } from "../../src/config/yamlFile.js";
import { planHost, type HostPlan } from "../../src/plan.js";
import type { Facts } from "../../src/role.js";
import { evaluateChecks } from "../../src/verify.js";
import { facts, factsAfter, fileOf, hostWith, paramsOf, settings, settingsWithoutComment } from "./_roles.js";
import { withoutBootChecks } from "./_roles.js";

const TIME = "net.ipv4.tcp_keepalive_time";
const INTVL = "net.ipv4.tcp_keepalive_intvl";
const PROBES = "net.ipv4.tcp_keepalive_probes";
const PATH = "/etc/sysctl.d/60-provision-keepalive.conf";

const kernelDefaults = facts({ sysctl: { [TIME]: "7200", [INTVL]: "75", [PROBES]: "9" } });

function plan(over: Record<string, unknown>, f: Facts, purpose: "plan" | "verify" = "plan"): HostPlan {
  return planHost(hostWith("web01", [[keepalive, over]]), f, purpose);
}

const params = (over: Record<string, unknown> = {}) => paramsOf(keepalive, over) as unknown as KeepaliveParams;

describe("keepalive detection time", () => {
  it.each<[number, number, number, number, string]>([
    [7200, 75, 9, 7875, "2 h 11 min 15 s"],
    [600, 30, 5, 750, "12 min 30 s"],
    [30, 10, 3, 60, "1 min"],
    [10, 1, 1, 11, "11 s"],
    [3600, 0, 0, 3600, "1 h"],
    [7200, 300, 20, 13200, "3 h 40 min"],
  ])("%i + %i × %i = %i s (%s)", (time, intvl, probes, seconds, text) => {
    const p = { tcp_keepalive_time: time, tcp_keepalive_intvl: intvl, tcp_keepalive_probes: probes };
    expect(detectionSeconds(p)).toBe(seconds);
    expect(formatDuration(seconds)).toBe(text);
    expect(describeDetection(p)).toBe(`${time} + ${intvl} × ${probes} = ${seconds} s (${text})`);
  });

  it("formats zero", () => {
    expect(formatDuration(0)).toBe("0 s");
  });
});

describe("keepalive on a host with kernel defaults", () => {
  const p = plan({}, kernelDefaults);

  it("creates the drop-in and sets the three live values", () => {
    expect(
      p.changes.map((c) =>
        c.kind === "sysctl"
          ? [c.key, c.before, c.after]
          : c.kind === "file"
            ? [c.path, c.before, c.description]
            : c.argv,
      ),
    ).toEqual([
      [PATH, null, `create ${PATH}`],
      [TIME, "7200", "600"],
      [INTVL, "75", "30"],
      [PROBES, "9", "5"],
    ]);
    expect(p.changes[0]).toMatchObject({ mode: "0644", owner: "root", group: "root" });
  });

  it("checks the live values and the file back", () => {
    expect(
      withoutBootChecks(p.checks).map((c) =>
        c.kind === "sysctl" ? `${c.key}=${c.expected}` : c.kind === "file" ? c.path : c.label,
      ),
    ).toEqual([`${TIME}=600`, `${INTVL}=30`, `${PROBES}=5`, PATH]);
  });

  it("notes the detection time before and after, with the arithmetic", () => {
    expect(p.notes.map((n) => n.text)).toEqual([
      "dead-peer detection for SO_KEEPALIVE sockets: 7200 + 75 × 9 = 7875 s (2 h 11 min 15 s) on the host now → 600 + 30 × 5 = 750 s (12 min 30 s)",
    ]);
  });

  it("asks for the three keys and its drop-in", () => {
    expect(keepalive.facts(params())).toEqual([
      { kind: "sysctl", key: TIME },
      { kind: "sysctl", key: INTVL },
      { kind: "sysctl", key: PROBES },
      { kind: "file", path: PATH },
    ]);
  });
});

describe("keepalive rendered file", () => {
  it.each<[string, Record<string, unknown>, string]>([
    ["defaults", {}, "600 + 30 × 5 = 750 s (12 min 30 s)"],
    [
      "a tighter setting",
      { tcp_keepalive_time: 300, tcp_keepalive_intvl: 10, tcp_keepalive_probes: 3 },
      "300 + 10 × 3 = 330 s (5 min 30 s)",
    ],
    ["the kernel defaults", { ...KERNEL_DEFAULTS }, "7200 + 75 × 9 = 7875 s (2 h 11 min 15 s)"],
  ])("%s: header, a why before every value, detection time before and after", (_what, over, after) => {
    const content = fileOf(plan(over, facts()));
    const lines = content.split("\n");
    expect(lines[0]).toMatch(/^# Managed by provision, role keepalive\. Do not edit/);
    expect(content).toMatch(/^# Undo: delete this file/m);
    expect(settingsWithoutComment(content)).toEqual([]);
    const p = params(over);
    expect(settings(content)).toEqual([
      [TIME, String(p.tcp_keepalive_time)],
      [INTVL, String(p.tcp_keepalive_intvl)],
      [PROBES, String(p.tcp_keepalive_probes)],
    ]);
    expect(content).toContain("#   kernel default: 7200 + 75 × 9 = 7875 s (2 h 11 min 15 s)\n");
    expect(content).toContain(`#   this file:      ${after}\n`);
    expect(content.endsWith("\n")).toBe(true);
    expect(content.endsWith("\n\n")).toBe(false);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(110);
  });

  it("says only SO_KEEPALIVE sockets use the values, with the nginx and HAProxy switches", () => {
    const content = fileOf(plan({}, facts())).replace(/\n# /g, " ");
    expect(content).toContain("Only sockets that enabled SO_KEEPALIVE use it");
    expect(content).toContain("nginx `listen … so_keepalive=on`");
    expect(content).toContain("HAProxy `option tcpka`");
    expect(content).toContain("other connections are never probed");
  });

  it("depends only on params: the host's live values don't change the bytes", () => {
    const odd = facts({ sysctl: { [TIME]: "45", [INTVL]: "2", [PROBES]: "1" } });
    expect(fileOf(plan({}, odd))).toBe(fileOf(plan({}, kernelDefaults)));
  });
});

describe("keepalive idempotence", () => {
  it.each<[string, Record<string, unknown>, Facts]>([
    ["defaults on kernel defaults", {}, kernelDefaults],
    ["custom values", { tcp_keepalive_time: 120, tcp_keepalive_intvl: 15, tcp_keepalive_probes: 4 }, kernelDefaults],
    ["only one key differs", {}, facts({ sysctl: { [TIME]: "600", [INTVL]: "30", [PROBES]: "9" } })],
  ])("%s: plan → apply → plan has zero changes and verify passes", (_what, over, before) => {
    const first = plan(over, before);
    expect(first.changes.length).toBeGreaterThan(0);
    const after = factsAfter(first, before);
    const second = plan(over, after);
    expect(second.changes).toEqual([]);
    expect(second.checks).toEqual(first.checks);
    expect(evaluateChecks(plan(over, after, "verify").checks, after).every((r) => r.ok)).toBe(true);
  });

  it("a host already right only gets the note, without a before/after", () => {
    const after = factsAfter(plan({}, kernelDefaults), kernelDefaults);
    expect(plan({}, after).notes.map((n) => n.text)).toEqual([
      "dead-peer detection for SO_KEEPALIVE sockets: 600 + 30 × 5 = 750 s (12 min 30 s)",
    ]);
  });

  it("verify catches a live value changed by hand", () => {
    const after = factsAfter(plan({}, kernelDefaults), kernelDefaults);
    after.sysctl[PROBES] = "9";
    const results = evaluateChecks(plan({}, after, "verify").checks, after);
    expect(results.filter((r) => !r.ok).map((r) => [r.check.kind === "sysctl" && r.check.key, r.actual])).toEqual([
      [PROBES, "9"],
    ]);
  });

  it("unreadable live values are named in the note and planned from null", () => {
    const p = plan({}, facts({ sysctl: { [TIME]: null, [INTVL]: "75", [PROBES]: "9" } }));
    expect(p.notes[0]?.text).toBe(
      "dead-peer detection for SO_KEEPALIVE sockets: unknown (the keys are unreadable) on the host now → 600 + 30 × 5 = 750 s (12 min 30 s)",
    );
    expect(p.changes.find((c) => c.kind === "sysctl" && c.key === TIME)).toMatchObject({ before: null, after: "600" });
  });
});

describe("keepalive validate()", () => {
  const validate = keepalive.validate!;

  it.each<[string, Record<string, unknown>, Array<{ severity: string; problem: RegExp }>]>([
    ["the defaults (12 min 30 s)", {}, []],
    ["exactly 60 s", { tcp_keepalive_time: 30, tcp_keepalive_intvl: 10, tcp_keepalive_probes: 3 }, []],
    ["the kernel defaults", { ...KERNEL_DEFAULTS }, []],
    [
      "59 s",
      { tcp_keepalive_time: 29, tcp_keepalive_intvl: 10, tcp_keepalive_probes: 3 },
      [
        {
          severity: "warning",
          problem:
            /^dead-peer detection takes only 29 \+ 10 × 3 = 59 s \(59 s\): an idle but healthy peer on a lossy link or a mobile client/,
        },
      ],
    ],
    [
      "the smallest values (11 s)",
      { tcp_keepalive_time: 10, tcp_keepalive_intvl: 1, tcp_keepalive_probes: 1 },
      [{ severity: "warning", problem: /takes only 10 \+ 1 × 1 = 11 s/ }],
    ],
    [
      "slower than the kernel default",
      { tcp_keepalive_time: 7200, tcp_keepalive_intvl: 300, tcp_keepalive_probes: 20 },
      [
        {
          severity: "warning",
          problem: /7200 \+ 300 × 20 = 13200 s \(3 h 40 min\), longer than the kernel default's 2 h 11 min 15 s/,
        },
      ],
    ],
  ])("%s", (_what, over, expected) => {
    const problems = validate(params(over));
    expect(problems.map((p) => ({ param: p.param, severity: p.severity }))).toEqual(
      expected.map((e) => ({ param: "tcp_keepalive_time", severity: e.severity })),
    );
    expected.forEach((e, i) => expect(problems[i]!.problem).toMatch(e.problem));
    for (const p of problems) expect(p.fix.length).toBeGreaterThan(20);
  });

  it("never errors: a short detection time is a choice, warned about", () => {
    const problems = validate(params({ tcp_keepalive_time: 10, tcp_keepalive_intvl: 1, tcp_keepalive_probes: 1 }));
    expect(problems.every((p) => p.severity === "warning")).toBe(true);
  });
});

describe("keepalive schema", () => {
  function check(text: string): ConfigProblem[] {
    const problems: ConfigProblem[] = [];
    const file = parseYamlText(text, "k.yaml", problems)!;
    validateAgainstSchema(keepalive.schema, file.data, file, [], problems);
    return problems;
  }

  it("has these defaults, and accepts them written out", () => {
    expect(paramsOf(keepalive)).toEqual({ tcp_keepalive_time: 600, tcp_keepalive_intvl: 30, tcp_keepalive_probes: 5 });
    expect(check("tcp_keepalive_time: 600\ntcp_keepalive_intvl: 30\ntcp_keepalive_probes: 5\n")).toEqual([]);
  });

  it.each<[string, string, RegExp]>([
    ["time below 10", "tcp_keepalive_time: 9", /9 is out of range \(must be >= 10\)/],
    ["time above the kernel default", "tcp_keepalive_time: 7201", /7201 is out of range \(must be <= 7200\)/],
    ["interval 0", "tcp_keepalive_intvl: 0", /0 is out of range \(must be >= 1\)/],
    ["interval above 300", "tcp_keepalive_intvl: 301", /out of range/],
    ["probes 0", "tcp_keepalive_probes: 0", /out of range/],
    ["probes above 20", "tcp_keepalive_probes: 21", /out of range/],
    ["a string", "tcp_keepalive_time: '600'", /expected an integer/],
    ["a fraction", "tcp_keepalive_intvl: 1.5", /expected an integer/],
    ["a misspelt key", "tcp_keepalive_interval: 30", /unknown key "tcp_keepalive_interval"/],
  ])("rejects %s", (_what, yaml, problem) => {
    const problems = check(`${yaml}\n`);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.problem).toMatch(problem);
    expect(problems[0]!.severity).toBe("error");
  });
});
