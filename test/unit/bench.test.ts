import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  ansibleWorkFromPlan,
  busyPercent,
  evaluateTargets,
  fmtRatio,
  formatRouteResolution,
  formatSizeTable,
  formatTargets,
  hostsWithChanges,
  median,
  OptionError,
  parseOptions,
  parseSizes,
  planDifferences,
  ratios,
  resultFileName,
  resultJson,
  routeResolutionTarget,
  snapshotsFromPlan,
  textTable,
  USAGE,
  checkStatusOutput,
  formatStatusTable,
  spreadOf,
  STATUS_TARGET_HOSTS,
  StatusOutputError,
  statusForTarget,
  statusTarget,
  type StatusResult,
  type BenchResult,
  type MemoryResult,
  type OpenSshPath,
  type PlanJson,
  type RouteResolutionResult,
  type SizeResult,
  type Timing,
  inventoryTarget,
} from "../../scripts/benchCore.js";
import {
  BASTION_ALIAS,
  behindBastion,
  INVENTORY_TARGETS,
  inventoryFiles,
  ROUTE_TARGETS,
  routeRequestsOf,
  routeSshConfig,
  writeInventory,
} from "../../scripts/benchInventory.js";
import type { ConfigProblem } from "../../src/config/errors.js";
import { loadInventory } from "../../src/inventory/load.js";

const ROOT = join(import.meta.dirname, "..", "..");

describe("parseSizes", () => {
  it.each<[string, number[]]>([
    ["20,50", [20, 50]],
    [" 20 , 50 ", [20, 50]],
    ["1", [1]],
    ["250", [250]],
    ["50,20", [50, 20]],
  ])("%j → %j", (text, sizes) => {
    expect(parseSizes(text)).toEqual(sizes);
  });

  it.each<[string, RegExp]>([
    ["", /empty/],
    ["0", /not a host count in 1\.\.250/],
    ["251", /not a host count in 1\.\.250/],
    ["20,abc", /"abc" is not a host count/],
    ["2.5", /"2.5" is not a host count/],
    ["-3", /"-3" is not a host count/],
    ["20,20", /20 is listed twice/],
  ])("%j is refused", (text, message) => {
    expect(() => parseSizes(text)).toThrow(OptionError);
    expect(() => parseSizes(text)).toThrow(message);
  });
});

describe("parseOptions", () => {
  it.each<[string, string[], Record<string, string>, Partial<ReturnType<typeof parseOptions>>]>([
    [
      "defaults",
      [],
      {},
      { sizes: [20, 50], memoryHosts: 200, out: undefined, ansible: true, openssh: true, help: false },
    ],
    [
      "environment",
      [],
      { BENCH_SIZES: "20", BENCH_MEMORY_HOSTS: "0", BENCH_OUT: "/tmp/x.json", BENCH_ANSIBLE: "0" },
      { sizes: [20], memoryHosts: 0, out: "/tmp/x.json", ansible: false },
    ],
    [
      "flags win over the environment",
      ["--sizes", "50", "--memory-hosts", "100", "--out", "r.json"],
      { BENCH_SIZES: "20", BENCH_MEMORY_HOSTS: "0" },
      { sizes: [50], memoryHosts: 100, out: "r.json" },
    ],
    ["--no-ansible", ["--no-ansible"], {}, { ansible: false }],
    ["--no-openssh", ["--no-openssh"], {}, { openssh: false }],
    ["BENCH_OPENSSH=0", [], { BENCH_OPENSSH: "0" }, { openssh: false }],
    ["--help", ["--help"], {}, { help: true }],
    ["-h", ["-h"], {}, { help: true }],
    ["inventory defaults", [], {}, { inventoryHosts: 10_000, inventoryOnly: false }],
    [
      "inventory flags",
      ["--inventory-hosts", "500", "--inventory-only"],
      { BENCH_INVENTORY_HOSTS: "20" },
      { inventoryHosts: 500, inventoryOnly: true },
    ],
    ["inventory from the environment", [], { BENCH_INVENTORY_HOSTS: "0" }, { inventoryHosts: 0 }],
    ["status defaults", [], {}, { statusOnly: false }],
    ["--status-only", ["--status-only", "--sizes", "50"], {}, { statusOnly: true, sizes: [50] }],
    ["scale defaults", [], {}, { scaleSizes: [1000, 5000, 10000], scaleOnly: false }],
    [
      "--scale-sizes",
      ["--scale-sizes", "2000,20000", "--scale-only"],
      {},
      { scaleSizes: [2000, 20000], scaleOnly: true },
    ],
    ["BENCH_SCALE_SIZES=0: none", [], { BENCH_SCALE_SIZES: "0" }, { scaleSizes: [] }],
  ])("%s", (_what, argv, env, expected) => {
    expect(parseOptions(argv, env)).toMatchObject(expected);
  });

  it.each<[string[], RegExp]>([
    [["--sizes"], /--sizes needs a value/],
    [["--sizes", "--no-ansible"], /--sizes needs a value/],
    [["--memory-hosts", "300"], /not a host count in 0\.\.250/],
    [["--fast"], /unknown option --fast.*--no-openssh.*--help/],
    [["--inventory-hosts", "lots"], /not a host count in 0\.\.1000000/],
    [["--fast"], /unknown option --fast.*--status-only/],
    [["--status-only", "--inventory-only"], /--inventory-only, --status-only and --scale-only exclude each other/],
    [["--scale-only", "--status-only"], /exclude each other/],
    [["--scale-sizes", "100000"], /not a host count in 1\.\.50000/],
    [["--scale-sizes", "1000,1000"], /1000 is listed twice/],
    [["--scale-only", "--scale-sizes", "0"], /--scale-only with no scale sizes/],
  ])("%j is refused", (argv, message) => {
    expect(() => parseOptions(argv, {})).toThrow(message);
  });
});

// ---------------------------------------------------------------------------------------------

const SNAPSHOT =
  '{\n  "version": 1,\n  "files": { "/etc/sysctl.d/60-provision-tw-reuse.conf": null },\n  "sysctl": { "net.ipv4.tcp_tw_reuse": "2" },\n  "commands": []\n}\n';
const TW_FILE = "# Managed by provision, role tw-reuse.\nnet.ipv4.tcp_tw_reuse = 1\n";

function hostPlan(host: string, extra: PlanJson["hosts"][number]["changes"] = []): PlanJson["hosts"][number] {
  return {
    host,
    status: "changed",
    changes: [
      {
        kind: "file",
        path: "/etc/provision/snapshot.json",
        after: SNAPSHOT,
        mode: "0600",
        owner: "root",
        group: "root",
        role: "snapshot",
      },
      {
        kind: "file",
        path: "/etc/sysctl.d/60-provision-tw-reuse.conf",
        after: TW_FILE,
        mode: "0644",
        owner: "root",
        group: "root",
        role: "tw-reuse",
      },
      { kind: "sysctl", key: "net.ipv4.tcp_tw_reuse", after: "1", role: "tw-reuse" },
      ...extra,
    ],
  };
}

