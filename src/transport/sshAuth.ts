import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import ssh2, { type AnyAuthMethod, type AuthenticationType, type NextAuthHandler, type ParsedKey } from "ssh2";
import { fingerprintSha256, keyTypeOfBlob } from "./knownHosts.js";
import type { SshEndpoint } from "./route.js";

/**
 * Public-key authentication the way OpenSSH offers keys (sshconnect2.c pubkey_prepare): the
 * agent's keys in the agent's order (with IdentitiesOnly only those that are configured identity
 * files), then configured keys the agent does not hold. Each key is one attempt, so a failure can say
 * exactly which identities were offered and what the server would still accept.
 */

export interface AuthSources {
  /** SSH_AUTH_SOCK, when an agent runs. */
  agentSocket: string | undefined;
  /** PROVISION_KEY_PASSPHRASE, for encrypted identity files. */
  passphrase: string | undefined;
}

interface Attempt {
  /** How a message names it: the file, or the agent key's comment; with type and fingerprint. */
  label: string;
  method: (username: string) => AnyAuthMethod;
}

export interface AuthPlan {
  attempts: Attempt[];
  /** Identities that could not be offered, and why (missing file, encrypted without passphrase, a type ssh2 lacks). */
  skipped: string[];
}

/** Reads the identity files and asks the agent for its keys; never throws for one bad identity. */
export async function planAuthentication(endpoint: SshEndpoint, sources: AuthSources): Promise<AuthPlan> {
  const skipped: string[] = [];
  const files = endpoint.identityFiles.flatMap((path) => {
    const f = readIdentity(path, sources.passphrase, endpoint.identityFilesConfigured);
    if ("skip" in f) {
      if (f.skip) skipped.push(f.skip);
      return [];
    }
    return [f];
  });
  const agentKeys = sources.agentSocket ? await agentIdentities(sources.agentSocket, skipped) : [];
  const isConfigured = (k: AgentKey) => files.some((f) => f.publicBlob.equals(k.blob));
  const ordered: Attempt[] = [
    ...agentKeys
      .filter((k) => isConfigured(k) || !endpoint.identitiesOnly)
      .map((k) => agentAttempt(sources.agentSocket!, k)),
    ...files
      .filter((f) => !agentKeys.some((k) => k.blob.equals(f.publicBlob)))
      .flatMap((f) => {
        if (f.privateKey) return [fileAttempt(f.path, f.privateKey, f.publicBlob)];
        skipped.push(
          `private key ${f.path} is encrypted: set PROVISION_KEY_PASSPHRASE or load the key into ssh-agent${sources.agentSocket ? " (the running agent does not hold it)" : ""}`,
        );
        return [];
      }),
  ];
  return { attempts: ordered, skipped };
}

interface IdentityFile {
  path: string;
  publicBlob: Buffer;
  /** The decrypted key; absent when it is encrypted and no passphrase was given (the agent may hold it). */
  privateKey?: ParsedKey;
}

/**
 * Parsed once per file version and passphrase, not once per connection: an encrypted key costs
 * ssh2's bcrypt about a second per parse, on the event loop, and 10,000 hosts name the same key.
 */
const identityCache = new Map<string, { version: string; identity: IdentityFile | { skip: string | null } }>();

function readIdentity(
  path: string,
  passphrase: string | undefined,
  configured: boolean,
): IdentityFile | { skip: string | null } {
  let version: string;
  try {
    const st = statSync(path);
    version = `${st.size}:${st.mtimeMs}:${st.ino}:${configured}:${passphrase === undefined ? "" : createHash("sha256").update(passphrase).digest("hex")}`;
  } catch {
    return parseIdentity(path, passphrase, configured);
  }
  const cached = identityCache.get(path);
  if (cached?.version === version) return cached.identity;
  const identity = parseIdentity(path, passphrase, configured);
  identityCache.set(path, { version, identity });
  return identity;
}

function parseIdentity(
  path: string,
  passphrase: string | undefined,
  configured: boolean,
): IdentityFile | { skip: string | null } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // OpenSSH's default identity files are tried only where they exist; a configured one is worth naming.
    if (code === "ENOENT" && !configured) return { skip: null };
    return { skip: `${path}: cannot read it (${code ?? String(err)})` };
  }
  const parsed = ssh2.utils.parseKey(text, passphrase);
  if (!(parsed instanceof Error)) {
    const key = Array.isArray(parsed) ? parsed[0]! : parsed;
    return { path, publicBlob: key.getPublicSSH(), privateKey: key };
  }
  const publicBlob = publicBlobNextTo(path);
  if (/encrypted|passphrase/i.test(parsed.message) && passphrase === undefined && publicBlob)
    return { path, publicBlob };
  if (/encrypted|passphrase|decrypt|bad/i.test(parsed.message) && passphrase !== undefined)
    return { skip: `cannot decrypt private key ${path} with PROVISION_KEY_PASSPHRASE (wrong passphrase?)` };
  if (/encrypted/i.test(parsed.message))
    return { skip: `private key ${path} is encrypted: set PROVISION_KEY_PASSPHRASE or load the key into ssh-agent` };
  return {
    skip: `${path}: not a key ssh2 can use (${parsed.message}); FIDO and PKCS#11 keys need the OpenSSH client (--ssh-client openssh)`,
  };
}

