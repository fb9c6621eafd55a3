import { appendFileSync, mkdirSync, readFileSync, statSync } from "node:fs";
import type { Readable } from "node:stream";
import { dirname } from "node:path";
import { NodeSSH } from "node-ssh";
import { HOST_CERTIFICATE_ALGORITHMS, plainKeyOf } from "./hostCertificate.js";
import {
  checkHostKey,
  fingerprintSha256,
  hostKeyAlgorithmsFor,
  indexKnownHosts,
  keyTypeOfBlob,
  knownHostsLine,
  parseKnownHosts,
  PLAIN_HOST_KEY_ALGORITHMS,
  type HostKeyVerdict,
  type KnownHostEntry,
  type KnownHostsIndex,
} from "./knownHosts.js";
import { ssh2NegotiatesHostCertificates } from "./ssh2Capabilities.js";
import { endpointLabel, type SshEndpoint } from "./route.js";
import { authFailureMessage, authHandlerFor, nothingToOffer, planAuthentication, type AuthTrace } from "./sshAuth.js";
import { HostError } from "./types.js";
import type { Keepalive } from "./connectionLoss.js";

/**
 * One SSH connection through ssh2 — to a target or to a bastion — over TCP or over a stream a
 * bastion or ProxyCommand provides: host key checked against known_hosts (and its
 * @cert-authority lines), keys offered as OpenSSH offers them, every failure explained.
 */

export interface HopOptions {
  /** provision's own --known-hosts files, searched before the endpoint's; the first receives accepted new keys. */
  knownHostsFiles: string[];
  acceptNewHostKeys: boolean;
  connectTimeoutMs: number;
  keyPassphrase?: string | undefined;
  keepalive: Keepalive;
}

