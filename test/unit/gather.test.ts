import { createHash } from "node:crypto";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildGatherScript, dedupeRequests, FactError, parseGatherOutput, requestId } from "../../src/remote/gather.js";
import { LISTENING_PORTS_COMMAND, parseListeningPorts } from "../../src/facts/listeningPorts.js";
import { newNonce } from "../../src/remote/records.js";
import type { FactRequest } from "../../src/role.js";
import { defineProbe } from "../../src/facts/probe.js";
import { shQuote } from "../../src/transport/shell.js";

/** Runs a script the way the transport does: on stdin of `sh -s`, with LC_ALL=C. */
function runSh(script: string): string {
  return execFileSync("sh", ["-s"], {
    input: script,
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" },
  });
}

const dir = mkdtempSync(join(tmpdir(), "provision-gather-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FILES: Record<string, string> = {
  "tabs.conf": "key\tvalue\n\tindented\n",
  "no-final-newline.conf": "a = 1\nb = 2",
  "empty.conf": "",
  "only-newline.conf": "\n",
  "crlf.conf": "a = 1\r\nb = 2\r\n",
  "unicode.conf": "# café — naïve ✓\nx = 1\n",
  "looks-like-a-record.conf": "@@0000000000000000 f0 ok\nSGVsbG8=\n",
  "big.conf": Array.from({ length: 2000 }, (_, i) => `line ${i}\twith tab`).join("\n"),
  "name with spaces 'and quotes'.conf": "quoted path\n",
};
for (const [name, content] of Object.entries(FILES)) writeFileSync(join(dir, name), content);
mkdirSync(join(dir, "a-directory"));

describe("buildGatherScript + parseGatherOutput (run locally with sh -s)", () => {
  const fileRequests: FactRequest[] = Object.keys(FILES).map((name) => ({ kind: "file", path: join(dir, name) }));
  const requests: FactRequest[] = [
    ...fileRequests,
    { kind: "file", path: join(dir, "absent.conf") },
    { kind: "file", path: join(dir, "no-such-dir", "absent.conf") },
    { kind: "sysctl", key: "net.ipv4.ip_local_port_range" },
    { kind: "sysctl", key: "net.ipv4.provision_no_such_key" },
    { kind: "listening-ports" },
  ];
  const nonce = newNonce();
  const beforePorts = new Set(allPorts(execFileSync("sh", ["-c", LISTENING_PORTS_COMMAND], { encoding: "utf8" })));
  const script = buildGatherScript(requests, nonce);
  const stdout = runSh(script);
  const facts = parseGatherOutput(stdout, nonce, requests);

  it.each(Object.entries(FILES))("reads %s byte for byte", (name, content) => {
    expect(facts.files[join(dir, name)]).toBe(content);
  });

  it("reads absent files as null", () => {
    expect(facts.files[join(dir, "absent.conf")]).toBeNull();
    expect(facts.files[join(dir, "no-such-dir", "absent.conf")]).toBeNull();
  });

  it("reads a live sysctl without its final newline, tabs kept", () => {
    const live = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8");
    expect(facts.sysctl["net.ipv4.ip_local_port_range"]).toBe(live.replace(/\n$/, ""));
    expect(facts.sysctl["net.ipv4.ip_local_port_range"]).toMatch(/^\d+\t\d+$/);
  });

  it("reads an absent sysctl as null", () => {
    expect(facts.sysctl["net.ipv4.provision_no_such_key"]).toBeNull();
  });

  it("reads the listening ports from /proc/net", () => {
    // sockets may open or close between two reads: compare with a read before and one after
    const direct = () => new Set(allPorts(execFileSync("sh", ["-c", LISTENING_PORTS_COMMAND], { encoding: "utf8" })));
    const ports = [...new Set([...facts.listeningPorts!.tcp, ...facts.listeningPorts!.udp])].sort((a, b) => a - b);
    expect(ports).toEqual([...new Set(ports)].sort((a, b) => a - b));
    const seenBefore = beforePorts;
    const seenAfter = direct();
    for (const p of ports) expect(seenBefore.has(p) || seenAfter.has(p), `port ${p}`).toBe(true);
    for (const p of seenBefore) if (seenAfter.has(p)) expect(ports).toContain(p);
  });

  it("has exactly the requested keys", () => {
    expect(Object.keys(facts.files).sort()).toEqual(
      requests
        .filter((r) => r.kind === "file")
        .map((r) => (r as { path: string }).path)
        .sort(),
    );
    expect(Object.keys(facts.sysctl).sort()).toEqual([
      "net.ipv4.ip_local_port_range",
      "net.ipv4.provision_no_such_key",
    ]);
  });

  it("is one script with one line per request after the prelude, and one grep for every live sysctl, ending in a newline", () => {
    expect(script.endsWith("\n")).toBe(true);
    // prelude (4 lines) + `set --` + one line per request + the grep
    expect(script.trimEnd().split("\n")).toHaveLength(4 + 1 + requests.length + 1);
    expect(script.match(/grep /g)).toHaveLength(1);
    expect(script).toContain(`'${join(dir, "name with spaces '\\''and quotes'\\''.conf")}'`);
  });

  it("refuses a path that exists but is not a regular file", () => {
    const req: FactRequest[] = [{ kind: "file", path: join(dir, "a-directory") }];
    const out = runSh(buildGatherScript(req, nonce));
    expect(() => parseGatherOutput(out, nonce, req)).toThrow(FactError);
    expect(() => parseGatherOutput(out, nonce, req)).toThrow(
      `${join(dir, "a-directory")} exists but is not a regular file; move it away first`,
    );
  });

  it("fails when the output is cut short", () => {
    const cut = stdout.slice(0, stdout.indexOf(`@@${nonce} f3 `));
    expect(() => parseGatherOutput(cut, nonce, requests)).toThrow(
      `no answer for file:${join(dir, "only-newline.conf")} (output cut short?)`,
    );
  });

  it("ignores records of another nonce (forged output)", () => {
    const req: FactRequest[] = [{ kind: "file", path: join(dir, "looks-like-a-record.conf") }];
    const out = runSh(buildGatherScript(req, nonce));
    expect(() => parseGatherOutput(out, "0000000000000000", req)).toThrow(FactError);
  });
});

describe("gathering as an unprivileged user (become: false)", () => {
  const canDrop =
    process.getuid?.() === 0 &&
    (() => {
      try {
        execFileSync("setpriv", ["--version"], { stdio: "ignore" });
        return true;
      } catch {
        return false;
      }
    })();

  // A regression: the gather script once tested only `[ -f ]`, so an unreadable file answered `ok` with
  // an empty payload and plan diffed against "" instead of saying the file cannot be read.
  it.runIf(canDrop)("does not report a file it cannot read as an empty file", () => {
    const secret = join(dir, "root-only.conf");
    writeFileSync(secret, "net.ipv4.tcp_tw_reuse = 1\n", { mode: 0o600 });
    execFileSync("chmod", ["755", dir]);
    const req: FactRequest[] = [{ kind: "file", path: secret }];
    const nonce = newNonce();
    // the script's exit status is the transport's business; only its records matter here
    const out = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-s"], {
      input: buildGatherScript(req, nonce),
      encoding: "utf8",
      env: { PATH: process.env.PATH, LC_ALL: "C" },
    }).stdout;
    expect(out).toContain(`@@${nonce} f0 `);
    let files: Record<string, string | null> | undefined;
    try {
      files = parseGatherOutput(out, nonce, req).files;
    } catch (err) {
      expect(err).toBeInstanceOf(FactError);
      return;
    }
    expect(files[secret]).not.toBe("");
  });
});

