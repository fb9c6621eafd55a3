import { execFileSync } from "node:child_process";
import { createHmac, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkHostCertificate,
  fingerprintSha256,
  HOST_CERTIFICATE_ALGORITHMS,
  isCertificateBlob,
  plainKeyOf,
  type HostCertificateTrust,
} from "../../src/transport/hostCertificate.js";
import { checkHostKey, parseKnownHosts, type HostKeyVerdict } from "../../src/transport/knownHosts.js";
import { ssh2NegotiatesHostCertificates } from "../../src/transport/ssh2Capabilities.js";

/**
 * Every certificate here is made by the real ssh-keygen at test time, except a few that
 * ssh-keygen refuses to make (crafted at the end, and checked against `ssh-keygen -L`).
 */

const HOST = "198.18.0.5";
const PRINCIPALS = ["web-1.example", HOST];
const LONG_VALIDITY = "20200101Z:20990101Z";
const NOW = new Date("2026-06-01T12:00:00Z");

const KEY_TYPES = {
  ed25519: ["-t", "ed25519"],
  "ecdsa-256": ["-t", "ecdsa", "-b", "256"],
  "ecdsa-384": ["-t", "ecdsa", "-b", "384"],
  "ecdsa-521": ["-t", "ecdsa", "-b", "521"],
  "rsa-3072": ["-t", "rsa", "-b", "3072"],
  "rsa-2048": ["-t", "rsa", "-b", "2048"],
} as const;
type KeyKind = keyof typeof KEY_TYPES;

interface Key {
  file: string;
  /** "type base64", as a known_hosts line wants it */
  publicKey: string;
  blob: Buffer;
}

interface SignOptions {
  id?: string;
  serial?: number;
  principals?: string[];
  validity?: string;
  user?: boolean;
  signatureAlgorithm?: string;
  options?: string[];
}

class Keygen {
  readonly dir = mkdtempSync(join(process.env.PROVISION_TEST_RUN_DIR ?? tmpdir(), "host-certificate-test-"));
  private certificates = 0;

  key(name: string, kind: KeyKind): Key {
    const file = join(this.dir, name);
    execFileSync("ssh-keygen", ["-q", ...KEY_TYPES[kind], "-N", "", "-C", name, "-f", file]);
    return this.publicKey(file);
  }

  /** Signs a copy of the key's .pub, so one key can carry many certificates. */
  certify(ca: Key, key: Key, options: SignOptions = {}): Buffer {
    const copy = join(this.dir, `cert-${++this.certificates}`);
    copyFileSync(`${key.file}.pub`, `${copy}.pub`);
    execFileSync("ssh-keygen", ["-q", "-s", ca.file, ...signArguments(options), `${copy}.pub`]);
    return this.publicKey(`${copy}-cert`).blob;
  }