/** `role` says what this hop is for in messages, e.g. "bastion 1 of 2 for web-3"; empty for the target itself. */
export async function openHop(
  endpoint: SshEndpoint,
  sock: Readable | undefined,
  opts: HopOptions,
  role: string,
): Promise<NodeSSH> {
  const files = knownHostsFilesFor(endpoint, opts);
  const name = endpoint.hostKeyName;
  const port = endpoint.hostKeyPort;
  const entries = readKnownHosts(files, name, port);
  const acceptNew =
    opts.acceptNewHostKeys ||
    endpoint.strictHostKeyChecking === "accept-new" ||
    endpoint.strictHostKeyChecking === "no";
  // Like ssh: the first --known-hosts file, else the first UserKnownHostsFile; a user who set it
  // to /dev/null has asked for nothing to be kept (never the global file).
  const recordIn = opts.knownHostsFiles[0] ?? endpoint.recordHostKeysIn;
  let verdict: HostKeyVerdict | undefined;
  let presented: Buffer | undefined;
  let recorded = false;
  let recordError: string | undefined;

  // Must return a boolean synchronously: ssh2 treats any other truthy value (e.g. a Promise) as "accept".
  const hostVerifier = (key: Buffer): boolean => {
    presented = key;
    verdict = checkHostKey(entries, name, port, key);
    if (verdict.status === "known") return true;
    if (verdict.status === "unknown" && acceptNew) {
      try {
        if (recordIn !== null) recordHostKey(recordIn, name, port, key);
      } catch (err) {
        recordError = `could not record it in ${recordIn}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
        return false;
      }
      recorded = true;
      return true;
    }
    return false;
  };

  const known = hostKeyAlgorithmsFor(entries, name, port);
  if (known?.some((a) => HOST_CERTIFICATE_ALGORITHMS.includes(a)) && !ssh2NegotiatesHostCertificates()) {
    throw new HostError(
      `${role === "" ? "" : `${role}: `}known_hosts has an @cert-authority line for ${name}, but this installation's ssh2 cannot negotiate host certificates (patches/ssh2+1.17.0.patch was not applied: install scripts were off, or npm hoisted ssh2 out of the package). Reinstall with install scripts allowed (npm i -g provision-tune, or npm ci in a checkout), or use --ssh-client openssh.`,
      "hostkey",
    );
  }
  const serverHostKey = known
    ? [...known, ...PLAIN_HOST_KEY_ALGORITHMS.filter((a) => !known.includes(a))]
    : [...PLAIN_HOST_KEY_ALGORITHMS];
  const plan = await planAuthentication(endpoint, {
    agentSocket: process.env.SSH_AUTH_SOCK || undefined,
    passphrase: opts.keyPassphrase,
  });
  const nothing = nothingToOffer(endpointLabel(endpoint), plan);
  if (nothing !== null) throw new HostError(`${role === "" ? "" : `${role}: `}${nothing}`, "auth");
  const trace: AuthTrace = { offered: [], serverAccepts: null };
  const keepalive = endpoint.serverAlive ?? opts.keepalive;
  const ssh = new NodeSSH();
  const where = endpointLabel(endpoint);
  try {
    await ssh.connect({
      host: endpoint.hostname,
      port: endpoint.port,
      username: endpoint.user,
      ...(sock ? { sock } : {}),
      authHandler: authHandlerFor(plan, endpoint.user, trace) as never,
      readyTimeout: endpoint.connectTimeoutMs ?? opts.connectTimeoutMs,
      keepaliveInterval: keepalive.intervalMs,
      keepaliveCountMax: keepalive.countMax,
      hostVerifier,
      algorithms: { serverHostKey: serverHostKey as never },
    });
  } catch (err) {
    ssh.dispose();
    const prefix = role === "" ? "" : `${role}: `;
    if (recordError)
      throw new HostError(
        `${prefix}host key of ${name}:${port} is new and accepted, but ${recordError}; refused before authenticating`,
        "hostkey",
      );
    if (verdict && verdict.status !== "known" && !recorded)
      throw withPrefix(prefix, hostKeyError(endpoint, verdict, presented!, files));
    const e = err as { level?: string; message?: string; description?: string };
    if (e.level === "client-authentication" || /authentication methods failed/i.test(e.message ?? "")) {
      throw new HostError(`${prefix}${authFailureMessage(where, plan, trace)}`, "auth");
    }
    if (
      trace.offered.length > 0 &&
      /Too many authentication failures/i.test(String(e.message ?? e.description ?? ""))
    ) {
      throw new HostError(
        `${prefix}${authFailureMessage(where, plan, trace, "too many authentication failures (sshd's MaxAuthTries); set IdentitiesOnly yes with the right IdentityFile")}`,
        "auth",
      );
    }
    throw withPrefix(prefix, connectError(err, endpoint, opts, sock !== undefined));
  }
  return ssh;
}

function withPrefix(prefix: string, err: HostError): HostError {
  return prefix === "" ? err : new HostError(`${prefix}${err.message}`, err.kind);
}

/** provision's --known-hosts files first (new keys are recorded in the first), then what ssh_config names. */
function knownHostsFilesFor(endpoint: SshEndpoint, opts: HopOptions): string[] {
  return [...new Set([...opts.knownHostsFiles, ...endpoint.knownHostsFiles])].filter((f) => f !== "/dev/null");
}

/**
 * Parsed once per file version, not once per connection: a run over N hosts would otherwise parse
 * an N-line file N times. A key recorded with --accept-new-host-keys changes the file's size and
 * mtime, so the next connection reads it again.
 */
const knownHostsCache = new Map<string, { version: string; index: KnownHostsIndex }>();

/** The entries of `files` that may be about `host` (at `port`, or at 22), in file order; each file parsed and indexed once. */
function readKnownHosts(files: string[], host: string, port: number): KnownHostEntry[] {
  return files.flatMap((f) => {
    let version: string;
    try {
      const st = statSync(f);
      version = `${st.size}:${st.mtimeMs}:${st.ino}`;
    } catch {
      return [];
    }
    let cached = knownHostsCache.get(f);
    if (cached?.version !== version) {
      cached = { version, index: indexKnownHosts(parseKnownHosts(readFileSync(f, "utf8"), f)) };
      knownHostsCache.set(f, cached);
    }
    return cached.index.candidates(host, port);
  });
}

function recordHostKey(file: string, host: string, port: number, key: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  appendFileSync(file, `${knownHostsLine(host, port, key)}\n`, { mode: 0o600 });
}

function hostKeyError(endpoint: SshEndpoint, verdict: HostKeyVerdict, presented: Buffer, files: string[]): HostError {
  // A certificate is named by the key it certifies: that is what `ssh-keygen -l` shows for the host.
  const key = plainKeyOf(presented);
  const fp = `${keyTypeOfBlob(key)} ${fingerprintSha256(key)}`;
  const at = `${endpoint.hostKeyName}:${endpoint.hostKeyPort}`;
  const fileList =
    files.length > 0 ? files.join(", ") : "a known_hosts file (ssh_config sets UserKnownHostsFile /dev/null)";
  switch (verdict.status) {
    case "unknown":
      return new HostError(
        `host key of ${at} is unknown (${fp}); refused before authenticating. ` +
          `Check the fingerprint out of band, then add it to ${fileList} or rerun with --accept-new-host-keys.`,
        "hostkey",
      );
    case "changed": {
      const expected = verdict.expected
        .map((e) => `${e.keyType} ${fingerprintSha256(Buffer.from(e.keyBase64, "base64"))} (${e.file}:${e.line})`)
        .join("; ");
      return new HostError(
        `HOST KEY CHANGED for ${at}: it presented ${fp} but known_hosts has ${expected}; refused before authenticating. ` +
          "This can be a man-in-the-middle attack or a reinstalled host. If the change is expected, remove the old line (ssh-keygen -R) and connect again.",
        "hostkey",
      );
    }
    case "revoked":
      return new HostError(
        `host key of ${at} (${fp}) is marked @revoked in ${verdict.entry.file}:${verdict.entry.line}; refused. Re-key the host.`,
        "hostkey",
      );
    case "certificate-refused":
      return new HostError(
        `host certificate of ${at} refused before authenticating: ${verdict.detail}. Renew or re-sign the host's certificate, or trust its CA with an @cert-authority line in ${fileList}.`,
        "hostkey",
      );
    case "known":
      return new HostError(`host key of ${at} matched but the connection failed`, "hostkey");
  }
}

function connectError(err: unknown, endpoint: SshEndpoint, opts: HopOptions, tunnelled: boolean): HostError {
  if (err instanceof HostError) return err;
  const e = err as NodeJS.ErrnoException & { level?: string };
  const msg = e.message ?? String(err);
  const at = `${endpoint.hostname}:${endpoint.port}`;
  if (e.code === "ECONNREFUSED")
    return new HostError(`connection refused by ${at}: is sshd running and listening there?`, "unreachable");
  if (e.code === "EHOSTUNREACH" || e.code === "ENETUNREACH")
    return new HostError(
      `no route to ${at} (${e.code})${tunnelled ? "" : "; if it is reachable only through a bastion, set ProxyJump (ssh_config, or ansible_ssh_common_args: -J bastion)"}`,
      "unreachable",
    );
  // A local blackhole route makes connect() fail at once with EINVAL instead of timing out.
  if (e.code === "EINVAL" && e.syscall === "connect")
    return new HostError(
      `no route to ${at}: this machine's routing table discards it (a blackhole route?)`,
      "unreachable",
    );
  if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN")
    return new HostError(
      `cannot resolve ${endpoint.hostname} (${e.code}); set ansible_host to its address, or HostName in ssh_config`,
      "unreachable",
    );
  if (/Timed out while waiting for handshake/i.test(msg) || e.code === "ETIMEDOUT") {
    const seconds = (endpoint.connectTimeoutMs ?? opts.connectTimeoutMs) / 1000;
    return new HostError(
      `no SSH handshake from ${at} within ${seconds} s (host down, packets dropped, or a firewall)`,
      "unreachable",
    );
  }
  if (tunnelled && /Connection lost before handshake/i.test(msg))
    return new HostError(
      `${at} closed the tunnelled connection before the SSH handshake (is sshd listening there?)`,
      "unreachable",
    );
  if (/passphrase/i.test(msg))
    return new HostError(
      `the private key is encrypted: set PROVISION_KEY_PASSPHRASE or load it into ssh-agent`,
      "auth",
    );
  return new HostError(`cannot connect to ${endpointLabel(endpoint)}: ${msg}`, "unreachable");
}
