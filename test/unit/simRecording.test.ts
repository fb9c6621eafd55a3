import { createHash } from "node:crypto";
import { REUSE } from "./_reports.js";
import { describe, expect, it } from "vitest";
import { buildApplyScript, parseApplyOutput } from "../../src/remote/apply.js";
import { buildGatherScript, parseGatherOutput } from "../../src/remote/gather.js";
import type { FactRequest } from "../../src/role.js";
import {
  addToRecording,
  answer,
  emptyRecording,
  execText,
  isApplyScript,
  NONCE_PLACEHOLDER,
  normalizeScript,
  parseRecording,
  PRISTINE,
  scriptCount,
  TUNED,
  type Recording,
} from "../fleet/sim/recording.js";
import { MAX_SIM_HOSTS, simHostAddress, simHostIndex, simHostName } from "../fleet/sim/server.js";

const N1 = "0123456789abcdef";
const N2 = "fedcba9876543210";
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");
/** What the server sees on stdin: the transport puts this before every script. */
const onWire = (script: string) => `export LC_ALL=C\n${script}`;

const REQUESTS: FactRequest[] = [
  { kind: "sysctl", key: "net.ipv4.tcp_tw_reuse" },
  { kind: "file", path: "/etc/sysctl.d/60-provision-tw-reuse.conf" },
];
const gatherScript = (nonce: string, requests = REQUESTS) => onWire(buildGatherScript(requests, nonce));
const applyScript = (nonce: string) => onWire(buildApplyScript([REUSE], nonce));
const SSH_CONNECTION_SCRIPT = onWire('set -- $SSH_CONNECTION; printf "%s" "$3"');

/** The answer a real host gives to gatherScript(nonce): tw_reuse live at `live`, the drop-in absent or present. */
function gatherAnswer(nonce: string, live: string, dropin: string | null): string {
  return [
    `@@${nonce} f0 live`,
    "",
    dropin === null ? `@@${nonce} f1 absent` : `@@${nonce} f1 ok`,
    dropin === null ? "" : b64(dropin),
    `@@${nonce} sysctls ok`,
    b64(`/proc/sys/net/ipv4/tcp_tw_reuse:${live}\n`),
    "",
  ].join("\n");
}

describe("normalizeScript", () => {
  it.each<[string, string, string, boolean]>([
    ["gather scripts that differ only in the nonce", gatherScript(N1), gatherScript(N2), true],
    ["apply scripts that differ only in the nonce", applyScript(N1), applyScript(N2), true],
    ["gather scripts for other requests", gatherScript(N1), gatherScript(N1, REQUESTS.slice(0, 1)), false],
    ["a gather and an apply script", gatherScript(N1), applyScript(N1), false],
    ["the same script without nonce", SSH_CONNECTION_SCRIPT, SSH_CONNECTION_SCRIPT, true],
  ])("%s: same key %s", (_what, a, b, same) => {
    expect(normalizeScript(a).key === normalizeScript(b).key).toBe(same);
  });

  it.each<[string, string, string | null]>([
    ["a gather script", gatherScript(N1), N1],
    ["an apply script", applyScript(N2), N2],
    ["a script without a rec() prelude", SSH_CONNECTION_SCRIPT, null],
    ["`true` (the fresh-login check without facts)", "export LC_ALL=C\ntrue", null],
    ["a nonce-like word outside the prelude", `echo '@@${N1} f0 ok'\n`, null],
  ])("finds the nonce of %s", (_what, script, nonce) => {
    expect(normalizeScript(script).nonce).toBe(nonce);
  });

  it("keys the text with every occurrence of the nonce replaced, and a script without one as itself", () => {
    const script = gatherScript(N1);
    expect(normalizeScript(script).key).toBe(sha256(script.replaceAll(N1, NONCE_PLACEHOLDER)));
    expect(normalizeScript(SSH_CONNECTION_SCRIPT).key).toBe(sha256(SSH_CONNECTION_SCRIPT));
  });
});

describe("isApplyScript", () => {
  it.each<[string, string, boolean]>([
    ["an apply script", applyScript(N1), true],
    ["a gather script", gatherScript(N1), false],
    ["failed=0 not alone on its line", "export LC_ALL=C\nx failed=0\n", false],
    ["failed=0 alone on its line", "export LC_ALL=C\nfailed=0\n", true],
  ])("%s → %s", (_what, script, apply) => {
    expect(isApplyScript(script)).toBe(apply);
  });
});

