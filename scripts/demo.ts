import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { checkFleetPrerequisites, startFleet, type Fleet } from "../test/fleet/fleet.js";

/**
 * `npm run demo`: starts a small fleet of real sshd hosts, then shows plan → run → verify →
 * drift → verify → run on it with the real CLI, and tears everything down.
 */
const ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "provision.js");
const HOSTS = Number(process.env.DEMO_HOSTS ?? 3);

function banner(text: string): void {
  process.stdout.write(`\n\x1b[1m━━ ${text}\x1b[0m\n`);
}

function provision(fleet: Fleet, args: string[]): number {
  const full = [args[0]!, fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile, ...args.slice(1)];
  process.stdout.write(`\x1b[2m$ provision ${full.join(" ")}\x1b[0m\n`);
  const r = spawnSync(process.execPath, [BIN, ...full], { stdio: "inherit", cwd: ROOT, timeout: 120_000 });
  process.stdout.write(`\x1b[2m(exit ${r.status})\x1b[0m\n`);
  return r.status ?? 1;
}

async function main(): Promise<number> {
  const missing = checkFleetPrerequisites();
  if (missing.length > 0) {
    process.stderr.write(`demo: cannot start the local fleet:\n${missing.map((m) => `  - ${m}`).join("\n")}\n`);
    return 1;
  }
  banner(`Starting ${HOSTS} real hosts (network namespaces with their own sshd, /etc and kernel network settings)`);
  const fleet = await startFleet({ hosts: HOSTS });
  try {
    for (const h of fleet.hosts) process.stdout.write(`  ${h.name}  ${h.address}  (netns ${h.netns})\n`);
    process.stdout.write(`  inventory: ${fleet.inventoryFile}\n`);

    banner("1. plan: what would change (exit 2 = changes pending)");
    provision(fleet, ["plan"]);
    banner("2. run: apply in one round trip per host, then read every value back");
    if (provision(fleet, ["run", "--yes"]) !== 0) return 1;
    banner("3. verify: every managed value read back from the hosts");
    if (provision(fleet, ["verify"]) !== 0) return 1;
    banner("4. plan again: nothing left to do (exit 0)");
    provision(fleet, ["plan"]);

    const drifted = fleet.hosts[1]!.name;
    banner(`5. drift: someone runs \`sysctl -w net.ipv4.ip_local_port_range="32768 60999"\` on ${drifted}`);
    await fleet.exec(drifted, "sysctl -w 'net.ipv4.ip_local_port_range=32768 60999' >/dev/null");
    provision(fleet, ["verify"]);
    banner(`6. run repairs only ${drifted}`);
    if (provision(fleet, ["run", "--yes"]) !== 0) return 1;

    banner("What changed on each host");
    for (const h of fleet.hosts) {
      const r = await fleet.exec(h.name, "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/net/ipv4/tcp_tw_reuse | tr '\\t\\n' '  '; ls /etc/sysctl.d | grep provision | tr '\\n' ' '");
      process.stdout.write(`  ${h.name}: ip_local_port_range+tcp_tw_reuse = ${r.stdout.trim()}\n`);
    }
    process.stdout.write("\n  Outbound connections per destination ip:port went from 28,232 to 64,512 on every host.\n");
    return 0;
  } finally {
    banner("Tearing the fleet down");
    await fleet.stop();
    process.stdout.write("  done: no namespace, interface, process or file of the fleet is left.\n");
  }
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
