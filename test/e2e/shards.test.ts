import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import type { RunRecord } from "../../src/rollout/record.js";
import { PROJECT_ROOT, provision, tempDir, writeFile } from "./helpers.js";

const PIPELINE = join(PROJECT_ROOT, "docs", "pipelines", "local-pipeline.sh");
const BIN = join(PROJECT_ROOT, "bin", "provision.js");
const PIPELINE_TIMEOUT_MS = 240_000;
/** The gate test's rollout: one group per shard, batches of 4 then the rest, one failure tolerated per batch. */
const GATE_POLICY = [
  "--shard-by",
  "group:east,west,central",
  "--batches",
  "4,100%",
  "--max-fail-per-batch",
  "1",
  "--max-fail-total",
  "5",
];

interface MergeJson {
  record: RunRecord;
  verdict: { pass: boolean; lines: string[] };
}

/** The docs' local pipeline (shards as separate processes, a gate between stages), bounded in time. */
function pipeline(
  records: string,
  shards: number,
  stages: number,
  args: string[],
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", [PIPELINE, String(shards), String(stages), ...args], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        NO_COLOR: "1",
        PROVISION: `${process.execPath} ${BIN}`,
        RECORDS: records,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the pipeline did not finish within ${PIPELINE_TIMEOUT_MS} ms:\n${output}`));
    }, PIPELINE_TIMEOUT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const outcomes = (r: RunRecord) =>
  Object.fromEntries(r.hosts.map((h) => [h.host, { status: h.status, changes: h.changes, batch: h.batch }]));

/**
 * `run --shard K/N --stage S` in separate processes against the fleet, joined by `records merge`:
 * the same per-host outcomes and budgets as one run over the same hosts, and a gate that stops
 * the next stage when the shards' failures together exceed a batch's budget.
 */
describe("sharded, staged rollouts (run --shard/--stage, records merge --check)", () => {
  let fleet: Fleet;
  let dir: string;

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 11 });
    dir = tempDir("shards");
    // The fleet's own settings for hosts that are namespaces (see the fleet's group_vars), for every inventory here.
    mkdirSync(join(dir, "group_vars"));
    copyFileSync(join(dirname(fleet.inventoryFile), "group_vars", "fleet.yaml"), join(dir, "group_vars", "all.yaml"));
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const inventory = (name: string, body: string[]) =>
    writeFile(
      dir,
      name,
      [
        "all:",
        "  vars:",
        "    ansible_user: root",
        `    ansible_ssh_private_key_file: ${fleet.clientKeyFile}`,
        ...body,
        "",
      ].join("\n"),
    );
  const address = (n: number) => fleet.hosts[n - 1]!.address;
  // A host nobody answers for: connection refused, so it fails (unreachable) in any run.
  const down = (name: string) => `${name}: { ansible_host: ${address(1)}, ansible_port: 1 }`;
  const mergeJson = async (files: string[]) => {
    const r = await provision(["records", "merge", ...files, "--json", "-o", join(dir, `m-${Date.now()}.json`)]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as MergeJson;
  };

  it("3 shards in 2 stages give the same per-host outcomes and budgets as one run", async () => {
    const inv = inventory("equal.yml", [
      "  hosts:",
      ...[1, 2, 3].map((n) => `    h${n}: { ansible_host: ${address(n)} }`),
      `    ${down("down")}`,
      ...[4, 5].map((n) => `    h${n}: { ansible_host: ${address(n)} }`),
    ]);
    // fs.* sysctls are one kernel's for every fleet host: with fd-limits, which host changes them
    // first would depend on which shard process gets there first. Every other role is per host.
    const common = [
      "--known-hosts",
      fleet.knownHostsFile,
      "--skip-tags",
      "fd-limits",
      "--batches",
      "2,100%",
      "--max-fail-per-batch",
      "1",
      "--max-fail-total",
      "1",
    ];
    const records = join(dir, "equal-records");
    const piped = await pipeline(records, 3, 2, [inv, ...common]);
    expect(piped.code, piped.output).toBe(0);
    expect(piped.output).toContain("PASS");
    const sharded = JSON.parse(readFileSync(join(records, "merged-stage2.json"), "utf8")) as RunRecord;
    expect(sharded.merged).toHaveLength(6);

    // The same hosts from scratch again, in one run.
    const back = await provision(["rollback", inv, "-y", "--known-hosts", fleet.knownHostsFile], {
      timeoutMs: 120_000,
    });
    expect(back.stdout).toMatch(/h\[1:5\] \(5 hosts\)/);
    const stateDir = join(dir, "single");
    const single = await provision(["run", inv, ...common, "-y", "--state-dir", stateDir], { timeoutMs: 120_000 });
    expect(single.code, single.stderr).toBe(1);
    const [recordName] = readdirSync(join(stateDir, "runs"));
    const one = JSON.parse(readFileSync(join(stateDir, "runs", recordName!), "utf8")) as RunRecord;

    expect(outcomes(sharded)).toEqual(outcomes(one));
    expect(outcomes(sharded).down).toEqual({ status: "unreachable", changes: 0, batch: 2 });
    expect(outcomes(sharded).h1).toMatchObject({ status: "changed", batch: 1 });
    expect(one.hosts.map((h) => h.host).sort()).toEqual(sharded.hosts.map((h) => h.host).sort());
    const [fromShards, fromOne] = await Promise.all([
      mergeJson([join(records, "merged-stage2.json")]),
      mergeJson([join(stateDir, "runs", recordName!)]),
    ]);
    expect(fromShards.verdict).toEqual(fromOne.verdict);
    expect(fromOne.verdict.lines).toEqual([
      "batch 1: 0 of 2 hosts failed, 1 tolerated (max_fail_per_batch 1)",
      "batch 2: 1 of 4 hosts failed, 1 tolerated (max_fail_per_batch 1)",
      "in all: 1 of 6 hosts failed so far, 1 tolerated (max_fail_total 1)",
    ]);
  });

  it("a batch whose failures across shards exceed its budget stops the next stage, though no shard exceeded it alone", async () => {
    const inv = inventory("gate.yml", [
      "  children:",
      "    east:",
      "      hosts:",
      `        h6: { ansible_host: ${address(6)} }`,
      `        ${down("down1")}`,
      "    west:",
      "      hosts:",
      `        h7: { ansible_host: ${address(7)} }`,
      `        ${down("down2")}`,
      "    central:",
      "      hosts:",
      `        h8: { ansible_host: ${address(8)} }`,
    ]);
    const records = join(dir, "gate-records");
    const piped = await pipeline(records, 3, 2, [inv, "--known-hosts", fleet.knownHostsFile, ...GATE_POLICY]);
    expect(piped.code, piped.output).toBe(1);
    expect(piped.output).toContain("batch 1: 2 of 4 hosts failed, 1 tolerated (max_fail_per_batch 1): OVER BUDGET");
    expect(piped.output).toContain("STOP");
    expect(piped.output).toContain("gate after stage 1: STOP");
    // Each shard alone stayed within the budget, so each ran its whole part of batch 1.
    for (const k of [1, 2]) {
      const log = readFileSync(join(records, `stage1-shard${k}.log`), "utf8");
      expect(log).not.toContain("STOPPED");
    }
    expect(readFileSync(join(records, "stage1-shard3.log"), "utf8")).toContain(
      "No host of the selection is in this part",
    );
    expect(existsSync(join(records, "stage2-shard1"))).toBe(false);
    // Batch 2's host was never touched: its plan still has every change.
    const h8 = await provision(["plan", inv, "--known-hosts", fleet.knownHostsFile, "--limit", "h8"]);
    expect(h8.code, h8.stderr).toBe(2);
    const h6 = await provision(["plan", inv, "--known-hosts", fleet.knownHostsFile, "--limit", "h6"]);
    expect(h6.code, h6.stderr).toBe(0);
  });

  it("a controller killed between batches leaves a record of what it did; --resume runs only the rest", async () => {
    const inv = inventory("killed.yml", [
      "  hosts:",
      ...[9, 10, 11].map((n) => `    h${n}: { ansible_host: ${address(n)} }`),
    ]);
    const stateDir = join(dir, "killed");
    const args = ["run", inv, "--known-hosts", fleet.knownHostsFile, "-y", "--batches", "1", "--state-dir", stateDir];
    const child = spawn(process.execPath, [BIN, ...args, "--pause", "120"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
    try {
      // Batch 1 is done when the pause before batch 2 starts.
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no pause within 90 s:\n${err}`)), 90_000);
        child.stderr.on("data", () => {
          if (err.includes("pausing 120 s")) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const runs = join(stateDir, "runs");
    const [name] = readdirSync(runs);
    const record = JSON.parse(readFileSync(join(runs, name!), "utf8")) as RunRecord;
    expect(outcomes(record)).toEqual({
      h9: { status: "changed", changes: expect.any(Number) as number, batch: 1 },
      h10: { status: "not-reached", changes: 0, batch: 2 },
      h11: { status: "not-reached", changes: 0, batch: 3 },
    });
    expect(record.stopped).toMatch(/ended before it finished .*after batch 1 of 3/);
    const resumed = await provision([...args, "--resume"], { timeoutMs: 120_000 });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain("2 hosts failed or were not reached (h10, h11)");
    expect(resumed.stdout).toMatch(/h10, h11 \(2 hosts\): changed/);
  });

  it("shards without stages are refused for a rollout of several batches; a shard's or an unfinished pipeline's record is not resumed", async () => {
    const inv = join(dir, "equal.yml");
    const unstaged = await provision([
      "run",
      inv,
      "--known-hosts",
      fleet.knownHostsFile,
      "-y",
      "--shard",
      "1/3",
      "--batches",
      "2,100%",
    ]);
    expect(unstaged.code).toBe(1);
    expect(unstaged.stderr).toContain("--shard with a rollout of 2 batches needs --stage K");
    const resumeAShard = await provision(["run", inv, "-y", "--shard", "1/3", "--stage", "1", "--resume"]);
    expect(resumeAShard.code).toBe(1);
    expect(resumeAShard.stderr).toContain("--resume retries one record's hosts; with shards, merge the records");
    const records = join(dir, "gate-records");
    const shardRecord = join(records, "stage1-shard1", "runs", readdirSync(join(records, "stage1-shard1", "runs"))[0]!);
    const resumeShard = await provision([
      "run",
      inv,
      "--known-hosts",
      fleet.knownHostsFile,
      "-y",
      "--resume",
      shardRecord,
    ]);
    expect(resumeShard.code).toBe(1);
    expect(resumeShard.stderr).toContain("this record holds shard 1/3 only: merge every shard's record");
    const resumeStage1 = await provision([
      "run",
      inv,
      "--known-hosts",
      fleet.knownHostsFile,
      "-y",
      "--resume",
      join(records, "merged-stage1.json"),
    ]);
    expect(resumeStage1.code).toBe(1);
    expect(resumeStage1.stderr).toContain(
      "this record holds batches 1 to 1 of 2: run the remaining stages (--stage 2 …)",
    );
    // A stage after a gate that stopped: refused before any host is contacted.
    const afterStop = await provision([
      "run",
      join(dir, "gate.yml"),
      "--known-hosts",
      fleet.knownHostsFile,
      "-y",
      ...GATE_POLICY,
      "--shard",
      "3/3",
      "--stage",
      "2",
      "--after",
      join(records, "merged-stage1.json"),
    ]);
    expect(afterStop.code).toBe(1);
    expect(afterStop.stderr).toMatch(
      /stage 2 must not start after .*merged-stage1\.json:\n {2}- the gate after stage 1 did not pass: batch 1: 2 of 4 hosts failed/,
    );
    expect(afterStop.stderr).toContain("nothing was sent to any host");
  });

  it("a gate refuses records that are not one run's: a missing shard, another selection", async () => {
    const records = join(dir, "gate-records");
    const part = (k: number) => {
      const runs = join(records, `stage1-shard${k}`, "runs");
      return join(runs, readdirSync(runs)[0]!);
    };
    const missing = await provision(["records", "merge", part(1), part(2), "--check"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("stage 1: no record of shard 3/3");
    const other = await mergeJson([join(dir, "equal-records", "merged-stage2.json")]);
    const mixed = await provision(["records", "merge", part(1), part(2), part(3), other.record.merged![0]!.file]);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/another selection/);
  });
});
