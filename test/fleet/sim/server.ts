import { createServer, type Server as NetServer, type Socket } from "node:net";
import ssh2, { type Connection, type ParsedKey, type ServerChannel } from "ssh2";
import { addToRecording, answer, execText, PRISTINE, type ExecResultText, type Recording } from "./recording.js";

const { Client, Server, utils } = ssh2;

/**
 * The SSH side of the simulated fleet: one ssh2 server that answers as many hosts. Replay mode
 * answers every exec from a Recording, per host (the local address the client connected to);
 * record mode is a proxy in front of one real host that forwards each exec and records the answer.
 */

/**
 * Host i (0-based) is 127.S.T.L with L = 1 + i % 254 (never 0 or 255), block b = floor(i / 254),
 * T = b % 256, S = 100 + floor(b / 256): 65,024 hosts per S, so the first 10,000 are all 127.100.x.y.
 */
const PER_BLOCK = 254;
const BLOCKS_PER_SECOND_OCTET = 256;
const FIRST_SECOND_OCTET = 100;
export const MAX_SIM_HOSTS = 99_999;

export function simHostAddress(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_SIM_HOSTS)
    throw new Error(`simulated host index ${index} is out of range 0..${MAX_SIM_HOSTS - 1}`);
  const block = Math.floor(index / PER_BLOCK);
  const second = FIRST_SECOND_OCTET + Math.floor(block / BLOCKS_PER_SECOND_OCTET);
  return `127.${second}.${block % BLOCKS_PER_SECOND_OCTET}.${1 + (index % PER_BLOCK)}`;
}

/** The index of the host at `address`, or null when no simulated host has it. */
export function simHostIndex(address: string): number | null {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (!m) return null;
  const [second, third, last] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (second < FIRST_SECOND_OCTET || third > 255 || last < 1 || last > PER_BLOCK) return null;
  const block = (second - FIRST_SECOND_OCTET) * BLOCKS_PER_SECOND_OCTET + third;
  const index = block * PER_BLOCK + last - 1;
  return index < MAX_SIM_HOSTS ? index : null;
}

/** `sim00001` for index 0. */
export function simHostName(index: number): string {
  return `sim${String(index + 1).padStart(5, "0")}`;
}

export interface SimStats {
  /** TCP connections accepted (stray ones included). */
  connections: number;
  /** Connections to an address that is no simulated host; closed at once. */
  strayConnections: number;
  /** Open right now. */
  open: number;
  /** The most open at once. */
  peakOpen: number;
  authenticated: number;
  authRejected: number;
  execs: number;
  /** Execs the recording had no answer for (replay), or that could not be forwarded (record). */
  unknownScripts: number;
  /** Connection errors (resets, protocol errors). */
  errors: number;
  /** Hosts whose state is no longer pristine. */
  changedHosts: number;
}

function newStats(): SimStats {
  return {
    connections: 0,
    strayConnections: 0,
    open: 0,
    peakOpen: 0,
    authenticated: 0,
    authRejected: 0,
    execs: 0,
    unknownScripts: 0,
    errors: 0,
    changedHosts: 0,
  };
}

/** What one authenticated connection does with its execs. */
interface ConnectionHandler {
  exec(command: string, stdin: string): Promise<ExecResultText>;
  close(): void;
}

interface FrontOptions {
  /** The server's private host key (OpenSSH format). */
  hostKey: Buffer;
  /** The one client key that may log in. */
  clientKey: ParsedKey;
  user: string;
  stats: SimStats;
  accepts(localAddress: string): boolean;
  open(localAddress: string): ConnectionHandler;
}

export interface RunningServer {
  port: number;
  stats(): SimStats;
  close(): Promise<void>;
}

/**
 * Our own net.Server takes each socket first, so a connection to an address that is no simulated
 * host is closed before any handshake, then hands it to ssh2 (injectSocket).
 */
function sshFront(opts: FrontOptions): NetServer {
  const { stats } = opts;
  const ssh = new Server({ hostKeys: [opts.hostKey] }, (client) => {
    const local = localAddressOf(client);
    if (local === undefined) {
      stats.errors++;
      client.end();
      return;
    }
    serveClient(client, local, opts);
  });
  const sockets = new Set<Socket>();
  const net = createServer({ noDelay: true }, (socket) => {
    stats.connections++;
    // ssh2 reports the socket's errors as the connection's (counted there).
    socket.on("error", () => {});
    if (!opts.accepts(socket.localAddress ?? "")) {
      stats.strayConnections++;
      socket.destroy();
      return;
    }
    sockets.add(socket);
    stats.open++;
    stats.peakOpen = Math.max(stats.peakOpen, stats.open);
    socket.once("close", () => {
      sockets.delete(socket);
      stats.open--;
    });
    ssh.injectSocket(socket);
  });
  net.on("close", () => {
    for (const socket of sockets) socket.destroy();
  });
  return net;
}

