import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WALL_IDS } from "../../src/status/walls.js";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { inventoryWithOneDown, provision, tempDir } from "./helpers.js";

/**
 * `provision status --format prometheus -o FILE` is for node_exporter's textfile collector: the
 * file is checked by that collector itself (Debian's prometheus-node-exporter, the one users run),
 * scraped over loopback, and compared with `status --json`. A second run on files it must refuse
 * shows that its "no error" means something.
 */

const EXPORTER = "prometheus-node-exporter";
const EXPORTER_PRESENT = (() => {
  const found = spawnSync(EXPORTER, ["--version"], { stdio: "ignore" }).status === 0;
  if (!found)
    console.warn(
      `${EXPORTER} is not installed (scripts/setup.sh installs it): the check of status --format prometheus with node_exporter is skipped`,
    );
  return found;
})();

/** What provision_status_verdict means, as its HELP says. */
const VERDICT_VALUE: Record<string, number> = { ok: 0, warn: 1, critical: 2 };

interface StatusJson {
  summary: { hosts: number; error: number };
  hosts: Array<{
    host: string;
    verdict: string;
    walls: Array<{ wall: string; used: number | null; limit: number | null; percent: number | null; verdict: string }>;
  }>;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of an exposition-format text (what node_exporter serves), comments left out. */
function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g))
      labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** `# HELP` and `# TYPE` of each family node_exporter serves. */
