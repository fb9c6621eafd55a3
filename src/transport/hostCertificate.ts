import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";
import type { KnownHostEntry } from "./knownHosts.js";

/**
 * OpenSSH host certificates (PROTOCOL.certkeys), checked as ssh(1) checks them: the CA signature
 * when the blob is parsed (sshkey.c cert_parse), @revoked lines (hostfile.c check_key_not_revoked),
 * the CA among the host's @cert-authority lines, then sshkey_cert_check_host(). Pure: the caller
 * picks the known_hosts entries that match the host; this module never throws on a blob.
 */

export const HOST_CERTIFICATE_ALGORITHMS: readonly string[] = [
  "ssh-ed25519-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com",
  "rsa-sha2-512-cert-v01@openssh.com",
  "rsa-sha2-256-cert-v01@openssh.com",
];

export interface KeyDescription {
  type: string; // plain key type, e.g. "ssh-ed25519"
  fingerprint: string; // "SHA256:…", as ssh-keygen -l prints it
  blob: Buffer; // plain public key blob
}

export interface CertificateInfo {
  algorithm: string; // e.g. "ssh-ed25519-cert-v01@openssh.com"
  role: "user" | "host";
  keyId: string;
  serial: bigint;
  principals: string[];
  /** null: no lower bound (valid_after 0) */
  validAfter: Date | null;
  /** null: no end (valid_before "forever", or beyond what a Date holds) */
  validBefore: Date | null;
  key: KeyDescription; // the certified host key
  ca: KeyDescription; // the key that signed the certificate
  signatureAlgorithm: string;
  criticalOptions: string[];
  extensions: string[];
}

export type CertificateRefusalReason =
  | "malformed"
  | "unsupported-algorithm"
  | "bad-signature"
  | "revoked"
  | "untrusted-ca"
  | "not-a-host-certificate"
  | "not-yet-valid"
  | "expired"
  | "wrong-principal"
  | "critical-options";

export type HostCertificateCheck =
  | { ok: true; ca: KnownHostEntry; cert: CertificateInfo }
  | { ok: false; reason: "revoked"; detail: string; cert: CertificateInfo; revokedBy: KnownHostEntry }
  | { ok: false; reason: Exclude<CertificateRefusalReason, "revoked">; detail: string; cert?: CertificateInfo };

export interface HostCertificateTrust {
  /** @cert-authority entries whose host patterns match the host */
  authorities: KnownHostEntry[];
  /** @revoked entries whose host patterns match the host */
  revocations: KnownHostEntry[];
  /** The name the host was looked up by (HostKeyAlias if set): a principal must equal it. */
  host: string;
  port: number;
  now: Date;
}

const CERTIFICATE_SUFFIX = "-cert-v01@openssh.com";
const HOST_CERTIFICATE = 2;
const USER_CERTIFICATE = 1;
/** sshkey.c SSH_RSA_MINIMUM_MODULUS_SIZE */
const RSA_MINIMUM_BITS = 1024;
const NO_LOWER_BOUND = 0n;
const MAX_DATE_SECONDS = 8_640_000_000_000n;

// ---------------------------------------------------------------------------
// Key blobs

export function isCertificateBlob(blob: Buffer): boolean {
  try {
    return new SshReader(blob).text().endsWith(CERTIFICATE_SUFFIX);
  } catch {
    return false;
  }
}

