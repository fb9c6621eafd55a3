import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { readFleetRecord, releaseSubnetsOf, removeFleetRecord, subnetBasesOf } from "./registry.js";
import { isProcessRunning, SYSTEM_ENV, sleepSync } from "./shell.js";
import { stopSystemdContainersSync } from "./systemd/containers.js";

// Synchronous on purpose: the same teardown must also run inside a process 'exit' handler.

const NETNS_DIR = "/run/netns";
const KILL_WAIT_MS = 5_000;
export const DEFAULT_FLEET_PARENT_DIR = "/tmp";
export const DEFAULT_FLEET_DIR_PREFIX = "provision-fleet-";

export const names = {
  bridge: (prefix: string) => `${prefix}b`,
  veth: (prefix: string, index: number) => `${prefix}v${index}`,
  netns: (prefix: string, index: number) => `${prefix}-h${index}`,
  defaultDir: (prefix: string) => `${DEFAULT_FLEET_PARENT_DIR}/${DEFAULT_FLEET_DIR_PREFIX}${prefix}`,
};

export function fleetNetnsNames(prefix: string): string[] {
  return listDir(NETNS_DIR).filter((name) => name.startsWith(prefix) && /^-h\d+$/.test(name.slice(prefix.length)));
}

export function fleetInterfaceNames(prefix: string): string[] {
  return listDir("/sys/class/net").filter(
    (name) => name.startsWith(prefix) && /^(b|v\d+)$/.test(name.slice(prefix.length)),
  );
}

export function pidsInNetns(netnsNames: readonly string[]): number[] {
  return pidsInNetInodes(netnsNames.map(netnsInode).filter((inode): inode is number => inode !== undefined));
}

/** Processes in any of these network namespaces; still works once their /run/netns names are gone. */
export function pidsInNetInodes(netInodes: readonly number[]): number[] {
  const inodes = new Set(netInodes);
  if (inodes.size === 0) return [];
  return listDir("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid && inodes.has(netInodeOfProcess(pid) ?? -1));
}

export function isProcessInNetns(pid: number, netnsName: string): boolean {
  const inode = netnsInode(netnsName);
  return inode !== undefined && netInodeOfProcess(pid) === inode;
}

/** Removes everything a fleet may have left behind; returns descriptions of what could not be removed. */
export function teardownFleetSync(prefix: string, dir = fleetDirOf(prefix)): string[] {
  // First: a systemd host's container holds an overlay mount under dir and a port on the fleet's bridge.
  const containersLeft = stopSystemdContainersSync(prefix);
  const netnsNames = fleetNetnsNames(prefix);
  const survivors = killAndAwait(pidsInNetns(netnsNames));
  deleteNetworkObjects(prefix, netnsNames);
  const subnets = subnetBasesOf(prefix);
  deleteRoutesInto(subnets);
  unmountAllUnder(dir);
  rmSync(dir, { recursive: true, force: true });
  const routesLeft = routesInto(subnets);
  // The claims are how a later cleanupStaleFleets finds routes it still has to remove.
  if (routesLeft.length === 0) releaseSubnetsOf(prefix);
  removeFleetRecord(prefix);
  return [...containersLeft, ...leftoversOf(prefix, dir, survivors), ...routesLeft.map((route) => `route ${route}`)];
}

/** Route types the root namespace holds towards fleet addresses, besides the bridge's own. */
const FLEET_ROUTE_TYPES = new Set(["blackhole", "unreachable"]);

/**
 * Routes in the root namespace towards fleet addresses: the fleet's own `unreachable` routes for
 * its hidden segments, and what a test added (a blackhole to fake a dead host). A test killed
 * before its cleanup leaves them, and the next fleet on this /24 would be unreachable.
 */
export function routesInto(subnetBases: readonly string[]): string[] {
  if (subnetBases.length === 0) return [];
  let routes: { dst?: string; type?: string }[];
  try {
    routes = JSON.parse(
      execFileSync("ip", ["-j", "route", "show", "table", "main"], { env: SYSTEM_ENV, encoding: "utf8" }),
    ) as typeof routes;
  } catch {
    return [];
  }
  return routes
    .filter(
      (r) =>
        FLEET_ROUTE_TYPES.has(r.type ?? "") &&
        typeof r.dst === "string" &&
        subnetBases.some((base) => r.dst!.startsWith(`${base}.`)),
    )
    .map((r) => `${r.type} ${r.dst}`);
}

function deleteRoutesInto(subnetBases: readonly string[]): void {
  for (const route of routesInto(subnetBases)) {
    try {
      execFileSync("ip", ["route", "del", ...route.split(" ")], { env: SYSTEM_ENV, stdio: "ignore" });
    } catch {
      // Reported as a leftover.
    }
  }
}

export function fleetDirOf(prefix: string): string {
  return readFleetRecord(prefix)?.dir ?? names.defaultDir(prefix);
}

function leftoversOf(prefix: string, dir: string, survivingPids: number[]): string[] {
  return [
    ...mountPointsUnder(dir).map((mountPoint) => `mount ${mountPoint}`),
    ...survivingPids.map((pid) => `process ${pid}`),
    ...fleetNetnsNames(prefix).map((name) => `netns ${name}`),
    ...fleetInterfaceNames(prefix).map((name) => `interface ${name}`),
  ];
}

function unmountAllUnder(dir: string): void {
  // Deepest first; lazy, so a process we could not kill does not keep the fleet's memory-backed dir around.
  for (const mountPoint of mountPointsUnder(dir).sort((a, b) => b.length - a.length)) {
    try {
      execFileSync("umount", ["--lazy", mountPoint], { env: SYSTEM_ENV, stdio: "ignore" });
    } catch {
      // Reported by leftoversOf.
    }
  }
}

export function mountPointsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => unescapeMountPath(line.split(" ")[4] ?? ""))
    .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(`${dir}/`));
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

function killAndAwait(pids: number[]): number[] {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  const deadline = Date.now() + KILL_WAIT_MS;
  let running = pids.filter(isProcessRunning);
  while (running.length > 0 && Date.now() < deadline) {
    sleepSync(20);
    running = running.filter(isProcessRunning);
  }
  return running;
}

function deleteNetworkObjects(prefix: string, netnsNames: string[]): void {
  // Veths before the bridge they are enslaved to; one `ip` process for all of them.
  const bridge = names.bridge(prefix);
  const interfaces = fleetInterfaceNames(prefix);
  const ordered = [...interfaces.filter((name) => name !== bridge), ...interfaces.filter((name) => name === bridge)];
  const commands = [...ordered.map((name) => `link del ${name}`), ...netnsNames.map((name) => `netns del ${name}`)];
  if (commands.length === 0) return;
  try {
    execFileSync("ip", ["-force", "-batch", "-"], {
      input: commands.join("\n") + "\n",
      env: SYSTEM_ENV,
      stdio: ["pipe", "ignore", "ignore"],
    });
  } catch {
    // Partial failures are reported by leftoversOf.
  }
}

function netnsInode(name: string): number | undefined {
  try {
    return statSync(`${NETNS_DIR}/${name}`).ino;
  } catch {
    return undefined;
  }
}

export function netInodeOfProcess(pid: number): number | undefined {
  try {
    const match = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/net`));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
