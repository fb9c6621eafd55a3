import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { runCommand } from "../fleet/shell.js";
import { inventoryWithOneDown, PROJECT_ROOT, provision, tempDir, writeFile } from "./helpers.js";

interface WallJson {
  wall: string;
  used: number | null;
  limit: number | null;
  percent: number | null;
  verdict: string;
  reason?: string;
  note?: string;
  consumers: Array<{ name: string; used: number; limit: number | null }>;
  increase?: Record<string, number | null>;
}
interface StatusJson {
  command: string;
  summary: { hosts: number; critical: number; warn: number; ok: number; error: number };
  hosts: Array<{
    host: string;
    verdict: string;
    closest: string | null;
    windowSeconds?: number;
    error?: { kind: string; message: string };
    walls: WallJson[];
  }>;
}

const LOAD = join(PROJECT_ROOT, "test", "e2e", "statusLoad.py");
const HELD = 950;
const SERVER_PORT = 5201;
const TINY_PORT = 5300;
const READY_MS = 60_000;

/**
 * `provision status` against walls really being approached on the fleet: connections held from h1
 * to one ip:port on h2 (in a port range narrowed to 1,000), a listener on h3 with a backlog of 1
 * flooded with connections, and a process near its own soft nofile.
 */
describe("provision status: how close each host is to each wall", () => {
  let fleet: Fleet;
  let dir: string;
  const load: ChildProcess[] = [];

  const status = async (...extra: string[]) => {
    const r = await provision(["status", fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile, ...extra], {
      timeoutMs: 90_000,
    });
    return r;
  };
  const statusJson = async (...extra: string[]) => {
    const r = await status("--json", ...extra);
    expect([0, 3], r.stderr).toContain(r.code);
    const parsed = JSON.parse(r.stdout) as StatusJson;
    return { ...parsed, code: r.code };
  };
  const hostOf = (s: StatusJson, host: string) => s.hosts.find((h) => h.host === host)!;
  const wallOf = (s: StatusJson, host: string, wall: string) => hostOf(s, host).walls.find((w) => w.wall === wall)!;

  /** Started inside a host's namespaces as this process's child, so it is always reaped and killed. */
  const startLoad = async (host: string, setup: string, ...args: string[]): Promise<ChildProcess> => {
    const pid = fleet.hosts.find((h) => h.name === host)!.sshdPid;
    const child = spawn(
      "nsenter",
      [
        "-t",
        String(pid),
        "-n",
        "-m",
        "-u",
        "--",
        "sh",
        "-c",
        `${setup}; exec python3 -u "$@"`,
        "load",
        LOAD,
        fleet.prefix,
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    load.push(child);
    let out = "";
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load ${args.join(" ")} not ready: ${out}`)), READY_MS);
      child.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`load ${args.join(" ")} exited with ${code}: ${out}`));
      });
    });
    return child;
  };
  const stopLoad = async () => {
    await Promise.all(
      load.splice(0).map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGKILL");
          }),
      ),
    );
  };

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    dir = tempDir("status");
  });
  afterEach(stopLoad);
  afterAll(async () => {
    await stopLoad();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("reads every wall of every host, read-only, and measures drop counters over the window", async () => {
    const s = await statusJson("--window", "0.5");
    expect(s.summary).toMatchObject({ hosts: 3, error: 0 });
    for (const h of s.hosts) {
      expect(h.windowSeconds).toBeGreaterThanOrEqual(0.5);
      expect(h.windowSeconds).toBeLessThan(5);
      expect(h.walls.map((w) => w.wall).sort()).toEqual([
        "conntrack",
        "ephemeral-ports",
        "file-table",
        "keepalive",
        "listen-queues",
        "open-files",
        "orphans",
        "time-wait",
      ]);
      // The kernel's default range, 32768-60999, with no reserved ports.
      expect(wallOf(s, h.host, "ephemeral-ports").limit).toBe(28232);
      // sshd's own listener, with the backlog ss reports (the kernel queues one more for accept()).
      const listeners = wallOf(s, h.host, "listen-queues").consumers.map((c) => c.name);
      expect(listeners).toContain(`${fleet.hosts.find((x) => x.name === h.host)!.address}:22`);
      // Nothing is overflowing on an idle fleet: the window's increase, not the total since boot.
      expect(wallOf(s, h.host, "listen-queues").increase?.ListenOverflows).toBe(0);
    }
  });

  it(`names the destination h1 holds ${HELD} connections to, within 1%, as h1's closest wall`, async () => {
    const server = fleet.hosts[1]!;
    await startLoad("h2", "ulimit -n 20000", "server", String(SERVER_PORT), "4096", "1");
    await fleet.exec("h1", "sysctl -qw net.ipv4.ip_local_port_range='40000 40999'");
    await startLoad("h1", "ulimit -n 20000", "hold", server.address, String(SERVER_PORT), String(HELD));
    const s = await statusJson("--limit", "h1");
    const ports = wallOf(s, "h1", "ephemeral-ports");
    const top = ports.consumers[0]!;
    expect(top.name).toBe(`${server.address}:${SERVER_PORT}`);
    expect(Math.abs(top.used - HELD)).toBeLessThanOrEqual(HELD * 0.01);
    expect(top.limit).toBe(1000);
    expect(ports).toMatchObject({ verdict: "critical" });
    expect(hostOf(s, "h1").closest).toBe("ephemeral-ports");
    expect(s.code).toBe(3);
    // The text names it too, with the role that moves it.
    const text = await status("--limit", "h1");
    expect(text.stdout).toMatch(/closest wall: ephemeral-ports 9\d(\.\d)?% \(critical\)/);
    expect(text.stdout).toContain(`${server.address}:${SERVER_PORT} ${top.used}/1,000`);
    expect(text.stdout).toContain("moved by role ephemeral-ports");
  });

  it("shows ListenOverflows rising on a listener with a backlog of 1 that is flooded", async () => {
    const target = fleet.hosts[2]!;
    await startLoad("h3", "true", "server", String(TINY_PORT), "1", "0");
    const before = await statusJson("--limit", "h3");
    expect(wallOf(before, "h3", "listen-queues").increase?.ListenOverflows).toBe(0);
    await startLoad("h2", "true", "flood", target.address, String(TINY_PORT));
    const s = await statusJson("--limit", "h3");
    const queues = wallOf(s, "h3", "listen-queues");
    expect(queues.increase?.ListenOverflows).toBeGreaterThan(0);
    expect(queues.verdict).toBe("critical");
    expect(queues.reason).toMatch(/ListenOverflows \+\d+/);
    expect(queues.consumers[0]).toMatchObject({ name: `0.0.0.0:${TINY_PORT}`, used: 2, limit: 2 });
    expect(s.code).toBe(3);
  });

  it("names a process near its own soft nofile limit", async () => {
    const child = await startLoad("h1", "ulimit -Sn 64", "files", "58");
    const s = await statusJson("--limit", "h1");
    const files = wallOf(s, "h1", "open-files");
    const named = files.consumers.find((c) => c.name === `python3[${child.pid}]`);
    // nsenter execs sh, which execs python: the pid is the child's.
    expect(named, JSON.stringify(files.consumers)).toBeDefined();
    expect(named!.limit).toBe(64);
    expect(named!.used).toBeGreaterThanOrEqual(58);
    expect(hostOf(s, "h1").closest).toBe("open-files");
    expect(files.verdict).toBe("critical");
  });

  it("without become, another user's processes are counted as unreadable; with become, read", async () => {
    const [h1] = fleet.hosts;
    const inventory = (become: boolean) =>
      writeFile(
        dir,
        `deploy-${become}.yml`,
        [
          "all:",
          "  hosts:",
          `    h1: { ansible_host: ${h1!.address}, ansible_user: deploy, ansible_become: ${become}, ansible_ssh_private_key_file: ${fleet.clientKeyFile} }`,
          "",
        ].join("\n"),
      );
    const as = async (become: boolean) => {
      const r = await provision(["status", inventory(become), "--known-hosts", fleet.knownHostsFile, "--json"], {
        timeoutMs: 60_000,
      });
      expect([0, 3], r.stderr).toContain(r.code);
      return JSON.parse(r.stdout) as StatusJson;
    };
    expect(wallOf(await as(false), "h1", "open-files").note).toMatch(/could not be read .* run with become/);
    expect(wallOf(await as(true), "h1", "open-files").note).toBeUndefined();
  });

  it("exits 1 when a host cannot be read and nothing is critical; thresholds are flags", async () => {
    const inventory = inventoryWithOneDown(fleet, dir);
    // Every wall at 100% before warning: nothing on an idle host reaches it.
    const r = await provision(
      ["status", inventory, "--known-hosts", fleet.knownHostsFile, "--warn", "100", "--critical", "100"],
      { timeoutMs: 60_000 },
    );
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/status of 2 hosts.*1 not read/);
    expect(r.stdout).toMatch(/down: unreachable/);
    const bad = await status(
      "--warn",
      "ephemeral-ports=95",
      "--critical",
      "ephemeral-ports=90",
      "--warn",
      "ephemeral-port=1",
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("no wall is named ephemeral-port; did you mean ephemeral-ports?");
    expect(bad.stderr).toContain("ephemeral-ports: --warn 95 is above --critical 90");
  });

  it("--watch redraws on a terminal until Ctrl-C, and is refused without one", async () => {
    const refused = await status("--watch", "1");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--watch needs a terminal");
    const command = [
      process.execPath,
      join(PROJECT_ROOT, "bin", "provision.js"),
      "status",
      fleet.inventoryFile,
      "--known-hosts",
      fleet.knownHostsFile,
      "--limit",
      "h1",
      "--window",
      "0.2",
      "--watch",
      "1",
    ].join(" ");
    // script(1) gives it a terminal; SIGINT after the second round stands for Ctrl-C.
    const watcher = spawn("script", ["-qefc", command, "/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, NO_COLOR: "1" },
    });
    let out = "";
    const rounds = () => out.split("last read").length - 1;
    const ended = new Promise<number | null>((resolve) => watcher.on("exit", (code) => resolve(code)));
    watcher.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      for (let i = 0; i < 300 && rounds() < 2; i++) await new Promise((r) => setTimeout(r, 100));
      expect(rounds(), out).toBeGreaterThanOrEqual(2);
      const cli = await runCommand("pgrep", ["-f", `provision.js status ${fleet.inventoryFile}`]);
      for (const pid of cli.stdout.trim().split("\n").filter(Boolean)) process.kill(Number(pid), "SIGINT");
      const code = await Promise.race([ended, new Promise<"hung">((r) => setTimeout(() => r("hung"), 20_000))]);
      expect(code).not.toBe("hung");
      expect([0, 3]).toContain(code);
    } finally {
      watcher.kill("SIGKILL");
    }
    expect(out).toContain("\x1b[H\x1b[2J");
    expect(out).toContain("every 1 s, last read");
    expect(out).toContain("h1  closest wall:");
  });
});
