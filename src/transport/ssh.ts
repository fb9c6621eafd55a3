import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import type { Socket } from "node:net";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { NodeSSH } from "node-ssh";
import ssh2, { type ClientChannel } from "ssh2";
import type { ConnectionSettings } from "../resolve.js";
import {
  checkHostKey, fingerprintSha256, hostKeyAlgorithmsFor, keyTypeOfBlob, knownHostsLine, parseKnownHosts,
  type HostKeyVerdict, type KnownHostEntry,
} from "./knownHosts.js";
import { HostError, type ExecOptions, type ExecResult, type Transport } from "./types.js";
import { CLOSED_BY_US, connectionLostError, endCauseOf, silenceLimitMs, stoppedAnswering, type Keepalive } from "./connectionLoss.js";

/** The only file that knows node-ssh / ssh2. */

export interface SshOptions {
  /** known_hosts files to trust; the first one receives keys accepted with acceptNewHostKeys. */
  knownHostsFiles: string[];
  acceptNewHostKeys: boolean;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** sudo password, when `become` needs one; only ever written to sudo's stdin after its prompt. */
  becomePassword?: string | undefined;
  keyPassphrase?: string | undefined;
  /** How a host that stops answering is noticed; DEFAULT_KEEPALIVE unless a test needs it faster. */
  keepalive?: Keepalive;
}

/** A frozen host is noticed 15–20 s after it stops answering (sooner only as a --command-timeout shorter than that). */
export const DEFAULT_KEEPALIVE: Keepalive = { intervalMs: 5000, countMax: 3 };
/** On top of one keepalive interval: time for the ping's answer to come back. */
const SILENCE_GRACE_MS = 1000;

const ALL_HOST_KEY_ALGORITHMS = [
  "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
];

export function defaultKnownHostsFile(): string {
  return join(homedir(), ".ssh", "known_hosts");
}

export async function connectSsh(hostName: string, conn: ConnectionSettings, opts: SshOptions): Promise<Transport> {
  const entries = readKnownHosts(opts.knownHostsFiles);
  let verdict: HostKeyVerdict | undefined;
  let presented: Buffer | undefined;
  let recorded = false;

  // Must return a boolean synchronously: ssh2 treats any other truthy value (e.g. a Promise) as "accept".
  const hostVerifier = (key: Buffer): boolean => {
    presented = key;
    verdict = checkHostKey(entries, conn.host, conn.port, key);
    if (verdict.status === "known") return true;
    if (verdict.status === "unknown" && opts.acceptNewHostKeys) {
      recordHostKey(opts.knownHostsFiles[0] ?? defaultKnownHostsFile(), conn.host, conn.port, key);
      recorded = true;
      return true;
    }
    return false;
  };

  const known = hostKeyAlgorithmsFor(entries, conn.host, conn.port);
  const serverHostKey = known ? [...known, ...ALL_HOST_KEY_ALGORITHMS.filter((a) => !known.includes(a))] : ALL_HOST_KEY_ALGORITHMS;
  const keepalive = opts.keepalive ?? DEFAULT_KEEPALIVE;
  const ssh = new NodeSSH();
  const where = `${conn.user}@${conn.host}:${conn.port}`;
  try {
    await ssh.connect({
      host: conn.host,
      port: conn.port,
      username: conn.user,
      ...authConfig(conn, opts),
      readyTimeout: opts.connectTimeoutMs,
      keepaliveInterval: keepalive.intervalMs,
      keepaliveCountMax: keepalive.countMax,
      hostVerifier,
      algorithms: { serverHostKey: serverHostKey as never },
    });
  } catch (err) {
    ssh.dispose();
    if (verdict && verdict.status !== "known" && !recorded) throw hostKeyError(conn, verdict, presented!, opts);
    throw connectError(err, where, conn, opts);
  }
  const socket = (ssh.connection as unknown as { _sock?: Socket } | null)?._sock;
  const transport = new SshTransport(hostName, ssh, socket, opts, where, socket?.remoteAddress ?? conn.host, keepalive);
  // ssh2 emits 'error' after connect too (keepalive timeout, reset); unhandled it would end the
  // whole run. The host's pending or next exec fails instead. ssh2 emits these before it fails the
  // pending channel requests, so every exec sees the cause that was noticed first.
  const client = ssh.connection;
  client?.on("error", (err: Error) => transport.endWith(endCauseOf(err, keepalive)));
  client?.on("end", () => transport.endWith(endCauseOf("end", keepalive)));
  client?.on("close", () => transport.endWith(endCauseOf("close", keepalive)));
  return transport;
}

