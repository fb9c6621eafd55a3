import { createHmac } from "node:crypto";
import {
  checkHostCertificate,
  fingerprintSha256,
  HOST_CERTIFICATE_ALGORITHMS,
  isCertificateBlob,
  type CertificateInfo,
  type CertificateRefusalReason,
} from "./hostCertificate.js";

export { fingerprintSha256, isCertificateBlob, type CertificateInfo, type CertificateRefusalReason };

/**
 * OpenSSH known_hosts semantics (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"), as pure functions.
 * Callers read the files; this module only parses, matches and formats.
 */

export interface KnownHostEntry {
  marker: "cert-authority" | "revoked" | null;
  /** host patterns as written (comma-separated list split), or a single hashed token `|1|salt|hash` */
  patterns: string[];
  keyType: string; // e.g. "ssh-ed25519"
  keyBase64: string; // the key blob, base64 as written
  file: string; // file the entry came from (passed in)
  line: number; // 1-based line number
}

export interface CertificateRefusal {
  reason: CertificateRefusalReason;
  detail: string; // a sentence for the user, e.g. `certificate "web-1" (serial 7) expired at 2020-01-02T00:00:00Z`
}

export type HostKeyVerdict =
  /**
   * For a certificate, `entry` is the @cert-authority line that vouched for it, or (as OpenSSH
   * falls back to the certified key) the plain line that pins that key; then
   * `certificateRefusal` says why the certificate itself did not do.
   */
  | { status: "known"; entry: KnownHostEntry; certificate?: CertificateInfo; certificateRefusal?: CertificateRefusal }
  | { status: "unknown" }
  | { status: "changed"; expected: KnownHostEntry[] } // host has entries, none with this key
  | { status: "revoked"; entry: KnownHostEntry; certificate?: CertificateInfo }
  /** Never "unknown" for a certificate: a certificate is not a key to record in known_hosts. */
  | ({ status: "certificate-refused"; certificate?: CertificateInfo } & CertificateRefusal);

const DEFAULT_SSH_PORT = 22;
const HASHED_TOKEN_PREFIX = "|1|";
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MARKERS: Record<string, KnownHostEntry["marker"]> = {
  "@cert-authority": "cert-authority",
  "@revoked": "revoked",
};

// ---------------------------------------------------------------------------
// Parsing

export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split("\n").forEach((raw, index) => {
    const entry = parseLine(raw, file, index + 1);
    if (entry) entries.push(entry);
  });
  return entries;
}

function parseLine(raw: string, file: string, line: number): KnownHostEntry | null {
  const fields = raw.trim().split(/[ \t]+/);
  const first = fields[0];
  if (first === undefined || first === "" || first.startsWith("#")) return null;

  let marker: KnownHostEntry["marker"] = null;
  if (first.startsWith("@")) {
    const known = MARKERS[first];
    // OpenSSH rejects the whole line for a marker it does not know.
    if (known === undefined) return null;
    marker = known;
    fields.shift();
  }

  // Anything after the key is a free-form comment.
  const [hostField, keyType, keyBase64] = fields;
  if (hostField === undefined || keyType === undefined || keyBase64 === undefined) return null;
  const patterns = splitHostField(hostField);
  if (patterns === null || !isKeyConsistent(keyType, keyBase64)) return null;
  return { marker, patterns, keyType, keyBase64, file, line };
}

function splitHostField(hostField: string): string[] | null {
  if (hostField.startsWith("|")) {
    return parseHashedToken(hostField) === null ? null : [hostField];
  }
  const patterns = hostField.split(",").filter((p) => p !== "" && p !== "!");
  return patterns.length === 0 ? null : patterns;
}

/** Like OpenSSH, a key whose blob does not carry the type written before it is malformed. */
function isKeyConsistent(keyType: string, keyBase64: string): boolean {
  if (!BASE64.test(keyBase64)) return false;
  return tryKeyTypeOfBlob(Buffer.from(keyBase64, "base64")) === keyType;
}

interface HashedToken {
  salt: Buffer;
  hash: Buffer;
}

function parseHashedToken(token: string): HashedToken | null {
  if (!token.startsWith(HASHED_TOKEN_PREFIX)) return null;
  const parts = token.slice(HASHED_TOKEN_PREFIX.length).split("|");
  if (parts.length !== 2) return null;
  const [salt, hash] = parts as [string, string];
  if (!BASE64.test(salt) || !BASE64.test(hash)) return null;
  return { salt: Buffer.from(salt, "base64"), hash: Buffer.from(hash, "base64") };
}

// ---------------------------------------------------------------------------
// Host matching

/** OpenSSH lower-cases the host name before looking it up or hashing it. */
export function hostToken(host: string, port: number): string {
  const name = host.toLowerCase();
  return port === DEFAULT_SSH_PORT ? name : `[${name}]:${port}`;
}

export function entryMatchesHost(entry: KnownHostEntry, host: string, port: number): boolean {
  const [first] = entry.patterns;
  if (first !== undefined && first.startsWith("|")) {
    return hashedTokenMatches(first, lookupTokens(host, port));
  }
  return patternListMatches(entry.patterns, hostToken(host, port));
}