describe("execText", () => {
  it.each<[string, string, string]>([
    ["sh -s is the script alone", "sh -s", "echo\n"],
    ["another command is part of what is answered", "sudo -n -- sh -s", "#exec sudo -n -- sh -s\necho\n"],
  ])("%s", (_what, command, expected) => {
    expect(execText(command, "echo\n")).toBe(expected);
  });
});

/** A host recorded like recordFromFleet does: gather, apply, gather again (tuned). */
function recordedHost(): Recording {
  const recording = emptyRecording("198.18.1.2", "2026-01-01T00:00:00.000Z", "fd_limits:\n  soft_nofile: 16384\n");
  let state = PRISTINE;
  state = addToRecording(recording, state, gatherScript(N1), {
    stdout: gatherAnswer(N1, "2", null),
    stderr: "",
    code: 0,
  });
  expect(state).toBe(PRISTINE);
  state = addToRecording(recording, state, applyScript(N1), {
    stdout: `@@${N1} c0 ok\n${b64("1\n")}\n`,
    stderr: "",
    code: 0,
  });
  expect(state).toBe(TUNED);
  const dropin = "net.ipv4.tcp_tw_reuse = 1\n";
  state = addToRecording(recording, state, gatherScript(N2), {
    stdout: gatherAnswer(N2, "1", dropin),
    stderr: `warning for ${N2}\n`,
    code: 0,
  });
  expect(state).toBe(TUNED);
  return recording;
}

