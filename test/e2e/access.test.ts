import { createServer, type Server } from "node:net";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { names } from "../fleet/teardown.js";
import { provision, tempDir, writeFile } from "./helpers.js";

/** Logins, sudo, bad input and unreachable hosts: each a clear per-host result, never a hang or a leak. */
describe("access: become, config errors, unreachable hosts", () => {
  let fleet: Fleet;
  let dir: string;
  let keyFile: string;
  const addr = (i: number) => fleet.hosts[i]!.address;

  let playbook: string;
  // These tests are about access, not roles: the two sysctl roles keep them independent of the host's limits.
  const prov = (args: string[], opts?: Parameters<typeof provision>[1]) =>
    provision([...args, "--playbook", playbook], opts);

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    dir = tempDir("access");
    keyFile = fleet.clientKeyFile;
    playbook = writeFile(dir, "access-playbook.yaml", "- hosts: all\n  roles: [ephemeral-ports, tw-reuse]\n");
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const inventory = (name: string, hosts: string) =>
    writeFile(dir, name, `all:\n  vars:\n    ansible_ssh_private_key_file: ${keyFile}\n  hosts:\n${hosts}`);

  it("become with passwordless sudo applies as root through a non-root login", async () => {
    const inv = inventory(
      "become.yaml",
      `    h1:\n      ansible_host: ${addr(0)}\n      ansible_user: deploy\n      ansible_become: true\n`,
    );
    const run = await prov(["run", inv, "--known-hosts", fleet.knownHostsFile, "--yes"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain("h1: changed");
    const owner = await fleet.exec(
      "h1",
      "stat -c %U /etc/sysctl.d/60-provision-tw-reuse.conf; cat /proc/sys/net/ipv4/tcp_tw_reuse",
    );
    expect(owner.stdout).toBe("root\n1\n");
  });

  it("without become a non-root login cannot write, and says which file failed", async () => {
    await fleet.exec("h2", "sysctl -w net.ipv4.tcp_tw_reuse=0 >/dev/null");
    const inv = inventory("nobecome.yaml", `    h2:\n      ansible_host: ${addr(1)}\n      ansible_user: deploy\n`);
    const run = await prov(["run", inv, "--known-hosts", fleet.knownHostsFile, "--yes"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /h2: FAILED: \/etc\/provision\/snapshot\.json: .*(Permission denied|Operation not permitted)/,
    );
    expect((await fleet.exec("h2", "ls -a /etc/sysctl.d")).stdout).not.toContain("provision");
  });

  it("sudo that needs a password fails fast without one, works with it, and the password never shows", async () => {
    const inv = inventory(
      "sudopw.yaml",
      `    h2:\n      ansible_host: ${addr(1)}\n      ansible_user: deployw\n      ansible_become: true\n`,
    );
    const noPassword = await prov([
      "plan",
      inv,
      "--known-hosts",
      fleet.knownHostsFile,
      "--command-timeout",
      "60",
      "-v",
    ]);
    expect(noPassword.code).toBe(1);
    expect(noPassword.stdout).toContain("needs a password: set PROVISION_BECOME_PASSWORD");
    // Fast: `sudo -n` answers at once instead of waiting at a prompt until the 60 s command
    // timeout; provision's own timing of the step (measured with both cores busy: < 1 s).
    const step = /\] h2: exec \d+ bytes via sudo → failed in (\d+) ms: sudo on \S+ needs a password/.exec(
      noPassword.stderr,
    );
    expect(step, noPassword.stderr).not.toBeNull();
    expect(Number(step![1])).toBeLessThan(10_000);

    const wrong = await prov(["plan", inv, "--known-hosts", fleet.knownHostsFile], {
      env: { PROVISION_BECOME_PASSWORD: "canary-wrong-Zq81" },
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toContain("rejected the become password");
    expect(wrong.stdout + wrong.stderr).not.toContain("canary-wrong-Zq81");

    for (const args of [["run", "--yes"], ["verify"], ["plan", "--json"]]) {
      const r = await prov([args[0]!, inv, "--known-hosts", fleet.knownHostsFile, ...args.slice(1)], {
        env: { PROVISION_BECOME_PASSWORD: fleet.sudoPassword },
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(fleet.sudoPassword);
    }
    expect((await fleet.exec("h2", "cat /proc/sys/net/ipv4/tcp_tw_reuse")).stdout.trim()).toBe("1");
  });

  it("a password given for a host whose sudo needs none never reaches the shell", async () => {
    const inv = inventory(
      "nopwneeded.yaml",
      `    h3:\n      ansible_host: ${addr(2)}\n      ansible_user: deploy\n      ansible_become: true\n`,
    );
    const canary = "canary-echo-$(touch /tmp/pwned)-Hx3";
    const r = await prov(["run", inv, "--known-hosts", fleet.knownHostsFile, "--yes"], {
      env: { PROVISION_BECOME_PASSWORD: canary },
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain("canary-echo");
    expect((await fleet.exec("h3", "ls /tmp/pwned 2>&1 || true")).stdout).toContain("No such file");
  });

  it("bad inventory: every error at once as file:line:col key.path, and no connection is made", async () => {
    const connections: number[] = [];
    const server: Server = createServer((s) => {
      connections.push(Date.now());
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const inv = writeFile(
        dir,
        "bad.yaml",
        [
          "all:",
          "  vars:",
          `    ansible_port: ${port}`,
          "    ephemeral_ports:",
          "      port_range_start: 80",
          "      port_rnage_end: 65535",
          "  hosts:",
          "    a:",
          "      ansible_host: 127.0.0.1",
          "      tw_reuse:",
          "        tcp_tw_recycle: 1",
          "    web[3:1]:",
          "  childrn:",
          "",
        ].join("\n"),
      );
      const r = await prov(["plan", inv]);
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toContain(
        `${inv}:5:25 all.vars.ephemeral_ports.port_range_start: 80 is out of range (must be >= 1024). Use a port between 1024 and 65534, below port_range_end.`,
      );
      expect(lines).toContain(
        `${inv}:6:7 all.vars.ephemeral_ports.port_rnage_end: unknown key "port_rnage_end". Did you mean "port_range_end"?`,
      );
      expect(
        lines.some((l) => l.startsWith(`${inv}:11:9 all.hosts.a.tw_reuse.tcp_tw_recycle: tcp_tw_recycle is refused`)),
      ).toBe(true);
      expect(
        lines.some((l) => l.startsWith(`${inv}:12:5 all.hosts.web[3:1]: "[3:1]" in "web[3:1]" starts after it ends`)),
      ).toBe(true);
      // Ansible skips an unknown key in a group with a warning; so does provision, naming the likely fix.
      expect(lines).toContain(
        `${inv}:13:3 all.childrn: warning: unknown key "childrn" in group "all", so what it holds applies to nothing (Ansible skips it too). A group holds only hosts, vars and children: did you mean "children"?`,
      );
      expect(lines.at(-1)).toBe("4 errors in the configuration; nothing was sent to any host.");
      expect(connections).toHaveLength(0);

      // once valid, the same inventory does connect (so the zero above means something)
      const good = writeFile(
        dir,
        "good.yaml",
        `all:\n  hosts:\n    a:\n      ansible_host: 127.0.0.1\n      ansible_port: ${port}\n      ansible_ssh_private_key_file: ${keyFile}\n`,
      );
      const g = await prov(["plan", good, "--connect-timeout", "3"]);
      expect(g.code).toBe(1);
      expect(connections.length).toBeGreaterThan(0);
    } finally {
      server.close();
    }
  });

  it("unreachable hosts are per-host errors within the timeout; the other hosts still plan", async () => {
    // An address in the fleet's subnet that nobody answers. A permanent neighbour entry (a MAC no
    // host has) stands in for ARP, which would otherwise give up after 3 s with EHOSTUNREACH and
    // race our handshake timer: this way the silent host always ends the same way.
    const silent = fleet.subnet.replace(/0\/24$/, "250");
    const bridge = names.bridge(fleet.prefix);
    execFileSync("ip", ["neigh", "replace", silent, "lladdr", "02:00:5e:00:53:fa", "dev", bridge, "nud", "permanent"]);
    try {
      const inv = inventory(
        "mixed.yaml",
        [
          `    up:\n      ansible_host: ${addr(0)}\n`,
          `    refused:\n      ansible_host: ${addr(1)}\n      ansible_port: 2222\n`,
          `    silent:\n      ansible_host: ${silent}\n`,
        ].join(""),
      );
      // 5 s: the flag is global, and the handshake with "up" must fit in it too (measured up to 1.2 s with 16 busy processes beside it).
      const r = await prov(["plan", inv, "--known-hosts", fleet.knownHostsFile, "--connect-timeout", "5", "-v"], {
        timeoutMs: 30_000,
      });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/up \(1 host\)/);
      expect(r.stdout).toMatch(/refused: UNREACHABLE: connection refused by [\d.]+:2222/);
      expect(r.stdout).toMatch(
        /silent: UNREACHABLE: no SSH handshake from [\d.]+:22 within 5 s \(host down, packets dropped, or a firewall\)$/m,
      );
      // Each within its deadline, by provision's own clock: refused at once, silent at the timeout
      // (a timer is late only by the event loop's lag, measured < 100 ms with both cores busy, and
      // may fire up to 1 ms before Date.now() says its time is up).
      const failedIn = (host: string) =>
        Number(new RegExp(`\\] ${host}: connect failed in (\\d+) ms`).exec(r.stderr)?.[1]);
      expect(failedIn("refused"), r.stderr).toBeLessThan(5_000);
      expect(failedIn("silent"), r.stderr).toBeGreaterThanOrEqual(5_000 - 2);
      expect(failedIn("silent")).toBeLessThan(5_000 + 3_000);
    } finally {
      execFileSync("ip", ["neigh", "del", silent, "dev", bridge]);
    }
  });

  it("an encrypted key: clear error without a passphrase, works with PROVISION_KEY_PASSPHRASE or through ssh-agent", async () => {
    const encrypted = join(dir, "encrypted_key");
    copyFileSync(keyFile, encrypted);
    chmodSync(encrypted, 0o600);
    const passphrase = "canary-pass-Vb71";
    execFileSync("ssh-keygen", ["-q", "-p", "-N", passphrase, "-f", encrypted]);
    const inv = writeFile(
      dir,
      "enc.yaml",
      `all:\n  hosts:\n    h1:\n      ansible_host: ${addr(0)}\n      ansible_ssh_private_key_file: ${encrypted}\n`,
    );
    const args = ["plan", inv, "--known-hosts", fleet.knownHostsFile];

    const none = await prov(args);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain(
      `private key ${encrypted} is encrypted: set PROVISION_KEY_PASSPHRASE or load the key into ssh-agent`,
    );
    const wrong = await prov(args, { env: { PROVISION_KEY_PASSPHRASE: "canary-wrong-Qm2" } });
    expect(wrong.stdout).toContain("wrong passphrase?");
    expect(wrong.stdout + wrong.stderr).not.toContain("canary-wrong-Qm2");
    const right = await prov([...args, "--json"], { env: { PROVISION_KEY_PASSPHRASE: passphrase } });
    expect([0, 2]).toContain(right.code);
    expect(right.stdout + right.stderr).not.toContain(passphrase);

    const agentOut = execFileSync("ssh-agent", ["-s"], { encoding: "utf8" });
    const sock = /SSH_AUTH_SOCK=([^;]+);/.exec(agentOut)![1]!;
    const pid = Number(/SSH_AGENT_PID=(\d+);/.exec(agentOut)![1]);
    try {
      execFileSync("ssh-add", [encrypted], {
        env: {
          ...process.env,
          SSH_AUTH_SOCK: sock,
          SSH_ASKPASS: writeAskpass(dir, passphrase),
          SSH_ASKPASS_REQUIRE: "force",
          DISPLAY: ":0",
        },
        stdio: "ignore",
      });
      const viaAgent = await prov(args, { env: { SSH_AUTH_SOCK: sock } });
      expect([0, 2], viaAgent.stdout + viaAgent.stderr).toContain(viaAgent.code);
    } finally {
      process.kill(pid, "SIGTERM");
    }
  });

  it("an unknown host key is refused before any authentication reaches sshd", async () => {
    const log = join(fleet.dir, "h1", "sshd.log");
    const before = readFileSync(log, "utf8").length;
    const inv = inventory("unknownkey.yaml", `    h1:\n      ansible_host: ${addr(0)}\n`);
    const r = await prov(["plan", inv, "--known-hosts", writeFile(dir, "empty_known_hosts", ""), "-v"], {
      env: { HOME: dir },
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("is unknown");
    // sshd logs this connection's end from its own process, maybe after the CLI exited: wait for
    // that line (bounded), then everything sshd saw of the connection is in the log.
    let added = "";
    for (
      const deadline = Date.now() + 10_000;
      !/(Disconnected from|Connection (closed|reset) by) \S+ port \d+ \[preauth\]/.test(added);
    ) {
      if (Date.now() > deadline) throw new Error(`sshd never logged the end of the refused connection:\n${added}`);
      await new Promise((res) => setTimeout(res, 20));
      added = readFileSync(log, "utf8").slice(before);
    }
    // LogLevel VERBOSE (the fleet's) logs every public key offered, accepted or not.
    expect(added).not.toMatch(/Accepted|Failed publickey|Postponed|publickey/);
  });
});

function writeAskpass(dir: string, passphrase: string): string {
  const path = join(dir, "askpass.sh");
  writeFile(dir, "askpass.sh", `#!/bin/sh\necho '${passphrase}'\n`);
  chmodSync(path, 0o700);
  return path;
}