export function fingerprintSha256(blob: Buffer): string {
  const digest = createHash("sha256").update(blob).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

/** The key a known_hosts entry names; for a certificate, the key it certifies (sshkey_equal_public). */
export function plainKeyOf(blob: Buffer): Buffer {
  if (!isCertificateBlob(blob)) return blob;
  try {
    return parseCertificate(blob).key.blob;
  } catch {
    return blob;
  }
}

// ---------------------------------------------------------------------------
// The check

export function checkHostCertificate(blob: Buffer, trust: HostCertificateTrust): HostCertificateCheck {
  let cert: Certificate;
  try {
    cert = parseCertificate(blob);
  } catch (err) {
    if (err instanceof CertificateFormatError) return { ok: false, reason: err.reason, detail: err.message };
    throw err;
  }
  const info = certificateInfo(cert);
  const signatureProblem = checkSignature(cert);
  if (signatureProblem)
    return { ok: false, ...signatureProblem, detail: `${named(info)} ${signatureProblem.detail}`, cert: info };

  const revokedBy = trust.revocations.find((entry) => revokes(entry, cert));
  if (revokedBy)
    return { ok: false, reason: "revoked", detail: revocationDetail(info, revokedBy), cert: info, revokedBy };

  const ca = trust.authorities.find((entry) => plainKeyOf(entryBlob(entry)).equals(cert.ca.blob));
  if (!ca) return { ok: false, reason: "untrusted-ca", detail: untrustedCaDetail(info, trust), cert: info };

  const problem = hostCertificateProblem(cert, info, trust);
  if (problem) return { ok: false, ...problem, cert: info };
  return { ok: true, ca, cert: info };
}

type Problem = { reason: Exclude<CertificateRefusalReason, "revoked">; detail: string };

/** sshkey_cert_check_host(): certificate type, validity period, principal, critical options. */
function hostCertificateProblem(cert: Certificate, info: CertificateInfo, trust: HostCertificateTrust): Problem | null {
  if (cert.role !== HOST_CERTIFICATE) {
    return { reason: "not-a-host-certificate", detail: `${named(info)} is a user certificate, not a host certificate` };
  }
  const now = BigInt(Math.floor(trust.now.getTime() / 1000));
  if (now < cert.validAfter) {
    return { reason: "not-yet-valid", detail: `${named(info)} is not valid before ${formatTime(cert.validAfter)}` };
  }
  if (now >= cert.validBefore) {
    return { reason: "expired", detail: `${named(info)} expired at ${formatTime(cert.validBefore)}` };
  }
  const principalProblem = checkPrincipals(info, trust.host);
  if (principalProblem) return principalProblem;
  if (info.criticalOptions.length > 0) {
    return {
      reason: "critical-options",
      detail: `${named(info)} carries critical options (${info.criticalOptions.join(", ")}), which host certificates do not define and OpenSSH refuses`,
    };
  }
  return null;
}

/**
 * OpenSSH 9.2 compares principals with strcmp against the lower-cased host name and accepts a
 * certificate without principals for any host. OpenSSH 10.3 refuses such certificates
 * (CVE-2024-7594: a CA that forgets -n would vouch for every host); we refuse them too.
 */
function checkPrincipals(info: CertificateInfo, host: string): Problem | null {
  if (info.principals.length === 0) {
    return {
      reason: "wrong-principal",
      detail: `${named(info)} lists no principals, so it would vouch for any host; refused, as OpenSSH 10.3 and later refuse it`,
    };
  }
  const name = host.toLowerCase();
  if (info.principals.includes(name)) return null;
  return {
    reason: "wrong-principal",
    detail: `${named(info)} is valid for ${info.principals.join(", ")}, not for ${name}`,
  };
}

function revokes(entry: KnownHostEntry, cert: Certificate): boolean {
  const revoked = plainKeyOf(entryBlob(entry));
  return revoked.equals(cert.key.blob) || revoked.equals(cert.ca.blob);
}

function entryBlob(entry: KnownHostEntry): Buffer {
  return Buffer.from(entry.keyBase64, "base64");
}

// ---------------------------------------------------------------------------
// Messages

function named(info: CertificateInfo): string {
  return `certificate ${JSON.stringify(info.keyId)} (serial ${info.serial})`;
}

function revocationDetail(info: CertificateInfo, entry: KnownHostEntry): string {
  const at = `${entry.file}:${entry.line}`;
  if (plainKeyOf(entryBlob(entry)).equals(info.key.blob)) {
    return `${named(info)} certifies host key ${describeKey(info.key)}, which is marked @revoked in ${at}`;
  }
  return `${named(info)} is signed by CA ${describeKey(info.ca)}, which is marked @revoked in ${at}`;
}

function untrustedCaDetail(info: CertificateInfo, trust: HostCertificateTrust): string {
  const target = trust.port === 22 ? trust.host : `${trust.host} port ${trust.port}`;
  const signed = `${named(info)} is signed by CA ${describeKey(info.ca)}`;
  if (trust.authorities.length === 0) return `${signed}, and no @cert-authority line matches ${target}`;
  const lines = trust.authorities.map((entry) => `${entry.file}:${entry.line}`).join(", ");
  return `${signed}, which no @cert-authority line trusts for ${target} (the lines matching it, ${lines}, name other CAs)`;
}

function describeKey(key: KeyDescription): string {
  return `${key.type} ${key.fingerprint}`;
}

/** valid_after/valid_before are uint64 seconds since the epoch, in UTC. */
function formatTime(seconds: bigint): string {
  const date = dateOf(seconds);
  return date === null ? "the end of time" : date.toISOString().replace(/\.000Z$/, "Z");
}

function dateOf(seconds: bigint): Date | null {
  return seconds > MAX_DATE_SECONDS ? null : new Date(Number(seconds) * 1000);
}

// ---------------------------------------------------------------------------
// Parsing (PROTOCOL.certkeys)

interface Certificate {
  algorithm: string;
  serial: bigint;
  role: number;
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: string[];
  extensions: string[];
  key: ParsedKey;
  ca: ParsedKey;
  signatureAlgorithm: string;
  signature: Buffer;
  signedData: Buffer;
}

interface ParsedKey {
  type: string;
  blob: Buffer;
  publicKey: KeyObject;
}

class CertificateFormatError extends Error {
  constructor(
    readonly reason: "malformed" | "unsupported-algorithm",
    message: string,
  ) {
    super(message);
  }
}

function malformed(what: string): CertificateFormatError {
  return new CertificateFormatError("malformed", `the certificate is malformed: ${what}`);
}

function parseCertificate(blob: Buffer): Certificate {
  const reader = new SshReader(blob);
  const algorithm = reader.text();
  if (!algorithm.endsWith(CERTIFICATE_SUFFIX)) throw malformed(`${algorithm} is not a certificate type`);
  reader.bytes(); // nonce
  const key = readPublicKey(reader, algorithm.slice(0, -CERTIFICATE_SUFFIX.length));
  const serial = reader.uint64();
  const role = reader.uint32();
  const keyId = reader.text();
  const principals = readList(reader.bytes(), (list) => list.text());
  const validAfter = reader.uint64();
  const validBefore = reader.uint64();
  const criticalOptions = readNamedData(reader.bytes());
  const extensions = readNamedData(reader.bytes());
  reader.bytes(); // reserved
  const ca = readPublicKeyBlob(reader.bytes(), "CA key");
  const signedData = blob.subarray(0, reader.offset);
  const signatureReader = new SshReader(reader.bytes());
  reader.expectEnd();
  const signatureAlgorithm = signatureReader.text();
  const signature = signatureReader.bytes();
  signatureReader.expectEnd();
  if (role !== USER_CERTIFICATE && role !== HOST_CERTIFICATE) throw malformed(`unknown certificate type ${role}`);
  return {
    algorithm,
    serial,
    role,
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    extensions,
    key,
    ca,
    signatureAlgorithm,
    signature,
    signedData,
  };
}

/** Critical options and extensions: (string name, string data) pairs; only the names matter here. */
function readNamedData(section: Buffer): string[] {
  return readList(section, (list) => {
    const name = list.text();
    list.bytes();
    return name;
  });
}

function readList<T>(section: Buffer, readItem: (reader: SshReader) => T): T[] {
  const reader = new SshReader(section);
  const items: T[] = [];
  while (!reader.atEnd()) items.push(readItem(reader));
  return items;
}

function certificateInfo(cert: Certificate): CertificateInfo {
  return {
    algorithm: cert.algorithm,
    role: cert.role === HOST_CERTIFICATE ? "host" : "user",
    keyId: cert.keyId,
    serial: cert.serial,
    principals: cert.principals,
    validAfter: cert.validAfter === NO_LOWER_BOUND ? null : dateOf(cert.validAfter),
    validBefore: dateOf(cert.validBefore),
    key: describe(cert.key),
    ca: describe(cert.ca),
    signatureAlgorithm: cert.signatureAlgorithm,
    criticalOptions: cert.criticalOptions,
    extensions: cert.extensions,
  };
}

function describe(key: ParsedKey): KeyDescription {
  return { type: key.type, fingerprint: fingerprintSha256(key.blob), blob: key.blob };
}

// ---------------------------------------------------------------------------
// Public keys

const ECDSA_CURVES: Record<string, { curve: string; jwkCurve: string; coordinateBytes: number; hash: string }> = {
  "ecdsa-sha2-nistp256": { curve: "nistp256", jwkCurve: "P-256", coordinateBytes: 32, hash: "sha256" },
  "ecdsa-sha2-nistp384": { curve: "nistp384", jwkCurve: "P-384", coordinateBytes: 48, hash: "sha384" },
  "ecdsa-sha2-nistp521": { curve: "nistp521", jwkCurve: "P-521", coordinateBytes: 66, hash: "sha512" },
};

function readPublicKeyBlob(blob: Buffer, role: string): ParsedKey {
  const reader = new SshReader(blob);
  const type = reader.text();
  if (type.endsWith(CERTIFICATE_SUFFIX)) throw malformed(`the ${role} is itself a certificate`);
  const key = readPublicKey(reader, type);
  reader.expectEnd();
  return key;
}

/** Reads the fields that follow the type string and rebuilds the plain blob from them. */
function readPublicKey(reader: SshReader, type: string): ParsedKey {
  const start = reader.offset;
  const publicKey = readKeyFields(reader, type);
  const fields = reader.slice(start);
  return { type, blob: Buffer.concat([sshString(Buffer.from(type)), fields]), publicKey };
}

function readKeyFields(reader: SshReader, type: string): KeyObject {
  if (type === "ssh-ed25519") return ed25519Key(reader.bytes());
  if (type === "ssh-rsa") return rsaKey(reader.mpint(), reader.mpint());
  const curve = ECDSA_CURVES[type];
  if (curve) return ecdsaKey(type, reader.text(), reader.bytes());
  throw new CertificateFormatError(
    "unsupported-algorithm",
    `key type ${type} is not supported (ed25519, ecdsa and rsa are)`,
  );
}

function ed25519Key(publicKey: Buffer): KeyObject {
  if (publicKey.length !== 32) throw malformed(`an ed25519 key of ${publicKey.length} bytes`);
  return jwkKey({ kty: "OKP", crv: "Ed25519", x: publicKey.toString("base64url") });
}

function rsaKey(exponent: Buffer, modulus: Buffer): KeyObject {
  const key = jwkKey({ kty: "RSA", e: exponent.toString("base64url"), n: modulus.toString("base64url") });
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < RSA_MINIMUM_BITS) {
    throw new CertificateFormatError(
      "unsupported-algorithm",
      `an RSA key of ${bits} bits is below OpenSSH's minimum of ${RSA_MINIMUM_BITS}`,
    );
  }
  return key;
}