  fingerprint(key: Key): string {
    return execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${key.file}.pub`], { encoding: "utf8" }).split(
      " ",
    )[1]!;
  }

  /** ssh-keygen -L parses the certificate and checks its CA signature; it fails on anything else. */
  lists(certificate: Buffer): string {
    const file = join(this.dir, `listed-${++this.certificates}-cert.pub`);
    writeFileSync(file, `${keyTypeOf(certificate)} ${certificate.toString("base64")}\n`);
    return execFileSync("ssh-keygen", ["-L", "-f", file], { encoding: "utf8" });
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private publicKey(file: string): Key {
    const [type, base64] = readFileSync(`${file}.pub`, "utf8").split(" ");
    return { file, publicKey: `${type} ${base64}`, blob: Buffer.from(base64!, "base64") };
  }
}

function signArguments(options: SignOptions): string[] {
  const args = [
    "-I",
    options.id ?? "web-1",
    "-z",
    String(options.serial ?? 7),
    "-V",
    options.validity ?? LONG_VALIDITY,
  ];
  if (!options.user) args.push("-h");
  if (options.principals === undefined) args.push("-n", PRINCIPALS.join(","));
  else if (options.principals.length > 0) args.push("-n", options.principals.join(","));
  if (options.signatureAlgorithm) args.push("-t", options.signatureAlgorithm);
  for (const option of options.options ?? []) args.push("-O", option);
  return args;
}

function keyTypeOf(blob: Buffer): string {
  return blob.subarray(4, 4 + blob.readUInt32BE(0)).toString();
}

function hashedToken(token: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(token).digest("base64")}`;
}

function verdict(lines: string[], certificate: Buffer, host = HOST, port = 22, now = NOW): HostKeyVerdict {
  return checkHostKey(parseKnownHosts(lines.join("\n"), "known_hosts"), host, port, certificate, now);
}

function flipByte(blob: Buffer, offset: number): Buffer {
  const copy = Buffer.from(blob);
  copy[offset]! ^= 0x01;
  return copy;
}

const keygen = new Keygen();
const cas = {} as Record<KeyKind, Key>;
const hosts = {} as Record<KeyKind, Key>;
let foreignCa: Key;
let caLine: (patterns: string, ca?: Key) => string;

beforeAll(() => {
  for (const kind of ["ed25519", "ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa-3072"] as const)
    cas[kind] = keygen.key(`ca-${kind}`, kind);
  for (const kind of ["ed25519", "ecdsa-256", "rsa-2048"] as const) hosts[kind] = keygen.key(`host-${kind}`, kind);
  foreignCa = keygen.key("foreign-ca", "ed25519");
  caLine = (patterns, ca = cas.ed25519) => `@cert-authority ${patterns} ${ca.publicKey}`;
});

afterAll(() => keygen.remove());

describe("host certificates from ssh-keygen that OpenSSH accepts", () => {
  const table: Array<[KeyKind, KeyKind, string, string]> = [];
  for (const ca of ["ed25519", "ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa-3072"] as const) {
    for (const host of ["ed25519", "ecdsa-256", "rsa-2048"] as const) {
      const signature = {
        ed25519: "ssh-ed25519",
        "ecdsa-256": "ecdsa-sha2-nistp256",
        "ecdsa-384": "ecdsa-sha2-nistp384",
        "ecdsa-521": "ecdsa-sha2-nistp521",
        "rsa-3072": "rsa-sha2-512",
      }[ca];
      const algorithm = { ed25519: "ssh-ed25519", "ecdsa-256": "ecdsa-sha2-nistp256", "rsa-2048": "ssh-rsa" }[host];
      table.push([ca, host, signature, algorithm]);
    }
  }

  it.each(table)("%s CA, %s host key", (caKind, hostKind, signatureAlgorithm, keyType) => {
    const ca = cas[caKind];
    const host = hosts[hostKind];
    const certificate = keygen.certify(ca, host);
    const result = verdict([`web-2 ${hosts.ed25519.publicKey}`, caLine(HOST, ca)], certificate);

    expect(result).toMatchObject({ status: "known", entry: { marker: "cert-authority", line: 2 } });
    expect(result.status === "known" && result.certificate).toEqual({
      algorithm: `${keyType}-cert-v01@openssh.com`,
      role: "host",
      keyId: "web-1",
      serial: 7n,
      principals: PRINCIPALS,
      validAfter: new Date("2020-01-01T00:00:00Z"),
      validBefore: new Date("2099-01-01T00:00:00Z"),
      key: { type: keyType, fingerprint: keygen.fingerprint(host), blob: host.blob },
      ca: { type: keyTypeOf(ca.blob), fingerprint: keygen.fingerprint(ca), blob: ca.blob },
      signatureAlgorithm,
      criticalOptions: [],
      extensions: [],
    });
  });

  it("accepts an RSA CA's rsa-sha2-256 signature", () => {
    const certificate = keygen.certify(cas["rsa-3072"], hosts.ed25519, { signatureAlgorithm: "rsa-sha2-256" });
    const result = verdict([caLine(HOST, cas["rsa-3072"])], certificate);
    expect(result).toMatchObject({ status: "known", certificate: { signatureAlgorithm: "rsa-sha2-256" } });
  });

  it("reports unbounded validity as null", () => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519, { validity: "always:forever" });
    const result = verdict([caLine(HOST)], certificate);
    expect(result).toMatchObject({ status: "known", certificate: { validAfter: null, validBefore: null } });
  });

