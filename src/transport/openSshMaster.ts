import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CLOSED_BY_US, endCauseOf, stoppedAnswering, type Keepalive } from "./connectionLoss.js";
import { connectedAddress, explainConnectFailure, forwardRefusal, lastWords, masterEndFromLog } from "./openSshLog.js";
import { configQuote } from "./sshConfigFiles.js";
import { endpointLabel, type SshEndpoint } from "./route.js";
import { shQuote } from "./shell.js";
import { HostError } from "./types.js";

/**
 * OpenSSH master connections (`ssh -N -o ControlMaster=yes`), each our own child process: one per
 * target, and one per ProxyJump hop shared by every target behind it (reference-counted), so a
 * bastion sees one TCP connection and one login however many hosts sit behind it. A hop after the
 * first, and a target behind hops, is reached with `ssh -S <previous master> -W host:port`: a
 * stdio forward multiplexed over the previous master, never a connection of its own.
 */

export interface MasterSettings {
  sshBinary: string;
  controlDir: string;
  /** provision's --known-hosts files; each endpoint's own follow them. New keys go to the first. */
  knownHostsFiles: string[];
  acceptNewHostKeys: boolean;
  connectTimeoutMs: number;
  keepalive: Keepalive;
  /** For every ssh process: the environment, without provision's secrets (childEnvironment). */
  env: NodeJS.ProcessEnv;
}

/** A sun_path is 108 bytes and ssh binds to `<ControlPath>.<16 random characters>` before renaming. */
const MAX_CONTROL_PATH = 90;
const SOCKET_NAME_LENGTH = 20;
/** SIGTERM makes ssh remove its socket and stop its ProxyCommand; SIGKILL only if it does not. */
const STOP_GRACE_MS = 3000;
/** When a target behind a bastion ends, the bastion's own end is usually noticed within this. */
const UPSTREAM_GRACE_MS = 500;

export class OpenSshMaster {
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null; error?: Error } | null = null;
  /** Set when provision itself ended the master: no fault of the host. */
  private stopReason: string | undefined;
  readonly exited: Promise<void>;
  /** The address TCP went to, when ssh dialled it itself (no ProxyCommand). */
  connectedAddress: string | null = null;

  constructor(
    readonly endpoint: SshEndpoint,
    /** The hop this connection rides on, or undefined when ssh dials it itself. */
    readonly via: OpenSshMaster | undefined,
    /** How messages name it: "root@10.0.0.5:22", or "bastion root@10.0.0.1:22". */
    readonly label: string,
    readonly socketPath: string,
    readonly logPath: string,
    /** As ssh applies it (whole seconds). */
    readonly keepalive: Keepalive,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exitStatus ??= { code, signal };
        resolve();
      });
      child.once("error", (error) => {
        this.exitStatus ??= { code: null, signal: null, error };
        resolve();
      });
    });
  }

  get alive(): boolean {
    return this.exitStatus === null;
  }

  get spawnError(): Error | undefined {
    return this.exitStatus?.error;
  }

  readLog(fromByte = 0): string {
    try {
      return readFileSync(this.logPath).subarray(fromByte).toString("utf8");
    } catch {
      return "";
    }
  }

  logSize(): number {
    try {
      return statSync(this.logPath).size;
    } catch {
      return 0;
    }
  }

  /** True once the control socket exists: ssh creates it only after authentication succeeded. */
  socketReady(): boolean {
    try {
      return lstatSync(this.socketPath).isSocket();
    } catch {
      return false;
    }
  }

  /** Ends the master (if still running) and removes its socket and log; idempotent. */
  async stop(reason: string = CLOSED_BY_US): Promise<void> {
    if (this.alive) {
      this.stopReason ??= reason;
      this.child.kill("SIGTERM");
      if (!(await settlesWithin(this.exited, STOP_GRACE_MS))) {
        this.child.kill("SIGKILL");
        await settlesWithin(this.exited, STOP_GRACE_MS);
      }
    }
    live.delete(this);
    rmSync(this.socketPath, { force: true });
    rmSync(this.logPath, { force: true });
  }

  /** For process exit, where nothing asynchronous runs: ssh removes its socket itself on SIGTERM. */
  killNow(): void {
    if (this.alive) this.child.kill("SIGTERM");
    rmSync(this.logPath, { force: true });
  }

  /** Why the master ended, in the words connectionLoss.ts uses for ssh2; call before stop() removes the log. */
  async endCause(): Promise<string> {
    if (this.stopReason !== undefined) return this.stopReason;
    const end = masterEndFromLog(this.readLog());
    // Through a bastion that went away, the target's log says only that its connection closed.
    if (this.via) {
      await settlesWithin(this.via.exited, UPSTREAM_GRACE_MS);
      if (!this.via.alive) return `the connection to ${this.via.label} ended: ${await this.via.endCause()}`;
    }
    if (end === "stopped-answering") return stoppedAnswering(this.keepalive);
    if (end !== null) return endCauseOf("close", this.keepalive);
    const status = this.exitStatus;
    if (status?.signal) return `the local ssh master process was killed (${status.signal})`;
    const words = lastWords(this.readLog());
    return `the local ssh master process exited (status ${status?.code ?? "unknown"})${words ? `: ${words}` : ""}`;
  }
}

