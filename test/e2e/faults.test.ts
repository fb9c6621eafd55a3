import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RunRecord } from "../../src/rollout/record.js";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import {
  addBlackholeRoute,
  clearRootQdisc,
  hostOf,
  killSessions,
  killSshd,
  processesOf,
  removeBlackholeRoute,
  restartSshd,
  rootVeth,
  setRootQdisc,
  sleep,
  unackedBytesTo,
  waitForQuiet,
} from "./faultKit.js";
import { provision, readSysctl, tempDir, writeFile } from "./helpers.js";
import { expandHostPattern } from "../../src/inventory/hostRange.js";
import { startProvision as startLive, type LiveRun, type TimedResult } from "./liveRun.js";

/**
 * Rollout on real hosts when things go wrong: batch sizes, failure thresholds, resume, plan drift,
 * and faults (sshd stopped, packets dropped, a slow link, sshd killed or the host frozen mid-run,
 * a connection killed mid-write). Each fault must end as a per-host error within a stated
 * deadline: the run finishes (exit 1), writes its record, and the other hosts are changed and verified.
 */

const HOSTS = ["h1", "h2", "h3", "h4", "h5"];
const PORTS_FILE = "/etc/sysctl.d/60-provision-ephemeral-ports.conf";
const SYSCTL_DIR = "/etc/sysctl.d";
/** 300 reserved ranges (3.6 KB: procps sysctl writes a value in 4 KB pieces, and the kernel keeps only the first): a ~5 KB drop-in and a ~14 KB apply script, seconds through a 24 kbit/s link. */
const RESERVED = Array.from({ length: 300 }, (_, i) => `${20000 + 4 * i}-${20001 + 4 * i}`);
/** 24 kbit/s ≈ 3 KB/s towards the host, at most 400 ms queued: an SSH handshake takes ~1 s, the big apply script ~5 s. */
const SLOW_LINK = ["tbf", "rate", "24kbit", "burst", "1600", "latency", "400ms"];
/** A queue that holds 0 bytes: every packet towards the host is dropped without a word. */
const DROP_ALL = ["bfifo", "limit", "0"];
/** The words of a lost connection (src/transport/connectionLoss.ts), as regular expressions. */
const HOST_CLOSED = "the host closed or reset it \\(sshd or the host went down, or something on the way cut it\\)";
const KEEPALIVE_GAVE_UP =
  "the host stopped answering: no reply to keepalives for 15 s or more \\(it froze, or packets to or from it are dropped\\)";
const IN_FLIGHT = "A command in flight may have run in part or not at all; plan again to see what is left\\.";

