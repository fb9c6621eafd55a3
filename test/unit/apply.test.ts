import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildApplyScript, contentHash, parseApplyOutput } from "../../src/remote/apply.js";
import type { PlannedChange } from "../../src/plan.js";
import { newNonce } from "../../src/remote/records.js";

type FileChange = Extract<PlannedChange, { kind: "file" }>;
type SysctlChange = Extract<PlannedChange, { kind: "sysctl" }>;

const OWNER = userInfo().username;
const GROUP = execFileSync("id", ["-gn"], { encoding: "utf8" }).trim();

function fileChange(
  path: string,
  before: string | null,
  after: string,
  mode = "0644",
  over: Partial<FileChange> = {},
): FileChange {
  return {
    kind: "file",
    path,
    before,
    after,
    mode,
    owner: OWNER,
    group: GROUP,
    description: `write ${path}`,
    role: "test-role",
    ...over,
  };
}

function sysctlChange(key: string, before: string | null, after: string): SysctlChange {
  return { kind: "sysctl", key, before, after, description: `set ${key} live`, role: "test-role" };
}

/** Runs the apply script like the transport does. ONLY for file changes: never let it write sysctls here. */
function runApply(changes: FileChange[]): { stdout: string; nonce: string } {
  const nonce = newNonce();
  const stdout = execFileSync("sh", ["-s"], {
    input: buildApplyScript(changes, nonce),
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" },
  });
  return { stdout, nonce };
}

function allFiles(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[]).map(String).sort();
}

const root = mkdtempSync(join(tmpdir(), "provision-apply-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("buildApplyScript: file changes run locally", () => {
  const newPath = join(root, "etc", "sysctl.d", "60-provision-test.conf");
  const newContent = "# header\tand a tab\nkey = 1024 65535\n# café ✓\nno final newline";
  const stalePath = join(root, "stale.conf");
  const staleContent = "someone edited this\n";
  writeFileSync(stalePath, staleContent, { mode: 0o600 });
  const updatePath = join(root, "update me.conf");
  writeFileSync(updatePath, "old\n", { mode: 0o600 });

  const changes: FileChange[] = [
    fileChange(newPath, null, newContent, "0640"),
    fileChange(stalePath, "what the plan saw\n", "new content\n"),
    fileChange(updatePath, "old\n", "new\n", "0644"),
  ];
  const { stdout, nonce } = runApply(changes);
  const outcomes = parseApplyOutput(stdout, nonce, changes);

  it("creates a file (and its directory) with the exact bytes and mode", () => {
    expect(readFileSync(newPath, "utf8")).toBe(newContent);
    expect(statSync(newPath).mode & 0o777).toBe(0o640);
    expect(statSync(newPath).uid).toBe(userInfo().uid);
    expect(outcomes[0]).toEqual({ change: changes[0], ok: true });
  });

  it("refuses a file whose content is not what the plan saw, and leaves it untouched", () => {
    expect(outcomes[1]!.ok).toBe(false);
    expect(outcomes[1]!.error).toContain("changed since the plan");
    expect(outcomes[1]!.error).toBe(`${stalePath} changed since the plan was made; run plan again`);
    expect(readFileSync(stalePath, "utf8")).toBe(staleContent);
    expect(statSync(stalePath).mode & 0o777).toBe(0o600);
  });

  it("changes nothing more after a refused file: later steps are reported as skipped", () => {
    expect(outcomes[2]).toEqual({ change: changes[2], ok: false, error: "skipped: an earlier step failed" });
    expect(readFileSync(updatePath, "utf8")).toBe("old\n");
    expect(statSync(updatePath).mode & 0o777).toBe(0o600);
  });

  it("replaces content and mode of an existing file", () => {
    const change = fileChange(updatePath, "old\n", "new\n", "0644");
    const run = runApply([change]);
    expect(parseApplyOutput(run.stdout, run.nonce, [change])).toEqual([{ change, ok: true }]);
    expect(readFileSync(updatePath, "utf8")).toBe("new\n");
    expect(statSync(updatePath).mode & 0o777).toBe(0o644);
  });

  it("repairs a file holding bytes that are not UTF-8, by the hash of its raw bytes", () => {
    const path = join(root, "latin1.conf");
    const raw = Buffer.from([0x61, 0xe9, 0x0a]);
    writeFileSync(path, raw);
    const change = {
      ...fileChange(path, raw.toString("utf8"), "fixed\n"),
      beforeSha256: createHash("sha256").update(raw).digest("hex"),
    };
    const run = runApply([change]);
    expect(parseApplyOutput(run.stdout, run.nonce, [change])).toEqual([{ change, ok: true }]);
    expect(readFileSync(path, "utf8")).toBe("fixed\n");
  });

  it("leaves no .provision-tmp-* file behind", () => {
    expect(allFiles(root).filter((f) => f.includes(".provision-tmp-"))).toEqual([]);
  });

  it("refuses to create a file that appeared since the plan (before: null)", () => {
    const change = fileChange(newPath, null, "other\n");
    const run = runApply([change]);
    const [outcome] = parseApplyOutput(run.stdout, run.nonce, [change]);
    expect(outcome!.ok).toBe(false);
    expect(outcome!.error).toContain("changed since the plan");
    expect(readFileSync(newPath, "utf8")).toBe(newContent);
  });

  it("is idempotent: a plan made from the new content applies cleanly", () => {
    const change = fileChange(newPath, newContent, newContent, "0640");
    const run = runApply([change]);
    expect(parseApplyOutput(run.stdout, run.nonce, [change])).toEqual([{ change, ok: true }]);
    expect(readFileSync(newPath, "utf8")).toBe(newContent);
  });

  it("writes an empty file and a path with spaces and quotes", () => {
    const path = join(root, 'it\'s a "file".conf');
    const change = fileChange(path, null, "");
    const run = runApply([change]);
    expect(parseApplyOutput(run.stdout, run.nonce, [change])).toEqual([{ change, ok: true }]);
    expect(readFileSync(path, "utf8")).toBe("");
  });

  it("removes its temp file when a step after the write fails", () => {
    const path = join(root, "bad-owner.conf");
    writeFileSync(path, "keep\n");
    const change = fileChange(path, "keep\n", "replaced\n", "0644", { owner: "provision-no-such-user-x" });
    const run = runApply([change]);
    const [outcome] = parseApplyOutput(run.stdout, run.nonce, [change]);
    expect(outcome!.ok).toBe(false);
    expect(outcome!.error).toMatch(/chown|invalid user/i);
    expect(readFileSync(path, "utf8")).toBe("keep\n");
    expect(allFiles(root).filter((f) => f.includes(".provision-tmp-"))).toEqual([]);
  });

  it("removes temp files a killed writer left in the directory, and only those", () => {
    const dir = join(root, "left behind");
    mkdirSync(dir);
    writeFileSync(join(dir, ".provision-tmp-Ab12Cd"), "half written");
    writeFileSync(join(dir, "other.conf"), "keep\n");
    const change = fileChange(join(dir, "60-provision-x.conf"), null, "x = 1\n");
    const run = runApply([change]);
    expect(parseApplyOutput(run.stdout, run.nonce, [change])).toEqual([{ change, ok: true }]);
    expect(readdirSync(dir).sort()).toEqual(["60-provision-x.conf", "other.conf"]);
  });

  it("never leaves the temp file with a .conf suffix", () => {
    const script = buildApplyScript([fileChange("/etc/sysctl.d/60-provision-x.conf", null, "x\n")], "n");
    expect(script).toContain("mktemp /etc/sysctl.d/.provision-tmp-XXXXXX");
    expect(script).not.toMatch(/provision-tmp-X+\.conf/);
  });
});

