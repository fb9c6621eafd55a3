import { execFileSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  checkHostKey,
  entryMatchesHost,
  fingerprintSha256,
  hostKeyAlgorithmsFor,
  hostToken,
  keyTypeOfBlob,
  knownHostsLine,
  parseKnownHosts,
  type KnownHostEntry,
  indexKnownHosts,
} from "../../src/transport/knownHosts.js";

// Fixture keys generated with `ssh-keygen -t <type> -N '' -C ''`; fingerprints from `ssh-keygen -lf`.
const ED = "AAAAC3NzaC1lZDI1NTE5AAAAIN0nh/gJbHu4epU/Ooy1jgid12yRdBW9a2IqKfHDsw3F";
const ED_FP = "SHA256:LZ3qSu72zYxG7BBSF3JQb2HIXS2aU8YNxhx0EP+oCJU";
const ED2 = "AAAAC3NzaC1lZDI1NTE5AAAAIN8C9oybVfED5uGlQUS7W+EpEES0FeGutBujDfDxnDfk";
const ED2_FP = "SHA256:MKHbRbjQnS35I5nY4GaQmyeOIA/6eL6V8LBmWCnFWTU";
const EC =
  "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOvHW/JrF54cCuNxgRv0OAsPtFy+wNYmo/ZQW0gHy82eHUk0MBR10X18n8vA+yCBRMHCTzWo61S4x+66FGRBlDY=";
const EC_FP = "SHA256:V3q8EzgaqFJEXcPeZ23eu5waxgg2f6gOSegQcK38BY8";
const RSA =
  "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7GPQpHejHqRlAdIICvWi3wqCCc2oKGxlODMHK1vjYcIGwl6AucTmeRXdCHAJfsj0FkJVJoukAbKyU864GlhftxYqNpTAQP1ojuJu3cpM5Yx3dPf35nqg2nuVlyIWHhLfVBWxCPogNORmi3MpQi87mVux+gf/pJMVevL/d2NV4BQ==";
const RSA_FP = "SHA256:Vd7oWzGGXcloLSVyQyT/SkNta1IAzBN+2HmID2TSpVE";

// `ssh-keygen -H` output for "fixture.example.com ssh-ed25519 ED" and "[fixture.example.com]:2222 ecdsa-sha2-nistp256 EC".
const SSH_KEYGEN_HASHED_FIXTURE = [
  `|1|jxzvelIZib+WtTad4X5OfMcvflk=|rOjzawLvCUDklfD3w5SS4jex/p0= ssh-ed25519 ${ED}`,
  `|1|VavYE/iWm/2BIt1YX5WNJcWzmgI=|gsYUAz1URr09qvKV1hs/QaDPBak= ecdsa-sha2-nistp256 ${EC}`,
].join("\n");

const blob = (base64: string): Buffer => Buffer.from(base64, "base64");

function sshString(value: string | Buffer): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A blob with the right type string but a random body: enough for matching, not for crypto. */
function fakeBlob(keyType: string): Buffer {
  return Buffer.concat([sshString(keyType), sshString(randomBytes(32))]);
}

function hashedToken(token: string, salt: Buffer = randomBytes(20)): string {
  const hash = createHmac("sha1", salt).update(token).digest();
  return `|1|${salt.toString("base64")}|${hash.toString("base64")}`;
}

function entry(patterns: string[], overrides: Partial<KnownHostEntry> = {}): KnownHostEntry {
  return {
    marker: null,
    patterns,
    keyType: "ssh-ed25519",
    keyBase64: ED,
    file: "known_hosts",
    line: 1,
    ...overrides,
  };
}

