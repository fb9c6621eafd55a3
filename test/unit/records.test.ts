import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { newNonce, parseRecords, recordPrelude } from "../../src/remote/records.js";

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

describe("newNonce", () => {
  it("is 16 hex characters and different every time", () => {
    const nonces = Array.from({ length: 50 }, newNonce);
    for (const n of nonces) expect(n).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(nonces).size).toBe(50);
  });
});

describe("parseRecords", () => {
  const N = "0123456789abcdef";

  it.each<[string, string, Array<[string, string, string]>]>([
    ["one record", `@@${N} f0 ok\n${b64("hello")}\n`, [["f0", "ok", "hello"]]],
    [
      "an empty payload line",
      `@@${N} f0 absent\n\n@@${N} f1 ok\n${b64("x")}\n`,
      [
        ["f0", "absent", ""],
        ["f1", "ok", "x"],
      ],
    ],
    [
      "a record with no payload line before the next record",
      `@@${N} f0 absent\n@@${N} f1 ok\n${b64("y")}\n`,
      [
        ["f0", "absent", ""],
        ["f1", "ok", "y"],
      ],
    ],
    ["a record at the very end without payload", `@@${N} c0 ok`, [["c0", "ok", ""]]],
    ["tabs and no final newline kept exactly", `@@${N} f0 ok\n${b64("a\tb\n\tc")}\n`, [["f0", "ok", "a\tb\n\tc"]]],
    ["unicode", `@@${N} f0 ok\n${b64("é — ✓")}\n`, [["f0", "ok", "é — ✓"]]],
    [
      "noise between records",
      `motd line\n@@${N} f0 ok\n${b64("1")}\nsome stderr\n@@${N} f1 ok\n${b64("2")}\n`,
      [
        ["f0", "ok", "1"],
        ["f1", "ok", "2"],
      ],
    ],
    [
      "a record of another nonce",
      `@@ffffffffffffffff f0 ok\n${b64("forged")}\n@@${N} f0 ok\n${b64("real")}\n`,
      [["f0", "ok", "real"]],
    ],
    ["a record line that is not at the start of a line", `x @@${N} f0 ok\n${b64("no")}\n`, []],
    ["a header without a status", `@@${N} f0\n${b64("no")}\n`, []],
    ["nothing", "", []],
  ])("%s", (_what, stdout, expected) => {
    const records = parseRecords(stdout, N);
    expect([...records.values()].map((r) => [r.id, r.status, r.payload])).toEqual(expected);
  });

  it("keeps the last of two records with the same id", () => {
    const records = parseRecords(`@@${N} f0 ok\n${b64("first")}\n@@${N} f0 fail\n${b64("second")}\n`, N);
    expect(records.get("f0")).toMatchObject({ id: "f0", status: "fail", payload: "second" });
  });
});

describe("recordPrelude", () => {
  const nonce = "feedfacecafebeef";

  it("defines rec and b64 with the nonce, strict about unset variables", () => {
    const prelude = recordPrelude(nonce);
    expect(prelude.split("\n")).toEqual([
      "set -u",
      "umask 022",
      `rec() { printf '@@${nonce} %s %s\\n' "$1" "$2"; }`,
      "if base64 -w0 </dev/null >/dev/null 2>&1; then b64() { base64 -w0; echo; }; else b64() { base64 | tr -d '\\n'; echo; }; fi",
    ]);
  });

  it("produces output parseRecords reads back exactly (run with sh)", () => {
    const payload = `${"long line ".repeat(40)}\n\ttab\n@@${nonce} f9 ok\nno final newline`;
    const script = `${recordPrelude(nonce)}\nrec f0 ok; printf '%s' "$P" | b64\nrec f1 absent; echo\nrec f2 ok; printf '' | b64\n`;
    const out = execFileSync("sh", ["-s"], {
      input: script,
      encoding: "utf8",
      env: { PATH: process.env.PATH, LC_ALL: "C", P: payload },
    });
    const records = parseRecords(out, nonce);
    expect([...records.keys()]).toEqual(["f0", "f1", "f2"]);
    expect(records.get("f0")!.payload).toBe(payload);
    expect(records.get("f1")).toEqual({ id: "f1", status: "absent", payload: "", raw: Buffer.alloc(0) });
    expect(records.get("f2")).toEqual({ id: "f2", status: "ok", payload: "", raw: Buffer.alloc(0) });
    // base64 keeps the forged record line inside the payload from being read as a record
    expect(records.has("f9")).toBe(false);
  });

  it("reads back the same where base64 has no -w (old busybox): the tr fallback", () => {
    const dir = mkdtempSync(join(tmpdir(), "records-"));
    try {
      // A base64 that refuses -w like busybox before 1.30, and encodes like GNU otherwise (76-column lines).
      writeFileSync(
        join(dir, "base64"),
        `#!/bin/sh\ncase "$1" in -w*) echo "base64: invalid option -- 'w'" >&2; exit 1;; esac\nexec ${execFileSync("sh", ["-c", "command -v base64"], { encoding: "utf8" }).trim()} "$@"\n`,
        { mode: 0o755 },
      );
      const payload = "x".repeat(200);
      const script = `${recordPrelude(nonce)}\nrec f0 ok; printf '%s' "$P" | b64\n`;
      const out = execFileSync("sh", ["-s"], {
        input: script,
        encoding: "utf8",
        env: { PATH: `${dir}:${process.env.PATH}`, LC_ALL: "C", P: payload },
      });
      expect(out.split("\n")[1]).toBe(b64(payload));
      expect(parseRecords(out, nonce).get("f0")!.payload).toBe(payload);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