function ecdsaKey(type: string, curveName: string, point: Buffer): KeyObject {
  const curve = ECDSA_CURVES[type]!;
  if (curveName !== curve.curve) throw malformed(`a ${type} key on curve ${curveName}`);
  const size = curve.coordinateBytes;
  const uncompressed = point.length === 1 + 2 * size && point[0] === 0x04;
  if (!uncompressed) throw malformed(`a ${type} key whose point is not an uncompressed ${curve.curve} point`);
  const x = point.subarray(1, 1 + size).toString("base64url");
  const y = point.subarray(1 + size).toString("base64url");
  return jwkKey({ kty: "EC", crv: curve.jwkCurve, x, y });
}

function jwkKey(jwk: Record<string, string>): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: "jwk" });
  } catch (err) {
    throw malformed(`an invalid ${jwk.crv ?? jwk.kty} public key (${(err as Error).message})`);
  }
}

// ---------------------------------------------------------------------------
// The CA signature

/** OpenSSH's default CASignatureAlgorithms leaves out ssh-rsa (SHA-1) since 8.2. */
const RSA_SIGNATURE_HASHES: Record<string, string> = { "rsa-sha2-256": "sha256", "rsa-sha2-512": "sha512" };

function checkSignature(cert: Certificate): Problem | null {
  const { ca, signatureAlgorithm: algorithm } = cert;
  if (ca.type === "ssh-rsa" && algorithm === "ssh-rsa") {
    return {
      reason: "unsupported-algorithm",
      detail: "is signed with ssh-rsa (RSA with SHA-1), which OpenSSH refuses for certificates since 8.2",
    };
  }
  const expected = ca.type === "ssh-rsa" ? Object.keys(RSA_SIGNATURE_HASHES) : [ca.type];
  if (!expected.includes(algorithm)) {
    return { reason: "bad-signature", detail: `carries a ${algorithm} signature, which a ${ca.type} CA cannot make` };
  }
  if (verifies(cert)) return null;
  return {
    reason: "bad-signature",
    detail: `has a signature that CA ${describeKey(describe(ca))} did not make: the certificate was altered or forged`,
  };
}

