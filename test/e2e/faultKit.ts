import { execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import type { Fleet, FleetHost } from "../fleet/fleet.js";
import { isProcessRunning, SYSTEM_ENV } from "../fleet/shell.js";
import { names, pidsInNetns } from "../fleet/teardown.js";

/**
 * Faults for the fleet's hosts, made from the root namespace: kill a host's sshd or its sessions,
 * start sshd again, and shape or drop the traffic towards one host on its root-side veth. Every
 * fault touches only one fleet host's processes, veth or /32 route.
 */

const WAIT_STEP_MS = 20;

export function hostOf(fleet: Fleet, name: string): FleetHost {
  const host = fleet.hosts.find((h) => h.name === name);
  if (!host) throw new Error(`no fleet host ${name}`);
  return host;
}

/** The root-namespace end of the host's veth pair: its egress is the traffic towards the host. */
export function rootVeth(fleet: Fleet, name: string): string {
  const dev = names.veth(fleet.prefix, Number(name.replace(/^h/, "")));
  if (!existsSync(`/sys/class/net/${dev}`)) throw new Error(`no interface ${dev} for fleet host ${name}`);
  return dev;
}

interface HostProcess {
  pid: number;
  ppid: number;
  comm: string;
}

export function processesOf(host: FleetHost): HostProcess[] {
  return pidsInNetns([host.netns]).flatMap((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      return [{ pid, ppid, comm }];
    } catch {
      return [];
    }
  });
}

async function killAndWait(pids: number[], what: string): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5_000;
  while (pids.some(isProcessRunning)) {
    if (Date.now() > deadline)
      throw new Error(`${what}: pids ${pids.filter(isProcessRunning).join(", ")} still running after 5 s`);
    await sleep(WAIT_STEP_MS);
  }
}

/** Stops the host's sshd (the listener and every session): new connections are refused. */
export async function killSshd(host: FleetHost): Promise<number[]> {
  const pids = processesOf(host).map((p) => p.pid);
  await killAndWait(pids, `killing every process of ${host.name}`);
  return pids;
}

/**
 * Cuts the host's live SSH connections and keeps its listener. `withChildren` also kills what
 * the sessions run (the remote shell): a writer killed mid-step, like an OOM kill. Without it
 * only the connection dies and the shell sees the end of its input.
 */
export async function killSessions(host: FleetHost, opts: { withChildren: boolean }): Promise<HostProcess[]> {
  const victims = processesOf(host).filter((p) => p.pid !== host.sshdPid && (opts.withChildren || p.comm === "sshd"));
  await killAndWait(
    victims.map((p) => p.pid),
    `killing the sessions of ${host.name}`,
  );
  return victims;
}

/** Waits until only the listener runs on the host (a shell whose connection died may still finish its step). */
export async function waitForQuiet(host: FleetHost, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const others = processesOf(host).filter((p) => p.pid !== host.sshdPid);
    if (others.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `${host.name} still runs ${others.map((p) => `${p.comm}(${p.pid})`).join(", ")} after ${timeoutMs} ms`,
      );
    await sleep(WAIT_STEP_MS);
  }
}

// The fleet's boot script without the address setup (the netns and its eth0 outlive sshd).
const RESTART_SCRIPT = `
set -e
for dir in etc home root; do mount --bind "$1/$dir" "/$dir"; done
hostname "$2"
exec /usr/sbin/sshd -D -e
`;

/**
 * Starts the host's sshd again the way the fleet booted it (its netns, a fresh mount and uts
 * namespace over the same /etc, /home, /root, so the same host key), and points the fleet's
 * handle at the new pid so fleet.exec works again.
 */
export async function restartSshd(host: FleetHost): Promise<void> {
  if (isProcessRunning(host.sshdPid) && processesOf(host).some((p) => p.pid === host.sshdPid))
    throw new Error(`${host.name}: sshd ${host.sshdPid} still runs`);
  const hostDir = dirname(host.etcDir);
  const log = openSync(join(hostDir, "sshd.log"), "a");
  let pid: number | undefined;
  try {
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        host.netns,
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "sh",
        "-c",
        RESTART_SCRIPT,
        "sh",
        hostDir,
        host.name,
      ],
      { detached: true, stdio: ["ignore", log, log], env: SYSTEM_ENV, cwd: "/" },
    );
    child.on("error", () => undefined);
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(log);
  }
  if (pid === undefined) throw new Error(`could not spawn sshd for ${host.name}`);
  const deadline = Date.now() + 10_000;
  while (!(await acceptsTcp(host.address, 22))) {
    if (!isProcessRunning(pid))
      throw new Error(`sshd of ${host.name} exited at restart; see ${join(hostDir, "sshd.log")}`);
    if (Date.now() > deadline) throw new Error(`sshd of ${host.name} did not listen within 10 s after restart`);
    await sleep(50);
  }
  const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  if (comm !== "sshd") throw new Error(`expected the restarted pid ${pid} to be sshd, found ${comm}`);
  host.sshdPid = pid;
}

function acceptsTcp(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

/** Replaces the root qdisc of a root-namespace fleet veth; returns the undo. */
export function setRootQdisc(dev: string, spec: string[]): () => void {
  execFileSync("tc", ["qdisc", "replace", "dev", dev, "root", ...spec], { env: SYSTEM_ENV, stdio: "pipe" });
  return () => clearRootQdisc(dev);
}

export function clearRootQdisc(dev: string): void {
  if (!existsSync(`/sys/class/net/${dev}`)) return;
  const shown = execFileSync("tc", ["qdisc", "show", "dev", dev, "root"], { env: SYSTEM_ENV, encoding: "utf8" });
  if (/^qdisc (tbf|bfifo) /m.test(shown))
    execFileSync("tc", ["qdisc", "del", "dev", dev, "root"], { env: SYSTEM_ENV, stdio: "pipe" });
}

/** Adds `ip route add blackhole ADDRESS/32` in the root namespace; returns the undo. */
export function addBlackholeRoute(address: string): () => void {
  if (!/^198\.(18|19)\.\d{1,3}\.\d{1,3}$/.test(address)) throw new Error(`${address} is not a fleet address`);
  execFileSync("ip", ["route", "add", "blackhole", `${address}/32`], { env: SYSTEM_ENV, stdio: "pipe" });
  return () => removeBlackholeRoute(address);
}

export function removeBlackholeRoute(address: string): void {
  const shown = execFileSync("ip", ["route", "show", "type", "blackhole"], { env: SYSTEM_ENV, encoding: "utf8" });
  if (
    shown
      .split("\n")
      .some((line) => line.trim().startsWith(`blackhole ${address} `) || line.trim() === `blackhole ${address}`)
  ) {
    execFileSync("ip", ["route", "del", "blackhole", `${address}/32`], { env: SYSTEM_ENV, stdio: "pipe" });
  }
}

/** Bytes our side has queued but the host has not acknowledged, on the SSH connection to it. */
export function unackedBytesTo(address: string): number {
  const out = execFileSync("ss", ["-Htn", "state", "established", "dst", `${address}:22`], {
    env: SYSTEM_ENV,
    encoding: "utf8",
  });
  return out
    .split("\n")
    .filter(Boolean)
    .reduce((max, line) => Math.max(max, Number(line.trim().split(/\s+/)[1] ?? 0)), 0);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
