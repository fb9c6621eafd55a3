import { createHash } from "node:crypto";
import { DEFAULT_SCALE_SIZES, MAX_SCALE_HOSTS, type ScaleResult } from "./benchScaleCore.js";

/**
 * The pure half of `npm run bench`: options, the Ansible work derived from provision's own plan,
 * ratios, targets, the table and the result JSON. scripts/bench.ts does the I/O.
 */

export const MAX_FLEET_HOSTS = 250;
export const DEFAULT_SIZES = [20, 50];
export const DEFAULT_MEMORY_HOSTS = 200;
export const SNAPSHOT_ROLE = "snapshot";

export const TARGETS = {
  /** Ansible (defaults) wall time ÷ provision first-run wall time must be at least this. */
  speedupVsAnsibleDefault: 20,
  /** Ansible (tuned) wall time ÷ provision first-run wall time must be at least this. */
  speedupVsAnsibleTuned: 5,
  /** provision no-op wall time ÷ floor wall time must be at most this. */
  noopOverFloor: 1.5,
  /** Peak RSS of one `provision run` over the memory fleet, in MB (1 MB = 1024 KB here). */
  memoryMb: 300,
  /** `provision status` wall time ÷ floor wall time must be at most this (issue 15), at STATUS_TARGET_HOSTS. */
  statusOverFloor: 1.5,
} as const;

/** The fleet size the status target is judged at; when it was not measured, the largest size measured. */
export const STATUS_TARGET_HOSTS = 50;

export interface BenchOptions {
  sizes: number[];
  /** 0 = no memory run. */
  memoryHosts: number;
  /** Where the result JSON goes; undefined = bench/results/<date>.json. */
  out: string | undefined;
  ansible: boolean;
  /** Hosts of the generated INI inventory that `provision lint` loads and resolves; 0 = skip. */
  inventoryHosts: number;
  /** Only the inventory measurement: no fleet is started. */
  inventoryOnly: boolean;
  /** Also measure the OpenSSH-client path (`--ssh-client openssh`) per size. */
  openssh: boolean;
  /** Only `provision status` against the floor, per size: no runs, no Ansible, no memory or inventory part. */
  statusOnly: boolean;
  /** Simulated-fleet sizes of the scale part (1,000-10,000 hosts); empty = none. */
  scaleSizes: number[];
  /** Only the scale part: no real fleet runs, no Ansible, no memory, status or inventory part. */
  scaleOnly: boolean;
  /** --help: print USAGE and run nothing. */
  help: boolean;
}

export const USAGE = `npm run bench -- [options]

Per fleet size: provision's first run and no-op run over ssh2 (in-process) and over the OpenSSH
client (--ssh-client openssh), \`provision status\`, Ansible with its defaults and tuned, and the
floor (\`ssh host true\` to every host in parallel); one run for peak memory; loading a generated
INI inventory and resolving its hosts' routes through ssh_config.

  --sizes 20,50          fleet sizes, 1..${MAX_FLEET_HOSTS} hosts each                  (BENCH_SIZES)
  --memory-hosts 200     hosts of the peak-memory run; 0 = none          (BENCH_MEMORY_HOSTS)
  --no-ansible           skip the Ansible runs                           (BENCH_ANSIBLE=0)
  --no-openssh           skip the OpenSSH-client runs (per size: a first
                         run, 3 no-op runs beside 3 floors, a rollback)  (BENCH_OPENSSH=0)
  --inventory-hosts N    hosts of the generated inventory; 0 = none      (BENCH_INVENTORY_HOSTS)
  --inventory-only       only the inventory part (load + resolve, routes; no fleet)
  --status-only          only \`provision status\` against the floor, per size (no runs,
                         no Ansible, no memory or inventory part)
  --scale-sizes 1000,5000,10000
                         simulated-fleet sizes (one ssh2 server answering as
                         every host with a real host's recorded answers): first
                         and no-op run, peak RSS, record and output size; 0 = none
                                                                 (BENCH_SCALE_SIZES)
  --scale-only           only the simulated-fleet part
  --out FILE             the result JSON; default bench/results/<date>.json  (BENCH_OUT)
  --help                 this text
`;

export class OptionError extends Error {}

/** "20,50" → [20, 50]; each an integer fleet size, no duplicates, in the order given. */
export function parseSizes(text: string, what = "BENCH_SIZES"): number[] {
  const parts = text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  if (parts.length === 0) throw new OptionError(`${what} is empty: give fleet sizes like 20,50`);
  const sizes = parts.map((p) => parseHostCount(p, what));
  const duplicate = sizes.find((n, i) => sizes.indexOf(n) !== i);
  if (duplicate !== undefined) throw new OptionError(`${what}: ${duplicate} is listed twice`);
  return sizes;
}

function parseHostCount(text: string, what: string, allowZero = false): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  const min = allowZero ? 0 : 1;
  if (!Number.isInteger(n) || n < min || n > MAX_FLEET_HOSTS) {
    throw new OptionError(
      `${what}: "${text}" is not a host count in ${min}..${MAX_FLEET_HOSTS} (the local fleet's limit)`,
    );
  }
  return n;
}

export const DEFAULT_INVENTORY_HOSTS = 10_000;

