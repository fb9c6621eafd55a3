import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { constants as osConstants, loadavg, tmpdir } from "node:os";
import { ownerGroupOf, staleFleetPrefixes } from "../test/fleet/fleet.js";
import { join, relative, resolve } from "node:path";
import {
  countsOf,
  isGreen,
  parseSoakOptions,
  runLines,
  SoakOptionError,
  summaryLine,
  type RunResult,
  type SoakOptions,
  type VitestJson,
} from "./soakCore.js";
import { plural } from "../src/output/words.js";

/**
 * `npm run test:soak -- --runs K [--busy-cores N]`: the whole suite K times in a row, one line per
 * run (result, counts, duration, each failure, anything the run left on the machine), optionally
 * beside N busy loops that keep the cores loaded for the whole soak. Exit 0 only when every run
 * is green. Logs and vitest's JSON per run go to .provision/soak/<time>/.
 */
const ROOT = resolve(import.meta.dirname, "..", "..");
const VITEST = join(ROOT, "node_modules", "vitest", "vitest.mjs");
/** A run that takes longer than this is stuck (CI's whole budget is 15 minutes). */
const RUN_TIMEOUT_MS = 30 * 60_000;

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * What a run left behind: fleets created in its process group whose creator is gone (network
 * namespaces, interfaces, mounts, sshd processes, directories, routes), and files in the run's own
 * TMPDIR. Whatever other runs on the machine do never counts against this one.
 */
function leftBehind(tmp: string, group: number | undefined): string[] {
  const fleets = staleFleetPrefixes()
    .filter((p) => group !== undefined && ownerGroupOf(p) === group)
    .map((p) => `fleet ${p} (its owner is gone; remove it: node dist/test/fleet/cli.js cleanup)`);
  const scratch = existsSync(tmp) ? readdirSync(tmp).map((n) => `${join(tmp, n)} (a scratch file or directory)`) : [];
  return [...fleets, ...scratch];
}

function membersOf(group: number): Array<{ pid: number; comm: string }> {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .flatMap((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return Number(pgrp) === group && state !== "Z"
          ? [{ pid: Number(pid), comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) }]
          : [];
      } catch {
        return [];
      }
    });
}

/**
 * Processes of the run's process group still alive after vitest ended: given time to finish
 * (a worker removing its fleet after SIGTERM), then reported as left behind (a CLI a timed-out
 * test never killed, say) and killed, so they can't disturb the next run.
 */
async function strays(group: number | undefined): Promise<string[]> {
  if (group === undefined) return [];
  for (const deadline = Date.now() + STRAY_GRACE_MS; membersOf(group).length > 0 && Date.now() < deadline;)
    await new Promise((r) => setTimeout(r, 100));
  const found = membersOf(group);
  signalRun(group, "SIGKILL");
  return found.map(
    (p) => `process ${p.pid} (${p.comm}) still running ${STRAY_GRACE_MS / 1000} s after vitest ended; killed`,
  );
}

/** One busy loop per core to load: plain CPU work in a separate process, as a noisy neighbour would be. */
function startBusyLoops(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => {
    const child = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
    child.on("error", () => undefined);
    return child;
  });
}

/** CPU seconds a process has used so far (user + system). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return 0;
  }
}

let ticks: number | undefined;
function clockTicks(): number {
  ticks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  return ticks;
}

/**
 * The process group of the run in progress: ended with the soak, also on Ctrl-C. SIGTERM first:
 * the fleets' signal handlers remove their namespaces and processes.
 */
