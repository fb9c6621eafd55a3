import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, readSysctls, tempDir, writeFile } from "./helpers.js";

const KEYS = ["net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"];
const DROPIN = "/etc/sysctl.d/60-provision-keepalive.conf";

/** plan → run → verify → plan again → drift caught, for the keepalive role alone, on real sshd hosts. */
describe("keepalive on a fleet of real hosts", () => {
  let fleet: Fleet;
  let dir: string;
  let args: (command: string, ...extra: string[]) => string[];
  const live = (host: string) => readSysctls(fleet, host, KEYS);

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 2 });
    dir = tempDir("keepalive");
    const playbook = writeFile(
      dir,
      "keepalive.yaml",
      "- name: keepalive only\n  hosts: all\n  roles:\n    - keepalive\n",
    );
    args = (command, ...extra) => [
      command,
      fleet.inventoryFile,
      "--playbook",
      playbook,
      "--known-hosts",
      fleet.knownHostsFile,
      ...extra,
    ];
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("plan shows the three live values, the drop-in and the detection time before and after, and exits 2", async () => {
    const r = await provision(args("plan"));
    expect(r.stderr).toBe("");
    expect(r.code, r.stdout).toBe(2);
    expect(r.stdout).toContain("h1, h2 (2 hosts): 5 changes");
    expect(r.stdout).toContain("net.ipv4.tcp_keepalive_time: 7200 → 600");
    expect(r.stdout).toContain("net.ipv4.tcp_keepalive_intvl: 75 → 30");
    expect(r.stdout).toContain("net.ipv4.tcp_keepalive_probes: 9 → 5");
    expect(r.stdout).toContain(`+++ ${DROPIN}`);
    expect(r.stdout).toContain("+#   this file:      600 + 30 × 5 = 750 s (12 min 30 s)");
    expect(r.stdout).toContain(
      "note (keepalive): dead-peer detection for SO_KEEPALIVE sockets: 7200 + 75 × 9 = 7875 s (2 h 11 min 15 s) on the host now → 600 + 30 × 5 = 750 s (12 min 30 s)",
    );
    expect(await live("h1")).toEqual(["7200", "75", "9"]);
  });

  it("run applies, verify reads the values back, and a second plan changes nothing", async () => {
    const run = await provision(args("run", "--yes"));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 2 changed, 0 unchanged, 0 failed, 0 unreachable\./);
    for (const h of ["h1", "h2"]) expect(await live(h)).toEqual(["600", "30", "5"]);
    const file = await fleet.exec("h1", `cat ${DROPIN}; stat -c '%a %U' ${DROPIN}`);
    expect(file.stdout).toContain("# Managed by provision, role keepalive.");
    expect(file.stdout).toContain("#   kernel default: 7200 + 75 × 9 = 7875 s (2 h 11 min 15 s)");
    expect(file.stdout).toContain("net.ipv4.tcp_keepalive_probes = 5\n");
    expect(file.stdout).toContain("644 root");

    const verify = await provision(args("verify"));
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).toMatch(/Verify: 14\/14 checks ok on 2\/2 hosts; 0 mismatches/);

    const again = await provision(args("plan"));
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain("h1, h2 (2 hosts): no changes");
  });

  it("verify catches a value changed by hand on one host, and run repairs it", async () => {
    await fleet.exec("h2", "sysctl -w net.ipv4.tcp_keepalive_probes=9 >/dev/null");
    const verify = await provision(args("verify"));
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/MISMATCH net\.ipv4\.tcp_keepalive_probes: expected 5, found 9/);
    expect(verify.stdout).toMatch(/Verify: 13\/14 checks ok on 1\/2 hosts; 1 mismatch/);

    const run = await provision(args("run", "--yes"));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 1 changed, 1 unchanged/);
    expect(await live("h2")).toEqual(["600", "30", "5"]);
  });

  it("a detection time under a minute is a warning that names the arithmetic, not an error", async () => {
    const fast = writeFile(
      dir,
      "fast.yaml",
      [
        "- name: keepalive, aggressive",
        "  hosts: all",
        "  roles:",
        "    - role: keepalive",
        "      params:",
        "        tcp_keepalive_time: 10",
        "        tcp_keepalive_intvl: 5",
        "        tcp_keepalive_probes: 3",
        "",
      ].join("\n"),
    );
    const r = await provision(["plan", fleet.inventoryFile, "--playbook", fast, "--known-hosts", fleet.knownHostsFile]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(
      /fast\.yaml:6:\d+ \[0\]\.roles\[0\]\.params\.tcp_keepalive_time: warning: dead-peer detection takes only 10 \+ 5 × 3 = 25 s \(25 s\): an idle but healthy peer/,
    );
    expect(r.stdout).toContain("net.ipv4.tcp_keepalive_time: 600 → 10");
  });

  it("a value out of the schema's range is refused before connecting", async () => {
    const bad = writeFile(
      dir,
      "bad.yaml",
      "- hosts: all\n  roles:\n    - role: keepalive\n      params:\n        tcp_keepalive_probes: 0\n",
    );
    const r = await provision(["plan", fleet.inventoryFile, "--playbook", bad, "--known-hosts", fleet.knownHostsFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /bad\.yaml:5:31 \[0\]\.roles\[0\]\.params\.tcp_keepalive_probes: 0 is out of range \(must be >= 1\)\. Use a count from 1 to 20\./,
    );
    expect(r.stderr).toContain("nothing was sent to any host");
  });
});