function hasSshKeygen(): boolean {
  try {
    execFileSync("ssh-keygen", ["-?"], { stdio: "ignore" });
    return true;
  } catch (error) {
    // `ssh-keygen -?` prints usage and exits non-zero; only a missing binary means absent.
    return (error as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

function withTempDir<T>(use: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "knownhosts-test-"));
  try {
    return use(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("parseKnownHosts", () => {
  it.each<[string, string, Partial<KnownHostEntry>]>([
    ["plain host", `web1 ssh-ed25519 ${ED}`, { marker: null, patterns: ["web1"] }],
    [
      "comma-separated patterns",
      `web1,10.0.0.5,[web1]:2222 ssh-ed25519 ${ED}`,
      { patterns: ["web1", "10.0.0.5", "[web1]:2222"] },
    ],
    [
      "wildcards kept as written",
      `*.Example.COM,!bad.example.com ssh-ed25519 ${ED}`,
      { patterns: ["*.Example.COM", "!bad.example.com"] },
    ],
    ["revoked marker", `@revoked * ssh-ed25519 ${ED}`, { marker: "revoked", patterns: ["*"] }],
    [
      "cert-authority marker",
      `@cert-authority *.example.com ssh-ed25519 ${ED}`,
      { marker: "cert-authority", patterns: ["*.example.com"] },
    ],
    ["trailing comment", `web1 ssh-ed25519 ${ED} root@web1 added 2024`, { patterns: ["web1"] }],
    ["tabs and extra spaces", `  web1\t \tssh-ed25519   ${ED}  `, { patterns: ["web1"] }],
    ["CRLF line ending", `web1 ssh-ed25519 ${ED}\r`, { keyBase64: ED }],
    ["ecdsa key", `web1 ecdsa-sha2-nistp256 ${EC}`, { keyType: "ecdsa-sha2-nistp256", keyBase64: EC }],
    ["rsa key", `web1 ssh-rsa ${RSA}`, { keyType: "ssh-rsa", keyBase64: RSA }],
    ["empty list items dropped", `web1,,web2, ssh-ed25519 ${ED}`, { patterns: ["web1", "web2"] }],
    [
      "hashed token kept whole",
      `|1|jxzvelIZib+WtTad4X5OfMcvflk=|rOjzawLvCUDklfD3w5SS4jex/p0= ssh-ed25519 ${ED}`,
      { patterns: ["|1|jxzvelIZib+WtTad4X5OfMcvflk=|rOjzawLvCUDklfD3w5SS4jex/p0="] },
    ],
  ])("parses %s", (_name, line, expected) => {
    const [parsed, ...rest] = parseKnownHosts(line, "/etc/ssh/ssh_known_hosts");
    expect(rest).toEqual([]);
    expect(parsed).toMatchObject({ file: "/etc/ssh/ssh_known_hosts", line: 1, ...expected });
  });

  it.each<[string, string]>([
    ["empty line", ""],
    ["whitespace only", " \t "],
    ["comment", `# web1 ssh-ed25519 ${ED}`],
    ["indented comment", `   # web1 ssh-ed25519 ${ED}`],
    ["host only", "web1"],
    ["no key", "web1 ssh-ed25519"],
    ["marker without key", "@revoked web1 ssh-ed25519"],
    ["unknown marker", `@trusted web1 ssh-ed25519 ${ED}`],
    ["key not base64", "web1 ssh-ed25519 not*base64!"],
    ["key type disagrees with blob", `web1 ssh-rsa ${ED}`],
    ["blob too short for a type", "web1 ssh-ed25519 AAAA"],
    ["empty pattern list", `, ssh-ed25519 ${ED}`],
    ["lone negation", `! ssh-ed25519 ${ED}`],
    ["unsupported hash version", `|2|jxzvelIZib+WtTad4X5OfMcvflk=|rOjzawLvCUDklfD3w5SS4jex/p0= ssh-ed25519 ${ED}`],
    ["hashed token missing hash", `|1|jxzvelIZib+WtTad4X5OfMcvflk= ssh-ed25519 ${ED}`],
    ["hashed token with bad base64", `|1|@@@|rOjzawLvCUDklfD3w5SS4jex/p0= ssh-ed25519 ${ED}`],
  ])("skips %s", (_name, line) => {
    expect(parseKnownHosts(line, "kh")).toEqual([]);
  });

  it("numbers lines from 1 counting skipped lines", () => {
    const text = ["# header", "", `web1 ssh-ed25519 ${ED}`, "garbage", `@revoked web2 ssh-ed25519 ${ED2}`, ""].join(
      "\n",
    );
    const parsed = parseKnownHosts(text, "kh");
    expect(parsed.map((e) => [e.line, e.patterns[0], e.marker])).toEqual([
      [3, "web1", null],
      [5, "web2", "revoked"],
    ]);
  });

  it("parses CRLF files", () => {
    const text = `web1 ssh-ed25519 ${ED}\r\nweb2 ssh-ed25519 ${ED2}\r\n`;
    expect(parseKnownHosts(text, "kh").map((e) => [e.line, e.keyBase64])).toEqual([
      [1, ED],
      [2, ED2],
    ]);
  });

  it("never throws on arbitrary input", () => {
    for (let i = 0; i < 200; i++) {
      const noise = randomBytes(64).toString("latin1");
      expect(() => parseKnownHosts(noise, "kh")).not.toThrow();
    }
    expect(() => parseKnownHosts("@revoked\n@\n|\n|1|\n|1||\n\0\0\0", "kh")).not.toThrow();
  });
});

describe("hostToken", () => {
  it.each<[string, number, string]>([
    ["web1", 22, "web1"],
    ["web1", 2222, "[web1]:2222"],
    ["Web1.Example.COM", 22, "web1.example.com"],
    ["10.0.0.5", 22, "10.0.0.5"],
    ["10.0.0.5", 22022, "[10.0.0.5]:22022"],
    ["::1", 2222, "[::1]:2222"],
  ])("hostToken(%s, %i) = %s", (host, port, expected) => {
    expect(hostToken(host, port)).toBe(expected);
  });
});

describe("entryMatchesHost with plain patterns", () => {
  it.each<[string, string[], string, number, boolean]>([
    ["exact host", ["web1"], "web1", 22, true],
    ["other host", ["web1"], "web2", 22, false],
    ["prefix is not a match", ["web1"], "web10", 22, false],
    ["case-insensitive host", ["Web1.Example.com"], "WEB1.example.COM", 22, true],
    ["second item of list", ["web1", "10.0.0.5"], "10.0.0.5", 22, true],
    ["none of list", ["web1", "web2"], "web3", 22, false],
    ["star wildcard", ["*.example.com"], "db.example.com", 22, true],
    ["star matches dots", ["*.example.com"], "a.b.example.com", 22, true],
    ["star needs the suffix", ["*.example.com"], "example.com", 22, false],
    ["star alone", ["*"], "anything", 22, true],
    ["star in the middle", ["web*.example.com"], "web42.example.com", 22, true],
    ["question mark one char", ["web?"], "web7", 22, true],
    ["question mark not zero chars", ["web?"], "web", 22, false],
    ["question mark not two chars", ["web?"], "web12", 22, false],
    ["wildcard IP", ["10.0.0.*"], "10.0.0.77", 22, true],
    ["dot is literal", ["web1.example.com"], "web1xexample.com", 22, false],
    ["negation vetoes positive", ["*.example.com", "!bad.example.com"], "bad.example.com", 22, false],
    ["negation first still vetoes", ["!bad.example.com", "*.example.com"], "bad.example.com", 22, false],
    ["negation lets others through", ["*.example.com", "!bad.example.com"], "good.example.com", 22, true],
    ["negation alone never matches", ["!bad.example.com"], "good.example.com", 22, false],
    ["negated wildcard", ["*", "!10.*"], "10.1.2.3", 22, false],
    ["negation is case-insensitive", ["*", "!BAD"], "bad", 22, false],
    ["bracketed port matches that port", ["[web1]:2222"], "web1", 2222, true],
    ["bracketed port not another port", ["[web1]:2222"], "web1", 2223, false],
    ["bracketed port not port 22", ["[web1]:2222"], "web1", 22, false],
    ["bare host not a non-22 port", ["web1"], "web1", 2222, false],
    ["[host]:22 matches port 22", ["[web1]:22"], "web1", 22, true],
    ["[host]:22 case-insensitive", ["[WEB1]:22"], "web1", 22, true],
    ["negated [host]:22 vetoes port 22", ["*", "![web1]:22"], "web1", 22, false],
    ["wildcard inside brackets", ["[*.example.com]:2222"], "db.example.com", 2222, true],
    ["star matches bracketed token", ["*"], "web1", 2222, true],
    ["IPv6 with port", ["[::1]:2222"], "::1", 2222, true],
  ])("%s", (_name, patterns, host, port, expected) => {
    expect(entryMatchesHost(entry(patterns), host, port)).toBe(expected);
  });
});

describe("entryMatchesHost with hashed entries", () => {
  it.each<[string, string, string, number, boolean]>([
    ["same host port 22", "web1", "web1", 22, true],
    ["host is lower-cased before hashing", "web1.example.com", "WEB1.Example.com", 22, true],
    ["other host", "web1", "web2", 22, false],
    ["non-22 port", "[web1]:2222", "web1", 2222, true],
    ["hashed bare host does not match a non-22 port", "web1", "web1", 2222, false],
    ["hashed non-22 port does not match port 22", "[web1]:2222", "web1", 22, false],
    ["hashed [host]:22 matches port 22", "[web1]:22", "web1", 22, true],
    ["hashed IP", "10.0.0.5", "10.0.0.5", 22, true],
  ])("%s", (_name, hashedFor, host, port, expected) => {
    const line = `${hashedToken(hashedFor)} ssh-ed25519 ${ED}`;
    const [parsed] = parseKnownHosts(line, "kh");
    expect(parsed).toBeDefined();
    expect(entryMatchesHost(parsed!, host, port)).toBe(expected);
  });

  it("does not glob-match hashed tokens", () => {
    const [parsed] = parseKnownHosts(`${hashedToken("*")} ssh-ed25519 ${ED}`, "kh");
    expect(entryMatchesHost(parsed!, "web1", 22)).toBe(false);
    expect(entryMatchesHost(parsed!, "*", 22)).toBe(true);
  });

  it.each<[string, number, boolean]>([
    ["fixture.example.com", 22, true],
    ["FIXTURE.example.com", 22, true],
    ["fixture.example.com", 2222, true],
    ["fixture.example.com", 2223, false],
    ["other.example.com", 22, false],
  ])("matches the ssh-keygen -H fixture for %s:%i = %s", (host, port, expected) => {
    const entries = parseKnownHosts(SSH_KEYGEN_HASHED_FIXTURE, "kh");
    expect(entries).toHaveLength(2);
    expect(entries.some((e) => entryMatchesHost(e, host, port))).toBe(expected);
  });

  it("checks keys against the ssh-keygen -H fixture", () => {
    const entries = parseKnownHosts(SSH_KEYGEN_HASHED_FIXTURE, "kh");
    expect(checkHostKey(entries, "fixture.example.com", 22, blob(ED))).toMatchObject({
      status: "known",
      entry: { line: 1 },
    });
    expect(checkHostKey(entries, "fixture.example.com", 2222, blob(EC))).toMatchObject({
      status: "known",
      entry: { line: 2 },
    });
    expect(checkHostKey(entries, "fixture.example.com", 2222, blob(ED))).toMatchObject({
      status: "changed",
      expected: [{ line: 2 }],
    });
  });

  it.skipIf(!hasSshKeygen())("matches lines freshly hashed by ssh-keygen -H", () => {
    withTempDir((dir) => {
      const file = join(dir, "known_hosts");
      const lines = [
        knownHostsLine("Live.Example.com", 22, blob(ED)),
        knownHostsLine("live.example.com", 2200, blob(EC)),
        knownHostsLine("10.9.8.7", 22, blob(RSA)),
      ];
      writeFileSync(file, lines.join("\n") + "\n");
      execFileSync("ssh-keygen", ["-H", "-f", file], { stdio: "ignore" });
      const entries = parseKnownHosts(readFileSync(file, "utf8"), file);

      expect(entries.map((e) => e.patterns[0]?.startsWith("|1|"))).toEqual([true, true, true]);
      expect(checkHostKey(entries, "live.example.com", 22, blob(ED)).status).toBe("known");
      expect(checkHostKey(entries, "LIVE.example.com", 2200, blob(EC)).status).toBe("known");
      expect(checkHostKey(entries, "10.9.8.7", 22, blob(RSA)).status).toBe("known");
      expect(checkHostKey(entries, "live.example.com", 22, blob(ED2)).status).toBe("changed");
      expect(checkHostKey(entries, "live.example.com", 2201, blob(EC)).status).toBe("unknown");
    });
  });
});

describe("checkHostKey", () => {
  const knownHosts = [
    `web1 ssh-ed25519 ${ED}`, // 1
    `web1 ecdsa-sha2-nistp256 ${EC}`, // 2
    `[web1]:2222 ssh-rsa ${RSA}`, // 3
    `*.example.com,!bad.example.com ssh-ed25519 ${ED}`, // 4
    `@cert-authority *.corp ssh-ed25519 ${ED}`, // 5
    `@revoked * ssh-ed25519 ${ED2}`, // 6
    `@revoked stale ecdsa-sha2-nistp256 ${EC}`, // 7
    `stale ecdsa-sha2-nistp256 ${EC}`, // 8
    `${hashedToken("hashed.host")} ssh-ed25519 ${ED}`, // 9
    `${hashedToken("[hashed.host]:2200")} ecdsa-sha2-nistp256 ${EC}`, // 10
    `# web9 ssh-ed25519 ${ED}`, // 11
  ].join("\n");
  const entries = parseKnownHosts(knownHosts, "kh");

  it.each<[string, string, number, string, string, number[]]>([
    // name, host, port, key, status, lines of entry / expected entries
    ["known key", "web1", 22, ED, "known", [1]],
    ["known key of another type for same host", "web1", 22, EC, "known", [2]],
    ["known key is case-insensitive on host", "WEB1", 22, ED, "known", [1]],
    ["changed key lists every entry for the host", "web1", 22, RSA, "changed", [1, 2]],
    ["known on non-22 port", "web1", 2222, RSA, "known", [3]],
    ["changed on non-22 port", "web1", 2222, ED, "changed", [3]],
    ["unknown port of a known host", "web1", 2200, ED, "unknown", []],
    ["unknown host", "web9", 22, ED, "unknown", []],
    ["commented-out entry is unknown", "web9", 22, ED, "unknown", []],
    ["wildcard entry", "db.example.com", 22, ED, "known", [4]],
    ["wildcard entry with other key", "db.example.com", 22, EC, "changed", [4]],
    ["negated host falls through to unknown", "bad.example.com", 22, ED, "unknown", []],
    ["cert-authority is not a host key", "gw.corp", 22, ED, "unknown", []],
    ["revoked key beats nothing", "anywhere", 22, ED2, "revoked", [6]],
    ["revoked key beats a different known key", "web1", 22, ED2, "revoked", [6]],
    ["revoked key beats the same key listed as known", "stale", 22, EC, "revoked", [7]],
    ["revocation of another key does not affect known", "web1", 22, ED, "known", [1]],
    ["hashed entry known", "hashed.host", 22, ED, "known", [9]],
    ["hashed entry changed", "hashed.host", 22, EC, "changed", [9]],
    ["hashed entry on port", "hashed.host", 2200, EC, "known", [10]],
  ])("%s", (_name, host, port, key, status, lines) => {
    const verdict = checkHostKey(entries, host, port, blob(key));
    expect(verdict.status).toBe(status);
    if (verdict.status === "known" || verdict.status === "revoked") {
      expect([verdict.entry.line]).toEqual(lines);
    }
    if (verdict.status === "changed") {
      expect(verdict.expected.map((e) => e.line)).toEqual(lines);
    }
  });

  it("returns unknown for no entries", () => {
    expect(checkHostKey([], "web1", 22, blob(ED))).toEqual({ status: "unknown" });
  });

  it("treats a host with only cert-authority or revoked entries as unknown for other keys", () => {
    const only = parseKnownHosts(
      [`@cert-authority web1 ssh-ed25519 ${ED}`, `@revoked web1 ssh-ed25519 ${ED2}`].join("\n"),
      "kh",
    );
    expect(checkHostKey(only, "web1", 22, blob(EC))).toEqual({ status: "unknown" });
  });

  it("reports the file and line of the matched entry", () => {
    const fromTwoFiles = [
      ...parseKnownHosts(`web2 ssh-ed25519 ${ED2}`, "/home/u/.ssh/known_hosts"),
      ...parseKnownHosts(`\nweb1 ssh-ed25519 ${ED}`, "/etc/ssh/ssh_known_hosts"),
    ];
    expect(checkHostKey(fromTwoFiles, "web1", 22, blob(ED))).toMatchObject({
      status: "known",
      entry: { file: "/etc/ssh/ssh_known_hosts", line: 2 },
    });
  });
});

describe("keyTypeOfBlob", () => {
  it.each<[string, Buffer, string]>([
    ["ed25519", blob(ED), "ssh-ed25519"],
    ["ecdsa", blob(EC), "ecdsa-sha2-nistp256"],
    ["rsa", blob(RSA), "ssh-rsa"],
    ["type string only", sshString("ssh-dss"), "ssh-dss"],
    ["certificate type", fakeBlob("ssh-ed25519-cert-v01@openssh.com"), "ssh-ed25519-cert-v01@openssh.com"],
  ])("reads the type of a %s blob", (_name, keyBlob, expected) => {
    expect(keyTypeOfBlob(keyBlob)).toBe(expected);
  });

  it.each<[string, Buffer]>([
    ["empty", Buffer.alloc(0)],
    ["shorter than a length", Buffer.from([0, 0, 0])],
    ["zero-length type", Buffer.from([0, 0, 0, 0, 1, 2])],
    ["length past the end", Buffer.concat([Buffer.from([0, 0, 0, 20]), Buffer.from("ssh-rsa")])],
  ])("throws on a malformed blob: %s", (_name, keyBlob) => {
    expect(() => keyTypeOfBlob(keyBlob)).toThrow(/malformed/);
  });
});

describe("fingerprintSha256", () => {
  it.each<[string, string, string]>([
    ["ed25519", ED, ED_FP],
    ["second ed25519", ED2, ED2_FP],
    ["ecdsa", EC, EC_FP],
    ["rsa", RSA, RSA_FP],
  ])("matches ssh-keygen -lf for the %s fixture", (_name, key, expected) => {
    expect(fingerprintSha256(blob(key))).toBe(expected);
  });

  it("is unpadded base64", () => {
    expect(fingerprintSha256(blob(ED))).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it.skipIf(!hasSshKeygen())("matches ssh-keygen -lf for a freshly generated key", () => {
    withTempDir((dir) => {
      const keyFile = join(dir, "id");
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", keyFile]);
      const [, base64] = readFileSync(`${keyFile}.pub`, "utf8").split(" ");
      const listed = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${keyFile}.pub`], {
        encoding: "utf8",
      });
      const expected = listed.split(" ")[1];
      expect(fingerprintSha256(blob(base64!))).toBe(expected);
    });
  });
});

describe("knownHostsLine", () => {
  it.each<[string, number, string, string]>([
    ["web1", 22, ED, `web1 ssh-ed25519 ${ED}`],
    ["web1", 2222, EC, `[web1]:2222 ecdsa-sha2-nistp256 ${EC}`],
    ["Web1.Example.com", 22, RSA, `web1.example.com ssh-rsa ${RSA}`],
  ])("formats %s:%i", (host, port, key, expected) => {
    expect(knownHostsLine(host, port, blob(key))).toBe(expected);
  });

  it.each<[string, number]>([
    ["web1", 22],
    ["web1", 2222],
    ["10.0.0.5", 22022],
  ])("round-trips %s:%i through parse and check", (host, port) => {
    const entries = parseKnownHosts(knownHostsLine(host, port, blob(EC)) + "\n", "kh");
    expect(entries).toHaveLength(1);
    expect(checkHostKey(entries, host, port, blob(EC)).status).toBe("known");
  });

  it("has no trailing newline", () => {
    expect(knownHostsLine("web1", 22, blob(ED))).not.toMatch(/\n$/);
  });
});

describe("hostKeyAlgorithmsFor", () => {
  const ecdsa384 = fakeBlob("ecdsa-sha2-nistp384").toString("base64");
  const ecdsa521 = fakeBlob("ecdsa-sha2-nistp521").toString("base64");
  const skKey = fakeBlob("sk-ssh-ed25519@openssh.com").toString("base64");
  const entries = parseKnownHosts(
    [
      `ed ssh-ed25519 ${ED}`,
      `rsa ssh-rsa ${RSA}`,
      `ec ecdsa-sha2-nistp256 ${EC}`,
      `ec384 ecdsa-sha2-nistp384 ${ecdsa384}`,
      `ec521 ecdsa-sha2-nistp521 ${ecdsa521}`,
      `multi ssh-rsa ${RSA}`,
      `multi ssh-ed25519 ${ED}`,
      `multi ecdsa-sha2-nistp256 ${EC}`,
      `dup ssh-ed25519 ${ED}`,
      `dup ssh-ed25519 ${ED2}`,
      `[ported]:2222 ssh-rsa ${RSA}`,
      `ported ssh-ed25519 ${ED}`,
      `@cert-authority ca ssh-ed25519 ${ED}`,
      `@revoked revoked ssh-ed25519 ${ED}`,
      `sk sk-ssh-ed25519@openssh.com ${skKey}`,
      `${hashedToken("hashed")} ecdsa-sha2-nistp256 ${EC}`,
    ].join("\n"),
    "kh",
  );

  it("parses every fixture line", () => {
    expect(entries).toHaveLength(16);
  });

  it.each<[string, string, number, string[] | null]>([
    ["ed25519 as itself", "ed", 22, ["ssh-ed25519"]],
    ["rsa as the three rsa signatures", "rsa", 22, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]],
    ["ecdsa p256", "ec", 22, ["ecdsa-sha2-nistp256"]],
    ["ecdsa p384", "ec384", 22, ["ecdsa-sha2-nistp384"]],
    ["ecdsa p521", "ec521", 22, ["ecdsa-sha2-nistp521"]],
    [
      "several types in ssh2 preference order",
      "multi",
      22,
      ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
    ],
    ["duplicate types once", "dup", 22, ["ssh-ed25519"]],
    ["per port: non-22", "ported", 2222, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]],
    ["per port: 22", "ported", 22, ["ssh-ed25519"]],
    ["hashed entry", "hashed", 22, ["ecdsa-sha2-nistp256"]],
    ["unknown host", "nobody", 22, null],
    ["unknown port", "ed", 2222, null],
    ["revoked only", "revoked", 22, null],
    ["only types ssh2 cannot negotiate", "sk", 22, null],
  ])("%s", (_name, host, port, expected) => {
    expect(hostKeyAlgorithmsFor(entries, host, port)).toEqual(expected);
  });

  it("returns null for no entries", () => {
    expect(hostKeyAlgorithmsFor([], "ed", 22)).toBeNull();
  });
});

describe("hostKeyAlgorithmsFor with @cert-authority lines", () => {
  const CERTIFICATE_ALGORITHMS = [
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
  ];
  const ALL_PLAIN = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
  ];
  const entries = parseKnownHosts(
    [
      `@cert-authority ca,*.corp,[ported]:2222 ssh-ed25519 ${ED}`,
      `both ecdsa-sha2-nistp256 ${EC}`,
      `@cert-authority both ssh-ed25519 ${ED}`,
      `plain ssh-rsa ${RSA}`,
      `@revoked plain ssh-ed25519 ${ED2}`,
      `${hashedToken("hashed-ca")} ssh-ed25519 ${ED}`,
      `@cert-authority ${hashedToken("hashed-ca")} ssh-ed25519 ${ED2}`,
    ].join("\n"),
    "kh",
  );

  it("parses every fixture line", () => {
    expect(entries).toHaveLength(7);
  });

  it.each<[string, string, number, string[] | null]>([
    ["CA only: certificates first, then every plain algorithm", "ca", 22, [...CERTIFICATE_ALGORITHMS, ...ALL_PLAIN]],
    ["CA by wildcard", "gw.corp", 22, [...CERTIFICATE_ALGORITHMS, ...ALL_PLAIN]],
    [
      "CA and a pinned key: certificates, then the pinned key's algorithms",
      "both",
      22,
      [...CERTIFICATE_ALGORITHMS, "ecdsa-sha2-nistp256"],
    ],
    ["pinned key without a CA: no certificate algorithms", "plain", 22, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]],
    ["@revoked is no CA", "plain", 22, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]],
    ["no entry at all", "nobody", 22, null],
    ["CA for [host]:port on that port", "ported", 2222, [...CERTIFICATE_ALGORITHMS, ...ALL_PLAIN]],
    ["CA for [host]:port not on port 22", "ported", 22, null],
    // ssh(1) retries the CA lookup without the port, and checkHostKey does too.
    ["CA for the bare host on another port", "ca", 2200, [...CERTIFICATE_ALGORITHMS, ...ALL_PLAIN]],
    ["CA and pinned key both hashed", "hashed-ca", 22, [...CERTIFICATE_ALGORITHMS, "ssh-ed25519"]],
  ])("%s", (_name, host, port, expected) => {
    expect(hostKeyAlgorithmsFor(entries, host, port)).toEqual(expected);
  });

  it("offers no certificate algorithm for a host only a negated CA pattern names", () => {
    const negated = parseKnownHosts(`@cert-authority *.example,!db.example ssh-ed25519 ${ED}`, "kh");
    expect(hostKeyAlgorithmsFor(negated, "db.example", 22)).toBeNull();
    expect(hostKeyAlgorithmsFor(negated, "web.example", 22)?.[0]).toBe("ssh-ed25519-cert-v01@openssh.com");
  });
});

describe("indexKnownHosts: the same verdicts from the index's candidates as from every entry", () => {
  const text = [
    `web1.example.com ssh-ed25519 ${ED}`,
    `WEB2.example.com,198.18.0.2 ssh-ed25519 ${ED2}`,
    `[web3.example.com]:2222 ssh-ed25519 ${ED}`,
    `[web4.example.com]:22 ecdsa-sha2-nistp256 ${EC}`,
    `*.example.com,!web5.example.com ssh-rsa ${RSA}`,
    `web?.lab ssh-ed25519 ${ED2}`,
    `${hashedToken("hashed.example.com")} ssh-ed25519 ${ED}`,
    `${hashedToken("[hashed.example.com]:2222")} ssh-ed25519 ${ED2}`,
    `@revoked web1.example.com ssh-ed25519 ${ED2}`,
    `@cert-authority *.example.com ssh-ed25519 ${ED2}`,
    `web1.example.com ssh-ed25519 ${ED2}`,
    ...Array.from({ length: 300 }, (_, i) => `198.19.${i >> 8}.${i & 255} ssh-ed25519 ${i % 2 ? ED : ED2}`),
  ].join("\n");
  const entries = parseKnownHosts(text, "known_hosts");
  const index = indexKnownHosts(entries);
  const hosts: Array<[string, number]> = [
    ["web1.example.com", 22],
    ["WEB1.example.com", 22],
    ["web2.example.com", 22],
    ["198.18.0.2", 22],
    ["web3.example.com", 2222],
    ["web3.example.com", 22],
    ["web4.example.com", 22],
    ["web5.example.com", 22],
    ["other.example.com", 22],
    ["webx.lab", 22],
    ["hashed.example.com", 22],
    ["hashed.example.com", 2222],
    ["198.19.0.7", 22],
    ["198.19.1.20", 2222],
    ["nowhere", 22],
  ];
  it.each(hosts)("%s port %i", (host, port) => {
    const candidates = index.candidates(host, port);
    expect(candidates.length).toBeLessThan(20);
    for (const key of [ED, ED2, EC, RSA].map(blob))
      expect(checkHostKey(candidates, host, port, key)).toEqual(checkHostKey(entries, host, port, key));
    expect(hostKeyAlgorithmsFor(candidates, host, port)).toEqual(hostKeyAlgorithmsFor(entries, host, port));
  });
});