/**
 * Parsed once per file version, not once per connection: a run over N hosts would otherwise parse
 * an N-line file N times. A key recorded with --accept-new-host-keys changes the file's size and
 * mtime, so the next connection reads it again.
 */
const knownHostsCache = new Map<string, { version: string; entries: KnownHostEntry[] }>();

function readKnownHosts(files: string[]): KnownHostEntry[] {
  return files.flatMap((f) => {
    let version: string;
    try {
      const st = statSync(f);
      version = `${st.size}:${st.mtimeMs}:${st.ino}`;
    } catch {
      return [];
    }
    const cached = knownHostsCache.get(f);
    if (cached?.version === version) return cached.entries;
    const entries = parseKnownHosts(readFileSync(f, "utf8"), f);
    knownHostsCache.set(f, { version, entries });
    return entries;
  });
}

function recordHostKey(file: string, host: string, port: number, key: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  appendFileSync(file, `${knownHostsLine(host, port, key)}\n`, { mode: 0o600 });
}

function authConfig(conn: ConnectionSettings, opts: SshOptions): Record<string, unknown> {
  const agent = process.env.SSH_AUTH_SOCK;
  const keyFile = conn.privateKeyFile ?? defaultKeyFile();
  const out: Record<string, unknown> = {};
  if (agent) out.agent = agent;
  if (keyFile) {
    let text: string;
    try {
      text = readFileSync(keyFile, "utf8");
    } catch (err) {
      throw new HostError(`cannot read private key ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}. Check ansible_ssh_private_key_file.`, "auth");
    }
    const parsed = ssh2.utils.parseKey(text, opts.keyPassphrase);
    if (!(parsed instanceof Error)) {
      out.privateKey = text;
      if (opts.keyPassphrase) out.passphrase = opts.keyPassphrase;
    } else if (!agent) {
      // With an agent, a key we can't decrypt is most likely loaded there: use the agent alone.
      throw new HostError(keyProblem(keyFile, parsed, opts.keyPassphrase !== undefined), "auth");
    }
  }
  if (!agent && !keyFile) {
    throw new HostError("no SSH credentials: set ansible_ssh_private_key_file, start ssh-agent (SSH_AUTH_SOCK), or create ~/.ssh/id_ed25519.", "auth");
  }
  return out;
}

function keyProblem(keyFile: string, err: Error, hadPassphrase: boolean): string {
  if (/encrypted/i.test(err.message) && !hadPassphrase) {
    return `private key ${keyFile} is encrypted: set PROVISION_KEY_PASSPHRASE or load the key into ssh-agent (SSH_AUTH_SOCK)`;
  }
  if (hadPassphrase && /decrypt|bad|passphrase|integrity/i.test(err.message)) {
    return `cannot decrypt private key ${keyFile} with PROVISION_KEY_PASSPHRASE (wrong passphrase?)`;
  }
  return `cannot use private key ${keyFile}: ${err.message}`;
}

