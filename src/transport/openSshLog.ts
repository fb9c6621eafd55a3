/**
 * Reading what the OpenSSH client wrote to its `-v -E` log (and to its stderr, which goes to the
 * same file): why a master did not come up, why a running one ended, where it connected. Pure:
 * text in, words out. Lines quoted are those of OpenSSH 9.x; anything unrecognised falls back to
 * the log's own last words, never to a guess.
 */

export type FailureKind = "hostkey" | "auth" | "unreachable";

export interface MasterFailure {
  kind: FailureKind;
  message: string;
}

/** What a message about one endpoint needs to know besides the log. */
export interface FailureContext {
  /** `user@host:port`. */
  where: string;
  /** `host:port` as known_hosts names it (HostKeyAlias, else HostName). */
  hostKeyAt: string;
  /** `host:port` where TCP goes. */
  hostPort: string;
  knownHostsFiles: string[];
  connectTimeoutMs: number;
  /** The bastion the connection went through, e.g. "bastion root@10.0.0.1:22"; absent when direct. */
  via?: string | undefined;
  /** The last words of the bastion's own log while it tried to forward (e.g. "connect failed: Connection refused"). */
  forwardRefusal?: string | null | undefined;
  /** True when provision stopped the master because it was not ready within connectTimeoutMs. */
  deadlinePassed?: boolean;
}

/** One identity as OpenSSH lists it in "Will attempt key:" / "Offering public key:" lines. */
export interface LoggedIdentity {
  /** The file for a file key, the comment for an agent key. */
  name: string;
  /** ED25519, ED25519-CERT, ECDSA-SK…; null when the key could not be loaded. */
  type: string | null;
  fingerprint: string | null;
  fromAgent: boolean;
}

const DEBUG = /^debug\d: /;
/** Base64 runs this long are key or certificate blobs, never fingerprints (43 characters). */
const BLOB = /[A-Za-z0-9+/]{60,}={0,2}/g;
const IDENTITY_FLAGS = /((?: (?:explicit|token|agent|authenticator))*)$/;

export function logLines(log: string): string[] {
  return log
    .split(/\r?\n/)
    .map(sanitize)
    .filter((l) => l.trim() !== "");
}

/** Debug logs hold no passwords, but a line may quote a key: anything blob-like is cut out. */
export function sanitize(line: string): string {
  return line.replace(BLOB, "[key]");
}

/** The lines OpenSSH prints without -v: its own errors and warnings. */
function plainLines(lines: string[]): string[] {
  return lines.filter((l) => !DEBUG.test(l) && !/^OpenSSH_\d/.test(l));
}

function lastMatch(lines: string[], re: RegExp): RegExpExecArray | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = re.exec(lines[i]!);
    if (m) return m;
  }
  return null;
}

/** `format_identity()` of sshconnect2.c: NAME [TYPE FINGERPRINT][ explicit][ token][ agent][ authenticator]. */
export function parseIdentity(text: string): LoggedIdentity {
  const flags = IDENTITY_FLAGS.exec(text)![1]!;
  const rest = text.slice(0, text.length - flags.length);
  const fromAgent = / agent\b/.test(flags);
  const keyed = /^(.*) ([A-Z0-9]+(?:-[A-Z0-9]+)*) (SHA256:[A-Za-z0-9+/=]+)$/.exec(rest);
  if (keyed) return { name: keyed[1]!, type: keyed[2]!, fingerprint: keyed[3]!, fromAgent };
  return { name: rest.trim(), type: null, fingerprint: null, fromAgent };
}

export function describeIdentity(id: LoggedIdentity): string {
  const key = id.type ? ` (${id.type} ${id.fingerprint})` : "";
  return id.fromAgent ? `agent key "${id.name}"${key}` : `${id.name}${key}`;
}