const PLAN: PlanJson = {
  command: "plan",
  hosts: [
    hostPlan("h1", [
      { kind: "command", argv: ["ip", "addr", "add", "198.18.0.200/24", "dev", "eth0"], role: "secondary-source-ips" },
    ]),
    hostPlan("h2", [
      { kind: "sysctl", key: "net.ipv4.ip_local_port_range", after: "1024\t65535", role: "ephemeral-ports" },
    ]),
  ],
};

describe("ansibleWorkFromPlan: the same work as provision's plan, for the Ansible playbook", () => {
  const work = ansibleWorkFromPlan(PLAN);
  const twSha = Object.keys(work.contents).find((k) => work.contents[k] === TW_FILE)!;

  it("keeps every role's files, live values and commands per host, in plan order", () => {
    expect(work.vars.bench_hosts).toEqual({
      h1: {
        "tw-reuse": {
          files: [
            {
              path: "/etc/sysctl.d/60-provision-tw-reuse.conf",
              src: twSha,
              mode: "0644",
              owner: "root",
              group: "root",
            },
          ],
          sysctl: ["net.ipv4.tcp_tw_reuse=1"],
          commands: [],
        },
        "secondary-source-ips": {
          files: [],
          sysctl: [],
          commands: [["ip", "addr", "add", "198.18.0.200/24", "dev", "eth0"]],
        },
      },
      h2: {
        "tw-reuse": {
          files: [
            {
              path: "/etc/sysctl.d/60-provision-tw-reuse.conf",
              src: twSha,
              mode: "0644",
              owner: "root",
              group: "root",
            },
          ],
          sysctl: ["net.ipv4.tcp_tw_reuse=1"],
          commands: [],
        },
        "ephemeral-ports": { files: [], sysctl: ["net.ipv4.ip_local_port_range=1024\t65535"], commands: [] },
      },
    });
  });

  it("stores each distinct content once, named by its sha256, byte for byte", () => {
    expect(Object.values(work.contents)).toEqual([TW_FILE]);
    expect(twSha).toMatch(/^[0-9a-f]{64}$/);
  });

  it("leaves provision's rollback snapshot out and counts the rest", () => {
    expect(JSON.stringify(work.vars)).not.toContain("snapshot");
    expect(work.counts).toEqual({ hosts: 2, files: 2, sysctl: 3, commands: 1 });
  });

  it("refuses a plan with a failed host, naming it", () => {
    const failed: PlanJson = {
      command: "plan",
      hosts: [
        ...PLAN.hosts,
        { host: "h3", status: "unreachable", error: { kind: "unreachable", message: "connection refused" } },
      ],
    };
    expect(() => ansibleWorkFromPlan(failed)).toThrow("the fresh plan failed on h3 (connection refused)");
  });
});

describe("snapshotsFromPlan", () => {
  it("returns what each fresh host's snapshot would hold", () => {
    expect(snapshotsFromPlan(PLAN)).toEqual({ h1: SNAPSHOT, h2: SNAPSHOT });
  });

  it("refuses a host whose plan has no snapshot (it was not fresh)", () => {
    const applied: PlanJson = { command: "plan", hosts: [{ host: "h1", status: "unchanged", changes: [] }] };
    expect(() => snapshotsFromPlan(applied)).toThrow("h1: the fresh plan has no rollback snapshot");
  });
});

describe("planDifferences / hostsWithChanges", () => {
  const h2Drifted: PlanJson = { command: "plan", hosts: [PLAN.hosts[0]!, hostPlan("h2")] };
  it.each<[string, PlanJson, string[]]>([
    ["the same plan", structuredClone(PLAN), []],
    ["a host whose changes differ", h2Drifted, ["h2"]],
    ["a host the first plan did not have", { command: "plan", hosts: [...PLAN.hosts, hostPlan("h3")] }, ["h3"]],
    [
      "a host that failed now",
      {
        command: "plan",
        hosts: [PLAN.hosts[0]!, { host: "h2", status: "failed", error: { kind: "facts", message: "x" } }],
      },
      ["h2"],
    ],
  ])("%s", (_what, actual, differing) => {
    expect(planDifferences(PLAN, actual)).toEqual(differing);
  });

  it("lists hosts with changes or errors, not hosts with none", () => {
    const plan: PlanJson = {
      command: "plan",
      hosts: [
        { host: "h1", status: "unchanged", changes: [] },
        PLAN.hosts[1]!,
        { host: "h3", status: "failed", error: { kind: "facts", message: "x" } },
      ],
    };
    expect(hostsWithChanges(plan)).toEqual(["h2", "h3"]);
  });
});

// ---------------------------------------------------------------------------------------------

const ok = (wallMs: number, extra: Partial<Timing> = {}): Timing => ({ wallMs, exitCode: 0, ...extra });

function size(
  hosts: number,
  t: {
    first: Timing;
    noop: Timing;
    def: Timing | null;
    tuned: Timing | null;
    floor: number;
    floorFailures?: number;
    skipped?: string;
    openssh?: OpenSshPath;
    opensshSkipped?: string;
  },
): SizeResult {
  return {
    hosts,
    provision: {
      firstRun: t.first,
      noop: t.noop,
      noopSamplesMs: [t.noop.wallMs - 100, t.noop.wallMs, t.noop.wallMs + 100],
      forks: Math.min(50, hosts),
      ...(t.openssh ? { openssh: t.openssh } : {}),
      ...(t.opensshSkipped ? { opensshSkipped: t.opensshSkipped } : {}),
    },
    ansible: { default: t.def, tuned: t.tuned, ...(t.skipped ? { skipped: t.skipped } : {}) },
    floor: { wallMs: t.floor, samplesMs: [t.floor, t.floor + 50, t.floor - 50], failures: t.floorFailures ?? 0 },
    checks: {
      ansibleLeftNothingToDo: { default: true, tuned: true },
      rollbackRestoredFresh: true,
      opensshRollbackRestoredFresh: t.openssh ? true : null,
      resetBeforeTuned: true,
    },
    work: { hosts, files: hosts * 10, sysctl: hosts * 10, commands: 0 },
    backgroundCpuPercent: { floor: 2, "provision first run": 3 },
  };
}

/** The OpenSSH-client path of a size: first run, median no-op of three, and the floor sampled in turns with it. */
function openssh(first: Timing, noop: Timing, floor: number, floorFailures = 0): OpenSshPath {
  return {
    firstRun: first,
    noop,
    noopSamplesMs: [noop.wallMs + 20, noop.wallMs, noop.wallMs - 20],
    floor: { wallMs: floor, samplesMs: [floor - 10, floor, floor + 10], failures: floorFailures },
  };
}

