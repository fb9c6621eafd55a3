import { readFileSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, readSysctl, tempDir } from "./helpers.js";

/** plan → run → verify → plan again → drift → verify catches it → run repairs it, on real sshd hosts. */
describe("plan | run | verify on a fleet of real hosts", () => {
  let fleet: Fleet;
  let common: string[];
  const sysctl = (host: string, key: string) => readSysctl(fleet, host, key);

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    common = ["--known-hosts", fleet.knownHostsFile];
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it("plan shows every change as a diff, groups identical hosts, and exits 2", async () => {
    const r = await provision(["plan", fleet.inventoryFile, ...common]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("h[1:3] (3 hosts)");
    expect(r.stdout).toMatch(/net\.ipv4\.ip_local_port_range: 32768 60999 → 1024 65535/);
    expect(r.stdout).toMatch(/net\.ipv4\.tcp_tw_reuse: 2 → 1/);
    expect(r.stdout).toContain("--- /dev/null");
    expect(r.stdout).toContain("+++ /etc/sysctl.d/60-provision-ephemeral-ports.conf");
    expect(r.stdout).toContain("+net.ipv4.ip_local_port_range = 1024 65535");
    expect(r.stdout).toMatch(/Plan: \d+ changes on 3 hosts, 0 unchanged, 0 failed\./);
    // plan changed nothing
    expect(await sysctl("h1", "net.ipv4.ip_local_port_range")).toBe("32768\t60999");
  });

  it("plan --json is the data run executes; --format markdown renders a PR comment", async () => {
    const json = await provision(["plan", fleet.inventoryFile, ...common, "--json"]);
    expect(json.code).toBe(2);
    const data = JSON.parse(json.stdout) as {
      summary: { changed: number };
      hosts: Array<{ host: string; changes: Array<{ kind: string; key?: string; path?: string; after: string }> }>;
    };
    expect(data.summary.changed).toBe(3);
    const h1 = data.hosts.find((h) => h.host === "h1")!;
    expect(h1.changes.find((c) => c.key === "net.ipv4.ip_local_port_range")?.after).toBe("1024 65535");
    expect(h1.changes.filter((c) => c.kind === "file").map((c) => c.path)).toEqual(
      expect.arrayContaining([
        "/etc/sysctl.d/60-provision-fd-limits.conf",
        "/etc/security/limits.d/60-provision-fd-limits.conf",
        "/etc/sysctl.d/60-provision-ephemeral-ports.conf",
        "/etc/sysctl.d/60-provision-tw-reuse.conf",
        "/etc/sysctl.d/60-provision-syn-backlog.conf",
        "/etc/sysctl.d/60-provision-keepalive.conf",
        "/etc/sysctl.d/60-provision-conntrack.conf",
      ]),
    );
    const md = await provision(["plan", fleet.inventoryFile, ...common, "--format", "markdown"]);
    expect(md.stdout).toContain("```diff");
    expect(md.stdout).toContain("| `net.ipv4.tcp_tw_reuse` | `2` | `1` |");
  });

  it("run applies (files and live values), verifies, and a second run changes nothing", async () => {
    const r = await provision(["run", fleet.inventoryFile, ...common, "--yes"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Run: 3 changed, 0 unchanged, 0 failed, 0 unreachable\./);
    for (const h of ["h1", "h2", "h3"]) {
      expect(await sysctl(h, "net.ipv4.ip_local_port_range")).toBe("1024\t65535");
      expect(await sysctl(h, "net.ipv4.tcp_tw_reuse")).toBe("1");
    }
    const file = await fleet.exec(
      "h2",
      "cat /etc/sysctl.d/60-provision-tw-reuse.conf; stat -c '%a %U' /etc/sysctl.d/60-provision-tw-reuse.conf; ls -a /etc/sysctl.d",
    );
    expect(file.stdout).toContain("# Managed by provision, role tw-reuse.");
    expect(file.stdout).toContain("net.ipv4.tcp_tw_reuse = 1");
    expect(file.stdout).toContain("644 root");
    expect(file.stdout).not.toContain(".provision-tmp");
    // the machine itself and its other namespaces are untouched
    expect(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim()).toBe("32768\t60999");

    const verify = await provision(["verify", fleet.inventoryFile, ...common]);
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).toMatch(/Verify: (\d+)\/\1 checks ok on 3\/3 hosts; 0 mismatches/);

    const again = await provision(["plan", fleet.inventoryFile, ...common]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("h[1:3] (3 hosts): no changes");
    const rerun = await provision(["run", fleet.inventoryFile, ...common]);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain("Nothing to do: every host already matches.");
  });

  it("verify catches hand-made drift on one host, and run repairs only that host", async () => {
    await fleet.exec(
      "h2",
      "sysctl -w net.ipv4.tcp_tw_reuse=0 >/dev/null; echo '# hand edit' >> /etc/sysctl.d/60-provision-ephemeral-ports.conf",
    );
    const verify = await provision(["verify", fleet.inventoryFile, ...common]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/MISMATCH net\.ipv4\.tcp_tw_reuse: expected 1, found 0/);
    expect(verify.stdout).toMatch(/MISMATCH \/etc\/sysctl\.d\/60-provision-ephemeral-ports\.conf/);
    expect(verify.stdout).toMatch(/Verify: \d+\/\d+ checks ok on 2\/3 hosts; 2 mismatches/);

    const plan = await provision(["plan", fleet.inventoryFile, ...common]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("h2 (1 host): 2 changes");
    expect(plan.stdout).toContain("-# hand edit");
    expect(plan.stdout).toContain("h1, h3 (2 hosts): no changes");

    const run = await provision(["run", fleet.inventoryFile, ...common, "--yes"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 1 changed, 2 unchanged/);
    expect(await sysctl("h2", "net.ipv4.tcp_tw_reuse")).toBe("1");
    expect((await provision(["verify", fleet.inventoryFile, ...common])).code).toBe(0);
  });

  it("verify fails when another sysctl file would win at boot, naming that file and line", async () => {
    await fleet.exec("h3", "printf '# local tuning\\nnet.ipv4.tcp_tw_reuse = 0\\n' > /etc/sysctl.d/99-local.conf");
    try {
      const verify = await provision(["verify", fleet.inventoryFile, ...common]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toMatch(/h3: 1 of \d+ MISMATCH/);
      expect(verify.stdout).toContain(
        "MISMATCH at boot: net.ipv4.tcp_tw_reuse: expected /etc/sysctl.d/60-provision-tw-reuse.conf:",
      );
      expect(verify.stdout).toContain(
        "found /etc/sysctl.d/99-local.conf:2 — another sysctl file sets net.ipv4.tcp_tw_reuse after ours",
      );
    } finally {
      await fleet.exec("h3", "rm -f /etc/sysctl.d/99-local.conf");
    }
    expect((await provision(["verify", fleet.inventoryFile, ...common])).code).toBe(0);
  });

  it("--limit restricts the hosts touched", async () => {
    await fleet.exec("h1", "sysctl -w net.ipv4.tcp_tw_reuse=0 >/dev/null");
    await fleet.exec("h3", "sysctl -w net.ipv4.tcp_tw_reuse=0 >/dev/null");
    const run = await provision(["run", fleet.inventoryFile, ...common, "--yes", "--limit", "fleet:!h3"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Run: 1 changed, 1 unchanged/);
    expect(await sysctl("h1", "net.ipv4.tcp_tw_reuse")).toBe("1");
    expect(await sysctl("h3", "net.ipv4.tcp_tw_reuse")).toBe("0");
    await provision(["run", fleet.inventoryFile, ...common, "--yes", "--limit", "h3"]);
    expect(await sysctl("h3", "net.ipv4.tcp_tw_reuse")).toBe("1");
  });

  it("--tags and --skip-tags pick roles by name; --list-hosts lists without connecting", async () => {
    await fleet.exec("h1", "sysctl -w net.ipv4.tcp_tw_reuse=0 net.ipv4.tcp_keepalive_time=7200 >/dev/null");
    const only = await provision(["plan", fleet.inventoryFile, ...common, "--tags", "tw-reuse"]);
    expect(only.code, only.stderr).toBe(2);
    expect(only.stdout).toContain("net.ipv4.tcp_tw_reuse: 0 → 1");
    expect(only.stdout).not.toContain("tcp_keepalive_time");
    const skipped = await provision([
      "run",
      fleet.inventoryFile,
      ...common,
      "--yes",
      "--skip-tags",
      "tw-reuse,keepalive",
    ]);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(await sysctl("h1", "net.ipv4.tcp_tw_reuse")).toBe("0");
    expect(await sysctl("h1", "net.ipv4.tcp_keepalive_time")).toBe("7200");
    const listed = await provision(["run", fleet.inventoryFile, "--list-hosts", "-t", "keepalive", "--limit", "h1,h2"]);
    expect(listed).toMatchObject({ code: 0, stdout: "hosts (2):\n  h1\tkeepalive\n  h2\tkeepalive\n", stderr: "" });
    const typo = await provision(["plan", fleet.inventoryFile, ...common, "--tags", "keepalve"]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain("--tags keepalve: no such role. Did you mean keepalive?");
    await provision(["run", fleet.inventoryFile, ...common, "--yes", "--limit", "h1"]);
    expect(await sysctl("h1", "net.ipv4.tcp_tw_reuse")).toBe("1");
  });

  it("run without --yes and without a terminal refuses to apply", async () => {
    await fleet.exec("h1", "sysctl -w net.ipv4.tcp_tw_reuse=0 >/dev/null");
    const r = await provision(["run", fleet.inventoryFile, ...common]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Pass --yes to apply");
    expect(await sysctl("h1", "net.ipv4.tcp_tw_reuse")).toBe("0");
    await provision(["run", fleet.inventoryFile, ...common, "--yes", "--limit", "h1"]);
  });

  it("an unknown host key is refused before authenticating; --accept-new-host-keys records it; a changed key is refused even then", async () => {
    const dir = tempDir("hostkeys");
    try {
      const kh = `${dir}/known_hosts`;
      const unknown = await provision(["plan", fleet.inventoryFile, "--known-hosts", kh, "--limit", "h1"], {
        env: { HOME: dir },
      });
      expect(unknown.code).toBe(1);
      expect(unknown.stdout).toMatch(
        /h1: UNREACHABLE: host key of [\d.]+:22 is unknown \(ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}\); refused before authenticating/,
      );

      const accepted = await provision(
        ["plan", fleet.inventoryFile, "--known-hosts", kh, "--accept-new-host-keys", "--limit", "h1"],
        { env: { HOME: dir } },
      );
      expect(accepted.code).toBe(0);
      const recorded = readFileSync(kh, "utf8");
      expect(recorded).toBe(
        `${fleet.hosts[0]!.address} ${readFileSync(fleet.knownHostsFile, "utf8").split("\n")[0]!.split(" ").slice(1).join(" ")}\n`,
      );

      // h2's real key under h1's address = h1's key "changed"
      const h2Key = readFileSync(fleet.knownHostsFile, "utf8").split("\n")[1]!.split(" ").slice(1).join(" ");
      const forged = `${dir}/forged`;
      (await import("node:fs")).writeFileSync(forged, `${fleet.hosts[0]!.address} ${h2Key}\n`);
      const changed = await provision(
        ["plan", fleet.inventoryFile, "--known-hosts", forged, "--accept-new-host-keys", "--limit", "h1"],
        { env: { HOME: dir } },
      );
      expect(changed.code).toBe(1);
      expect(changed.stdout).toContain("HOST KEY CHANGED");
      expect(readFileSync(forged, "utf8").split("\n").filter(Boolean)).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