  it("returns the trusting @cert-authority entry from checkHostCertificate", () => {
    const [entry] = parseKnownHosts(caLine(HOST), "kh");
    const trust: HostCertificateTrust = { authorities: [entry!], revocations: [], host: HOST, port: 22, now: NOW };
    const result = checkHostCertificate(keygen.certify(cas.ed25519, hosts.ed25519), trust);
    expect(result).toMatchObject({ ok: true, ca: { file: "kh", line: 1 }, cert: { keyId: "web-1" } });
  });

  it("matches the principal against the lower-cased host name, as ssh(1) lower-cases it", () => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
    expect(verdict([caLine("*.example")], certificate, "WEB-1.Example").status).toBe("known");
  });
});

describe("validity period (valid_after <= now < valid_before)", () => {
  let certificate: Buffer;
  beforeAll(() => {
    certificate = keygen.certify(cas.ed25519, hosts.ed25519, { validity: "20300101Z:20300102Z" });
  });

  it.each<[string, string, string]>([
    ["one second before valid_after", "2029-12-31T23:59:59Z", "certificate-refused"],
    ["at valid_after", "2030-01-01T00:00:00Z", "known"],
    ["one second before valid_before", "2030-01-01T23:59:59Z", "known"],
    ["at valid_before", "2030-01-02T00:00:00Z", "certificate-refused"],
  ])("%s", (_name, now, status) => {
    expect(verdict([caLine(HOST)], certificate, HOST, 22, new Date(now)).status).toBe(status);
  });
});

