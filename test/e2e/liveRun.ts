import { spawn } from "node:child_process";
import { join } from "node:path";
import { PROJECT_ROOT, workDir, type CliResult } from "./helpers.js";

const BIN = join(PROJECT_ROOT, "bin", "provision.js");

export interface TimedLine {
  /** Milliseconds since the CLI was started. */
  at: number;
  stream: "stdout" | "stderr";
  text: string;
}

export interface TimedResult extends CliResult {
  elapsedMs: number;
  lines: TimedLine[];
}

/**
 * The real `provision` binary, watched while it runs: every output line with the time it
 * arrived, and waitFor() to act (kill, drift) at a given point of the run. Killed at timeoutMs.
 */
export class LiveRun {
  readonly lines: TimedLine[] = [];
  readonly done: Promise<TimedResult>;
  private readonly started = Date.now();
  private readonly watchers = new Set<() => void>();
  private closed = false;

  private readonly child: ReturnType<typeof spawn>;

  constructor(args: string[], timeoutMs: number) {
    const child = (this.child = spawn(process.execPath, [BIN, ...args], {
      cwd: workDir(),
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", NO_COLOR: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    }));
    let stdout = "";
    let stderr = "";
    const partial = { stdout: "", stderr: "" };
    const onData = (stream: "stdout" | "stderr") => (d: Buffer) => {
      const text = d.toString();
      if (stream === "stdout") stdout += text;
      else stderr += text;
      const parts = (partial[stream] + text).split("\n");
      partial[stream] = parts.pop() ?? "";
      for (const line of parts) this.lines.push({ at: this.elapsed(), stream, text: line });
      for (const w of this.watchers) w();
    };
    child.stdout.on("data", onData("stdout"));
    child.stderr.on("data", onData("stderr"));
    child.stdin.end("");
    this.done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(
          new Error(
            `provision ${args.join(" ")} did not finish within ${timeoutMs} ms (it hung)\n${stdout}\n${stderr}`,
          ),
        );
      }, timeoutMs);
      child.on("close", (code) => {
        clearTimeout(timer);
        // A last line without a newline is still a line.
        for (const stream of ["stdout", "stderr"] as const)
          if (partial[stream] !== "") this.lines.push({ at: this.elapsed(), stream, text: partial[stream] });
        this.closed = true;
        for (const w of this.watchers) w();
        resolve({ code, stdout, stderr, elapsedMs: this.elapsed(), lines: this.lines });
      });
    });
    this.done.catch(() => undefined);
  }

  /**
   * Holds the CLI still (SIGSTOP) while a test strikes at a chosen point of the run, then lets it
   * go on (SIGCONT): the strike lands before the CLI moves on, however slow the machine.
   */
  async whileHeld<T>(strike: () => Promise<T> | T): Promise<T> {
    this.child.kill("SIGSTOP");
    try {
      return await strike();
    } finally {
      this.child.kill("SIGCONT");
    }
  }

  /** Ends a run a failed test leaves behind, so it can't keep changing the fleet under the next test. */
  async kill(): Promise<void> {
    if (this.closed) return;
    this.child.kill("SIGKILL");
    await this.done.catch(() => undefined);
  }

  elapsed(): number {
    return Date.now() - this.started;
  }

  /** Resolves with the arrival time of the first line matching `pattern`; rejects after timeoutMs or if the CLI ends first. */
  waitFor(stream: "stdout" | "stderr", pattern: RegExp, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.lines.find((l) => l.stream === stream && pattern.test(l.text));
        if (hit) finish(() => resolve(hit.at));
        else if (this.closed)
          finish(() =>
            reject(new Error(`provision ended without printing ${pattern} on ${stream}:\n${this.transcript()}`)),
          );
      };
      const timer = setTimeout(
        () =>
          finish(() => reject(new Error(`no ${pattern} on ${stream} within ${timeoutMs} ms:\n${this.transcript()}`))),
        timeoutMs,
      );
      const finish = (then: () => void) => {
        clearTimeout(timer);
        this.watchers.delete(check);
        then();
      };
      this.watchers.add(check);
      check();
    });
  }

  /** When the line matching `pattern` arrived (ms since start), or undefined. */
  timeOf(stream: "stdout" | "stderr", pattern: RegExp): number | undefined {
    return this.lines.find((l) => l.stream === stream && pattern.test(l.text))?.at;
  }

  transcript(): string {
    return this.lines
      .map((l) => `${String(l.at).padStart(6)} ${l.stream === "stdout" ? "out" : "err"} ${l.text}`)
      .join("\n");
  }
}

export function startProvision(args: string[], timeoutMs = 60_000): LiveRun {
  return new LiveRun(args, timeoutMs);
}
