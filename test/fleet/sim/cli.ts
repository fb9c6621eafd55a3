import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SYSTEM_ENV } from "../shell.js";
import { normalizeScript, parseRecording, scriptCount } from "./recording.js";
import { MAX_SIM_HOSTS, parsePublicKey, startReplayServer } from "./server.js";
import { recordFromFleet } from "./simFleet.js";

const USAGE = `usage:
  node dist/test/fleet/sim/cli.js serve --recording FILE --hosts N --dir DIR
      answers as N hosts (127.100.0.1, …) on port 22, in a network namespace of its own
      (re-executes itself under \`unshare --net\` when started outside one); DIR holds
      host_ed25519 and client_ed25519.pub. Prints \`ready {…}\`; on stdin, \`stats\` prints
      \`stats {…}\`; stdin closed, SIGTERM or SIGINT: prints the stats and exits.
  node dist/test/fleet/sim/cli.js record --address A --client-key KEY --known-hosts FILE --dir DIR [--vars-file F] [--out FILE]
      records run -y, run -y, verify against the real fleet host A (root, port 22)`;

/** Scripts without an answer kept for diagnosis: enough to see what differs, never thousands of files. */
const UNKNOWN_KEPT = 5;

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { recording: { type: "string" }, hosts: { type: "string" }, dir: { type: "string" } },
  });
  const hosts = Number(values.hosts);
  if (!values.recording || !values.dir || !Number.isInteger(hosts) || hosts < 1 || hosts > MAX_SIM_HOSTS)
    throw new Error(USAGE);
  if (!onlyLoopback()) {
    await reexecIsolated(argv);
    return;
  }
  execFileSync("ip", ["link", "set", "lo", "up"], { env: SYSTEM_ENV });
  const recording = parseRecording(readFileSync(values.recording, "utf8"));
  let kept = 0;
  const server = await startReplayServer({
    recording,
    hostKey: readFileSync(join(values.dir, "host_ed25519")),
    clientKey: parsePublicKey(readFileSync(join(values.dir, "client_ed25519.pub"))),
    hosts,
    port: 22,
    host: "0.0.0.0",
    onUnknown: (script, state, local) => {
      if (kept >= UNKNOWN_KEPT) return;
      kept++;
      const key = normalizeScript(script).key.slice(0, 12);
      writeFileSync(join(values.dir!, `unknown-${state}-${key}.sh`), script);
      process.stderr.write(`sim: no recorded answer for a script to ${local} (state ${state}, key ${key})\n`);
    },
  });
  const stats = () => process.stdout.write(`stats ${JSON.stringify(server.stats())}\n`);
  const exit = () => {
    stats();
    process.exit(0);
  };
  process.once("SIGTERM", exit);
  process.once("SIGINT", exit);
  // stdin ends when whoever started the server goes away, however it died.
  createInterface({ input: process.stdin })
    .on("line", (line) => line.trim() === "stats" && stats())
    .on("close", exit);
  process.stdout.write(
    `ready ${JSON.stringify({ pid: process.pid, hosts, port: server.port, scripts: scriptCount(recording) })}\n`,
  );
}

/** In a fresh network namespace only `lo` exists: nothing this server does can reach a real interface. */
function onlyLoopback(): boolean {
  const names = readFileSync("/proc/net/dev", "utf8")
    .split("\n")
    .slice(2)
    .map((line) => line.split(":")[0]!.trim())
    .filter((name) => name !== "");
  return names.every((name) => name === "lo");
}

function reexecIsolated(argv: string[]): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn("unshare", ["--net", "--", process.execPath, self, "serve", ...argv], {
    stdio: "inherit",
    env: SYSTEM_ENV,
  });
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) =>
    child.once("close", (code, signal) => {
      process.exitCode = code ?? (signal ? 1 : 0);
      resolve();
    }),
  );
}

async function record(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      address: { type: "string" },
      "client-key": { type: "string" },
      "known-hosts": { type: "string" },
      dir: { type: "string" },
      "vars-file": { type: "string" },
      out: { type: "string" },
    },
  });
  if (!values.address || !values["client-key"] || !values["known-hosts"] || !values.dir) throw new Error(USAGE);
  const result = await recordFromFleet({
    fleetHost: { address: values.address },
    clientKeyFile: values["client-key"],
    knownHostsFile: values["known-hosts"],
    dir: values.dir,
    varsFile: values["vars-file"],
    recordingFile: values.out,
  });
  for (const run of result.runs) process.stderr.write(`provision ${run.args[0]}: exit ${run.code} in ${run.ms} ms\n`);
  process.stdout.write(`${result.recordingFile} (${scriptCount(result.recording)} scripts)\n`);
}

const [command, ...rest] = process.argv.slice(2);
try {
  if (command === "serve") await serve(rest);
  else if (command === "record") await record(rest);
  else throw new Error(USAGE);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
