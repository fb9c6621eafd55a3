import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSystemdFleet, type SystemdFleet } from "../fleet/systemd/systemdFleet.js";
import type { DebianSuite } from "../fleet/systemd/systemdFleet.js";
import { subnetBase } from "../fleet/topology.js";
import { runCommand } from "../fleet/shell.js";
import { provision, readSysctl, tempDir, writeFile } from "./helpers.js";

/**
 * The default playbook (all seven roles) on real systemd hosts, and the proof that every value
 * survives a real boot: plan → run → verify → reboot every host → verify and plan find nothing to do.
 * h1 restarts its service (restart_services: true), h2 leaves the restart to its next boot.
 */
const STARTUP_TIMEOUT_MS = 10 * 60_000;
const CLI_TIMEOUT_MS = 120_000;
/** A small echo server of the test's own: it listens, and each connection gets a `cat`. */
const APP_UNIT = `[Unit]
Description=echo server on 127.0.0.1:7070
[Service]
ExecStart=/usr/bin/systemd-socket-activate --listen=127.0.0.1:7070 --accept --inetd /bin/cat
[Install]
WantedBy=multi-user.target
`;
/** Same name as keepalive's drop-in, in the vendor directory: /etc/sysctl.d shadows it at boot. */
const SHADOWED_VENDOR_FILE = "/usr/lib/sysctl.d/60-provision-keepalive.conf";
const OVERRIDE_FILE = "/etc/sysctl.d/99-local-override.conf";

