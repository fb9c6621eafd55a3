import { newNonce } from "../remote/records.js";
import type { ResolvedHost } from "../resolve.js";
import type { Session } from "../session.js";
import { HostError } from "../transport/types.js";
import { statusScript } from "./collect.js";
import { parseStatusOutput, StatusParseError, type HostSample } from "./sample.js";
import {
  closestWall,
  judgeHost,
  worstVerdict,
  type Thresholds,
  type Verdict,
  type Wall,
  type WallId,
} from "./walls.js";

export interface HostStatus {
  host: string;
  /** "error": the host could not be read. */
  verdict: Verdict | "error";
  walls: Wall[];
  closest: WallId | null;
  windowSeconds: number | null;
  error?: { kind: string; message: string };
}

/** One round trip per host: the script samples for `windowSeconds`, then the controller judges. */
export async function readStatus(
  session: Session,
  hosts: ResolvedHost[],
  windowSeconds: number,
  thresholds: Thresholds,
): Promise<HostStatus[]> {
  const results = await session.each(hosts, "status", async (transport, host) => {
    const nonce = newNonce();
    const result = await transport.exec(statusScript(nonce, windowSeconds), { sudo: host.become });
    if (result.code !== 0)
      throw new HostError(`the status script failed (exit ${result.code}): ${result.stderr.trim()}`, "command");
    try {
      return parseStatusOutput(result.stdout, nonce);
    } catch (err) {
      if (err instanceof StatusParseError) throw new HostError(`reading status: ${err.message}`, "command");
      throw err;
    }
  });
  return results.map((r) => ("value" in r ? judged(r.host, r.value, thresholds) : failed(r.host, r.error)));
}

export function judged(host: string, sample: HostSample, thresholds: Thresholds): HostStatus {
  const walls = judgeHost(sample, thresholds);
  return {
    host,
    verdict: worstVerdict(walls),
    walls,
    closest: closestWall(walls)?.wall ?? null,
    windowSeconds: sample.windowSeconds,
  };
}

function failed(host: string, error: { kind: string; message: string }): HostStatus {
  return { host, verdict: "error", walls: [], closest: null, windowSeconds: null, error };
}

/** Documented in the README: a critical wall is news even when another host could not be read. */
export const EXIT_CRITICAL = 3;

export function statusExitCode(statuses: readonly HostStatus[]): number {
  if (statuses.some((s) => s.verdict === "critical")) return EXIT_CRITICAL;
  return statuses.some((s) => s.verdict === "error") ? 1 : 0;
}
