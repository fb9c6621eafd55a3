import { spawn } from "node:child_process";
import { HostError, type ExecOptions, type ExecResult, type Transport } from "./types.js";

/**
 * `ansible_connection: local`: the host is the machine provision runs on (image builds, the
 * controller's own tuning). Each script runs in a new `sh -s` with LC_ALL=C, through `sudo -n`
 * where become asks for root and provision is not root already. There is no SSH session, so
 * fd-limits checks new sessions with `su -l` only (its plan says so).
 */
export class LocalTransport implements Transport {
  /** No address: nothing on this machine is reached through one of its addresses. */
  readonly remoteAddress = "";

  constructor(
    readonly hostName: string,
    private readonly commandTimeoutMs: number,
  ) {}

  exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise((resolve, reject) => {
      const throughSudo = opts.sudo === true && process.getuid?.() !== 0;
      const [file, args] = throughSudo ? ["sudo", ["-n", "--", "sh", "-s"]] : ["sh", ["-s"]];
      // Its own process group, so a timeout ends the script and everything it started.
      const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"], detached: true });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // already gone
        }
      }, timeoutMs);
      child.stdout.on("data", (d: Buffer) => stdout.push(d));
      child.stderr.on("data", (d: Buffer) => stderr.push(d));
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(new HostError(`cannot start ${file} on ${this.hostName} (local): ${err.message}`, "command"));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        if (timedOut) {
          reject(
            new HostError(
              `the command on ${this.hostName} (local) did not finish within ${Math.round(timeoutMs / 1000)} s`,
              "timeout",
            ),
          );
          return;
        }
        const result = {
          stdout: Buffer.concat(stdout).toString("utf8"),
          stderr: Buffer.concat(stderr).toString("utf8"),
          code,
          signal,
        };
        if (throughSudo && code === 1 && /sudo: (a password is required|a terminal is required)/.test(result.stderr)) {
          reject(
            new HostError(
              `sudo on ${this.hostName} (local) needs a password: with ansible_connection: local, run provision as root or allow NOPASSWD sudo for this user`,
              "sudo",
            ),
          );
          return;
        }
        resolve(result);
      });
      child.stdin.on("error", () => undefined);
      child.stdin.end(`export LC_ALL=C\n${script}`);
    });
  }

  async close(): Promise<void> {
    // Nothing stays open between scripts.
  }
}
