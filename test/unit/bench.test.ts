import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  ansibleWorkFromPlan, busyPercent, evaluateTargets, fmtRatio, formatSizeTable, formatTargets, hostsWithChanges, median, OptionError, parseOptions,
  parseSizes, planDifferences, ratios, resultFileName, resultJson, snapshotsFromPlan, textTable, type BenchResult, type MemoryResult,
  type PlanJson, type SizeResult, type Timing, inventoryTarget,
} from "../../scripts/benchCore.js";
import { INVENTORY_TARGETS, inventoryFiles, writeInventory } from "../../scripts/benchInventory.js";
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
    ["defaults", [], {}, { sizes: [20, 50], memoryHosts: 200, out: undefined, ansible: true }],
    ["environment", [], { BENCH_SIZES: "20", BENCH_MEMORY_HOSTS: "0", BENCH_OUT: "/tmp/x.json", BENCH_ANSIBLE: "0" }, { sizes: [20], memoryHosts: 0, out: "/tmp/x.json", ansible: false }],
    ["flags win over the environment", ["--sizes", "50", "--memory-hosts", "100", "--out", "r.json"], { BENCH_SIZES: "20", BENCH_MEMORY_HOSTS: "0" }, { sizes: [50], memoryHosts: 100, out: "r.json" }],
    ["--no-ansible", ["--no-ansible"], {}, { ansible: false }],
    ["inventory defaults", [], {}, { inventoryHosts: 10_000, inventoryOnly: false }],
    ["inventory flags", ["--inventory-hosts", "500", "--inventory-only"], { BENCH_INVENTORY_HOSTS: "20" }, { inventoryHosts: 500, inventoryOnly: true }],
    ["inventory from the environment", [], { BENCH_INVENTORY_HOSTS: "0" }, { inventoryHosts: 0 }],
  ])("%s", (_what, argv, env, expected) => {
    expect(parseOptions(argv, env)).toMatchObject(expected);
  });

  it.each<[string[], RegExp]>([
    [["--sizes"], /--sizes needs a value/],
    [["--sizes", "--no-ansible"], /--sizes needs a value/],
    [["--memory-hosts", "300"], /not a host count in 0\.\.250/],
    [["--fast"], /unknown option --fast/],
    [["--inventory-hosts", "lots"], /not a host count in 0\.\.1000000/],
  ])("%j is refused", (argv, message) => {
    expect(() => parseOptions(argv, {})).toThrow(message);
  });
});

// ---------------------------------------------------------------------------------------------

const SNAPSHOT = '{\n  "version": 1,\n  "files": { "/etc/sysctl.d/60-provision-tw-reuse.conf": null },\n  "sysctl": { "net.ipv4.tcp_tw_reuse": "2" },\n  "commands": []\n}\n';
const TW_FILE = "# Managed by provision, role tw-reuse.\nnet.ipv4.tcp_tw_reuse = 1\n";

function hostPlan(host: string, extra: PlanJson["hosts"][number]["changes"] = []): PlanJson["hosts"][number] {
  return {
    host, status: "changed",
    changes: [
      { kind: "file", path: "/etc/provision/snapshot.json", after: SNAPSHOT, mode: "0600", owner: "root", group: "root", role: "snapshot" },
      { kind: "file", path: "/etc/sysctl.d/60-provision-tw-reuse.conf", after: TW_FILE, mode: "0644", owner: "root", group: "root", role: "tw-reuse" },
      { kind: "sysctl", key: "net.ipv4.tcp_tw_reuse", after: "1", role: "tw-reuse" },
      ...extra,
    ],
  };
}

const PLAN: PlanJson = {
  command: "plan",
  hosts: [
    hostPlan("h1", [{ kind: "command", argv: ["ip", "addr", "add", "198.18.0.200/24", "dev", "eth0"], role: "secondary-source-ips" }]),
    hostPlan("h2", [{ kind: "sysctl", key: "net.ipv4.ip_local_port_range", after: "1024\t65535", role: "ephemeral-ports" }]),
  ],
};