/**
 * The host a connection reached. ssh2's connection event names only the client's address and
 * port, and those are not unique here: Linux gives one source port to connections to different
 * addresses at once, so thousands of hosts share source ports. The socket itself is: ssh2 (pinned
 * at 1.17.0) keeps it as the connection's `_sock`.
 */
function localAddressOf(client: Connection): string | undefined {
  return (client as unknown as { _sock?: Socket })._sock?.localAddress;
}

function serveClient(client: Connection, localAddress: string, opts: FrontOptions): void {
  const { stats } = opts;
  let handler: ConnectionHandler | undefined;
  client.on("error", () => stats.errors++);
  client.on("close", () => handler?.close());
  client.on("authentication", (ctx) => {
    const key = opts.clientKey;
    if (
      ctx.method !== "publickey" ||
      ctx.username !== opts.user ||
      ctx.key.algo !== key.type ||
      !ctx.key.data.equals(key.getPublicSSH())
    ) {
      if (ctx.method !== "none") stats.authRejected++;
      ctx.reject(["publickey"]);
      return;
    }
    // Without a signature the client only asks whether this key would do.
    if (ctx.signature !== undefined && key.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) {
      stats.authRejected++;
      ctx.reject(["publickey"]);
      return;
    }
    ctx.accept();
  });
  client.on("ready", () => {
    stats.authenticated++;
    handler = opts.open(localAddress);
    client.on("session", (acceptSession) => {
      const session = acceptSession();
      session.on("env", (accept) => accept?.());
      session.on("pty", (_accept, reject) => reject?.());
      session.once("exec", (accept, _reject, info) => {
        const channel = accept();
        if (channel) runExec(channel, info.command, handler!, stats);
      });
    });
  });
}

function runExec(channel: ServerChannel, command: string, handler: ConnectionHandler, stats: SimStats): void {
  const stdin: Buffer[] = [];
  channel.on("error", () => stats.errors++);
  channel.on("data", (chunk: Buffer) => stdin.push(chunk));
  channel.on("end", () => {
    stats.execs++;
    handler.exec(command, Buffer.concat(stdin).toString("utf8")).then(
      (result) => reply(channel, result),
      (err: unknown) => {
        stats.unknownScripts++;
        reply(channel, { stdout: "", stderr: `simulated host: ${(err as Error).message}\n`, code: 255 });
      },
    );
  });
}

/** Exit status only after both streams went out: ssh2 sends it at once, ahead of output still waiting for window. */
function reply(channel: ServerChannel, result: ExecResultText): void {
  const parts = [
    [channel, result.stdout],
    [channel.stderr, result.stderr],
  ] as const;
  let pending = parts.filter(([, text]) => text !== "").length;
  const finish = () => {
    channel.exit(result.code);
    channel.end();
  };
  if (pending === 0) finish();
  for (const [stream, text] of parts) {
    if (text !== "") stream.write(text, () => --pending === 0 && finish());
  }
}

function listen(net: NetServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    net.once("error", reject);
    // A backlog as deep as the namespace's somaxconn: a run with thousands of forks connects at once.
    net.listen({ port, host, backlog: 4096 }, () => {
      net.off("error", reject);
      const address = net.address();
      resolve(typeof address === "object" && address !== null ? address.port : port);
    });
  });
}

function closer(net: NetServer): () => Promise<void> {
  return () => new Promise((resolve) => net.close(() => resolve()));
}

export interface ReplayOptions {
  recording: Recording;
  hostKey: Buffer;
  clientKey: ParsedKey;
  user?: string;
  hosts: number;
  port: number;
  host: string;
  /** Called for each script the recording has no answer for (the server's owner may keep a few for diagnosis). */
  onUnknown?: (script: string, state: string, localAddress: string) => void;
}

export async function startReplayServer(opts: ReplayOptions): Promise<RunningServer> {
  const stats = newStats();
  const states = new Map<string, string>();
  const net = sshFront({
    hostKey: opts.hostKey,
    clientKey: opts.clientKey,
    user: opts.user ?? "root",
    stats,
    accepts: (local) => {
      const index = simHostIndex(local);
      return index !== null && index < opts.hosts;
    },
    open: (local) => ({
      exec: async (command, stdin) => {
        const state = states.get(local) ?? PRISTINE;
        const script = execText(command, stdin);
        const a = answer(opts.recording, state, script);
        if (!a.recorded) {
          stats.unknownScripts++;
          opts.onUnknown?.(script, state, local);
        }
        if (a.next !== state) {
          if (state === PRISTINE) stats.changedHosts++;
          states.set(local, a.next);
        }
        return a;
      },
      close: () => {},
    }),
  });
  const port = await listen(net, opts.port, opts.host);
  return { port, stats: () => ({ ...stats }), close: closer(net) };
}