describe("buildApplyScript: script text", () => {
  const file = fileChange("/etc/sysctl.d/60-provision-ephemeral-ports.conf", "old\n", "new\n");
  const range = sysctlChange("net.ipv4.ip_local_port_range", "32768 60999", "1024 65535");
  const reuse = sysctlChange("net.ipv4.tcp_tw_reuse", "2", "1");

  it("starts with the record prelude and ends with a newline", () => {
    const script = buildApplyScript([file], "abcd");
    expect(script.startsWith("set -u\numask 022\nrec() { printf '@@abcd %s %s\\n'")).toBe(true);
    expect(script.endsWith("\n")).toBe(true);
  });

  it("applies in plan order (roles order their own steps), keeping each change's id", () => {
    const script = buildApplyScript([file, range, reuse], "n");
    expect(script.indexOf("rec c0 ok")).toBeGreaterThan(-1);
    expect(script.indexOf("rec c0 ok")).toBeLessThan(script.indexOf("rec c1 ok"));
    expect(script.indexOf("rec c1 ok")).toBeLessThan(script.indexOf("rec c2 ok"));
  });

  it("runs a command step with its argv quoted and its exit code checked", () => {
    const cmd = {
      kind: "command" as const,
      argv: ["modprobe", "nf_conntrack", "it's"],
      description: "load",
      role: "r",
    };
    const script = buildApplyScript([cmd], "n");
    expect(script).toContain(`out=$( modprobe nf_conntrack 'it'\\''s' 2>&1 ); rc=$?`);
    const out = parseApplyOutput(
      `@@n c0 fail\n${Buffer.from("rc=1 FATAL: Module nf_conntrack not found").toString("base64")}\n`,
      "n",
      [cmd],
    );
    expect(out).toEqual([{ change: cmd, ok: false, error: "rc=1 FATAL: Module nf_conntrack not found" }]);
  });

  it("checks the current content's sha256 against the plan's before", () => {
    const script = buildApplyScript([file], "n");
    expect(script).toContain(`if [ "$cur" != ${createHash("sha256").update("old\n").digest("hex")} ]`);
    expect(buildApplyScript([fileChange("/x", null, "y")], "n")).toContain('if [ "$cur" != absent ]');
  });

  it.each<[SysctlChange, string[]]>([
    [
      range,
      [
        "sysctl -q -w 'net.ipv4.ip_local_port_range=1024 65535'",
        "printf '%s\\n' '1024 65535' > /proc/sys/net/ipv4/ip_local_port_range",
        "rec c0 ok; b64 < /proc/sys/net/ipv4/ip_local_port_range",
        'rec c0 fail; printf \'rc=%s %s\' "$rc" "$out" | b64',
      ],
    ],
    [
      reuse,
      [
        "sysctl -q -w net.ipv4.tcp_tw_reuse=1",
        "printf '%s\\n' 1 > /proc/sys/net/ipv4/tcp_tw_reuse",
        "b64 < /proc/sys/net/ipv4/tcp_tw_reuse",
      ],
    ],
  ])("sets %j live with sysctl (or /proc/sys) and reads it back", (change, fragments) => {
    const script = buildApplyScript([change], "n");
    for (const f of fragments) expect(script).toContain(f);
    // stderr output counts as failure even with exit status 0
    expect(script).toContain('if [ $rc -eq 0 ] && [ -z "$out" ]; then');
  });

  it("quotes values so they cannot break out of the command", () => {
    const evil = sysctlChange("net.ipv4.x", null, "1'; rm -rf / #");
    const script = buildApplyScript([evil], "n");
    expect(script).toContain(`'net.ipv4.x=1'\\''; rm -rf / #'`);
  });
});