describe("ansibleWorkFromPlan: the same work as provision's plan, for the Ansible playbook", () => {
  const work = ansibleWorkFromPlan(PLAN);
  const twSha = Object.keys(work.contents).find((k) => work.contents[k] === TW_FILE)!;

  it("keeps every role's files, live values and commands per host, in plan order", () => {
    expect(work.vars.bench_hosts).toEqual({
      h1: {
        "tw-reuse": { files: [{ path: "/etc/sysctl.d/60-provision-tw-reuse.conf", src: twSha, mode: "0644", owner: "root", group: "root" }], sysctl: ["net.ipv4.tcp_tw_reuse=1"], commands: [] },
        "secondary-source-ips": { files: [], sysctl: [], commands: [["ip", "addr", "add", "198.18.0.200/24", "dev", "eth0"]] },
      },
      h2: {
        "tw-reuse": { files: [{ path: "/etc/sysctl.d/60-provision-tw-reuse.conf", src: twSha, mode: "0644", owner: "root", group: "root" }], sysctl: ["net.ipv4.tcp_tw_reuse=1"], commands: [] },
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
    const failed: PlanJson = { command: "plan", hosts: [...PLAN.hosts, { host: "h3", status: "unreachable", error: { kind: "unreachable", message: "connection refused" } }] };
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
    ["a host that failed now", { command: "plan", hosts: [PLAN.hosts[0]!, { host: "h2", status: "failed", error: { kind: "facts", message: "x" } }] }, ["h2"]],
  ])("%s", (_what, actual, differing) => {
    expect(planDifferences(PLAN, actual)).toEqual(differing);
  });

  it("lists hosts with changes or errors, not hosts with none", () => {
    const plan: PlanJson = {
      command: "plan",
      hosts: [{ host: "h1", status: "unchanged", changes: [] }, PLAN.hosts[1]!, { host: "h3", status: "failed", error: { kind: "facts", message: "x" } }],
    };
    expect(hostsWithChanges(plan)).toEqual(["h2", "h3"]);
  });
});

// ---------------------------------------------------------------------------------------------

const ok = (wallMs: number, extra: Partial<Timing> = {}): Timing => ({ wallMs, exitCode: 0, ...extra });

function size(hosts: number, t: { first: Timing; noop: Timing; def: Timing | null; tuned: Timing | null; floor: number; floorFailures?: number; skipped?: string }): SizeResult {
  return {
    hosts,
    provision: { firstRun: t.first, noop: t.noop, noopSamplesMs: [t.noop.wallMs - 100, t.noop.wallMs, t.noop.wallMs + 100], forks: Math.min(50, hosts) },
    ansible: { default: t.def, tuned: t.tuned, ...(t.skipped ? { skipped: t.skipped } : {}) },
    floor: { wallMs: t.floor, samplesMs: [t.floor, t.floor + 50, t.floor - 50], failures: t.floorFailures ?? 0 },
    checks: { ansibleLeftNothingToDo: { default: true, tuned: true }, rollbackRestoredFresh: true, resetBeforeTuned: true },
    work: { hosts, files: hosts * 10, sysctl: hosts * 10, commands: 0 },
    backgroundCpuPercent: { floor: 2, "provision first run": 3 },
  };
}

describe("ratios", () => {
  it.each<[string, SizeResult, ReturnType<typeof ratios>]>([
    ["all measured", size(20, { first: ok(4000), noop: ok(1800), def: ok(100_000), tuned: ok(40_000), floor: 1200 }), { speedupVsAnsibleDefault: 25, speedupVsAnsibleTuned: 10, noopOverFloor: 1.5 }],
    ["Ansible skipped", size(20, { first: ok(4000), noop: ok(1800), def: null, tuned: null, floor: 1200 }), { speedupVsAnsibleDefault: null, speedupVsAnsibleTuned: null, noopOverFloor: 1.5 }],
    ["Ansible failed: no ratio from a failed run", size(20, { first: ok(4000), noop: ok(1800), def: { wallMs: 1000, exitCode: 2 }, tuned: ok(40_000), floor: 1200 }), { speedupVsAnsibleDefault: null, speedupVsAnsibleTuned: 10, noopOverFloor: 1.5 }],
  ])("%s", (_what, r, expected) => {
    expect(ratios(r)).toEqual(expected);
  });
});

describe("evaluateTargets", () => {
  const verdicts = (sizes: SizeResult[], memory: MemoryResult | null, memoryHosts = 200) =>
    evaluateTargets(sizes, memory, memoryHosts).map((t) => `${t.verdict} ${t.name} (${t.hosts})${t.reason ? `: ${t.reason}` : ""}`);

  it.each<[string, SizeResult, string[]]>([
    ["every target met, exactly at the limits", size(20, { first: ok(5000), noop: ok(1500), def: ok(100_000), tuned: ok(25_000), floor: 1000 }), [
      "PASS first run vs Ansible defaults (20)", "PASS first run vs Ansible tuned (20)", "PASS no-op run vs floor (20)",
    ]],
    ["just short of each", size(20, { first: ok(5001), noop: ok(1501), def: ok(100_000), tuned: ok(25_000), floor: 1000 }), [
      "MISS first run vs Ansible defaults (20)", "MISS first run vs Ansible tuned (20)", "MISS no-op run vs floor (20)",
    ]],
    ["Ansible not installable", size(50, { first: ok(5000), noop: ok(1000), def: null, tuned: null, floor: 1000, skipped: "no apt-get" }), [
      "SKIP first run vs Ansible defaults (50): no apt-get", "SKIP first run vs Ansible tuned (50): no apt-get", "PASS no-op run vs floor (50)",
    ]],
    ["a failing provision run never passes", size(20, { first: { wallMs: 10, exitCode: 1 }, noop: { wallMs: 10, exitCode: 1 }, def: ok(100_000), tuned: ok(100_000), floor: 1000 }), [
      "MISS first run vs Ansible defaults (20): provision run exited 1", "MISS first run vs Ansible tuned (20): provision run exited 1", "MISS no-op run vs floor (20): provision no-op exited 1",
    ]],
    ["a failed Ansible run is no comparison", size(20, { first: ok(1000), noop: ok(1000), def: { wallMs: 5, exitCode: 4 }, tuned: ok(100_000), floor: 1000 }), [
      "SKIP first run vs Ansible defaults (20): ansible-playbook exited 4", "PASS first run vs Ansible tuned (20)", "PASS no-op run vs floor (20)",
    ]],
    ["a floor whose ssh failed is no floor", size(20, { first: ok(1000), noop: ok(1000), def: null, tuned: null, floor: 1000, floorFailures: 3, skipped: "x" }), [
      "SKIP first run vs Ansible defaults (20): x", "SKIP first run vs Ansible tuned (20): x", "MISS no-op run vs floor (20): 3 floor ssh commands failed",
    ]],
  ])("%s", (_what, r, expected) => {
    expect(verdicts([r], null, 0)).toEqual(expected);
  });

  it.each<[string, MemoryResult | null, number, string[]]>([
    ["under 300 MB", { hosts: 200, run: ok(20_000, { peakRssKb: 299 * 1024 }) }, 200, ["PASS peak RSS of one run (200)"]],
    ["exactly 300 MB is not under", { hosts: 200, run: ok(20_000, { peakRssKb: 300 * 1024 }) }, 200, ["MISS peak RSS of one run (200)"]],
    ["a failed run", { hosts: 200, run: { wallMs: 1, exitCode: 1, peakRssKb: 1000 } }, 200, ["MISS peak RSS of one run (200): provision run exited 1"]],
    ["not measured", null, 200, ["SKIP peak RSS of one run (200): not measured"]],
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

  it.each<[number, string]>([[1.5, "1.50×"], [9.994, "9.99×"], [12.34, "12.3×"], [0.5, "0.50×"]])("fmtRatio(%d) = %s", (x, s) => {
    expect(fmtRatio(x)).toBe(s);
  });

  it("aligns a text table: first column left, the others right", () => {
    expect(textTable(["", "wall"], [["provision", "1.00 s"], ["floor", "12.50 s"]])).toBe(
      ["              wall", "---------  -------", "provision   1.00 s", "floor      12.50 s", ""].join("\n"),
    );
  });

  it("prints one table per size with every wall time, the ratios and the peak RSS", () => {
    const r = size(20, { first: ok(4000, { peakRssKb: 125 * 1024 }), noop: ok(1800, { peakRssKb: 100 * 1024 }), def: ok(100_000), tuned: ok(40_000), floor: 1200 });
    const text = formatSizeTable(r);
    expect(text).toContain("20 hosts — 200 files, 200 live values, 0 commands to apply in all");
    expect(text).toMatch(/provision run, first \(forks 20\) +4\.00 s +1\.00× +125\.0 MB/);
    expect(text).toMatch(/provision run, no-op \(median of 3\) +1\.80 s +100\.0 MB/);
    expect(text).toMatch(/Ansible, defaults \(forks 5, no pipelining\) +100\.00 s +25\.0×/);
    expect(text).toMatch(/Ansible, tuned \(forks 20, pipelining\) +40\.00 s +10\.0×/);
    expect(text).toMatch(/floor: 20 × `ssh host true` in parallel \(median of 3\) +1\.20 s/);
    expect(text).toContain("provision ÷ Ansible defaults: 1/25.0×   provision ÷ Ansible tuned: 1/10.0×   no-op ÷ floor: 1.50×");
  });

  it("says why the Ansible columns are empty", () => {
    const text = formatSizeTable(size(20, { first: ok(4000), noop: ok(1800), def: null, tuned: null, floor: 1200, skipped: "apt-get install ansible-core failed" }));
    expect(text).toMatch(/Ansible, defaults \(forks 5, no pipelining\) +-/);
    expect(text).toContain("Ansible skipped: apt-get install ansible-core failed");
  });

  it("warns when another workload kept the machine busy before a measurement", () => {
    const r = { ...size(20, { first: ok(4000), noop: ok(1800), def: null, tuned: null, floor: 1200, skipped: "x" }), backgroundCpuPercent: { floor: 5, "provision no-op": 64, "Ansible tuned": 21 } };
    expect(formatSizeTable(r)).toContain("WARNING: another workload kept the machine busy before provision no-op (64% CPU), Ansible tuned (21% CPU): those times are skewed");
    expect(formatSizeTable(size(20, { first: ok(4000), noop: ok(1800), def: null, tuned: null, floor: 1200, skipped: "x" }))).not.toContain("WARNING");
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

  it("lists PASS/MISS per target", () => {
    const text = formatTargets([{ name: "no-op run vs floor", hosts: 20, target: "≤ 1.5×", measured: "1.20×", verdict: "PASS" }]);
    expect(text).toMatch(/PASS +no-op run vs floor \(20 hosts\) +≤ 1\.5× +1\.20×/);
  });

  it("writes the result as JSON with the ratios of each size", () => {
    const result: BenchResult = {
      version: 1, startedAt: "2026-11-21T05:00:00.000Z", durationMs: 1000, machine: { cpus: 2 },
      sizes: [size(20, { first: ok(4000), noop: ok(1800), def: ok(100_000), tuned: ok(40_000), floor: 1200 })], memory: null, inventory: null, targets: [],
    };
    const back = JSON.parse(resultJson(result));
    expect(back.sizes[0].ratios).toEqual({ speedupVsAnsibleDefault: 25, speedupVsAnsibleTuned: 10, noopOverFloor: 1.5 });
    expect(back.sizes[0].provision.firstRun.wallMs).toBe(4000);
    expect(resultJson(result).endsWith("}\n")).toBe(true);
  });

  it("names result files by date, sortable and without colons", () => {
    expect(resultFileName(new Date("2026-11-21T05:33:15.814Z"))).toBe("2026-11-21T05-33-15Z.json");
  });
});

describe("bench/ansible/site.yml", () => {
  it("applies the same roles in the same order as provision's site playbook", () => {
    const provisionRoles = (parse(readFileSync(join(ROOT, "playbooks", "site.yaml"), "utf8")) as Array<{ roles: string[] }>)[0]!.roles;
    const ansiblePlay = (parse(readFileSync(join(ROOT, "bench", "ansible", "site.yml"), "utf8")) as Array<{ tasks: Array<{ vars: { bench_role: string } }> }>)[0]!;
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