describe("addToRecording + answer", () => {
  const recording = recordedHost();
  const NEW = "00112233aabbccdd";

  it("stores answers with the nonce hidden, the apply script's transition on its entry", () => {
    expect(scriptCount(recording)).toBe(3);
    expect(Object.keys(recording.states).sort()).toEqual([PRISTINE, TUNED]);
    const json = JSON.stringify(recording);
    expect(json).not.toContain(N1);
    expect(json).not.toContain(N2);
    const pristine = Object.values(recording.states[PRISTINE]!);
    expect(pristine.map((a) => a.next)).toEqual([undefined, TUNED]);
    expect(pristine[0]!.stdout).toContain(`@@${NONCE_PLACEHOLDER} f0 live`);
  });

  it.each<[string, string, string, { code: number; next: string; recorded: boolean; stdout: RegExp }]>([
    [
      "a pristine host's gather",
      PRISTINE,
      gatherScript(NEW),
      { code: 0, next: PRISTINE, recorded: true, stdout: /f1 absent/ },
    ],
    ["a pristine host's apply", PRISTINE, applyScript(NEW), { code: 0, next: TUNED, recorded: true, stdout: /c0 ok/ }],
    ["a tuned host's gather", TUNED, gatherScript(NEW), { code: 0, next: TUNED, recorded: true, stdout: /f1 ok/ }],
    [
      "an apply on a tuned host (never recorded)",
      TUNED,
      applyScript(NEW),
      { code: 127, next: TUNED, recorded: false, stdout: /^$/ },
    ],
    [
      "a script of other requests",
      PRISTINE,
      gatherScript(NEW, REQUESTS.slice(1)),
      { code: 127, next: PRISTINE, recorded: false, stdout: /^$/ },
    ],
    [
      "a state never recorded",
      "rebooted",
      gatherScript(NEW),
      { code: 127, next: "rebooted", recorded: false, stdout: /^$/ },
    ],
  ])("%s", (_what, state, script, expected) => {
    const a = answer(recording, state, script);
    expect({ code: a.code, next: a.next, recorded: a.recorded }).toEqual({
      code: expected.code,
      next: expected.next,
      recorded: expected.recorded,
    });
    expect(a.stdout).toMatch(expected.stdout);
    if (a.recorded) {
      expect(a.stdout).toContain(`@@${NEW} `);
      expect(a.stdout).not.toContain(NONCE_PLACEHOLDER);
    }
  });

  it("puts the asking script's nonce into stdout and stderr, so provision's own parsers read the answer", () => {
    const pristine = answer(recording, PRISTINE, gatherScript(NEW));
    expect(parseGatherOutput(pristine.stdout, NEW, REQUESTS)).toMatchObject({
      sysctl: { "net.ipv4.tcp_tw_reuse": "2" },
      files: { "/etc/sysctl.d/60-provision-tw-reuse.conf": null },
    });
    const tuned = answer(recording, TUNED, gatherScript(NEW));
    expect(parseGatherOutput(tuned.stdout, NEW, REQUESTS)).toMatchObject({
      sysctl: { "net.ipv4.tcp_tw_reuse": "1" },
      files: { "/etc/sysctl.d/60-provision-tw-reuse.conf": "net.ipv4.tcp_tw_reuse = 1\n" },
    });
    expect(tuned.stderr).toBe(`warning for ${NEW}\n`);
    const applied = answer(recording, PRISTINE, applyScript(NEW));
    expect(parseApplyOutput(applied.stdout, NEW, [REUSE])).toEqual([{ change: REUSE, ok: true }]);
  });

  it("answers a script it lacks loudly: exit 127 and a message naming the key and the state", () => {
    const script = gatherScript(NEW, REQUESTS.slice(1));
    const a = answer(recording, TUNED, script);
    expect(a.stderr).toBe(
      `simulated host: no recorded answer for this script (key ${normalizeScript(script).key.slice(0, 12)}, state tuned)\n`,
    );
  });

  it("answers a script without a nonce as recorded, byte for byte", () => {
    const r = emptyRecording("198.18.1.2", "2026-01-01T00:00:00.000Z");
    addToRecording(r, PRISTINE, SSH_CONNECTION_SCRIPT, {
      stdout: `198.18.1.2 ${NONCE_PLACEHOLDER}`,
      stderr: "",
      code: 0,
    });
    expect(answer(r, PRISTINE, SSH_CONNECTION_SCRIPT)).toMatchObject({
      stdout: `198.18.1.2 ${NONCE_PLACEHOLDER}`,
      code: 0,
    });
  });

  it("survives JSON: parseRecording reads back what was written", () => {
    const back = parseRecording(JSON.stringify(recording));
    expect(back).toEqual(recording);
    expect(answer(back, TUNED, gatherScript(NEW)).recorded).toBe(true);
  });

  it.each<[string, string]>([
    ["not an object", "[]"],
    ["another version", '{"version":2,"states":{}}'],
    ["an answer without code", '{"version":1,"states":{"pristine":{"abc":{"stdout":"","stderr":""}}}}'],
  ])("parseRecording refuses %s", (_what, json) => {
    expect(() => parseRecording(json)).toThrow();
  });
});

describe("simulated host addresses", () => {
  it.each<[number, string, string]>([
    [0, "127.100.0.1", "sim00001"],
    [253, "127.100.0.254", "sim00254"],
    [254, "127.100.1.1", "sim00255"],
    [999, "127.100.3.238", "sim01000"],
    [9_999, "127.100.39.94", "sim10000"],
    [65_023, "127.100.255.254", "sim65024"],
    [65_024, "127.101.0.1", "sim65025"],
  ])("host %i is %s, named %s", (index, address, name) => {
    expect(simHostAddress(index)).toBe(address);
    expect(simHostIndex(address)).toBe(index);
    expect(simHostName(index)).toBe(name);
  });

  it("never uses a last octet of 0 or 255, and maps every address back to its host", () => {
    const seen = new Set<string>();
    const wrong: string[] = [];
    for (let i = 0; i < 70_000; i++) {
      const address = simHostAddress(i);
      if (/\.(0|255)$/.test(address) || simHostIndex(address) !== i) wrong.push(`${i}: ${address}`);
      seen.add(address);
    }
    expect(wrong).toEqual([]);
    expect(seen.size).toBe(70_000);
  });

  it.each(["127.100.0.0", "127.100.0.255", "127.99.0.1", "127.0.0.1", "198.18.1.2", "127.100.0.1.5", "::1"])(
    "%s is no simulated host",
    (address) => expect(simHostIndex(address)).toBeNull(),
  );

  it.each([-1, 1.5, MAX_SIM_HOSTS])("refuses index %s", (index) => {
    expect(() => simHostAddress(index)).toThrow(/out of range/);
  });
});
