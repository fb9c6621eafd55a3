import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { checkFleetPrerequisites, startFleet, type Fleet } from "../test/fleet/fleet.js";
import {
  ansibleWorkFromPlan,
  BUSY_PERCENT,
  busyPercent,
  evaluateTargets,
  formatSizeTable,
  formatTargets,
  hostsWithChanges,
  median,
  OptionError,
  parseOptions,
  planDifferences,
  resultFileName,
  resultJson,
  snapshotsFromPlan,
  type AnsibleWork,
  type BenchOptions,
  type BenchResult,
  type MemoryResult,
  type PlanJson,
  type SizeResult,
  type Timing,
  inventoryTarget,
  type InventoryLoadResult,
  type Floor,
  type OpenSshPath,
  type RouteResolutionResult,
  formatRouteResolution,
  routeResolutionTarget,
  USAGE,
  checkStatusOutput,
  formatStatusTable,
  spreadOf,
  statusTarget,
  StatusOutputError,
  type StatusReadout,
  type StatusResult,
} from "./benchCore.js";
import { benchInventoryLoad, benchRouteResolution, INVENTORY_TARGETS, ROUTE_TARGETS } from "./benchInventory.js";
import { benchScale } from "./benchScale.js";
import { formatScale, scaleTargets } from "./benchScaleCore.js";

/**
 * `npm run bench`: provision — over ssh2 and over the OpenSSH client — against Ansible and against
 * the floor (one `ssh host true` per host, all at once) on local fleets of real sshd hosts, side by
 * side in one run. Prints a table per fleet size and PASS/MISS per target, and writes the results
 * as JSON.
 */
const ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "provision.js");
const PLAYBOOK = join(ROOT, "bench", "ansible", "site.yml");
const RESULTS_DIR = join(ROOT, "bench", "results");
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const TIME_BIN = "/usr/bin/time";
const PROVISION_TIMEOUT_MS = 300_000;
const ANSIBLE_TIMEOUT_MS = 900_000;
const FLOOR_TIMEOUT_MS = 60_000;
const APT_TIMEOUT_MS = 600_000;
/** Samples of the floor and of the no-op run, each: an odd count, so the median is one of them. */
const SAMPLES = 3;
const PROVISION_DEFAULT_FORKS = 50;

function log(text: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

class BenchError extends Error {}

// ---------------------------------------------------------------------------------------------
// Processes: every one bounded by a timeout; output goes to files so a daemonised child (ssh's
// ControlPersist master) can't hold a pipe open past the end of the measured command.

interface Spawned extends Timing {
  stdout: string;
  stderr: string;
}

function runTimed(
  file: string,
  args: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; logDir: string; name: string },
): Promise<Spawned> {
  const outFile = join(opts.logDir, `${opts.name}.out`);
  const errFile = join(opts.logDir, `${opts.name}.err`);
  const out = openSync(outFile, "w");
  const err = openSync(errFile, "w");
  return new Promise((resolvePromise) => {
    const started = process.hrtime.bigint();
    // Its own process group, so a timeout ends the command and its children, and nothing else.
    const child = spawn(file, args, {
      cwd: ROOT,
      env: opts.env ?? process.env,
      stdio: ["ignore", out, err],
      detached: true,
    });
    closeSync(out);
    closeSync(err);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, opts.timeoutMs);
    const finish = (code: number) => {
      clearTimeout(timer);
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      const stderr = readFileSync(errFile, "utf8") + (timedOut ? `\ntimed out after ${opts.timeoutMs} ms` : "");
      resolvePromise({ wallMs, exitCode: timedOut ? 124 : code, stdout: readFileSync(outFile, "utf8"), stderr });
    };
    child.on("error", (e) => {
      writeFileSync(errFile, `${e.message}\n`, { flag: "a" });
      finish(127);
    });
    child.on("exit", (code, signal) => finish(code ?? (signal ? 128 : 1)));
  });
}

/** provision itself, under /usr/bin/time for its peak RSS. */
async function provision(args: string[], logDir: string, name: string): Promise<Spawned> {
  const rssFile = join(logDir, `${name}.rss`);
  const r = await runTimed(TIME_BIN, ["-f", "%M", "-o", rssFile, process.execPath, BIN, ...args], {
    timeoutMs: PROVISION_TIMEOUT_MS,
    logDir,
    name,
  });
  const rss = existsSync(rssFile) ? Number(readFileSync(rssFile, "utf8").trim().split("\n").pop()) : NaN;
  // The last summary line: `run` prints the plan's ("Plan: …") before its own ("Run: …").
  const summary = r.stdout
    .split("\n")
    .filter((l) => /^(Run|Plan|Rollback):/.test(l))
    .pop();
  return { ...r, ...(Number.isFinite(rss) ? { peakRssKb: rss } : {}), ...(summary ? { summary } : {}) };
}