describe("parseGatherOutput with hand-made output", () => {
  const N = "aaaaaaaaaaaaaaaa";
  const b64 = (s: string) => Buffer.from(s).toString("base64");

  it("strips only one final newline from a sysctl and keeps file bytes as they are", () => {
    const requests: FactRequest[] = [
      { kind: "sysctl", key: "a.b" },
      { kind: "file", path: "/f" },
    ];
    const out = `@@${N} f0 ok\n${b64("1\t2\n")}\n@@${N} f1 ok\n${b64("x\n\n")}\n`;
    expect(parseGatherOutput(out, N, requests)).toEqual({
      sysctl: { "a.b": "1\t2" },
      files: { "/f": "x\n\n" },
      fileSha256: { "/f": createHash("sha256").update("x\n\n").digest("hex") },
      listeningPorts: null,
      probes: {},
    });
  });
});

describe("probe output through the gather script (run locally with sh -s)", () => {
  // The command prints the file named by arg, byte for byte, then exits with the code in its name.
  const echoProbe = defineProbe({
    name: "test-echo-file",
    script: (arg) => `cat ${shQuote(arg!)}; exit ${/exit(\d)/.exec(arg!)?.[1] ?? 0}`,
    parse: (raw) => ({ raw }),
  });
  const outputs: Array<[string, string, string]> = [
    ["no final newline", "a\nb", "a\nb"],
    ["final newlines are dropped, as $(...) always did", "x\ty\n\n\n", "x\ty"],
    ["empty", "", ""],
    [
      "the here-document's end marker as a line",
      "before\nPROVISION_PROBE_OUTPUT\nafter\n",
      "before\nPROVISION_PROBE_OUTPUT\nafter",
    ],
    ["shell syntax stays text", "$HOME `id -u` $(id -u) \\n \\$\n", "$HOME `id -u` $(id -u) \\n \\$"],
    ["leading blank lines kept", "\n\nz\n", "\n\nz"],
  ];
  const probeDir = mkdtempSync(join(tmpdir(), "provision-probe-out-"));
  afterAll(() => rmSync(probeDir, { recursive: true, force: true }));
  const requests: FactRequest[] = outputs.map(([, content], i) => {
    const path = join(probeDir, `out${i}`);
    writeFileSync(path, content);
    return { kind: "probe", probe: echoProbe, arg: path };
  });
  const failing = join(probeDir, "exit3");
  writeFileSync(failing, "it broke\n");
  requests.push({ kind: "probe", probe: echoProbe, arg: failing });
  const nonce = newNonce();
  const facts = parseGatherOutput(runSh(buildGatherScript(requests, nonce)), nonce, requests);

  it.each(outputs.map(([what, , expected], i) => [what, i, expected] as const))("%s", (_what, i, expected) => {
    expect(facts.probes![`${echoProbe.name}:${join(probeDir, `out${i}`)}`]).toEqual({
      ok: true,
      value: { raw: expected },
    });
  });

  it("a probe that exits non-zero is a failed probe with its output as the error", () => {
    expect(facts.probes![`${echoProbe.name}:${failing}`]).toEqual({ ok: false, error: "it broke" });
  });
});

