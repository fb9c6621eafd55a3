import type { ExecOptions, ExecResult, Transport } from "./types.js";

/**
 * `--verbose`: one line per remote step (host, sudo or not, script size, exit code, time, stderr).
 * Scripts are not printed: they carry file contents, and a log line per step is what a reader of
 * a failed run needs. Nothing secret ever passes through here — the sudo password is written to
 * sudo's stdin inside the SSH transport, never into a script or its output.
 */
export class LoggingTransport implements Transport {
  constructor(
    private readonly inner: Transport,
    private readonly log: (line: string) => void,
  ) {}

  get hostName(): string {
    return this.inner.hostName;
  }

  get remoteAddress(): string {
    return this.inner.remoteAddress;
  }

  async exec(script: string, opts?: ExecOptions): Promise<ExecResult> {
    const started = Date.now();
    const what = `${this.hostName}: exec ${Buffer.byteLength(script)} bytes${opts?.sudo ? " via sudo" : ""}`;
    try {
      const r = await this.inner.exec(script, opts);
      const stderr = r.stderr.trim() === "" ? "" : `; stderr: ${r.stderr.trim().replace(/\s+/g, " ").slice(0, 500)}`;
      this.log(
        `${what} → exit ${r.code ?? "none"} in ${Date.now() - started} ms, ${r.stdout.length} bytes out${stderr}`,
      );
      return r;
    } catch (err) {
      this.log(`${what} → failed in ${Date.now() - started} ms: ${(err as Error).message}`);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.inner.close();
  }
}