function timing(s: Spawned): Timing {
  return {
    wallMs: Math.round(s.wallMs),
    exitCode: s.exitCode,
    ...(s.peakRssKb !== undefined ? { peakRssKb: s.peakRssKb } : {}),
    ...(s.summary ? { summary: s.summary } : {}),
  };
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** What a failed run said about its failed hosts (one line each, the first 12), else the end of its output. */
function failureLines(r: Spawned): string {
  const perHost = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /^\S+: (FAILED|UNREACHABLE)\b/.test(l));
  const shown =
    perHost.length > 0
      ? [...perHost.slice(0, 12), ...(perHost.length > 12 ? [`… and ${perHost.length - 12} more`] : [])].join("\n")
      : tail(r.stdout);
  return `${shown}\n${tail(r.stderr, 5)}`;
}

/**
 * A first run must change every host. When it did not, the failures are logged, the run's logs are
 * kept (`keep.logs`), and one untimed run finishes the work, so the no-op samples that follow
 * time a real no-op rather than the first run's leftovers.
 */
async function checkFirstRun(
  first: Spawned,
  hosts: number,
  runArgs: string[],
  dir: string,
  label: string,
  keep: { logs: boolean },
): Promise<void> {
  if (first.exitCode === 0 && new RegExp(`^Run: ${hosts} changed`).test(first.summary ?? "")) return;
  keep.logs = true;
  log(
    `provision first run (${label}): exit ${first.exitCode}, ${first.summary ?? "no summary"}\n${failureLines(first)}`,
  );
  const again = await provision(runArgs, dir, `provision-${label}-finish`);
  log(
    `an untimed run (${label}) to finish the first run's work before the no-op samples: exit ${again.exitCode}, ${again.summary ?? "no summary"}`,
  );
}

function checkNoop(noop: Spawned, label: string, keep: { logs: boolean }): void {
  if (noop.exitCode === 0 && /^Run: 0 changed/.test(noop.summary ?? "")) return;
  keep.logs = true;
  log(`provision no-op run (${label}): exit ${noop.exitCode}, ${noop.summary ?? "no summary"}\n${failureLines(noop)}`);
}

async function planJson(fleet: Fleet, logDir: string, name: string, allowed: number[]): Promise<PlanJson> {
  const r = await provision(
    ["plan", fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile, "--json"],
    logDir,
    name,
  );
  if (!allowed.includes(r.exitCode))
    throw new BenchError(`provision plan (${name}) exited ${r.exitCode}:\n${tail(r.stderr)}\n${tail(r.stdout)}`);
  return JSON.parse(r.stdout) as PlanJson;
}

// ---------------------------------------------------------------------------------------------
// Others' work on the machine skews every time measured here: before each measurement, wait (a
// bounded while) for the machine to be quiet, and record how busy it was.

const QUIET_WAIT_MS = 60_000;

async function cpuBusyPercent(sampleMs = 1000): Promise<number> {
  const cpuLine = () => readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const before = cpuLine();
  await new Promise((r) => setTimeout(r, sampleMs));
  return busyPercent(before, cpuLine());
}

async function quietBefore(what: string, record: Record<string, number>): Promise<void> {
  const deadline = Date.now() + QUIET_WAIT_MS;
  let busy = await cpuBusyPercent();
  if (busy > BUSY_PERCENT)
    log(`the machine is ${busy}% busy with other work: waiting up to ${QUIET_WAIT_MS / 1000} s before ${what}`);
  while (busy > BUSY_PERCENT && Date.now() < deadline) busy = await cpuBusyPercent();
  record[what] = busy;
}

// ---------------------------------------------------------------------------------------------
// The floor: one plain `ssh host true` per host, all in parallel, with the fleet's key and known_hosts.