describe("live sysctl values: one grep for all", () => {
  const N = "bbbbbbbbbbbbbbbb";
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const req = (...keys: string[]): FactRequest[] => keys.map((key) => ({ kind: "sysctl", key }));

  it.each<[string, FactRequest[], string, string, Record<string, string | null>]>([
    [
      "one value, tabs kept",
      req("net.ipv4.ip_local_port_range"),
      `@@${N} f0 live\n\n`,
      "/proc/sys/net/ipv4/ip_local_port_range:32768\t60999\n",
      { "net.ipv4.ip_local_port_range": "32768\t60999" },
    ],
    [
      "an empty value (the kernel prints a lone newline)",
      req("net.ipv4.ip_local_reserved_ports"),
      `@@${N} f0 live\n\n`,
      "/proc/sys/net/ipv4/ip_local_reserved_ports:\n",
      { "net.ipv4.ip_local_reserved_ports": "" },
    ],
    ["a readable file with no line at all", req("a.b"), `@@${N} f0 live\n\n`, "", { "a.b": "" }],
    [
      "several lines of one value",
      req("a.b"),
      `@@${N} f0 live\n\n`,
      "/proc/sys/a/b:x\n/proc/sys/a/b:y\n",
      { "a.b": "x\ny" },
    ],
    [
      "a path that starts like another path",
      req("a.b", "a.b_max"),
      `@@${N} f0 live\n\n@@${N} f1 live\n\n`,
      "/proc/sys/a/b_max:9\n/proc/sys/a/b:1\n",
      { "a.b": "1", "a.b_max": "9" },
    ],
    [
      "a value holding a colon and the path",
      req("a.b"),
      `@@${N} f0 live\n\n`,
      "/proc/sys/a/b:/proc/sys/a/b:1\n",
      { "a.b": "/proc/sys/a/b:1" },
    ],
    [
      "absent next to live",
      req("a.b", "c.d"),
      `@@${N} f0 absent\n\n@@${N} f1 live\n\n`,
      "/proc/sys/c/d:2\n",
      { "a.b": null, "c.d": "2" },
    ],
  ])("%s", (_what, requests, records, grepOutput, expected) => {
    const out = `${records}@@${N} sysctls ok\n${b64(grepOutput)}\n`;
    expect(parseGatherOutput(out, N, requests).sysctl).toEqual(expected);
  });

  it("fails when the grep record is missing (output cut short)", () => {
    expect(() => parseGatherOutput(`@@${N} f0 live\n\n`, N, req("a.b"))).toThrow(
      "no answer for the live sysctl values (output cut short?)",
    );
  });

  it("reads real values with one grep, whatever their number", () => {
    const keys = [
      "net.ipv4.ip_local_port_range",
      "net.ipv4.tcp_syncookies",
      "net.core.somaxconn",
      "net.ipv4.provision_no_such_key",
    ];
    const nonce = newNonce();
    const facts = parseGatherOutput(runSh(buildGatherScript(req(...keys), nonce)), nonce, req(...keys));
    for (const key of keys.slice(0, 3))
      expect(facts.sysctl[key]).toBe(readFileSync(`/proc/sys/${key.replace(/\./g, "/")}`, "utf8").replace(/\n$/, ""));
    expect(facts.sysctl["net.ipv4.provision_no_such_key"]).toBeNull();
  });
});

