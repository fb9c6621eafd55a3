import { execFile, type ExecFileException } from "node:child_process";
import { readFileSync } from "node:fs";

/** Fixed environment for every child: the caller's PATH may lack the sbin directories (ip, sshd, useradd). */
export const SYSTEM_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C",
};

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

const TIMED_OUT_EXIT_CODE = 124;
const NOT_STARTED_EXIT_CODE = 127;

/** Runs a program to completion; never rejects, a failure is reported through `code`. */
export function runCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        env: { ...SYSTEM_ENV, ...options.env },
        cwd: "/",
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
        timeout: options.timeoutMs ?? 0,
        killSignal: "SIGKILL",
      },
      (error, stdout, stderr) => resolve(toResult(error, stdout, stderr, options.timeoutMs)),
    );
    // An absent reader (e.g. a program that exits early) must not crash the test process.
    child.stdin?.on("error", () => {});
    child.stdin?.end(options.input ?? "");
  });
}

function toResult(error: ExecFileException | null, stdout: string, stderr: string, timeoutMs?: number): CommandResult {
  if (!error) return { stdout, stderr, code: 0 };
  if (error.killed && timeoutMs) {
    return { stdout, stderr: `${stderr}\ntimed out after ${timeoutMs} ms`, code: TIMED_OUT_EXIT_CODE };
  }
  if (typeof error.code === "number") return { stdout, stderr, code: error.code };
  if (error.signal) return { stdout, stderr: `${stderr}\nkilled by ${error.signal}`, code: 128 };
  return { stdout, stderr: `${stderr}${error.message}`, code: NOT_STARTED_EXIT_CODE };
}

/** Like runCommand, but a non-zero exit becomes an exception that carries the command's stderr. */
export async function runChecked(file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await runCommand(file, args, options);
  if (result.code !== 0) {
    throw new Error(`${file} ${args.join(" ")} exited with ${result.code}: ${result.stderr.trim()}`);
  }
  return result.stdout;
}

export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: unknown;
  async function worker(): Promise<void> {
    // Stop taking new items after the first failure so the caller can tear down sooner.
    while (next < items.length && failure === undefined) {
      const index = next++;
      try {
        results[index] = await work(items[index] as T);
      } catch (error) {
        failure ??= error;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
  return results;
}

/** Like Promise.all, but settles every promise before throwing the first failure, so teardown never races a step still running. */
export async function allOrThrow<T extends readonly unknown[]>(
  promises: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const results = await Promise.allSettled(promises);
  const failure = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
  if (failure) throw failure.reason;
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: Awaited<T[K]>;
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Blocking sleep, for cleanup paths that must finish inside a synchronous 'exit' handler. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** True while the process exists and is not a zombie (a zombie has already released its namespaces). */
export function isProcessRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Polls /proc (not a child handle, which changes only once SIGCHLD is handled) until pid is gone; false if it still runs at the deadline. */
export async function waitUntilGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessRunning(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}
