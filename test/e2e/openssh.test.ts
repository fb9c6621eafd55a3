import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { closeOpenSshMasters, connectOpenSsh, type OpenSshOptions } from "../../src/transport/openssh.js";
import type { SshEndpoint, SshRoute } from "../../src/transport/route.js";
import { HostError, type Transport } from "../../src/transport/types.js";
import { hostOf, processesOf } from "./faultKit.js";
import { PROJECT_ROOT, tempDir } from "./helpers.js";

/**
 * The OpenSSH-client transport against real sshd hosts: exact bytes, exit statuses, sudo, the
 * password's secrecy, timeouts, a master that dies, host keys, authentication messages, and hosts
 * behind one bastion sharing its single connection. Routes are built by hand from an ssh config
 * written here (`-F`), as sshConfig.ts would resolve them.
 */
describe("OpenSSH-client transport", () => {
  let fleet: Fleet;
  let dir: string;
  /** Short: control sockets live here (a socket path must stay within 90 characters). */
  let controlDir: string;
  let configFile: string;
  let wrongKeyFile: string;
  const open: Transport[] = [];
  /** The fleet host behind each alias of the ssh config. */
  const HOST_OF: Record<string, string> = { "h1-wrong-key": "h1", "h2-cert": "h2", "closed-port": "h3" };
  const addr = (name: string) => fleet.hosts.find((h) => h.name === name)!.address;

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3, userCertificates: true });
    dir = tempDir("openssh");
    controlDir = mkdtempSync("/tmp/pv-ossh-");
    wrongKeyFile = join(dir, "wrong_ed25519");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "not-authorized", "-f", wrongKeyFile]);
    const block = (alias: string, host: string, key: string) =>
      `Host ${alias}\n  HostName ${addr(host)}\n  IdentityFile ${key}\n  IdentitiesOnly yes\n`;
    configFile = join(dir, "ssh_config");
    writeFileSync(
      configFile,
      [
        ...["h1", "h2", "h3"].map((h) => block(h, h, fleet.clientKeyFile)),
        block("h1-wrong-key", "h1", wrongKeyFile),
        block("h2-cert", "h2", fleet.userCertKeyFile!),
        block("closed-port", "h3", fleet.clientKeyFile).replace(
          "IdentitiesOnly yes",
          "IdentitiesOnly yes\n  Port 2222",
        ),
      ].join(""),
    );
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
    await closeOpenSshMasters();
  });

  afterAll(async () => {
    await closeOpenSshMasters();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (controlDir) rmSync(controlDir, { recursive: true, force: true });
  });

  /** What sshConfig.ts would resolve for `ssh -F config -o User=user alias`. */
  const endpoint = (alias: string, user = "root", port = 22): SshEndpoint => {
    const host = HOST_OF[alias] ?? alias;
    return {
      alias,
      hostname: addr(host),
      port,
      user,
      identityFiles: [],
      identityFilesConfigured: true,
      identitiesOnly: true,
      certificateFiles: [],
      knownHostsFiles: [],
      recordHostKeysIn: null,
      hostKeyName: addr(host),
      hostKeyPort: port,
      strictHostKeyChecking: "yes",
      connectTimeoutMs: null,
      serverAlive: null,
      proxyCommand: null,
      sshArgv: ["-F", configFile, "-o", `User=${user}`, ...(port === 22 ? [] : ["-p", String(port)]), alias],
      needsOpenSsh: null,
    };
  };
  const options = (more: Partial<OpenSshOptions> = {}): OpenSshOptions => ({
    knownHostsFiles: [fleet.knownHostsFile],
    acceptNewHostKeys: false,
    connectTimeoutMs: 10_000,
    commandTimeoutMs: 30_000,
    controlDir,
    ...more,
  });
  const connect = async (route: SshRoute, more: Partial<OpenSshOptions> = {}, name = route.target.alias) => {
    const t = await connectOpenSsh(name, route, options(more));
    open.push(t);
    return t;
  };
  const direct = (alias: string, user = "root"): SshRoute => ({ target: endpoint(alias, user), jumps: [] });
  const failureOf = async (p: Promise<unknown>): Promise<HostError> => {
    const err = await p.then(
      () => new Error("it succeeded"),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HostError);
    return err as HostError;
  };
  /** Every process whose command line mentions `text`, as "pid args". */
  const processesMentioning = (text: string) =>
    execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes(text) && !l.includes("ps -eo"));
  const waitFor = async (what: string, check: () => boolean | Promise<boolean>, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const establishedTo = (address: string) =>
    execFileSync("ss", ["-tnH", "state", "established", "dst", `${address}:22`], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.trim() !== "").length;

  it("returns exact bytes (1 MB, control and multibyte characters) and stderr without any trailer", async () => {
    const t = await connect(direct("h1"));
    const alphabet = ["\0", "\r", "\n", "\t", "\x1b", "é", "€", "𝄞", "a", "'", '"', "\\", "%", "$"];
    let content = "";
    const picks = randomBytes(400_000);
    for (const b of picks) content += alphabet[b % alphabet.length];
    content = content.slice(0, 1_048_576);
    const b64 = Buffer.from(content, "utf8").toString("base64");
    const r = await t.exec(`printf '%s' '${b64}' | base64 -d\nprintf 'warning: no newline' >&2`);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(content.length);
    expect(r.stdout === content).toBe(true);
    expect(r.stderr).toBe("warning: no newline");
    expect((await t.exec("locale 2>/dev/null | grep LC_ALL; hostname")).stdout).toBe("LC_ALL=C\nh1\n");
    expect(t.remoteAddress).toBe(addr("h1"));
  });

  it("reports exit statuses, 255 included, and a shell killed by a signal as that signal", async () => {
    const t = await connect(direct("h1"));
    for (const code of [0, 1, 42, 255]) {
      const r = await t.exec(`echo out; echo err >&2; exit ${code}`);
      expect(r).toEqual({ stdout: "out\n", stderr: "err\n", code, signal: null });
    }
    const killed = await t.exec("echo before >&2; kill -KILL $$");
    expect(killed).toEqual({ stdout: "", stderr: "before\n", code: null, signal: "KILL" });
    // the connection outlives it
    expect((await t.exec("echo still")).stdout).toBe("still\n");
  });

  it("becomes root with sudo -n, and with the become password written only after sudo's prompt", async () => {
    const deploy = await connect(direct("h1", "deploy"));
    expect((await deploy.exec("id -un")).stdout).toBe("deploy\n");
    expect((await deploy.exec("id -un", { sudo: true })).stdout).toBe("root\n");

    const withoutPassword = await connect(direct("h2", "deployw"));
    const needs = await failureOf(withoutPassword.exec("id -un", { sudo: true }));
    expect(needs.kind).toBe("sudo");
    expect(needs.message).toContain("needs a password: set PROVISION_BECOME_PASSWORD");

    const deployw = await connect(direct("h2", "deployw"), { becomePassword: fleet.sudoPassword });
    const r = await deployw.exec("id -un; cat", { sudo: true });
    expect(r).toEqual({ stdout: "root\n", stderr: "", code: 0, signal: null });

    const wrong = await connect(direct("h3", "deployw"), { becomePassword: "canary-wrong-Zq81" });
    const rejected = await failureOf(wrong.exec("id -un", { sudo: true }));
    expect(rejected.kind).toBe("sudo");
    expect(rejected.message).toBe(`sudo on deployw@${addr("h3")}:22 rejected the become password`);
    // and the host is still usable
    expect((await wrong.exec("id -un")).stdout).toBe("deployw\n");
  });

  it("never shows the become password in a process list or environment, here or on the host", async () => {
    // As the CLI may have it: the ssh processes must not inherit it.
    process.env.PROVISION_BECOME_PASSWORD = fleet.sudoPassword;
    try {
      const t = await connect(direct("h2", "deployw"), { becomePassword: fleet.sudoPassword });
      const marker = `sleep 2.${randomBytes(4).readUInt32BE()}`;
      const running = t.exec(marker, { sudo: true });
      await waitFor("the command to run on the host", () => processesMentioning(marker).length > 0);
      const controller = execFileSync("ps", ["-eo", "args="], { encoding: "utf8" });
      const onHost = (await fleet.exec("h2", "ps -eo args=")).stdout;
      const sshEnvironments = processesMentioning(controlDir).map((l) => {
        try {
          return readFileSync(`/proc/${l.trim().split(/\s+/)[0]}/environ`, "latin1");
        } catch {
          return "";
        }
      });
      expect(controller).toContain(marker);
      expect(controller).not.toContain(fleet.sudoPassword);
      expect(onHost).not.toContain(fleet.sudoPassword);
      expect(sshEnvironments.length).toBeGreaterThanOrEqual(2); // the master and the command's ssh
      expect(sshEnvironments.filter((e) => e.includes(fleet.sudoPassword))).toEqual([]);
      expect((await running).code).toBe(0);
    } finally {
      delete process.env.PROVISION_BECOME_PASSWORD;
    }
  });

  it("a command past its timeout is stopped and the connection closed, in ssh2's words", async () => {
    const t = await connect(direct("h3"));
    const err = await failureOf(t.exec("sleep 30", { timeoutMs: 1000 }));
    expect(err.kind).toBe("timeout");
    expect(err.message).toBe(`command on root@${addr("h3")}:22 did not finish within 1 s; connection closed`);
    const after = await failureOf(t.exec("true"));
    expect(after.kind).toBe("unreachable");
    expect(after.message).toContain("was lost: provision closed it after a command ran past the command timeout");
    await waitFor("no ssh process left", () => processesMentioning(controlDir).length === 0);
  });

  it("a master killed under a running command is a lost connection, not a result", async () => {
    const ownDir = mkdtempSync("/tmp/pv-ossh-");
    try {
      const t = await connect(direct("h3"), { controlDir: ownDir });
      const sleeper = `sleep 5.${randomBytes(4).readUInt32BE()}`;
      const running = t.exec(`${sleeper}; echo done`);
      const master = () => processesMentioning(ownDir).filter((l) => l.includes("ControlMaster=yes"));
      await waitFor("the master", () => master().length === 1);
      await waitFor("the command to start", () => processesMentioning(sleeper).length > 0);
      process.kill(Number(master()[0]!.trim().split(/\s+/)[0]), "SIGKILL");
      const err = await failureOf(running);
      expect(err.kind).toBe("unreachable");
      expect(err.message).toBe(
        `connection to root@${addr("h3")}:22 was lost: the local ssh master process was killed (SIGKILL). A command in flight may have run in part or not at all; plan again to see what is left.`,
      );
      expect((await failureOf(t.exec("true"))).message).toBe(err.message);
      await t.close();
      expect(readdirSync(ownDir)).toEqual([]);
    } finally {
      rmSync(ownDir, { recursive: true, force: true });
    }
  });

  it("refuses an unknown host key, and with accept-new records it in the first known_hosts file", async () => {
    const knownHosts = join(dir, "known_hosts_empty");
    writeFileSync(knownHosts, "");
    const refused = await failureOf(connect(direct("h2"), { knownHostsFiles: [knownHosts] }));
    expect(refused.kind).toBe("hostkey");
    expect(refused.message).toMatch(
      new RegExp(
        `^host key of ${addr("h2").replace(/\./g, "\\.")}:22 is unknown \\(ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}\\); refused before authenticating\\.`,
      ),
    );
    expect(readFileSync(knownHosts, "utf8")).toBe("");

    const accepted = await connect(direct("h2"), { knownHostsFiles: [knownHosts], acceptNewHostKeys: true });
    expect((await accepted.exec("hostname")).stdout).toBe("h2\n");
    const hostKey = readFileSync(fleet.knownHostsFile, "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${addr("h2")} `))!
      .split(" ")
      .slice(1)
      .join(" ");
    expect(readFileSync(knownHosts, "utf8")).toContain(hostKey);
    const again = await connect(direct("h2"), { knownHostsFiles: [knownHosts] });
    expect((await again.exec("hostname")).stdout).toBe("h2\n");
  });

  it("explains an authentication failure with every identity offered, and a refused connection", async () => {
    const err = await failureOf(connect({ target: endpoint("h1-wrong-key", "deploy"), jumps: [] }));
    expect(err.kind).toBe("auth");
    expect(err.message).toMatch(
      new RegExp(
        `^authentication failed for deploy@${addr("h1").replace(/\./g, "\\.")}:22\\. the server refused the identity offered: ${wrongKeyFile} \\(ED25519 SHA256:\\S+\\)\\. it accepts: publickey\\. Check the login user`,
      ),
    );

    const refused = await failureOf(connect({ target: endpoint("closed-port", "root", 2222), jumps: [] }));
    expect(refused.kind).toBe("unreachable");
    expect(refused.message).toBe(`connection refused by ${addr("h3")}:2222: is sshd running and listening there?`);
  });

  it("logs in with a user certificate, which ssh2 cannot", async () => {
    const t = await connect({ target: endpoint("h2-cert", "deploy"), jumps: [] });
    expect((await t.exec("id -un")).stdout).toBe("deploy\n");
  });

  it("hosts behind one bastion share its single TCP connection, which ends with the last of them", async () => {
    const bastion = endpoint("h1");
    const h2 = await connect({ target: endpoint("h2"), jumps: [bastion] });
    // As the resolver gives it for `ansible_ssh_common_args: -J h1`: the jump is in route.jumps, so -J must not reach ssh too.
    const h3Target = { ...endpoint("h3"), sshArgv: ["-F", configFile, "-J", "h1", "-o", "User=root", "h3"] };
    const h3 = await connect({ target: h3Target, jumps: [bastion] });
    expect((await h2.exec("hostname")).stdout).toBe("h2\n");
    expect((await h3.exec("hostname")).stdout).toBe("h3\n");
    expect(establishedTo(addr("h1"))).toBe(1);
    // the targets are reached from the bastion, not from here
    expect(establishedTo(addr("h2")) + establishedTo(addr("h3"))).toBe(0);
    expect(h2.remoteAddress).toBe(addr("h2"));

    await h2.close();
    expect((await h3.exec("hostname")).stdout).toBe("h3\n");
    expect(establishedTo(addr("h1"))).toBe(1);
    await h3.close();
    await waitFor("the bastion connection to end", () => establishedTo(addr("h1")) === 0);
    expect(processesMentioning(controlDir)).toEqual([]);
    expect(readdirSync(controlDir)).toEqual([]);
  });

  it("a target whose bastion goes away mid-command names the bastion", async () => {
    const t = await connect({ target: endpoint("h2"), jumps: [endpoint("h1")] });
    const sleeper = `sleep 5.${randomBytes(4).readUInt32BE()}`;
    const running = t.exec(sleeper);
    await waitFor("the command to start", () => processesMentioning(sleeper).length > 0);
    const bastionMaster = processesMentioning(controlDir).find(
      (l) => l.includes("ControlMaster=yes") && / h1$/.test(l),
    )!;
    process.kill(Number(bastionMaster.trim().split(/\s+/)[0]), "SIGKILL");
    const err = await failureOf(running);
    expect(err.kind).toBe("unreachable");
    expect(err.message).toContain(
      `connection to root@${addr("h2")}:22 was lost: the connection to bastion root@${addr("h1")}:22 ended: the local ssh master process was killed (SIGKILL).`,
    );
  });

  it("a host that stops answering is noticed by the keepalive, in ssh2's words", async () => {
    const t = await connect(direct("h3"), { keepalive: { intervalMs: 1000, countMax: 2 } });
    const host = hostOf(fleet, "h3");
    const sessions = processesOf(host)
      .filter((p) => p.comm === "sshd" && p.pid !== host.sshdPid)
      .map((p) => p.pid);
    expect(sessions.length).toBeGreaterThan(0);
    const signal = (s: NodeJS.Signals) =>
      sessions.forEach((pid) => {
        try {
          process.kill(pid, s);
        } catch {
          // a session of an earlier test that has just ended
        }
      });
    signal("SIGSTOP");
    try {
      const err = await failureOf(t.exec("sleep 20"));
      expect(err.kind).toBe("unreachable");
      expect(err.message).toBe(
        `connection to root@${addr("h3")}:22 was lost: the host stopped answering: no reply to keepalives for 2 s or more (it froze, or packets to or from it are dropped). A command in flight may have run in part or not at all; plan again to see what is left.`,
      );
    } finally {
      signal("SIGCONT");
    }
  });

  it("a bastion that cannot reach the target says so, naming the bastion", async () => {
    const err = await failureOf(connect({ target: endpoint("closed-port", "root", 2222), jumps: [endpoint("h1")] }));
    expect(err.kind).toBe("unreachable");
    expect(err.message).toBe(
      `bastion root@${addr("h1")}:22 could not open a connection to ${addr("h3")}:2222: connect failed: Connection refused`,
    );
  });

  it("a process that exits without closing its transports leaves no master behind", async () => {
    const ownDir = mkdtempSync("/tmp/pv-ossh-");
    try {
      const script = [
        `import { connectOpenSsh } from ${JSON.stringify(join(PROJECT_ROOT, "dist", "src", "transport", "openssh.js"))};`,
        `const opts = ${JSON.stringify(options({ controlDir: ownDir }))};`,
        `const direct = await connectOpenSsh("h1", ${JSON.stringify(direct("h1"))}, opts);`,
        `const behind = await connectOpenSsh("h3", ${JSON.stringify({ target: endpoint("h3"), jumps: [endpoint("h2")] })}, opts);`,
        "await direct.exec('true');",
        "await behind.exec('true');",
        "console.log('connected');",
        "process.exit(0);",
      ].join("\n");
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      await waitFor("the child to exit", () => child.exitCode !== null, 30_000);
      expect(out).toBe("connected\n");
      await waitFor("its masters to end", () => processesMentioning(ownDir).length === 0);
      await waitFor("their sockets to go", () => readdirSync(ownDir).length === 0);
    } finally {
      rmSync(ownDir, { recursive: true, force: true });
    }
  });

  it("leaves no ssh process, socket or log behind once closed", async () => {
    const a = await connect(direct("h1"));
    const b = await connect({ target: endpoint("h3"), jumps: [endpoint("h2")] });
    await a.exec("true");
    await b.exec("true");
    expect(processesMentioning(controlDir).length).toBeGreaterThanOrEqual(3);
    await a.close();
    await b.close();
    await closeOpenSshMasters();
    expect(processesMentioning(controlDir)).toEqual([]);
    expect(readdirSync(controlDir)).toEqual([]);
  });
});
