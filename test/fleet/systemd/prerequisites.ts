import { accessSync, constants, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runChecked, SYSTEM_ENV } from "../shell.js";
import { unifiedCgroupMount } from "./containers.js";

/** The fleet registry's directory; the lock's name matches none of its record or claim patterns. */
const LOCK_DIR = "/run/provision-fleet";

/** Each command, and what provides it on Debian. */
const REQUIRED_COMMANDS: Record<string, string> = {
  "systemd-nspawn": "apt-get install systemd-container",
  debootstrap: "apt-get install debootstrap",
  nsenter: "apt-get install util-linux",
  flock: "apt-get install util-linux",
  mount: "apt-get install mount",
  mountpoint: "apt-get install util-linux",
  chroot: "apt-get install coreutils",
  mknod: "apt-get install coreutils",
  ip: "apt-get install iproute2",
  "ssh-keygen": "apt-get install openssh-client",
};

/** Empty when a systemd fleet can start here; otherwise one line per problem, each saying how to fix it. */
export function checkSystemdFleetPrerequisites(): string[] {
  const problems: string[] = [];
  if (process.platform !== "linux") problems.push("needs Linux (systemd-nspawn containers)");
  if (process.getuid?.() !== 0)
    problems.push("must run as root (boots containers, creates bridges and overlay mounts)");
  for (const [command, fix] of Object.entries(REQUIRED_COMMANDS)) {
    if (!findInPath(command)) problems.push(`${command} not found in ${SYSTEM_ENV.PATH}: ${fix}`);
  }
  if (!kernelFilesystems().includes("overlay")) {
    problems.push("the kernel has no overlay filesystem (hosts share one cached rootfs through it): modprobe overlay");
  }
  if (!unifiedCgroupMount()) {
    problems.push(
      "no cgroup2 hierarchy mounted (nspawn puts each container in one): mount -t cgroup2 none /sys/fs/cgroup",
    );
  }
  return problems;
}

/**
 * What systemd-nspawn expects to find when PID 1 is systemd, made by hand when it is not: a tmpfs on
 * /run/systemd/nspawn (nspawn sets up each container's mount propagation below it) and the "inaccessible" nodes
 * that systemd bind-mounts over paths it hides. Idempotent and serialized by a lock, so parallel runs can call it.
 * Never undone: it is shared machine-wide, costs nothing, and another run's (or a CLI-kept fleet's) containers may
 * still depend on it; unmounting it under a running nspawn would break that container's propagation.
 */
export async function prepareNspawnRuntime(): Promise<void> {
  if (pid1IsSystemd()) return;
  mkdirSync(LOCK_DIR, { recursive: true });
  await runChecked("flock", [
    "--exclusive",
    "--wait",
    "30",
    join(LOCK_DIR, "nspawn-runtime.lock"),
    "sh",
    "-c",
    RUNTIME_SCRIPT,
  ]);
}

const RUNTIME_SCRIPT = `
set -e
mkdir -p /run/systemd/nspawn
mountpoint -q /run/systemd/nspawn || mount -t tmpfs -o mode=0755 provision-fleet-nspawn /run/systemd/nspawn
mkdir -p /run/systemd/nspawn/propagate /run/systemd/inaccessible
cd /run/systemd/inaccessible
[ -e reg ] || install -m 0000 /dev/null reg
[ -e dir ] || mkdir -m 0000 dir
[ -e fifo ] || mkfifo -m 0000 fifo
[ -e chr ] || mknod -m 0000 chr c 0 0
[ -e blk ] || mknod -m 0000 blk b 0 0
`;

function pid1IsSystemd(): boolean {
  try {
    return readFileSync("/proc/1/comm", "utf8").trim() === "systemd";
  } catch {
    return false;
  }
}

function kernelFilesystems(): string[] {
  try {
    return readFileSync("/proc/filesystems", "utf8")
      .split("\n")
      .map((line) => line.trim().split(/\s+/).at(-1) ?? "");
  } catch {
    return [];
  }
}

function findInPath(command: string): string | undefined {
  return (SYSTEM_ENV.PATH ?? "")
    .split(":")
    .map((dir) => join(dir, command))
    .find((path) => {
      try {
        accessSync(path, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}