export interface UpstreamHost {
  host: string;
  port: number;
  username: string;
  privateKey: Buffer;
  /** The host key it must present: type and raw blob, from known_hosts. */
  hostKey: { type: string; blob: Buffer };
}

export interface RecordProxyOptions {
  recording: Recording;
  hostKey: Buffer;
  clientKey: ParsedKey;
  user?: string;
  upstream: UpstreamHost;
  execTimeoutMs?: number;
}

export interface RecordProxy extends RunningServer {
  /** The real host's state as the recording sees it. */
  state(): string;
}

const UPSTREAM_READY_TIMEOUT_MS = 20_000;
const DEFAULT_EXEC_TIMEOUT_MS = 120_000;

/** Listens on 127.0.0.1 (any free port) in the current namespace, where the real fleet is reachable. */
export async function startRecordProxy(opts: RecordProxyOptions): Promise<RecordProxy> {
  const stats = newStats();
  let state = PRISTINE;
  const net = sshFront({
    hostKey: opts.hostKey,
    clientKey: opts.clientKey,
    user: opts.user ?? "root",
    stats,
    accepts: () => true,
    open: () => {
      const upstream = connectUpstream(opts.upstream);
      upstream.catch(() => {});
      return {
        exec: async (command, stdin) => {
          const result = await execUpstream(
            await upstream,
            command,
            stdin,
            opts.execTimeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
          );
          const next = addToRecording(opts.recording, state, execText(command, stdin), result);
          if (next !== state && state === PRISTINE) stats.changedHosts++;
          state = next;
          return result;
        },
        close: () =>
          void upstream.then(
            (c) => c.end(),
            () => {},
          ),
      };
    },
  });
  const port = await listen(net, 0, "127.0.0.1");
  return { port, stats: () => ({ ...stats }), state: () => state, close: closer(net) };
}

function connectUpstream(target: UpstreamHost): Promise<InstanceType<typeof Client>> {
  const conn = new Client();
  return new Promise((resolve, reject) => {
    conn.once("ready", () => resolve(conn));
    conn.once("error", (err) => reject(new Error(`record proxy: ${target.host}: ${err.message}`)));
    conn.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      readyTimeout: UPSTREAM_READY_TIMEOUT_MS,
      algorithms: { serverHostKey: [target.hostKey.type as "ssh-ed25519"] },
      hostVerifier: (key: Buffer) => key.equals(target.hostKey.blob),
    });
  });
}

function execUpstream(
  conn: InstanceType<typeof Client>,
  command: string,
  stdin: string,
  timeoutMs: number,
): Promise<ExecResultText> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      conn.end();
      reject(new Error(`record proxy: the real host did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.exec(command, (err, ch) => {
      if (err) {
        clearTimeout(timer);
        reject(err);
        return;
      }
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let code: number | null = null;
      ch.on("data", (d: Buffer) => stdout.push(d));
      ch.stderr.on("data", (d: Buffer) => stderr.push(d));
      ch.on("exit", (c: number | null) => (code = c ?? null));
      ch.on("close", () => {
        clearTimeout(timer);
        resolve({
          stdout: Buffer.concat(stdout).toString("utf8"),
          stderr: Buffer.concat(stderr).toString("utf8"),
          // A script killed by a signal has no exit code; sh would report 128+n, any failure code will do.
          code: code ?? 255,
        });
      });
      ch.end(stdin);
    });
  });
}

/** The key known_hosts holds for `address` on port 22 (plain lines only: no hashed names, no markers). */
export function hostKeyFromKnownHosts(knownHosts: string, address: string, port = 22): { type: string; blob: Buffer } {
  const names = port === 22 ? [address, `[${address}]:22`] : [`[${address}]:${port}`];
  for (const line of knownHosts.split("\n")) {
    const [hosts, type, b64] = line.trim().split(/\s+/);
    if (hosts === undefined || type === undefined || b64 === undefined || hosts.startsWith("@")) continue;
    if (hosts.split(",").some((h) => names.includes(h))) return { type, blob: Buffer.from(b64, "base64") };
  }
  throw new Error(`known_hosts has no key for ${address}${port === 22 ? "" : ` port ${port}`}`);
}

/** The one public key (an OpenSSH `.pub` line or file) allowed to log in. */
export function parsePublicKey(text: string | Buffer): ParsedKey {
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error) throw new Error(`client public key: ${parsed.message}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key) throw new Error("client public key: no key found");
  return key;
}
