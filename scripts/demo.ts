import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { checkFleetPrerequisites, startFleet, type Fleet } from "../test/fleet/fleet.js";

/**
 * `npm run demo`: starts a small fleet of real sshd hosts, then shows a capacity probe, plan → run → verify →
 * drift → verify → run, and the same probe again, on it with the real CLI, and tears everything down.
 */
const ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "provision.js");
const HOSTS = Number(process.env.DEMO_HOSTS ?? 3);

function banner(text: string): void {
  process.stdout.write(`\n\x1b[1m━━ ${text}\x1b[0m\n`);
}

function provision(fleet: Fleet, args: string[], connects = true): number {
  const stateDir = args[0] === "run" ? ["--state-dir", join(fleet.dir, ".provision")] : [];
  const full = [
    args[0]!,
    fleet.inventoryFile,
    ...(connects ? ["--known-hosts", fleet.knownHostsFile] : []),
    ...stateDir,
    ...args.slice(1),
  ];
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
    await giveFirstHostSourceIps(fleet);
    process.stdout.write(
      `  inventory: ${fleet.inventoryFile} (+ group_vars/fleet.yaml: this sandbox's limits; host_vars/h1.yaml: two extra source IPs)\n`,
    );

    banner("0. lint: validate everything without connecting");
    provision(fleet, ["lint"], false);
    banner("Before: how many concurrent connections can h1 hold to one ip:port on h2? (capacity probe)");
    const before = probe(fleet);
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

    banner("What the hosts have now (read inside each host)");
    for (const h of fleet.hosts) {
      const r = await fleet.exec(h.name, SHOW_VALUES);
      process.stdout.write(`  ${h.name}: ${r.stdout.trim().split("\n").join("\n      ")}\n`);
    }
    banner("7. After: the same capacity probe, h1 → one ip:port on h2");
    const after = probe(fleet);
    process.stdout.write(
      `\n  Concurrent connections from h1 to one ip:port on h2:\n` +
        `    before provisioning: ${before.held.padStart(7)}  (${before.wall})\n` +
        `    after:               ${after.held.padStart(7)}  (${after.wall})\n`,
    );
    return 0;
  } finally {
    banner("Tearing the fleet down");
    await fleet.stop();
    process.stdout.write("  done: no namespace, interface, process or file of the fleet is left.\n");
  }
}

/** Runs `provision probe` h1 → h2 as a user would; returns how many it held and what stopped it, for the closing lines. */
function probe(fleet: Fleet): { held: string; wall: string } {
  const args = [
    "probe",
    fleet.inventoryFile,
    "--known-hosts",
    fleet.knownHostsFile,
    "--client",
    "h1",
    "--server",
    "h2",
    "--duration",
    "3",
  ];
  process.stdout.write(`\x1b[2m$ provision ${args.join(" ")}\x1b[0m\n`);
  const r = spawnSync(process.execPath, [BIN, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    cwd: ROOT,
    timeout: 180_000,
    encoding: "utf8",
  });
  process.stdout.write(r.stdout ?? "");
  process.stdout.write(`\x1b[2m(exit ${r.status})\x1b[0m\n`);
  const held = /held ([\d,]+) concurrent connections/.exec(r.stdout ?? "")?.[1];
  const wall = /^stopped by: (.*)$/m.exec(r.stdout ?? "")?.[1];
  return held && wall ? { held, wall } : { held: "?", wall: "nothing: the probe failed (see above)" };
}

const SHOW_VALUES = [
  "k() { printf '%s=%s  ' \"$1\" \"$(tr '\\t' ' ' < /proc/sys/$(echo $1 | tr . /))\"; }",
  "k net.ipv4.ip_local_port_range; k net.ipv4.tcp_tw_reuse; echo",
  "k net.core.somaxconn; k net.ipv4.tcp_keepalive_time; k net.netfilter.nf_conntrack_tcp_timeout_established; echo",
  "printf 'nofile for a new login: '; su -s /bin/sh -l root -c 'echo $(ulimit -Sn)/$(ulimit -Hn)'",
  "printf 'eth0: '; ip -o -4 addr show dev eth0 | awk '{print $4}' | tr '\\n' ' '",
].join("\n");

/** h1 gets two extra source IPs from the fleet's own /24 and a systemd-networkd config to persist them in. */
async function giveFirstHostSourceIps(fleet: Fleet): Promise<void> {
  const h1 = fleet.hosts[0]!;
  const net = fleet.subnet.split(".").slice(0, 3).join(".");
  mkdirSync(join(dirname(fleet.inventoryFile), "host_vars"), { recursive: true });
  writeFileSync(
    join(dirname(fleet.inventoryFile), "host_vars", `${h1.name}.yaml`),
    `secondary_source_ips:\n  addresses: [${net}.200/24, ${net}.201/24]\n`,
  );
  await fleet.exec(
    h1.name,
    `mkdir -p /etc/systemd/network && printf '[Match]\\nName=eth0\\n\\n[Network]\\nAddress=${h1.address}/24\\n' > /etc/systemd/network/10-eth0.network`,
  );
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
