import { describe, expect, it } from "vitest";
import synBacklog, { listenerNotes, type SynBacklogParams } from "../../roles/syn-backlog.js";
import type { ConfigProblem } from "../../src/config/errors.js";
import { validateAgainstSchema } from "../../src/config/validate.js";
import { parseYamlText } from "../../src/config/yamlFile.js";
import { LISTEN_BACKLOGS_PROBE, type Listener } from "../../src/facts/listenBacklogs.js";
import { planHost, type HostPlan } from "../../src/plan.js";
import type { Facts, ProbeResult } from "../../src/role.js";
import { evaluateChecks } from "../../src/verify.js";
import { facts, factsAfter, fileOf, hostWith, paramsOf, settings, settingsWithoutComment } from "./_roles.js";
import { withoutBootChecks } from "./_roles.js";

const SOMAXCONN = "net.core.somaxconn";
const SYN_BACKLOG = "net.ipv4.tcp_max_syn_backlog";
const COOKIES = "net.ipv4.tcp_syncookies";
const ABORT = "net.ipv4.tcp_abort_on_overflow";
const SYNACK = "net.ipv4.tcp_synack_retries";
const NETDEV = "net.core.netdev_max_backlog";
const PATH = "/etc/sysctl.d/60-provision-syn-backlog.conf";
const ALL_KEYS = [SOMAXCONN, SYN_BACKLOG, COOKIES, ABORT, SYNACK, NETDEV];

/** `ss -Hltn` captured on this machine (see listenBacklogs.test.ts for what listened). */
const SS_OUTPUT = [
  "LISTEN 0      511         0.0.0.0:8080 0.0.0.0:*",
  "LISTEN 0      0      198.18.250.1:443  0.0.0.0:*",
  "LISTEN 0      4096      127.0.0.1:6379 0.0.0.0:*",
  "LISTEN 0      4096   127.0.0.1%lo:53   0.0.0.0:*",
  "LISTEN 0      50     [fe80::1]%va:7000    [::]:*",
  "LISTEN 0      511            [::]:8080    [::]:*",
  "LISTEN 0      16                *:9000       *:*",
  "LISTEN 0      244           [::1]:5432    [::]:*",
  "",
].join("\n");

const probeOk = (raw: string): ProbeResult<Listener[]> => ({
  ok: true,
  value: LISTEN_BACKLOGS_PROBE.parse(raw, undefined),
});
const NO_LISTENERS = probeOk("");

/** What the gather step reads on a 5.4+ kernel with its defaults (tcp_max_syn_backlog as in a fleet namespace). */
function kernelDefaults(
  listeners: ProbeResult<Listener[]> = NO_LISTENERS,
  sysctl: Record<string, string | null> = {},
): Facts {
  return facts({
    sysctl: {
      [SOMAXCONN]: "4096",
      [SYN_BACKLOG]: "2048",
      [COOKIES]: "1",
      [ABORT]: "0",
      [SYNACK]: "5",
      [NETDEV]: "1000",
      ...sysctl,
    },
    probes: { [LISTEN_BACKLOGS_PROBE.name]: listeners },
  });
}

function plan(over: Record<string, unknown>, f: Facts, purpose: "plan" | "verify" = "plan"): HostPlan {
  return planHost(hostWith("web01", [[synBacklog, over]]), f, purpose);
}

const params = (over: Record<string, unknown> = {}) => paramsOf(synBacklog, over) as unknown as SynBacklogParams;
const noteFor = (port: number, backlog: number, somaxconn: number, on: string) =>
  `port ${port} listens with backlog ${backlog} < somaxconn ${somaxconn} (on ${on}): the application caps its own queue; ` +
  `raise its listen() backlog, e.g. nginx \`listen … backlog=${somaxconn}\` (a listener that called listen() before somaxconn was raised keeps the old cap until it restarts)`;

describe("syn-backlog on a host with kernel defaults", () => {
  const p = plan({}, kernelDefaults());

  it("creates the drop-in and sets every live value that differs", () => {
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
      [SOMAXCONN, "4096", "65535"],
      [SYN_BACKLOG, "2048", "65535"],
      [SYNACK, "5", "3"],
      [NETDEV, "1000", "16384"],
    ]);
    expect(p.changes[0]).toMatchObject({ mode: "0644", owner: "root", group: "root" });
  });

  it("checks all six values and the file back, including the ones already right", () => {
    expect(
      withoutBootChecks(p.checks).map((c) =>
        c.kind === "sysctl" ? `${c.key}=${c.expected}` : c.kind === "file" ? c.path : c.label,
      ),
    ).toEqual([
      `${SOMAXCONN}=65535`,
      `${SYN_BACKLOG}=65535`,
      `${COOKIES}=1`,
      `${ABORT}=0`,
      `${SYNACK}=3`,
      `${NETDEV}=16384`,
      PATH,
    ]);
  });

  it("reads the six keys, its drop-in and the listeners' backlogs", () => {
    expect(synBacklog.facts(params())).toEqual([
      ...ALL_KEYS.map((key) => ({ kind: "sysctl", key })),
      { kind: "file", path: PATH },
      { kind: "probe", probe: LISTEN_BACKLOGS_PROBE },
    ]);
  });
});

