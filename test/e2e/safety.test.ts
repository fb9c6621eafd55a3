import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { waitUntilGone } from "../fleet/shell.js";
import { PROJECT_ROOT, provision, tempDir, workDir, writeFile } from "./helpers.js";

/** Never lock a user out, always able to roll back, never leak a secret — on real hosts. */
describe("safety on a fleet of real hosts", () => {
  let fleet: Fleet;
  let dir: string;
  let common: string[];
  const netns = (i: number) => fleet.hosts[i]!.netns;
  /** Read through the host's network namespace directly, so it works even when its sshd is gone. */
  const sysctl = async (i: number, key: string) => {
    const { execFileSync } = await import("node:child_process");
    return execFileSync("ip", ["netns", "exec", netns(i), "cat", `/proc/sys/${key.replace(/\./g, "/")}`], {
      encoding: "utf8",
    }).trim();
  };
  const etc = (i: number, path: string) => join(fleet.hosts[i]!.etcDir, path.replace(/^\/etc\//, ""));

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    dir = tempDir("safety");
    common = ["--known-hosts", fleet.knownHostsFile, "--state-dir", join(dir, "state")];
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("rollback restores every original value and file, verifies it, and a second rollback is harmless", async () => {
    const before = {
      range: await sysctl(0, "net.ipv4.ip_local_port_range"),
      reuse: await sysctl(0, "net.ipv4.tcp_tw_reuse"),
      keepalive: await sysctl(0, "net.ipv4.tcp_keepalive_time"),
    };
    const run = await provision(["run", fleet.inventoryFile, ...common, "--yes", "--limit", "h1"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain("keep the original values for `provision rollback` (/etc/provision/snapshot.json)");
    expect(existsSync(etc(0, "/etc/provision/snapshot.json"))).toBe(true);
    expect(readdirSync(etc(0, "/etc/sysctl.d")).filter((f) => f.startsWith("60-provision-"))).toHaveLength(6);
    expect(await sysctl(0, "net.ipv4.tcp_tw_reuse")).toBe("1");

    const rollback = await provision(["rollback", fleet.inventoryFile, ...common, "--yes", "--limit", "h1"]);
    expect(rollback.code, rollback.stdout + rollback.stderr).toBe(0);
    expect(rollback.stdout).toMatch(/h1: restored \(\d+ steps\), verified (\d+)\/\1/);
    expect(await sysctl(0, "net.ipv4.ip_local_port_range")).toBe(before.range);
    expect(await sysctl(0, "net.ipv4.tcp_tw_reuse")).toBe(before.reuse);
    expect(await sysctl(0, "net.ipv4.tcp_keepalive_time")).toBe(before.keepalive);
    expect(readdirSync(etc(0, "/etc/sysctl.d")).filter((f) => f.startsWith("60-provision-"))).toEqual([]);
    expect(existsSync(etc(0, "/etc/security/limits.d/60-provision-fd-limits.conf"))).toBe(false);
    expect(existsSync(etc(0, "/etc/provision/snapshot.json"))).toBe(false);

    const again = await provision(["rollback", fleet.inventoryFile, ...common, "--yes", "--limit", "h1"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("h1: no snapshot, nothing to roll back");
    const plan = await provision(["plan", fleet.inventoryFile, ...common.slice(0, 2), "--limit", "h1"]);
    expect(plan.code).toBe(2);
  });

  it("a run whose fresh login fails is reverted through the still-open connection and reported failed", async () => {
    const before = await sysctl(1, "net.ipv4.tcp_tw_reuse");
    // h1 (batch 1) applies normally; during the pause, h2's sshd listener is killed: its open
    // session survives, but no new login is possible, which is exactly what the guard must catch.
    const { code, stdout, stderr } = await runKillingListenerDuringPause(
      [
        "run",
        fleet.inventoryFile,
        ...common,
        "--yes",
        "--limit",
        "h1,h2",
        "--batches",
        "1",
        "--pause",
        "3",
        "--max-fail-per-batch",
        "1",
        "--max-fail-total",
        "1",
        "--connect-timeout",
        "3",
      ],
      fleet.hosts[1]!.sshdPid,
    );
    expect(code, stdout + stderr).toBe(1);
    expect(stdout).toMatch(
      /h2: FAILED: a fresh login failed after the change \(connection refused by [\d.]+:22: is sshd running and listening there\?\); reverted \d+ changes through the open connection/,
    );
    expect(stdout).toMatch(/h1: changed/);
    expect(await sysctl(1, "net.ipv4.tcp_tw_reuse")).toBe(before);
    expect(readdirSync(etc(1, "/etc/sysctl.d")).filter((f) => f.startsWith("60-provision-"))).toEqual([]);
    expect(existsSync(etc(1, "/etc/security/limits.d/60-provision-fd-limits.conf"))).toBe(false);
  });

  describe("secrets never reach output, logs, JSON or run records, at any verbosity", () => {
    const become = "canary-become-Zx81q";
    const passphrase = "canary-pass-Wq27v";
    let inv: string;
    let playbook: string;
    beforeAll(() => {
      inv = writeFile(
        dir,
        "become.yaml",
        [
          "all:",
          "  vars:",
          `    ansible_ssh_private_key_file: ${fleet.clientKeyFile}`,
          "    ansible_user: deployw",
          "    ansible_become: true",
          "  hosts:",
          `    h3:`,
          `      ansible_host: ${fleet.hosts[2]!.address}`,
          "",
        ].join("\n"),
      );
      playbook = writeFile(dir, "pb.yaml", "- hosts: all\n  roles: [tw-reuse, keepalive]\n");
    });

    // One test per verbosity: each runs the CLI five times, and each has its own time budget.
    it.each([[[]], [["-v"]], [["--json"]], [["-v", "--json"]]])(
      "with %j",
      async (verbosity: string[]) => {
        const env = { PROVISION_BECOME_PASSWORD: fleet.sudoPassword, PROVISION_KEY_PASSPHRASE: passphrase };
        const wrong = { PROVISION_BECOME_PASSWORD: become, PROVISION_KEY_PASSPHRASE: passphrase };
        const stateDir = join(dir, `state-secrets${verbosity.join("")}`);
        const outputs: string[] = [];
        for (const args of [["plan"], ["run", "--yes"], ["verify"], ["rollback", "--yes"]]) {
          const base = [
            args[0]!,
            inv,
            "--playbook",
            playbook,
            "--known-hosts",
            fleet.knownHostsFile,
            "--state-dir",
            stateDir,
            ...args.slice(1),
            ...verbosity,
          ];
          const ok = await provision(base, { env });
          expect([0, 2], ok.stdout + ok.stderr).toContain(ok.code);
          outputs.push(ok.stdout, ok.stderr);
        }
        // A wrong password costs sudo's ~2 s failure delay, on the command that writes a record.
        const bad = await provision(
          [
            "run",
            inv,
            "--playbook",
            playbook,
            "--known-hosts",
            fleet.knownHostsFile,
            "--state-dir",
            stateDir,
            "--yes",
            ...verbosity,
          ],
          { env: wrong },
        );
        expect(bad.code).toBe(1);
        outputs.push(bad.stdout, bad.stderr);
        const all = outputs.join("\n");
        if (verbosity.includes("-v")) expect(all).toContain("h3: exec ");
        expect(all).toMatch(/rejected the become password/);
        const records = readdirSync(join(stateDir, "runs")).map((f) => readFileSync(join(stateDir, "runs", f), "utf8"));
        expect(records.length).toBeGreaterThan(0);
        for (const text of [...outputs, ...records, readFileSync(join(fleet.dir, "h3", "sshd.log"), "utf8")]) {
          expect(text).not.toContain(become);
          expect(text).not.toContain(fleet.sudoPassword);
          expect(text).not.toContain(passphrase);
        }
        expect(readdirSync(workDir()).some((f) => f.includes("canary"))).toBe(false);
      },
      90_000,
    );
  });
});

/** Runs the CLI and kills `pid` (an sshd listener) once batch 1 is done, during the pause. */
function runKillingListenerDuringPause(
  args: string[],
  pid: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "bin", "provision.js"), ...args], {
      cwd: workDir(),
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let killed = false;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!killed && /batch 1\/2 done/.test(stderr)) {
        killed = true;
        // The CLI is held still until the listener is really gone, so its fresh login always
        // meets a closed port, however long the kill takes on a busy machine.
        child.kill("SIGSTOP");
        process.kill(pid, "SIGKILL");
        // Gone includes a zombie: its sockets are closed by then.
        void waitUntilGone(pid, 10_000).then((gone) => {
          if (gone) {
            child.kill("SIGCONT");
            return;
          }
          child.kill("SIGKILL");
          reject(new Error(`sshd listener ${pid} still runs 10 s after SIGKILL`));
        });
      }
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`run did not finish within 90 s\n${stdout}\n${stderr}`));
    }, 90_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (!killed) reject(new Error(`batch 1 never finished, the listener was not killed\n${stdout}\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}
