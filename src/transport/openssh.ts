import { spawn, type ChildProcessByStdio } from "node:child_process";
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { CLOSED_BY_US, connectionLostError, DEFAULT_KEEPALIVE, type Keepalive } from "./connectionLoss.js";
import { childEnvironment } from "./childEnvironment.js";
import {
  acquireHops,
  controlDirFor,
  startMaster,
  stopAllMasters,
  type HopLease,
  type MasterSettings,
  type OpenSshMaster,
} from "./openSshMaster.js";
import { endpointLabel, type SshRoute } from "./route.js";
import { shQuote } from "./shell.js";
import { checkSudo, SudoPasswordExchange, SUDO_WITHOUT_PASSWORD } from "./sudo.js";
import { addressTheHostSees } from "./serverAddress.js";
import { HostError, type ExecOptions, type ExecResult, type Transport } from "./types.js";

/**
 * The Transport through the system's OpenSSH client, for hosts ssh2 cannot reach (user
 * certificates, FIDO/PKCS#11 keys, options only OpenSSH honours) or when the user asks for it.
 * Each host has a master connection (openSshMaster.ts); each exec is one `ssh -S <socket>`
 * multiplexed over it, with the same guarantees as ssh.ts: the script on stdin to `sh -s` with
 * LC_ALL=C, exact bytes back, the remote exit status, sudo with -n or with the password written
 * only after sudo's random prompt.
 */

export interface OpenSshOptions {
  /** provision's --known-hosts files first, then the endpoint's own; new keys go to the first. */
  knownHostsFiles: string[];
  /** → StrictHostKeyChecking=accept-new, else yes. */
  acceptNewHostKeys: boolean;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  becomePassword?: string | undefined;
  /** → ServerAliveInterval/CountMax (whole seconds), unless ssh_config sets them for the endpoint. */
  keepalive?: Keepalive;
  /** A 0700 directory for control sockets and logs; short (ControlPath ≤ 90 chars). Default: mkdtemp under $XDG_RUNTIME_DIR or /tmp. */
  controlDir?: string;
  sshBinary?: string;
}

/** A command that ended without its status: how long the master gets to show it went away. */
const MASTER_EXIT_GRACE_MS = 2000;

export async function connectOpenSsh(hostName: string, route: SshRoute, opts: OpenSshOptions): Promise<Transport> {
  const settings: MasterSettings = {
    sshBinary: opts.sshBinary ?? "ssh",
    controlDir: controlDirFor(opts.controlDir),
    knownHostsFiles: opts.knownHostsFiles,
    acceptNewHostKeys: opts.acceptNewHostKeys,
    connectTimeoutMs: opts.connectTimeoutMs,
    keepalive: opts.keepalive ?? DEFAULT_KEEPALIVE,
    env: childEnvironment(),
  };
  const target = route.target;
  const lease = await acquireHops(route.jumps, settings);
  let master: OpenSshMaster;
  try {
    master = await startMaster(target, lease.last, settings, endpointLabel(target));
  } catch (err) {
    await lease.release();
    throw err;
  }
  const address = master.connectedAddress ?? target.hostname;
  const transport = new OpenSshTransport(hostName, master, lease, opts, settings, address);
  if (isIP(address) !== 0) return transport;
  try {
    await transport.learnServerAddress();
  } catch (err) {
    await transport.close();
    throw err;
  }
  return transport;
}

/** Closes every master this process started, shared bastion masters included (end of run). */
export async function closeOpenSshMasters(): Promise<void> {
  await stopAllMasters();
}

class OpenSshTransport implements Transport {
  /** Why the connection ended, as first noticed; set once, never overwritten. */
  private endCause: string | undefined;
  private released = false;
  private readonly where: string;

  constructor(
    readonly hostName: string,
    private readonly master: OpenSshMaster,
    private readonly lease: HopLease,
    private readonly opts: OpenSshOptions,
    private readonly settings: MasterSettings,
    public remoteAddress: string,
  ) {
    this.where = master.label;
  }

  async learnServerAddress(): Promise<void> {
    this.remoteAddress = (await addressTheHostSees(this)) ?? this.remoteAddress;
  }

  async exec(script: string, execOpts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = execOpts.timeoutMs ?? this.opts.commandTimeoutMs;
    const body = `export LC_ALL=C\n${script}`;
    if (execOpts.sudo && this.opts.becomePassword !== undefined)
      return this.execWithSudoPassword(body, this.opts.becomePassword, timeoutMs);
    const result = await this.run(execOpts.sudo ? SUDO_WITHOUT_PASSWORD : "sh -s", timeoutMs, (client) =>
      client.end(body),
    );
    if (execOpts.sudo) checkSudo(result, this.where);
    return result;
  }

