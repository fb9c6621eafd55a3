import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runChecked, runCommand } from "../shell.js";
import { unmountAllUnderSync } from "./mounts.js";
import { withFileLock } from "./fileLock.js";

// The Debian root filesystem every systemd host boots from, built once per machine with debootstrap and cached
// outside the repo. Hosts never write to it: each one sees it through its own overlay (see hostImage.ts).

export const DEBIAN_SUITES = ["bookworm", "trixie"] as const;
export type DebianSuite = (typeof DEBIAN_SUITES)[number];

export interface Rootfs {
  suite: DebianSuite;
  dir: string;
  /** How long this call spent building it; undefined when it came from the cache. */
  buildMs?: number;
}

const CACHE_DIR = "/var/cache/provision-fleet/rootfs";
const BUILD_DIR_PREFIX = ".build-";
/** libpam-systemd: logins get logind sessions and user slices, as on a standard Debian install. */
const PACKAGES = ["systemd", "systemd-sysv", "libpam-systemd", "openssh-server", "iproute2", "procps", "sudo", "dbus"];
/** A cold build takes about a minute; a slow mirror may take several. */
const BUILD_TIMEOUT_MS = 15 * 60_000;
/** Waiting for another run's build of the same rootfs. */
const LOCK_WAIT_MS = BUILD_TIMEOUT_MS + 60_000;
const APT_SOURCES = ["/etc/apt/sources.list", "/etc/apt/sources.list.d"];

/**
 * Runs inside the fresh rootfs (chroot). Everything here is the same for every host; what makes a host distinct
 * (host keys, machine-id, hostname, address, authorized keys) is written per host.
 */
const CUSTOMIZE_SCRIPT = `
set -e
useradd --create-home --no-log-init --user-group --shell /bin/bash deploy
# '*' instead of useradd's locking '!': key logins must work, password logins must not.
usermod --password '*' deploy
echo 'deploy ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy
chmod 0440 /etc/sudoers.d/deploy
install -d -m 0700 /root/.ssh
install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
systemctl enable systemd-networkd.service
# They would reach for the internet, which fleet hosts have no route to.
systemctl mask apt-daily.timer apt-daily-upgrade.timer
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
: > /etc/hostname
echo '# fleet hosts have no name servers: they reach only their own /24' > /etc/resolv.conf
apt-get clean
rm -rf /var/lib/apt/lists/*
`;

/** The cached rootfs of this suite, built first if missing; parallel callers wait for one build instead of racing. */
export async function ensureRootfs(suite: DebianSuite): Promise<Rootfs> {
  const dir = join(CACHE_DIR, `${suite}-${recipeHash(suite)}`);
  // The build renames a complete tree into place, so an existing directory is a complete one.
  if (existsSync(dir)) return { suite, dir };
  mkdirSync(CACHE_DIR, { recursive: true, mode: 0o755 });
  return withFileLock(join(CACHE_DIR, ".lock"), LOCK_WAIT_MS, async () => {
    if (existsSync(dir)) return { suite, dir };
    removeAbandonedBuilds();
    const started = Date.now();
    await build(suite, dir);
    return { suite, dir, buildMs: Date.now() - started };
  });
}

function recipeHash(suite: DebianSuite): string {
  return createHash("sha256")
    .update(JSON.stringify({ suite, packages: PACKAGES, customize: CUSTOMIZE_SCRIPT }))
    .digest("hex")
    .slice(0, 12);
}

async function build(suite: DebianSuite, dir: string): Promise<void> {
  const buildDir = join(CACHE_DIR, `${BUILD_DIR_PREFIX}${suite}-${process.pid}`);
  try {
    await debootstrap(suite, buildDir, debianMirror());
    await runChecked("chroot", [buildDir, "/bin/sh", "-c", CUSTOMIZE_SCRIPT], { timeoutMs: 60_000 });
    renameSync(buildDir, dir);
  } finally {
    removeBuildDir(buildDir);
  }
}

async function debootstrap(suite: DebianSuite, buildDir: string, mirror: string): Promise<void> {
  const args = ["--variant=minbase", `--include=${PACKAGES.join(",")}`, suite, buildDir, mirror];
  const result = await runCommand("debootstrap", args, { timeoutMs: BUILD_TIMEOUT_MS });
  if (result.code === 0) return;
  const log = join(buildDir, "debootstrap", "debootstrap.log");
  const details = existsSync(log) ? readFileSync(log, "utf8") : `${result.stdout}\n${result.stderr}`;
  throw new Error(
    `debootstrap of Debian ${suite} from ${mirror} failed (exit ${result.code}); is the mirror reachable and does it ` +
      `serve '${suite}'?\n--- last lines of its log ---\n${lastLines(details, 25)}`,
  );
}

/** A build killed midway leaves its directory, possibly with debootstrap's /proc and /sys mounts in it. */
function removeAbandonedBuilds(): void {
  for (const name of readdirSync(CACHE_DIR).filter((entry) => entry.startsWith(BUILD_DIR_PREFIX))) {
    removeBuildDir(join(CACHE_DIR, name));
  }
}

function removeBuildDir(buildDir: string): void {
  if (!existsSync(buildDir)) return;
  // Never recurse into a mounted /proc or /sys.
  const stillMounted = unmountAllUnderSync(buildDir);
  if (stillMounted.length > 0) throw new Error(`cannot remove ${buildDir}: still mounted: ${stillMounted.join(", ")}`);
  rmSync(buildDir, { recursive: true, force: true });
}

/** The Debian archive this machine's apt uses, e.g. http://deb.debian.org/debian. */
export function debianMirror(): string {
  const uris = APT_SOURCES.flatMap(sourceFiles).flatMap((file) => urisIn(readFileSync(file, "utf8")));
  const mirror = uris.find((uri) => /\/debian\/?$/.test(uri));
  if (!mirror) {
    throw new Error(
      `no Debian archive found among the apt sources (${APT_SOURCES.join(", ")}; found: ${uris.join(" ") || "none"}): ` +
        "add one, e.g. 'deb http://deb.debian.org/debian bookworm main' to /etc/apt/sources.list",
    );
  }
  return mirror.replace(/\/$/, "");
}

function sourceFiles(path: string): string[] {
  if (!existsSync(path)) return [];
  if (!path.endsWith(".d")) return [path];
  return readdirSync(path)
    .filter((name) => name.endsWith(".list") || name.endsWith(".sources"))
    .sort()
    .map((name) => join(path, name));
}

/** URIs of one-line ("deb URI suite …") and deb822 ("URIs: …") entries. */
function urisIn(text: string): string[] {
  return text.split("\n").flatMap((line) => {
    const oneLine = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line);
    if (oneLine) return [oneLine[1]!];
    const deb822 = /^\s*URIs:\s*(.+)$/i.exec(line);
    return deb822 ? deb822[1]!.trim().split(/\s+/) : [];
  });
}

function lastLines(text: string, count: number): string {
  return text.trim().split("\n").slice(-count).join("\n");
}