describe("syn-backlog netdev_max_backlog", () => {
  it("null leaves the key alone: not read, not written, not checked, not in the file", () => {
    const withoutKey = kernelDefaults(NO_LISTENERS, { [NETDEV]: null });
    const p = plan({ netdev_max_backlog: null }, withoutKey);
    expect(synBacklog.facts(params({ netdev_max_backlog: null }))).not.toContainEqual({ kind: "sysctl", key: NETDEV });
    expect(p.changes.some((c) => c.kind === "sysctl" && c.key === NETDEV)).toBe(false);
    expect(p.checks.some((c) => c.kind === "sysctl" && c.key === NETDEV)).toBe(false);
    expect(fileOf(p)).not.toContain("netdev_max_backlog");
  });

  it("refuses to plan it where the key does not exist (a network namespace), naming the cause and the fix", () => {
    const inNamespace = kernelDefaults(NO_LISTENERS, { [NETDEV]: null });
    expect(plan({}, inNamespace).refusals.map((r) => r.text)).toEqual([
      "net.core.netdev_max_backlog does not exist on this host: it is one value for the whole machine, and a non-initial network namespace (a container) does not show it. " +
        "Set syn_backlog.netdev_max_backlog: null for this host to leave it alone, and tune it on the machine that owns the network stack",
    ]);
  });

  it("refuses any other key the kernel lacks, every missing key at once", () => {
    const both = plan({}, kernelDefaults(NO_LISTENERS, { [ABORT]: null, [NETDEV]: null })).refusals.map((r) => r.text);
    expect(both).toHaveLength(2);
    expect(both[0]).toMatch(
      /^net\.ipv4\.tcp_abort_on_overflow does not exist on this host's kernel \(\/proc\/sys\/net\/ipv4\/tcp_abort_on_overflow is missing\), so syn-backlog cannot set it/,
    );
    expect(both[1]).toMatch(/^net\.core\.netdev_max_backlog does not exist on this host/);
  });
});

