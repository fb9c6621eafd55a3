import { fmtMb, fmtRatio, fmtSeconds, textTable, type TargetResult } from "./benchCore.js";

/**
 * The pure half of the scale part of `npm run bench`: `provision run` against a simulated fleet
 * of 1,000 to 10,000 hosts (test/fleet/sim: one ssh2 server answering as every host, replaying a
 * real fleet host's recorded answers), so the controller, its handshakes, parsing, planning,
 * batching, records and output are real at sizes no real fleet here reaches.
 */

export const DEFAULT_SCALE_SIZES = [1_000, 5_000, 10_000];
export const MAX_SCALE_HOSTS = 50_000;

export const SCALE_TARGETS = {
  /** Peak RSS of the first run at SCALE_TARGET_HOSTS, in MB. */
  memoryMb: 500,
  /** Time per host of the first run at SCALE_TARGET_HOSTS ÷ at SCALE_BASE_HOSTS. */
  timePerHostRatio: 1.2,
} as const;
export const SCALE_TARGET_HOSTS = 10_000;
export const SCALE_BASE_HOSTS = 1_000;

export interface ScaleRun {
  wallMs: number;
  exitCode: number;
  peakRssKb?: number;
  /** The run's own last line: "Run: 10000 changed, 0 unchanged, …". */
  summary?: string;
  /** Bytes provision printed (stdout and stderr). */
  outputBytes: number;
  /** Bytes of the run record it wrote. */
  recordBytes: number;
}

export interface ScaleSize {
  hosts: number;
  forks: number;
  /** Every host changes. */
  firstRun: ScaleRun;
  /** Nothing to do on any host. */
  noop: ScaleRun;
  /** What the simulated fleet saw over both runs. */
  sim: { connections: number; peakOpen: number; execs: number; unknownScripts: number };
  /** Why this size's numbers can't be trusted (a host failed, a script was not in the recording), if so. */
  problems: string[];
}

export interface ScaleResult {
  /** The real fleet host the answers were recorded from, and how many distinct scripts. */
  recording: { from: string; scripts: number };
  sizes: ScaleSize[];
}

/** Each size's problems: the runs must do exactly what a real fleet of alike hosts would. */
export function scaleProblems(size: Omit<ScaleSize, "problems">): string[] {
  const n = size.hosts;
  const problems: string[] = [];
  const expect = (label: string, run: ScaleRun, summary: string) => {
    if (run.exitCode !== 0) problems.push(`${label} exited ${run.exitCode}`);
    if (run.summary !== summary) problems.push(`${label} said "${run.summary ?? "(nothing)"}", not "${summary}"`);
  };
  expect("the first run", size.firstRun, `Run: ${n} changed, 0 unchanged, 0 failed, 0 unreachable.`);
  expect("the no-op run", size.noop, `Run: 0 changed, ${n} unchanged, 0 failed, 0 unreachable.`);
  if (size.sim.unknownScripts > 0)
    problems.push(`${size.sim.unknownScripts} scripts were not in the recording (record again: the scripts changed)`);
  return problems;
}

export function perHostMs(run: ScaleRun, hosts: number): number {
  return run.wallMs / hosts;
}

/** The two scale targets: peak RSS at 10,000 hosts, and time per host at 10,000 against 1,000. */
export function scaleTargets(result: ScaleResult): TargetResult[] {
  const at = (hosts: number) => result.sizes.find((s) => s.hosts === hosts);
  const big = at(SCALE_TARGET_HOSTS);
  const base = at(SCALE_BASE_HOSTS);
  const broken = (s: ScaleSize) => (s.problems.length > 0 ? s.problems.join("; ") : undefined);
  const targets: TargetResult[] = [];
  const memory = {
    name: "peak RSS, first run (simulated fleet)",
    hosts: SCALE_TARGET_HOSTS,
    target: `< ${SCALE_TARGETS.memoryMb} MB`,
  };
  if (!big)
    targets.push({ ...memory, measured: "-", verdict: "SKIP", reason: `${SCALE_TARGET_HOSTS} hosts not measured` });
  else {
    const kb = big.firstRun.peakRssKb;
    const reason = broken(big) ?? (kb === undefined ? "peak RSS not measured" : undefined);
    targets.push({
      ...memory,
      measured: kb === undefined ? "-" : `${fmtMb(kb)} MB`,
      verdict: reason === undefined && kb! / 1024 < SCALE_TARGETS.memoryMb ? "PASS" : "MISS",
      ...(reason ? { reason } : {}),
    });
  }
  const time = {
    name: `time per host, first run, ${SCALE_TARGET_HOSTS} vs ${SCALE_BASE_HOSTS} hosts (simulated fleet)`,
    hosts: SCALE_TARGET_HOSTS,
    target: `<= ${fmtRatio(SCALE_TARGETS.timePerHostRatio)}`,
  };
  if (!big || !base)
    targets.push({
      ...time,
      measured: "-",
      verdict: "SKIP",
      reason: `${SCALE_BASE_HOSTS} and ${SCALE_TARGET_HOSTS} hosts not both measured`,
    });
  else {
    const ratio = perHostMs(big.firstRun, big.hosts) / perHostMs(base.firstRun, base.hosts);
    const reason = broken(big) ?? broken(base);
    targets.push({
      ...time,
      measured: fmtRatio(ratio),
      verdict: reason === undefined && ratio <= SCALE_TARGETS.timePerHostRatio ? "PASS" : "MISS",
      ...(reason ? { reason } : {}),
    });
  }
  return targets;
}

function kb(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function formatScale(result: ScaleResult): string {
  const rows = result.sizes.flatMap((s) =>
    (
      [
        ["first run", s.firstRun],
        ["no-op run", s.noop],
      ] as const
    ).map(([label, r]) => [
      s.hosts.toLocaleString("en-US"),
      label,
      fmtSeconds(r.wallMs),
      `${perHostMs(r, s.hosts).toFixed(2)} ms`,
      r.peakRssKb === undefined ? "-" : `${fmtMb(r.peakRssKb)} MB`,
      kb(r.recordBytes),
      kb(r.outputBytes),
      s.problems.length > 0 ? "PROBLEM" : "ok",
    ]),
  );
  const table = textTable(["hosts", "run", "wall", "per host", "peak RSS", "record", "output", "check"], rows);
  const notes = result.sizes.flatMap((s) => s.problems.map((p) => `  ${s.hosts} hosts: ${p}`));
  const sim = result.sizes
    .map((s) => `${s.hosts}: ${s.sim.connections} connections (at most ${s.sim.peakOpen} open), ${s.sim.execs} scripts`)
    .join("; ");
  return `\nsimulated fleet (answers recorded from ${result.recording.from}, ${result.recording.scripts} scripts), --forks ${result.sizes[0]?.forks ?? "-"}:\n${table}${notes.length > 0 ? `${notes.join("\n")}\n` : ""}  sim: ${sim}\n`;
}