/** "1000,5000,10000" → sizes of simulated fleets; "0" → none. */
function parseScaleSizes(text: string, what: string): number[] {
  if (text.trim() === "0") return [];
  const sizes = text.split(",").map((p) => {
    const n = /^\d+$/.test(p.trim()) ? Number(p.trim()) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > MAX_SCALE_HOSTS)
      throw new OptionError(`${what}: "${p}" is not a host count in 1..${MAX_SCALE_HOSTS} (or 0 for none)`);
    return n;
  });
  const duplicate = sizes.find((n, i) => sizes.indexOf(n) !== i);
  if (duplicate !== undefined) throw new OptionError(`${what}: ${duplicate} is listed twice`);
  return sizes;
}

function parseInventoryHosts(text: string, what: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n > 1_000_000)
    throw new OptionError(`${what}: "${text}" is not a host count in 0..1000000`);
  return n;
}

/** Flags win over the environment: --sizes 20,50 --memory-hosts 200 --out FILE --no-ansible --no-openssh. */
export function parseOptions(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): BenchOptions {
  const opts: BenchOptions = {
    sizes: env.BENCH_SIZES ? parseSizes(env.BENCH_SIZES) : DEFAULT_SIZES,
    memoryHosts: env.BENCH_MEMORY_HOSTS
      ? parseHostCount(env.BENCH_MEMORY_HOSTS, "BENCH_MEMORY_HOSTS", true)
      : DEFAULT_MEMORY_HOSTS,
    out: env.BENCH_OUT || undefined,
    ansible: env.BENCH_ANSIBLE !== "0",
    inventoryHosts: env.BENCH_INVENTORY_HOSTS
      ? parseInventoryHosts(env.BENCH_INVENTORY_HOSTS, "BENCH_INVENTORY_HOSTS")
      : DEFAULT_INVENTORY_HOSTS,
    inventoryOnly: false,
    openssh: env.BENCH_OPENSSH !== "0",
    statusOnly: false,
    scaleSizes: env.BENCH_SCALE_SIZES
      ? parseScaleSizes(env.BENCH_SCALE_SIZES, "BENCH_SCALE_SIZES")
      : DEFAULT_SCALE_SIZES,
    scaleOnly: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new OptionError(`${flag} needs a value`);
      return v;
    };
    if (flag === "--sizes") opts.sizes = parseSizes(value(), "--sizes");
    else if (flag === "--memory-hosts") opts.memoryHosts = parseHostCount(value(), "--memory-hosts", true);
    else if (flag === "--out") opts.out = value();
    else if (flag === "--no-ansible") opts.ansible = false;
    else if (flag === "--inventory-hosts") opts.inventoryHosts = parseInventoryHosts(value(), "--inventory-hosts");
    else if (flag === "--inventory-only") opts.inventoryOnly = true;
    else if (flag === "--no-openssh") opts.openssh = false;
    else if (flag === "--status-only") opts.statusOnly = true;
    else if (flag === "--scale-sizes") opts.scaleSizes = parseScaleSizes(value(), "--scale-sizes");
    else if (flag === "--scale-only") opts.scaleOnly = true;
    else if (flag === "--help" || flag === "-h") opts.help = true;
    else
      throw new OptionError(
        `unknown option ${flag}. Options: --sizes 20,50  --memory-hosts 200 (0 = none)  --out FILE  --no-ansible  --no-openssh  --inventory-hosts 10000 (0 = none)  --inventory-only  --status-only  --scale-sizes 1000,5000,10000 (0 = none)  --scale-only  --help`,
      );
  }
  if ([opts.inventoryOnly, opts.statusOnly, opts.scaleOnly].filter(Boolean).length > 1)
    throw new OptionError("--inventory-only, --status-only and --scale-only exclude each other: give one");
  if (opts.scaleOnly && opts.scaleSizes.length === 0) throw new OptionError("--scale-only with no scale sizes");
  return opts;
}

// ---------------------------------------------------------------------------------------------
// The Ansible run's work, taken from `provision plan --json` on the fresh fleet.

type JsonChange =
  | { kind: "file"; path: string; after: string; mode: string; owner: string; group: string; role: string }
  | { kind: "sysctl"; key: string; after: string; role: string }
  | { kind: "command"; argv: string[]; role: string };

export interface PlanJson {
  command: string;
  hosts: Array<{ host: string; status: string; changes?: JsonChange[]; error?: { kind: string; message: string } }>;
}

export interface AnsibleFile {
  path: string;
  /** Name of the content file (its sha256) in the run's files directory. */
  src: string;
  mode: string;
  owner: string;
  group: string;
}

export interface AnsibleRoleWork {
  files: AnsibleFile[];
  /** key=value arguments for one `sysctl -w`. */
  sysctl: string[];
  commands: string[][];
}

export interface AnsibleWork {
  /** Extra vars for bench/ansible/site.yml: per host, per role, what to do. */
  vars: { bench_hosts: Record<string, Record<string, AnsibleRoleWork>> };
  /** sha256 → file content, written to the run's files directory. */
  contents: Record<string, string>;
  counts: { hosts: number; files: number; sysctl: number; commands: number };
}

/**
 * Equal work: every file, live value and command provision's plan would apply, grouped by role in
 * plan order, except provision's own rollback snapshot (Ansible has no rollback to feed).
 */