describe("host certificates OpenSSH refuses", () => {
  const refusals: Array<
    [string, () => { lines: string[]; certificate: Buffer; host?: string; port?: number }, string, RegExp]
  > = [
    [
      "expired",
      () => ({
        lines: [caLine(HOST)],
        certificate: keygen.certify(cas.ed25519, hosts.ed25519, { validity: "20200101Z:20200102Z" }),
      }),
      "expired",
      /^certificate "web-1" \(serial 7\) expired at 2020-01-02T00:00:00Z$/,
    ],
    [
      "not yet valid",
      () => ({
        lines: [caLine(HOST)],
        certificate: keygen.certify(cas.ed25519, hosts.ed25519, { validity: "20980101Z:20990101Z" }),
      }),
      "not-yet-valid",
      /^certificate "web-1" \(serial 7\) is not valid before 2098-01-01T00:00:00Z$/,
    ],
    [
      "wrong principal",
      () => ({
        lines: [caLine("198.18.0.*")],
        certificate: keygen.certify(cas.ed25519, hosts.ed25519),
        host: "198.18.0.9",
      }),
      "wrong-principal",
      /^certificate "web-1" \(serial 7\) is valid for web-1\.example, 198\.18\.0\.5, not for 198\.18\.0\.9$/,
    ],
    [
      "no principals at all (OpenSSH 9.2 accepts it for any host, 10.3 refuses it)",
      () => ({ lines: [caLine(HOST)], certificate: keygen.certify(cas.ed25519, hosts.ed25519, { principals: [] }) }),
      "wrong-principal",
      /lists no principals, so it would vouch for any host/,
    ],
    [
      "foreign CA",
      () => ({ lines: [caLine(HOST)], certificate: keygen.certify(foreignCa, hosts.ed25519) }),
      "untrusted-ca",
      /^certificate "web-1" \(serial 7\) is signed by CA ssh-ed25519 SHA256:\S+, which no @cert-authority line trusts for 198\.18\.0\.5 \(the lines matching it, known_hosts:1, name other CAs\)$/,
    ],
    [
      "user certificate presented as a host certificate",
      () => ({
        lines: [caLine(HOST)],
        certificate: keygen.certify(cas.ed25519, hosts.ed25519, { user: true, id: "alice", principals: [HOST] }),
      }),
      "not-a-host-certificate",
      /^certificate "alice" \(serial 7\) is a user certificate, not a host certificate$/,
    ],
    [
      "critical options",
      () => ({
        lines: [caLine(HOST)],
        certificate: keygen.certify(cas.ed25519, hosts.ed25519, { options: ["force-command=/bin/true"] }),
      }),
      "critical-options",
      /carries critical options \(force-command\)/,
    ],
    [
      "ssh-rsa (SHA-1) CA signature",
      () => ({
        lines: [caLine(HOST, cas["rsa-3072"])],
        certificate: keygen.certify(cas["rsa-3072"], hosts.ed25519, { signatureAlgorithm: "ssh-rsa" }),
      }),
      "unsupported-algorithm",
      /signed with ssh-rsa \(RSA with SHA-1\)/,
    ],
    [
      "one flipped byte in the signature",
      () => {
        const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
        return { lines: [caLine(HOST)], certificate: flipByte(certificate, certificate.length - 1) };
      },
      "bad-signature",
      /^certificate "web-1" \(serial 7\) has a signature that CA ssh-ed25519 SHA256:\S+ did not make: the certificate was altered or forged$/,
    ],
    [
      "one flipped byte in a principal",
      () => {
        const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
        return { lines: [caLine(HOST)], certificate: flipByte(certificate, certificate.indexOf("198.18.0.5")) };
      },
      "bad-signature",
      /altered or forged/,
    ],
    [
      "a CA line whose pattern does not match the host",
      () => ({ lines: [caLine("*.example.com")], certificate: keygen.certify(cas.ed25519, hosts.ed25519) }),
      "untrusted-ca",
      /is signed by CA ssh-ed25519 SHA256:\S+, and no @cert-authority line matches 198\.18\.0\.5$/,
    ],
    [
      "a CA line for another port",
      () => ({
        lines: [caLine(`[${HOST}]:2222`)],
        certificate: keygen.certify(cas.ed25519, hosts.ed25519),
        port: 2200,
      }),
      "untrusted-ca",
      /no @cert-authority line matches 198\.18\.0\.5 port 2200$/,
    ],
    [
      "a CA line negated for the host",
      () => ({ lines: [caLine(`198.18.0.*,!${HOST}`)], certificate: keygen.certify(cas.ed25519, hosts.ed25519) }),
      "untrusted-ca",
      /no @cert-authority line matches/,
    ],
    [
      "trailing bytes",
      () => ({
        lines: [caLine(HOST)],
        certificate: Buffer.concat([keygen.certify(cas.ed25519, hosts.ed25519), Buffer.from([0])]),
      }),
      "malformed",
      /^the certificate is malformed: 1 unexpected trailing bytes$/,
    ],
    [
      "a truncated blob",
      () => ({ lines: [caLine(HOST)], certificate: keygen.certify(cas.ed25519, hosts.ed25519).subarray(0, 200) }),
      "malformed",
      /^the certificate is malformed: it ends in the middle of a field$/,
    ],
  ];

  it.each(refusals)("%s", (_name, make, reason, detail) => {
    const { lines, certificate, host, port } = make();
    const result = verdict(lines, certificate, host, port);
    expect(result).toMatchObject({ status: "certificate-refused", reason });
    expect(result.status === "certificate-refused" && result.detail).toMatch(detail);
  });

  it("includes the certificate's details with a refusal it could parse", () => {
    const certificate = keygen.certify(foreignCa, hosts.ed25519);
    const result = verdict([caLine(HOST)], certificate);
    expect(result).toMatchObject({
      status: "certificate-refused",
      certificate: {
        keyId: "web-1",
        ca: { fingerprint: keygen.fingerprint(foreignCa) },
        key: { fingerprint: keygen.fingerprint(hosts.ed25519) },
      },
    });
  });
});

