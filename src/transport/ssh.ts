import { isIP } from "node:net";
import type { Socket } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import type { NodeSSH } from "node-ssh";
import type { ClientChannel } from "ssh2";
import { BastionPool, type BastionLease } from "./bastions.js";
import { startProxyCommand, type ProxyProcess } from "./proxyCommand.js";
import type { SshRoute } from "./route.js";
import { openHop } from "./sshHop.js";
import { checkSudo, SudoPasswordExchange, SUDO_WITHOUT_PASSWORD } from "./sudo.js";
import { addressTheHostSees } from "./serverAddress.js";
import { HostError, type ExecOptions, type ExecResult, type Transport } from "./types.js";
import {
  CLOSED_BY_US,
  connectionLostError,
  DEFAULT_KEEPALIVE,
  endCauseOf,
  silenceLimitMs,
  stoppedAnswering,
  type Keepalive,
} from "./connectionLoss.js";

/** The ssh2 transport: a target reached over TCP, through ProxyJump hops (bastions.ts) or a ProxyCommand. */

export interface SshOptions {
  /** known_hosts files to trust before the ones ssh_config names; the first one receives keys accepted with acceptNewHostKeys. */
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

/** On top of one keepalive interval: time for the ping's answer to come back. */
const SILENCE_GRACE_MS = 1000;

export function defaultKnownHostsFile(): string {
  return join(homedir(), ".ssh", "known_hosts");
}

/** One pool per options object: hosts of one run share their bastion connections. */
const pools = new WeakMap<SshOptions, BastionPool>();

function bastionPool(opts: SshOptions): BastionPool {
  let pool = pools.get(opts);
  if (!pool) {
    pool = new BastionPool(hopOptions(opts));
    pools.set(opts, pool);
  }
  return pool;
}

function hopOptions(opts: SshOptions) {
  return {
    knownHostsFiles: opts.knownHostsFiles,
    acceptNewHostKeys: opts.acceptNewHostKeys,
    connectTimeoutMs: opts.connectTimeoutMs,
    keyPassphrase: opts.keyPassphrase,
    keepalive: opts.keepalive ?? DEFAULT_KEEPALIVE,
  };
}

/** Ends the bastion connections hosts of this run shared. */
export function closeBastions(opts: SshOptions): void {
  pools.get(opts)?.closeAll();
  pools.delete(opts);
}

export async function connectSsh(hostName: string, route: SshRoute, opts: SshOptions): Promise<Transport> {
  const target = route.target;
  let lease: BastionLease | undefined;
  let proxy: ProxyProcess | undefined;
  let ssh: NodeSSH;
  try {
    let sock;
    if (route.jumps.length > 0) {
      lease = await bastionPool(opts).acquire(route.jumps);
      sock = await lease.forward(target.hostname, target.port);
    } else if (target.proxyCommand !== null) {
      proxy = startProxyCommand(target.proxyCommand);
      sock = proxy.stream;
    }
    ssh = await openHop(target, sock, hopOptions(opts), "");
  } catch (err) {
    lease?.release();
    proxy?.stop();
    throw proxy && err instanceof HostError && err.kind === "unreachable"
      ? proxyFailure(target.proxyCommand!, proxy, err)
      : err;
  }
  const keepalive = target.serverAlive ?? opts.keepalive ?? DEFAULT_KEEPALIVE;
  const socket = (ssh.connection as unknown as { _sock?: Socket } | null)?._sock;
  const where = `${target.user}@${target.hostname}:${target.port}`;
  const viaTcp = lease === undefined && proxy === undefined;
  const transport = new SshTransport(
    hostName,
    ssh,
    socket,
    opts,
    where,
    viaTcp ? (socket?.remoteAddress ?? target.hostname) : target.hostname,
    keepalive,
    () => {
      lease?.release();
      proxy?.stop();
    },
  );
  // ssh2 emits 'error' after connect too (keepalive timeout, reset); unhandled it would end the
  // whole run. The host's pending or next exec fails instead. ssh2 emits these before it fails the
  // pending channel requests, so every exec sees the cause that was noticed first.
  const client = ssh.connection;
  const upstream = () =>
    lease?.lostHop() ?? (proxy?.exitStatus() ? `the ProxyCommand ended (${proxy.exitStatus()})` : undefined);
  client?.on("error", (err: Error) => transport.endWith(upstream() ?? endCauseOf(err, keepalive)));
  client?.on("end", () => transport.endWith(upstream() ?? endCauseOf("end", keepalive)));
  // When a bastion dies its tunnels close first: give the bastion's own events a turn, so the
  // message names the hop that went away.
  client?.on("close", () => setImmediate(() => transport.endWith(upstream() ?? endCauseOf("close", keepalive))));
  if (!viaTcp && isIP(target.hostname) === 0) {
    try {
      await transport.learnServerAddress();
    } catch (err) {
      await transport.close();
      throw err;
    }
  }
  return transport;
}

function proxyFailure(command: string, proxy: ProxyProcess, err: HostError): HostError {
  const status = proxy.exitStatus();
  const stderr = proxy.stderr();
  return new HostError(
    `ProxyCommand ${JSON.stringify(command)} ${status ? `ended (${status})` : "gave no SSH connection"}${stderr ? `: ${stderr.split("\n").slice(-3).join(" ")}` : ""} (${err.message})`,
    "unreachable",
  );
}

class SshTransport implements Transport {
  /** When the host last sent anything (output, a keepalive reply), on a monotonic clock, in ms. */
  private lastHeard = performance.now();
  /** Why the connection ended, as first noticed; set once, never overwritten. */
  private endCause: string | undefined;