describe("ratios", () => {
  it.each<[string, SizeResult, ReturnType<typeof ratios>]>([
    [
      "all measured, ssh2 only",
      size(20, { first: ok(4000), noop: ok(1800), def: ok(100_000), tuned: ok(40_000), floor: 1200 }),
      { speedupVsAnsibleDefault: 25, speedupVsAnsibleTuned: 10, noopOverFloor: 1.5, openssh: null },
    ],
    [
      "Ansible skipped",
      size(20, { first: ok(4000), noop: ok(1800), def: null, tuned: null, floor: 1200 }),
      { speedupVsAnsibleDefault: null, speedupVsAnsibleTuned: null, noopOverFloor: 1.5, openssh: null },
    ],
    [
      "Ansible failed: no ratio from a failed run",
      size(20, { first: ok(4000), noop: ok(1800), def: { wallMs: 1000, exitCode: 2 }, tuned: ok(40_000), floor: 1200 }),
      { speedupVsAnsibleDefault: null, speedupVsAnsibleTuned: 10, noopOverFloor: 1.5, openssh: null },
    ],
    [
      "both paths: each against its own first run and its own floor",
      size(20, {
        first: ok(4000),
        noop: ok(1800),
        def: ok(100_000),
        tuned: ok(40_000),
        floor: 1200,
        openssh: openssh(ok(5000), ok(2600), 1300),
      }),
      {
        speedupVsAnsibleDefault: 25,
        speedupVsAnsibleTuned: 10,
        noopOverFloor: 1.5,
        openssh: { speedupVsAnsibleDefault: 20, speedupVsAnsibleTuned: 8, noopOverFloor: 2 },
      },
    ],
  ])("%s", (_what, r, expected) => {
    expect(ratios(r)).toEqual(expected);
  });
});