async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  // Unreferenced: a pending grace period must not keep the process alive.
  const timer = sleep(ms, undefined, { ref: false }).then(() => false);
  return Promise.race([p.then(() => true), timer]);
}

/** Every master this process started and has not stopped, so that none outlives it. */
const live = new Set<OpenSshMaster>();
let exitHookInstalled = false;
let createdControlDir: string | undefined;
let serial = 0;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const m of live) m.killNow();
    if (createdControlDir) rmSync(createdControlDir, { recursive: true, force: true });
  };
  process.once("exit", killAll);
  // A signal ends node without 'exit', and a master holds an authenticated socket: end them,
  // then let the signal do what it would have done (unless someone else handles it).
  for (const signal of ["SIGTERM", "SIGHUP", "SIGINT"] as const) {
    process.once(signal, () => {
      killAll();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

/** The directory for sockets and logs: the one given (created 0700 if missing), else one per process. */
export function controlDirFor(requested: string | undefined): string {
  const dir = requested ?? (createdControlDir ??= mkdtempSync(join(shortRuntimeDir(), "pv-ssh-")));
  if (requested !== undefined) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (dir.length + 1 + SOCKET_NAME_LENGTH > MAX_CONTROL_PATH) {
    throw new HostError(
      `the OpenSSH control directory ${dir} is too long: a control socket path must stay within ${MAX_CONTROL_PATH} characters; choose a directory of at most ${MAX_CONTROL_PATH - 1 - SOCKET_NAME_LENGTH}`,
      "unreachable",
    );
  }
  return dir;
}

function shortRuntimeDir(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  // Room for "/pv-ssh-XXXXXX/" and a socket name.
  if (runtime && runtime.length <= 40) {
    try {
      if (statSync(runtime).isDirectory()) return runtime;
    } catch {
      // gone or unreadable: /tmp will do
    }
  }
  return "/tmp";
}

/** Unique per master (a serial), short, and free of anything a user could put in a name. */
function socketName(identity: unknown): string {
  serial += 1;
  return createHash("sha256")
    .update(JSON.stringify([identity, process.pid, serial]))
    .digest("hex")
    .slice(0, SOCKET_NAME_LENGTH);
}

interface EffectiveSettings {
  knownHostsFiles: string[];
  acceptNew: boolean;
  connectTimeoutMs: number;
  keepalive: Keepalive;
}

/** What ssh_config says for this endpoint, under provision's own options. */
function effectiveSettings(endpoint: SshEndpoint, settings: MasterSettings): EffectiveSettings {
  const keepalive = endpoint.serverAlive ?? settings.keepalive;
  return {
    // ssh records new keys in the first file: provision's, else where ssh_config says (/dev/null: nowhere, never a global file).
    knownHostsFiles: [
      ...new Set([...settings.knownHostsFiles, endpoint.recordHostKeysIn ?? "/dev/null", ...endpoint.knownHostsFiles]),
    ],
    acceptNew:
      settings.acceptNewHostKeys ||
      endpoint.strictHostKeyChecking === "accept-new" ||
      endpoint.strictHostKeyChecking === "no",
    connectTimeoutMs: endpoint.connectTimeoutMs ?? settings.connectTimeoutMs,
    keepalive: {
      intervalMs: Math.max(1, Math.round(keepalive.intervalMs / 1000)) * 1000,
      countMax: keepalive.countMax,
    },
  };
}

/**
 * The master's argv. Options given with -o before the endpoint's own arguments win over them and
 * over ssh_config (ssh keeps the first value it sees). A hop's ProxyCommand wins over a ProxyJump
 * in ssh_config for the same reason (ssh takes whichever of the two comes first), but not over a
 * -J flag, which ssh refuses next to a ProxyCommand: -J is dropped, route.jumps already holds it.
 */
function masterArgv(
  endpoint: SshEndpoint,
  via: OpenSshMaster | undefined,
  eff: EffectiveSettings,
  sshBinary: string,
  socketPath: string,
  logPath: string,
): string[] {
  return [
    "-N",
    "-o",
    "ControlMaster=yes",
    "-o",
    `ControlPath=${escapePercent(socketPath)}`,
    "-o",
    "ControlPersist=no",
    "-o",
    "BatchMode=yes",
    "-o",
    `StrictHostKeyChecking=${eff.acceptNew ? "accept-new" : "yes"}`,
    "-o",
    `UserKnownHostsFile=${eff.knownHostsFiles.map((f) => configQuote(escapePercent(f))).join(" ") || "none"}`,
    "-o",
    `ConnectTimeout=${Math.max(1, Math.ceil(eff.connectTimeoutMs / 1000))}`,
    "-o",
    `ServerAliveInterval=${eff.keepalive.intervalMs / 1000}`,
    "-o",
    `ServerAliveCountMax=${eff.keepalive.countMax}`,
    ...(via ? ["-o", `ProxyCommand=${forwardThrough(via, endpoint, sshBinary)}`] : []),
    // Nothing provision did not ask for: no keys written behind its back, nothing forwarded to managed hosts.
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "ForwardAgent=no",
    "-o",
    "ForwardX11=no",
    "-v",
    "-E",
    logPath,
    ...(via ? withoutProxyJump(endpoint.sshArgv) : endpoint.sshArgv),
  ];
}

/**
 * A stdio forward over the previous hop's master. `-F none` and `ProxyCommand=false` make sure it
 * can never fall back to a connection of its own (ssh does when the socket is gone).
 */
function forwardThrough(via: OpenSshMaster, to: SshEndpoint, sshBinary: string): string {
  // The target is written in, quoted, instead of %h/%p: the shell that runs a ProxyCommand would
  // glob `[host]:port` against the working directory, and a name is never shell syntax here.
  const quoted = (s: string) => escapePercent(shQuote(s));
  return `${quoted(sshBinary)} -F none -S ${quoted(via.socketPath)} -o ControlMaster=no -o ProxyCommand=false -o BatchMode=yes -W ${quoted(`[${to.hostname}]:${to.port}`)} ${quoted(via.endpoint.alias)}`;
}

/** ssh expands %-tokens in ControlPath, ProxyCommand and UserKnownHostsFile. */
function escapePercent(s: string): string {
  return s.replace(/%/g, "%%");
}

function withoutProxyJump(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const isLast = i === argv.length - 1;
    if (!isLast && arg === "-J") {
      i++;
      continue;
    }
    if (!isLast && /^-J./.test(arg)) continue;
    if (!isLast && arg === "-o" && /^\s*proxyjump[\s=]/i.test(argv[i + 1] ?? "")) {
      i++;
      continue;
    }
    if (!isLast && /^-o\s*proxyjump[\s=]/i.test(arg)) continue;
    out.push(arg);
  }
  return out;
}

/**
 * Starts a master and waits until it is ready (its control socket exists), it exits, or the
 * connect timeout passes; a failure comes as a HostError explained from ssh's log. `role`
 * prefixes messages about a hop ("bastion root@10.0.0.1:22: …").
 */
export async function startMaster(
  endpoint: SshEndpoint,
  via: OpenSshMaster | undefined,
  settings: MasterSettings,
  label: string,
  role = "",
): Promise<OpenSshMaster> {
  const eff = effectiveSettings(endpoint, settings);
  const name = socketName([endpoint.sshArgv, via?.socketPath ?? null]);
  const socketPath = join(settings.controlDir, name);
  const logPath = join(settings.controlDir, `${name}.log`);
  const upstreamLogStart = via?.logSize() ?? 0;
  const logFd = openSync(logPath, "a", 0o600);
  let child: ChildProcess;
  try {
    // stderr into the log as well: what a ProxyCommand (our -W forward) says lands there too.
    child = spawn(settings.sshBinary, masterArgv(endpoint, via, eff, settings.sshBinary, socketPath, logPath), {
      stdio: ["ignore", "ignore", logFd],
      env: settings.env,
    });
  } finally {
    closeSync(logFd);
  }
  const master = new OpenSshMaster(endpoint, via, label, socketPath, logPath, eff.keepalive, child);
  live.add(master);
  installExitHook();
  const outcome = await readiness(master, performance.now() + eff.connectTimeoutMs);
  if (outcome === "ready") {
    master.connectedAddress = connectedAddress(master.readLog());
    // ssh appends (O_APPEND), so it goes on at the start; what matters later is how it ends.
    truncateSync(logPath, 0);
    return master;
  }

  const failure = master.spawnError
    ? {
        kind: "unreachable" as const,
        message: `cannot run ${settings.sshBinary}: ${(master.spawnError as NodeJS.ErrnoException).code ?? master.spawnError.message}; install the OpenSSH client or point provision at it`,
      }
    : explainConnectFailure(master.readLog(), {
        where: endpointLabel(endpoint),
        hostKeyAt: `${endpoint.hostKeyName}:${endpoint.port}`,
        hostPort: `${endpoint.hostname}:${endpoint.port}`,
        knownHostsFiles: eff.knownHostsFiles,
        connectTimeoutMs: eff.connectTimeoutMs,
        via: via?.label,
        forwardRefusal: via ? forwardRefusal(via.readLog(upstreamLogStart)) : null,
        deadlinePassed: outcome === "deadline",
      });
  await master.stop();
  throw new HostError(`${role}${failure.message}`, failure.kind);
}

async function readiness(master: OpenSshMaster, deadline: number): Promise<"ready" | "exited" | "deadline"> {
  let pauseMs = 2;
  for (;;) {
    if (master.socketReady()) return "ready";
    if (!master.alive) return "exited";
    const left = deadline - performance.now();
    if (left <= 0) return "deadline";
    await Promise.race([sleep(Math.min(pauseMs, left)), master.exited]);
    pauseMs = Math.min(pauseMs * 2, 25);
  }
}

/** The hops of a route, held for one target; release() once the target is done with them. */
export interface HopLease {
  /** The master the target rides on; undefined for a route without jumps. */
  last: OpenSshMaster | undefined;
  release(): Promise<void>;
}

interface SharedHop {
  master: Promise<OpenSshMaster>;
  /** The master once it came up. */
  settled?: OpenSshMaster;
  users: number;
}

/**
 * Keyed by the hop's argv, its upstream chain and the settings that shape its master. A hop that
 * failed stays failed for the run: the hosts behind it fail at once with its message instead of
 * each waiting out its own connect timeout.
 */
const sharedHops = new Map<string, SharedHop>();

export async function acquireHops(jumps: SshEndpoint[], settings: MasterSettings): Promise<HopLease> {
  const held: Array<{ key: string; hop: SharedHop }> = [];
  const release = async () => {
    for (const { key, hop } of held.reverse()) await releaseHop(key, hop);
  };
  let key = JSON.stringify([
    settings.sshBinary,
    settings.controlDir,
    settings.knownHostsFiles,
    settings.acceptNewHostKeys,
  ]);
  let last: OpenSshMaster | undefined;
  try {
    for (const [i, jump] of jumps.entries()) {
      key = JSON.stringify([key, jump.sshArgv]);
      const label = `bastion ${endpointLabel(jump)}${jumps.length > 1 ? ` (hop ${i + 1} of ${jumps.map((j) => j.alias).join(" → ")})` : ""}`;
      const hop = sharedHopFor(key, jump, last, settings, label);
      hop.users += 1;
      held.push({ key, hop });
      last = await hop.master;
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { last, release };
}

function sharedHopFor(
  key: string,
  jump: SshEndpoint,
  via: OpenSshMaster | undefined,
  settings: MasterSettings,
  label: string,
): SharedHop {
  const existing = sharedHops.get(key);
  // A hop whose master came up and later went away (bastion rebooted), or rode on one that did:
  // the next target starts a new one.
  const usable =
    existing && (existing.settled === undefined || (existing.settled.alive && existing.settled.via === via));
  if (existing && usable) return existing;
  const hop: SharedHop = { master: startMaster(jump, via, settings, label, `${label}: `), users: 0 };
  hop.master.then(
    (m) => (hop.settled = m),
    () => undefined,
  );
  sharedHops.set(key, hop);
  return hop;
}

async function releaseHop(key: string, hop: SharedHop): Promise<void> {
  hop.users -= 1;
  // Unsettled: it failed, and stays as the run's answer for that bastion.
  if (hop.users > 0 || hop.settled === undefined) return;
  if (sharedHops.get(key) === hop) sharedHops.delete(key);
  await hop.settled.stop();
}

/** Ends every master this process started (targets and hops) and forgets failed hops. */
export async function stopAllMasters(): Promise<void> {
  sharedHops.clear();
  await Promise.all([...live].map((m) => m.stop()));
  if (createdControlDir) {
    rmSync(createdControlDir, { recursive: true, force: true });
    createdControlDir = undefined;
  }
}