function publicBlobNextTo(path: string): Buffer | undefined {
  const pub = `${path}.pub`;
  if (!existsSync(pub)) return undefined;
  const base64 = readFileSync(pub, "utf8").trim().split(/\s+/)[1];
  return base64 ? Buffer.from(base64, "base64") : undefined;
}

interface AgentKey {
  blob: Buffer;
  comment: string;
  key: ParsedKey;
}

function agentIdentities(socket: string, skipped: string[]): Promise<AgentKey[]> {
  return new Promise((resolve) => {
    const agent = ssh2.createAgent(socket);
    agent.getIdentities((err, keys) => {
      if (err || !keys) {
        skipped.push(`ssh-agent at ${socket}: ${err?.message ?? "no answer"}`);
        resolve([]);
        return;
      }
      resolve(
        (keys as ParsedKey[]).map((key) => ({ key, blob: key.getPublicSSH(), comment: key.comment || "(no comment)" })),
      );
    });
  });
}

function describeKey(blob: Buffer): string {
  return `${keyTypeOfBlob(blob).replace(/^ssh-/, "").toUpperCase()} ${fingerprintSha256(blob)}`;
}

function fileAttempt(path: string, key: ParsedKey, blob: Buffer): Attempt {
  return { label: `${path} (${describeKey(blob)})`, method: (username) => ({ type: "publickey", username, key }) };
}

/** One agent key per attempt: an agent that lists only that key. */
function agentAttempt(socket: string, chosen: AgentKey): Attempt {
  const inner = ssh2.createAgent(socket);
  class OneKeyAgent extends ssh2.BaseAgent {
    getIdentities(cb: (err: Error | undefined, keys?: ParsedKey[]) => void): void {
      cb(undefined, [chosen.key]);
    }
    sign(...args: unknown[]): void {
      (inner.sign as (...a: unknown[]) => void).apply(inner, args);
    }
  }
  return {
    label: `agent key "${chosen.comment}" (${describeKey(chosen.blob)})`,
    method: (username) => ({ type: "agent", username, agent: new OneKeyAgent() as never }),
  };
}

/** What happened during authentication, for the failure message. */
export interface AuthTrace {
  offered: string[];
  /** What the server said it would still accept after the last refusal (null: it never said). */
  serverAccepts: AuthenticationType[] | null;
}

/** ssh2's authHandler over the plan; it records what it offers in `trace`. */
export function authHandlerFor(plan: AuthPlan, username: string, trace: AuthTrace) {
  let next = 0;
  return (methodsLeft: AuthenticationType[] | null, _partial: boolean | null, callback: NextAuthHandler): void => {
    if (methodsLeft) trace.serverAccepts = methodsLeft;
    if (methodsLeft && !methodsLeft.includes("publickey")) {
      callback(false as never);
      return;
    }
    const attempt = plan.attempts[next++];
    if (!attempt) {
      callback(false as never);
      return;
    }
    trace.offered.push(attempt.label);
    callback(attempt.method(username));
  };
}

/** When nothing at all can be offered, there is no point in a handshake: what the user must fix. */
export function nothingToOffer(where: string, plan: AuthPlan): string | null {
  if (plan.attempts.length > 0) return null;
  if (plan.skipped.length > 0) return `cannot log in to ${where}: ${plan.skipped.join("; ")}`;
  return `cannot log in to ${where}: no SSH identity to offer: set ansible_ssh_private_key_file or IdentityFile, load a key into ssh-agent (SSH_AUTH_SOCK), or create ~/.ssh/id_ed25519`;
}

/** The sentence a user reads when every identity was refused. */
export function authFailureMessage(where: string, plan: AuthPlan, trace: AuthTrace, disconnectReason?: string): string {
  const parts = [`authentication failed for ${where}`];
  if (trace.offered.length === 0) {
    parts.push(
      "no identity could be offered: set ansible_ssh_private_key_file or IdentityFile, load a key into ssh-agent (SSH_AUTH_SOCK), or create ~/.ssh/id_ed25519",
    );
  } else {
    parts.push(
      `the server refused ${trace.offered.length === 1 ? "the identity" : `all ${trace.offered.length} identities`} offered: ${trace.offered.join("; ")}`,
    );
  }
  if (plan.skipped.length > 0) parts.push(`not offered: ${plan.skipped.join("; ")}`);
  if (trace.serverAccepts) {
    parts.push(
      trace.serverAccepts.includes("publickey")
        ? `it accepts: ${trace.serverAccepts.join(", ")}`
        : `it accepts only ${trace.serverAccepts.join(", ")}, not public keys; provision logs in with keys only`,
    );
  }
  if (disconnectReason) parts.push(`it said: ${disconnectReason}`);
  parts.push(
    "Check the login user (ansible_user, User in ssh_config) and that one of these public keys is in its authorized_keys; a key signed by a user CA needs --ssh-client openssh.",
  );
  return parts.join(". ").replace(/\.\./g, ".");
}