describe("evaluateTargets", () => {
  const verdicts = (sizes: SizeResult[], memory: MemoryResult | null, memoryHosts = 200) =>
    evaluateTargets(sizes, memory, memoryHosts).map(
      (t) => `${t.verdict} ${t.name} (${t.hosts})${t.reason ? `: ${t.reason}` : ""}`,
    );
  const opensshNotMeasured = (hosts: number, reason = "not measured") => [
    `SKIP first run vs Ansible defaults (openssh) (${hosts}): ${reason}`,
    `SKIP first run vs Ansible tuned (openssh) (${hosts}): ${reason}`,
    `SKIP no-op run vs floor (openssh) (${hosts}): ${reason}`,
  ];

  it.each<[string, SizeResult, string[]]>([
    [
      "every target met, exactly at the limits",
      size(20, { first: ok(5000), noop: ok(1500), def: ok(100_000), tuned: ok(25_000), floor: 1000 }),
      [
        "PASS first run vs Ansible defaults (ssh2) (20)",
        "PASS first run vs Ansible tuned (ssh2) (20)",
        "PASS no-op run vs floor (ssh2) (20)",
        ...opensshNotMeasured(20),
      ],
    ],
    [
      "just short of each",
      size(20, { first: ok(5001), noop: ok(1501), def: ok(100_000), tuned: ok(25_000), floor: 1000 }),
      [
        "MISS first run vs Ansible defaults (ssh2) (20)",
        "MISS first run vs Ansible tuned (ssh2) (20)",
        "MISS no-op run vs floor (ssh2) (20)",
        ...opensshNotMeasured(20),
      ],
    ],
    [
      "Ansible not installable",
      size(50, { first: ok(5000), noop: ok(1000), def: null, tuned: null, floor: 1000, skipped: "no apt-get" }),
      [
        "SKIP first run vs Ansible defaults (ssh2) (50): no apt-get",
        "SKIP first run vs Ansible tuned (ssh2) (50): no apt-get",
        "PASS no-op run vs floor (ssh2) (50)",
        ...opensshNotMeasured(50),
      ],
    ],
    [
      "a failing provision run never passes",
      size(20, {
        first: { wallMs: 10, exitCode: 1 },
        noop: { wallMs: 10, exitCode: 1 },
        def: ok(100_000),
        tuned: ok(100_000),
        floor: 1000,
      }),
      [
        "MISS first run vs Ansible defaults (ssh2) (20): provision run --ssh-client ssh2 exited 1",
        "MISS first run vs Ansible tuned (ssh2) (20): provision run --ssh-client ssh2 exited 1",
        "MISS no-op run vs floor (ssh2) (20): provision run --ssh-client ssh2 (no-op) exited 1",
        ...opensshNotMeasured(20),
      ],
    ],
    [
      "a failed Ansible run is no comparison",
      size(20, { first: ok(1000), noop: ok(1000), def: { wallMs: 5, exitCode: 4 }, tuned: ok(100_000), floor: 1000 }),
      [
        "SKIP first run vs Ansible defaults (ssh2) (20): ansible-playbook exited 4",
        "PASS first run vs Ansible tuned (ssh2) (20)",
        "PASS no-op run vs floor (ssh2) (20)",
        ...opensshNotMeasured(20),
      ],
    ],
    [
      "a floor whose ssh failed is no floor",
      size(20, {
        first: ok(1000),
        noop: ok(1000),
        def: null,
        tuned: null,
        floor: 1000,
        floorFailures: 3,
        skipped: "x",
      }),
      [
        "SKIP first run vs Ansible defaults (ssh2) (20): x",
        "SKIP first run vs Ansible tuned (ssh2) (20): x",
        "MISS no-op run vs floor (ssh2) (20): 3 floor ssh commands failed",
        ...opensshNotMeasured(20),
      ],
    ],
    [
      "--no-openssh: the OpenSSH client's targets say why they were skipped",
      size(20, {
        first: ok(5000),
        noop: ok(1500),
        def: ok(100_000),
        tuned: ok(25_000),
        floor: 1000,
        opensshSkipped: "--no-openssh (or BENCH_OPENSSH=0) was given",
      }),
      [
        "PASS first run vs Ansible defaults (ssh2) (20)",
        "PASS first run vs Ansible tuned (ssh2) (20)",
        "PASS no-op run vs floor (ssh2) (20)",
        ...opensshNotMeasured(20, "--no-openssh (or BENCH_OPENSSH=0) was given"),
      ],
    ],
    // Each path is judged on its own numbers: the OpenSSH client's first run and its no-op against the floor taken beside it.
    [
      "both paths, openssh exactly at the limits",
      size(20, {
        first: ok(4000),
        noop: ok(1200),
        def: ok(100_000),
        tuned: ok(25_000),
        floor: 1000,
        openssh: openssh(ok(5000), ok(1800), 1200),
      }),
      [
        "PASS first run vs Ansible defaults (ssh2) (20)",
        "PASS first run vs Ansible tuned (ssh2) (20)",
        "PASS no-op run vs floor (ssh2) (20)",
        "PASS first run vs Ansible defaults (openssh) (20)",
        "PASS first run vs Ansible tuned (openssh) (20)",
        "PASS no-op run vs floor (openssh) (20)",
      ],
    ],
    [
      "both paths, openssh just short of each (ssh2 passing does not carry it)",
      size(20, {
        first: ok(4000),
        noop: ok(1200),
        def: ok(100_000),
        tuned: ok(25_000),
        floor: 1000,
        openssh: openssh(ok(5001), ok(1801), 1200),
      }),
      [
        "PASS first run vs Ansible defaults (ssh2) (20)",
        "PASS first run vs Ansible tuned (ssh2) (20)",
        "PASS no-op run vs floor (ssh2) (20)",
        "MISS first run vs Ansible defaults (openssh) (20)",
        "MISS first run vs Ansible tuned (openssh) (20)",
        "MISS no-op run vs floor (openssh) (20)",
      ],
    ],
    [
      "openssh no-op against its own floor, not the ssh2 one",
      size(20, {
        first: ok(4000),
        noop: ok(1300),
        def: null,
        tuned: null,
        floor: 800,
        skipped: "x",
        openssh: openssh(ok(4000), ok(1500), 1000),
      }),
      [
        "SKIP first run vs Ansible defaults (ssh2) (20): x",
        "SKIP first run vs Ansible tuned (ssh2) (20): x",
        "MISS no-op run vs floor (ssh2) (20)",
        "SKIP first run vs Ansible defaults (openssh) (20): x",
        "SKIP first run vs Ansible tuned (openssh) (20): x",
        "PASS no-op run vs floor (openssh) (20)",
      ],
    ],
    [
      "a failing OpenSSH-client run never passes; its floor's failures are its own",
      size(20, {
        first: ok(1000),
        noop: ok(1000),
        def: ok(100_000),
        tuned: ok(100_000),
        floor: 1000,
        openssh: openssh({ wallMs: 10, exitCode: 3 }, ok(1000), 1000, 2),
      }),
      [
        "PASS first run vs Ansible defaults (ssh2) (20)",
        "PASS first run vs Ansible tuned (ssh2) (20)",
        "PASS no-op run vs floor (ssh2) (20)",
        "MISS first run vs Ansible defaults (openssh) (20): provision run --ssh-client openssh exited 3",
        "MISS first run vs Ansible tuned (openssh) (20): provision run --ssh-client openssh exited 3",
        "MISS no-op run vs floor (openssh) (20): 2 floor ssh commands failed",
      ],
    ],
    [
      "a failing OpenSSH-client no-op",
      size(20, {
        first: ok(1000),
        noop: ok(1000),
        def: null,
        tuned: null,
        floor: 1000,
        skipped: "x",
        openssh: openssh(ok(1000), { wallMs: 900, exitCode: 1 }, 1000),
      }),
      [
        "SKIP first run vs Ansible defaults (ssh2) (20): x",
        "SKIP first run vs Ansible tuned (ssh2) (20): x",
        "PASS no-op run vs floor (ssh2) (20)",
        "SKIP first run vs Ansible defaults (openssh) (20): x",
        "SKIP first run vs Ansible tuned (openssh) (20): x",
        "MISS no-op run vs floor (openssh) (20): provision run --ssh-client openssh (no-op) exited 1",
      ],
    ],
  ])("%s", (_what, r, expected) => {
    expect(verdicts([r], null, 0)).toEqual(expected);
  });

  it("gives each target its wanted value and measured ratio", () => {
    const r = size(20, {
      first: ok(4000),
      noop: ok(1200),
      def: ok(100_000),
      tuned: ok(25_000),
      floor: 1000,
      openssh: openssh(ok(5000), ok(1800), 1200),
    });
    expect(evaluateTargets([r], null, 0).map((t) => [t.name, t.target, t.measured])).toEqual([
      ["first run vs Ansible defaults (ssh2)", "≥ 20× faster", "25.0×"],
      ["first run vs Ansible tuned (ssh2)", "≥ 5× faster", "6.25×"],
      ["no-op run vs floor (ssh2)", "≤ 1.5×", "1.20×"],
      ["first run vs Ansible defaults (openssh)", "≥ 20× faster", "20.0×"],
      ["first run vs Ansible tuned (openssh)", "≥ 5× faster", "5.00×"],
      ["no-op run vs floor (openssh)", "≤ 1.5×", "1.50×"],
    ]);
  });

  it.each<[string, MemoryResult | null, number, string[]]>([
    [
      "under 300 MB",
      { hosts: 200, run: ok(20_000, { peakRssKb: 299 * 1024 }) },
      200,
      ["PASS peak RSS of one run (ssh2) (200)"],
    ],
    [
      "exactly 300 MB is not under",
      { hosts: 200, run: ok(20_000, { peakRssKb: 300 * 1024 }) },
      200,
      ["MISS peak RSS of one run (ssh2) (200)"],
    ],
    [
      "a failed run",
      { hosts: 200, run: { wallMs: 1, exitCode: 1, peakRssKb: 1000 } },
      200,
      ["MISS peak RSS of one run (ssh2) (200): provision run exited 1"],
    ],
    ["not measured", null, 200, ["SKIP peak RSS of one run (ssh2) (200): not measured"]],
    ["not wanted", null, 0, []],
  ])("memory: %s", (_what, memory, wanted, expected) => {
    expect(verdicts([], memory, wanted)).toEqual(expected);
  });
});