function parseFamilies(text: string): Map<string, { help?: string; type?: string }> {
  const families = new Map<string, { help?: string; type?: string }>();
  for (const m of text.matchAll(/^# (HELP|TYPE) (\S+) ?(.*)$/gm)) {
    const f = families.get(m[2]!) ?? {};
    if (m[1] === "HELP") f.help = m[3]!;
    else f.type = m[3]!;
    families.set(m[2]!, f);
  }
  return families;
}

/** A port nothing listens on right now (another process may still take it before node_exporter does: retried). */
async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return resolve();
    const hard = setTimeout(() => child.kill("SIGKILL"), 3_000);
    child.once("exit", () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

describe.skipIf(!EXPORTER_PRESENT)(
  "status --format prometheus: node_exporter's textfile collector accepts the file",
  () => {
    let fleet: Fleet;
    let dir: string;
    const exporters: ChildProcess[] = [];

    /**
     * Runs node_exporter with only the textfile collector on `textfileDir`, on a free loopback port,
     * scrapes /metrics once and stops it; its whole stderr is returned with what it served.
     */
    async function scrape(textfileDir: string): Promise<{ metrics: string; log: string }> {
      let lastLog = "";
      let lastAnswer = "nothing";
      for (let attempt = 1; attempt <= 5; attempt++) {
        const port = await freeLoopbackPort();
        const child = spawn(
          EXPORTER,
          [
            "--collector.disable-defaults",
            "--collector.textfile",
            `--collector.textfile.directory=${textfileDir}`,
            `--web.listen-address=127.0.0.1:${port}`,
          ],
          { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdio: ["ignore", "ignore", "pipe"] },
        );
        exporters.push(child);
        let log = "";
        child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
        let spawnError: Error | null = null;
        child.on("error", (err) => (spawnError = err));
        try {
          let metrics: string | null = null;
          for (let i = 0; i < 100 && metrics === null; i++) {
            if (spawnError || child.exitCode !== null || child.signalCode !== null) break;
            try {
              const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2_000) });
              const body = await res.text();
              // Whoever answers must be this node_exporter (another process may have taken the port).
              if (res.status === 200 && body.includes("node_exporter_build_info")) metrics = body;
              else lastAnswer = `${res.status}: ${body.slice(0, 500)}`;
            } catch {
              // Not listening yet.
            }
            if (metrics === null) await sleep(100);
          }
          await stopProcess(child);
          if (metrics !== null) return { metrics, log };
          lastLog = spawnError ? String(spawnError) : log;
          // Only a port taken meanwhile is worth another try.
          if (!/address already in use/i.test(log)) break;
        } finally {
          await stopProcess(child);
        }
      }
      throw new Error(`${EXPORTER} did not serve its metrics on loopback (last answer: ${lastAnswer}):\n${lastLog}`);
    }

    beforeAll(async () => {
      fleet = await startFleet({ hosts: 2 });
      dir = tempDir("status-prometheus");
    });
    afterAll(async () => {
      await Promise.all(exporters.map(stopProcess));
      await fleet?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("node_exporter reads every wall of every host from the file, with no error, as --json reports them", async () => {
      const textfiles = join(dir, "textfiles");
      mkdirSync(textfiles);
      const prom = join(textfiles, "provision.prom");
      const common = [fleet.inventoryFile, "--known-hosts", fleet.knownHostsFile, "--window", "0.5"];

      const startedAt = Math.floor(Date.now() / 1000);
      const written = await provision(["status", ...common, "--format", "prometheus", "-o", prom], {
        timeoutMs: 90_000,
      });
      const endedAt = Math.ceil(Date.now() / 1000);
      // 0: every wall ok or warn; 3: one critical. Both mean every host was read.
      expect([0, 3], written.stdout + written.stderr).toContain(written.code);
      expect(written.stderr).toContain(`status of 2 hosts written to ${prom}`);
      expect(written.stdout).toBe("");
      // Written atomically: the file alone, no temp file left beside it.
      expect(readdirSync(textfiles)).toEqual(["provision.prom"]);
      const file = readFileSync(prom, "utf8");

      const json = await provision(["status", ...common, "--json"], { timeoutMs: 90_000 });
      expect([0, 3], json.stderr).toContain(json.code);
      const status = JSON.parse(json.stdout) as StatusJson;
      expect(status.summary).toMatchObject({ hosts: 2, error: 0 });

      const { metrics, log } = await scrape(textfiles);
      const context = `node_exporter log:\n${log}\nfile:\n${file}`;

      // The collector read the file: no error, and it reports the file's mtime.
      expect(metrics, context).toMatch(/^node_textfile_scrape_error 0$/m);
      expect(metrics, context).toMatch(/^node_scrape_collector_success\{collector="textfile"\} 1$/m);
      expect(metrics).toContain(`node_textfile_mtime_seconds{file="${prom}"}`);
      expect(log, context).not.toMatch(/level=error/i);
      expect(log, context).not.toMatch(/HELP|TYPE|parse/);

      // Our HELP and TYPE came through, not the collector's stand-in ("Metric read from …").
      const families = parseFamilies(metrics);
      for (const [name, f] of parseFamilies(file)) {
        expect(name).toMatch(/^provision_status_/);
        expect(families.get(name), name).toEqual(f);
        expect(f.type).toBe("gauge");
      }

      expect(metrics).toMatch(/^provision_status_up\{host="h1"\} 1$/m);
      expect(metrics).toMatch(/^provision_status_up\{host="h2"\} 1$/m);

      const samples = parseSamples(metrics).filter((s) => s.name.startsWith("provision_status_"));
      // Everything in the file was served, and nothing else under our prefix.
      expect(samples.length, context).toBe(parseSamples(file).length);
      const one = (name: string, labels: Record<string, string>) => {
        const found = samples.filter(
          (s) =>
            s.name === `provision_status_${name}` &&
            Object.keys(s.labels).length === Object.keys(labels).length &&
            Object.entries(labels).every(([k, v]) => s.labels[k] === v),
        );
        expect(found.length, `${name} ${JSON.stringify(labels)}`).toBeLessThanOrEqual(1);
        return found[0];
      };

      const last = one("last_run_timestamp_seconds", {});
      expect(last, "provision_status_last_run_timestamp_seconds").toBeDefined();
      expect(last!.value).toBeGreaterThanOrEqual(startedAt);
      expect(last!.value).toBeLessThanOrEqual(endedAt);

      expect(status.hosts.map((h) => h.host).sort()).toEqual(["h1", "h2"]);
      for (const h of status.hosts) {
        expect(h.walls.map((w) => w.wall).sort()).toEqual([...WALL_IDS].sort());
        for (const wallId of WALL_IDS) {
          const w = h.walls.find((x) => x.wall === wallId)!;
          const labels = { host: h.host, wall: wallId };
          const where = `${h.host} ${wallId}: json ${JSON.stringify(w)}`;

          const verdict = one("verdict", labels);
          expect(verdict, where).toBeDefined();
          // The fleet's hosts share the machine's process table, so the open-files and file-table walls
          // move with whatever other suites run beside this one: two reads agree only on the other walls.
          const machineWide = wallId === "open-files" || wallId === "file-table";
          if (!machineWide) expect(verdict!.value, where).toBe(VERDICT_VALUE[w.verdict]);

          const ratio = one("ratio", labels);
          if (w.percent === null) {
            // No number for this wall here (orphans' limit in a network namespace, conntrack without the module).
            expect(ratio, where).toBeUndefined();
            continue;
          }
          expect(ratio, where).toBeDefined();
          expect(ratio!.value, where).toBeGreaterThanOrEqual(0);
          expect(ratio!.value, where).toBeLessThanOrEqual(1);
          // A second read a moment later: sockets move a little.
          if (!machineWide) expect(Math.abs(ratio!.value - w.percent / 100), where).toBeLessThanOrEqual(0.02);
          // And within the same read, the ratio is used / limit (written to 6 significant digits).
          const used = one("used", labels);
          const limit = one("limit", labels);
          expect(used, where).toBeDefined();
          expect(limit, where).toBeDefined();
          const expected = limit!.value === 0 ? 0 : used!.value / limit!.value;
          expect(Math.abs(ratio!.value - expected), where).toBeLessThanOrEqual(expected * 1e-5 + 1e-12);
        }
      }
    });

    it("a host that cannot be read is provision_status_up 0, with no wall series, and the file is still accepted", async () => {
      const textfiles = join(dir, "textfiles-down");
      mkdirSync(textfiles);
      const prom = join(textfiles, "provision.prom");
      const inventory = inventoryWithOneDown(fleet, dir);
      const r = await provision(
        [
          "status",
          inventory,
          "--known-hosts",
          fleet.knownHostsFile,
          "--window",
          "0.5",
          "--format",
          "prometheus",
          "-o",
          prom,
        ],
        { timeoutMs: 60_000 },
      );
      // 1: a host could not be read (3 would mean a critical wall on h1, which an idle host has not).
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toContain(`status of 2 hosts written to ${prom}`);

      const { metrics, log } = await scrape(textfiles);
      expect(metrics, log).toMatch(/^node_textfile_scrape_error 0$/m);
      expect(log).not.toMatch(/level=error/i);
      expect(metrics).toMatch(/^provision_status_up\{host="h1"\} 1$/m);
      expect(metrics).toMatch(/^provision_status_up\{host="down"\} 0$/m);
      const samples = parseSamples(metrics);
      expect(samples.filter((s) => s.name === "provision_status_verdict" && s.labels.host === "h1")).toHaveLength(
        WALL_IDS.length,
      );
      expect(samples.filter((s) => s.name.startsWith("provision_status_") && s.labels.host === "down")).toEqual([
        { name: "provision_status_up", labels: { host: "down" }, value: 0 },
      ]);
    });

    it("node_exporter refuses a file with a sample timestamp, or a family typed twice: scrape_error 1", async () => {
      const good = `# HELP provision_status_up 1 when provision status read the host, 0 when it could not
# TYPE provision_status_up gauge
provision_status_up{host="h1"} 1
`;
      const cases = {
        // The collector refuses client-side timestamps.
        timestamped: good.replace(`{host="h1"} 1\n`, `{host="h1"} 1 1700000000000\n`),
        // A second TYPE line for the same family, with another type.
        retyped: `${good}# TYPE provision_status_up counter\nprovision_status_up{host="h2"} 1\n`,
      };
      // The good file alone is accepted: what breaks the others is what was changed.
      for (const [name, text] of Object.entries({ good, ...cases })) {
        const bad = join(dir, `refused-${name}`);
        mkdirSync(bad);
        writeFileSync(join(bad, `${name}.prom`), text);
        const { metrics, log } = await scrape(bad);
        const context = `node_exporter log:\n${log}`;
        if (name === "good") {
          expect(metrics, context).toMatch(/^node_textfile_scrape_error 0$/m);
          expect(metrics).toMatch(/^provision_status_up\{host="h1"\} 1$/m);
          continue;
        }
        expect(metrics, context).toMatch(/^node_textfile_scrape_error 1$/m);
        // The whole file is skipped, and its name is logged as an error.
        expect(metrics).not.toContain("provision_status_up");
        expect(log).toMatch(new RegExp(`level=error.*file=${name}\\.prom`, "i"));
      }
    });
  },
);
