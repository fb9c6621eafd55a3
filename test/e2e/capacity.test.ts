import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, tempDir, writeFile } from "./helpers.js";

const PORT = 5201;
const PROBE_TIMEOUT_MS = 150_000;

interface ProbeJson {
  command: string;
  outcome: {
    held: number;
    accepted: number;
    stop: string;
    establishedAtHoldStart: number;
    perSource: Array<{ source: string; held: number }>;
  };
  client: { spread: { processes: number } };
  diagnosis: { wall: string; portCapacity: number };
  cleanup: {
    ok: boolean;
    client: { found: number; left: number; sockets: number };
    server: { found: number; left: number; sockets: number };
  };
}

/**
 * The walls of DESIGN.md §1 moving on two real hosts: h1 opens connections to one ip:port on h2.
 * Kernel default range ≈ 28k (EADDRNOTAVAIL) → ephemeral-ports ≈ 64k → a second source IP on h1
 * (secondary-source-ips) ≥ 100k, the probe's bound.
 */
describe("provision probe: the walls move (h1 → h2)", () => {
  let fleet: Fleet;
  let dir: string;
  let net: string;

  const probe = (...extra: string[]) =>
    provision(
      [
        "probe",
        fleet.inventoryFile,
        "--known-hosts",
        fleet.knownHostsFile,
        "--client",
        "h1",
        "--server",
        "h2",
        "--duration",
        "1",
        ...extra,
      ],
      { timeoutMs: PROBE_TIMEOUT_MS },
    );
  const probeJson = async () => {
    const r = await probe("--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    return JSON.parse(r.stdout) as ProbeJson;
  };
  const playbook = (role: string) =>
    writeFile(dir, `${role}.yaml`, `- name: just ${role}\n  hosts: all\n  roles:\n    - ${role}\n`);
  const runRole = async (role: string) => {
    const r = await provision(
      ["run", fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile, "--playbook", playbook(role), "--yes"],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
  };

  /**
   * Looked for independently of the probe's own check, in each host: no helper process (the fleet's
   * hosts share the machine's process table, so only processes in the host's network namespace
   * count; the bracket keeps the pattern from matching the shell running it) and no socket on the port.
   */
  const expectNothingLeft = async () => {
    for (const host of ["h1", "h2"]) {
      const helpers = await fleet.exec(
        host,
        "me=$(readlink /proc/self/ns/net); n=0; for p in $(pgrep -f 'provision-probe-[0-9a-f]'); do " +
          '[ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$me" ] && n=$((n+1)); done; echo $n',
      );
      expect(helpers.stdout.trim(), `helper processes on ${host}`).toBe("0");
      const sockets = await fleet.exec(host, `ss -Htan '( sport = :${PORT} or dport = :${PORT} )' | wc -l`);
      expect(sockets.stdout.trim(), `sockets on ${host}`).toBe("0");
    }
  };

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 2 });
    dir = tempDir("probe");
    net = fleet.subnet.split(".").slice(0, 3).join(".");
    // h1 is a systemd-networkd host, so secondary-source-ips can persist its extra address.
    const h1 = fleet.hosts[0]!;
    await fleet.exec(
      "h1",
      `mkdir -p /etc/systemd/network && printf '[Match]\\nName=eth0\\n\\n[Network]\\nAddress=${h1.address}/24\\n' > /etc/systemd/network/10-eth0.network`,
    );
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    "kernel defaults: EADDRNOTAVAIL at ≈28k, spread over processes because of the 20,000 hard nofile",
    async () => {
      const r = await probe();
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const held = Number(/held ([\d,]+) concurrent connections/.exec(r.stdout)![1]!.replace(/,/g, ""));
      expect(held).toBeGreaterThanOrEqual(27_000);
      expect(held).toBeLessThanOrEqual(28_300);
      expect(r.stdout).toContain("stopped by: ports for one destination ip:port exhausted (EADDRNOTAVAIL)");
      expect(r.stdout).toContain("1 source IP × 28,232 ports (ip_local_port_range 32768–60999 = 28,232)");
      expect(r.stdout).toContain("role ephemeral-ports");
      expect(r.stdout).toContain(
        "spread over 8 client processes of ≤ 15,000 sockets each because the hard nofile limit here is 20,000 (h1)",
      );
      expect(r.stdout).toContain("8 server processes accepting on one port with SO_REUSEPORT");
      expect(r.stdout).toMatch(/h2 \(server\): somaxconn 4,096/);
      expect(r.stdout).toMatch(
        /cleanup: no helper process \(pgrep -f provision-probe-[0-9a-f]{12}\) and no socket on port 5201 left on h1 or h2/,
      );
      await expectNothingLeft();
    },
    PROBE_TIMEOUT_MS + 30_000,
  ); // longer than the CLI's own bound, so a hang fails with its output

  it(
    "after ephemeral-ports: ≈64k, still one source IP",
    async () => {
      await runRole("ephemeral-ports");
      const p = await probeJson();
      expect(p.outcome.stop).toBe("EADDRNOTAVAIL");
      expect(p.outcome.held).toBeGreaterThanOrEqual(60_000);
      expect(p.outcome.held).toBeLessThanOrEqual(64_512);
      expect(p.outcome.establishedAtHoldStart).toBe(p.outcome.held);
      expect(p.outcome.accepted).toBe(p.outcome.held);
      expect(p.diagnosis.portCapacity).toBe(64_512);
      expect(p.cleanup).toEqual({
        ok: true,
        client: { found: 0, left: 0, sockets: 0 },
        server: { found: 0, left: 0, sockets: 0 },
      });
      await expectNothingLeft();
    },
    PROBE_TIMEOUT_MS + 120_000,
  );

  it(
    "after secondary-source-ips gives h1 a second address: ≥ 100,000 concurrent connections",
    async () => {
      const hostVars = join(dirname(fleet.inventoryFile), "host_vars");
      mkdirSync(hostVars, { recursive: true });
      writeFileSync(join(hostVars, "h1.yaml"), `secondary_source_ips:\n  addresses: [${net}.200/24]\n`);
      await runRole("secondary-source-ips");
      const p = await probeJson();
      expect(p.outcome.held).toBeGreaterThanOrEqual(100_000);
      expect(p.outcome.stop).toBe("bound");
      expect(p.outcome.establishedAtHoldStart).toBe(p.outcome.held);
      expect(p.outcome.accepted).toBe(p.outcome.held);
      expect(p.outcome.perSource.map((s) => s.source)).toEqual([fleet.hosts[0]!.address, `${net}.200`]);
      for (const s of p.outcome.perSource) expect(s.held).toBeGreaterThan(40_000);
      expect(p.diagnosis.portCapacity).toBe(2 * 64_512);
      expect(p.cleanup.ok).toBe(true);
      await expectNothingLeft();
    },
    PROBE_TIMEOUT_MS + 120_000,
  );

  it("refuses a port that already has a listener on the server, before any helper starts", async () => {
    const r = await probe("--port", "22");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("probe: h2: port 22 already has a listener; pick a free port with --port");
    await expectNothingLeft();
  });

  it("refuses a host the inventory doesn't have, before connecting", async () => {
    const r = await provision(["probe", fleet.inventoryFile, "--client", "h1", "--server", "h3"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--server "h3" is not a host of this inventory\. Did you mean "h[12]"\?/);
  });
});
