import { renameSync, rmSync, writeFileSync } from "node:fs";

/**
 * Temp file beside it, then rename: a reader (a later run, node_exporter's textfile collector)
 * sees the whole old file or the whole new one, never half of one. The temp name keeps no
 * extension of the file's, so a collector globbing `*.prom` never reads it.
 */
export function writeAtomically(file: string, text: string, mode?: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, mode === undefined ? undefined : { mode });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