describe("rollout and faults on a fleet of real hosts", () => {
  let fleet: Fleet;
  let dir: string;
  let stateDir: string;
  let small: string;
  let big: string;
  let smallPortsFile = "";
  /** Measured times to error, printed once at the end (the deadlines are asserted where measured). */
  const timings: string[] = [];

  /** Runs still going when a test ends (it failed midway) are killed before the next test. */
  const live: LiveRun[] = [];
  const startProvision = (args: string[], timeoutMs?: number) => {
    const l = startLive(args, timeoutMs);
    live.push(l);
    return l;
  };
  afterEach(async () => {
    await Promise.all(live.splice(0).map((l) => l.kill()));
  });
  /** The pause between batches, in which a test strikes (with the CLI held still while it does). */
  const PAUSE_S = 2;
  /** The CLI exits promptly once it has said its last word: no connection may keep it alive. */
  const expectPromptExit = (r: TimedResult) => {
    const lastLine = r.lines.at(-1)?.at ?? 0;
    expect(r.elapsedMs - lastLine, `exited ${r.elapsedMs - lastLine} ms after its last line`).toBeLessThan(5_000);
  };
  const runArgs = (playbook: string, extra: string[]) => [
    "run",
    fleet.inventoryFile,
    "--playbook",
    playbook,
    "--known-hosts",
    fleet.knownHostsFile,
    "--state-dir",
    stateDir,
    "--yes",
    ...extra,
  ];
  const run = async (extra: string[], playbook = small, timeoutMs = 60_000) => {
    const r = await startProvision(runArgs(playbook, extra), timeoutMs).done;
    expectPromptExit(r);
    return r;
  };
  const reuse = (host: string) => readSysctl(fleet, host, "net.ipv4.tcp_tw_reuse");
  /** A one-value drift (tcp_tw_reuse 1 → 0) so the next run has a change to make on these hosts. */
  const drift = async (hosts: string[]) => {
    for (const h of hosts) expect((await fleet.exec(h, "sysctl -qw net.ipv4.tcp_tw_reuse=0")).code).toBe(0);
  };
  const recordOf = (r: TimedResult): RunRecord => {
    const m = /^record: (\S+)/m.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    return JSON.parse(readFileSync(m![1]!, "utf8")) as RunRecord;
  };
  const statuses = (rec: RunRecord) => Object.fromEntries(rec.hosts.map((h) => [h.host, h.status]));
  const errorOf = (rec: RunRecord, host: string) => rec.hosts.find((h) => h.host === host)?.error ?? "";
  /** Each host on a run line `changed (N applied), verified M/M`, alone or in a folded group (`h[2:5] (4 hosts): …`). */
  const expectChangedAndVerified = (r: TimedResult, hosts: string[]) => {
    const verified = [
      ...r.stdout.matchAll(/^(.+?)(?: \(\d+ hosts\))?: changed \(\d+ applied\), verified (\d+)\/\2$/gm),
    ];
    const changed = verified.flatMap((m) => m[1]!.split(", ").flatMap((h) => expandHostPattern(h)));
    for (const h of hosts) expect(changed, r.stdout + r.stderr).toContain(h);
  };
  /** Polls the bytes queued towards the host until `done` says so; returns the last reading. */
  const waitForQueued = async (address: string, done: (bytes: number) => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const bytes = unackedBytesTo(address);
      if (done(bytes)) return bytes;
      if (Date.now() > deadline) throw new Error(`${address}: ${bytes} bytes queued after ${timeoutMs} ms`);
      await sleep(20);
    }
  };
  /**
   * What `--verbose` logged per host: each connect attempt and each remote step, with the time it
   * took as measured by provision itself. Deadlines are asserted on these, not on the whole run's
   * wall time, which on a loaded machine also counts the other hosts' work and Node's start.
   */
  const connectAttempts = (r: TimedResult, host: string) =>
    r.stderr.split("\n").filter((l) => new RegExp(`^\\[[^\\]]+\\] ${host}: connecting \\(`).test(l)).length;
  const connectFailure = (r: TimedResult, host: string) => {
    const m = new RegExp(`^\\[[^\\]]+\\] ${host}: connect failed in (\\d+) ms: (.*)$`, "m").exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    return { ms: Number(m![1]), message: m![2]! };
  };
  const steps = (r: TimedResult, host: string) =>
    [
      ...r.stderr.matchAll(
        new RegExp(
          `^\\[[^\\]]+\\] ${host}: exec (\\d+) bytes(?: via sudo)? → (?:exit \\S+ in (\\d+) ms|failed in (\\d+) ms: (.*))`,
          "gm",
        ),
      ),
    ].map((m) => ({ bytes: Number(m[1]), ms: Number(m[2] ?? m[3]), failure: m[4] }));
  const filesIn = async (host: string, path: string) =>
    (await fleet.exec(host, `ls -A ${path}`)).stdout.split("\n").filter(Boolean);

  beforeAll(async () => {
    fleet = await startFleet({ hosts: HOSTS.length });
    dir = tempDir("faults");
    stateDir = join(dir, "state");
    small = writeFile(
      dir,
      "small.yaml",
      "- name: two roles\n  hosts: all\n  roles:\n    - ephemeral-ports\n    - tw-reuse\n",
    );
    big = writeFile(
      dir,
      "big.yaml",
      [
        "- name: two roles, a big drop-in",
        "  hosts: all",
        "  roles:",
        "    - role: ephemeral-ports",
        "      params:",
        `        reserved_ports: [${RESERVED.map((r) => `"${r}"`).join(", ")}]`,
        "    - tw-reuse",
        "",
      ].join("\n"),
    );
  });

  afterAll(async () => {
    // Whatever a failed test left behind: no shaping, no route, for every fleet address.
    for (const h of fleet?.hosts ?? []) {
      try {
        clearRootQdisc(rootVeth(fleet, h.name));
      } catch {
        // the veth is gone with the fleet
      }
      removeBlackholeRoute(h.address);
    }
    if (timings.length > 0) console.log(`fault timings:\n  ${timings.join("\n  ")}`);
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("--batches 1,2 over 5 hosts runs batches of 1, 2 and 2, in the progress lines and in the record", async () => {
    const r = await run(["--batches", "1,2"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const events = r.stderr
      .split("\n")
      .filter((l) => /^(batch |h\d[:,] )/.test(l))
      .map((l) => l.replace(/, verified .*$/, ""));
    expect(events).toEqual([
      "batch 1/3: 1 host (h1)",
      "h1: changed",
      "batch 1/3 done: 0 failed (0 tolerated)",
      "batch 2/3: 2 hosts (h2, h3)",
      "h2, h3 (2 hosts): changed",
      "batch 2/3 done: 0 failed (0 tolerated)",
      "batch 3/3: 2 hosts (h4, h5)",
      "h4, h5 (2 hosts): changed",
      "batch 3/3 done: 0 failed (0 tolerated)",
    ]);
    const rec = recordOf(r);
    expect(rec.policy.batches).toEqual([1, 2]);
    expect(Object.fromEntries(rec.hosts.map((h) => [h.host, h.batch]))).toEqual({ h1: 1, h2: 2, h3: 2, h4: 3, h5: 3 });
    expect(new Set(Object.values(statuses(rec)))).toEqual(new Set(["changed"]));
    smallPortsFile = (await fleet.exec("h1", `cat ${PORTS_FILE}`)).stdout;
    expect(smallPortsFile).toContain("net.ipv4.ip_local_port_range = 1024 65535");
  });

  it("a host whose sshd is stopped is refused at once; thresholds stop or go on; --resume retries exactly what failed or was not reached", async () => {
    const h1 = hostOf(fleet, "h1");
    await drift(HOSTS);
    await killSshd(h1);
    try {
      // max_fail_per_batch 0: h1 alone in batch 1 fails, so no further batch starts.
      const perBatch = await run(["--batches", "1,2", "--connect-timeout", "30", "--verbose"]);
      expect(perBatch.code).toBe(1);
      // Deadline: "connection refused" comes back at once, not after the 30 s connect timeout.
      // Measured with both cores busy: under 100 ms; 5 s leaves room for any stall of the machine.
      const refused = connectFailure(perBatch, "h1");
      expect(refused.ms).toBeLessThan(5_000);
      expect(connectAttempts(perBatch, "h1")).toBe(1);
      // And the run as a whole did not wait for that 30 s timer either (measured: 1.3–4.5 s).
      expect(perBatch.elapsedMs).toBeLessThan(25_000);
      timings.push(
        `sshd stopped: h1 refused ${refused.ms} ms after its connect began (whole run ${perBatch.elapsedMs} ms)`,
      );
      expect(perBatch.stdout).toMatch(
        /^h1: UNREACHABLE: connection refused by [\d.]+:22: is sshd running and listening there\?$/m,
      );
      expect(perBatch.stdout).toContain(
        "STOPPED: batch 1: 1 of 1 hosts failed, more than the 0 tolerated per batch (max_fail_per_batch 0)",
      );
      expect(perBatch.stderr).not.toContain("batch 2/3");
      const stoppedRecord = recordOf(perBatch);
      expect(statuses(stoppedRecord)).toEqual({
        h1: "unreachable",
        h2: "not-reached",
        h3: "not-reached",
        h4: "not-reached",
        h5: "not-reached",
      });
      expect(errorOf(stoppedRecord, "h1")).toContain("connection refused");
      // Hosts not reached keep the batch they were in, so a merge or a resume knows where they belong.
      expect(stoppedRecord.hosts.map((h) => h.batch)).toEqual([1, 2, 2, 3, 3]);
      for (const h of ["h2", "h3", "h4", "h5"]) expect(await reuse(h)).toBe("0"); // not reached = not touched

      // One failure tolerated per batch, none in the run: the run-wide budget stops it after batch 1.
      const total = await run(["--batches", "1,2", "--max-fail-per-batch", "1"]);
      expect(total.code).toBe(1);
      expect(total.stderr).toContain("batch 1/3 done: 1 failed (1 tolerated)");
      expect(total.stdout).toContain(
        "STOPPED: after batch 1: 1 of 5 hosts failed in this run, more than the 0 tolerated (max_fail_total 0)",
      );
      expect(statuses(recordOf(total))).toEqual(statuses(stoppedRecord));

      // One tolerated per batch and 20% of 5 = 1 in the run: the rollout goes on past h1.
      const goesOn = await run(["--batches", "1,2", "--max-fail-per-batch", "1", "--max-fail-total", "20%"]);
      expect(goesOn.code).toBe(1);
      expect(goesOn.stdout).not.toContain("STOPPED");
      expect(goesOn.stderr).toContain("batch 3/3: 2 hosts (h4, h5)");
      expect(statuses(recordOf(goesOn))).toEqual({
        h1: "unreachable",
        h2: "changed",
        h3: "changed",
        h4: "changed",
        h5: "changed",
      });
      expectChangedAndVerified(goesOn, ["h2", "h3", "h4", "h5"]);
      expect(goesOn.stdout).toContain("provision run --resume retries what failed or was not reached");

      await restartSshd(h1);
      const resumed = await run(["--resume"]);
      expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
      expect(resumed.stderr).toMatch(/^resuming \S+: 1 host failed or were not reached \(h1\)$/m);
      expect(statuses(recordOf(resumed))).toEqual({ h1: "changed" });
      expect(await reuse("h1")).toBe("1");

      // An older record names its own hosts: the stopped run left all five to do (now already done).
      const fromOld = await run(["--resume", join(stateDir, "runs", `${stoppedRecord.id}.json`)]);
      expect(fromOld.code).toBe(0);
      expect(fromOld.stderr).toMatch(/^resuming \S+: 5 hosts failed or were not reached \(h\[1:5\]\)$/m);
      expect(fromOld.stdout).toContain("Run: 0 changed, 5 unchanged, 0 failed, 0 unreachable.");
    } finally {
      if (!processesOf(h1).some((p) => p.pid === h1.sshdPid)) await restartSshd(h1);
    }
  }, 60_000);

  it("a blackhole route fails the host at once; dropped packets fail it within --connect-timeout", async () => {
    const h2 = hostOf(fleet, "h2");
    const others = ["h1", "h3", "h4", "h5"];

    // A local blackhole route makes connect() fail with EINVAL at once: nothing waits for a timeout.
    await drift(others);
    const unroute = addBlackholeRoute(h2.address);
    try {
      const r = await run(["--connect-timeout", "30", "--verbose"]);
      expect(r.code).toBe(1);
      // Deadline: EINVAL at once, not the 30 s connect timeout (same margin as a refused connection).
      const noRoute = connectFailure(r, "h2");
      expect(noRoute.ms).toBeLessThan(5_000);
      expect(r.elapsedMs).toBeLessThan(25_000);
      timings.push(`blackhole route: h2 failed ${noRoute.ms} ms after its connect began (whole run ${r.elapsedMs} ms)`);
      expect(r.stdout).toMatch(
        /^h2: UNREACHABLE: no route to [\d.]+:22: this machine's routing table discards it \(a blackhole route\?\)$/m,
      );
      expectChangedAndVerified(r, others);
      expect(statuses(recordOf(r)).h2).toBe("unreachable");
    } finally {
      unroute();
    }

    // A host that drops every packet (a dead box, a firewall DROP): the SYN goes unanswered.
    await drift(others);
    const undrop = setRootQdisc(rootVeth(fleet, "h2"), DROP_ALL);
    try {
      // 5 s: the flag is global, and the other hosts' handshakes must fit in it too (measured up to
      // 1.2 s with 16 busy processes beside the run).
      const r = await run(["--connect-timeout", "5", "--verbose"]);
      expect(r.code).toBe(1);
      // Deadline: the handshake timer, 5 s, fires late only by the event loop's lag (measured with
      // both cores busy: < 100 ms): < 5 s + 3 s. (A Node timer may fire up to 1 ms before
      // Date.now() says its time is up, hence the 2 ms below the timeout.) The host is tried once:
      // with --yes the first batch applies the plan just shown instead of re-planning.
      const silent = connectFailure(r, "h2");
      expect(silent.ms).toBeGreaterThanOrEqual(5_000 - 2);
      expect(silent.ms).toBeLessThan(5_000 + 3_000);
      expect(connectAttempts(r, "h2")).toBe(1);
      timings.push(
        `packets dropped, --connect-timeout 5: h2 failed ${silent.ms} ms after its connect began (whole run ${r.elapsedMs} ms)`,
      );
      expect(r.stdout).toMatch(
        /^h2: UNREACHABLE: no SSH handshake from [\d.]+:22 within 5 s \(host down, packets dropped, or a firewall\)$/m,
      );
      expectChangedAndVerified(r, others);
      expect(errorOf(recordOf(r), "h2")).toContain("no SSH handshake");
    } finally {
      undrop();
    }
  }, 60_000);

  it("sshd killed mid-run fails its host at once; a host frozen mid-run fails within the keepalive (5 s × 3); the run goes on", async () => {
    const h4 = hostOf(fleet, "h4");
    await drift(HOSTS);
    // Batches h1-h3 | h4 | h5, with a pause after each: the faults strike while the run holds
    // open connections to h4 and h5 (made for the plan it showed) and uses them in the next batches.
    const faulty = startProvision(
      runArgs(small, [
        "--batches",
        "3,1",
        "--pause",
        String(PAUSE_S),
        "--max-fail-per-batch",
        "1",
        "--max-fail-total",
        "2",
      ]),
      60_000,
    );
    const undrop = () => clearRootQdisc(rootVeth(fleet, "h5"));
    try {
      await faulty.waitFor("stderr", new RegExp(`^pausing ${PAUSE_S} s before the next batch$`), 20_000);
      const struck = faulty.elapsed();
      await faulty.whileHeld(async () => {
        await killSshd(h4);
        setRootQdisc(rootVeth(fleet, "h5"), DROP_ALL);
      });
      const r = await faulty.done;
      expect(r.code, faulty.transcript()).toBe(1);
      expectPromptExit(r);

      // Deadline h4: its batch starts after the pause and fails on its first command: < pause + 4 s.
      const h4Failed = faulty.timeOf(
        "stderr",
        new RegExp(`^h4: unreachable: connection to root@[\\d.]+:22 was lost: ${HOST_CLOSED}\\. ${IN_FLIGHT}$`),
      );
      expect(h4Failed, faulty.transcript()).toBeDefined();
      expect(h4Failed! - struck).toBeLessThan(PAUSE_S * 1_000 + 4_000);

      // Deadline h5: nothing answers, so ssh2's keepalive (every 5 s, 3 missed) gives up: < 20 s + 5 s margin.
      const h5Failed = faulty.timeOf(
        "stderr",
        new RegExp(`^h5: unreachable: connection to root@[\\d.]+:22 was lost: ${KEEPALIVE_GAVE_UP}\\. ${IN_FLIGHT}$`),
      );
      expect(h5Failed, faulty.transcript()).toBeDefined();
      expect(h5Failed! - struck).toBeLessThan(20_000 + 5_000);
      timings.push(
        `sshd killed between batches: h4's error ${h4Failed! - struck} ms after the kill (${PAUSE_S} s of it the pause); frozen host: h5's error ${h5Failed! - struck} ms after the freeze`,
      );

      const rec = recordOf(r);
      expect(statuses(rec)).toEqual({
        h1: "changed",
        h2: "changed",
        h3: "changed",
        h4: "unreachable",
        h5: "unreachable",
      });
      expect(rec.hosts.map((h) => h.batch)).toEqual([1, 1, 1, 2, 3]);
      expectChangedAndVerified(r, ["h1", "h2", "h3"]);
    } finally {
      undrop();
      if (!processesOf(h4).some((p) => p.pid === h4.sshdPid)) await restartSshd(h4);
    }
  }, 60_000);

  it("a host changed during the pause stops the rollout with the new diff; --allow-plan-drift goes on", async () => {
    await drift(["h1"]);
    const stopped = startProvision(runArgs(small, ["--batches", "1,4", "--pause", String(PAUSE_S)]));
    await stopped.waitFor("stderr", new RegExp(`^pausing ${PAUSE_S} s before the next batch$`), 20_000);
    await stopped.whileHeld(() => drift(["h3"])); // h3 is in batch 2, shown with no change
    const r = await stopped.done;
    expect(r.code, stopped.transcript()).toBe(1);
    expect(r.stdout).toContain(
      "STOPPED: batch 2: the plan of h3 changed since it was shown (the hosts changed meanwhile); nothing more was applied.",
    );
    const now = r.stdout.slice(r.stdout.indexOf("The plan now:"));
    expect(now).toMatch(/h3 \(1 host\): 1 change/);
    expect(now).toContain("net.ipv4.tcp_tw_reuse: 0 → 1");
    expect(statuses(recordOf(r))).toEqual({
      h1: "changed",
      h2: "not-reached",
      h3: "not-reached",
      h4: "not-reached",
      h5: "not-reached",
    });
    expect(await reuse("h3")).toBe("0");

    const allowed = startProvision(
      runArgs(small, ["--batches", "1,4", "--pause", String(PAUSE_S), "--allow-plan-drift"]),
    );
    await allowed.waitFor("stderr", new RegExp(`^pausing ${PAUSE_S} s before the next batch$`), 20_000);
    await allowed.whileHeld(() => drift(["h2"]));
    const ok = await allowed.done;
    expect(ok.code, allowed.transcript()).toBe(0);
    expect(ok.stdout).not.toContain("STOPPED");
    expect(statuses(recordOf(ok))).toMatchObject({ h2: "changed", h3: "changed", h4: "changed", h5: "changed" });
    for (const h of HOSTS) expect(await reuse(h)).toBe("1");
    const verify = await provision([
      "verify",
      fleet.inventoryFile,
      "--playbook",
      small,
      "--known-hosts",
      fleet.knownHostsFile,
    ]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 60_000);

  // tc's netem (delay, loss) is not in this kernel ("Specified qdisc kind is unknown"); tbf is. A
  // rate limit is the slow link that matters here: it stretches every upload (handshake, scripts,
  // file contents) in proportion to its size, where a fixed delay would only add round trips.
  it("a host behind a slow link completes, only slower; with a tight --command-timeout it times out alone", async () => {
    const slowDev = rootVeth(fleet, "h3");
    const unshape = setRootQdisc(slowDev, SLOW_LINK);
    try {
      // Same work on h3 (slow) and h1 (normal): rewrite the ports drop-in and one value.
      for (const h of ["h1", "h3"]) await fleet.exec(h, `rm -f ${PORTS_FILE}; sysctl -qw net.ipv4.tcp_tw_reuse=0`);
      const generous = ["--connect-timeout", "30", "--command-timeout", "60"];
      const slow = await run([...generous, "--limit", "h3", "--verbose"]);
      const normal = await run([...generous, "--limit", "h1", "--verbose"]);
      expect(slow.code, slow.stdout + slow.stderr).toBe(0);
      expect(normal.code).toBe(0);
      expectChangedAndVerified(slow, ["h3"]);
      // The link really was slow: every step's script crossed it at ≤ 3 KB/s beyond tbf's 1,600-byte
      // burst, a floor that load can only raise (measured: h3's 2.7 KB and 3 KB steps 1.2–1.5 s,
      // above their 0.36 and 0.47 s floors; the same steps to h1 on an idle machine 0.07–0.2 s).
      const slowSteps = steps(slow, "h3");
      const beyondBurst = slowSteps.filter((st) => st.bytes > 1_600);
      expect(beyondBurst.length, slow.stderr).toBeGreaterThanOrEqual(2);
      const atLinkRate = (bytes: number) => ((bytes - 1_600) / 3_000) * 1_000;
      for (const step of beyondBurst)
        expect(step.ms, JSON.stringify(step)).toBeGreaterThanOrEqual(atLinkRate(step.bytes));
      timings.push(
        `slow link: h3 steps ${slowSteps.map((st) => `${st.bytes} B in ${st.ms} ms`).join(", ")}; h1 steps ${steps(
          normal,
          "h1",
        )
          .map((st) => `${st.bytes} B in ${st.ms} ms`)
          .join(", ")}`,
      );
      expect((await fleet.exec("h3", `cat ${PORTS_FILE}`)).stdout).toBe(smallPortsFile);

      // The big drop-in (~17 KB to upload, ~6 s here) against 4 s per command. Whether h3's first
      // read fits in 4 s or not, h3 must end as a timeout of its own (--allow-plan-drift keeps a
      // shown-timeout / fresh-plan difference from stopping the run instead).
      const tight = await run(
        ["--connect-timeout", "10", "--command-timeout", "4", "--allow-plan-drift", "--verbose"],
        big,
      );
      expect(tight.code).toBe(1);
      expect(tight.stdout).toMatch(
        /^h3: FAILED: command on root@[\d.]+:22 did not finish within 4 s; connection closed$/m,
      );
      expectChangedAndVerified(tight, ["h1", "h2", "h4", "h5"]);
      expect(recordOf(tight).hosts.find((h) => h.host === "h3")?.error).toContain("did not finish within 4 s");
      // Deadline: the step is cut by its 4 s timer, which fires late only by the event loop's lag: < 4 s + 3 s.
      const cut = steps(tight, "h3").filter((st) => st.failure !== undefined);
      expect(cut.length, tight.stderr).toBeGreaterThanOrEqual(1);
      for (const step of cut) {
        expect(step.failure).toMatch(/did not finish within 4 s/);
        expect(step.ms).toBeGreaterThanOrEqual(4_000 - 2);
        expect(step.ms).toBeLessThan(4_000 + 3_000);
      }
      timings.push(
        `slow link, --command-timeout 4: h3's step cut after ${cut.map((st) => st.ms).join(", ")} ms (whole run ${tight.elapsedMs} ms)`,
      );
    } finally {
      unshape();
    }
  }, 60_000);

  it("a connection killed mid-write leaves each file wholly old or wholly new, and the next run clears stale temp files", async () => {
    const h3 = hostOf(fleet, "h3");
    const others = ["h1", "h2", "h4", "h5"];
    const newFile = (await fleet.exec("h1", `cat ${PORTS_FILE}`)).stdout; // h1 took the big playbook above
    expect(newFile).toContain(`net.ipv4.ip_local_reserved_ports = ${RESERVED.slice(0, 3).join(",")},`);
    expect(smallPortsFile).not.toContain("ip_local_reserved_ports");
    const putOldFile = async () =>
      expect((await fleet.exec("h3", `cat > ${PORTS_FILE}`, { input: smallPortsFile })).code).toBe(0);

    // Kill h3's connection at different points of the ~5 s upload of its apply script (the file's
    // content comes first, then the live values): before any of it arrived, in the middle of the
    // file's content, and past it. The first and last kill only the connection (the remote shell
    // sees its input end); the middle one also kills the shell, like an OOM kill of the writer.
    const kills = [
      { delivered: 0, withChildren: false, leaves: "old" },
      { delivered: 0.3, withChildren: true, leaves: "old or new" },
      { delivered: 0.85, withChildren: false, leaves: "new" },
    ];
    const seen: string[] = [];
    const unshape = setRootQdisc(rootVeth(fleet, "h3"), SLOW_LINK);
    try {
      for (const kill of kills) {
        await putOldFile();
        await drift(others);
        const writing = startProvision(runArgs(big, ["--command-timeout", "60"]), 40_000);
        await writing.waitFor("stderr", /^batch 1\/1: /, 20_000);
        // The apply script is the only upload above 6 KB; what is still queued tells how much of it arrived.
        const queued = await waitForQueued(h3.address, (bytes) => bytes >= 6_000, 15_000);
        const left = await waitForQueued(h3.address, (bytes) => bytes <= queued * (1 - kill.delivered), 15_000);
        const struck = writing.elapsed();
        const victims = await killSessions(h3, { withChildren: kill.withChildren });
        expect(victims.length).toBeGreaterThan(0);
        const r = await writing.done;
        expect(r.code, writing.transcript()).toBe(1);
        expectPromptExit(r);
        // Deadline: the killed connection is noticed at once (FIN or RST from the host's kernel),
        // not by the 15–20 s keepalive: h3's error line < 6 s after the kill (measured: < 0.5 s).
        const h3Failed = writing.timeOf("stderr", /^h3: unreachable: /);
        expect(h3Failed, writing.transcript()).toBeDefined();
        expect(h3Failed! - struck).toBeLessThan(6_000);
        // One wording and one status, whichever of ssh2's paths (FIN, reset, a pending channel
        // request, a channel closed without exit status) noticed the kill first.
        expect(r.stdout).toMatch(
          new RegExp(`^h3: UNREACHABLE: connection to root@[\\d.]+:22 was lost: ${HOST_CLOSED}\\. ${IN_FLIGHT}$`, "m"),
        );
        expectChangedAndVerified(r, others);
        expect(statuses(recordOf(r)).h3).toBe("unreachable");

        await waitForQuiet(h3, 10_000); // a shell that lost its connection finishes what it already read
        const content = (await fleet.exec("h3", `cat ${PORTS_FILE}`)).stdout;
        expect([smallPortsFile, newFile]).toContain(content);
        const outcome = content === newFile ? "new" : "old";
        // The invariant is the line above: wholly old or wholly new. Which one depends on how much of
        // the script arrived before the kill (`kill.leaves` is what is expected; timing decides), so
        // it is recorded, not asserted.
        seen.push(
          `${outcome}, expected ${kill.leaves} (${queued - left} of ${queued} bytes sent${kill.withChildren ? ", shell killed too" : ""}, error after ${h3Failed! - struck} ms)`,
        );
        // A leftover temp file could only come from a killed writer; it never ends in .conf, so sysctl never reads it.
        for (const f of (await filesIn("h3", SYSCTL_DIR)).filter((n) => n.includes("provision-tmp")))
          expect(f).toMatch(/^\.provision-tmp-[A-Za-z0-9]{6}$/);
      }
    } finally {
      unshape();
    }
    expect(seen).toHaveLength(kills.length);

    // A writer killed between mktemp and mv leaves half a file under a temp name: the next run removes it.
    await putOldFile();
    await fleet.exec("h3", `head -c 1000 ${PORTS_FILE} > ${SYSCTL_DIR}/.provision-tmp-Zq3x9a`);
    const r = await run([], big);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await fleet.exec("h3", `cat ${PORTS_FILE}`)).stdout).toBe(newFile);
    expect((await filesIn("h3", SYSCTL_DIR)).filter((n) => n.includes("provision-tmp"))).toEqual([]);
    const verify = await provision([
      "verify",
      fleet.inventoryFile,
      "--playbook",
      big,
      "--known-hosts",
      fleet.knownHostsFile,
    ]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    timings.push(`mid-write kills on h3 left the file: ${seen.join("; ")}`);
  }, 90_000);
});