let currentRun: number | undefined;
const TERM_GRACE_MS = 30_000;
const STRAY_GRACE_MS = 10_000;
function signalRun(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function runSuite(index: number, opts: SoakOptions, dir: string): Promise<RunResult> {
  const log = join(dir, `run-${index}.log`);
  const reportFile = join(dir, `run-${index}.json`);
  // Its own TMPDIR: whatever the tests leave in it is theirs, whatever else runs on the machine.
  const tmp = mkdtempSync(join(tmpdir(), `provision-soak-run-${index}-`));
  const out = openSync(log, "w");
  const started = Date.now();
  return new Promise((done) => {
    // Its own process group, so a stuck run is killed with everything it started.
    const child = spawn(
      process.execPath,
      [VITEST, "run", "--reporter=default", "--reporter=json", `--outputFile=${reportFile}`, ...opts.vitestArgs],
      {
        cwd: ROOT,
        stdio: ["ignore", out, out],
        detached: true,
        env: { ...process.env, CI: "1", TMPDIR: tmp },
      },
    );
    closeSync(out);
    currentRun = child.pid;
    let timedOut = false;
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      signalRun(child.pid, "SIGTERM");
      killer = setTimeout(() => signalRun(child.pid, "SIGKILL"), TERM_GRACE_MS);
    }, RUN_TIMEOUT_MS);
    child.on("close", async (code) => {
      clearTimeout(timer);
      clearTimeout(killer);
      const stray = await strays(child.pid);
      currentRun = undefined;
      let counts = null;
      try {
        counts = countsOf(JSON.parse(readFileSync(reportFile, "utf8")) as VitestJson, ROOT);
      } catch {
        // no report: the runner crashed or was killed
      }
      const result = {
        index,
        counts,
        exitCode: code,
        durationMs: Date.now() - started,
        timedOut,
        leftovers: [...stray, ...leftBehind(tmp, child.pid)],
        load1: loadavg()[0] ?? 0,
        log: relative(ROOT, log),
      };
      rmSync(tmp, { recursive: true, force: true });
      done(result);
    });
  });
}

async function main(): Promise<number> {
  let opts: SoakOptions;
  try {
    opts = parseSoakOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof SoakOptionError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (!existsSync(VITEST)) {
    process.stderr.write(
      "soak: vitest is not installed; run `bash scripts/setup.sh` (npm run test:soak does) first.\n",
    );
    return 1;
  }
  const dir = join(ROOT, ".provision", "soak", new Date().toISOString().replace(/[:.]/g, "-"));
  mkdirSync(dir, { recursive: true });
  const what = opts.vitestArgs.length > 0 ? `vitest ${opts.vitestArgs.join(" ")}` : "the whole suite";
  say(
    `soak: ${plural(opts.runs, "run")} of ${what}${opts.busyCores > 0 ? `, ${plural(opts.busyCores, "busy loop")} beside it` : ""}; logs in ${relative(ROOT, dir)}`,
  );

  const busy = startBusyLoops(opts.busyCores);
  const stopBusy = () => busy.forEach((b) => b.kill("SIGKILL"));
  process.on("exit", () => {
    stopBusy();
    signalRun(currentRun, "SIGTERM");
  });
  // Ctrl-C: the run in progress gets SIGTERM (its fleets remove themselves), is awaited, and its
  // TMPDIR removed, like any other run; a second Ctrl-C leaves at once.
  let interrupted: NodeJS.Signals | undefined;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (interrupted) process.exit(128 + osConstants.signals[signal]);
      interrupted = signal;
      say(`soak: ${signal}: stopping the run in progress (again to leave at once)`);
      const run = currentRun;
      signalRun(run, "SIGTERM");
      setTimeout(() => signalRun(run, "SIGKILL"), TERM_GRACE_MS).unref();
    });
  }
  const busyStarted = Date.now();

  const results: RunResult[] = [];
  for (let i = 1; i <= opts.runs && !interrupted; i++) {
    const r = await runSuite(i, opts, dir);
    results.push(r);
    for (const line of runLines(r, opts.runs)) say(line);
    if (opts.bail && !isGreen(r)) break;
  }
  const busyCpu =
    busy.length > 0
      ? (busy.reduce((sum, b) => sum + cpuSeconds(b.pid), 0) / ((Date.now() - busyStarted) / 1000)) * 100
      : null;
  stopBusy();
  const summary = summaryLine(results, opts.busyCores, busyCpu);
  say(summary);
  writeFileSync(
    join(dir, "summary.json"),
    `${JSON.stringify({ options: opts, busyCpuPercent: busyCpu, results, summary }, null, 2)}\n`,
  );
  if (interrupted) return 128 + osConstants.signals[interrupted];
  return results.every(isGreen) && results.length === opts.runs ? 0 : 1;
}

process.exitCode = await main();
