import { readFileSync } from "node:fs";
import { CAPACITY_HELPER_FILE } from "../installRoot.js";
import { shQuote } from "../transport/shell.js";
import { CapacityError } from "./facts.js";

/** Goes to the helper's argv as JSON. */
interface HelperConfig {
  dst: string;
  port: number;
  processes: number;
  hardSeconds: number;
}

export interface ClientConfig extends HelperConfig {
  targets: number[];
  /** Empty: the kernel picks one. */
  sources: string[];
  inFlight: number;
  connectTimeoutSeconds: number;
  waitListenerSeconds: number;
  rampSeconds: number;
  holdSeconds: number;
}

export interface ServerConfig extends HelperConfig {
  backlog: number;
  idleSeconds: number;
}

export interface ClientResult {
  /** null: died without reporting. */
  workers: Array<{
    held: number;
    target: number;
    stop: string;
    errors: Record<string, number>;
    nofile: number[];
    perSource: Array<{ source: string | null; held: number; stop: string | null }>;
    rampSeconds: number;
  } | null>;
  rampSeconds: number;
  establishedAtHoldStart: number | null;
  establishedAtHoldEnd: number | null;
  holdSeconds: number;
  killedWorkers: number;
}

export interface ServerResult {
  workers: Array<{ accepted: number; peak: number; errors: Record<string, number>; nofile: number[] } | null>;
  /** Deltas of the TcpExt listen-queue counters over the probe. */
  netstat: Record<string, number>;
  killedWorkers: number;
}

export interface CleanupResult {
  /** Helpers found (and killed), and left after the kill (must be 0). */
  found: number;
  left: number;
  /** On the probe's port, any state; null without `ss`. */
  sockets: number | null;
}

const HEREDOC_END = "PROVISION_PROBE_HELPER_END";
/** For a helper that ignores SIGTERM at the hard deadline. */
const KILL_GRACE_SECONDS = 5;

let helper: string | undefined;

/** Read from the install root: tsc copies no .py file into dist/. */
export function helperSource(): string {
  try {
    helper ??= readFileSync(CAPACITY_HELPER_FILE, "utf8");
  } catch (err) {
    throw new CapacityError(
      `cannot read the probe's helper ${CAPACITY_HELPER_FILE} (${(err as NodeJS.ErrnoException).code}); the installation is incomplete`,
    );
  }
  return helper;
}

/** Under `timeout` where it exists; the helper's own alarm is the second defence. */
export function helperScript(marker: string, mode: "client" | "server", config: ClientConfig | ServerConfig): string {
  if (helperSource().split("\n").includes(HEREDOC_END))
    throw new Error("the helper source contains its here-document terminator");
  const argv = ["python3", "-", marker, mode, JSON.stringify(config)].map(shQuote).join(" ");
  return [
    "set -u",
    "command -v python3 >/dev/null 2>&1 || { echo 'python3 is not installed' >&2; exit 127; }",
    `set -- ${argv}`,
    `if command -v timeout >/dev/null 2>&1; then set -- timeout -k ${KILL_GRACE_SECONDS} ${config.hardSeconds + 10} "$@"; fi`,
    `exec "$@" <<'${HEREDOC_END}'`,
    helperSource().trimEnd(),
    HEREDOC_END,
  ].join("\n");
}

/** Kills helpers by their marker (pgrep, or a /proc scan without procps), then counts what is left. */
export function cleanupScript(marker: string, socketFilter: string | null): string {
  return [
    "set -u",
    `m=${shQuote(marker)}`,
    "pids() {",
    '  if command -v pgrep >/dev/null 2>&1; then pgrep -f -- "$m"; return 0; fi',
    "  for f in /proc/[0-9]*/cmdline; do",
    '    case "$(tr \'\\0\' \' \' < "$f" 2>/dev/null)" in *"$m"*) p=${f#/proc/}; echo "${p%/cmdline}";; esac',
    "  done",
    "}",
    "found=$(pids | wc -l)",
    'if [ "$found" -gt 0 ]; then kill -KILL $(pids) 2>/dev/null; sleep 1; fi',
    "left=$(pids | wc -l)",
    socketFilter !== null
      ? `if command -v ss >/dev/null 2>&1; then sockets=$(ss -Htan ${shQuote(socketFilter)} | wc -l); else sockets=; fi`
      : "sockets=",
    'printf \'PROBE-CLEANUP %s %s %s %s\\n\' "$m" "$found" "$left" "$sockets"',
  ].join("\n");
}