function verifies(cert: Certificate): boolean {
  const { ca, signedData, signature, signatureAlgorithm } = cert;
  try {
    if (ca.type === "ssh-ed25519") return verify(null, signedData, ca.publicKey, signature);
    if (ca.type === "ssh-rsa")
      return verify(RSA_SIGNATURE_HASHES[signatureAlgorithm]!, signedData, ca.publicKey, signature);
    const curve = ECDSA_CURVES[ca.type]!;
    const rs = ecdsaSignatureP1363(signature, curve.coordinateBytes);
    return rs !== null && verify(curve.hash, signedData, { key: ca.publicKey, dsaEncoding: "ieee-p1363" }, rs);
  } catch {
    return false;
  }
}

/** SSH encodes an ECDSA signature as (mpint r, mpint s); node wants r‖s, each left-padded to the curve size. */
function ecdsaSignatureP1363(signature: Buffer, size: number): Buffer | null {
  const reader = new SshReader(signature);
  const halves = [reader.mpint(), reader.mpint()];
  reader.expectEnd();
  if (halves.some((half) => half.length > size)) return null;
  return Buffer.concat(halves.map((half) => Buffer.concat([Buffer.alloc(size - half.length), half])));
}

// ---------------------------------------------------------------------------
// SSH wire format (RFC 4251 §5)