function defaultKeyFile(): string | undefined {
  return ["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => join(homedir(), ".ssh", k)).find((f) => existsSync(f));
}

function hostKeyError(conn: ConnectionSettings, verdict: HostKeyVerdict, key: Buffer, opts: SshOptions): HostError {
  const fp = `${keyTypeOfBlob(key)} ${fingerprintSha256(key)}`;
  const files = opts.knownHostsFiles.join(", ");
  switch (verdict.status) {
    case "unknown":
      return new HostError(
        `host key of ${conn.host}:${conn.port} is unknown (${fp}); refused before authenticating. ` +
          `Check the fingerprint out of band, then add it to ${files} or rerun with --accept-new-host-keys.`,
        "hostkey",
      );
    case "changed": {
      const expected = verdict.expected.map((e) => `${e.keyType} ${fingerprintSha256(Buffer.from(e.keyBase64, "base64"))} (${e.file}:${e.line})`).join("; ");
      return new HostError(
        `HOST KEY CHANGED for ${conn.host}:${conn.port}: it presented ${fp} but known_hosts has ${expected}; refused before authenticating. ` +
          "This can be a man-in-the-middle attack or a reinstalled host. If the change is expected, remove the old line (ssh-keygen -R) and connect again.",
        "hostkey",
      );
    }
    case "revoked":
      return new HostError(
        `host key of ${conn.host}:${conn.port} (${fp}) is marked @revoked in ${verdict.entry.file}:${verdict.entry.line}; refused. Re-key the host.`,
        "hostkey",
      );
    case "known":
      return new HostError(`host key of ${conn.host}:${conn.port} matched but the connection failed`, "hostkey");
  }
}

function connectError(err: unknown, where: string, conn: ConnectionSettings, opts: SshOptions): HostError {
  if (err instanceof HostError) return err;
  const e = err as NodeJS.ErrnoException & { level?: string };
  const msg = e.message ?? String(err);
  if (e.code === "ECONNREFUSED") return new HostError(`connection refused by ${conn.host}:${conn.port}: is sshd running and listening there?`, "unreachable");
  if (e.code === "EHOSTUNREACH" || e.code === "ENETUNREACH") return new HostError(`no route to ${conn.host}:${conn.port} (${e.code})`, "unreachable");
  // A local blackhole route makes connect() fail at once with EINVAL instead of timing out.
  if (e.code === "EINVAL" && e.syscall === "connect") return new HostError(`no route to ${conn.host}:${conn.port}: this machine's routing table discards it (a blackhole route?)`, "unreachable");
  if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN") return new HostError(`cannot resolve ${conn.host} (${e.code}); set ansible_host to its address`, "unreachable");
  if (/Timed out while waiting for handshake/i.test(msg) || e.code === "ETIMEDOUT") {
    return new HostError(`no SSH handshake from ${conn.host}:${conn.port} within ${opts.connectTimeoutMs / 1000} s (host down, packets dropped, or a firewall)`, "unreachable");
  }
  if (e.level === "client-authentication" || /authentication methods failed/i.test(msg)) {
    return new HostError(`authentication failed for ${where}: the server refused our key${conn.privateKeyFile ? ` ${conn.privateKeyFile}` : "s"}. Check ansible_user and that the public key is in its authorized_keys.`, "auth");
  }
  if (/passphrase/i.test(msg)) return new HostError(`the private key is encrypted: set PROVISION_KEY_PASSPHRASE or load it into ssh-agent`, "auth");
  return new HostError(`cannot connect to ${where}: ${msg}`, "unreachable");
}

class SshTransport implements Transport {
  /** When the host last sent anything (output, a keepalive reply), on a monotonic clock, in ms. */
  private lastHeard = performance.now();
  /** Why the connection ended, as first noticed; set once, never overwritten. */
  private endCause: string | undefined;

  constructor(
    readonly hostName: string,
    private readonly ssh: NodeSSH,
    /** ssh2's TCP socket; without it (an ssh2 that hides it) silence can't be told from slowness. */
    private readonly socket: Socket | undefined,
    private readonly opts: SshOptions,
    private readonly where: string,
    readonly remoteAddress: string,
    private readonly keepalive: Keepalive,
  ) {
    // ssh2 reads the socket through 'data' events too, so a second listener sees the same bytes
    // without changing its flow.
    socket?.on("data", () => (this.lastHeard = performance.now()));
  }

  /** Records why the connection ended (the first cause only) and makes sure it is closed. */
  endWith(cause: string): void {
    if (this.endCause !== undefined) return;
    this.endCause = cause;
    this.hangUp();
  }

  /**
   * ssh2's end() only half-closes the socket, and after it ssh2's destroy() does nothing (it acts
   * only on a writable socket). To a host that no longer answers, the FIN is never acknowledged,
   * or the host never sends its own: the socket would keep the whole process alive for minutes
   * after the run. So the socket itself is destroyed.
   */
  private hangUp(): void {
    this.ssh.dispose();
    this.socket?.destroy();
  }

  async exec(script: string, execOpts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = execOpts.timeoutMs ?? this.opts.commandTimeoutMs;
    const body = `export LC_ALL=C\n${script}`;
    if (execOpts.sudo && this.opts.becomePassword !== undefined) return this.execWithSudoPassword(body, this.opts.becomePassword, timeoutMs);
    const command = execOpts.sudo ? "sudo -n -- sh -s" : "sh -s";
    const result = await this.withTimeout((onChannel) => this.rawExec(command, (ch) => {
      onChannel(ch);
      ch.end(body);
    }), timeoutMs);
    if (execOpts.sudo) checkSudo(result, this.where);
    return this.requireExitStatus(result);
  }

  /** A channel the host closed without an exit status, on a connection that is still up. */
  private requireExitStatus(result: ExecResult): ExecResult {
    if (result.code === null && result.signal === null) {
      throw new HostError(`the command on ${this.where} ended without an exit status (the host closed its channel)`, "command");
    }
    return result;
  }

  /**
   * sudo reads the password from stdin only after printing our random prompt; the script is sent
   * only after sudo has authenticated and our marker shows the shell runs as root. So the password
   * can never reach the shell, even when sudo needs no password at all.
   */
  private async execWithSudoPassword(body: string, password: string, timeoutMs: number): Promise<ExecResult> {
    const nonce = randomBytes(12).toString("hex");
    const prompt = `[provision-sudo-${nonce}]`;
    const ready = `provision-root-${nonce}`;
    const command = `sudo -S -p '${prompt}' -- sh -c 'echo ${ready} >&2; exec sh -s'`;
    let stderrSeen = "";
    let prompts = 0;
    let sentScript = false;
    const result = await this.withTimeout((onChannel) => this.rawExec(command, (ch) => {
      onChannel(ch);
      ch.stderr.on("data", (chunk: Buffer) => {
        stderrSeen += chunk.toString("latin1");
        const count = stderrSeen.split(prompt).length - 1;
        if (count > prompts) {
          prompts = count;
          if (prompts > 1) {
            ch.close();
            return;
          }
          ch.write(`${password}\n`);
        }
        if (!sentScript && stderrSeen.includes(ready)) {
          sentScript = true;
          ch.end(body);
        }
      });
    }), timeoutMs);
    if (!sentScript && (prompts > 1 || /incorrect password|Sorry, try again/i.test(stderrSeen))) {
      throw new HostError(`sudo on ${this.where} rejected the become password`, "sudo");
    }
    if (!sentScript) checkSudo(result, this.where);
    const stderr = result.stderr.split(prompt).join("").replace(`${ready}\n`, "");
    return this.requireExitStatus({ ...result, stderr });
  }

  /** ssh2's exec, decoding output only once complete (a UTF-8 character can straddle two chunks). */
  private rawExec(command: string, onChannel: (ch: ClientChannel) => void): Promise<ExecResult> {
    const client = this.ssh.connection;
    if (this.endCause !== undefined || !client) return Promise.reject(this.lost());
    return new Promise((resolve, reject) => {
      client.exec(command, (err, ch) => {
        if (err) {
          reject(err);
          return;
        }
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let code: number | null = null;
        let signal: string | null = null;
        ch.on("data", (d: Buffer) => stdout.push(d));
        ch.stderr.on("data", (d: Buffer) => stderr.push(d));
        ch.on("exit", (c: number | null, s?: string) => {
          code = c ?? null;
          signal = s ?? null;
        });
        ch.on("close", () =>
          resolve({ stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8"), code, signal }),
        );
        onChannel(ch);
      });
    });
  }

  private async withTimeout(start: (onChannel: (ch: ClientChannel) => void) => Promise<ExecResult>, timeoutMs: number): Promise<ExecResult> {
    let timer: NodeJS.Timeout | undefined;
    let channel: ClientChannel | undefined;
    const p = start((ch) => (channel = ch));
    const timeout = new Promise<never>((_, reject) => {
      const timedOut = () => {
        channel?.close();
        this.endWith(`${CLOSED_BY_US} after a command ran past the command timeout`);
        reject(new HostError(`command on ${this.where} did not finish within ${timeoutMs / 1000} s; connection closed`, "timeout"));
      };
      timer = setTimeout(() => {
        if (this.endCause !== undefined) {
          reject(this.lost());
          return;
        }
        if (!this.seemsSilent()) {
          timedOut();
          return;
        }
        // Silent for as long as the keepalive tolerates: the host has most likely stopped
        // answering, which is what the keepalive will say. Wait one more keepalive interval (a ping
        // goes out meanwhile, also if our own process was stalled) before telling a frozen host
        // from a slow command: any answer proves the host alive.
        const heard = this.lastHeard;
        timer = setTimeout(() => {
          if (this.endCause !== undefined) reject(this.lost());
          else if (this.lastHeard !== heard) timedOut();
          else {
            this.endWith(stoppedAnswering(this.keepalive));
            reject(this.lost());
          }
        }, this.keepalive.intervalMs + SILENCE_GRACE_MS);
      }, timeoutMs);
    });
    try {
      const r = await Promise.race([p, timeout]);
      if (r.code === null && r.signal === null && this.endCause !== undefined) throw this.lost();
      return r;
    } catch (err) {
      if (err instanceof HostError) throw err;
      // ssh2 fails a channel request on a connection that went away with its own words ("No
      // response from server", "Not connected" — also after the host said DISCONNECT, before its
      // FIN arrives —, "Unable to exec"): the connection's end says why.
      if (this.endCause !== undefined || !this.ssh.isConnected() || (err as Error).message === "Not connected") throw this.lost();
      throw new HostError(`command on ${this.where} could not start: ${(err as Error).message}`, "command");
    } finally {
      clearTimeout(timer);
    }
  }

  private seemsSilent(): boolean {
    const limit = silenceLimitMs(this.keepalive);
    return this.socket !== undefined && limit > 0 && performance.now() - this.lastHeard >= limit;
  }

  private lost(): HostError {
    return connectionLostError(this.where, this.endCause ?? endCauseOf("close", DEFAULT_KEEPALIVE));
  }

  async close(): Promise<void> {
    this.endWith(CLOSED_BY_US);
  }
}

function checkSudo(result: ExecResult, where: string): void {
  if (result.code === 1 && /sudo: (a password is required|a terminal is required)/.test(result.stderr)) {
    throw new HostError(
      `sudo on ${where} needs a password: set PROVISION_BECOME_PASSWORD, pass --ask-become-pass, or allow NOPASSWD for this user`,
      "sudo",
    );
  }
  if (result.code === 1 && /is not in the sudoers file|not allowed to execute/.test(result.stderr)) {
    throw new HostError(`the login user on ${where} may not use sudo: ${result.stderr.trim()}`, "sudo");
  }
}