export function clientSocketFilter(dst: string, port: number): string {
  return `( dst ${dst.includes(":") ? `[${dst}]` : dst} and dport = :${port} )`;
}

export function serverSocketFilter(port: number): string {
  return `( sport = :${port} )`;
}

export function parseCleanup(stdout: string, marker: string, host: string): CleanupResult {
  const line = stdout.split("\n").find((l) => l.startsWith(`PROBE-CLEANUP ${marker} `));
  const m = line ? /^PROBE-CLEANUP \S+ (\d+) (\d+) ?(\d*)$/.exec(line.trim()) : null;
  if (!m) throw new CapacityError(`${host}: the cleanup check printed no result: ${stdout.trim() || "(nothing)"}`);
  return { found: Number(m[1]), left: Number(m[2]), sockets: m[3] === "" ? null : Number(m[3]) };
}

export function outputTail(stdout: string, stderr: string): string {
  return stderr.trim().split("\n").slice(-6).join("\n") || stdout.trim().slice(-400);
}

/** Other lines on stdout are ignored. */
function resultJson(stdout: string, stderr: string, marker: string, host: string): unknown {
  const prefix = `PROBE-RESULT ${marker} `;
  const line = stdout.split("\n").find((l) => l.startsWith(prefix));
  if (!line) {
    const why = outputTail(stdout, stderr) || "(no output)";
    throw new CapacityError(`${host}: the probe helper ended without a result:\n${why}`);
  }
  try {
    return JSON.parse(line.slice(prefix.length));
  } catch {
    throw new CapacityError(`${host}: the probe helper printed a malformed result`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === "number";
const isCount = (v: unknown) => isNumber(v) && Number.isInteger(v) && v >= 0;
const isCounts = (v: unknown) => isObject(v) && Object.values(v).every(isNumber);
const isNofile = (v: unknown) => Array.isArray(v) && v.every(isNumber);
const isStringOrNull = (v: unknown) => v === null || typeof v === "string";
const isCountOrNull = (v: unknown) => v === null || isCount(v);

function isClientWorker(v: unknown): boolean {
  return (
    isObject(v) &&
    isCount(v.held) &&
    isCount(v.target) &&
    typeof v.stop === "string" &&
    isCounts(v.errors) &&
    isNofile(v.nofile) &&
    isNumber(v.rampSeconds) &&
    Array.isArray(v.perSource) &&
    v.perSource.every((p) => isObject(p) && isStringOrNull(p.source) && isCount(p.held) && isStringOrNull(p.stop))
  );
}

function isServerWorker(v: unknown): boolean {
  return isObject(v) && isCount(v.accepted) && isCount(v.peak) && isCounts(v.errors) && isNofile(v.nofile);
}

export function parseClientResult(stdout: string, stderr: string, marker: string, host: string): ClientResult {
  const r = resultJson(stdout, stderr, marker, host);
  const ok =
    isObject(r) &&
    Array.isArray(r.workers) &&
    r.workers.every((w) => w === null || isClientWorker(w)) &&
    isNumber(r.rampSeconds) &&
    isCountOrNull(r.establishedAtHoldStart) &&
    isCountOrNull(r.establishedAtHoldEnd) &&
    isNumber(r.holdSeconds) &&
    isCount(r.killedWorkers);
  if (!ok) throw new CapacityError(`${host}: the client helper's result has an unexpected shape`);
  return r as unknown as ClientResult;
}

export function parseServerResult(stdout: string, stderr: string, marker: string, host: string): ServerResult {
  const r = resultJson(stdout, stderr, marker, host);
  if (isObject(r) && typeof r.error === "string")
    throw new CapacityError(`${host}: ${r.error}; pick a free port with --port`);
  const ok =
    isObject(r) &&
    Array.isArray(r.workers) &&
    r.workers.every((w) => w === null || isServerWorker(w)) &&
    isCounts(r.netstat) &&
    isCount(r.killedWorkers);
  if (!ok) throw new CapacityError(`${host}: the server helper's result has an unexpected shape`);
  return r as unknown as ServerResult;
}