describe("@revoked", () => {
  it.each<[string, () => Key, RegExp]>([
    [
      "the certified host key",
      () => hosts.ed25519,
      /certifies host key ssh-ed25519 SHA256:\S+, which is marked @revoked in known_hosts:2$/,
    ],
    [
      "the CA key",
      () => cas.ed25519,
      /is signed by CA ssh-ed25519 SHA256:\S+, which is marked @revoked in known_hosts:2$/,
    ],
  ])("refuses a certificate when %s is revoked", (_name, revokedKey, detail) => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
    const lines = [caLine(HOST), `@revoked * ${revokedKey().publicKey}`];
    expect(verdict(lines, certificate)).toMatchObject({
      status: "revoked",
      entry: { line: 2 },
      certificate: { keyId: "web-1" },
    });

    const [authority, revocation] = parseKnownHosts(lines.join("\n"), "known_hosts");
    const trust: HostCertificateTrust = {
      authorities: [authority!],
      revocations: [revocation!],
      host: HOST,
      port: 22,
      now: NOW,
    };
    const result = checkHostCertificate(certificate, trust);
    expect(result).toMatchObject({ ok: false, reason: "revoked", revokedBy: { line: 2 } });
    expect(!result.ok && result.detail).toMatch(detail);
  });

  it("revokes through a @revoked line that lists a certificate of the same key", () => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
    const otherCertificate = keygen.certify(foreignCa, hosts.ed25519, { id: "old" });
    const lines = [caLine(HOST), `@revoked * ${keyTypeOf(otherCertificate)} ${otherCertificate.toString("base64")}`];
    expect(verdict(lines, certificate).status).toBe("revoked");
  });

  it("ignores a @revoked line for another host", () => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
    expect(verdict([caLine(HOST), `@revoked web-9 ${cas.ed25519.publicKey}`], certificate).status).toBe("known");
  });

  it("wins over a plain line pinning the same key", () => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
    const lines = [`${HOST} ${hosts.ed25519.publicKey}`, caLine(HOST), `@revoked * ${cas.ed25519.publicKey}`];
    expect(verdict(lines, certificate).status).toBe("revoked");
  });
});

describe("which @cert-authority lines apply to the host", () => {
  it.each<[string, string, string, number, string]>([
    ["exact address", HOST, HOST, 22, "known"],
    ["wildcard", "198.18.0.*", HOST, 22, "known"],
    ["one of a list", `web-9,${HOST}`, HOST, 22, "known"],
    ["[host]:port on that port", `[${HOST}]:2222`, HOST, 2222, "known"],
    ["[host]:port not on port 22", `[${HOST}]:2222`, HOST, 22, "certificate-refused"],
    ["[host]:port not on another port", `[${HOST}]:2222`, HOST, 2200, "certificate-refused"],
    ["[host]:* on any port", `[${HOST}]:*`, HOST, 2200, "known"],
    // ssh(1) retries the CA lookup without the port ("checking without port identifier").
    ["bare host on another port", HOST, HOST, 2222, "known"],
    ["wildcard on another port", "198.18.0.*", HOST, 2222, "known"],
    ["hashed host", hashedToken(HOST), HOST, 22, "known"],
    ["hashed [host]:port", hashedToken(`[${HOST}]:2222`), HOST, 2222, "known"],
    ["hashed other host", hashedToken("198.18.0.9"), HOST, 22, "certificate-refused"],
    ["*.example.com does not cover an address", "*.example.com", HOST, 22, "certificate-refused"],
  ])("%s", (_name, patterns, host, port, status) => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
    expect(verdict([caLine(patterns)], certificate, host, port).status).toBe(status);
  });

  it("finds the trusting CA among several lines for the host", () => {
    const certificate = keygen.certify(cas["ecdsa-384"], hosts.ed25519);
    const lines = [caLine(HOST, foreignCa), caLine("198.18.*", cas["ecdsa-384"]), caLine(HOST, cas.ed25519)];
    expect(verdict(lines, certificate)).toMatchObject({ status: "known", entry: { line: 2 } });
  });
});

