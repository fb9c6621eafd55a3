import { relative } from "node:path";
import { plural } from "../src/output/words.js";

/**
 * The pure half of `npm run test:soak`: options, what one vitest run reported, what a run left
 * behind on the machine, and the lines printed. scripts/soak.ts does the I/O.
 */

export interface SoakOptions {
  runs: number;
  /** CPU burners (one busy loop each) kept running for the whole soak: a busy machine. */
  busyCores: number;
  /** Stop after the first red run. */
  bail: boolean;
  /** Extra arguments for vitest (a file filter, say), after `--`. */
  vitestArgs: string[];
}

export const MAX_RUNS = 100;
export const USAGE = "usage: npm run test:soak -- [--runs K] [--busy-cores N] [--bail] [-- VITEST_ARGS…]";

export class SoakOptionError extends Error {}

export function parseSoakOptions(argv: string[]): SoakOptions {
  const opts: SoakOptions = { runs: 5, busyCores: 0, bail: false, vitestArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new SoakOptionError(`${arg} needs a value. ${USAGE}`);
      return v;
    };
    if (arg === "--") {
      opts.vitestArgs = argv.slice(i + 1);
      break;
    } else if (arg === "--runs") opts.runs = count(arg, value(), 1, MAX_RUNS);
    else if (arg === "--busy-cores") opts.busyCores = count(arg, value(), 0, 64);
    else if (arg === "--bail") opts.bail = true;
    else throw new SoakOptionError(`unknown option ${JSON.stringify(arg)}. ${USAGE}`);
  }
  return opts;
}

function count(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new SoakOptionError(
      `${flag} must be a whole number from ${min} to ${max}, not ${JSON.stringify(text)}. ${USAGE}`,
    );
  }
  return Number(text);
}

/** The parts of vitest's JSON reporter output the soak reads. */
export interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numFailedTestSuites?: number;
  testResults: Array<{
    name: string;
    status: string;
    message?: string;
    assertionResults: Array<{ fullName: string; status: string; failureMessages?: string[] }>;
  }>;
}

export interface Failure {
  file: string;
  test: string;
  /** The first line of the failure message. */
  message: string;
}

export interface TestCounts {
  passed: number;
  failed: number;
  skipped: number;
  failures: Failure[];
}

/** Counts and every failure, including a file that failed outside any test (a hook, an import). */
export function countsOf(report: VitestJson, root: string): TestCounts {
  const failures: Failure[] = [];
  for (const file of report.testResults) {
    const name = relative(root, file.name);
    const failedTests = file.assertionResults.filter((a) => a.status === "failed");
    for (const a of failedTests)
      failures.push({ file: name, test: a.fullName, message: firstLine(a.failureMessages?.[0] ?? "") });
    if (file.status === "failed" && failedTests.length === 0)
      failures.push({ file: name, test: "(the file itself)", message: firstLine(file.message ?? "") });
  }
  return {
    passed: report.numPassedTests,
    failed: report.numFailedTests,
    skipped: report.numPendingTests + report.numTodoTests,
    failures,
  };
}

function firstLine(text: string): string {
  const line = text.split("\n").find((l) => l.trim() !== "") ?? "(no message)";
  return line.length > 300 ? `${line.slice(0, 297)}…` : line.trim();
}

export interface RunResult {
  index: number;
  /** null when the runner ended without a report (killed, crashed, timed out). */
  counts: TestCounts | null;
  exitCode: number | null;
  durationMs: number;
  timedOut: boolean;
  leftovers: string[];
  load1: number;
  log: string;
}

export function isGreen(r: RunResult): boolean {
  return (
    r.exitCode === 0 &&
    r.counts !== null &&
    r.counts.failed === 0 &&
    r.counts.failures.length === 0 &&
    r.leftovers.length === 0 &&
    !r.timedOut
  );
}

export function runLines(r: RunResult, total: number): string[] {
  const head = `run ${r.index}/${total}: ${isGreen(r) ? "green" : "RED"}`;
  const counts = r.counts
    ? `${r.counts.passed} passed, ${r.counts.failed} failed, ${r.counts.skipped} skipped`
    : "no report";
  const lines = [`${head} · ${counts} · ${seconds(r.durationMs)} · load ${r.load1.toFixed(1)} at the end`];
  if (r.timedOut) lines.push("  timed out and was killed");
  else if (r.exitCode !== 0 && (r.counts?.failures.length ?? 0) === 0)
    lines.push(`  vitest exited ${r.exitCode ?? "without a code"}`);
  for (const f of r.counts?.failures ?? []) lines.push(`  FAIL ${f.file} > ${f.test}`, `       ${f.message}`);
  for (const l of r.leftovers) lines.push(`  left behind: ${l}`);
  if (!isGreen(r)) lines.push(`  log: ${r.log}`);
  return lines;
}

export function summaryLine(results: RunResult[], busyCores: number, busyCpuPercent: number | null): string {
  const green = results.filter(isGreen).length;
  const durations = results.map((r) => r.durationMs).sort((a, b) => a - b);
  const median = durations[Math.floor((durations.length - 1) / 2)] ?? 0;
  const range =
    durations.length > 0
      ? `${seconds(durations[0]!)}–${seconds(durations.at(-1)!)}, median ${seconds(median)}`
      : "none";
  const busy =
    busyCores === 0
      ? "no extra load"
      : `${plural(busyCores, "busy loop")} beside it${busyCpuPercent === null ? "" : ` (they got ${busyCpuPercent.toFixed(0)}% CPU of ${busyCores * 100}%)`}`;
  return `soak: ${green} of ${results.length} runs green · durations ${range} · ${busy}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(0)} s`;
}