  private async execWithSudoPassword(body: string, password: string, timeoutMs: number): Promise<ExecResult> {
    const sudo = new SudoPasswordExchange(password);
    const result = await this.run(sudo.command, timeoutMs, (client) =>
      client.onStderr((seen) => {
        const step = sudo.next(seen, body);
        if (step === "give-up") client.end();
        else if (step && "write" in step) client.write(step.write);
        else if (step) {
          client.end(step.endWith);
          return "done";
        }
        return undefined;
      }),
    );
    return sudo.finish(result, this.where);
  }

  /** One command through the master: `command` runs under a wrapper that reports its status (see withStatusTrailer). */
  private async run(command: string, timeoutMs: number, feed: (client: MuxClient) => void): Promise<ExecResult> {
    await this.requireMaster();
    const nonce = randomBytes(12).toString("hex");
    const client = new MuxClient(this.settings, this.master, withStatusTrailer(command, nonce));
    feed(client);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
    const outcome = await Promise.race([client.finished, timedOut]).finally(() => clearTimeout(timer));
    if (outcome === "timeout") {
      client.kill();
      throw await this.timedOut(timeoutMs);
    }
    const stderr = outcome.stderr.toString("utf8");
    const status = takeStatusTrailer(stderr, nonce);
    if (status === null) throw await this.withoutStatus(outcome, stderr);
    return { stdout: outcome.stdout.toString("utf8"), stderr: status.stderr, ...exitOf(status.status) };
  }

  private async requireMaster(): Promise<void> {
    if (this.endCause !== undefined || !this.master.alive) throw await this.lost();
  }

  private async timedOut(timeoutMs: number): Promise<HostError> {
    if (!this.master.alive) return this.lost();
    // As on the ssh2 path: the connection goes with the command, which may still run on the host.
    await this.endWith(`${CLOSED_BY_US} after a command ran past the command timeout`);
    return new HostError(
      `command on ${this.where} did not finish within ${timeoutMs / 1000} s; connection closed`,
      "timeout",
    );
  }

  /**
   * The wrapper never reported: the session ended under the command. Almost always because the
   * master went away (the host, the network, a bastion); otherwise ssh says why.
   */
  private async withoutStatus(run: MuxRun, stderr: string): Promise<HostError> {
    await Promise.race([this.master.exited, sleep(MASTER_EXIT_GRACE_MS, undefined, { ref: false })]);
    if (!this.master.alive) return this.lost();
    const said = stderr.trim().split("\n").slice(-2).join(" ");
    if (run.spawnError)
      return new HostError(
        `command on ${this.where} could not start: cannot run ${this.settings.sshBinary}: ${run.spawnError.message}`,
        "command",
      );
    if (/session request failed|Session open refused/.test(said))
      return new HostError(`command on ${this.where} could not start: ${said}`, "command");
    if (!this.master.socketReady()) {
      return new HostError(
        `command on ${this.where} could not start: the master's control socket ${this.master.socketPath} is gone (removed by a temp-file cleaner?)`,
        "command",
      );
    }
    const why = run.signal
      ? `the local ssh client was killed (${run.signal})`
      : said
        ? `ssh: ${said}`
        : `ssh exited ${run.code}`;
    return new HostError(`the command on ${this.where} ended without an exit status (${why})`, "command");
  }

  private async lost(): Promise<HostError> {
    if (this.endCause === undefined) await this.endWith(await this.master.endCause());
    return connectionLostError(this.where, this.endCause!);
  }

  /** Records why the connection ended (the first cause only), ends the master, releases the bastions. */
  private async endWith(cause: string): Promise<void> {
    this.endCause ??= cause;
    await this.master.stop();
    if (this.released) return;
    this.released = true;
    await this.lease.release();
  }

  async close(): Promise<void> {
    await this.endWith(CLOSED_BY_US);
  }
}

/** Called with all of stderr so far on every new piece, until it answers "done". */
type StderrListener = (seen: string) => "done" | undefined;

interface MuxRun {
  stdout: Buffer;
  stderr: Buffer;
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: Error;
}

/**
 * One `ssh -S` session over the master. Its own process group, so a timeout ends it whole. It
 * is done when ssh has exited and its output has reached its end.
 */
class MuxClient {
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private readonly stdout: Buffer[] = [];
  private readonly stderr: Buffer[] = [];
  /** What stderr said so far, kept only while someone listens (sudo's prompt). */
  private stderrText = "";
  private stderrListener: StderrListener | undefined;
  readonly finished: Promise<MuxRun>;