export function ansibleWorkFromPlan(plan: PlanJson): AnsibleWork {
  const failed = plan.hosts.filter((h) => h.error || !h.changes);
  if (failed.length > 0) {
    throw new Error(
      `the fresh plan failed on ${failed.map((h) => `${h.host} (${h.error?.message ?? "no changes listed"})`).join(", ")}`,
    );
  }
  const contents: Record<string, string> = {};
  const counts = { hosts: plan.hosts.length, files: 0, sysctl: 0, commands: 0 };
  const hosts: Record<string, Record<string, AnsibleRoleWork>> = {};
  for (const h of plan.hosts) {
    const roles: Record<string, AnsibleRoleWork> = {};
    for (const c of h.changes!) {
      if (c.role === SNAPSHOT_ROLE) continue;
      const work = (roles[c.role] ??= { files: [], sysctl: [], commands: [] });
      if (c.kind === "file") {
        const sha = createHash("sha256").update(c.after, "utf8").digest("hex");
        contents[sha] = c.after;
        work.files.push({ path: c.path, src: sha, mode: c.mode, owner: c.owner, group: c.group });
        counts.files++;
      } else if (c.kind === "sysctl") {
        work.sysctl.push(`${c.key}=${c.after}`);
        counts.sysctl++;
      } else {
        work.commands.push(c.argv);
        counts.commands++;
      }
    }
    hosts[h.host] = roles;
  }
  return { vars: { bench_hosts: hosts }, contents, counts };
}

/** The rollback snapshot each host's fresh plan would write: what the hosts had before any change. */
export function snapshotsFromPlan(plan: PlanJson): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of plan.hosts) {
    const snap = h.changes?.find(
      (c): c is Extract<JsonChange, { kind: "file" }> => c.kind === "file" && c.role === SNAPSHOT_ROLE,
    );
    if (!snap) throw new Error(`${h.host}: the fresh plan has no rollback snapshot (is the host really fresh?)`);
    out[h.host] = snap.after;
  }
  return out;
}

/** Hosts whose changes differ between two plans (e.g. a fresh fleet vs. the same fleet after a rollback). */
export function planDifferences(expected: PlanJson, actual: PlanJson): string[] {
  const byHost = new Map(actual.hosts.map((h) => [h.host, h]));
  const differing = expected.hosts
    .filter(
      (h) =>
        JSON.stringify(h.changes ?? h.error) !==
        JSON.stringify(byHost.get(h.host)?.changes ?? byHost.get(h.host)?.error),
    )
    .map((h) => h.host);
  const extra = actual.hosts.filter((h) => !expected.hosts.some((e) => e.host === h.host)).map((h) => h.host);
  return [...differing, ...extra];
}

/** Hosts that still have something to change (after an Ansible run that should have done it all). */
export function hostsWithChanges(plan: PlanJson): string[] {
  return plan.hosts.filter((h) => h.error || (h.changes ?? []).length > 0).map((h) => h.host);
}

// ---------------------------------------------------------------------------------------------
// Measurements, ratios, targets.

export interface Timing {
  wallMs: number;
  exitCode: number;
  /** Peak resident set size of the measured process in KB (/usr/bin/time %M), when measured. */
  peakRssKb?: number;
  /** The tool's own one-line summary, e.g. "Run: 20 changed, 0 unchanged, …". */
  summary?: string;
}

export interface Floor {
  /** Median of samplesMs. */
  wallMs: number;
  samplesMs: number[];
  /** `ssh host true` commands that failed, over all samples. */
  failures: number;
}

/**
 * The OpenSSH-client path (`provision run --ssh-client openssh`), measured on the same fleet after
 * the ssh2 path and a rollback to fresh: a first run, then no-op runs taken in turns with floor
 * samples of their own (noop and floor are the medians).
 */
export interface OpenSshPath {
  firstRun: Timing;
  noop: Timing;
  noopSamplesMs: number[];
  floor: Floor;
}

export interface SizeResult {
  hosts: number;
  /**
   * firstRun/noop: the ssh2 path (`--ssh-client ssh2`, provision's default transport); noop is the
   * median of the no-op runs (noopSamplesMs), each taken right after a floor sample.
   * openssh: the same over the OpenSSH client; absent when not measured (opensshSkipped says why).
   */
  provision: {
    firstRun: Timing;
    noop: Timing;
    noopSamplesMs?: number[];
    forks: number;
    openssh?: OpenSshPath;
    opensshSkipped?: string;
  };
  ansible: { default: Timing | null; tuned: Timing | null; skipped?: string };
  /** The floor taken in turns with the ssh2 no-op runs. */
  floor: Floor;
  checks: {
    ansibleLeftNothingToDo: Record<string, boolean>;
    /** After the ssh2 runs. */
    rollbackRestoredFresh: boolean | null;
    /** After the OpenSSH-client runs (null: not run). */
    opensshRollbackRestoredFresh?: boolean | null;
    resetBeforeTuned: boolean | null;
  };
  work: AnsibleWork["counts"];
  /** CPU busy % of the whole machine in the second before each measurement (others' work skews the times). */
  backgroundCpuPercent: Record<string, number>;
}

export type SshClientPath = "ssh2" | "openssh";

/** One transport's measurements of a size, the same shape for both paths. */
export interface PathMeasurements {
  client: SshClientPath;
  firstRun: Timing;
  noop: Timing;
  noopSamples: number;
  floor: Floor;
}