describe("output", () => {
  it("median", () => {
    expect([median([3]), median([3, 1, 2]), median([4, 1, 3, 2])]).toEqual([3, 2, 2.5]);
    expect(() => median([])).toThrow();
  });

  it.each<[number, string]>([
    [1.5, "1.50×"],
    [9.994, "9.99×"],
    [12.34, "12.3×"],
    [0.5, "0.50×"],
  ])("fmtRatio(%d) = %s", (x, s) => {
    expect(fmtRatio(x)).toBe(s);
  });

  it("aligns a text table: first column left, the others right", () => {
    expect(
      textTable(
        ["", "wall"],
        [
          ["provision", "1.00 s"],
          ["floor", "12.50 s"],
        ],
      ),
    ).toBe(["              wall", "---------  -------", "provision   1.00 s", "floor      12.50 s", ""].join("\n"));
  });

  it("prints one table per size: both paths' wall times, each set against Ansible and its own floor, and the peak RSS", () => {
    const r = size(20, {
      first: ok(4000, { peakRssKb: 125 * 1024 }),
      noop: ok(1800, { peakRssKb: 100 * 1024 }),
      def: ok(100_000),
      tuned: ok(40_000),
      floor: 1200,
      openssh: openssh(ok(5000, { peakRssKb: 90 * 1024 }), ok(2600, { peakRssKb: 80 * 1024 }), 1300),
    });
    expect(formatSizeTable(r)).toBe(`
20 hosts — 200 files, 200 live values, 0 commands to apply in all
                                                   wall  ÷ ssh2 first  ÷ openssh first  ÷ floor  peak RSS
---------------------------------------------  --------  ------------  ---------------  -------  --------
provision first run, ssh2 (forks 20)             4.00 s         1.00×            0.80×           125.0 MB
provision first run, openssh (forks 20)          5.00 s         1.25×            1.00×            90.0 MB
provision no-op, ssh2 (median of 3)              1.80 s                                   1.50×  100.0 MB
provision no-op, openssh (median of 3)           2.60 s                                   2.00×   80.0 MB
Ansible, defaults (forks 5, no pipelining)     100.00 s         25.0×            20.0×
Ansible, tuned (forks 20, pipelining)           40.00 s         10.0×            8.00×
floor, beside the ssh2 no-op (median of 3)       1.20 s
floor, beside the openssh no-op (median of 3)    1.30 s

floor: 20 × \`ssh host true\` in parallel, sampled in turns with each path's no-op runs
ssh2:    provision ÷ Ansible defaults: 1/25.0×   provision ÷ Ansible tuned: 1/10.0×   no-op ÷ floor: 1.50×
openssh: provision ÷ Ansible defaults: 1/20.0×   provision ÷ Ansible tuned: 1/8.00×   no-op ÷ floor: 2.00×
`);
  });

  it("says why the OpenSSH-client rows and the Ansible columns are empty", () => {
    const r = size(20, {
      first: ok(4000),
      noop: ok(1800),
      def: null,
      tuned: null,
      floor: 1200,
      skipped: "apt-get install ansible-core failed",
      opensshSkipped: "--no-openssh (or BENCH_OPENSSH=0) was given",
    });
    expect(formatSizeTable(r)).toBe(`
20 hosts — 200 files, 200 live values, 0 commands to apply in all
                                              wall  ÷ ssh2 first  ÷ openssh first  ÷ floor  peak RSS
------------------------------------------  ------  ------------  ---------------  -------  --------
provision first run, ssh2 (forks 20)        4.00 s         1.00×                -                  -
provision first run, openssh (forks 20)          -             -                -                  -
provision no-op, ssh2 (median of 3)         1.80 s                                   1.50×         -
provision no-op, openssh                         -                                       -         -
Ansible, defaults (forks 5, no pipelining)       -             -                -
Ansible, tuned (forks 20, pipelining)            -             -                -
floor, beside the ssh2 no-op (median of 3)  1.20 s
floor, beside the openssh no-op                  -

floor: 20 × \`ssh host true\` in parallel, sampled in turns with each path's no-op runs
ssh2:    provision ÷ Ansible defaults: -   provision ÷ Ansible tuned: -   no-op ÷ floor: 1.50×
openssh: not measured (--no-openssh (or BENCH_OPENSSH=0) was given)
Ansible skipped: apt-get install ansible-core failed
`);
  });

  it("shows a failed OpenSSH-client run's exit status and its floor's failures, and no ratio against it", () => {
    const r = size(20, {
      first: ok(4000),
      noop: ok(1800),
      def: ok(100_000),
      tuned: null,
      floor: 1200,
      skipped: "x",
      openssh: openssh({ wallMs: 700, exitCode: 3 }, ok(2400), 1200, 2),
    });
    const text = formatSizeTable(r);
    expect(text).toMatch(/provision first run, openssh \(forks 20\) +0\.70 s \(exit 3\) +- +- +-\n/);
    expect(text).toMatch(/provision first run, ssh2 \(forks 20\) +4\.00 s +1\.00× +- +-\n/);
    expect(text).toMatch(/Ansible, defaults \(forks 5, no pipelining\) +100\.00 s +25\.0× +-\n/);
    expect(text).toContain(
      "openssh: provision ÷ Ansible defaults: -   provision ÷ Ansible tuned: -   no-op ÷ floor: 2.00×",
    );
    expect(text).toMatch(/floor, beside the openssh no-op \(median of 3\) +1\.20 s \(2 failed\)\n/);
    expect(text).toMatch(/provision no-op, openssh \(median of 3\) +2\.40 s +2\.00× +-\n/);
  });

  it("warns when another workload kept the machine busy before a measurement", () => {
    const r = {
      ...size(20, { first: ok(4000), noop: ok(1800), def: null, tuned: null, floor: 1200, skipped: "x" }),
      backgroundCpuPercent: { floor: 5, "provision no-op": 64, "Ansible tuned": 21 },
    };
    expect(formatSizeTable(r)).toContain(
      "WARNING: another workload kept the machine busy before provision no-op (64% CPU), Ansible tuned (21% CPU): those times are skewed",
    );
    expect(
      formatSizeTable(size(20, { first: ok(4000), noop: ok(1800), def: null, tuned: null, floor: 1200, skipped: "x" })),
    ).not.toContain("WARNING");
  });

  it.each<[string, string, string, number]>([
    ["idle", "cpu  100 0 100 1000 0 0 0 0 0 0", "cpu  100 0 100 1200 0 0 0 0 0 0", 0],
    ["half busy (user + system)", "cpu  100 0 100 1000 0 0 0 0 0 0", "cpu  150 0 150 1100 0 0 0 0 0 0", 50],
    ["iowait counts as idle", "cpu  0 0 0 0 0 0 0 0 0 0", "cpu  10 0 0 40 50 0 0 0 0 0", 10],
    ["softirq counts as busy", "cpu  0 0 0 0 0 0 0 0 0 0", "cpu  0 0 0 75 0 0 25 0 0 0", 25],
    ["no time passed", "cpu  1 2 3 4 5 0 0 0 0 0", "cpu  1 2 3 4 5 0 0 0 0 0", 0],
  ])("busyPercent: %s", (_what, before, after, pct) => {
    expect(busyPercent(before, after)).toBe(pct);
  });

  it("prints its options for --help", () => {
    expect(USAGE).toMatch(/--no-openssh +skip the OpenSSH-client runs/);
    expect(USAGE).toMatch(/--inventory-only +only the inventory part \(load \+ resolve, routes; no fleet\)/);
    expect(USAGE).toMatch(/--status-only +only `provision status` against the floor, per size/);
  });

  it("lists PASS/MISS per target", () => {
    const text = formatTargets([
      { name: "no-op run vs floor", hosts: 20, target: "≤ 1.5×", measured: "1.20×", verdict: "PASS" },
    ]);
    expect(text).toMatch(/PASS +no-op run vs floor \(20 hosts\) +≤ 1\.5× +1\.20×/);
  });

  it("writes the result as JSON with the ratios of each size", () => {
    const result: BenchResult = {
      version: 1,
      startedAt: "2026-11-21T05:00:00.000Z",
      durationMs: 1000,
      machine: { cpus: 2 },
      sizes: [size(20, { first: ok(4000), noop: ok(1800), def: ok(100_000), tuned: ok(40_000), floor: 1200 })],
      memory: null,
      inventory: null,
      targets: [],
    };
    const back = JSON.parse(resultJson(result));
    expect(back.sizes[0].ratios).toEqual({
      speedupVsAnsibleDefault: 25,
      speedupVsAnsibleTuned: 10,
      noopOverFloor: 1.5,
      openssh: null,
    });
    expect(back.sizes[0].provision.firstRun.wallMs).toBe(4000);
    expect(resultJson(result).endsWith("}\n")).toBe(true);
  });

  it("writes the OpenSSH client's measurements and ratios beside the ssh2 path's, and the route resolution", () => {
    const routes: RouteResolutionResult = {
      hosts: 10_000,
      wallMs: 300,
      samplesMs: [320, 300, 280],
      sshGCalls: 8,
      behindBastion: 1280,
      expectedBehindBastion: 1280,
      errors: 0,
    };
    const result: BenchResult = {
      version: 1,
      startedAt: "2026-11-21T05:00:00.000Z",
      durationMs: 1000,
      machine: { cpus: 2 },
      sizes: [
        size(20, {
          first: ok(4000),
          noop: ok(1800),
          def: ok(100_000),
          tuned: ok(40_000),
          floor: 1200,
          openssh: openssh(ok(5000), ok(2600), 1300),
        }),
      ],
      memory: null,
      inventory: null,
      routes,
      targets: [],
    };
    const back = JSON.parse(resultJson(result));
    expect(back.sizes[0].ratios.openssh).toEqual({
      speedupVsAnsibleDefault: 20,
      speedupVsAnsibleTuned: 8,
      noopOverFloor: 2,
    });
    expect(back.sizes[0].provision.openssh).toEqual({
      firstRun: { wallMs: 5000, exitCode: 0 },
      noop: { wallMs: 2600, exitCode: 0 },
      noopSamplesMs: [2620, 2600, 2580],
      floor: { wallMs: 1300, samplesMs: [1290, 1300, 1310], failures: 0 },
    });
    expect(back.sizes[0].checks.opensshRollbackRestoredFresh).toBe(true);
    expect(back.routes).toEqual(routes);
  });

  it("names result files by date, sortable and without colons", () => {
    expect(resultFileName(new Date("2026-11-21T05:33:15.814Z"))).toBe("2026-11-21T05-33-15Z.json");
  });
});