describe("dedupeRequests / requestId", () => {
  it.each<[FactRequest, string]>([
    [{ kind: "sysctl", key: "net.ipv4.tcp_tw_reuse" }, "sysctl:net.ipv4.tcp_tw_reuse"],
    [{ kind: "file", path: "/etc/x" }, "file:/etc/x"],
    [{ kind: "listening-ports" }, "listening-ports"],
  ])("%j → %s", (req, id) => {
    expect(requestId(req)).toBe(id);
  });

  it("keeps the first position of each request", () => {
    const reqs: FactRequest[] = [
      { kind: "sysctl", key: "a.b" },
      { kind: "listening-ports" },
      { kind: "file", path: "/f" },
      { kind: "sysctl", key: "a.b" },
      { kind: "listening-ports" },
    ];
    expect(dedupeRequests(reqs)).toEqual([
      { kind: "sysctl", key: "a.b" },
      { kind: "listening-ports" },
      { kind: "file", path: "/f" },
    ]);
  });

  it("builds the same script for duplicated requests", () => {
    const a: FactRequest[] = [{ kind: "sysctl", key: "a.b" }];
    expect(buildGatherScript([...a, ...a], "n")).toBe(buildGatherScript(a, "n"));
  });
});

function allPorts(procNet: string): number[] {
  const { tcp, udp } = parseListeningPorts(procNet);
  return [...new Set([...tcp, ...udp])];
}
