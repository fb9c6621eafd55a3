import type { Duplex } from "node:stream";
import type { NodeSSH } from "node-ssh";
import { endCauseOf, type Keepalive } from "./connectionLoss.js";
import { startProxyCommand, type ProxyProcess } from "./proxyCommand.js";
import { endpointLabel, type SshEndpoint } from "./route.js";
import { openHop, type HopOptions } from "./sshHop.js";
import { HostError } from "./types.js";

/**
 * ProxyJump through ssh2: each hop is an SSH connection opened over a `direct-tcpip` channel of
 * the hop before it, with its own host key check. All hosts behind the same chain share one
 * connection per hop (a bastion sees one login, not one per host); a hop closes when the last
 * host using it is done. A hop that cannot be reached fails every host behind it with the same
 * message, once: the failure is kept for the run instead of being retried host by host.
 */

export interface BastionLease {
  /** A stream to host:port, opened by the last hop. */
  forward(host: string, port: number): Promise<Duplex>;
  /** Why a hop of the chain went away, if one did. */
  lostHop(): string | undefined;
  release(): void;
}

interface Link {
  ssh: NodeSSH;
  /** The first hop's own ProxyCommand, when ssh_config gives it one. */
  proxy: ProxyProcess | undefined;
  label: string;
  parent: Link | null;
  users: number;
  endCause: string | undefined;
  key: string;
}

export class BastionPool {
  /** Hops being opened, or that failed (kept: every host behind a broken hop gets its message, once). */
  private readonly opening = new Map<string, Promise<Link>>();
  private readonly open = new Map<string, Link>();
  /** After closeAll, a hop whose handshake was still under way is closed as soon as it is up. */
  private closed = false;

  constructor(private readonly opts: HopOptions) {}

  async acquire(jumps: SshEndpoint[]): Promise<BastionLease> {
    const link = await this.link(jumps);
    let released = false;
    return {
      forward: (host, port) => forward(link, host, port),
      lostHop: () => chainEndCause(link),
      release: () => {
        if (released) return;
        released = true;
        this.drop(link);
      },
    };
  }

  /** Ends every hop (end of run). */
  closeAll(): void {
    this.closed = true;
    for (const link of this.open.values()) endLink(link);
    this.open.clear();
    this.opening.clear();
  }

  private async link(jumps: SshEndpoint[]): Promise<Link> {
    const key = chainKey(jumps);
    const live = this.open.get(key);
    if (live && live.endCause === undefined) {
      live.users++;
      return live;
    }
    let pending = this.opening.get(key);
    if (!pending) {
      pending = this.connect(jumps, key);
      this.opening.set(key, pending);
    }
    const link = await pending;
    // Lost, or released by its last user, while this host waited for it: open the chain again.
    if (link.endCause !== undefined) return this.link(jumps);
    link.users++;
    return link;
  }

  private async connect(jumps: SshEndpoint[], key: string): Promise<Link> {
    const hop = jumps.at(-1)!;
    const label = `bastion ${endpointLabel(hop)}${jumps.length > 1 ? ` (hop ${jumps.length} of ${jumps.map((j) => j.alias).join(" → ")})` : ""}`;
    const parent = jumps.length > 1 ? await this.link(jumps.slice(0, -1)) : null;
    let ssh: NodeSSH;
    let proxy: ProxyProcess | undefined;
    try {
      let sock;
      if (parent) sock = await forward(parent, hop.hostname, hop.port);
      else if (hop.proxyCommand !== null) sock = (proxy = startProxyCommand(hop.proxyCommand)).stream;
      ssh = await openHop(hop, sock, this.opts, label);
    } catch (err) {
      proxy?.stop();
      if (parent) this.drop(parent);
      throw err;
    }
    const link: Link = { ssh, proxy, label, parent, users: 0, endCause: undefined, key };
    if (this.closed) {
      endLink(link);
      throw new HostError(`${label}: provision closed it (the run ended)`, "unreachable");
    }
    this.open.set(key, link);
    this.opening.delete(key);
    const keepalive: Keepalive = hop.serverAlive ?? this.opts.keepalive;
    const ended = (cause: string) => {
      if (link.endCause !== undefined) return;
      link.endCause = cause;
      this.forget(link);
      endLink(link);
    };
    ssh.connection?.on("error", (err: Error) => ended(endCauseOf(err, keepalive)));
    ssh.connection?.on("close", () => ended(endCauseOf("close", keepalive)));
    return link;
  }

  private drop(link: Link): void {
    link.users--;
    if (link.users > 0) return;
    link.endCause ??= "provision closed it";
    this.forget(link);
    endLink(link);
    if (link.parent) this.drop(link.parent);
  }

  private forget(link: Link): void {
    if (this.open.get(link.key) === link) this.open.delete(link.key);
  }
}

function chainKey(jumps: SshEndpoint[]): string {
  return JSON.stringify(jumps.map((j) => [j.sshArgv, j.hostname, j.port, j.user, j.identityFiles, j.proxyCommand]));
}

function endLink(link: Link): void {
  link.ssh.dispose();
  link.proxy?.stop();
}

/** The hop nearest the controller that went away: when it goes, every tunnel beyond it goes too. */
function chainEndCause(link: Link): string | undefined {
  const chain: Link[] = [];
  for (let l: Link | null = link; l; l = l.parent) chain.unshift(l);
  const lost = chain.find((l) => l.endCause !== undefined);
  return lost ? `${lost.label} went away: ${lost.endCause}` : undefined;
}

/** ssh2's forwardOut reason codes (RFC 4254 §5.1), in words a user can act on. */
function forward(link: Link, host: string, port: number): Promise<Duplex> {
  const client = link.ssh.connection;
  if (!client || link.endCause !== undefined) {
    return Promise.reject(new HostError(`${link.label} went away: ${link.endCause ?? "not connected"}`, "unreachable"));
  }
  return new Promise((resolve, reject) => {
    client.forwardOut("127.0.0.1", 0, host, port, (err, stream) => {
      if (!err) {
        resolve(stream);
        return;
      }
      const reason = (err as Error & { reason?: number }).reason;
      const why =
        reason === 1
          ? "it refuses TCP forwarding (AllowTcpForwarding or PermitOpen in its sshd_config)"
          : reason === 2
            ? "the connection was refused or failed (is sshd running there, is it reachable from the bastion?)"
            : err.message;
      reject(new HostError(`${link.label} could not open a connection to ${host}:${port}: ${why}`, "unreachable"));
    });
  });
}