// ---------------------------------------------------------------------------------------------

/** `provision status --json` output with these hosts and verdicts (an Error for an unread host). */
function statusStdout(hosts: Array<[string, string | Error, number?]>): string {
  return JSON.stringify({
    command: "status",
    summary: { hosts: hosts.length },
    hosts: hosts.map(([host, v, windowSeconds]) =>
      v instanceof Error
        ? { host, verdict: "error", error: { kind: "unreachable", message: v.message }, closest: null, walls: [] }
        : { host, verdict: v, windowSeconds: windowSeconds ?? 1.05, closest: null, walls: [] },
    ),
  });
}

function statusResult(
  hosts: number,
  statusMs: number,
  floorMs: number,
  extra: Partial<StatusResult> = {},
): StatusResult {
  return {
    hosts,
    forks: Math.min(50, hosts),
    status: ok(statusMs, { peakRssKb: 100 * 1024, summary: `${hosts} hosts: 0 critical, 1 warn, ${hosts - 1} ok` }),
    samplesMs: [statusMs + 30, statusMs, statusMs - 30],
    scriptSeconds: { min: 1.02, median: 1.1, max: 1.31 },
    floor: { wallMs: floorMs, samplesMs: [floorMs - 10, floorMs, floorMs + 10], failures: 0 },
    backgroundCpuPercent: { "floor and status": 3 },
    ...extra,
  };
}

