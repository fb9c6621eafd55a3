import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, readSysctl, tempDir, writeFile } from "./helpers.js";

const DROPIN = "/etc/sysctl.d/60-provision-syn-backlog.conf";
const LISTEN_PORT = 8080;
const LISTEN_BACKLOG = 16;
/** Bounded even if afterAll never runs; the suite takes well under a minute. */
const LISTENER_LIFETIME_S = 120;

/** An application that caps its own accept queue: listen(16) on IPv4 and IPv6. */
const LISTENER = `import socket, time
socks = []
for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, ${LISTEN_PORT}))
    s.listen(${LISTEN_BACKLOG})
    socks.append(s)
time.sleep(${LISTENER_LIFETIME_S})
`;

interface PlanJson {
  hosts: Array<{
    host: string;
    notes?: Array<{ role: string; text: string }>;
    changes?: Array<{ kind: string; key?: string }>;
  }>;
}

/** plan → run → verify → plan again → drift caught, for syn-backlog alone, with a listener that caps its own backlog. */
describe("syn-backlog on a fleet of real hosts", () => {
  let fleet: Fleet;
  let dir: string;
  let listenerPid = "";
  let args: (command: string, ...extra: string[]) => string[];
  let withDefaults: (command: string, ...extra: string[]) => string[];
  const sysctl = (host: string, key: string) => readSysctl(fleet, host, key);

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 2 });
    dir = tempDir("syn-backlog");
    // net.core.netdev_max_backlog is machine-global and absent in a network namespace: leave it alone here.
    const playbook = writeFile(
      dir,
      "syn-backlog.yaml",
      "- name: syn-backlog only\n  hosts: all\n  roles:\n    - role: syn-backlog\n      params:\n        netdev_max_backlog: null\n",
    );
    // The fleet's group_vars leave netdev_max_backlog alone; playbook params win over them.
    const defaults = writeFile(
      dir,
      "defaults.yaml",
      "- name: syn-backlog default netdev_max_backlog\n  hosts: all\n  roles:\n    - role: syn-backlog\n      params:\n        netdev_max_backlog: 16384\n",
    );
    const common = ["--known-hosts", fleet.knownHostsFile];
    args = (command, ...extra) => [command, fleet.inventoryFile, "--playbook", playbook, ...common, ...extra];
    withDefaults = (command, ...extra) => [command, fleet.inventoryFile, "--playbook", defaults, ...common, ...extra];

    await fleet.exec("h1", "cat > /root/listen-small-backlog.py", { input: LISTENER });
    const started = await fleet.exec(
      "h1",
      `timeout ${LISTENER_LIFETIME_S} python3 /root/listen-small-backlog.py </dev/null >/dev/null 2>&1 & echo $!`,
    );
    listenerPid = started.stdout.trim();
    expect(listenerPid, started.stderr).toMatch(/^\d+$/);
    const ready = await fleet.exec(
      "h1",
      `for i in $(seq 50); do [ "$(ss -Hltn 'sport = :${LISTEN_PORT}' | wc -l)" -eq 2 ] && exit 0; sleep 0.1; done; ss -Hltn; exit 1`,
    );
    expect(ready.code, `listener on ${LISTEN_PORT} did not start: ${ready.stdout}`).toBe(0);
  });
  afterAll(async () => {
    if (fleet && /^\d+$/.test(listenerPid)) await fleet.exec("h1", `kill ${listenerPid} 2>/dev/null; true`);
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("plan shows the live values and the drop-in, notes the listener that caps its own backlog, and exits 2", async () => {
    const r = await provision(args("plan"));
    expect(r.stderr).toBe("");
    expect(r.code, r.stdout).toBe(2);
    expect(r.stdout).toContain("net.core.somaxconn: 4096 → 65535");
    expect(r.stdout).toMatch(/net\.ipv4\.tcp_max_syn_backlog: \d+ → 65535/);
    expect(r.stdout).toContain("net.ipv4.tcp_synack_retries: 5 → 3");
    expect(r.stdout).not.toContain("netdev_max_backlog");
    expect(r.stdout).toContain(`+++ ${DROPIN}`);
    expect(r.stdout).toContain("+net.core.somaxconn = 65535");
    expect(r.stdout).toContain(
      `note (syn-backlog): port ${LISTEN_PORT} listens with backlog ${LISTEN_BACKLOG} < somaxconn 65535 (on 0.0.0.0, [::]): the application caps its own queue; ` +
        "raise its listen() backlog, e.g. nginx `listen … backlog=65535`",
    );
    expect(await sysctl("h1", "net.core.somaxconn")).toBe("4096");
  });

  it("the listener note belongs to the host that listens, sshd's own backlog to both", async () => {
    const r = await provision(args("plan", "--json"));
    const data = JSON.parse(r.stdout) as PlanJson;
    const notes = (host: string) =>
      (data.hosts.find((h) => h.host === host)?.notes ?? []).filter((n) => n.role === "syn-backlog").map((n) => n.text);
    expect(
      notes("h1").some((t) =>
        t.startsWith(`port ${LISTEN_PORT} listens with backlog ${LISTEN_BACKLOG} < somaxconn 65535`),
      ),
    ).toBe(true);
    expect(notes("h2").some((t) => t.startsWith(`port ${LISTEN_PORT} `))).toBe(false);
    for (const h of ["h1", "h2"])
      expect(notes(h).some((t) => /^port 22 listens with backlog 128 < somaxconn 65535/.test(t))).toBe(true);
  });

  it("run applies, verify reads every value back, and a second plan changes nothing", async () => {
    const run = await provision(args("run", "--yes"));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 2 changed, 0 unchanged, 0 failed, 0 unreachable\./);
    for (const h of ["h1", "h2"]) {
      expect(await sysctl(h, "net.core.somaxconn")).toBe("65535");
      expect(await sysctl(h, "net.ipv4.tcp_max_syn_backlog")).toBe("65535");
      expect(await sysctl(h, "net.ipv4.tcp_syncookies")).toBe("1");
      expect(await sysctl(h, "net.ipv4.tcp_abort_on_overflow")).toBe("0");
      expect(await sysctl(h, "net.ipv4.tcp_synack_retries")).toBe("3");
    }
    // the machine's own value is untouched
    expect((await import("node:fs")).readFileSync("/proc/sys/net/core/somaxconn", "utf8").trim()).toBe("4096");
    const file = await fleet.exec("h2", `cat ${DROPIN}; stat -c '%a %U' ${DROPIN}`);
    expect(file.stdout).toContain("# Managed by provision, role syn-backlog.");
    expect(file.stdout).toContain("net.ipv4.tcp_syncookies = 1\n");
    expect(file.stdout).not.toContain("netdev_max_backlog =");
    expect(file.stdout).toContain("644 root");

    const verify = await provision(args("verify"));
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).toMatch(/Verify: 22\/22 checks ok on 2\/2 hosts; 0 mismatches/);

    const again = await provision(args("plan"));
    expect(again.code, again.stdout).toBe(0);
    // unchanged hosts are one line, whatever their notes
    expect(again.stdout).toContain("h1, h2 (2 hosts): no changes");
    expect(again.stdout).not.toMatch(/^\s*[-+]net\./m);
  });

  it("verify catches syncookies turned off by hand, and run repairs only that host", async () => {
    await fleet.exec("h2", "sysctl -w net.ipv4.tcp_syncookies=0 >/dev/null");
    const verify = await provision(args("verify"));
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/MISMATCH net\.ipv4\.tcp_syncookies: expected 1, found 0/);
    expect(verify.stdout).toMatch(/Verify: 21\/22 checks ok on 1\/2 hosts; 1 mismatch/);

    const run = await provision(args("run", "--yes"));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 1 changed, 1 unchanged/);
    expect(await sysctl("h2", "net.ipv4.tcp_syncookies")).toBe("1");
  });

  it("setting netdev_max_backlog inside a network namespace is a per-host error naming the cause, and changes nothing", async () => {
    await fleet.exec("h1", "sysctl -w net.core.somaxconn=4096 >/dev/null");
    const plan = await provision(withDefaults("plan"));
    expect(plan.code, plan.stdout).toBe(1);
    // Both hosts refused for the same reason: one entry.
    expect(plan.stdout).toMatch(
      /h1, h2 \(2 hosts\): \w+: planning failed: net\.core\.netdev_max_backlog does not exist on this host: it is one value for the whole machine, and a non-initial network namespace \(a container\) does not show it\. Set syn_backlog\.netdev_max_backlog: null/,
    );
    expect(plan.stdout).toContain("Plan: 0 changes on 0 hosts, 0 unchanged, 2 failed.");

    const run = await provision(withDefaults("run", "--yes"));
    expect(run.code).toBe(1);
    expect(await sysctl("h1", "net.core.somaxconn")).toBe("4096");
    await provision(args("run", "--yes"));
  });
});
