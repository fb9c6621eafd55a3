import { execFile, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { runChecked, SYSTEM_ENV, waitUntilGone } from "../shell.js";
import { emptyRecording, parseRecording, type Recording } from "./recording.js";
import {
  hostKeyFromKnownHosts,
  MAX_SIM_HOSTS,
  parsePublicKey,
  simHostAddress,
  simHostName,
  startRecordProxy,
  type SimStats,
} from "./server.js";

/**
 * A simulated fleet for benchmarking the controller at thousands of hosts: one ssh2 server process
 * in its own network namespace answers on 127.100.0.1, 127.100.0.2, … with answers recorded from
 * one real fleet host. Only the hosts are simulated; the controller makes real SSH handshakes.
 */

export const PROJECT_ROOT = findProjectRoot(import.meta.dirname);
/** package.json's "bin": it loads dist/src/cli.js. */
export const PROVISION_BIN = join(PROJECT_ROOT, "bin", "provision.js");
const SIM_CLI = join(PROJECT_ROOT, "dist", "test", "fleet", "sim", "cli.js");

/** A first run that changes the host, a second that finds nothing to do, and a verify. */
export const DEFAULT_RECORD_RUNS: readonly (readonly string[])[] = [["run", "-y"], ["run", "-y"], ["verify"]];

const HOST_KEY = "host_ed25519";
const CLIENT_KEY = "client_ed25519";
const READY_TIMEOUT_MS = 30_000;
const STATS_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const RUN_TIMEOUT_MS = 180_000;

export interface ProvisionResult {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunProvisionOptions {
  /** Prepended to `node <bin>`: the sim fleet's nsenterPrefix, `/usr/bin/time`, … */
  prefix?: readonly string[];
  cwd: string;
  bin?: string;
  timeoutMs?: number;
}

/** Runs provision's CLI as a user would, bounded by a timeout (then killed); never rejects on a non-zero exit. */
export function runProvision(args: readonly string[], opts: RunProvisionOptions): Promise<ProvisionResult> {
  const argv = [...(opts.prefix ?? []), process.execPath, opts.bin ?? PROVISION_BIN, ...args];
  const started = performance.now();
  return new Promise((resolvePromise) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      {
        cwd: opts.cwd,
        env: { ...SYSTEM_ENV, HOME: process.env.HOME ?? "/root", NO_COLOR: "1" },
        encoding: "utf8",
        maxBuffer: 256 * 1024 * 1024,
        timeout: opts.timeoutMs ?? RUN_TIMEOUT_MS,
        killSignal: "SIGKILL",
      },
      (error, stdout, stderr) =>
        resolvePromise({
          args: [...args],
          code: error ? (typeof error.code === "number" ? error.code : null) : 0,
          stdout,
          stderr: error?.killed ? `${stderr}\nkilled after ${opts.timeoutMs ?? RUN_TIMEOUT_MS} ms` : stderr,
          ms: Math.round(performance.now() - started),
        }),
    );
    child.stdin?.end();
  });
}

export interface RecordFromFleetOptions {
  /** The real fleet host recorded from (port 22, user root). */
  fleetHost: { address: string };
  /** Its root key; the proxy accepts the same key from provision. */
  clientKeyFile: string;
  /** The fleet's known_hosts, which must hold the host's key. */
  knownHostsFile: string;
  /** Vars for every host (e.g. the fleet's group_vars/fleet.yaml): kept in the recording, since scripts depend on them. */
  varsFile?: string;
  /** Work directory (created): the proxy's key, inventory, known_hosts, and the recording. */
  dir: string;
  provisionBin?: string;
  /** provision invocations without inventory and --known-hosts; default DEFAULT_RECORD_RUNS. */
  runs?: readonly (readonly string[])[];
  /** Default <dir>/recording.json. */
  recordingFile?: string;
  runTimeoutMs?: number;
}

export interface RecordResult {
  recording: Recording;
  recordingFile: string;
  runs: ProvisionResult[];
}