describe.each<DebianSuite>(["bookworm", "trixie"])("the default playbook on systemd hosts (%s)", (suite) => {
  let fleet: SystemdFleet;
  let dir: string;
  let inventory: string;
  let secondary: Record<string, string>;
  const cli = (command: string, ...extra: string[]) =>
    provision([command, inventory, "--known-hosts", fleet.knownHostsFile, ...extra], { timeoutMs: CLI_TIMEOUT_MS });
  const sh = async (host: string, script: string) => {
    const r = await fleet.exec(host, script);
    expect(r, `${host}: ${script}`).toMatchObject({ code: 0 });
    return r.stdout.trim();
  };
  const appLimits = (host: string) =>
    sh(
      host,
      `grep 'Max open files' /proc/$(systemctl show -p MainPID --value app.service)/limits | awk '{print $4":"$5}'`,
    );

  beforeAll(async () => {
    fleet = await startSystemdFleet({ hosts: 2, suite });
    dir = tempDir(`systemd-${suite}`);
    const base = subnetBase(fleet.subnet);
    secondary = { h1: `${base}.201`, h2: `${base}.202` };
    inventory = writeFile(dir, "hosts.yml", readFileSync(fleet.inventoryFile, "utf8"));
    mkdirSync(join(dir, "group_vars"));
    mkdirSync(join(dir, "host_vars"));
    // What a container may not change: the machine-wide backlog and conntrack table, and a hard nofile above what its sshd holds (20,000).
    writeFileSync(
      join(dir, "group_vars", "all.yml"),
      "syn_backlog:\n  netdev_max_backlog: null\nconntrack:\n  nf_conntrack_max: null\n  hashsize: null\n",
    );
    for (const host of ["h1", "h2"]) {
      writeFileSync(
        join(dir, "host_vars", `${host}.yml`),
        [
          "fd_limits:",
          "  soft_nofile: 16384",
          "  hard_nofile: 20000",
          "  services: [app]",
          `  restart_services: ${host === "h1"}`,
          "secondary_source_ips:",
          `  addresses: [${secondary[host]}/24]`,
          "",
        ].join("\n"),
      );
      await sh(
        host,
        `printf '%s' '${APP_UNIT}' >/etc/systemd/system/app.service && systemctl daemon-reload && systemctl enable --now app.service && printf 'net.ipv4.tcp_keepalive_time = 111\\n' >${SHADOWED_VENDOR_FILE}`,
      );
    }
  }, STARTUP_TIMEOUT_MS);
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("plans, runs and verifies every role; h1 restarts its service, h2's restart is pending", async () => {
    const plan = await cli("plan");
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(await appLimits("h1")).toBe("1024:20000");

    const run = await cli("run", "--yes");
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 2 changed, 0 unchanged, 0 failed, 0 unreachable\./);
    expect(run.stdout).toContain("restart pending: app (pid");
    // secondary-source-ips persists through systemd-networkd, which the hosts run.
    expect(run.stdout).toMatch(/\+\+\+ \/etc\/systemd\/network\/[^\n]+\.network\.d\/[^\n]+\.conf/);
    expect(await appLimits("h1")).toBe("16384:20000");
    expect(await appLimits("h2")).toBe("1024:20000");

    const verify = await cli("verify");
    expect(verify.code, verify.stdout).toBe(1);
    expect(verify.stdout).toMatch(/h2: 1 of \d+ MISMATCH/);
    expect(verify.stdout).toContain("MISMATCH app running: soft nofile: expected >= 16384, found 1024");
    expect(verify.stdout).not.toMatch(/h1: .*MISMATCH/);

    // Applying again changes nothing, and a pending restart is not a failure of run.
    const again = await cli("run", "--yes");
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(/Run: 0 changed, 2 unchanged, 0 failed, 0 unreachable\./);
  });

  it("after a real reboot of every host, verify passes and plan finds nothing to do", async () => {
    const boots = await fleet.reboot(["h1", "h2"]);
    expect(boots.map((b) => [b.host, b.state, b.failedUnits])).toEqual([
      ["h1", "running", []],
      ["h2", "running", []],
    ]);
    const verify = await cli("verify");
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const plan = await cli("plan");
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);

    for (const host of ["h1", "h2"]) {
      // systemd-sysctl applied the drop-ins; /etc shadowed the vendor file of the same name, as verify predicted.
      expect(await readSysctl(fleet, host, "net.ipv4.tcp_keepalive_time")).toBe("600");
      expect(await readSysctl(fleet, host, "net.ipv4.ip_local_port_range")).toBe("1024\t65535");
      expect(await readSysctl(fleet, host, "net.netfilter.nf_conntrack_tcp_timeout_established")).toBe("86400");
      // The service started at boot with its drop-in's LimitNOFILE; systemd's default came from system.conf.d.
      expect(await appLimits(host)).toBe("16384:20000");
      expect(
        await sh(host, "systemctl show -p DefaultLimitNOFILESoft -p DefaultLimitNOFILE --value | paste -sd:"),
      ).toBe("20000:1024");
    }
  });

  it("after the boot, a fresh SSH login gets limits.d's values and the secondary address is back beside the SSH one", async () => {
    for (const host of fleet.hosts) {
      const login = await runCommand(
        "ssh",
        [
          "-F",
          fleet.sshConfigFile,
          "-l",
          "deploy",
          host.address,
          "ulimit -Sn; ulimit -Hn; loginctl show-session --value -p Remote $XDG_SESSION_ID",
        ],
        { timeoutMs: 20_000 },
      );
      expect(login, host.name).toMatchObject({ code: 0, stdout: "16384\n20000\nyes\n" });
      const addresses = JSON.parse(await sh(host.name, "ip -j -4 addr show dev host0")) as Array<{
        addr_info: Array<{ local: string; secondary?: boolean }>;
      }>;
      expect(addresses[0]!.addr_info.map((a) => [a.local, a.secondary === true])).toEqual([
        [host.address, false],
        [secondary[host.name], true],
      ]);
    }
  });

  it("boot truth: a later sysctl file verify names as the winner is what a real boot applies", async () => {
    await sh("h1", `printf 'net.ipv4.tcp_keepalive_time = 999\\n' >${OVERRIDE_FILE}`);
    const verify = await cli("verify", "--limit", "h1");
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain("at boot: net.ipv4.tcp_keepalive_time");
    expect(verify.stdout).toContain(OVERRIDE_FILE);
    expect(await readSysctl(fleet, "h1", "net.ipv4.tcp_keepalive_time")).toBe("600");
    await fleet.reboot("h1");
    expect(await readSysctl(fleet, "h1", "net.ipv4.tcp_keepalive_time")).toBe("999");
  });

  it("status reads a booted systemd host: its own processes, and the tuned port range less its reserved ports", async () => {
    const r = await cli("status", "--json", "--window", "0.3");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as {
      hosts: Array<{
        host: string;
        verdict: string;
        walls: Array<{ wall: string; limit: number | null; consumers: Array<{ name: string }> }>;
      }>;
    };
    for (const host of ["h1", "h2"]) {
      const h = s.hosts.find((x) => x.host === host)!;
      expect(h.verdict).not.toBe("error");
      const wall = (name: string) => h.walls.find((w) => w.wall === name)!;
      // The run set 1024-65535 and reserved the host's listening ports inside it (sshd's 22 is below).
      const reserved = (await readSysctl(fleet, host, "net.ipv4.ip_local_reserved_ports")).split(",").filter(Boolean);
      const inRange = reserved
        .map((r) => r.split("-").map(Number))
        .reduce((n, [from, to]) => n + Math.max(0, Math.min(to ?? from!, 65535) - Math.max(from!, 1024) + 1), 0);
      expect(inRange).toBeGreaterThan(0);
      expect(wall("ephemeral-ports").limit).toBe(65535 - 1024 + 1 - inRange);
      // The processes named are the host's own (its pid namespace), not the machine's around it.
      const named = wall("open-files").consumers.map((c) => /\[(\d+)\]$/.exec(c.name)![1]!);
      expect(named.length).toBeGreaterThan(0);
      expect(await sh(host, named.map((pid) => `test -d /proc/${pid} && echo yes`).join("; "))).toBe(
        named.map(() => "yes").join("\n"),
      );
      expect(wall("listen-queues").consumers.map((c) => c.name)).toContain("127.0.0.1:7070");
    }
  });
});
