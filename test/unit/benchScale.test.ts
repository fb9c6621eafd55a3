import { describe, expect, it } from "vitest";
import {
  formatScale,
  scaleProblems,
  scaleTargets,
  type ScaleResult,
  type ScaleRun,
  type ScaleSize,
} from "../../scripts/benchScaleCore.js";

const run = (wallMs: number, peakMb: number, summary: string, over: Partial<ScaleRun> = {}): ScaleRun => ({
  wallMs,
  exitCode: 0,
  peakRssKb: peakMb * 1024,
  summary,
  outputBytes: 4096,
  recordBytes: 900_000,
  ...over,
});
const first = (n: number) => `Run: ${n} changed, 0 unchanged, 0 failed, 0 unreachable.`;
const noop = (n: number) => `Run: 0 changed, ${n} unchanged, 0 failed, 0 unreachable.`;

function size(
  hosts: number,
  perHostMs: number,
  peakMb: number,
  over: Partial<Omit<ScaleSize, "problems">> = {},
): ScaleSize {
  const measured = {
    hosts,
    forks: 50,
    firstRun: run(hosts * perHostMs, peakMb, first(hosts)),
    noop: run(hosts * 7, peakMb / 2, noop(hosts)),
    sim: { connections: hosts * 3, peakOpen: 250, execs: hosts * 5, unknownScripts: 0 },
    ...over,
  };
  return { ...measured, problems: scaleProblems(measured) };
}
const result = (...sizes: ScaleSize[]): ScaleResult => ({
  recording: { from: "a real fleet host", scripts: 5 },
  sizes,
});
const verdicts = (r: ScaleResult) => scaleTargets(r).map((t) => [t.verdict, t.measured, t.reason ?? ""]);

describe("scale targets", () => {
  it.each<[string, ScaleResult, string[][]]>([
    [
      "both met",
      result(size(1000, 15, 180), size(5000, 15.5, 260), size(10_000, 16, 320)),
      [
        ["PASS", "320.0 MB", ""],
        ["PASS", "1.07×", ""],
      ],
    ],
    [
      "too much memory, too slow per host",
      result(size(1000, 15, 180), size(10_000, 19, 520)),
      [
        ["MISS", "520.0 MB", ""],
        ["MISS", "1.27×", ""],
      ],
    ],
    [
      "exactly 1.2x passes",
      result(size(1000, 10, 180), size(10_000, 12, 320)),
      [
        ["PASS", "320.0 MB", ""],
        ["PASS", "1.20×", ""],
      ],
    ],
    [
      "10,000 not measured: skipped, not passed",
      result(size(1000, 15, 180)),
      [
        ["SKIP", "-", "10000 hosts not measured"],
        ["SKIP", "-", "1000 and 10000 hosts not both measured"],
      ],
    ],
  ])("%s", (_what, r, expected) => {
    expect(verdicts(r)).toEqual(expected);
  });

  it("a size whose runs did not do what a fleet would misses, whatever its numbers", () => {
    const failedHost = size(10_000, 10, 100, {
      firstRun: run(100_000, 100, "Run: 9999 changed, 0 unchanged, 1 failed, 0 unreachable.", { exitCode: 1 }),
    });
    expect(failedHost.problems).toEqual([
      "the first run exited 1",
      'the first run said "Run: 9999 changed, 0 unchanged, 1 failed, 0 unreachable.", not "Run: 10000 changed, 0 unchanged, 0 failed, 0 unreachable."',
    ]);
    const [memory, time] = scaleTargets(result(size(1000, 15, 180), failedHost));
    expect(memory).toMatchObject({ verdict: "MISS", reason: expect.stringContaining("exited 1") });
    expect(time).toMatchObject({ verdict: "MISS" });
    const unknown = size(1000, 15, 180, { sim: { connections: 1, peakOpen: 1, execs: 1, unknownScripts: 3 } });
    expect(unknown.problems).toEqual(["3 scripts were not in the recording (record again: the scripts changed)"]);
  });

  it("formats one row per run with per-host time, peak RSS, record and output sizes", () => {
    const text = formatScale(result(size(1000, 15.3, 181), size(10_000, 16, 320)));
    expect(text).toContain("simulated fleet (answers recorded from a real fleet host, 5 scripts), --forks 50:");
    expect(text).toMatch(/10,000\s+first run\s+160\.00 s\s+16\.00 ms\s+320\.0 MB\s+879 KB\s+4 KB\s+ok/);
    expect(text).toMatch(/1,000\s+no-op run\s+7\.00 s\s+7\.00 ms\s+90\.5 MB/);
  });
});
