import { execFileSync } from "node:child_process";
import { SYSTEM_ENV } from "../shell.js";
import { mountPointsUnder } from "../teardown.js";

/** Detaches every mount at or below dir, deepest first; returns the mount points still there afterwards. */
export function unmountAllUnderSync(dir: string): string[] {
  for (const mountPoint of mountPointsUnder(dir).sort((a, b) => b.length - a.length)) {
    try {
      // Lazy: a process still using the mount must not keep the tree attached where we are about to delete it.
      execFileSync("umount", ["--lazy", mountPoint], { env: SYSTEM_ENV, stdio: "ignore" });
    } catch {
      // Reported through the return value.
    }
  }
  return mountPointsUnder(dir);
}