/** Records a real host's answers through a proxy while provision runs against it. Throws when a run errs (exit 1). */
export async function recordFromFleet(opts: RecordFromFleetOptions): Promise<RecordResult> {
  const dir = resolve(opts.dir);
  const work = join(dir, "work");
  mkdirSync(work, { recursive: true });
  const [clientPublicKey] = await Promise.all([
    runChecked("ssh-keygen", ["-y", "-f", opts.clientKeyFile]),
    newKey(join(dir, HOST_KEY)),
  ]);
  const allVars = opts.varsFile === undefined ? undefined : readFileSync(opts.varsFile, "utf8");
  const recording = emptyRecording(opts.fleetHost.address, new Date().toISOString(), allVars);
  const proxy = await startRecordProxy({
    recording,
    hostKey: readFileSync(join(dir, HOST_KEY)),
    clientKey: parsePublicKey(clientPublicKey),
    upstream: {
      host: opts.fleetHost.address,
      port: 22,
      username: "root",
      privateKey: readFileSync(opts.clientKeyFile),
      hostKey: hostKeyFromKnownHosts(readFileSync(opts.knownHostsFile, "utf8"), opts.fleetHost.address),
    },
  });
  const runs: ProvisionResult[] = [];
  try {
    const inventoryFile = join(dir, "inventory.yml");
    const knownHostsFile = join(dir, "known_hosts");
    writeFileSync(
      inventoryFile,
      [
        "all:",
        "  hosts:",
        `    rec1: { ansible_host: 127.0.0.1, ansible_port: ${proxy.port}, ansible_user: root, ansible_ssh_private_key_file: ${JSON.stringify(resolve(opts.clientKeyFile))} }`,
        "",
      ].join("\n"),
    );
    writeAllVars(dir, allVars);
    writeFileSync(
      knownHostsFile,
      `[127.0.0.1]:${proxy.port} ${publicKeyOf(readFileSync(`${join(dir, HOST_KEY)}.pub`, "utf8"))}\n`,
    );
    for (const args of opts.runs ?? DEFAULT_RECORD_RUNS) {
      const result = await runProvision([...args, inventoryFile, "--known-hosts", knownHostsFile], {
        cwd: work,
        bin: opts.provisionBin,
        timeoutMs: opts.runTimeoutMs,
      });
      runs.push(result);
      if (result.code !== 0 && result.code !== 2)
        throw new Error(
          `recording: provision ${args.join(" ")} exited ${result.code}:\n${result.stdout}\n${result.stderr}`,
        );
    }
  } finally {
    await proxy.close();
  }
  const recordingFile = resolve(opts.recordingFile ?? join(dir, "recording.json"));
  writeFileSync(recordingFile, `${JSON.stringify(recording, null, 2)}\n`);
  return { recording, recordingFile, runs };
}

export interface StartSimFleetOptions {
  recordingFile: string;
  hosts: number;
  /** Work directory (created): keys, inventory, known_hosts, and scripts the recording lacked. */
  dir: string;
  readyTimeoutMs?: number;
}

export interface SimFleet {
  /** The server's pid; its network namespace lives as long as it does. */
  pid: number;
  /** `["nsenter", "--net=/proc/<pid>/ns/net"]`: put before a command to run it where the hosts are. */
  nsenterPrefix: string[];
  dir: string;
  /** all.hosts.sim00001… with ansible_host; all.vars: root and the client key; group_vars/all.yaml from the recording. */
  inventoryFile: string;
  /** One plain line per host address. */
  knownHostsFile: string;
  clientKeyFile: string;
  hostNames: string[];
  addresses: string[];
  /** The server's counters right now. */
  stats(): Promise<SimStats>;
  /** SIGTERM, then SIGKILL after a bounded wait; the last counters the server printed, if any. Idempotent. */
  stop(): Promise<SimStats | undefined>;
}