  constructor(
    readonly hostName: string,
    private readonly ssh: NodeSSH,
    /** ssh2's socket (TCP, or the tunnel through a bastion or ProxyCommand); without it silence can't be told from slowness. */
    private readonly socket: Socket | undefined,
    private readonly opts: SshOptions,
    private readonly where: string,
    public remoteAddress: string,
    private readonly keepalive: Keepalive,
    /** Releases what the connection rode on (its bastion lease, its ProxyCommand). */
    private readonly released: () => void,
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
    this.released();
  }

  async learnServerAddress(): Promise<void> {
    this.remoteAddress = (await addressTheHostSees(this)) ?? this.remoteAddress;
  }

  async exec(script: string, execOpts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = execOpts.timeoutMs ?? this.opts.commandTimeoutMs;
    const body = `export LC_ALL=C\n${script}`;
    if (execOpts.sudo && this.opts.becomePassword !== undefined)
      return this.execWithSudoPassword(body, this.opts.becomePassword, timeoutMs);
    const command = execOpts.sudo ? SUDO_WITHOUT_PASSWORD : "sh -s";
    const result = await this.withTimeout(
      (onChannel) =>
        this.rawExec(command, (ch) => {
          onChannel(ch);
          ch.end(body);
        }),
      timeoutMs,
    );
    if (execOpts.sudo) checkSudo(result, this.where);
    return this.requireExitStatus(result);
  }

  /** A channel the host closed without an exit status, on a connection that is still up. */
  private requireExitStatus(result: ExecResult): ExecResult {
    if (result.code === null && result.signal === null) {
      throw new HostError(
        `the command on ${this.where} ended without an exit status (the host closed its channel)`,
        "command",
      );
    }
    return result;
  }

  private async execWithSudoPassword(body: string, password: string, timeoutMs: number): Promise<ExecResult> {
    const sudo = new SudoPasswordExchange(password);
    let stderrSeen = "";
    const result = await this.withTimeout(
      (onChannel) =>
        this.rawExec(sudo.command, (ch) => {
          onChannel(ch);
          ch.stderr.on("data", (chunk: Buffer) => {
            stderrSeen += chunk.toString("latin1");
            const step = sudo.next(stderrSeen, body);
            if (step === "give-up") ch.close();
            else if (step && "write" in step) ch.write(step.write);
            else if (step) ch.end(step.endWith);
          });
        }),
      timeoutMs,
    );
    return this.requireExitStatus(sudo.finish(result, this.where));
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
          resolve({
            stdout: Buffer.concat(stdout).toString("utf8"),
            stderr: Buffer.concat(stderr).toString("utf8"),
            code,
            signal,
          }),
        );
        onChannel(ch);
      });
    });
  }

  private async withTimeout(
    start: (onChannel: (ch: ClientChannel) => void) => Promise<ExecResult>,
    timeoutMs: number,
  ): Promise<ExecResult> {
    let timer: NodeJS.Timeout | undefined;
    let channel: ClientChannel | undefined;
    const p = start((ch) => (channel = ch));
    const timeout = new Promise<never>((_, reject) => {
      const timedOut = () => {
        channel?.close();
        this.endWith(`${CLOSED_BY_US} after a command ran past the command timeout`);
        reject(
          new HostError(
            `command on ${this.where} did not finish within ${timeoutMs / 1000} s; connection closed`,
            "timeout",
          ),
        );
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
      if (this.endCause !== undefined || !this.ssh.isConnected() || (err as Error).message === "Not connected")
        throw this.lost();
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