/** `[host]:22` is the same destination as `host`, so a hashed entry may have been made from either. */
function lookupTokens(host: string, port: number): string[] {
  const token = hostToken(host, port);
  return port === DEFAULT_SSH_PORT ? [token, `[${token}]:${DEFAULT_SSH_PORT}`] : [token];
}

function hashedTokenMatches(hashedToken: string, tokens: string[]): boolean {
  const parsed = parseHashedToken(hashedToken);
  if (parsed === null) return false;
  return tokens.some((token) => hmacSha1(parsed.salt, token).equals(parsed.hash));
}

function hmacSha1(salt: Buffer, token: string): Buffer {
  return createHmac("sha1", salt).update(token).digest();
}

/** A negated pattern that matches vetoes the entry, whatever the other patterns say. */
function patternListMatches(patterns: string[], token: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith("!");
    const glob = normaliseDefaultPort(negated ? pattern.slice(1) : pattern);
    if (!globMatches(glob.toLowerCase(), token)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

function normaliseDefaultPort(pattern: string): string {
  const bracketed = /^\[(.*)\]:22$/.exec(pattern);
  return bracketed?.[1] ?? pattern;
}

/** `*` matches any run of characters, `?` exactly one; everything else is literal. */
export function globMatches(glob: string, text: string): boolean {
  let g = 0;
  let t = 0;
  let starAt = -1;
  let textAtStar = 0;
  while (t < text.length) {
    if (g < glob.length && (glob[g] === "?" || glob[g] === text[t])) {
      g++;
      t++;
    } else if (g < glob.length && glob[g] === "*") {
      starAt = g++;
      textAtStar = t;
    } else if (starAt >= 0) {
      g = starAt + 1;
      t = ++textAtStar;
    } else {
      return false;
    }
  }
  while (glob[g] === "*") g++;
  return g === glob.length;
}

// ---------------------------------------------------------------------------
// Lookup at fleet size

/**
 * A file's entries, indexed so that finding a host's costs the same with 10 lines or 10,000:
 * plain host names and addresses (most lines of a fleet's known_hosts) by name; only wildcard
 * patterns, negations and hashed names (which can't be indexed: each needs a HMAC per lookup, as
 * in ssh(1)) are tried one by one.
 */
export interface KnownHostsIndex {
  /** Entries that may match `host` at `port` or at 22 (a certificate's CA is also looked up there), in file order. */
  candidates(host: string, port: number): KnownHostEntry[];
}

export function indexKnownHosts(entries: readonly KnownHostEntry[]): KnownHostsIndex {
  const byName = new Map<string, number[]>();
  const scanned: number[] = [];
  entries.forEach((entry, at) => {
    const literal = entry.patterns.every((p) => !p.startsWith("|") && !p.startsWith("!") && !/[*?]/.test(p));
    if (!literal) {
      scanned.push(at);
      return;
    }
    for (const p of new Set(entry.patterns.map((p) => normaliseDefaultPort(p).toLowerCase())))
      byName.set(p, [...(byName.get(p) ?? []), at]);
  });
  return {
    candidates(host, port) {
      const tokens = new Set([hostToken(host, port), hostToken(host, DEFAULT_SSH_PORT)]);
      const found = new Set(scanned);
      for (const t of tokens) for (const at of byName.get(t) ?? []) found.add(at);
      return [...found].sort((a, b) => a - b).map((at) => entries[at]!);
    },
  };
}

// ---------------------------------------------------------------------------
// Verdicts

export function checkHostKey(
  entries: KnownHostEntry[],
  host: string,
  port: number,
  keyBlob: Buffer,
  now: Date = new Date(),
): HostKeyVerdict {
  if (isCertificateBlob(keyBlob)) return checkCertificate(entries, host, port, keyBlob, now);
  return checkPlainKey(entries, host, port, keyBlob);
}

function checkPlainKey(entries: KnownHostEntry[], host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
  const matching = entries.filter((entry) => entryMatchesHost(entry, host, port));
  const revoked = matching.find((entry) => entry.marker === "revoked" && hasKey(entry, keyBlob));
  if (revoked) return { status: "revoked", entry: revoked };

  const plain = matching.filter((entry) => entry.marker === null);
  const known = plain.find((entry) => hasKey(entry, keyBlob));
  if (known) return { status: "known", entry: known };
  if (plain.length > 0) return { status: "changed", expected: plain };
  return { status: "unknown" };
}

/** Reasons for which ssh(1) drops the certificate and checks the bare key instead ("Retry with plain key"). */
const FALLS_BACK_TO_PLAIN_KEY: ReadonlySet<CertificateRefusalReason> = new Set([
  "untrusted-ca",
  "not-a-host-certificate",
  "not-yet-valid",
  "expired",
  "wrong-principal",
  "critical-options",
]);

function checkCertificate(
  entries: KnownHostEntry[],
  host: string,
  port: number,
  certificate: Buffer,
  now: Date,
): HostKeyVerdict {
  const candidates = certificateLookupEntries(entries, host, port);
  const check = checkHostCertificate(certificate, {
    authorities: candidates.filter((entry) => entry.marker === "cert-authority"),
    revocations: candidates.filter((entry) => entry.marker === "revoked"),
    host,
    port,
    now,
  });
  if (check.ok) return { status: "known", entry: check.ca, certificate: check.cert };
  if (check.reason === "revoked") return { status: "revoked", entry: check.revokedBy, certificate: check.cert };

  const refusal: CertificateRefusal = { reason: check.reason, detail: check.detail };
  if (check.cert && FALLS_BACK_TO_PLAIN_KEY.has(check.reason)) {
    const plain = checkPlainKey(entries, host, port, check.cert.key.blob);
    if (plain.status === "known") return { ...plain, certificate: check.cert, certificateRefusal: refusal };
  }
  return { status: "certificate-refused", ...refusal, ...(check.cert ? { certificate: check.cert } : {}) };
}

/**
 * ssh(1) looks a certificate's CA up under `[host]:port` and, when no line there names it, under
 * the bare host name (sshconnect.c, "checking without port identifier"); so
 * `@cert-authority *.example.com` covers every port, as users expect.
 */
function certificateLookupEntries(entries: KnownHostEntry[], host: string, port: number): KnownHostEntry[] {
  return entries.filter(
    (entry) =>
      entryMatchesHost(entry, host, port) ||
      (port !== DEFAULT_SSH_PORT && entryMatchesHost(entry, host, DEFAULT_SSH_PORT)),
  );
}

function hasKey(entry: KnownHostEntry, keyBlob: Buffer): boolean {
  return Buffer.from(entry.keyBase64, "base64").equals(keyBlob);
}

// ---------------------------------------------------------------------------
// Key blobs

/** The first SSH `string` (uint32 length + bytes) of a wire-format public key blob. */
export function keyTypeOfBlob(blob: Buffer): string {
  const keyType = tryKeyTypeOfBlob(blob);
  if (keyType === null) throw new Error("malformed SSH public key blob: no key type string");
  return keyType;
}

function tryKeyTypeOfBlob(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const length = blob.readUInt32BE(0);
  if (length === 0 || 4 + length > blob.length) return null;
  return blob.subarray(4, 4 + length).toString("latin1");
}

export function knownHostsLine(host: string, port: number, blob: Buffer): string {
  return `${hostToken(host, port)} ${keyTypeOfBlob(blob)} ${blob.toString("base64")}`;
}

// ---------------------------------------------------------------------------
// Algorithm negotiation

/** Offered in ssh2's own preference order, not file order, as OpenSSH does. */
const HOST_KEY_ALGORITHMS_BY_KEY_TYPE: ReadonlyArray<[keyType: string, algorithms: string[]]> = [
  ["ssh-ed25519", ["ssh-ed25519"]],
  ["ecdsa-sha2-nistp256", ["ecdsa-sha2-nistp256"]],
  ["ecdsa-sha2-nistp384", ["ecdsa-sha2-nistp384"]],
  ["ecdsa-sha2-nistp521", ["ecdsa-sha2-nistp521"]],
  ["ssh-rsa", ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]],
  ["ssh-dss", ["ssh-dss"]],
];

/** What ssh2 offers when nothing is pinned: its defaults, without ssh-dss. */
export const PLAIN_HOST_KEY_ALGORITHMS: readonly string[] = HOST_KEY_ALGORITHMS_BY_KEY_TYPE.filter(
  ([keyType]) => keyType !== "ssh-dss",
).flatMap(([, algorithms]) => algorithms);

/**
 * With an @cert-authority line for the host, the certificate algorithms come first (as ssh(1)
 * orders them), then the plain ones. Without one they are not offered at all: no CA could vouch
 * for the certificate the server would send, and such hosts keep working with an unpatched ssh2,
 * which refuses these algorithm names (see ssh2Capabilities.ts).
 */
export function hostKeyAlgorithmsFor(entries: KnownHostEntry[], host: string, port: number): string[] | null {
  const plain = plainAlgorithmsFor(entries, host, port);
  const hasAuthority = certificateLookupEntries(entries, host, port).some((entry) => entry.marker === "cert-authority");
  if (!hasAuthority) return plain;
  return [...HOST_CERTIFICATE_ALGORITHMS, ...(plain ?? PLAIN_HOST_KEY_ALGORITHMS)];
}

function plainAlgorithmsFor(entries: KnownHostEntry[], host: string, port: number): string[] | null {
  const knownTypes = new Set(
    entries
      .filter((entry) => entry.marker === null && entryMatchesHost(entry, host, port))
      .map((entry) => entry.keyType),
  );
  const algorithms = HOST_KEY_ALGORITHMS_BY_KEY_TYPE.filter(([keyType]) => knownTypes.has(keyType)).flatMap(
    ([, algorithms]) => algorithms,
  );
  // With only key types ssh2 cannot verify, restricting the offer would just break the handshake.
  return algorithms.length === 0 ? null : algorithms;
}