function sshArgs(fleet: Fleet): string[] {
  return [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${fleet.knownHostsFile}`,
    "-o",
    "IdentitiesOnly=yes",
    "-i",
    fleet.clientKeyFile,
    "-o",
    "ConnectTimeout=20",
  ];
}

function sshTrue(fleet: Fleet, address: string): Promise<number> {
  return new Promise((resolvePromise) => {
    const child = spawn("ssh", [...sshArgs(fleet), "-l", "root", address, "true"], {
      stdio: "ignore",
      env: { PATH: SYSTEM_PATH, HOME: process.env.HOME ?? "/root" },
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), FLOOR_TIMEOUT_MS);
    child.on("error", () => resolvePromise(127));
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolvePromise(code ?? 128);
    });
  });
}

async function floorSample(fleet: Fleet): Promise<{ ms: number; failures: number }> {
  const started = process.hrtime.bigint();
  const codes = await Promise.all(fleet.hosts.map((h) => sshTrue(fleet, h.address)));
  return {
    ms: Math.round(Number(process.hrtime.bigint() - started) / 1e6),
    failures: codes.filter((c) => c !== 0).length,
  };
}

/**
 * The floor and the no-op run, taken in turns (floor, no-op, floor, no-op, …) so both see the
 * same machine; each is the median of its samples.
 */
async function floorAndNoop(
  fleet: Fleet,
  runArgs: string[],
  dir: string,
  name: string,
): Promise<{ floor: Floor; noop: Spawned; noopSamplesMs: number[] }> {
  const floorMs: number[] = [];
  const noops: Spawned[] = [];
  let failures = 0;
  for (let i = 0; i < SAMPLES; i++) {
    const f = await floorSample(fleet);
    floorMs.push(f.ms);
    failures += f.failures;
    noops.push(await provision(runArgs, dir, `${name}-${i + 1}`));
  }
  const noopMs = noops.map((n) => n.wallMs);
  const noop = noops.find((n) => n.wallMs === median(noopMs)) ?? noops[0]!;
  return {
    floor: { wallMs: median(floorMs), samplesMs: floorMs, failures },
    noop,
    noopSamplesMs: noopMs.map(Math.round),
  };
}

// ---------------------------------------------------------------------------------------------
// Ansible: Debian's ansible-core, installed with apt-get when missing.

interface AnsibleAvailability {
  version: string | null;
  /** Why the Ansible columns are empty, when they are. */
  missing?: string;
}

function ansibleVersion(): string | null {
  const r = spawnSync("ansible-playbook", ["--version"], {
    encoding: "utf8",
    env: { PATH: SYSTEM_PATH },
    timeout: 60_000,
  });
  if (r.status !== 0) return null;
  return r.stdout.split("\n")[0]?.trim() ?? null;
}

function ensureAnsible(wanted: boolean): AnsibleAvailability {
  if (!wanted) return { version: null, missing: "--no-ansible (or BENCH_ANSIBLE=0) was given" };
  const found = ansibleVersion();
  if (found) return { version: found };
  if (!existsSync("/usr/bin/apt-get"))
    return {
      version: null,
      missing: "ansible-playbook is not installed and there is no apt-get to install Debian's ansible-core with",
    };
  log("ansible-playbook not found: apt-get update, then apt-get install ansible-core");
  const env = { PATH: SYSTEM_PATH, DEBIAN_FRONTEND: "noninteractive", LANG: "C" };
  const update = spawnSync("apt-get", ["update", "-q"], { encoding: "utf8", env, timeout: APT_TIMEOUT_MS });
  if (update.status !== 0)
    return {
      version: null,
      missing: `ansible-playbook is not installed and \`apt-get update\` failed (exit ${update.status}): ${tail(update.stderr || update.stdout, 5)}`,
    };
  const install = spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", "ansible-core"], {
    encoding: "utf8",
    env,
    timeout: APT_TIMEOUT_MS,
  });
  const version = ansibleVersion();
  if (install.status !== 0 || !version) {
    return {
      version: null,
      missing: `ansible-playbook is not installed and \`apt-get install ansible-core\` failed (exit ${install.status}): ${tail(install.stderr || install.stdout, 5)}`,
    };
  }
  log(`installed ${version}`);
  return { version };
}

/** Writes the extra vars and the files directory the Ansible playbook reads. */
function writeAnsibleWork(work: AnsibleWork, dir: string): { varsFile: string; filesDir: string } {
  const filesDir = join(dir, "files");
  mkdirSync(filesDir, { recursive: true });
  for (const [sha, content] of Object.entries(work.contents)) writeFileSync(join(filesDir, sha), content);
  const varsFile = join(dir, "work.json");
  writeFileSync(varsFile, JSON.stringify(work.vars));
  return { varsFile, filesDir };
}