/** Identities in the order OpenSSH offered them; keys it had only as private files ("Trying private key") included, missing files not. */
export function offeredIdentities(lines: string[]): LoggedIdentity[] {
  const missing = new Set(lines.flatMap((l) => /^no such identity: (.*): [^:]+$/.exec(l)?.[1] ?? []));
  const offered: LoggedIdentity[] = [];
  for (const line of lines) {
    const m = /^debug1: (?:Offering public key|Trying private key): (.*)$/.exec(line);
    if (m) offered.push(parseIdentity(m[1]!));
  }
  return offered.filter((id) => id.fromAgent || !missing.has(id.name));
}

function plannedIdentities(lines: string[]): LoggedIdentity[] {
  return lines.flatMap((l) => {
    const m = /^debug1: Will attempt key: (.*)$/.exec(l);
    return m ? [parseIdentity(m[1]!)] : [];
  });
}

/** The address TCP went to ("Connecting to h [192.0.2.7] port 22."), or null through a proxy. */
export function connectedAddress(log: string): string | null {
  return lastMatch(logLines(log), /^debug1: Connecting to \S+ \[([^\]]+)\] port \d+\.$/)?.[1] ?? null;
}

/** How far the connection got, for a master that was still at it when its time was up. */
function stageReached(lines: string[]): "tcp" | "handshake" | "authentication" {
  if (lines.some((l) => /^debug1: (SSH2_MSG_SERVICE_ACCEPT received|Authentications that can continue)/.test(l)))
    return "authentication";
  if (lines.some((l) => /^debug1: (Connection established\.|Executing proxy command|Remote protocol version)/.test(l)))
    return "handshake";
  return "tcp";
}

export function explainConnectFailure(log: string, ctx: FailureContext): MasterFailure {
  const lines = logLines(log);
  return (
    hostKeyFailure(lines, ctx) ??
    authFailure(lines, ctx) ??
    networkFailure(lines, ctx) ??
    deadlineFailure(lines, ctx) ??
    unexplained(lines, ctx)
  );
}

function hostKeyFailure(lines: string[], ctx: FailureContext): MasterFailure | null {
  const presented = lastMatch(lines, /^debug1: Server host key: (\S+) (SHA256:\S+)$/);
  const fp = presented ? `${presented[1]} ${presented[2]}` : "its key";
  const files = ctx.knownHostsFiles.join(", ");
  const hostKey = (message: string): MasterFailure => ({ kind: "hostkey", message });
  if (lines.some((l) => l.includes("REMOTE HOST IDENTIFICATION HAS CHANGED"))) {
    const offending = lines.flatMap((l) => {
      const m = /^Offending (\S+) key in (.*):(\d+)$/.exec(l);
      return m ? [`${m[1]} key at ${m[2]}:${m[3]}`] : [];
    });
    return hostKey(
      `HOST KEY CHANGED for ${ctx.hostKeyAt}: it presented ${fp} but known_hosts has ${offending.join("; ") || "another key"}; refused before authenticating. ` +
        "This can be a man-in-the-middle attack or a reinstalled host. If the change is expected, remove the old line (ssh-keygen -R) and connect again.",
    );
  }
  if (lines.some((l) => l.includes("REVOKED HOST KEY DETECTED"))) {
    return hostKey(`host key of ${ctx.hostKeyAt} (${fp}) is marked @revoked in ${files}; refused. Re-key the host.`);
  }
  const invalidCert = lastMatch(lines, /Certificate invalid: (.*)$/);
  if (invalidCert) {
    return hostKey(
      `host certificate of ${ctx.hostKeyAt} is invalid (${invalidCert[1]!.replace(/\.$/, "")}); refused before authenticating. ` +
        "Renew the host certificate, or check the @cert-authority line and the host's principals.",
    );
  }
  const notKnown = lines.some((l) =>
    /^No \S+ host key is known for .* and you have requested strict checking\.$/.test(l),
  );
  if (!notKnown && !lines.includes("Host key verification failed.")) return null;
  const certificate = lastMatch(
    lines,
    /^debug1: Server host certificate: (\S+) (SHA256:[A-Za-z0-9+/=]+).* CA (\S+) (SHA256:[A-Za-z0-9+/=]+)/,
  );
  if (certificate) {
    return hostKey(
      `host certificate of ${ctx.hostKeyAt} (${certificate[1]} ${certificate[2]}) is signed by CA ${certificate[3]} ${certificate[4]}, which no @cert-authority line in ${files} trusts for it; refused before authenticating. ` +
        "Add the right @cert-authority line, or check the fingerprint out of band and add the host key itself.",
    );
  }
  return hostKey(
    `host key of ${ctx.hostKeyAt} is unknown (${fp}); refused before authenticating. ` +
      `Check the fingerprint out of band, then add it to ${files} or rerun with --accept-new-host-keys.`,
  );
}

