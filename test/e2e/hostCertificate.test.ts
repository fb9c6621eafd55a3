import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkHostKey,
  hostKeyAlgorithmsFor,
  keyTypeOfBlob,
  parseKnownHosts,
  type HostKeyVerdict,
  type KnownHostEntry,
} from "../../src/transport/knownHosts.js";
import { ssh2NegotiatesHostCertificates } from "../../src/transport/ssh2Capabilities.js";

/**
 * The patched ssh2 (patches/ssh2+1.17.0.patch) against real sshds on 127.0.0.1 that present host
 * certificates: the hostVerifier must get the certificate itself, and checkHostKey decides.
 */

const LOOPBACK = "127.0.0.1";
const SSHD = "/usr/sbin/sshd";
const isRoot = process.getuid?.() === 0;

interface Sshd {
  process: ChildProcess;
  port: number;
  log: () => string;
}

interface Attempt {
  presented?: Buffer;
  verdict?: HostKeyVerdict;
  error?: Error & { level?: string };
}

describe.skipIf(!isRoot)("ssh2 negotiates host certificates (sshd needs root)", () => {
  let dir: string;
  const sshds: Sshd[] = [];
  let clientKey: Buffer;
  let entries: KnownHostEntry[];
  let valid: Sshd;
  let expired: Sshd;

  const keygen = (...args: string[]) => execFileSync("ssh-keygen", ["-q", ...args], { stdio: "pipe" });
  const newKey = (name: string) => {
    keygen("-t", "ed25519", "-N", "", "-C", name, "-f", join(dir, name));
    return join(dir, name);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(process.env.PROVISION_TEST_RUN_DIR ?? tmpdir(), "host-certificate-e2e-"));
    const ca = newKey("host_ca");
    const client = newKey("client");
    writeFileSync(join(dir, "authorized_keys"), readFileSync(`${client}.pub`));
    clientKey = readFileSync(client);
    const validHostKey = newKey("valid_host_key");
    const expiredHostKey = newKey("expired_host_key");
    keygen("-s", ca, "-h", "-I", "e2e-valid", "-n", LOOPBACK, "-V", "20200101Z:20990101Z", `${validHostKey}.pub`);
    keygen("-s", ca, "-h", "-I", "e2e-expired", "-n", LOOPBACK, "-V", "20200101Z:20200102Z", `${expiredHostKey}.pub`);
    const caPublicKey = readFileSync(`${ca}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
    entries = parseKnownHosts(`@cert-authority ${LOOPBACK},[${LOOPBACK}]:* ${caPublicKey}\n`, join(dir, "known_hosts"));

    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
    valid = await startSshd("valid", validHostKey);
    expired = await startSshd("expired", expiredHostKey);
  });

  afterAll(async () => {
    await Promise.all(sshds.map(stopSshd));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function startSshd(name: string, hostKey: string): Promise<Sshd> {
    // A port found free can be taken before sshd binds it; sshd then exits and we pick another.
    for (let attempt = 1; ; attempt++) {
      const port = await freeLoopbackPort();
      const config = writeSshdConfig(name, hostKey, port);
      const sshd = spawn(SSHD, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
      let log = "";
      sshd.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
      const started: Sshd = { process: sshd, port, log: () => log };
      sshds.push(started);
      if (await listening(sshd, () => log)) return started;
      if (attempt === 5) throw new Error(`sshd ${name} did not start:\n${log}`);
    }
  }

  function writeSshdConfig(name: string, hostKey: string, port: number): string {
    const file = join(dir, `sshd_${name}.conf`);
    writeFileSync(
      file,
      [
        `ListenAddress ${LOOPBACK}:${port}`,
        `HostKey ${hostKey}`,
        `HostCertificate ${hostKey}-cert.pub`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "PidFile none",
        "",
      ].join("\n"),
    );
    return file;
  }

  function connect(port: number): Promise<Attempt> {
    return new Promise((resolve) => {
      const attempt: Attempt = {};
      const client = new ssh2.Client();
      client.on("ready", () => {
        client.end();
        resolve(attempt);
      });
      client.on("error", (error) => resolve({ ...attempt, error }));
      client.connect({
        host: LOOPBACK,
        port,
        username: "root",
        privateKey: clientKey,
        readyTimeout: 30_000,
        algorithms: { serverHostKey: hostKeyAlgorithmsFor(entries, LOOPBACK, port) as never },
        hostVerifier: (key: Buffer) => {
          attempt.presented = key;
          attempt.verdict = checkHostKey(entries, LOOPBACK, port, key);
          return attempt.verdict.status === "known";
        },
      });
    });
  }

  it("runs with the patched ssh2", () => {
    expect(ssh2NegotiatesHostCertificates()).toBe(true);
    expect(hostKeyAlgorithmsFor(entries, LOOPBACK, valid.port)?.[0]).toBe("ssh-ed25519-cert-v01@openssh.com");
  });

  it("receives the host certificate and accepts it through the @cert-authority line", async () => {
    const attempt = await connect(valid.port);
    expect(attempt.error, valid.log()).toBeUndefined();
    expect(keyTypeOfBlob(attempt.presented!)).toBe("ssh-ed25519-cert-v01@openssh.com");
    expect(attempt.verdict).toMatchObject({
      status: "known",
      entry: { marker: "cert-authority", line: 1 },
      certificate: { keyId: "e2e-valid", principals: [LOOPBACK], role: "host" },
    });
  });

  it("refuses an expired host certificate before authenticating", async () => {
    const attempt = await connect(expired.port);
    expect(keyTypeOfBlob(attempt.presented!)).toBe("ssh-ed25519-cert-v01@openssh.com");
    expect(attempt.verdict).toMatchObject({ status: "certificate-refused", reason: "expired" });
    expect(attempt.verdict?.status === "certificate-refused" && attempt.verdict.detail).toBe(
      'certificate "e2e-expired" (serial 0) expired at 2020-01-02T00:00:00Z',
    );
    expect(attempt.error?.level).toBe("handshake");
    expect(attempt.error?.message).toMatch(/Host denied \(verification failed\)/);
    expect(expired.log()).not.toMatch(/Accepted publickey/);
  });
});

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** True once sshd logs that it listens; false if it exits first (e.g. the port was taken). */
function listening(sshd: ChildProcess, log: () => string): Promise<boolean> {
  return new Promise((resolve) => {
    const check = () => {
      if (/Server listening on /.test(log())) finish(true);
    };
    const finish = (result: boolean) => {
      sshd.stderr!.off("data", check);
      sshd.off("exit", onExit);
      resolve(result);
    };
    const onExit = () => finish(false);
    sshd.stderr!.on("data", check);
    sshd.once("exit", onExit);
    check();
  });
}

function stopSshd(sshd: Sshd): Promise<void> {
  const child = sshd.process;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}
