import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import ssh2 from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { runChecked } from "../fleet/shell.js";
import { addToRecording, emptyRecording, PRISTINE } from "../fleet/sim/recording.js";
import {
  hostKeyFromKnownHosts,
  parsePublicKey,
  startReplayServer,
  type RunningServer,
  type SimStats,
} from "../fleet/sim/server.js";
import { recordFromFleet, runProvision, startSimFleet, type SimFleet } from "../fleet/sim/simFleet.js";
import { tempDir, workDir } from "./helpers.js";

interface RunJson {
  summary: { hosts: number; changed: number; unchanged: number; failed: number };
  hosts: Array<{ host: string; status: string; error?: { message: string } }>;
}

const HOSTS = 50;

/** Recorded from one real sshd host, replayed as 50: the controller is the real CLI over real SSH. */
describe("simulated fleet: one real host recorded, replayed as many", () => {
  let fleet: Fleet | undefined;
  let sim: SimFleet | undefined;
  let dir: string;
  const inSim = (...args: string[]) =>
    runProvision([...args, sim!.inventoryFile, "--known-hosts", sim!.knownHostsFile], {
      prefix: sim!.nsenterPrefix,
      cwd: workDir(),
      timeoutMs: 60_000,
    });
  const statusesOf = (json: RunJson) => [...new Set(json.hosts.map((h) => h.status))];

  beforeAll(async () => {
    dir = tempDir("sim");
    fleet = await startFleet({ hosts: 1 });
    const recorded = await recordFromFleet({
      fleetHost: { address: fleet.hosts[0]!.address },
      clientKeyFile: fleet.clientKeyFile,
      knownHostsFile: fleet.knownHostsFile,
      varsFile: join(fleet.dir, "group_vars", "fleet.yaml"),
      dir: join(dir, "record"),
    });
    expect(recorded.runs.map((r) => r.code)).toEqual([0, 0, 0]);
    expect(recorded.runs[1]!.stdout).toContain("unchanged");
    await fleet.stop();
    fleet = undefined;
    sim = await startSimFleet({ recordingFile: recorded.recordingFile, hosts: HOSTS, dir: join(dir, "sim") });
  });
  afterAll(async () => {
    await sim?.stop();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("writes an inventory of 50 hosts on 127.100.0.x and a plain known_hosts line for each", () => {
    expect(sim!.hostNames.slice(0, 2)).toEqual(["sim00001", "sim00002"]);
    expect(sim!.addresses[HOSTS - 1]).toBe("127.100.0.50");
    const knownHosts = readFileSync(sim!.knownHostsFile, "utf8").trim().split("\n");
    expect(knownHosts).toHaveLength(HOSTS);
    expect(knownHosts[0]).toMatch(/^127\.100\.0\.1 ssh-ed25519 AAAA\S+$/);
  });

  it("a first run changes all 50 hosts, every script found in the recording", async () => {
    const r = await inSim("run", "-y", "--json");
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as RunJson;
    expect(json.summary).toMatchObject({ hosts: HOSTS, changed: HOSTS, failed: 0 });
    expect(statusesOf(json)).toEqual(["changed"]);
    const stats = await sim!.stats();
    expect(stats).toMatchObject<Partial<SimStats>>({ unknownScripts: 0, changedHosts: HOSTS, strayConnections: 0 });
    expect(stats.authenticated).toBeGreaterThanOrEqual(HOSTS);
  });

  it("a second run, on fresh connections, finds all 50 tuned: unchanged", async () => {
    const r = await inSim("run", "-y", "--json");
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as RunJson;
    expect(json.summary).toMatchObject({ hosts: HOSTS, unchanged: HOSTS, failed: 0 });
    expect(statusesOf(json)).toEqual(["unchanged"]);
  });

  it("verify passes on all 50", async () => {
    const r = await inSim("verify");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`on ${HOSTS}/${HOSTS} hosts; 0 mismatches`);
    expect((await sim!.stats()).unknownScripts).toBe(0);
  });

  it("a script the recording lacks fails the host loudly, never silently succeeds", async () => {
    const before = (await sim!.stats()).unknownScripts;
    const r = await inSim("run", "-y", "--json", "--tags", "conntrack", "--limit", "sim00001");
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as RunJson;
    expect(json.hosts).toHaveLength(1);
    expect(json.hosts[0]).toMatchObject({ host: "sim00001", status: "failed" });
    expect(json.hosts[0]!.error?.message).toMatch(
      /simulated host: no recorded answer for this script \(key [0-9a-f]{12}, state tuned\)/,
    );
    expect((await sim!.stats()).unknownScripts).toBeGreaterThan(before);
  });
});

const { Client } = ssh2;

/** The server's SSH behaviour, from an ssh2 client: who gets in, and what a session may ask for. */
describe("simulated fleet server: SSH protocol", () => {
  let dir: string;
  let server: RunningServer | undefined;
  let hostKey: { type: string; blob: Buffer };
  const ADDRESS = "127.100.0.1";
  const ECHO = "echo hello\n";
  const APPLY = "failed=0\n";

  const connect = (keyFile: string, extra: Partial<ssh2.ConnectConfig> = {}) =>
    new Promise<InstanceType<typeof Client>>((resolve, reject) => {
      const c = new Client();
      c.once("ready", () => resolve(c));
      c.once("error", reject);
      c.connect({
        host: ADDRESS,
        port: server!.port,
        username: "root",
        privateKey: readFileSync(keyFile),
        readyTimeout: 10_000,
        hostVerifier: (key: Buffer) => key.equals(hostKey.blob),
        ...extra,
      });
    });
  const exec = (c: InstanceType<typeof Client>, stdin: string, opts: ssh2.ExecOptions = {}) =>
    new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve, reject) => {
      c.exec("sh -s", opts, (err, ch) => {
        if (err) return reject(err);
        let stdout = "";
        let stderr = "";
        let code: number | null = null;
        ch.on("data", (d: Buffer) => (stdout += d.toString()));
        ch.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        ch.on("exit", (c: number | null) => (code = c));
        ch.on("close", () => resolve({ stdout, stderr, code }));
        ch.end(stdin);
      });
    });

  beforeAll(async () => {
    dir = tempDir("sim-ssh");
    const keygen = (name: string) =>
      runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "sim-test", "-f", join(dir, name)]);
    await Promise.all([keygen("host"), keygen("client"), keygen("other")]);
    hostKey = hostKeyFromKnownHosts(`${ADDRESS} ${readFileSync(join(dir, "host.pub"), "utf8")}`, ADDRESS);
    const recording = emptyRecording("test", "2026-01-01T00:00:00.000Z");
    addToRecording(recording, PRISTINE, ECHO, { stdout: "pristine\n", stderr: "", code: 0 });
    const tuned = addToRecording(recording, PRISTINE, APPLY, { stdout: "applied\n", stderr: "", code: 0 });
    addToRecording(recording, tuned, ECHO, { stdout: "tuned\n", stderr: "a warning\n", code: 3 });
    // A loopback address of this namespace, on a port of its own: nothing else can reach it.
    server = await startReplayServer({
      recording,
      hostKey: readFileSync(join(dir, "host")),
      clientKey: parsePublicKey(readFileSync(join(dir, "client.pub"))),
      hosts: 1,
      port: 0,
      host: ADDRESS,
    });
  });
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses another key and a password, and accepts the client key (signature verified)", async () => {
    await expect(connect(join(dir, "other"))).rejects.toThrow(/authentication methods failed/);
    await expect(connect(join(dir, "client"), { privateKey: undefined, password: "x" })).rejects.toThrow(
      /authentication methods failed/,
    );
    const c = await connect(join(dir, "client"));
    c.end();
    expect(server!.stats().authRejected).toBeGreaterThanOrEqual(2);
  });

  it("answers env requests, refuses a pty, and keeps answering across keepalives", async () => {
    const c = await connect(join(dir, "client"), { keepaliveInterval: 50, keepaliveCountMax: 3 });
    try {
      expect(await exec(c, ECHO, { env: { LC_ALL: "C" } })).toEqual({ stdout: "pristine\n", stderr: "", code: 0 });
      await new Promise((r) => setTimeout(r, 400));
      expect(await exec(c, ECHO)).toMatchObject({ stdout: "pristine\n" });
      await expect(exec(c, ECHO, { pty: true })).rejects.toThrow(/Unable to request a pseudo-terminal/);
    } finally {
      c.end();
    }
  });

  it("keeps a host's state across connections: after the apply script, a fresh login sees it tuned", async () => {
    const first = await connect(join(dir, "client"));
    expect(await exec(first, APPLY)).toMatchObject({ stdout: "applied\n", code: 0 });
    first.end();
    const second = await connect(join(dir, "client"));
    try {
      expect(await exec(second, ECHO)).toEqual({ stdout: "tuned\n", stderr: "a warning\n", code: 3 });
      expect(await exec(second, "echo never recorded\n")).toMatchObject({ code: 127, stdout: "" });
    } finally {
      second.end();
    }
    expect(server!.stats()).toMatchObject({ changedHosts: 1, unknownScripts: 1 });
  });
});
