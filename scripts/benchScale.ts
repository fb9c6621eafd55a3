import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startFleet } from "../test/fleet/fleet.js";
import { recordFromFleet, runProvision, startSimFleet } from "../test/fleet/sim/simFleet.js";
import { scaleProblems, type ScaleResult, type ScaleRun, type ScaleSize } from "./benchScaleCore.js";

/**
 * The scale part of `npm run bench`: record one real fleet host's answers to a first run, a no-op
 * run and a verify (through a recording proxy), then for each size start a simulated fleet of that
 * many hosts and time provision's first run and no-op run against it, with peak RSS
 * (/usr/bin/time), the record's and the output's size.
 */

const TIME_BIN = "/usr/bin/time";
const RUN_TIMEOUT_MS = 1_800_000;
const FORKS = 50;

export async function benchScale(sizes: readonly number[], log: (text: string) => void): Promise<ScaleResult> {
  const work = mkdtempSync(join(tmpdir(), "provision-bench-scale-"));
  try {
    log("scale: recording a real fleet host's answers (1-host fleet, run, run, verify)");
    const fleet = await startFleet({ hosts: 1 });
    let recordingFile: string;
    let scripts: number;
    try {
      const recorded = await recordFromFleet({
        fleetHost: { address: fleet.hosts[0]!.address },
        clientKeyFile: fleet.clientKeyFile,
        knownHostsFile: fleet.knownHostsFile,
        varsFile: join(dirname(fleet.inventoryFile), "group_vars", "fleet.yaml"),
        dir: join(work, "recording"),
      });
      recordingFile = recorded.recordingFile;
      scripts = Object.values(recorded.recording.states).reduce((n, s) => n + Object.keys(s).length, 0);
    } finally {
      await fleet.stop();
    }
    const result: ScaleResult = { recording: { from: "a real fleet host", scripts }, sizes: [] };
    for (const hosts of sizes) result.sizes.push(await benchSize(hosts, recordingFile, join(work, `${hosts}`), log));
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function benchSize(
  hosts: number,
  recordingFile: string,
  dir: string,
  log: (text: string) => void,
): Promise<ScaleSize> {
  log(`scale: ${hosts} simulated hosts`);
  const sim = await startSimFleet({ recordingFile, hosts, dir: join(dir, "sim") });
  try {
    const run = async (label: string): Promise<ScaleRun> => {
      const stateDir = join(dir, `state-${label}`);
      const rssFile = join(dir, `${label}.rss`);
      log(`scale: ${hosts} hosts: provision run --yes (${label})`);
      const r = await runProvision(
        [
          "run",
          sim.inventoryFile,
          "--known-hosts",
          sim.knownHostsFile,
          "--yes",
          "--forks",
          `${FORKS}`,
          "--state-dir",
          stateDir,
        ],
        { prefix: [...sim.nsenterPrefix, TIME_BIN, "-f", "%M", "-o", rssFile], cwd: dir, timeoutMs: RUN_TIMEOUT_MS },
      );
      const rss = existsSync(rssFile) ? Number(readFileSync(rssFile, "utf8").trim().split("\n").pop()) : NaN;
      const records = existsSync(join(stateDir, "runs")) ? readdirSync(join(stateDir, "runs")) : [];
      const summary = r.stdout
        .split("\n")
        .filter((l) => l.startsWith("Run:"))
        .pop();
      return {
        wallMs: r.ms,
        exitCode: r.code ?? 124,
        ...(Number.isFinite(rss) ? { peakRssKb: rss } : {}),
        ...(summary ? { summary } : {}),
        outputBytes: Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr),
        recordBytes: records.reduce((n, f) => n + statSync(join(stateDir, "runs", f)).size, 0),
      };
    };
    const firstRun = await run("first");
    const noop = await run("noop");
    const stats = await sim.stats();
    const measured = {
      hosts,
      forks: FORKS,
      firstRun,
      noop,
      sim: {
        connections: stats.connections,
        peakOpen: stats.peakOpen,
        execs: stats.execs,
        unknownScripts: stats.unknownScripts,
      },
    };
    return { ...measured, problems: scaleProblems(measured) };
  } finally {
    await sim.stop();
  }
}
