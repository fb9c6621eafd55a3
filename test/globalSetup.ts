import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanupStaleFleets } from "./fleet/fleet.js";

/**
 * One scratch directory per test run for the CLI's working directories and the tests' temp
 * files; removed at the end. Fleets left by an earlier run that was killed (its owner is gone)
 * are removed first, so their addresses and names can't get in this run's way.
 */
export default async function setup(): Promise<() => void> {
  const stale = await cleanupStaleFleets();
  if (stale.length > 0)
    console.warn(`removed ${stale.length} fleet(s) left by an earlier, killed test run: ${stale.join(", ")}`);
  const dir = mkdtempSync(join(tmpdir(), "provision-test-run-"));
  process.env.PROVISION_TEST_RUN_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