describe("provision status against the floor", () => {
  const fleet = ["h1", "h2", "h3"];

  it.each<[string, number]>([
    ["exit 0: ok or warn", 0],
    ["exit 3: a critical wall is still a full read", 3],
  ])("accepts %s with every host read", (_what, code) => {
    const readout = checkStatusOutput(
      statusStdout([
        ["h1", "ok", 1.02],
        ["h2", "warn", 1.31],
        ["h3", code === 3 ? "critical" : "ok", 1.1],
      ]),
      code,
      fleet,
    );
    expect(readout.verdicts).toEqual(code === 3 ? { critical: 1, warn: 1, ok: 1 } : { critical: 0, warn: 1, ok: 2 });
    expect(readout.scriptSeconds).toEqual([1.02, 1.31, 1.1]);
    expect(readout.summary).toBe(
      code === 3 ? "3 hosts: 1 critical, 1 warn, 1 ok" : "3 hosts: 0 critical, 1 warn, 2 ok",
    );
  });

  it.each<[string, string, number, RegExp]>([
    [
      "exit 1",
      statusStdout([
        ["h1", "ok"],
        ["h2", "ok"],
        ["h3", new Error("refused")],
      ]),
      1,
      /^exited 1 \(0 or 3 expected\)$/,
    ],
    ["exit 2 (a usage error)", "", 2, /^exited 2/],
    ["no JSON", "status of 3 hosts: 0 critical", 0, /^printed no JSON: /],
    ["JSON without hosts", JSON.stringify({ command: "status" }), 0, /without a hosts list/],
    [
      "a host left out",
      statusStdout([
        ["h1", "ok"],
        ["h3", "ok"],
      ]),
      0,
      /1 hosts missing from its JSON: h2$/,
    ],
    [
      "a host not in the fleet",
      statusStdout([
        ["h1", "ok"],
        ["h2", "ok"],
        ["h3", "ok"],
        ["h9", "ok"],
      ]),
      0,
      /hosts not in the fleet: h9/,
    ],
    [
      "an unread host beside a critical one (exit 3)",
      statusStdout([
        ["h1", "critical"],
        ["h2", "ok"],
        ["h3", new Error("connection refused")],
      ]),
      3,
      /^exited 3, but 1 hosts not read: h3 \(unreachable: connection refused\)$/,
    ],
  ])("refuses %s", (_what, stdout, code, message) => {
    expect(() => checkStatusOutput(stdout, code, fleet)).toThrow(StatusOutputError);
    expect(() => checkStatusOutput(stdout, code, fleet)).toThrow(message);
  });

  it("names the first few of many missing hosts", () => {
    const many = Array.from({ length: 50 }, (_, i) => `h${i + 1}`);
    expect(() => checkStatusOutput(statusStdout([["h1", "ok"]]), 0, many)).toThrow(
      /49 hosts missing from its JSON: h2, h3, h4, h5, h6, … and 44 more$/,
    );
  });

  it("spreadOf: least, median, most", () => {
    expect(spreadOf([1.3, 1.0, 1.1])).toEqual({ min: 1.0, median: 1.1, max: 1.3 });
    expect(spreadOf([])).toBeNull();
  });

  it.each<[string, StatusResult[], number | null]>([
    ["50 hosts when measured", [statusResult(20, 1, 1), statusResult(50, 1, 1), statusResult(100, 1, 1)], 50],
    ["else the largest size", [statusResult(100, 1, 1), statusResult(20, 1, 1), statusResult(30, 1, 1)], 100],
    ["one size", [statusResult(20, 1, 1)], 20],
    ["none", [], null],
  ])("judges the target at %s", (_what, results, hosts) => {
    expect(STATUS_TARGET_HOSTS).toBe(50);
    expect(statusForTarget(results)?.hosts ?? null).toBe(hosts);
  });

  it.each<[string, StatusResult[], string | null]>([
    ["exactly 1.5× the floor", [statusResult(50, 4500, 3000)], "PASS status vs floor (50) ≤ 1.5× 1.50×"],
    ["just over", [statusResult(50, 4501, 3000)], "MISS status vs floor (50) ≤ 1.5× 1.50×"],
    [
      "at 50 hosts, whatever the other sizes measured",
      [statusResult(20, 9000, 1000), statusResult(50, 3000, 3000)],
      "PASS status vs floor (50) ≤ 1.5× 1.00×",
    ],
    [
      "without 50 hosts, at the largest size, saying so",
      [statusResult(20, 1000, 1000), statusResult(30, 5000, 2000)],
      "MISS status vs floor (30) ≤ 1.5× 2.50×: 50 hosts not measured: judged at the largest size, 30",
    ],
    [
      "a floor whose ssh failed is no floor",
      [statusResult(50, 3000, 3000, { floor: { wallMs: 3000, samplesMs: [3000, 3000, 3000], failures: 2 } })],
      "MISS status vs floor (50) ≤ 1.5× 1.00×: 2 floor ssh commands failed",
    ],
    ["not measured: no target", [], null],
  ])("target: %s", (_what, results, expected) => {
    const t = statusTarget(results);
    expect(t && `${t.verdict} ${t.name} (${t.hosts}) ${t.target} ${t.measured}${t.reason ? `: ${t.reason}` : ""}`).toBe(
      expected,
    );
  });

  it("adds a status row beside the no-op rows and its floor after the other floors in the size table", () => {
    const r = size(50, {
      first: ok(6000),
      noop: ok(4000),
      def: null,
      tuned: null,
      floor: 3500,
      skipped: "x",
      opensshSkipped: "y",
    });
    const text = formatSizeTable(r, statusResult(50, 4200, 3000));
    const rows = text.split("\n").filter((l) => /^(provision |Ansible, |floor, )/.test(l));
    expect(rows.map((l) => l.replace(/ {2,}.*/, ""))).toEqual([
      "provision first run, ssh2 (forks 50)",
      "provision first run, openssh (forks 50)",
      "provision no-op, ssh2 (median of 3)",
      "provision no-op, openssh",
      "provision status (forks 50, median of 3)",
      "Ansible, defaults (forks 5, no pipelining)",
      "Ansible, tuned (forks 50, pipelining)",
      "floor, beside the ssh2 no-op (median of 3)",
      "floor, beside the openssh no-op",
      "floor, beside status (median of 3)",
    ]);
    expect(text).toMatch(/provision status \(forks 50, median of 3\) +4\.20 s +1\.40× +100\.0 MB\n/);
    expect(text).toMatch(/floor, beside status \(median of 3\) +3\.00 s\n/);
    expect(text).toContain(
      "status: 50 hosts: 0 critical, 1 warn, 49 ok; scripts took 1.02–1.31 s (median 1.10 s); status ÷ floor: 1.40×",
    );
    // Without status, the table is as before.
    expect(formatSizeTable(r)).not.toContain("status");
  });

  it("warns in the size table when the machine was busy before status", () => {
    const r = size(50, { first: ok(6000), noop: ok(4000), def: null, tuned: null, floor: 3500, skipped: "x" });
    const text = formatSizeTable(r, statusResult(50, 4200, 3000, { backgroundCpuPercent: { "floor and status": 55 } }));
    expect(text).toContain("WARNING: another workload kept the machine busy before floor and status (55% CPU)");
  });

  it("prints a table of its own with --status-only", () => {
    expect(formatStatusTable(statusResult(50, 2700, 2700))).toBe(`
50 hosts — provision status (read-only, one round trip per host)
                                            wall  ÷ floor  peak RSS
----------------------------------------  ------  -------  --------
provision status (forks 50, median of 3)  2.70 s    1.00×  100.0 MB
floor, beside status (median of 3)        2.70 s

floor: 50 × \`ssh host true\` in parallel, sampled in turns with the status runs
status: 50 hosts: 0 critical, 1 warn, 49 ok; scripts took 1.02–1.31 s (median 1.10 s); status ÷ floor: 1.00×
`);
    const failedFloor = statusResult(50, 2700, 2700, {
      floor: { wallMs: 2700, samplesMs: [2700], failures: 1 },
      samplesMs: [2700],
      scriptSeconds: null,
      backgroundCpuPercent: { "floor and status": 40 },
    });
    const text = formatStatusTable(failedFloor);
    expect(text).toMatch(/provision status \(forks 50\) +2\.70 s/);
    expect(text).toMatch(/floor, beside status +2\.70 s \(1 failed\)/);
    expect(text).toContain("status: 50 hosts: 0 critical, 1 warn, 49 ok; status ÷ floor: 1.00×");
    expect(text).toContain("WARNING: another workload kept the machine busy before floor and status (40% CPU)");
  });

  it("writes each size's status result and its ratio to the floor in the JSON", () => {
    const result: BenchResult = {
      version: 1,
      startedAt: "2026-11-21T05:00:00.000Z",
      durationMs: 1000,
      machine: { cpus: 2 },
      sizes: [],
      memory: null,
      inventory: null,
      status: [statusResult(50, 4200, 3000)],
      targets: [],
    };
    const back = JSON.parse(resultJson(result));
    expect(back.status).toEqual([{ ...statusResult(50, 4200, 3000), overFloor: 1.4 }]);
    // Results from before status was measured have no status key.
    expect(JSON.parse(resultJson({ ...result, status: undefined })).status).toBeUndefined();
  });
});