describe("syn-backlog rendered file", () => {
  it.each<[string, Record<string, unknown>]>([
    ["defaults", {}],
    ["netdev left alone", { netdev_max_backlog: null }],
    [
      "zeros and extremes",
      {
        somaxconn: 128,
        tcp_max_syn_backlog: 1048576,
        tcp_syncookies: 0,
        tcp_abort_on_overflow: 1,
        tcp_synack_retries: 10,
      },
    ],
  ])("%s: header names the role, a why before every value, values as given", (_what, over) => {
    const p = params(over);
    const content = fileOf(plan(over, kernelDefaults()));
    const lines = content.split("\n");
    expect(lines[0]).toMatch(/^# Managed by provision, role syn-backlog\. Do not edit/);
    expect(content).toMatch(/^# Undo: delete this file/m);
    expect(settingsWithoutComment(content)).toEqual([]);
    const expected: Array<[string, string]> = [
      [SOMAXCONN, String(p.somaxconn)],
      [SYN_BACKLOG, String(p.tcp_max_syn_backlog)],
      [COOKIES, String(p.tcp_syncookies)],
      [ABORT, String(p.tcp_abort_on_overflow)],
      [SYNACK, String(p.tcp_synack_retries)],
    ];
    if (p.netdev_max_backlog !== null) expected.push([NETDEV, String(p.netdev_max_backlog)]);
    expect(settings(content)).toEqual(expected);
    expect(content.endsWith("\n")).toBe(true);
    expect(content.endsWith("\n\n")).toBe(false);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(110);
  });

  it("explains each default with its numbers", () => {
    const content = fileOf(plan({}, kernelDefaults())).replace(/\n# /g, " ");
    expect(content).toContain("default 4096 since Linux 5.4, 128 before");
    expect(content).toContain("65536 became 0");
    expect(content).toContain("gives up after 15 s");
    expect(content).toContain("1 = cookies only on overflow. 2 = cookies for every connection, for testing");
    expect(content).toContain("1000 packets is 1 ms of burst; 16384 absorbs 16 ms");
    expect(content).toContain("does not exist inside a network namespace");
  });

  it("depends only on params: listeners and live values don't change the bytes", () => {
    const busy = kernelDefaults(probeOk(SS_OUTPUT), { [SOMAXCONN]: "128", [SYNACK]: "2" });
    expect(fileOf(plan({}, busy))).toBe(fileOf(plan({}, kernelDefaults())));
  });
});

describe("syn-backlog listeners below somaxconn", () => {
  it("notes each port and backlog below the new somaxconn, grouping addresses", () => {
    expect(plan({}, kernelDefaults(probeOk(SS_OUTPUT))).notes.map((n) => n.text)).toEqual([
      noteFor(53, 4096, 65535, "127.0.0.1%lo"),
      noteFor(443, 0, 65535, "this host's address"),
      noteFor(5432, 244, 65535, "[::1]"),
      noteFor(6379, 4096, 65535, "127.0.0.1"),
      noteFor(7000, 50, 65535, "this host's address"),
      noteFor(8080, 511, 65535, "0.0.0.0, [::]"),
      noteFor(9000, 16, 65535, "*"),
    ]);
  });

  it.each<[string, number, ProbeResult<Listener[]> | undefined, string[]]>([
    ["a backlog equal to somaxconn is not reported", 4096, probeOk("LISTEN 0 4096 0.0.0.0:80 0.0.0.0:*\n"), []],
    ["a backlog above somaxconn is not reported", 4096, probeOk("LISTEN 0 8192 0.0.0.0:80 0.0.0.0:*\n"), []],
    ["one below is", 4096, probeOk("LISTEN 0 4095 0.0.0.0:80 0.0.0.0:*\n"), [noteFor(80, 4095, 4096, "0.0.0.0")]],
    [
      "the same port with two backlogs gives two notes, smaller first",
      65535,
      probeOk("LISTEN 0 511 0.0.0.0:80 0.0.0.0:*\nLISTEN 0 128 [::]:80 [::]:*\n"),
      [noteFor(80, 128, 65535, "[::]"), noteFor(80, 511, 65535, "0.0.0.0")],
    ],
    ["no listeners", 65535, NO_LISTENERS, []],
    [
      "ss missing: said plainly, not a silent pass",
      65535,
      { ok: false, error: "ss is not installed (package iproute2), so listening sockets' backlogs cannot be read" },
      [
        "cannot report listeners that cap their own queue below somaxconn: ss is not installed (package iproute2), so listening sockets' backlogs cannot be read",
      ],
    ],
    [
      "the probe was not gathered",
      65535,
      undefined,
      [
        "listening sockets' backlogs were not read; listeners that cap their own queue below somaxconn are not reported",
      ],
    ],
  ])("%s", (_what, somaxconn, result, expected) => {
    expect(listenerNotes(somaxconn, result)).toEqual(expected);
  });

  it("compares with the somaxconn being planned, not the host's current one", () => {
    const notes = plan({ somaxconn: 1024 }, kernelDefaults(probeOk(SS_OUTPUT), { [SOMAXCONN]: "4096" })).notes.map(
      (n) => n.text,
    );
    expect(notes).toEqual([
      noteFor(443, 0, 1024, "this host's address"),
      noteFor(5432, 244, 1024, "[::1]"),
      noteFor(7000, 50, 1024, "this host's address"),
      noteFor(8080, 511, 1024, "0.0.0.0, [::]"),
      noteFor(9000, 16, 1024, "*"),
    ]);
  });

  it("reports the same listeners when verifying", () => {
    const before = kernelDefaults(probeOk(SS_OUTPUT));
    const after = factsAfter(plan({}, before), before);
    expect(plan({}, after, "verify").notes).toEqual(plan({}, before).notes);
  });
});

describe("syn-backlog idempotence", () => {
  it.each<[string, Record<string, unknown>, Facts]>([
    ["defaults", {}, kernelDefaults(probeOk(SS_OUTPUT))],
    [
      "netdev left alone in a namespace",
      { netdev_max_backlog: null },
      kernelDefaults(NO_LISTENERS, { [NETDEV]: null }),
    ],
    [
      "custom values",
      { somaxconn: 32768, tcp_max_syn_backlog: 32768, tcp_synack_retries: 2, netdev_max_backlog: 5000 },
      kernelDefaults(),
    ],
    ["cookies always, abort on overflow", { tcp_syncookies: 2, tcp_abort_on_overflow: 1 }, kernelDefaults()],
  ])("%s: plan → apply → plan has zero changes and verify passes", (_what, over, before) => {
    const first = plan(over, before);
    expect(first.changes.length).toBeGreaterThan(0);
    const after = factsAfter(first, before);
    const second = plan(over, after);
    expect(second.changes).toEqual([]);
    expect(second.checks).toEqual(first.checks);
    expect(evaluateChecks(plan(over, after, "verify").checks, after).every((r) => r.ok)).toBe(true);
  });

  it("verify catches syncookies turned off by hand", () => {
    const after = factsAfter(plan({}, kernelDefaults()), kernelDefaults());
    after.sysctl[COOKIES] = "0";
    const failed = evaluateChecks(plan({}, after, "verify").checks, after).filter((r) => !r.ok);
    expect(failed.map((r) => [r.check.kind === "sysctl" && r.check.key, r.actual])).toEqual([[COOKIES, "0"]]);
  });
});

describe("syn-backlog validate()", () => {
  const validate = synBacklog.validate!;

  it.each<[string, Record<string, unknown>, Array<[string, RegExp]>]>([
    ["the defaults", {}, []],
    ["netdev null", { netdev_max_backlog: null }, []],
    [
      "syncookies 0",
      { tcp_syncookies: 0 },
      [["tcp_syncookies", /^tcp_syncookies 0: when a listener's SYN queue is full .* new connections are dropped/]],
    ],
    [
      "syncookies 2",
      { tcp_syncookies: 2 },
      [
        [
          "tcp_syncookies",
          /^tcp_syncookies 2 sends cookies for every connection, even without overflow: it is meant for testing/,
        ],
      ],
    ],
    ["abort on overflow", { tcp_abort_on_overflow: 1 }, [["tcp_abort_on_overflow", /ECONNRESET/]]],
    [
      "both",
      { tcp_syncookies: 0, tcp_abort_on_overflow: 1 },
      [
        ["tcp_syncookies", /tcp_syncookies 0/],
        ["tcp_abort_on_overflow", /tcp_abort_on_overflow 1/],
      ],
    ],
  ])("%s", (_what, over, expected) => {
    const problems = validate(params(over));
    expect(problems.map((p) => [p.param, p.severity])).toEqual(expected.map(([param]) => [param, "warning"]));
    expected.forEach(([, problem], i) => expect(problems[i]!.problem).toMatch(problem));
    for (const p of problems) expect(p.fix).toMatch(/^use [01]/);
  });
});

describe("syn-backlog schema", () => {
  function check(text: string): ConfigProblem[] {
    const problems: ConfigProblem[] = [];
    const file = parseYamlText(text, "s.yaml", problems)!;
    validateAgainstSchema(synBacklog.schema, file.data, file, [], problems);
    return problems;
  }

  it("has these defaults, and accepts them written out", () => {
    expect(paramsOf(synBacklog)).toEqual({
      somaxconn: 65535,
      tcp_max_syn_backlog: 65535,
      tcp_syncookies: 1,
      tcp_abort_on_overflow: 0,
      tcp_synack_retries: 3,
      netdev_max_backlog: 16384,
    });
    const yaml = Object.entries(paramsOf(synBacklog))
      .map(([k, v]) => `${k}: ${String(v)}`)
      .join("\n");
    expect(check(`${yaml}\n`)).toEqual([]);
    expect(check("netdev_max_backlog: null\n")).toEqual([]);
  });

  it.each<[string, string, RegExp]>([
    ["somaxconn above what a 16-bit backlog holds", "somaxconn: 65536", /65536 is out of range \(must be <= 65535\)/],
    ["somaxconn below 128", "somaxconn: 127", /out of range/],
    ["a negative somaxconn", "somaxconn: -1", /out of range/],
    ["tcp_max_syn_backlog too large", "tcp_max_syn_backlog: 1048577", /out of range/],
    ["tcp_syncookies 3", "tcp_syncookies: 3", /3 is not one of 0, 1, 2/],
    ["tcp_abort_on_overflow 2", "tcp_abort_on_overflow: 2", /2 is not one of 0, 1/],
    ["tcp_synack_retries 0", "tcp_synack_retries: 0", /out of range \(must be >= 1\)/],
    ["tcp_synack_retries above 10", "tcp_synack_retries: 11", /out of range/],
    ["netdev_max_backlog below the kernel default", "netdev_max_backlog: 999", /out of range/],
    ["a number in a string", "somaxconn: '65535'", /expected/],
    ["a misspelt key", "somaxcon: 65535", /unknown key "somaxcon"/],
  ])("rejects %s", (_what, yaml, problem) => {
    const problems = check(`${yaml}\n`);
    expect(problems.length).toBeGreaterThanOrEqual(1);
    expect(problems[0]!.problem).toMatch(problem);
    expect(problems.every((p) => p.severity === "error")).toBe(true);
  });
});