describe("falling back to the certified key, as ssh(1) does", () => {
  it("accepts a refused certificate whose key is pinned by a plain line, and says why the certificate did not do", () => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519, { validity: "20200101Z:20200102Z" });
    const result = verdict([caLine(HOST), `${HOST} ${hosts.ed25519.publicKey}`], certificate);
    expect(result).toMatchObject({
      status: "known",
      entry: { marker: null, line: 2 },
      certificate: { keyId: "web-1" },
      certificateRefusal: { reason: "expired" },
    });
  });

  it("accepts a certificate from an unknown CA whose key is pinned", () => {
    const certificate = keygen.certify(foreignCa, hosts.ed25519);
    expect(verdict([`${HOST} ${hosts.ed25519.publicKey}`], certificate)).toMatchObject({
      status: "known",
      certificateRefusal: { reason: "untrusted-ca" },
    });
  });

  it("still refuses when the pinned key is another one", () => {
    const certificate = keygen.certify(foreignCa, hosts.ed25519);
    expect(verdict([`${HOST} ${hosts["ecdsa-256"].publicKey}`], certificate)).toMatchObject({
      status: "certificate-refused",
      reason: "untrusted-ca",
    });
  });

  it("never falls back for a forged certificate", () => {
    const certificate = keygen.certify(cas.ed25519, hosts.ed25519);
    const forged = flipByte(certificate, certificate.length - 1);
    expect(verdict([`${HOST} ${hosts.ed25519.publicKey}`], forged)).toMatchObject({
      status: "certificate-refused",
      reason: "bad-signature",
    });
  });

  it("is never 'unknown', so a certificate is never recorded as a new host key", () => {
    const certificate = keygen.certify(foreignCa, hosts.ed25519);
    expect(verdict([], certificate).status).toBe("certificate-refused");
  });
});

