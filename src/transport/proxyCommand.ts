import { spawn } from "node:child_process";
import { Duplex } from "node:stream";
import { childEnvironment } from "./childEnvironment.js";

/**
 * ProxyCommand, as OpenSSH runs it: `sh -c COMMAND` (through $SHELL in OpenSSH; sh here, so the
 * command means the same on every controller) whose stdin/stdout carry the SSH connection.
 */
export interface ProxyProcess {
  stream: Duplex;
  /** What the command printed on stderr (the last 2 KB), for messages. */
  stderr(): string;
  /** Exit status once it ended, null while it runs. */
  exitStatus(): string | null;
  stop(): void;
}

const STDERR_KEPT = 2048;

export function startProxyCommand(command: string): ProxyProcess {
  // Its own process group, so stop() also ends what the command started (nc, ssh -W, …).
  const child = spawn("sh", ["-c", command], {
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
    env: childEnvironment(),
  });
  let stderr = "";
  let status: string | null = null;
  child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString("utf8")).slice(-STDERR_KEPT)));
  child.on("exit", (code, signal) => (status = signal ? `killed by ${signal}` : `exit ${code}`));
  child.on("error", (err) => (status = `cannot start: ${err.message}`));
  child.stdin.on("error", () => undefined);
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  stream.on("error", () => undefined);
  return {
    stream,
    stderr: () => stderr.trim(),
    exitStatus: () => status,
    stop() {
      try {
        if (child.pid !== undefined && status === null) process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      stream.destroy();
    },
  };
}