describe("bench/ansible/site.yml", () => {
  it("applies the same roles in the same order as provision's site playbook", () => {
    const provisionRoles = (
      parse(readFileSync(join(ROOT, "playbooks", "site.yaml"), "utf8")) as Array<{ roles: string[] }>
    )[0]!.roles;
    const ansiblePlay = (
      parse(readFileSync(join(ROOT, "bench", "ansible", "site.yml"), "utf8")) as Array<{
        tasks: Array<{ vars: { bench_role: string } }>;
      }>
    )[0]!;
    expect(ansiblePlay.tasks.map((t) => t.vars.bench_role)).toEqual(provisionRoles);
  });
});

describe("inventory bench", () => {
  it.each<[string, { wallMs: number; peakRssKb: number | undefined; exitCode: number | null }, string]>([
    ["fast and small", { wallMs: 1500, peakRssKb: 200 * 1024, exitCode: 0 }, "PASS"],
    ["too slow", { wallMs: 2100, peakRssKb: 200 * 1024, exitCode: 0 }, "MISS"],
    ["too big", { wallMs: 1500, peakRssKb: 310 * 1024, exitCode: 0 }, "MISS"],
    ["failed", { wallMs: 100, peakRssKb: 50 * 1024, exitCode: 1 }, "MISS"],
    ["unmeasured memory", { wallMs: 100, peakRssKb: undefined, exitCode: 0 }, "MISS"],
  ])("%s → %s", (_what, r, verdict) => {
    expect(inventoryTarget({ hosts: 10_000, ...r }, INVENTORY_TARGETS).verdict).toBe(verdict);
  });

  it("generates the number of hosts asked for, in groups by role and region", () => {
    const files = inventoryFiles(10_000);
    const problems: ConfigProblem[] = [];
    const dir = mkdtempSync(join(tmpdir(), "bench-inventory-"));
    try {
      const inventory = loadInventory(writeInventory(dir, 10_000), problems);
      expect(problems.filter((p) => p.severity === "error")).toEqual([]);
      expect(inventory!.hosts).toHaveLength(10_000);
      expect(inventory!.universe.groups.ws!.length).toBeGreaterThan(1000);
      expect(Object.keys(files)).toContain("group_vars/ws/main.yml");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("route resolution bench", () => {
  const measured = (extra: Partial<RouteResolutionResult> = {}): RouteResolutionResult => ({
    hosts: 10_000,
    wallMs: 300,
    samplesMs: [320, 300, 280],
    sshGCalls: 8,
    behindBastion: 1280,
    expectedBehindBastion: 1280,
    errors: 0,
    ...extra,
  });

  it.each<[string, RouteResolutionResult, string]>([
    ["fast, every route, the right ones through the bastion", measured(), "PASS 0.30 s, 8 ssh -G"],
    ["just under the target", measured({ wallMs: 1999 }), "PASS 2.00 s, 8 ssh -G"],
    ["at the target is not under it", measured({ wallMs: 2000 }), "MISS 2.00 s, 8 ssh -G"],
    [
      "hosts without a route",
      measured({ errors: 3, firstError: "OpenSSH rejected the connection settings: line 4" }),
      "MISS 0.30 s, 8 ssh -G: 3 hosts got no route: OpenSSH rejected the connection settings: line 4",
    ],
    [
      "the bastion block applied to the wrong hosts",
      measured({ behindBastion: 10_000 }),
      "MISS 0.30 s, 8 ssh -G: 10000 routes go through the bastion, 1280 hosts match its Host block",
    ],
    [
      "no ssh",
      measured({ skipped: "the OpenSSH client (ssh) is not installed" }),
      "SKIP -: the OpenSSH client (ssh) is not installed",
    ],
  ])("%s → %s", (_what, r, expected) => {
    const t = routeResolutionTarget(r, ROUTE_TARGETS);
    expect(`${t.verdict} ${t.measured}${t.reason ? `: ${t.reason}` : ""}`).toBe(expected);
    expect([t.name, t.target, t.hosts]).toEqual(["resolve routes through ssh_config (ssh -G)", "< 2 s", 10_000]);
  });

  it("prints one line: time, ssh -G calls, routes through the bastion; or why it was skipped", () => {
    expect(formatRouteResolution(measured())).toBe(
      "\n10000-host routes through ssh_config (resolveRoutes, hybrid): 0.30 s (median of 3: 0.32 s, 0.30 s, 0.28 s), 8 ssh -G calls, 1280 through the bastion (1280 expected)\n",
    );
    expect(formatRouteResolution(measured({ errors: 2, firstError: "boom" }))).toContain(
      ", 2 hosts without a route (boom)\n",
    );
    expect(formatRouteResolution(measured({ skipped: "no ssh" }))).toBe(
      "\nroute resolution (ssh_config, ssh -G): skipped: no ssh\n",
    );
  });

  it("matches the ProxyJump block's hosts as ssh matches Host patterns", () => {
    expect(["10.0.10.1", "10.0.19.255", "10.0.1x.5"].map(behindBastion)).toEqual([true, true, true]);
    expect(
      ["10.0.1.5", "10.0.20.1", "10.0.100.1", "10.200.0.1", "110.0.10.1", "web-eu_west-r00001.example.com"].map(
        behindBastion,
      ),
    ).toEqual([false, false, false, false, false, false]);
  });

  it("writes a config with a bastion, a ProxyJump block before Host * and the identity in the run's directory", () => {
    expect(routeSshConfig("/tmp/b")).toBe(
      [
        "# generated by npm run bench: routes of the generated inventory",
        `Host ${BASTION_ALIAS}`,
        "  HostName 192.0.2.10",
        "  User jump",
        "Host 10.0.1?.*",
        `  ProxyJump ${BASTION_ALIAS}`,
        "Host *",
        "  User ops",
        "  IdentityFile /tmp/b/id_ed25519",
        "  IdentitiesOnly yes",
        "  UserKnownHostsFile /tmp/b/known_hosts",
        "  StrictHostKeyChecking yes",
        "  ConnectTimeout 10",
        "  ServerAliveInterval 15",
        "",
      ].join("\n"),
    );
  });

  it("asks for every host's route as provision run would, part of them behind the bastion", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-routes-"));
    try {
      const requests = routeRequestsOf(writeInventory(dir, 10_000));
      expect(requests).toHaveLength(10_000);
      // ansible_user from [all:vars]; half the hosts by name, half (and the host_vars ones) by ansible_host.
      expect(new Set(requests.map((r) => r.user))).toEqual(new Set(["deploy"]));
      const byAddress = requests.filter((r) => /^\d+\.\d+\.\d+\.\d+$/.test(r.destination));
      expect(byAddress.length).toBeGreaterThan(4000);
      const behind = requests.filter((r) => behindBastion(r.destination)).length;
      expect(behind).toBeGreaterThan(500);
      expect(behind).toBeLessThan(byAddress.length / 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