export async function startSimFleet(opts: StartSimFleetOptions): Promise<SimFleet> {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_SIM_HOSTS)
    throw new Error(`hosts must be 1..${MAX_SIM_HOSTS}`);
  if (!existsSync(SIM_CLI)) throw new Error(`${SIM_CLI} is missing: run \`npm run build\` first`);
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  const recording = parseRecording(readFileSync(opts.recordingFile, "utf8"));
  const clientKeyFile = join(dir, CLIENT_KEY);
  await Promise.all([newKey(join(dir, HOST_KEY)), newKey(clientKeyFile)]);

  const addresses = Array.from({ length: opts.hosts }, (_, i) => simHostAddress(i));
  const hostNames = addresses.map((_, i) => simHostName(i));
  const inventoryFile = join(dir, "inventory.yml");
  const knownHostsFile = join(dir, "known_hosts");
  writeFileSync(inventoryFile, simInventory(hostNames, addresses, clientKeyFile));
  writeAllVars(dir, recording.allVars);
  const hostKey = publicKeyOf(readFileSync(`${join(dir, HOST_KEY)}.pub`, "utf8"));
  writeFileSync(knownHostsFile, addresses.map((a) => `${a} ${hostKey}\n`).join(""));

  const server = new ServerProcess(
    spawn(
      "unshare",
      [
        "--net",
        "--",
        process.execPath,
        SIM_CLI,
        "serve",
        "--recording",
        resolve(opts.recordingFile),
        "--hosts",
        String(opts.hosts),
        "--dir",
        dir,
      ],
      { stdio: ["pipe", "pipe", "pipe"], env: { ...SYSTEM_ENV } },
    ),
  );
  try {
    const ready = await server.next("ready", opts.readyTimeoutMs ?? READY_TIMEOUT_MS);
    const pid = (ready as { pid: number }).pid;
    // unshare execs node in place, so the server is the child itself (no process in between to outlive).
    if (pid !== server.child.pid) throw new Error(`sim server reported pid ${pid}, spawned ${server.child.pid}`);
    return {
      pid,
      nsenterPrefix: ["nsenter", `--net=/proc/${pid}/ns/net`],
      dir,
      inventoryFile,
      knownHostsFile,
      clientKeyFile,
      hostNames,
      addresses,
      stats: () => server.stats(),
      stop: () => server.stop(),
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** The server child: its line protocol on stdout (`ready {…}`, `stats {…}`), commands on stdin. */
class ServerProcess {
  private readonly waiting = new Map<string, Array<(value: unknown) => void>>();
  private stderrTail = "";
  private lastStats: SimStats | undefined;
  private stopped: Promise<SimStats | undefined> | undefined;
  private readonly exited: Promise<void>;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    const killOnExit = () => child.kill("SIGKILL");
    process.once("exit", killOnExit);
    this.exited = new Promise((resolvePromise) =>
      child.once("close", () => {
        process.off("exit", killOnExit);
        resolvePromise();
      }),
    );
    child.stdin.on("error", () => {});
    child.stderr.on("data", (d: Buffer) => (this.stderrTail = (this.stderrTail + d.toString()).slice(-4000)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const space = line.indexOf(" ");
      const kind = space < 0 ? line : line.slice(0, space);
      let value: unknown;
      try {
        value = JSON.parse(line.slice(space + 1));
      } catch {
        return;
      }
      if (kind === "stats") this.lastStats = value as SimStats;
      for (const resolveWaiter of this.waiting.get(kind)?.splice(0) ?? []) resolveWaiter(value);
    });
  }

  next(kind: string, timeoutMs: number): Promise<unknown> {
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`sim server: no "${kind}" line within ${timeoutMs} ms\n${this.stderrTail}`)),
        timeoutMs,
      );
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`sim server exited (${this.child.exitCode ?? this.child.signalCode})\n${this.stderrTail}`));
      });
      const list = this.waiting.get(kind) ?? [];
      list.push((value) => {
        clearTimeout(timer);
        resolvePromise(value);
      });
      this.waiting.set(kind, list);
    });
  }

  async stats(): Promise<SimStats> {
    const answer = this.next("stats", STATS_TIMEOUT_MS);
    this.child.stdin.write("stats\n");
    return (await answer) as SimStats;
  }

  stop(): Promise<SimStats | undefined> {
    this.stopped ??= (async () => {
      const pid = this.child.pid;
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill("SIGTERM");
        if (pid !== undefined && !(await waitUntilGone(pid, STOP_GRACE_MS))) this.child.kill("SIGKILL");
      }
      await Promise.race([this.exited, new Promise((r) => setTimeout(r, STOP_GRACE_MS))]);
      return this.lastStats;
    })();
    return this.stopped;
  }
}

function simInventory(names: string[], addresses: string[], clientKeyFile: string): string {
  return [
    "all:",
    "  vars:",
    "    ansible_user: root",
    `    ansible_ssh_private_key_file: ${JSON.stringify(clientKeyFile)}`,
    "  hosts:",
    ...names.map((name, i) => `    ${name}: { ansible_host: ${addresses[i]} }`),
    "",
  ].join("\n");
}

function writeAllVars(dir: string, allVars: string | undefined): void {
  if (allVars === undefined) return;
  mkdirSync(join(dir, "group_vars"), { recursive: true });
  writeFileSync(join(dir, "group_vars", "all.yaml"), allVars);
}

function newKey(file: string): Promise<string> {
  rmSync(file, { force: true });
  rmSync(`${file}.pub`, { force: true });
  return runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "provision-sim", "-f", file]);
}

/** `ssh-ed25519 AAAA…` from a .pub line (the comment dropped). */
function publicKeyOf(pubLine: string): string {
  return pubLine.trim().split(/\s+/).slice(0, 2).join(" ");
}

function findProjectRoot(from: string): string {
  let dir = from;
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "bin", "provision.js"))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`no project root above ${from}`);
}
