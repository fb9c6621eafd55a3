import { createHash } from "node:crypto";
import { dirname } from "node:path";
import type { PlannedChange } from "../plan.js";
import { newNonce, parseRecords, recordPrelude } from "./records.js";
import { sysctlEqual, sysctlProcPath } from "../sysctl/value.js";
import { shJoin, shQuote } from "../transport/shell.js";
import { HostError, type Transport } from "../transport/types.js";

export interface ChangeOutcome {
  change: PlannedChange;
  ok: boolean;
  error?: string;
}

/**
 * One script that makes every change of a host, in plan order: files atomically (temp file in the
 * same directory, chmod/chown, fsync, rename; refused if the file changed since the plan), live
 * values each read back in the same script, commands with their exit code checked. One round trip.
 */
export function buildApplyScript(changes: PlannedChange[], nonce: string): string {
  // After the first failure nothing more is changed, so boot config and live values don't part ways.
  const lines = [recordPrelude(nonce), "failed=0"];
  // Plan order is apply order: a role lists its steps in the order they must happen
  // (e.g. conntrack: module options file, modprobe, then the sysctl that exists only after it).
  changes.forEach((change, index) => {
    const id = `c${index}`;
    const step =
      change.kind === "file"
        ? fileStep(id, change)
        : change.kind === "sysctl"
          ? sysctlStep(id, change.key, change.after)
          : commandStep(id, change.argv);
    lines.push(`if [ $failed -eq 0 ]; then\n${step}\nelse rec ${id} skipped; echo; fi`);
  });
  return `${lines.join("\n")}\n`;
}

function commandStep(id: string, argv: string[]): string {
  return [
    `out=$( ${shJoin(argv)} 2>&1 ); rc=$?`,
    `if [ $rc -eq 0 ]; then rec ${id} ok; echo; else failed=1; rec ${id} fail; printf 'rc=%s %s' "$rc" "$out" | b64; fi`,
  ].join("\n");
}

export function contentHash(content: string | null): string {
  return content === null ? "absent" : createHash("sha256").update(content, "utf8").digest("hex");
}

function fileStep(id: string, c: Extract<PlannedChange, { kind: "file" }>): string {
  const path = shQuote(c.path);
  const dir = shQuote(dirname(c.path));
  const b64 = Buffer.from(c.after, "utf8").toString("base64");
  // The temp name has no .conf suffix, so systemd-sysctl never loads a half-written file.
  const body = [
    "set -e",
    `cur=absent; if [ -e ${path} ]; then cur=$(sha256sum < ${path}); cur=\${cur%% *}; fi`,
    `if [ "$cur" != ${c.beforeSha256 ?? contentHash(c.before)} ]; then echo ${shQuote(`${c.path} changed since the plan was made; run plan again`)} >&2; exit 3; fi`,
    // Each step below that has nothing to do costs no process: a run writes a dozen files per host.
    `[ -d ${dir} ] || mkdir -p ${dir}`,
    // A writer killed between mktemp and mv (SIGKILL, OOM, power loss) skips the EXIT trap and
    // leaves its temp file; the next write into this directory removes such leftovers.
    `for left in ${dir}/.provision-tmp-*; do if [ -e "$left" ]; then rm -f -- "$left"; fi; done`,
    `tmp=$(mktemp ${shQuote(`${dirname(c.path)}/.provision-tmp-XXXXXX`)})`,
    `trap 'rm -f "$tmp"' EXIT`,
    `printf '%s' ${shQuote(b64)} | base64 -d > "$tmp"`,
    `chmod ${shQuote(c.mode)} "$tmp"`,
    `chown ${shQuote(`${c.owner}:${c.group}`)} "$tmp"`,
    `sync "$tmp" 2>/dev/null || true`,
    `mv -f "$tmp" ${path}`,
    "trap - EXIT",
  ].join("\n");
  return `out=$( (\n${body}\n) 2>&1 ); rc=$?\nif [ $rc -eq 0 ]; then rec ${id} ok; echo; else failed=1; rec ${id} fail; printf '%s' "$out" | b64; fi`;
}

function sysctlStep(id: string, key: string, value: string): string {
  const proc = shQuote(sysctlProcPath(key));
  const v = shQuote(value);
  // sysctl can exit 0 and still have failed, so its stderr counts as failure and the value is read back.
  return [
    `if command -v sysctl >/dev/null 2>&1; then out=$(sysctl -q -w ${shQuote(`${key}=${value}`)} 2>&1 >/dev/null); rc=$?; else out=$( { printf '%s\\n' ${v} > ${proc}; } 2>&1 ); rc=$?; fi`,
    `if [ $rc -eq 0 ] && [ -z "$out" ]; then rec ${id} ok; b64 < ${proc}; else failed=1; rec ${id} fail; printf 'rc=%s %s' "$rc" "$out" | b64; fi`,
  ].join("\n");
}

/** Pure: the outcome of each change from the apply script's output. */
export function parseApplyOutput(stdout: string, nonce: string, changes: PlannedChange[]): ChangeOutcome[] {
  const records = parseRecords(stdout, nonce);
  return changes.map((change, index) => {
    const rec = records.get(`c${index}`);
    if (!rec) return { change, ok: false, error: "not reached: the apply script stopped before this step" };
    if (rec.status === "skipped") return { change, ok: false, error: "skipped: an earlier step failed" };
    if (rec.status !== "ok") return { change, ok: false, error: rec.payload.trim() || "failed without a message" };
    if (change.kind === "sysctl") {
      const live = rec.payload.replace(/\n$/, "");
      if (!sysctlEqual(live, change.after)) {
        return {
          change,
          ok: false,
          error: `the kernel kept ${JSON.stringify(live)} after writing ${JSON.stringify(change.after)}`,
        };
      }
    }
    return { change, ok: true };
  });
}

export async function applyChanges(
  transport: Transport,
  changes: PlannedChange[],
  become: boolean,
): Promise<ChangeOutcome[]> {
  if (changes.length === 0) return [];
  const nonce = newNonce();
  const result = await transport.exec(buildApplyScript(changes, nonce), { sudo: become });
  const outcomes = parseApplyOutput(result.stdout, nonce, changes);
  if (result.code !== 0 && outcomes.every((o) => o.ok)) {
    throw new HostError(`apply script exited ${result.code}: ${result.stderr.trim()}`, "command");
  }
  return outcomes;
}