describe("parseApplyOutput", () => {
  const N = "1111111111111111";
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const file = fileChange("/etc/a.conf", null, "a\n");
  const range = sysctlChange("net.ipv4.ip_local_port_range", "32768 60999", "1024 65535");
  const reuse = sysctlChange("net.ipv4.tcp_tw_reuse", "2", "1");

  it.each<[string, string, PlannedChange[], Array<{ ok: boolean; error?: string }>]>([
    [
      "all ok, tab in the read-back",
      `@@${N} c0 ok\n\n@@${N} c1 ok\n${b64("1024\t65535\n")}\n@@${N} c2 ok\n${b64("1\n")}\n`,
      [file, range, reuse],
      [{ ok: true }, { ok: true }, { ok: true }],
    ],
    [
      "the kernel kept another value",
      `@@${N} c0 ok\n${b64("32768\t60999\n")}\n`,
      [range],
      [{ ok: false, error: 'the kernel kept "32768\\t60999" after writing "1024 65535"' }],
    ],
    [
      "a failed sysctl with its message",
      `@@${N} c0 fail\n${b64('rc=0 sysctl: permission denied on key "net.ipv4.tcp_tw_reuse"')}\n`,
      [reuse],
      [{ ok: false, error: 'rc=0 sysctl: permission denied on key "net.ipv4.tcp_tw_reuse"' }],
    ],
    ["a failure without a message", `@@${N} c0 fail\n\n`, [file], [{ ok: false, error: "failed without a message" }]],
    [
      "the script stopped early: missing records are not reached",
      `@@${N} c0 ok\n\n`,
      [file, range, reuse],
      [
        { ok: true },
        { ok: false, error: "not reached: the apply script stopped before this step" },
        { ok: false, error: "not reached: the apply script stopped before this step" },
      ],
    ],
    ["no output at all", "", [file], [{ ok: false, error: "not reached: the apply script stopped before this step" }]],
    [
      "records of another nonce are ignored",
      `@@2222222222222222 c0 ok\n\n`,
      [file],
      [{ ok: false, error: "not reached: the apply script stopped before this step" }],
    ],
  ])("%s", (_what, stdout, changes, expected) => {
    const outcomes = parseApplyOutput(stdout, N, changes);
    expect(outcomes.map((o) => (o.error === undefined ? { ok: o.ok } : { ok: o.ok, error: o.error }))).toEqual(
      expected,
    );
    outcomes.forEach((o, i) => expect(o.change).toBe(changes[i]));
  });
});

describe("contentHash", () => {
  it.each<[string | null, string]>([
    [null, "absent"],
    ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
  ])("%j → %s", (content, hash) => {
    expect(contentHash(content)).toBe(hash);
  });

  it("hashes UTF-8 bytes the way sha256sum does", () => {
    const text = "café\t✓\n";
    const sh = execFileSync("sh", ["-c", "printf '%s' \"$T\" | sha256sum | cut -d' ' -f1"], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, T: text },
    }).trim();
    expect(contentHash(text)).toBe(sh);
  });
});