function authFailure(lines: string[], ctx: FailureContext): MasterFailure | null {
  const denied = lastMatch(lines, /^\S+: Permission denied \(([^)]*)\)\.$/);
  const tooMany = lastMatch(lines, /Too many authentication failures/);
  if (!denied && !tooMany && !lines.includes("debug1: No more authentication methods to try.")) return null;
  const offered = offeredIdentities(lines);
  const parts = [`authentication failed for ${ctx.where}`];
  if (offered.length === 0) {
    const planned = plannedIdentities(lines).map(describeIdentity);
    parts.push(
      planned.length > 0
        ? `no identity could be offered (ssh had ${planned.join("; ")})`
        : "no identity could be offered: set ansible_ssh_private_key_file or IdentityFile, load a key into ssh-agent (SSH_AUTH_SOCK), or create ~/.ssh/id_ed25519",
    );
  } else {
    parts.push(
      `the server refused ${offered.length === 1 ? "the identity" : `all ${offered.length} identities`} offered: ${offered.map(describeIdentity).join("; ")}`,
    );
  }
  const unusable = unusableKeys(lines);
  if (unusable.length > 0) parts.push(unusable.join("; "));
  const methods = (lastMatch(lines, /^debug1: Authentications that can continue: (.*)$/)?.[1] ?? denied?.[1] ?? "")
    .split(",")
    .filter((m) => m !== "");
  if (methods.length > 0) {
    parts.push(
      methods.includes("publickey")
        ? `it accepts: ${methods.join(", ")}`
        : `it accepts only ${methods.join(", ")}, not public keys; provision logs in with keys only`,
    );
  }
  if (tooMany)
    parts.push(
      "it said: too many authentication failures (sshd's MaxAuthTries); set IdentitiesOnly yes with the right IdentityFile",
    );
  parts.push(
    "Check the login user (ansible_user, User in ssh_config) and that one of these public keys is in its authorized_keys.",
  );
  return { kind: "auth", message: parts.join(". ").replace(/\.\./g, ".") };
}

/** Keys the server would take but ssh could not sign with: encrypted files in BatchMode, keys it could not load. */
function unusableKeys(lines: string[]): string[] {
  const notes: string[] = [];
  const signed = lines.some((l) => l.startsWith("Authenticated to "));
  for (const line of lines) {
    const accepted = /^debug1: Server accepts key: (.*)$/.exec(line);
    if (accepted && !signed) {
      notes.push(
        `the server accepts ${describeIdentity(parseIdentity(accepted[1]!))}, but ssh could not sign with it (an encrypted key: load it into ssh-agent, as ssh runs without prompts here; or a security key that needs a touch or PIN)`,
      );
    }
    const load = /^Load key "(.*)": (.*)$/.exec(line) ?? /^no such identity: (.*): ([^:]+)$/.exec(line);
    if (load) notes.push(`cannot load ${load[1]}: ${load[2]}`);
  }
  return [...new Set(notes)];
}