function sshString(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

class SshReader {
  offset = 0;

  constructor(private readonly buffer: Buffer) {}

  uint32(): number {
    this.need(4);
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  uint64(): bigint {
    this.need(8);
    const value = this.buffer.readBigUInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  bytes(): Buffer {
    const length = this.uint32();
    this.need(length);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  /** Like sshbuf_get_cstring: text must not contain NUL. */
  text(): string {
    const value = this.bytes();
    if (value.includes(0)) throw malformed("a string with a NUL byte");
    return value.toString("utf8");
  }

  /** A non-negative mpint, without the sign-padding zero bytes. */
  mpint(): Buffer {
    const value = this.bytes();
    if (value.length > 0 && (value[0]! & 0x80) !== 0) throw malformed("a negative integer");
    let start = 0;
    while (start < value.length && value[start] === 0) start++;
    return value.subarray(start);
  }

  slice(start: number): Buffer {
    return this.buffer.subarray(start, this.offset);
  }

  atEnd(): boolean {
    return this.offset === this.buffer.length;
  }

  expectEnd(): void {
    if (!this.atEnd()) throw malformed(`${this.buffer.length - this.offset} unexpected trailing bytes`);
  }

  private need(length: number): void {
    if (this.offset + length > this.buffer.length) throw malformed("it ends in the middle of a field");
  }
}
