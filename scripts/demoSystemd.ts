import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { checkSystemdFleetPrerequisites } from "../test/fleet/systemd/prerequisites.js";
import { startSystemdFleet, type SystemdFleet } from "../test/fleet/systemd/systemdFleet.js";

/**
 * `npm run demo:systemd`: the default playbook on real systemd hosts (systemd-nspawn), then a real
 * reboot of every host and the proof that every value came back from its file: verify exits 0 and
 * plan finds nothing to do. The first run on a machine builds the cached root filesystem (about a minute).
 */
const ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "provision.js");
const HOSTS = Number(process.env.DEMO_HOSTS ?? 2);

function banner(text: string): void {
  process.stdout.write(`\n\x1b[1m━━ ${text}\x1b[0m\n`);
}

function provision(fleet: SystemdFleet, command: string, ...extra: string[]): number {
  const args = [command, fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile, ...extra];
  process.stdout.write(`\x1b[2m$ provision ${args.join(" ")}\x1b[0m\n`);
  const r = spawnSync(process.execPath, [BIN, ...args], { stdio: "inherit", cwd: fleet.dir, timeout: 120_000 });
  process.stdout.write(`\x1b[2m(exit ${r.status})\x1b[0m\n`);
  return r.status ?? 1;
}

async function main(): Promise<number> {
  const missing = checkSystemdFleetPrerequisites();
  if (missing.length > 0) {
    process.stderr.write(`demo: cannot start systemd hosts:\n${missing.map((m) => `  - ${m}`).join("\n")}\n`);
    return 1;
  }
  banner(`Booting ${HOSTS} systemd hosts (systemd-nspawn: systemd as PID 1, sshd, networkd, logind)`);
  const fleet = await startSystemdFleet({ hosts: HOSTS });
  try {
    for (const h of fleet.hosts) process.stdout.write(`  ${h.name}  ${h.address}  (${h.lastBoot.bootMs} ms to boot)\n`);
    writeContainerVars(fleet);
    banner("1. plan");
    provision(fleet, "plan");
    banner("2. run");
    if (provision(fleet, "run", "--yes") !== 0) return 1;
    banner("3. verify");
    if (provision(fleet, "verify") !== 0) return 1;
    banner("4. reboot every host (power off, boot again: systemd-sysctl, networkd, PAM start from the files)");
    for (const b of await fleet.reboot(fleet.hosts.map((h) => h.name)))
      process.stdout.write(`  ${b.host}: ${b.state} after ${b.bootMs} ms\n`);
    banner("5. verify after the boot (exit 0: every value came back)");
    const verified = provision(fleet, "verify");
    banner("6. plan after the boot: nothing to do (exit 0)");
    const planned = provision(fleet, "plan");
    return verified === 0 && planned === 0 ? 0 : 1;
  } finally {
    banner("Tearing the hosts down");
    await fleet.stop();
  }
}

/** What a container may not change: the machine-wide backlog and conntrack table, and a hard nofile above its sshd's (20,000 here). */
function writeContainerVars(fleet: SystemdFleet): void {
  const dir = join(dirname(fleet.inventoryFile), "group_vars");
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "all.yml"),
    "fd_limits:\n  soft_nofile: 16384\n  hard_nofile: 20000\nsyn_backlog:\n  netdev_max_backlog: null\nconntrack:\n  nf_conntrack_max: null\n  hashsize: null\n",
  );
  process.stdout.write(
    `  group_vars/all.yml: what a container may not change (netdev_max_backlog, the conntrack table, hard nofile above 20,000)\n`,
  );
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
