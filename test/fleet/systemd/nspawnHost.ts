import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { isProcessRunning, runCommand, sleep, SYSTEM_ENV, type CommandResult } from "../shell.js";
import { pidsInCgroupTree, removeMachineCgroups, systemdNames } from "./containers.js";

// One booted container: its power-on (systemd-nspawn, which creates a fresh network namespace at every boot, so
// nothing set at runtime survives a reboot), its clean power-off, and commands run inside it without SSH.

export interface ContainerSpec {
  prefix: string;
  /** The host's name (hostname, inventory name). */
  name: string;
  machine: string;
  rootDir: string;
  bridge: string;
  cgroupDir: string;
  /** Console output of every boot, appended. */
  logFile: string;
  /** Where sshd must accept connections for the host to count as up. */
  address: string;
}

export interface BootReport {
  host: string;
  /** What `systemctl is-system-running` said once startup finished. */
  state: "running" | "degraded";
  /** Units in the failed state (why the state is "degraded"). */
  failedUnits: string[];
  /** From starting systemd-nspawn until systemd finished startup and sshd accepted a connection. */
  bootMs: number;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
}

const NSPAWN_STARTUP_MS = 15_000;
const SYSTEM_STARTUP_MS = 90_000;
const SSHD_READY_MS = 15_000;
const POWER_OFF_MS = 30_000;
const BRIDGE_PORT_GONE_MS = 5_000;
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
const POLL_MS = 50;
const FINISHED_STATES = new Set(["running", "degraded"]);
/** States systemd does not leave by itself: waiting longer is pointless. */
const STUCK_STATES = new Set(["maintenance", "stopping"]);

/** Boots the container and waits until systemd finished startup and sshd accepts connections. */
export async function bootContainer(spec: ContainerSpec): Promise<BootReport> {
  const started = Date.now();
  if (pidsInCgroupTree(spec.cgroupDir).length > 0) throw new Error(`${describe(spec)} is already running`);
  removeMachineCgroups(spec.prefix, spec.machine);
  mkdirSync(spec.cgroupDir, { recursive: true });
  const nspawnPid = launchNspawn(spec);
  await waitForSystemdAsInit(spec, nspawnPid);
  const state = await waitForStartupFinished(spec);
  const failedUnits = await listFailedUnits(spec);
  if (!FINISHED_STATES.has(state)) {
    throw bootFailure(spec, `systemd is '${state}' after boot; failed units: ${failedUnits.join(", ") || "none"}`);
  }
  await waitForSshd(spec);
  return { host: spec.name, state: state as BootReport["state"], failedUnits, bootMs: Date.now() - started };
}

/** Asks systemd inside for a clean power-off (through nspawn, as `machinectl poweroff` would) and waits until it is gone. */
export async function powerOffContainer(spec: ContainerSpec): Promise<void> {
  const nspawnPid = readPids(join(spec.cgroupDir, "supervisor")).find(isProcessRunning);
  // On SIGTERM nspawn sends the container's systemd its shutdown signal, then exits once that systemd did.
  if (nspawnPid !== undefined) signal(nspawnPid, "SIGTERM");
  const deadline = Date.now() + POWER_OFF_MS;
  while (pidsInCgroupTree(spec.cgroupDir).length > 0) {
    if (Date.now() > deadline) {
      forceKill(spec);
      throw bootFailure(spec, `did not power off within ${POWER_OFF_MS} ms; killed it`);
    }
    await sleep(POLL_MS);
  }
  await waitForBridgePortGone(spec);
}

/**
 * Runs a shell command as root inside the running container (every namespace of its PID 1), without SSH, so it works
 * while sshd is broken. Never throws on a non-zero exit; a command still running after timeoutMs reports 124.
 */
export async function execInContainer(
  spec: ContainerSpec,
  script: string,
  options: ExecOptions = {},
): Promise<CommandResult> {
  const init = containerInit(spec);
  if (init === undefined) return { stdout: "", stderr: `${describe(spec)} is not running`, code: 255 };
  return runCommand("nsenter", ["--target", String(init), "--all", "--", "/bin/sh", "-c", script], {
    input: options.input ?? "",
    env: { HOME: "/root", USER: "root", LOGNAME: "root" },
    timeoutMs: options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
  });
}

/**
 * The container's PID 1, once it is systemd (before that it is nspawn still setting up the container).
 * Looked up in the container's cgroup each time, so a recycled pid can never be mistaken for it.
 */
function containerInit(spec: ContainerSpec): number | undefined {
  return pidsInCgroupTree(spec.cgroupDir).find((pid) => isPid1OfItsNamespace(pid) && commandOf(pid) === "systemd");
}

