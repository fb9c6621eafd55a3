import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  cleanupScript,
  clientSocketFilter,
  helperScript,
  helperSource,
  parseCleanup,
  parseClientResult,
  parseServerResult,
  serverSocketFilter,
  type ClientConfig,
  type ServerConfig,
} from "../../src/capacity/remote.js";
import { newMarker, sideMarker } from "../../src/capacity/run.js";
import { CAPACITY_HELPER_FILE } from "../../src/installRoot.js";
import { isProcessRunning, waitUntilGone } from "../fleet/shell.js";

/** Runs a script the way the transport does: on the stdin of `sh -s`. */
function sh(
  script: string,
  env: Record<string, string> = { PATH: "/usr/bin:/bin" },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-s"], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`script did not finish within 60 s\n${stdout}\n${stderr}`));
    }, 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(script);
  });
}

/**
 * A port free now, below the machine's ephemeral range (32768–60999): between our check and the
 * helper's bind no outgoing connection elsewhere on the machine can take it as its local port.
 */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error("no free port in 20000-31999 after 50 tries");
}

const started: ChildProcess[] = [];
afterEach(() => {
  for (const c of started.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

/** A process whose argv carries the marker, like a helper. */
function fakeHelper(marker: string): ChildProcess {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)", marker], { stdio: "ignore" });
  started.push(child);
  return child;
}

const PYTHON3 = spawnSync("python3", ["--version"]).status === 0;

describe("the helper program", () => {
  // compile() is what `python3 -` does first: syntax errors, and those only the compiler finds
  // (a return outside a function, a bad nonlocal), without writing __pycache__ into src/.
  it.skipIf(!PYTHON3)(
    `src/capacity/helper.py compiles with python3${PYTHON3 ? "" : " (skipped: python3 is not on PATH)"}`,
    () => {
      const r = spawnSync(
        "python3",
        ["-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", CAPACITY_HELPER_FILE],
        { encoding: "utf8" },
      );
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    },
  );

  it("is read from the install root's src/capacity/helper.py (dist/ holds no .py file)", () => {
    expect(CAPACITY_HELPER_FILE.endsWith(join("src", "capacity", "helper.py"))).toBe(true);
    expect(helperSource()).toMatch(/^"""\nThe capacity probe's helper/);
    expect(helperSource()).toContain("\nmain()\n");
  });

  it("is sent as a here-document to `python3 -` under timeout, with every argument quoted", () => {
    const config: ClientConfig = {
      dst: "198.18.1.3",
      port: 5201,
      processes: 2,
      targets: [1, 1],
      sources: ["it's"],
      inFlight: 16,
      connectTimeoutSeconds: 5,
      waitListenerSeconds: 10,
      rampSeconds: 30,
      holdSeconds: 20,
      hardSeconds: 90,
    };
    const script = helperScript("provision-probe-abc-client", "client", config);
    expect(script).toContain(
      `set -- python3 - provision-probe-abc-client client '{"dst":"198.18.1.3","port":5201,"processes":2,"targets":[1,1],"sources":["it'\\''s"],`,
    );
    expect(script).toContain('set -- timeout -k 5 100 "$@"');
    expect(script).toContain(
      `exec "$@" <<'PROVISION_PROBE_HELPER_END'\n${helperSource().trimEnd()}\nPROVISION_PROBE_HELPER_END`,
    );
    expect(script.endsWith("\nPROVISION_PROBE_HELPER_END")).toBe(true);
  });

  it("markers are unique per probe and per side", () => {
    const a = newMarker();
    expect(a).toMatch(/^provision-probe-[0-9a-f]{12}$/);
    expect(newMarker()).not.toBe(a);
    expect(sideMarker(a, "client")).not.toContain(sideMarker(a, "server"));
  });
});

describe("the helpers on this machine's loopback (small bound)", () => {
  it("connect, hold, report per source, and leave no process or socket", async () => {
    const port = await freePort();
    const marker = newMarker();
    const server: ServerConfig = {
      dst: "127.0.0.1",
      port,
      processes: 2,
      backlog: 128,
      idleSeconds: 20,
      hardSeconds: 60,
    };
    const client: ClientConfig = {
      dst: "127.0.0.1",
      port,
      processes: 2,
      targets: [30, 20],
      sources: ["127.0.0.1", "127.0.0.2"],
      inFlight: 16,
      connectTimeoutSeconds: 5,
      waitListenerSeconds: 10,
      rampSeconds: 30,
      holdSeconds: 0,
      hardSeconds: 50,
    };
    const serverRun = sh(helperScript(sideMarker(marker, "server"), "server", server));
    const clientOut = await sh(helperScript(sideMarker(marker, "client"), "client", client));
    const serverOut = await serverRun;
    expect(clientOut.code).toBe(0);
    expect(serverOut.code).toBe(0);
    const c = parseClientResult(clientOut.stdout, clientOut.stderr, sideMarker(marker, "client"), "local");
    const s = parseServerResult(serverOut.stdout, serverOut.stderr, sideMarker(marker, "server"), "local");
    expect(c.workers.map((w) => w?.stop)).toEqual(["bound", "bound"]);
    expect(c.workers.map((w) => w?.perSource.map((p) => [p.source, p.held]))).toEqual([
      [
        ["127.0.0.1", 15],
        ["127.0.0.2", 15],
      ],
      [
        ["127.0.0.1", 10],
        ["127.0.0.2", 10],
      ],
    ]);
    expect(c.establishedAtHoldStart).toBe(50);
    expect(s.workers.reduce((n, w) => n + (w?.accepted ?? 0), 0)).toBe(50);
    for (const [side, filter] of [
      ["client", clientSocketFilter("127.0.0.1", port)],
      ["server", serverSocketFilter(port)],
    ] as const) {
      const check = await sh(cleanupScript(sideMarker(marker, side), filter));
      expect(parseCleanup(check.stdout, sideMarker(marker, side), "local")).toEqual({ found: 0, left: 0, sockets: 0 });
    }
  });

  it("server processes that got no connection leave as soon as the client is done, not at their idle limit", async () => {
    const port = await freePort();
    const marker = newMarker();
    const server: ServerConfig = {
      dst: "127.0.0.1",
      port,
      processes: 8,
      backlog: 128,
      idleSeconds: 30,
      hardSeconds: 60,
    };
    const client: ClientConfig = {
      dst: "127.0.0.1",
      port,
      processes: 1,
      targets: [2],
      sources: [],
      inFlight: 16,
      connectTimeoutSeconds: 5,
      waitListenerSeconds: 10,
      rampSeconds: 30,
      holdSeconds: 0,
      hardSeconds: 50,
    };
    const t0 = Date.now();
    const serverRun = sh(helperScript(sideMarker(marker, "server"), "server", server));
    await sh(helperScript(sideMarker(marker, "client"), "client", client));
    const out = await serverRun;
    expect(Date.now() - t0).toBeLessThan(15_000);
    const s = parseServerResult(out.stdout, out.stderr, sideMarker(marker, "server"), "local");
    expect(s.workers).toHaveLength(8);
    expect(s.workers.reduce((n, w) => n + (w?.accepted ?? 0), 0)).toBe(2);
    expect(s.killedWorkers).toBe(0);
  });

  it("a client with nothing to connect to stops at ECONNREFUSED after its wait", async () => {
    const port = await freePort();
    const marker = sideMarker(newMarker(), "client");
    const client: ClientConfig = {
      dst: "127.0.0.1",
      port,
      processes: 1,
      targets: [5],
      sources: [],
      inFlight: 16,
      connectTimeoutSeconds: 5,
      waitListenerSeconds: 0,
      rampSeconds: 30,
      holdSeconds: 0,
      hardSeconds: 20,
    };
    const out = await sh(helperScript(marker, "client", client));
    const c = parseClientResult(out.stdout, out.stderr, marker, "local");
    expect(c.workers[0]).toMatchObject({ held: 0, stop: "ECONNREFUSED", errors: { ECONNREFUSED: 100 } });
  });

  it("a server whose port is taken says so", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "0.0.0.0", () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const marker = sideMarker(newMarker(), "server");
      const out = await sh(
        helperScript(marker, "server", {
          dst: "127.0.0.1",
          port,
          processes: 1,
          backlog: 16,
          idleSeconds: 5,
          hardSeconds: 20,
        }),
      );
      expect(() => parseServerResult(out.stdout, out.stderr, marker, "local")).toThrow(
        `local: cannot listen on port ${port}: EADDRINUSE`,
      );
    } finally {
      blocker.close();
    }
  });

  it("without python3 the script says so", async () => {
    const bin = mkdtempSync(join(tmpdir(), "probe-nopython-"));
    try {
      const config: ClientConfig = {
        dst: "127.0.0.1",
        port: 9,
        processes: 1,
        targets: [1],
        sources: [],
        inFlight: 16,
        connectTimeoutSeconds: 5,
        waitListenerSeconds: 0,
        rampSeconds: 30,
        holdSeconds: 0,
        hardSeconds: 20,
      };
      const out = await sh(helperScript("m-client", "client", config), { PATH: bin });
      expect(out.code).toBe(127);
      expect(out.stderr).toContain("python3 is not installed");
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe("the cleanup check", () => {
  it.each<[string, boolean]>([
    ["with pgrep", true],
    ["without procps (a /proc scan)", false],
  ])("%s: kills what carries its marker, leaves the other side's helpers alone", async (_, withPgrep) => {
    const marker = newMarker();
    // spawn() returns once the child has exec'd: its marker is in its command line already.
    const mine = fakeHelper(sideMarker(marker, "client"));
    const other = fakeHelper(sideMarker(marker, "server"));
    let env: Record<string, string> = { PATH: "/usr/bin:/bin" };
    const bin = mkdtempSync(join(tmpdir(), "probe-noprocps-"));
    try {
      if (!withPgrep) {
        for (const tool of ["tr", "wc", "sleep", "cat"]) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
        env = { PATH: bin };
      }
      const out = await sh(cleanupScript(sideMarker(marker, "client"), null), env);
      expect(parseCleanup(out.stdout, sideMarker(marker, "client"), "local")).toEqual({
        found: 1,
        left: 0,
        sockets: null,
      });
      // Read from /proc, not from Node's child handles: those change only once this process has
      // handled SIGCHLD, which a busy machine can delay.
      expect(await waitUntilGone(mine.pid!, 5_000)).toBe(true);
      expect(isProcessRunning(other.pid!)).toBe(true);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