function networkFailure(lines: string[], ctx: FailureContext): MasterFailure | null {
  const at = ctx.via ? `${ctx.hostPort} (through ${ctx.via})` : ctx.hostPort;
  const unreachable = (message: string): MasterFailure => ({ kind: "unreachable", message });
  const connect = lastMatch(lines, /^ssh: connect to host \S+ port \d+: (.*)$/);
  const reason = connect?.[1] ?? "";
  if (/Connection refused/.test(reason))
    return unreachable(`connection refused by ${at}: is sshd running and listening there?`);
  if (/No route to host/.test(reason)) return unreachable(`no route to ${at} (EHOSTUNREACH)`);
  if (/Network is unreachable/.test(reason)) return unreachable(`no route to ${at} (ENETUNREACH)`);
  if (/Invalid argument/.test(reason))
    return unreachable(`no route to ${at}: this machine's routing table discards it (a blackhole route?)`);
  if (/timed out/i.test(reason) || lines.some((l) => /Connection timed out during banner exchange/.test(l))) {
    return unreachable(
      `no SSH handshake from ${at} within ${ctx.connectTimeoutMs / 1000} s (host down, packets dropped, or a firewall)`,
    );
  }
  const resolve = lastMatch(lines, /^ssh: Could not resolve hostname (\S+): (.*)$/);
  if (resolve)
    return unreachable(
      `cannot resolve ${resolve[1]} (${resolve[2]}); set ansible_host to its address, or HostName in ssh_config`,
    );
  const forward = lastMatch(lines, /^Stdio forwarding request failed: (.*)$/);
  if (forward && ctx.via) {
    const why = ctx.forwardRefusal ?? forward[1]!;
    return unreachable(`${ctx.via} could not open a connection to ${ctx.hostPort}: ${why}`);
  }
  if (connect) return unreachable(`cannot connect to ${at}: ${reason}`);
  const closedEarly = lastMatch(lines, /^kex_exchange_identification: (.*)$/);
  if (closedEarly) {
    return unreachable(
      `${at} closed the connection before the SSH handshake (${closedEarly[1]}): is sshd listening there, and below its MaxStartups?`,
    );
  }
  return null;
}

function deadlineFailure(lines: string[], ctx: FailureContext): MasterFailure | null {
  if (!ctx.deadlinePassed) return null;
  const seconds = ctx.connectTimeoutMs / 1000;
  const at = ctx.via ? `${ctx.hostPort} (through ${ctx.via})` : ctx.hostPort;
  switch (stageReached(lines)) {
    case "authentication":
      return {
        kind: "auth",
        message: `authentication for ${ctx.where} did not finish within ${seconds} s (a security key waiting for a touch or PIN, or an agent asking for confirmation?)`,
      };
    case "handshake":
      return {
        kind: "unreachable",
        message: `no SSH handshake from ${at} within ${seconds} s (sshd overloaded, or packets dropped after the connection was made)`,
      };
    case "tcp":
      return {
        kind: "unreachable",
        message: `no SSH handshake from ${at} within ${seconds} s (host down, packets dropped, or a firewall)`,
      };
  }
}

function unexplained(lines: string[], ctx: FailureContext): MasterFailure {
  const said = plainLines(lines).slice(-3).join(" ");
  return { kind: "unreachable", message: `cannot connect to ${ctx.where}: ${said || "ssh ended without saying why"}` };
}

/** Why a master that was up ended, as far as its log tells; null when it says nothing recognisable. */
export type MasterEnd = "stopped-answering" | "closed-by-host" | "proxy-closed";

export function masterEndFromLog(log: string): MasterEnd | null {
  const lines = logLines(log);
  if (lastMatch(lines, /^Timeout, server .* not responding\.$/)) return "stopped-answering";
  if (lastMatch(lines, /^Connection closed by UNKNOWN port 65535$/)) return "proxy-closed";
  const closed =
    /^(Connection to .* closed by remote host\.|Connection closed by .*|Connection reset by .*|client_loop: send disconnect: .*|Read from remote host .*|Received disconnect from .*)$/;
  if (lastMatch(lines, closed)) return "closed-by-host";
  return null;
}

/** What a bastion's master said about a forward it could not open ("channel 3: open failed: connect failed: …"). */
export function forwardRefusal(log: string): string | null {
  return lastMatch(logLines(log), /^channel \d+: open failed: (.*)$/)?.[1] ?? null;
}

/** The last few lines ssh printed itself (not -v chatter), for an end nothing above explains. */
export function lastWords(log: string): string {
  return plainLines(logLines(log)).slice(-2).join(" ");
}