describe("certificates ssh-keygen will not make", () => {
  /** PROTOCOL.certkeys, signed by a CA made with node:crypto, with a trust that names that CA. */
  function craft(fields: { role?: number; certifiedKey?: Buffer; principals?: string[] }): {
    certificate: Buffer;
    trust: HostCertificateTrust;
  } {
    const ca = generateKeyPairSync("ed25519");
    const caBlob = ed25519Blob(ca.publicKey);
    const certifiedKey = fields.certifiedKey ?? hosts.ed25519.blob;
    const keyType = keyTypeOf(certifiedKey);
    const body = Buffer.concat([
      sshString(`${keyType}-cert-v01@openssh.com`),
      sshString(randomBytes(32)),
      certifiedKey.subarray(4 + keyType.length),
      uint64(42n),
      uint32(fields.role ?? 2),
      sshString("crafted"),
      sshString(Buffer.concat((fields.principals ?? [HOST]).map((p) => sshString(p)))),
      uint64(0n),
      uint64(0xffff_ffff_ffff_ffffn),
      sshString(""),
      sshString(""),
      sshString(""),
      sshString(caBlob),
    ]);
    const signature = Buffer.concat([sshString("ssh-ed25519"), sshString(sign(null, body, ca.privateKey))]);
    const [entry] = parseKnownHosts(`@cert-authority ${HOST} ssh-ed25519 ${caBlob.toString("base64")}`, "kh");
    return {
      certificate: Buffer.concat([body, sshString(signature)]),
      trust: { authorities: [entry!], revocations: [], host: HOST, port: 22, now: NOW },
    };
  }

  it("crafts what ssh-keygen -L reads back (the crafting itself is right)", () => {
    const { certificate, trust } = craft({});
    expect(keygen.lists(certificate)).toMatch(/host certificate[\s\S]*Key ID: "crafted"[\s\S]*Serial: 42/);
    expect(checkHostCertificate(certificate, trust)).toMatchObject({ ok: true, cert: { serial: 42n } });
  });

  it("refuses an unknown certificate type", () => {
    const { certificate, trust } = craft({ role: 3 });
    expect(checkHostCertificate(certificate, trust)).toEqual({
      ok: false,
      reason: "malformed",
      detail: "the certificate is malformed: unknown certificate type 3",
    });
  });

  it("refuses an RSA host key below OpenSSH's 1024-bit minimum", () => {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 768 });
    const { certificate, trust } = craft({ certifiedKey: rsaBlob(publicKey) });
    expect(checkHostCertificate(certificate, trust)).toMatchObject({
      ok: false,
      reason: "unsupported-algorithm",
      detail: "an RSA key of 768 bits is below OpenSSH's minimum of 1024",
    });
  });

  it("refuses a certificate for a key type it cannot check", () => {
    const { certificate, trust } = craft({
      certifiedKey: Buffer.concat([sshString("ssh-dss"), sshString(Buffer.alloc(20, 1))]),
    });
    expect(checkHostCertificate(certificate, trust)).toMatchObject({ ok: false, reason: "unsupported-algorithm" });
  });

  it("never throws, whatever the blob", () => {
    const { trust } = craft({});
    const blobs = [Buffer.alloc(0), hosts.ed25519.blob, Buffer.from("ssh-ed25519-cert-v01@openssh.com")];
    for (let i = 0; i < 200; i++)
      blobs.push(Buffer.concat([sshString("ssh-ed25519-cert-v01@openssh.com"), randomBytes(i)]));
    for (const blob of blobs)
      expect(checkHostCertificate(blob, trust)).toMatchObject({ ok: false, reason: "malformed" });
  });
});

describe("blob helpers", () => {
  it("tells certificates from plain keys", () => {
    expect(isCertificateBlob(keygen.certify(cas.ed25519, hosts["rsa-2048"]))).toBe(true);
    expect(isCertificateBlob(hosts["rsa-2048"].blob)).toBe(false);
    expect(isCertificateBlob(Buffer.from([0, 0]))).toBe(false);
  });

  it("gives the certified key of a certificate and a plain key as it is", () => {
    const certificate = keygen.certify(cas["ecdsa-521"], hosts["ecdsa-256"]);
    expect(plainKeyOf(certificate)).toEqual(hosts["ecdsa-256"].blob);
    expect(plainKeyOf(hosts["ecdsa-256"].blob)).toBe(hosts["ecdsa-256"].blob);
    expect(fingerprintSha256(plainKeyOf(certificate))).toBe(keygen.fingerprint(hosts["ecdsa-256"]));
  });
});

describe("the installed ssh2", () => {
  it("carries patches/ssh2+1.17.0.patch, so it can negotiate every host certificate algorithm", () => {
    expect(HOST_CERTIFICATE_ALGORITHMS).toHaveLength(6);
    expect(ssh2NegotiatesHostCertificates()).toBe(true);
  });
});

function sshString(value: string | Buffer): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  return Buffer.concat([uint32(bytes.length), bytes]);
}

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}

function uint64(value: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(value);
  return bytes;
}

function ed25519Blob(key: KeyObject): Buffer {
  return Buffer.concat([
    sshString("ssh-ed25519"),
    sshString(Buffer.from(key.export({ format: "jwk" }).x!, "base64url")),
  ]);
}

function rsaBlob(key: KeyObject): Buffer {
  const { e, n } = key.export({ format: "jwk" });
  const mpint = (base64url: string) => {
    const bytes = Buffer.from(base64url, "base64url");
    return sshString((bytes[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
  };
  return Buffer.concat([sshString("ssh-rsa"), mpint(e!), mpint(n!)]);
}