/** The paths measured for a size: ssh2 always, openssh when it was run. */
export function pathsOf(r: SizeResult): { ssh2: PathMeasurements; openssh: PathMeasurements | null } {
  const o = r.provision.openssh;
  return {
    ssh2: {
      client: "ssh2",
      firstRun: r.provision.firstRun,
      noop: r.provision.noop,
      noopSamples: r.provision.noopSamplesMs?.length ?? 1,
      floor: r.floor,
    },
    openssh: o
      ? { client: "openssh", firstRun: o.firstRun, noop: o.noop, noopSamples: o.noopSamplesMs.length, floor: o.floor }
      : null,
  };
}

/** Above this, another workload is running: the times are printed with a warning. */
export const BUSY_PERCENT = 20;

/** Busy share of all CPUs between two /proc/stat "cpu" lines, in percent. */
export function busyPercent(before: string, after: string): number {
  const fields = (line: string) => line.trim().split(/\s+/).slice(1).map(Number);
  const a = fields(before);
  const b = fields(after);
  const delta = b.map((v, i) => v - (a[i] ?? 0));
  const total = delta.reduce((x, y) => x + y, 0);
  // idle and iowait are the 4th and 5th numbers
  const idle = (delta[3] ?? 0) + (delta[4] ?? 0);
  return total <= 0 ? 0 : Math.round((100 * (total - idle)) / total);
}

export interface PathRatios {
  /** Ansible defaults ÷ provision first run: how many times faster provision is. */
  speedupVsAnsibleDefault: number | null;
  speedupVsAnsibleTuned: number | null;
  noopOverFloor: number;
}

/** The ssh2 path's ratios at the top level (as before the OpenSSH client was measured), the OpenSSH client's under `openssh`. */
export interface Ratios extends PathRatios {
  openssh: PathRatios | null;
}

function pathRatios(r: SizeResult, p: PathMeasurements): PathRatios {
  const first = p.firstRun.wallMs;
  return {
    speedupVsAnsibleDefault:
      r.ansible.default && r.ansible.default.exitCode === 0 ? r.ansible.default.wallMs / first : null,
    speedupVsAnsibleTuned: r.ansible.tuned && r.ansible.tuned.exitCode === 0 ? r.ansible.tuned.wallMs / first : null,
    noopOverFloor: p.noop.wallMs / p.floor.wallMs,
  };
}

export function ratios(r: SizeResult): Ratios {
  const paths = pathsOf(r);
  return { ...pathRatios(r, paths.ssh2), openssh: paths.openssh ? pathRatios(r, paths.openssh) : null };
}

