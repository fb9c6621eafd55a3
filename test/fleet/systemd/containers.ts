import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isProcessRunning, sleepSync } from "../shell.js";

// Which processes, cgroups and nspawn runtime files belong to a systemd fleet, found from the machine's state alone
// (so a crashed run's containers are found as well), and their synchronous removal.
// Synchronous and independent of teardown.ts on purpose: teardownFleetSync calls this, also from an 'exit' handler.

/** Parent cgroup of every fleet container; stays (empty) because parallel runs create their prefixes in it. */
const FLEET_CGROUP = "provision-fleet";
const NSPAWN_LOCK_DIR = "/run/systemd/nspawn/locks";
const NSPAWN_PROPAGATE_DIR = "/run/systemd/nspawn/propagate";
const KILL_WAIT_MS = 5_000;
/** A dying container's network namespace (and with it the host-side veth) is freed asynchronously. */
const VETH_WAIT_MS = 3_000;
/** nspawn names the bridge port "vb-<machine>" and hashes it once longer than 15 characters (IFNAMSIZ - 1). */
export const MAX_MACHINE_NAME_LENGTH = 15 - "vb-".length;
export const MAX_SYSTEMD_HOSTS = 99;

export const systemdNames = {
  /** Two digits keep "vb-<machine>" within 15 characters for a standard prefix and up to 99 hosts. */
  machine: (prefix: string, index: number) => `${prefix}${String(index).padStart(2, "0")}`,
  bridgePort: (machine: string) => `vb-${machine}`,
};

/** cgroup2 hierarchy nspawn's container lives in: "/sys/fs/cgroup" or, on a hybrid machine, "/sys/fs/cgroup/unified". */
export function unifiedCgroupMount(): string | undefined {
  return cgroupMounts().find((mount) => mount.unified)?.path;
}

/** Where one container's nspawn and all of its processes live; nspawn creates "supervisor" and "payload" in it. */
export function machineCgroupDir(prefix: string, machine: string): string {
  const mount = unifiedCgroupMount();
  if (!mount)
    throw new Error(
      "no cgroup2 hierarchy mounted: systemd-nspawn needs one (mount -t cgroup2 none /sys/fs/cgroup/unified)",
    );
  return join(mount, FLEET_CGROUP, prefix, machine);
}

/** Prefixes that have a cgroup on this machine, whether or not processes still run in it. */
export function systemdFleetPrefixesOnMachine(): string[] {
  return [...new Set(fleetCgroupRoots().flatMap((root) => subdirectories(root)))];
}

export function systemdContainersRunning(prefix: string): boolean {
  return prefixCgroupDirs(prefix).some((dir) => pidsInCgroupTree(dir).length > 0);
}

export function pidsInCgroupTree(dir: string): number[] {
  const own = readLines(join(dir, "cgroup.procs")).map(Number);
  return [...own, ...subdirectories(dir).flatMap((child) => pidsInCgroupTree(join(dir, child)))];
}

/**
 * Kills every container of the fleet and removes their cgroups and nspawn runtime files.
 * Returns descriptions of what could not be removed; a fleet without systemd hosts costs two directory reads.
 */
export function stopSystemdContainersSync(prefix: string): string[] {
  const cgroupDirs = prefixCgroupDirs(prefix);
  if (cgroupDirs.length === 0) return [];
  const machines = [...new Set(cgroupDirs.flatMap(subdirectories))];
  const pids = [...new Set(cgroupDirs.flatMap(pidsInCgroupTree))];
  // nspawn removes its image lock only on a clean exit; the lock's name is only known while it holds it open.
  const lockFiles = pids.flatMap(openNspawnLockFiles);
  const survivors = killAndAwait(cgroupDirs, pids);
  for (const file of lockFiles) rmSync(file, { force: true });
  for (const machine of machines) rmSync(join(NSPAWN_PROPAGATE_DIR, machine), { recursive: true, force: true });
  for (const dir of cgroupDirs) removeCgroupTree(dir);
  const portsLeft = waitForBridgePortsGone(machines.map(systemdNames.bridgePort));
  return [
    ...survivors.map((pid) => `container process ${pid}`),
    ...prefixCgroupDirs(prefix).map((dir) => `cgroup ${dir}`),
    ...portsLeft.map((name) => `interface ${name}`),
  ];
}

/** Removes one stopped container's cgroups, so its next boot starts from fresh ones as on a real machine. */
export function removeMachineCgroups(prefix: string, machine: string): void {
  for (const dir of prefixCgroupDirs(prefix)) removeCgroupTree(join(dir, machine));
}

function killAndAwait(cgroupDirs: string[], pids: number[]): number[] {
  // cgroup.kill also catches processes forked between our listing and the kill.
  for (const dir of cgroupDirs) {
    try {
      writeFileSync(join(dir, "cgroup.kill"), "1");
    } catch {
      // Not a cgroup2 directory, or a kernel before 5.14: the signals below do the work.
    }
  }
  pids.forEach(killQuietly);
  const deadline = Date.now() + KILL_WAIT_MS;
  let running = cgroupDirs.flatMap(pidsInCgroupTree).filter(isProcessRunning);
  while (running.length > 0 && Date.now() < deadline) {
    running.forEach(killQuietly);
    sleepSync(20);
    running = cgroupDirs.flatMap(pidsInCgroupTree).filter(isProcessRunning);
  }
  return running;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

function waitForBridgePortsGone(names: string[]): string[] {
  const deadline = Date.now() + VETH_WAIT_MS;
  let present = names.filter(interfaceExists);
  while (present.length > 0 && Date.now() < deadline) {
    sleepSync(20);
    present = present.filter(interfaceExists);
  }
  return present;
}

function interfaceExists(name: string): boolean {
  return readdirSafe("/sys/class/net").includes(name);
}

function openNspawnLockFiles(pid: number): string[] {
  return readdirSafe(`/proc/${pid}/fd`)
    .map((fd) => readlinkSafe(`/proc/${pid}/fd/${fd}`))
    .filter((target): target is string => target?.startsWith(`${NSPAWN_LOCK_DIR}/`) ?? false);
}

/** Deepest first: a cgroup can only be removed once it has no children. */
function removeCgroupTree(dir: string): void {
  for (const child of subdirectories(dir)) removeCgroupTree(join(dir, child));
  try {
    rmdirSync(dir);
  } catch {
    // Reported as a leftover.
  }
}

function prefixCgroupDirs(prefix: string): string[] {
  return fleetCgroupRoots()
    .map((root) => join(root, prefix))
    .filter((dir) => existsSync(dir));
}

/**
 * nspawn mirrors the container's cgroup into the named "systemd" v1 hierarchy of a hybrid machine,
 * so both hierarchies hold the fleet's cgroups.
 */
function fleetCgroupRoots(): string[] {
  return cgroupMounts().map((mount) => join(mount.path, FLEET_CGROUP));
}

interface CgroupMount {
  path: string;
  unified: boolean;
}

function cgroupMounts(): CgroupMount[] {
  return readLines("/proc/self/mountinfo").flatMap((line): CgroupMount[] => {
    const [mountFields, superFields] = line.split(" - ");
    const path = mountFields?.split(" ")[4];
    const [fsType, , superOptions] = superFields?.split(" ") ?? [];
    if (!path) return [];
    if (fsType === "cgroup2") return [{ path, unified: true }];
    if (fsType === "cgroup" && superOptions?.split(",").includes("name=systemd")) return [{ path, unified: false }];
    return [];
  });
}

function subdirectories(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}

function readLines(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readlinkSafe(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
