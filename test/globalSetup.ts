import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One scratch directory per test run for the CLI's working directories; removed at the end. */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "provision-test-run-"));
  process.env.PROVISION_TEST_RUN_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
