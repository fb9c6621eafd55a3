import { spawn } from "node:child_process";
import { SYSTEM_ENV } from "../shell.js";

const LOCKED_SIGNAL = "locked";
const RELEASE_WAIT_MS = 5_000;

/**
 * Runs `work` while holding an exclusive flock(1) on lockFile, across processes.
 * A child `flock` holds the lock until its stdin closes, which also happens when this process dies, so a killed
 * holder never leaves the lock taken.
 */
export async function withFileLock<T>(lockFile: string, waitMs: number, work: () => Promise<T>): Promise<T> {
  const waitSeconds = String(Math.ceil(waitMs / 1000));
  const holder = spawn(
    "flock",
    ["--exclusive", "--wait", waitSeconds, lockFile, "sh", "-c", `echo ${LOCKED_SIGNAL}; exec cat >/dev/null`],
    { stdio: ["pipe", "pipe", "pipe"], env: SYSTEM_ENV },
  );
  const exited = new Promise<number | null>((resolve) => holder.once("close", resolve));
  holder.stdin.on("error", () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      let stderr = "";
      holder.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      holder.stdout.once("data", () => resolve());
      holder.once("error", reject);
      void exited.then((code) =>
        reject(
          new Error(`could not lock ${lockFile} within ${waitMs} ms (flock exited with ${code}): ${stderr.trim()}`),
        ),
      );
    });
    return await work();
  } finally {
    holder.stdin.end();
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, RELEASE_WAIT_MS).unref())]);
  }
}