function launchNspawn(spec: ContainerSpec): number {
  const args = [
    `--directory=${spec.rootDir}`,
    "--boot",
    // There is no systemd-machined to register with, nor a system bus to ask for a scope unit.
    "--register=no",
    "--keep-unit",
    `--machine=${spec.machine}`,
    `--hostname=${spec.name}`,
    // A fresh veth pair and network namespace at every boot, attached to the fleet's bridge.
    `--network-bridge=${spec.bridge}`,
    "--console=read-only",
    // The host's own settings belong in its image, not copied in from this machine at each boot.
    "--resolv-conf=off",
    "--timezone=off",
    "--link-journal=no",
  ];
  const log = openSync(spec.logFile, "a");
  try {
    // The shell moves itself into the container's cgroup, then becomes nspawn: everything of the container lives in
    // that cgroup, where teardown finds it even after this process died.
    const child = spawn(
      "sh",
      ["-c", 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', "sh", spec.cgroupDir, "systemd-nspawn", ...args],
      {
        detached: true,
        stdio: ["ignore", log, log],
        cwd: "/",
        // Pure cgroup2 inside, as on current distributions (trixie's systemd no longer boots on cgroup v1).
        env: { ...SYSTEM_ENV, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" },
      },
    );
    child.on("error", () => {});
    child.unref();
    if (child.pid === undefined) throw bootFailure(spec, "could not spawn systemd-nspawn");
    return child.pid;
  } finally {
    closeSync(log);
  }
}

async function waitForSystemdAsInit(spec: ContainerSpec, nspawnPid: number): Promise<void> {
  const deadline = Date.now() + NSPAWN_STARTUP_MS;
  while (containerInit(spec) === undefined) {
    if (!isProcessRunning(nspawnPid)) throw bootFailure(spec, "systemd-nspawn exited during startup");
    if (Date.now() > deadline) {
      forceKill(spec);
      throw bootFailure(spec, `systemd did not start as PID 1 within ${NSPAWN_STARTUP_MS} ms`);
    }
    await sleep(POLL_MS);
  }
}

/** The state after startup: running or degraded, or where it got stuck. */
async function waitForStartupFinished(spec: ContainerSpec): Promise<string> {
  const deadline = Date.now() + SYSTEM_STARTUP_MS;
  let state = "";
  while (Date.now() < deadline) {
    // Says "offline" (or fails) until PID 1 listens on its private socket; after that --wait blocks until startup ends.
    const result = await execInContainer(spec, "systemctl is-system-running --wait", {
      timeoutMs: Math.max(1, deadline - Date.now()),
    });
    state = result.stdout.trim();
    if (FINISHED_STATES.has(state) || STUCK_STATES.has(state)) return state;
    await sleep(POLL_MS);
  }
  forceKill(spec);
  throw bootFailure(spec, `systemd did not finish startup within ${SYSTEM_STARTUP_MS} ms (last state '${state}')`);
}

async function listFailedUnits(spec: ContainerSpec): Promise<string[]> {
  const result = await execInContainer(spec, "systemctl list-units --failed --plain --no-legend --no-pager");
  return result.stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter(Boolean);
}

async function waitForSshd(spec: ContainerSpec): Promise<void> {
  const deadline = Date.now() + SSHD_READY_MS;
  // ssh.service is up once startup finished, but networkd may still be adding the address.
  while (!(await acceptsConnection(spec.address, 22, 1_000))) {
    if (Date.now() > deadline) {
      throw bootFailure(spec, `sshd did not accept connections on ${spec.address}:22 within ${SSHD_READY_MS} ms`);
    }
    await sleep(POLL_MS);
  }
}

/** The veth's root-namespace end disappears only once the old network namespace is freed; nspawn needs its name again. */
async function waitForBridgePortGone(spec: ContainerSpec): Promise<void> {
  const port = systemdNames.bridgePort(spec.machine);
  const deadline = Date.now() + BRIDGE_PORT_GONE_MS;
  while (existsSync(`/sys/class/net/${port}`)) {
    if (Date.now() > deadline)
      throw bootFailure(spec, `interface ${port} still exists ${BRIDGE_PORT_GONE_MS} ms after power-off`);
    await sleep(POLL_MS);
  }
}

function forceKill(spec: ContainerSpec): void {
  for (const pid of pidsInCgroupTree(spec.cgroupDir)) signal(pid, "SIGKILL");
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

function acceptsConnection(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (accepted: boolean) => {
      socket.destroy();
      resolve(accepted);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

function isPid1OfItsNamespace(pid: number): boolean {
  const nsPids = /^NSpid:\s+(.+)$/m
    .exec(readFileOr(`/proc/${pid}/status`, ""))?.[1]
    ?.trim()
    .split(/\s+/);
  return nsPids !== undefined && nsPids.length > 1 && nsPids.at(-1) === "1";
}

function commandOf(pid: number): string {
  return readFileOr(`/proc/${pid}/comm`, "").trim();
}

function readPids(cgroupDir: string): number[] {
  return readFileOr(join(cgroupDir, "cgroup.procs"), "").split("\n").filter(Boolean).map(Number);
}

function readFileOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

function describe(spec: ContainerSpec): string {
  return `systemd host ${spec.name} (machine ${spec.machine}, ${spec.address})`;
}

function bootFailure(spec: ContainerSpec, reason: string): Error {
  const console = existsSync(spec.logFile) ? readFileSync(spec.logFile, "utf8") : "(no console output)";
  const tail = console.trim().split("\n").slice(-30).join("\n");
  return new Error(`${describe(spec)}: ${reason}\n--- last console lines (${spec.logFile}) ---\n${tail}`);
}