export function median(samples: readonly number[]): number {
  if (samples.length === 0) throw new Error("median of no samples");
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export type Verdict = "PASS" | "MISS" | "SKIP";

export interface TargetResult {
  name: string;
  hosts: number;
  target: string;
  measured: string;
  verdict: Verdict;
  /** Why a target was skipped or could not pass. */
  reason?: string;
}

export interface MemoryResult {
  hosts: number;
  run: Timing;
}

export function evaluateTargets(
  sizes: readonly SizeResult[],
  memory: MemoryResult | null,
  memoryHostsWanted: number,
): TargetResult[] {
  const out: TargetResult[] = [];
  for (const r of sizes) {
    const paths = pathsOf(r);
    out.push(...pathTargets(r, paths.ssh2));
    if (paths.openssh) out.push(...pathTargets(r, paths.openssh));
    else out.push(...skippedPathTargets(r, "openssh", r.provision.opensshSkipped ?? "not measured"));
  }
  if (memoryHostsWanted > 0) {
    const rssKb = memory?.run.peakRssKb;
    out.push({
      name: "peak RSS of one run (ssh2)",
      hosts: memory?.hosts ?? memoryHostsWanted,
      target: `< ${TARGETS.memoryMb} MB`,
      measured: rssKb === undefined ? "-" : `${fmtMb(rssKb)} MB`,
      verdict:
        rssKb === undefined ? "SKIP" : memory!.run.exitCode === 0 && rssKb / 1024 < TARGETS.memoryMb ? "PASS" : "MISS",
      ...(rssKb === undefined
        ? { reason: "not measured" }
        : memory!.run.exitCode !== 0
          ? { reason: `provision run exited ${memory!.run.exitCode}` }
          : {}),
    });
  }
  return out;
}

/** The three per-size targets, named by path: "first run vs Ansible defaults (openssh)". */
const PATH_TARGET_NAMES = (client: SshClientPath) => ({
  defaults: `first run vs Ansible defaults (${client})`,
  tuned: `first run vs Ansible tuned (${client})`,
  noop: `no-op run vs floor (${client})`,
});

function pathTargets(r: SizeResult, p: PathMeasurements): TargetResult[] {
  const q = pathRatios(r, p);
  const names = PATH_TARGET_NAMES(p.client);
  const run = `provision run --ssh-client ${p.client}`;
  const firstFailed = p.firstRun.exitCode === 0 ? null : `${run} exited ${p.firstRun.exitCode}`;
  const noopFailed =
    p.noop.exitCode !== 0
      ? `${run} (no-op) exited ${p.noop.exitCode}`
      : p.floor.failures > 0
        ? `${p.floor.failures} floor ssh commands failed`
        : null;
  return [
    speedupTarget(
      names.defaults,
      r,
      q.speedupVsAnsibleDefault,
      TARGETS.speedupVsAnsibleDefault,
      firstFailed,
      r.ansible.default,
    ),
    speedupTarget(names.tuned, r, q.speedupVsAnsibleTuned, TARGETS.speedupVsAnsibleTuned, firstFailed, r.ansible.tuned),
    {
      name: names.noop,
      hosts: r.hosts,
      target: `≤ ${TARGETS.noopOverFloor}×`,
      measured: fmtRatio(q.noopOverFloor),
      verdict: noopFailed === null && q.noopOverFloor <= TARGETS.noopOverFloor ? "PASS" : "MISS",
      ...(noopFailed === null ? {} : { reason: noopFailed }),
    },
  ];
}

function skippedPathTargets(r: SizeResult, client: SshClientPath, reason: string): TargetResult[] {
  const names = PATH_TARGET_NAMES(client);
  return [
    {
      name: names.defaults,
      hosts: r.hosts,
      target: `≥ ${TARGETS.speedupVsAnsibleDefault}× faster`,
      measured: "-",
      verdict: "SKIP",
      reason,
    },
    {
      name: names.tuned,
      hosts: r.hosts,
      target: `≥ ${TARGETS.speedupVsAnsibleTuned}× faster`,
      measured: "-",
      verdict: "SKIP",
      reason,
    },
    { name: names.noop, hosts: r.hosts, target: `≤ ${TARGETS.noopOverFloor}×`, measured: "-", verdict: "SKIP", reason },
  ];
}

function speedupTarget(
  name: string,
  r: SizeResult,
  speedup: number | null,
  min: number,
  firstFailed: string | null,
  ansible: Timing | null,
): TargetResult {
  const base = { name, hosts: r.hosts, target: `≥ ${min}× faster` };
  if (!ansible) return { ...base, measured: "-", verdict: "SKIP", reason: r.ansible.skipped ?? "Ansible was not run" };
  if (ansible.exitCode !== 0)
    return { ...base, measured: "-", verdict: "SKIP", reason: `ansible-playbook exited ${ansible.exitCode}` };
  if (firstFailed !== null || speedup === null)
    return {
      ...base,
      measured: speedup === null ? "-" : fmtRatio(speedup),
      verdict: "MISS",
      reason: firstFailed ?? "no ratio",
    };
  return { ...base, measured: fmtRatio(speedup), verdict: speedup >= min ? "PASS" : "MISS" };
}

// ---------------------------------------------------------------------------------------------
// `provision status` against the floor: read-only, one round trip per host that samples drop
// counters over a window (1 s by default), so it cannot take less than the floor plus that window.

/** `provision status --json` as the bench reads it. */
export interface StatusJson {
  command: string;
  hosts: Array<{ host: string; verdict: string; windowSeconds?: number; error?: { kind: string; message: string } }>;
}

/** Exit codes of a status that read every host: 0 (ok or warn), 3 (a wall over the critical threshold). */
export const STATUS_EXIT_CODES: readonly number[] = [0, 3];

export class StatusOutputError extends Error {}

/** What one status sample read, once checked. */
export interface StatusReadout {
  /** Hosts per verdict: { ok: 48, warn: 2, critical: 0 }. */
  verdicts: Record<string, number>;
  /** Per host, how long its script took from the first counter read to the last (the window, or more when its scans took longer). */
  scriptSeconds: number[];
  /** "50 hosts: 0 critical, 2 warn, 48 ok". */
  summary: string;
}

/**
 * A status sample's exit code and stdout, checked: exit 0 or 3, JSON that lists every host of the
 * fleet (and no other) and none with an error. Throws StatusOutputError saying what is wrong.
 */
export function checkStatusOutput(stdout: string, exitCode: number, hosts: readonly string[]): StatusReadout {
  if (!STATUS_EXIT_CODES.includes(exitCode))
    throw new StatusOutputError(`exited ${exitCode} (${STATUS_EXIT_CODES.join(" or ")} expected)`);
  let json: StatusJson;
  try {
    json = JSON.parse(stdout) as StatusJson;
  } catch (err) {
    throw new StatusOutputError(`printed no JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (json === null || typeof json !== "object" || !Array.isArray(json.hosts))
    throw new StatusOutputError("printed JSON without a hosts list");
  const listed = new Set(json.hosts.map((h) => h.host));
  const problems: string[] = [];
  const missing = hosts.filter((h) => !listed.has(h));
  if (missing.length > 0) problems.push(`${missing.length} hosts missing from its JSON: ${firstFew(missing)}`);
  const extra = json.hosts.filter((h) => !hosts.includes(h.host)).map((h) => h.host);
  if (extra.length > 0) problems.push(`hosts not in the fleet: ${firstFew(extra)}`);
  const failed = json.hosts.filter((h) => h.error !== undefined || h.verdict === "error");
  if (failed.length > 0)
    problems.push(
      `${failed.length} hosts not read: ${firstFew(failed.map((h) => (h.error ? `${h.host} (${h.error.kind}: ${h.error.message})` : h.host)))}`,
    );
  if (problems.length > 0) throw new StatusOutputError(`exited ${exitCode}, but ${problems.join("; ")}`);
  const verdicts: Record<string, number> = { critical: 0, warn: 0, ok: 0 };
  for (const h of json.hosts) verdicts[h.verdict] = (verdicts[h.verdict] ?? 0) + 1;
  return {
    verdicts,
    scriptSeconds: json.hosts.flatMap((h) => (typeof h.windowSeconds === "number" ? [h.windowSeconds] : [])),
    summary: `${json.hosts.length} hosts: ${Object.entries(verdicts)
      .map(([v, n]) => `${n} ${v}`)
      .join(", ")}`,
  };
}

function firstFew(items: readonly string[], n = 5): string {
  return items.length > n ? `${items.slice(0, n).join(", ")}, … and ${items.length - n} more` : items.join(", ");
}

/** `provision status --json` on one fleet size, sampled in turns with floor samples of its own. */
export interface StatusResult {
  hosts: number;
  /** --forks given: the same as the provision runs', so that up to 50 hosts are all read at once. */
  forks: number;
  /** The median sample (wall time, exit code 0 or 3, peak RSS, verdict summary). */
  status: Timing;
  samplesMs: number[];
  /** The median sample's per-host script time (first to last counter read), in seconds: least, median, most. */
  scriptSeconds: { min: number; median: number; max: number } | null;
  /** The floor taken in turns with the status samples. */
  floor: Floor;
  /** CPU busy % of the whole machine in the second before the measurement. */
  backgroundCpuPercent: Record<string, number>;
}

/** Least, median and most of some values; null for none. */
export function spreadOf(values: readonly number[]): { min: number; median: number; max: number } | null {
  if (values.length === 0) return null;
  return { min: Math.min(...values), median: median(values), max: Math.max(...values) };
}

export function statusOverFloor(s: StatusResult): number {
  return s.status.wallMs / s.floor.wallMs;
}

/** The status measurement the target is judged on: STATUS_TARGET_HOSTS hosts, else the largest size measured. */
export function statusForTarget(results: readonly StatusResult[]): StatusResult | null {
  return (
    results.find((s) => s.hosts === STATUS_TARGET_HOSTS) ??
    results.reduce<StatusResult | null>((big, s) => (big === null || s.hosts > big.hosts ? s : big), null)
  );
}

/** "status vs floor": null when status was not measured at all (no fleet). */
export function statusTarget(results: readonly StatusResult[]): TargetResult | null {
  const s = statusForTarget(results);
  if (s === null) return null;
  const ratio = statusOverFloor(s);
  const base = {
    name: "status vs floor",
    hosts: s.hosts,
    target: `≤ ${TARGETS.statusOverFloor}×`,
    measured: fmtRatio(ratio),
  };
  const elsewhere =
    s.hosts === STATUS_TARGET_HOSTS
      ? {}
      : { reason: `${STATUS_TARGET_HOSTS} hosts not measured: judged at the largest size, ${s.hosts}` };
  if (s.floor.failures > 0)
    return { ...base, verdict: "MISS", reason: `${s.floor.failures} floor ssh commands failed` };
  return { ...base, verdict: ratio <= TARGETS.statusOverFloor ? "PASS" : "MISS", ...elsewhere };
}

/** The status rows of a size's table: status, then the floor taken beside it; cells as many as `columns`, ÷ floor at floorColumn. */
function statusRows(s: StatusResult, columns: number, floorColumn: number): string[][] {
  const row = (first: string, wall: string, vsFloor: string, rss: string) => {
    const cells = Array.from({ length: columns }, () => "");
    cells[0] = first;
    cells[1] = wall;
    cells[floorColumn] = vsFloor;
    cells[columns - 1] = rss;
    return cells;
  };
  const rss = s.status.peakRssKb === undefined ? "-" : `${fmtMb(s.status.peakRssKb)} MB`;
  return [
    row(
      `provision status (forks ${s.forks}${s.samplesMs.length > 1 ? `, median of ${s.samplesMs.length}` : ""})`,
      timingCell(s.status),
      fmtRatio(statusOverFloor(s)),
      rss,
    ),
    row(
      `floor, beside status${medianOf(s.floor.samplesMs.length)}`,
      `${fmtSeconds(s.floor.wallMs)}${s.floor.failures > 0 ? ` (${s.floor.failures} failed)` : ""}`,
      "",
      "",
    ),
  ];
}

/** "status: 50 hosts: 0 critical, 0 warn, 50 ok; scripts took 1.02–1.31 s (median 1.10 s); status ÷ floor: 1.23×". */
function statusLine(s: StatusResult): string {
  const script = s.scriptSeconds
    ? `; scripts took ${s.scriptSeconds.min.toFixed(2)}–${s.scriptSeconds.max.toFixed(2)} s (median ${s.scriptSeconds.median.toFixed(2)} s)`
    : "";
  return `status: ${s.status.summary ?? "-"}${script}; status ÷ floor: ${fmtRatio(statusOverFloor(s))}`;
}

/** With --status-only: one table per size, status and the floor beside it. */
export function formatStatusTable(s: StatusResult): string {
  const lines = [
    `\n${s.hosts} hosts — provision status (read-only, one round trip per host)`,
    textTable(["", "wall", "÷ floor", "peak RSS"], statusRows(s, 4, 2)),
    `floor: ${s.hosts} × \`ssh host true\` in parallel, sampled in turns with the status runs`,
    statusLine(s),
  ];
  const warning = busyWarning(s.backgroundCpuPercent);
  if (warning) lines.push(warning);
  return `${lines.join("\n")}\n`;
}

function busyWarning(background: Record<string, number>): string | null {
  const busy = Object.entries(background).filter(([, pct]) => pct > BUSY_PERCENT);
  return busy.length === 0
    ? null
    : `WARNING: another workload kept the machine busy before ${busy.map(([what, pct]) => `${what} (${pct}% CPU)`).join(", ")}: those times are skewed`;
}

// ---------------------------------------------------------------------------------------------
// Output.

export function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export function fmtRatio(x: number): string {
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`;
}

export function fmtMb(kb: number): string {
  return (kb / 1024).toFixed(1);
}

/** A plain-text table with left-aligned first column and right-aligned others. */
export function textTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n") + "\n";
}

function timingCell(t: Timing | null): string {
  if (!t) return "-";
  return t.exitCode === 0 ? fmtSeconds(t.wallMs) : `${fmtSeconds(t.wallMs)} (exit ${t.exitCode})`;
}

function medianOf(samples: number): string {
  return samples > 1 ? ` (median of ${samples})` : "";
}

/**
 * One table per fleet size: each wall time, the ratios, and provision's peak RSS, with the ssh2
 * and the OpenSSH-client path on rows of their own. Each no-op is set against the floor sampled in
 * turns with it; Ansible against each path's first run.
 */
export function formatSizeTable(r: SizeResult, status?: StatusResult): string {
  const paths = pathsOf(r);
  const q = ratios(r);
  const rss = (t: Timing | undefined) => (t?.peakRssKb === undefined ? "-" : `${fmtMb(t.peakRssKb)} MB`);
  // No ratio from or against a failed run.
  const vs = (t: Timing | null | undefined, first: Timing | undefined) =>
    t && first && t.exitCode === 0 && first.exitCode === 0 ? fmtRatio(t.wallMs / first.wallMs) : "-";
  const ssh2First = paths.ssh2.firstRun;
  const osshFirst = paths.openssh?.firstRun;
  const firstRow = (p: PathMeasurements | null, client: SshClientPath) => [
    `provision first run, ${client} (forks ${r.provision.forks})`,
    timingCell(p?.firstRun ?? null),
    vs(p?.firstRun, ssh2First),
    vs(p?.firstRun, osshFirst),
    "",
    rss(p?.firstRun),
  ];
  const noopRow = (p: PathMeasurements | null, client: SshClientPath) => [
    `provision no-op, ${client}${p ? medianOf(p.noopSamples) : ""}`,
    timingCell(p?.noop ?? null),
    "",
    "",
    p && p.noop.exitCode === 0 ? fmtRatio(p.noop.wallMs / p.floor.wallMs) : "-",
    rss(p?.noop),
  ];
  const floorRow = (p: PathMeasurements | null, client: SshClientPath) => [
    `floor, beside the ${client} no-op${p ? medianOf(p.floor.samplesMs.length) : ""}`,
    p ? `${fmtSeconds(p.floor.wallMs)}${p.floor.failures > 0 ? ` (${p.floor.failures} failed)` : ""}` : "-",
    "",
    "",
    "",
    "",
  ];
  const rows: string[][] = [
    firstRow(paths.ssh2, "ssh2"),
    firstRow(paths.openssh, "openssh"),
    noopRow(paths.ssh2, "ssh2"),
    noopRow(paths.openssh, "openssh"),
    [
      "Ansible, defaults (forks 5, no pipelining)",
      timingCell(r.ansible.default),
      vs(r.ansible.default, ssh2First),
      vs(r.ansible.default, osshFirst),
      "",
      "",
    ],
    [
      `Ansible, tuned (forks ${r.hosts}, pipelining)`,
      timingCell(r.ansible.tuned),
      vs(r.ansible.tuned, ssh2First),
      vs(r.ansible.tuned, osshFirst),
      "",
      "",
    ],
    floorRow(paths.ssh2, "ssh2"),
    floorRow(paths.openssh, "openssh"),
  ];
  if (status) {
    // status beside the no-op rows, its floor after the other floors
    const [statusRow, statusFloorRow] = statusRows(status, 6, 4);
    rows.splice(4, 0, statusRow!);
    rows.push(statusFloorRow!);
  }
  const summary = (client: SshClientPath, m: PathMeasurements | null, p: PathRatios | null) => {
    if (m === null || p === null)
      return `${client}: not measured${r.provision.opensshSkipped ? ` (${r.provision.opensshSkipped})` : ""}`;
    const speedup = (x: number | null) => (x === null || m.firstRun.exitCode !== 0 ? "-" : `1/${fmtRatio(x)}`);
    return (
      `${`${client}:`.padEnd(9)}provision ÷ Ansible defaults: ${speedup(p.speedupVsAnsibleDefault)}   provision ÷ Ansible tuned: ${speedup(p.speedupVsAnsibleTuned)}` +
      `   no-op ÷ floor: ${m.noop.exitCode === 0 ? fmtRatio(p.noopOverFloor) : "-"}`
    );
  };
  const lines = [
    `\n${r.hosts} hosts — ${r.work.files} files, ${r.work.sysctl} live values, ${r.work.commands} commands to apply in all`,
    textTable(["", "wall", "÷ ssh2 first", "÷ openssh first", "÷ floor", "peak RSS"], rows),
    `floor: ${r.hosts} × \`ssh host true\` in parallel, sampled in turns with each path's no-op runs`,
    summary("ssh2", paths.ssh2, q),
    summary("openssh", paths.openssh, q.openssh),
  ];
  if (status) lines.push(statusLine(status));
  if (r.ansible.skipped) lines.push(`Ansible skipped: ${r.ansible.skipped}`);
  const warning = busyWarning({ ...r.backgroundCpuPercent, ...status?.backgroundCpuPercent });
  if (warning) lines.push(warning);
  return `${lines.join("\n")}\n`;
}

export function formatTargets(targets: readonly TargetResult[]): string {
  const rows = targets.map((t) => [t.verdict, `${t.name} (${t.hosts} hosts)`, t.target, t.measured, t.reason ?? ""]);
  return `\nTargets\n${textTable(["", "target", "wanted", "measured", ""], rows)}`;
}

export interface BenchResult {
  version: 1;
  startedAt: string;
  durationMs: number;
  machine: Record<string, string | number | null>;
  sizes: SizeResult[];
  memory: MemoryResult | null;
  inventory: InventoryLoadResult | null;
  /** Route resolution through ssh_config for the generated inventory's hosts (absent in results from before it was measured). */
  routes?: RouteResolutionResult | null;
  /** `provision status` against the floor, per size (absent in results from before it was measured). */
  status?: StatusResult[];
  /** Runs against simulated fleets of 1,000-10,000 hosts (absent in results from before it was measured). */
  scale?: ScaleResult | null;
  targets: TargetResult[];
}

export interface InventoryLoadResult {
  hosts: number;
  wallMs: number;
  peakRssKb: number | undefined;
  exitCode: number | null;
}

/** Loading and resolving the generated inventory: both time and peak RSS must be under target. */
export function inventoryTarget(r: InventoryLoadResult, targets: { seconds: number; memoryMb: number }): TargetResult {
  const measured = `${fmtSeconds(r.wallMs)}, ${r.peakRssKb === undefined ? "-" : `${fmtMb(r.peakRssKb)} MB`}`;
  const base = {
    name: "load + resolve INI inventory",
    hosts: r.hosts,
    target: `< ${targets.seconds} s, < ${targets.memoryMb} MB`,
    measured,
  };
  if (r.exitCode !== 0) return { ...base, verdict: "MISS", reason: `provision lint exited ${r.exitCode}` };
  if (r.peakRssKb === undefined) return { ...base, verdict: "MISS", reason: "peak RSS not measured" };
  return {
    ...base,
    verdict: r.wallMs < targets.seconds * 1000 && r.peakRssKb / 1024 < targets.memoryMb ? "PASS" : "MISS",
  };
}

/** `resolveRoutes` for every host of the generated inventory, through a generated ssh_config (`-F`). */
export interface RouteResolutionResult {
  /** Hosts whose routes were resolved. */
  hosts: number;
  /** Median of samplesMs (resolveRoutes only: the inventory is loaded before the clock starts). */
  wallMs: number;
  samplesMs: number[];
  /** `ssh` processes the median sample ran (`ssh -G` per probe, one `ssh -v -G` per config file check). */
  sshGCalls: number;
  /** Routes through the bastion, and how many hosts the config's ProxyJump block matches. */
  behindBastion: number;
  expectedBehindBastion: number;
  /** Hosts that got a RouteError instead of a route; the first one's message. */
  errors: number;
  firstError?: string;
  /** Why nothing was measured (no ssh installed). */
  skipped?: string;
}

/** Route resolution: every host gets a route, exactly the matching ones through the bastion, in under the target time. */
export function routeResolutionTarget(r: RouteResolutionResult, targets: { seconds: number }): TargetResult {
  const base = { name: "resolve routes through ssh_config (ssh -G)", hosts: r.hosts, target: `< ${targets.seconds} s` };
  if (r.skipped !== undefined) return { ...base, measured: "-", verdict: "SKIP", reason: r.skipped };
  const measured = `${fmtSeconds(r.wallMs)}, ${r.sshGCalls} ssh -G`;
  if (r.errors > 0)
    return { ...base, measured, verdict: "MISS", reason: `${r.errors} hosts got no route: ${r.firstError ?? "?"}` };
  if (r.behindBastion !== r.expectedBehindBastion) {
    return {
      ...base,
      measured,
      verdict: "MISS",
      reason: `${r.behindBastion} routes go through the bastion, ${r.expectedBehindBastion} hosts match its Host block`,
    };
  }
  return { ...base, measured, verdict: r.wallMs < targets.seconds * 1000 ? "PASS" : "MISS" };
}

export function formatRouteResolution(r: RouteResolutionResult): string {
  if (r.skipped !== undefined) return `\nroute resolution (ssh_config, ssh -G): skipped: ${r.skipped}\n`;
  const samples =
    r.samplesMs.length > 1
      ? ` (median of ${r.samplesMs.length}: ${r.samplesMs.map((ms) => fmtSeconds(ms)).join(", ")})`
      : "";
  const errors = r.errors > 0 ? `, ${r.errors} hosts without a route (${r.firstError ?? "?"})` : "";
  return `\n${r.hosts}-host routes through ssh_config (resolveRoutes, hybrid): ${fmtSeconds(r.wallMs)}${samples}, ${r.sshGCalls} ssh -G calls, ${r.behindBastion} through the bastion (${r.expectedBehindBastion} expected)${errors}\n`;
}

export function resultJson(result: BenchResult): string {
  const withRatios = {
    ...result,
    sizes: result.sizes.map((s) => ({ ...s, ratios: ratios(s) })),
    ...(result.status ? { status: result.status.map((s) => ({ ...s, overFloor: statusOverFloor(s) })) } : {}),
  };
  return `${JSON.stringify(withRatios, null, 2)}\n`;
}

/** bench/results/2026-11-21T05-33-15Z.json: sortable, no characters a file system dislikes. */
export function resultFileName(date: Date): string {
  return `${date
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z")
    .replace(/:/g, "-")}.json`;
}