async function ansible(
  fleet: Fleet,
  mode: "default" | "tuned",
  work: { varsFile: string; filesDir: string },
  dir: string,
): Promise<Spawned> {
  const tuned = mode === "tuned";
  const env: NodeJS.ProcessEnv = {
    PATH: SYSTEM_PATH,
    HOME: process.env.HOME ?? "/root",
    LANG: "C.UTF-8",
    ANSIBLE_CONFIG: join(dir, "none.cfg"),
    // Host keys are checked against the fleet's known_hosts (passed below), never skipped.
    ANSIBLE_HOST_KEY_CHECKING: "True",
    ANSIBLE_FORKS: String(tuned ? fleet.hosts.length : 5),
    ANSIBLE_PIPELINING: tuned ? "True" : "False",
    ANSIBLE_RETRY_FILES_ENABLED: "False",
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_LOCAL_TEMP: join(dir, `local-${mode}`),
    // Each run gets its own ControlPersist sockets: the tuned run must not reuse the default run's masters.
    ANSIBLE_SSH_CONTROL_PATH_DIR: join(dir, `cp-${mode}`),
    ...(tuned ? { ANSIBLE_PYTHON_INTERPRETER: "/usr/bin/python3" } : {}),
  };
  const sshCommon = `-o StrictHostKeyChecking=yes -o UserKnownHostsFile=${fleet.knownHostsFile}`;
  const args = [
    "-i",
    fleet.inventoryFile,
    PLAYBOOK,
    "-e",
    `@${work.varsFile}`,
    "-e",
    `bench_files_dir=${work.filesDir}`,
    "-e",
    `ansible_ssh_common_args='${sshCommon}'`,
  ];
  return runTimed("ansible-playbook", args, {
    timeoutMs: ANSIBLE_TIMEOUT_MS,
    env,
    logDir: dir,
    name: `ansible-${mode}`,
  });
}

function ansibleSummary(stdout: string): string | undefined {
  const recap = stdout.split("\n").filter((l) => /\bok=\d+/.test(l));
  if (recap.length === 0) return undefined;
  const sum = (field: string) =>
    recap.reduce((n, l) => n + Number(new RegExp(`\\b${field}=(\\d+)`).exec(l)?.[1] ?? 0), 0);
  return `PLAY RECAP: ${recap.length} hosts, ok=${sum("ok")} changed=${sum("changed")} unreachable=${sum("unreachable")} failed=${sum("failed")}`;
}

// ---------------------------------------------------------------------------------------------
// Putting hosts back to fresh: provision's own rollback, fed the snapshot the fresh plan would
// have written when the hosts were changed by Ansible (which keeps no snapshot).

async function rollback(fleet: Fleet, logDir: string, name: string): Promise<void> {
  const r = await provision(
    ["rollback", fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile, "--yes"],
    logDir,
    name,
  );
  if (r.exitCode !== 0)
    throw new BenchError(`provision rollback (${name}) exited ${r.exitCode}:\n${tail(r.stderr)}\n${tail(r.stdout)}`);
}

