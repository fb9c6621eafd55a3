import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createServer, type Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";
import ssh2 from "ssh2";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { knownHostsLine } from "../../src/transport/knownHosts.js";
import { connectSsh, type SshOptions } from "../../src/transport/ssh.js";
import { HostError, type Transport } from "../../src/transport/types.js";
import { directRoute, PROJECT_ROOT, tempDir } from "./helpers.js";

/**
 * A connection that ends under a running command reaches ssh2 by one of several paths, and which
 * one comes first is timing: a pending channel request failed with "No response from server", a
 * channel closed without an exit status, the socket's FIN or its reset, the keepalive timer. This
 * drives each path on purpose, against an SSH server in this process on loopback that cuts the
 * connection at a chosen point, and requires one wording and one status for all of them.
 */

type Behaviour = (client: ssh2.Connection, socket: Socket) => void;

const CLOSED =
  /^connection to root@127\.0\.0\.1:\d+ was lost: the host closed or reset it \(sshd or the host went down, or something on the way cut it\)\. A command in flight may have run in part or not at all; plan again to see what is left\.$/;

describe("a lost connection reads the same whichever path notices it", () => {
  let dir: string;
  let server: NetServer;
  let port: number;
  let behaviour: Behaviour = answerEveryExec;
  const sockets = new Set<Socket>();
  const transports: Transport[] = [];
  let opts: SshOptions;
  let keyFile: string;

  beforeAll(async () => {
    dir = tempDir("connection-loss");
    const hostKey = ssh2.utils.generateKeyPairSync("ed25519");
    const clientKey = ssh2.utils.generateKeyPairSync("ed25519");
    keyFile = join(dir, "id_ed25519");
    writeFileSync(keyFile, clientKey.private, { mode: 0o600 });
    const sshd = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
      client.on("authentication", (ctx) => ctx.accept());
      client.on("error", () => undefined);
      client.on("ready", () => behaviour(client, (client as unknown as { _sock: Socket })._sock));
    });
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      sshd.injectSocket(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
    const blob = Buffer.from(hostKey.public.split(" ")[1]!, "base64");
    const knownHosts = join(dir, "known_hosts");
    writeFileSync(knownHosts, `${knownHostsLine("127.0.0.1", port, blob)}\n`);
    opts = {
      knownHostsFiles: [knownHosts],
      acceptNewHostKeys: false,
      connectTimeoutMs: 10_000,
      commandTimeoutMs: 30_000,
      keepalive: { intervalMs: 200, countMax: 2 },
    };
  });

  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close()));
    behaviour = answerEveryExec;
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (options: Partial<SshOptions> = {}) => {
    const t = await connectSsh("h", directRoute("127.0.0.1", port, "root", keyFile), { ...opts, ...options });
    transports.push(t);
    return t;
  };
  const failureOf = async (p: Promise<unknown>): Promise<HostError> => {
    const err = await p.then(
      () => new Error("the command succeeded"),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HostError);
    return err as HostError;
  };
  /** Every exec opens a channel; the nth one (from 1) gets `cut`, the others are answered. */
  const onExec =
    (nth: number, cut: (stream: ssh2.ServerChannel, socket: Socket, client: ssh2.Connection) => void): Behaviour =>
    (client, socket) => {
      let count = 0;
      client.on("session", (accept) => {
        const session = accept();
        session.on("exec", (acceptExec) => {
          const stream = acceptExec();
          if (++count === nth) cut(stream, socket, client);
          else answer(stream);
        });
      });
    };

  /** The server side of the connection the current test made (a path that ends it while idle needs it). */
  let current: Socket | undefined;
  const paths: Array<[string, Behaviour]> = [
    [
      "FIN while idle, noticed by the next command",
      (client, socket) => {
        current = socket;
        answerEveryExec(client, socket);
      },
    ],
    [
      "FIN before the channel opens (ssh2: No response from server)",
      (client, socket) => client.on("session", () => socket.end()),
    ],
    ["reset before the channel opens", (client, socket) => client.on("session", () => socket.resetAndDestroy())],
    [
      "FIN while the script is still arriving (a channel closed without an exit status)",
      onExec(1, (stream, socket) => stream.once("data", () => socket.end())),
    ],
    [
      "reset while the script is still arriving (ECONNRESET)",
      onExec(1, (stream, socket) => stream.once("data", () => socket.resetAndDestroy())),
    ],
  ];

  it.each(paths)("%s", async (name, cut) => {
    behaviour = cut;
    const t = await connect();
    if (name.startsWith("FIN while idle")) {
      expect((await t.exec("echo 1")).code).toBe(0);
      const idle = current!;
      idle.end();
      await waitFor(() => idle.destroyed, 5_000);
    }
    const err = await failureOf(t.exec("echo 2"));
    expect(err.kind, err.message).toBe("unreachable");
    expect(err.message).toMatch(CLOSED);
    // Once lost, the next command says the same without touching the network.
    expect((await failureOf(t.exec("echo 3"))).message).toBe(err.message);
  });

  it("an exit status that arrived before the connection dropped stands; the next command says the connection was lost", async () => {
    behaviour = onExec(1, (stream, socket) => {
      stream.resume();
      stream.once("end", () => {
        stream.write("done\n");
        stream.exit(0);
        socket.end();
      });
    });
    const t = await connect();
    const r = await t.exec("true");
    expect(r).toMatchObject({ code: 0, stdout: "done\n" });
    expect((await failureOf(t.exec("true"))).message).toMatch(CLOSED);
  });

  const SILENT =
    /^connection to root@127\.0\.0\.1:\d+ was lost: the host stopped answering: no reply to keepalives for 0\.4 s or more \(it froze, or packets to or from it are dropped\)\. A command in flight/;

  it("a host that stops answering is noticed by the keepalive, with its own cause, as unreachable", async () => {
    behaviour = onExec(1, (_stream, socket) => socket.pause());
    const t = await connect();
    const started = Date.now();
    const err = await failureOf(t.exec("sleep 60"));
    expect(err.kind).toBe("unreachable");
    expect(err.message).toMatch(SILENT);
    // ssh2 gives up on the tick after countMax unanswered pings: 3 × 200 ms, plus a loaded machine's slack.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("a command timeout on a host already silent for the keepalive's limit says what the keepalive would", async () => {
    behaviour = onExec(1, (_stream, socket) => socket.pause());
    const viaKeepalive = await failureOf((await connect()).exec("sleep 60"));
    // 500 ms: after 0.4 s of silence (the limit), before ssh2's keepalive gives up at 0.6 s; the
    // timeout waits one more interval instead of calling it a slow command.
    const viaTimeout = await failureOf((await connect()).exec("sleep 60", { timeoutMs: 500 }));
    expect(viaTimeout.kind).toBe("unreachable");
    expect(viaTimeout.message).toBe(
      viaKeepalive.message.replace(/127\.0\.0\.1:\d+/, viaTimeout.message.match(/127\.0\.0\.1:\d+/)![0]),
    );
    expect(viaTimeout.message).toMatch(SILENT);
  });

  it("a command timeout on a host that still answers (keepalives replied) is a slow command, not a lost host", async () => {
    behaviour = onExec(1, () => undefined); // the command never ends; the server keeps answering pings
    const t = await connect({ keepalive: { intervalMs: 100, countMax: 3 } });
    const err = await failureOf(t.exec("sleep 60", { timeoutMs: 1_000 }));
    expect(err.kind).toBe("timeout");
    expect(err.message).toMatch(/^command on root@127\.0\.0\.1:\d+ did not finish within 1 s; connection closed$/);
  });

  it("our own process stalling past the silence limit doesn't make a host that still answers look frozen", async () => {
    behaviour = onExec(1, () => undefined); // the command never ends; the server answers every ping
    const t = await connect();
    const pending = failureOf(t.exec("sleep 60", { timeoutMs: 1_000 }));
    // At 0.5 s this process stops for 1.5 s: no ping goes out, nothing is read, and when the
    // command's timer fires the host seems silent for far longer than the 0.4 s limit.
    setTimeout(() => {
      for (const until = Date.now() + 1_500; Date.now() < until;);
    }, 500);
    const err = await pending;
    expect(err.kind, err.message).toBe("timeout");
    expect(err.message).toMatch(/did not finish within 1 s; connection closed$/);
  });

  it.each<[string, Behaviour, string]>([
    [
      "after a command timeout",
      onExec(1, (_stream, socket) => socket.pause()),
      "await t.exec('sleep 60', { timeoutMs: 300 }).catch(() => undefined);",
    ],
    ["after close() while idle", (_client, socket) => socket.pause(), ""],
  ])("a process that gave up on a host that never closes its side exits at once (%s)", async (_name, frozen, step) => {
    behaviour = frozen;
    // The user's view: the CLI must not linger after its last line, held by a half-closed socket.
    const script = [
      `import { connectSsh } from ${JSON.stringify(join(PROJECT_ROOT, "dist", "src", "transport", "ssh.js"))};`,
      `const t = await connectSsh("h", ${JSON.stringify(directRoute("127.0.0.1", port, "root", keyFile))}, ${JSON.stringify({ ...opts, keepalive: { intervalMs: 60_000, countMax: 3 } })});`,
      step,
      "await t.close();",
      "console.log('done');",
    ].join("\n");
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    await waitFor(() => out.includes("done") || child.exitCode !== null, 20_000);
    const doneAt = Date.now();
    const code = await Promise.race([
      exited,
      new Promise<"lingers">((resolve) => setTimeout(() => resolve("lingers"), 10_000)),
    ]);
    if (code === "lingers") child.kill("SIGKILL");
    expect(code, out).toBe(0);
    expect(Date.now() - doneAt).toBeLessThan(10_000);
  });

  it("a channel the host closes without an exit status, on a live connection, is the command's failure", async () => {
    behaviour = onExec(1, (stream) => stream.close());
    const t = await connect();
    const err = await failureOf(t.exec("true"));
    expect(err.kind).toBe("command");
    expect(err.message).toMatch(
      /^the command on root@127\.0\.0\.1:\d+ ended without an exit status \(the host closed its channel\)$/,
    );
    expect((await t.exec("echo still here")).code).toBe(0);
  });

  it("a command past its timeout is a timeout; the connection it closed is then reported as closed by provision", async () => {
    behaviour = onExec(1, () => undefined);
    const t = await connect();
    const err = await failureOf(t.exec("sleep 60", { timeoutMs: 300 }));
    expect(err.kind).toBe("timeout");
    expect(err.message).toMatch(/^command on root@127\.0\.0\.1:\d+ did not finish within 0\.3 s; connection closed$/);
    const after = await failureOf(t.exec("true"));
    expect(after.message).toMatch(/was lost: provision closed it after a command ran past the command timeout\./);
  });
});

/** The server side of a command that succeeds: reads the script, exits 0. */
function answer(stream: ssh2.ServerChannel): void {
  stream.on("data", () => undefined);
  stream.once("end", () => {
    stream.write("ok\n");
    stream.exit(0);
    stream.end();
  });
}

const answerEveryExec: Behaviour = (client) => {
  client.on("session", (accept) => accept().on("exec", (acceptExec) => answer(acceptExec())));
};

async function waitFor(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