  constructor(settings: MasterSettings, master: OpenSshMaster, remoteCommand: string) {
    // -F none and ProxyCommand=false: without the master, ssh would otherwise connect on its own.
    const argv = [
      "-F",
      "none",
      "-S",
      master.socketPath,
      "-o",
      "ControlMaster=no",
      "-o",
      "ProxyCommand=false",
      "-o",
      "BatchMode=yes",
      "-T",
      "--",
      master.endpoint.alias,
      remoteCommand,
    ];
    this.child = spawn(settings.sshBinary, argv, {
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      env: settings.env,
    });
    this.child.stdin.on("error", () => undefined); // EPIPE when ssh is gone; its exit tells why
    this.child.stdout.on("data", (d: Buffer) => this.stdout.push(d));
    this.child.stderr.on("data", (d: Buffer) => {
      this.stderr.push(d);
      if (!this.stderrListener) return;
      this.stderrText += d.toString("latin1");
      if (this.stderrListener(this.stderrText) === "done") {
        this.stderrListener = undefined;
        this.stderrText = "";
      }
    });
    this.finished = this.whenDone();
  }

  private whenDone(): Promise<MuxRun> {
    const ended = (s: Readable) =>
      new Promise<void>((resolve) => (s.readableEnded ? resolve() : s.once("end", resolve).once("close", resolve)));
    const outputEnded = Promise.all([ended(this.child.stdout), ended(this.child.stderr)]);
    return new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
        // No timer of its own: on a starved event loop a drain deadline fired before buffered
        // output was read and lost the status trailer. Nothing else holds these pipes (no master
        // is forked here, no ProxyCommand runs), and the command timeout bounds the wait.
        void outputEnded.then(() => {
          this.child.stdout.destroy();
          this.child.stderr.destroy();
          resolve({
            stdout: Buffer.concat(this.stdout),
            stderr: Buffer.concat(this.stderr),
            code,
            signal,
            ...(spawnError ? { spawnError } : {}),
          });
        });
      };
      this.child.once("exit", (code, signal) => finish(code, signal));
      this.child.once("error", (err) => finish(null, null, err));
    });
  }

  onStderr(listener: StderrListener): void {
    this.stderrListener = listener;
  }

  write(text: string): void {
    this.child.stdin.write(text);
  }

  end(text?: string): void {
    this.child.stdin.end(text);
  }

  kill(): void {
    try {
      if (this.child.pid !== undefined) process.kill(-this.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/**
 * ssh's exit code cannot tell a remote 255 from its own failure, and OpenSSH drops exit-signal
 * altogether, so the remote side reports the status itself: `\n<nonce> <status>\n`, last on
 * stderr. No trailer means the session never finished. `sh -c` because the login shell may be any
 * shell. The waiting shell's own stderr is /dev/null, so the "Killed" a shell prints about a child
 * killed by a signal never reaches the output; the command gets the real stderr back on fd 3.
 * (dash applies a simple command's redirections in the waiting shell itself, hence the group.)
 */
export function withStatusTrailer(command: string, nonce: string): string {
  const inner = `exec 2>&3 3>&-; exec ${command}`;
  const wrapper = `{ sh -c ${shQuote(inner)}; } 3>&2 2>/dev/null; printf '\\n%s %s\\n' ${nonce} "$?" >&2`;
  return `sh -c ${shQuote(wrapper)}`;
}

export function takeStatusTrailer(stderr: string, nonce: string): { stderr: string; status: number } | null {
  const marker = `\n${nonce} `;
  const at = stderr.lastIndexOf(marker);
  if (at < 0) return null;
  const status = /^(\d+)\n/.exec(stderr.slice(at + marker.length));
  if (!status) return null;
  return {
    stderr: stderr.slice(0, at) + stderr.slice(at + marker.length + status[0].length),
    status: Number(status[1]),
  };
}

const SIGNAL_NAMES = new Map<number, string>();
for (const [name, number] of Object.entries(constants.signals)) {
  if (!SIGNAL_NAMES.has(number)) SIGNAL_NAMES.set(number, name.replace(/^SIG/, ""));
}

/**
 * The shell reports a command killed by signal n as 128 + n. It is read as the signal, as ssh2
 * reports a shell killed by one; a script that itself exits 128 + n reads the same.
 */
export function exitOf(status: number): { code: number | null; signal: string | null } {
  const signal = status > 128 ? SIGNAL_NAMES.get(status - 128) : undefined;
  return signal ? { code: null, signal } : { code: status, signal: null };
}