async function placeSnapshots(fleet: Fleet, snapshots: Record<string, string>): Promise<void> {
  for (const h of fleet.hosts) {
    const r = await fleet.exec(h.name, "mkdir -p /etc/provision && umask 077 && cat > /etc/provision/snapshot.json", {
      input: snapshots[h.name]!,
      timeoutMs: 20_000,
    });
    if (r.code !== 0) throw new BenchError(`${h.name}: writing the snapshot failed: ${r.stderr.trim()}`);
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * `provision status --json` on the fleet, SAMPLES times in turns with floor samples (floor,
 * status, floor, status, …), with the provision runs' forks so that every host is read at once.
 * Each sample must exit 0 or 3 and list every host with no error, else the bench stops.
 */
async function floorAndStatus(
  fleet: Fleet,
  dir: string,
  background: Record<string, number>,
  keep: { logs: boolean },
): Promise<StatusResult> {
  const hosts = fleet.hosts.length;
  const forks = Math.min(PROVISION_DEFAULT_FORKS, hosts);
  const names = fleet.hosts.map((h) => h.name);
  const args = [
    "status",
    fleet.inventoryFile,
    "--known-hosts",
    fleet.knownHostsFile,
    "--forks",
    String(forks),
    "--json",
  ];
  await quietBefore("floor and status", background);
  log(`${hosts} hosts: floor and provision status --forks ${forks} --json, ${SAMPLES} times each, in turns`);
  const floorMs: number[] = [];
  let failures = 0;
  const samples: Array<{ run: Spawned; readout: StatusReadout }> = [];
  for (let i = 0; i < SAMPLES; i++) {
    const f = await floorSample(fleet);
    floorMs.push(f.ms);
    failures += f.failures;
    const name = `provision-status-${i + 1}`;
    const run = await provision(args, dir, name);
    let readout: StatusReadout;
    try {
      readout = checkStatusOutput(run.stdout, run.exitCode, names);
    } catch (err) {
      if (!(err instanceof StatusOutputError)) throw err;
      keep.logs = true;
      throw new BenchError(`provision status (${name}) ${err.message}:\n${tail(run.stderr)}\n${tail(run.stdout, 5)}`);
    }
    samples.push({ run: { ...run, summary: readout.summary }, readout });
  }
  const statusMs = samples.map((s) => s.run.wallMs);
  const mid = samples.find((s) => s.run.wallMs === median(statusMs)) ?? samples[0]!;
  const floor: Floor = { wallMs: median(floorMs), samplesMs: floorMs, failures };
  log(
    `${hosts} hosts: status ${statusMs.map((ms) => (ms / 1000).toFixed(2)).join(", ")} s; floor ${floorMs.map((ms) => (ms / 1000).toFixed(2)).join(", ")} s`,
  );
  return {
    hosts,
    forks,
    status: timing(mid.run),
    samplesMs: statusMs.map(Math.round),
    scriptSeconds: spreadOf(mid.readout.scriptSeconds),
    floor,
    backgroundCpuPercent: background,
  };
}

/** With --status-only: a fleet, status against the floor, nothing else. */
async function benchStatusOnly(hosts: number): Promise<StatusResult> {
  const dir = mkdtempSync(join(tmpdir(), `provision-bench-status-${hosts}-`));
  const keep = { logs: false };
  log(`${hosts} hosts: starting the fleet`);
  const fleet = await startFleet({ hosts });
  try {
    return await floorAndStatus(fleet, dir, {}, keep);
  } finally {
    log(`${hosts} hosts: stopping the fleet`);
    await fleet.stop();
    if (keep.logs) log(`${hosts} hosts: a provision run failed: its output (*.out, *.err) is kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The OpenSSH-client path on a fleet just rolled back to fresh: a first run, then no-op runs in
 * turns with floor samples, then a rollback to fresh again (checked against the fresh plan).
 */
async function benchOpenSsh(
  fleet: Fleet,
  common: string[],
  fresh: PlanJson,
  dir: string,
  background: Record<string, number>,
  keep: { logs: boolean },
): Promise<{ path: OpenSshPath; restored: string[] }> {
  const hosts = fleet.hosts.length;
  const runArgs = ["run", ...common, "--ssh-client", "openssh", "--yes"];
  await quietBefore("provision first run (openssh)", background);
  log(`${hosts} hosts: provision run --ssh-client openssh --yes (first run)`);
  const first = await provision(runArgs, dir, "provision-openssh-first");
  await checkFirstRun(first, hosts, runArgs, dir, "openssh", keep);
  await quietBefore("floor and no-op (openssh)", background);
  log(
    `${hosts} hosts: floor and provision run --ssh-client openssh --yes again (no-op), ${SAMPLES} times each, in turns`,
  );
  const { floor, noop, noopSamplesMs } = await floorAndNoop(fleet, runArgs, dir, "provision-openssh-noop");
  checkNoop(noop, "openssh", keep);
  await rollback(fleet, dir, "rollback-openssh");
  const differ = planDifferences(fresh, await planJson(fleet, dir, "plan-after-openssh-rollback", [2]));
  if (differ.length > 0) log(`rollback after the OpenSSH-client runs did not restore ${differ.join(", ")} to fresh`);
  return { path: { firstRun: timing(first), noop: timing(noop), noopSamplesMs, floor }, restored: differ };
}

async function benchSize(
  hosts: number,
  ansibleAvailable: AnsibleAvailability,
  withOpenSsh: boolean,
): Promise<{ size: SizeResult; status: StatusResult }> {
  const dir = mkdtempSync(join(tmpdir(), `provision-bench-${hosts}-`));
  /** Set when a measured provision run failed: its output stays in dir for a look. */
  const keep = { logs: false };
  log(`${hosts} hosts: starting the fleet`);
  const fleet = await startFleet({ hosts });
  try {
    const stateDir = join(dir, "state");
    const common = [fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile, "--state-dir", stateDir];
    const ssh2Args = ["run", ...common, "--ssh-client", "ssh2", "--yes"];
    const fresh = await planJson(fleet, dir, "plan-fresh", [2]);
    const work = ansibleWorkFromPlan(fresh);
    const snapshots = snapshotsFromPlan(fresh);
    const background: Record<string, number> = {};
    await quietBefore("provision first run (ssh2)", background);
    log(`${hosts} hosts: provision run --ssh-client ssh2 --yes (first run)`);
    const first = await provision(ssh2Args, dir, "provision-first");
    await checkFirstRun(first, hosts, ssh2Args, dir, "ssh2", keep);
    await quietBefore("floor and no-op (ssh2)", background);
    log(
      `${hosts} hosts: floor (${hosts} parallel \`ssh host true\`) and provision run --ssh-client ssh2 --yes again (no-op), ${SAMPLES} times each, in turns`,
    );
    const { floor: floorResult, noop, noopSamplesMs } = await floorAndNoop(fleet, ssh2Args, dir, "provision-noop");
    checkNoop(noop, "ssh2", keep);
    const status = await floorAndStatus(fleet, dir, {}, keep);

    await rollback(fleet, dir, "rollback-provision");
    const afterRollback = planDifferences(fresh, await planJson(fleet, dir, "plan-after-rollback", [2]));
    if (afterRollback.length > 0) log(`rollback did not restore ${afterRollback.join(", ")} to fresh`);

    const result: SizeResult = {
      hosts,
      provision: {
        firstRun: timing(first),
        noop: timing(noop),
        noopSamplesMs,
        forks: Math.min(PROVISION_DEFAULT_FORKS, hosts),
      },
      ansible: { default: null, tuned: null },
      floor: floorResult,
      checks: {
        ansibleLeftNothingToDo: {},
        rollbackRestoredFresh: afterRollback.length === 0,
        opensshRollbackRestoredFresh: null,
        resetBeforeTuned: null,
      },
      work: work.counts,
      backgroundCpuPercent: background,
    };
    // The fleet must be fresh before each path's first run and before Ansible: a later step is skipped, saying why, when it is not.
    let notFresh: string | null =
      afterRollback.length > 0
        ? `the fleet could not be put back to fresh after the ssh2 runs (${afterRollback.join(", ")} differ)`
        : null;
    if (!withOpenSsh) result.provision.opensshSkipped = "--no-openssh (or BENCH_OPENSSH=0) was given";
    else if (notFresh !== null) result.provision.opensshSkipped = notFresh;
    else {
      const { path, restored } = await benchOpenSsh(fleet, common, fresh, dir, background, keep);
      result.provision.openssh = path;
      result.checks.opensshRollbackRestoredFresh = restored.length === 0;
      if (restored.length > 0)
        notFresh = `the fleet could not be put back to fresh after the OpenSSH-client runs (${restored.join(", ")} differ)`;
    }
    if (!ansibleAvailable.version) {
      result.ansible.skipped = ansibleAvailable.missing;
      return { size: result, status };
    }
    if (notFresh !== null) {
      result.ansible.skipped = notFresh;
      return { size: result, status };
    }
    const files = writeAnsibleWork(work, dir);
    writeFileSync(join(dir, "none.cfg"), "# empty: every setting comes from the environment\n");
    for (const mode of ["default", "tuned"] as const) {
      if (mode === "tuned") {
        await placeSnapshots(fleet, snapshots);
        await rollback(fleet, dir, "rollback-after-ansible");
        const differ = planDifferences(fresh, await planJson(fleet, dir, "plan-before-tuned", [2]));
        result.checks.resetBeforeTuned = differ.length === 0;
        if (differ.length > 0) {
          result.ansible.skipped = `after the default Ansible run, ${differ.join(", ")} could not be put back to fresh`;
          break;
        }
      }
      await quietBefore(`Ansible ${mode}`, background);
      log(`${hosts} hosts: ansible-playbook (${mode})`);
      const r = await ansible(fleet, mode, files, dir);
      const summary = ansibleSummary(r.stdout);
      result.ansible[mode] = { ...timing(r), ...(summary ? { summary } : {}) };
      if (r.exitCode !== 0)
        log(`ansible-playbook (${mode}) exited ${r.exitCode}:\n${tail(r.stdout, 25)}\n${tail(r.stderr)}`);
      // Equal work, checked: after Ansible, provision's plan must find nothing left to do.
      const left = hostsWithChanges(await planJson(fleet, dir, `plan-after-ansible-${mode}`, [0, 2]));
      result.checks.ansibleLeftNothingToDo[mode] = left.length === 0;
      if (left.length > 0) log(`after Ansible (${mode}), provision still has changes on ${left.join(", ")}`);
    }
    return { size: result, status };
  } finally {
    log(`${hosts} hosts: stopping the fleet`);
    await fleet.stop();
    if (keep.logs) log(`${hosts} hosts: a provision run failed: its output (*.out, *.err) is kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

async function benchMemory(hosts: number): Promise<MemoryResult> {
  const dir = mkdtempSync(join(tmpdir(), `provision-bench-mem-${hosts}-`));
  log(`${hosts} hosts (memory): starting the fleet`);
  const fleet = await startFleet({ hosts });
  try {
    await quietBefore("provision memory run", {});
    log(`${hosts} hosts: provision run --ssh-client ssh2 --yes (first run, peak RSS)`);
    const r = await provision(
      [
        "run",
        fleet.inventoryFile,
        "--known-hosts",
        fleet.knownHostsFile,
        "--state-dir",
        join(dir, "state"),
        "--ssh-client",
        "ssh2",
        "--yes",
      ],
      dir,
      "provision-memory",
    );
    if (r.exitCode !== 0)
      log(`provision run on ${hosts} hosts exited ${r.exitCode}:\n${tail(r.stderr)}\n${tail(r.stdout)}`);
    return { hosts, run: timing(r) };
  } finally {
    log(`${hosts} hosts: stopping the fleet`);
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "1.26 4.46 4.82": the 1, 5 and 15 minute load averages (on 2 cores, anything near 2 or above skews the times). */
function loadAverages(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
}

function machine(ansibleAvailable: AnsibleAvailability, loadAtStart: string): BenchResult["machine"] {
  const ssh = spawnSync("ssh", ["-V"], { encoding: "utf8", env: { PATH: SYSTEM_PATH } });
  return {
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadAverages(),
    cpus: cpus().length,
    memoryMb: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    node: process.version,
    openssh: (ssh.stderr || ssh.stdout).trim(),
    ansible: ansibleAvailable.version,
  };
}

function prerequisites(): string[] {
  const problems = checkFleetPrerequisites();
  if (!existsSync(TIME_BIN))
    problems.push(`${TIME_BIN} not found: install Debian's \`time\` package (it measures provision's peak RSS)`);
  if (!existsSync(join(ROOT, "dist", "src", "cli.js"))) problems.push("provision is not built: run `npm run build`");
  return problems;
}

function inventoryPrerequisites(): string[] {
  const problems: string[] = [];
  if (!existsSync(TIME_BIN))
    problems.push(`${TIME_BIN} not found: install Debian's \`time\` package (it measures provision's peak RSS)`);
  if (!existsSync(join(ROOT, "dist", "src", "cli.js"))) problems.push("provision is not built: run `npm run build`");
  return problems;
}

/** Three runs of `provision lint` on the generated inventory; the median by wall time is reported. */
async function benchInventory(hosts: number): Promise<InventoryLoadResult> {
  const dir = mkdtempSync(join(tmpdir(), "provision-bench-inventory-"));
  try {
    const runs = [];
    for (let i = 0; i < SAMPLES; i++) {
      await quietBefore(`inventory load ${i + 1}/${SAMPLES}`, {});
      const r = await benchInventoryLoad(BIN, TIME_BIN, dir, hosts, PROVISION_TIMEOUT_MS);
      log(
        `${hosts}-host inventory: ${(r.wallMs / 1000).toFixed(2)} s, peak RSS ${r.peakRssKb === undefined ? "-" : `${(r.peakRssKb / 1024).toFixed(1)} MB`}, exit ${r.exitCode}: ${r.summary}`,
      );
      runs.push(r);
    }
    runs.sort((a, b) => a.wallMs - b.wallMs);
    const mid = runs[Math.floor(runs.length / 2)]!;
    const worstRss = Math.max(...runs.map((r) => r.peakRssKb ?? Infinity));
    const result = {
      hosts,
      wallMs: mid.wallMs,
      peakRssKb: Number.isFinite(worstRss) ? worstRss : undefined,
      exitCode: runs.every((r) => r.exitCode === 0) ? 0 : runs.find((r) => r.exitCode !== 0)!.exitCode,
    };
    process.stdout.write(
      `\n${hosts}-host INI inventory, load + resolve (provision lint, median of ${SAMPLES}): ${(result.wallMs / 1000).toFixed(2)} s, peak RSS ${result.peakRssKb === undefined ? "-" : `${(result.peakRssKb / 1024).toFixed(1)} MB`} (largest)\n`,
    );
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** resolveRoutes for the generated inventory's hosts through a generated ssh_config, in this process; the median of SAMPLES runs. */
async function benchRoutes(hosts: number): Promise<RouteResolutionResult> {
  const dir = mkdtempSync(join(tmpdir(), "provision-bench-routes-"));
  try {
    const result = await benchRouteResolution(dir, hosts, SAMPLES, (i) =>
      quietBefore(`route resolution ${i + 1}/${SAMPLES}`, {}),
    );
    process.stdout.write(formatRouteResolution(result));
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  let opts: BenchOptions;
  try {
    opts = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    process.stderr.write(`bench: ${err.message}\n`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const problems = opts.inventoryOnly ? inventoryPrerequisites() : prerequisites();
  if (opts.scaleSizes.length > 0 && !opts.inventoryOnly && !existsSync("/usr/bin/unshare"))
    problems.push(
      "/usr/bin/unshare not found: install util-linux (the simulated fleet runs in its own network namespace)",
    );
  if (problems.length > 0) {
    process.stderr.write(`bench: cannot run:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
    return 1;
  }
  const startedAt = new Date();
  const loadAtStart = loadAverages();
  // --status-only: per size, a fleet for status and the floor; no runs, no Ansible, no memory or inventory part.
  const fullSizes = !opts.inventoryOnly && !opts.statusOnly && !opts.scaleOnly;
  const ansibleAvailable = ensureAnsible(opts.ansible && fullSizes);
  if (ansibleAvailable.missing && fullSizes) log(`Ansible columns skipped: ${ansibleAvailable.missing}`);

  const sizes: SizeResult[] = [];
  const statuses: StatusResult[] = [];
  for (const n of opts.inventoryOnly || opts.scaleOnly ? [] : opts.sizes) {
    if (opts.statusOnly) {
      const s = await benchStatusOnly(n);
      statuses.push(s);
      process.stdout.write(formatStatusTable(s));
      continue;
    }
    const { size: r, status } = await benchSize(n, ansibleAvailable, opts.openssh);
    sizes.push(r);
    statuses.push(status);
    process.stdout.write(formatSizeTable(r, status));
  }
  const memoryHosts = fullSizes ? opts.memoryHosts : 0;
  const memory = memoryHosts > 0 ? await benchMemory(memoryHosts) : null;
  if (memory)
    process.stdout.write(
      `\n${memory.hosts} hosts, one provision run: ${(memory.run.wallMs / 1000).toFixed(2)} s, peak RSS ${memory.run.peakRssKb === undefined ? "-" : `${(memory.run.peakRssKb / 1024).toFixed(1)} MB`} (exit ${memory.run.exitCode})\n`,
    );

  const scaleSizes = opts.inventoryOnly || opts.statusOnly ? [] : opts.scaleSizes;
  const scale = scaleSizes.length > 0 ? await benchScale(scaleSizes, log) : null;
  if (scale) process.stdout.write(formatScale(scale));

  const inventoryHosts = opts.statusOnly || opts.scaleOnly ? 0 : opts.inventoryHosts;
  const inventory = inventoryHosts > 0 ? await benchInventory(inventoryHosts) : null;
  const routes = inventoryHosts > 0 ? await benchRoutes(inventoryHosts) : null;
  const statusVsFloor = statusTarget(statuses);
  const targets = [
    ...evaluateTargets(sizes, memory, memoryHosts),
    ...(statusVsFloor ? [statusVsFloor] : []),
    ...(inventory ? [inventoryTarget(inventory, INVENTORY_TARGETS)] : []),
    ...(routes ? [routeResolutionTarget(routes, ROUTE_TARGETS)] : []),
    ...(scale ? scaleTargets(scale) : []),
  ];
  process.stdout.write(formatTargets(targets));
  const result: BenchResult = {
    version: 1,
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    machine: machine(ansibleAvailable, loadAtStart),
    sizes,
    memory,
    inventory,
    routes,
    status: statuses,
    scale,
    targets,
  };
  const out = resolve(opts.out ?? join(RESULTS_DIR, resultFileName(startedAt)));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, resultJson(result));
  process.stdout.write(
    `\nresults: ${out} (bench took ${Math.round(result.durationMs / 1000)} s; load average ${loadAtStart} at the start, ${result.machine.loadAverageAtEnd} at the end)\n`,
  );
  return targets.some((t) => t.verdict === "MISS") ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
