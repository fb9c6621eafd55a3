import { describe, expect, it } from "vitest";
import {
  countsOf,
  isGreen,
  parseSoakOptions,
  runLines,
  summaryLine,
  type RunResult,
  type VitestJson,
} from "../../scripts/soakCore.js";

describe("parseSoakOptions", () => {
  const ok: Array<[string[], object]> = [
    [[], { runs: 5, busyCores: 0, bail: false, vitestArgs: [] }],
    [["--runs", "3", "--busy-cores", "2"], { runs: 3, busyCores: 2 }],
    [
      ["--bail", "--", "test/e2e/faults.test.ts", "-t", "mid-write"],
      { bail: true, vitestArgs: ["test/e2e/faults.test.ts", "-t", "mid-write"] },
    ],
  ];
  it.each(ok)("%j", (argv, expected) => expect(parseSoakOptions(argv)).toMatchObject(expected));

  const bad: Array<[string[], RegExp]> = [
    [["--runs"], /--runs needs a value/],
    [["--runs", "0"], /--runs must be a whole number from 1 to 100, not "0"/],
    [["--runs", "2.5"], /not "2.5"/],
    [["--busy-cores", "-1"], /--busy-cores must be a whole number from 0 to 64/],
    [["--rusn", "3"], /unknown option "--rusn"/],
  ];
  it.each(bad)("%j is refused", (argv, message) => expect(() => parseSoakOptions(argv)).toThrow(message));
});

const report = (over: Partial<VitestJson> = {}): VitestJson => ({
  numPassedTests: 10,
  numFailedTests: 1,
  numPendingTests: 1,
  numTodoTests: 1,
  testResults: [
    {
      name: "/repo/test/e2e/faults.test.ts",
      status: "failed",
      assertionResults: [
        {
          fullName: "faults a connection killed mid-write",
          status: "failed",
          failureMessages: ["\nAssertionError: expected 'h3: …' to match /x/\n    at line 2"],
        },
        { fullName: "faults ok", status: "passed" },
      ],
    },
    {
      name: "/repo/test/e2e/fleet.test.ts",
      status: "failed",
      message: "Hook timed out in 120000ms",
      assertionResults: [],
    },
    { name: "/repo/test/unit/a.test.ts", status: "passed", assertionResults: [{ fullName: "a", status: "passed" }] },
  ],
  ...over,
});

describe("countsOf", () => {
  it("counts, and names every failure with its first line, also a file that failed outside its tests", () => {
    expect(countsOf(report(), "/repo")).toEqual({
      passed: 10,
      failed: 1,
      skipped: 2,
      failures: [
        {
          file: "test/e2e/faults.test.ts",
          test: "faults a connection killed mid-write",
          message: "AssertionError: expected 'h3: …' to match /x/",
        },
        { file: "test/e2e/fleet.test.ts", test: "(the file itself)", message: "Hook timed out in 120000ms" },
      ],
    });
  });
});

const run = (over: Partial<RunResult>): RunResult => ({
  index: 1,
  counts: { passed: 3400, failed: 0, skipped: 0, failures: [] },
  exitCode: 0,
  durationMs: 271_400,
  timedOut: false,
  leftovers: [],
  load1: 3.94,
  log: ".provision/soak/x/run-1.log",
  ...over,
});

describe("lines", () => {
  it("a green run is one line", () => {
    expect(isGreen(run({}))).toBe(true);
    expect(runLines(run({}), 5)).toEqual([
      "run 1/5: green · 3400 passed, 0 failed, 0 skipped · 271 s · load 3.9 at the end",
    ]);
  });

  it("a red run names each failure, what it left behind, and its log", () => {
    const r = run({
      index: 2,
      exitCode: 1,
      counts: {
        passed: 3399,
        failed: 1,
        skipped: 0,
        failures: [{ file: "test/e2e/f.test.ts", test: "t", message: "boom" }],
      },
      leftovers: ["netns pv1-h1"],
    });
    expect(isGreen(r)).toBe(false);
    expect(runLines(r, 5)).toEqual([
      "run 2/5: RED · 3399 passed, 1 failed, 0 skipped · 271 s · load 3.9 at the end",
      "  FAIL test/e2e/f.test.ts > t",
      "       boom",
      "  left behind: netns pv1-h1",
      "  log: .provision/soak/x/run-1.log",
    ]);
  });

  it("a run that left something behind is red even when every test passed", () => {
    expect(isGreen(run({ leftovers: ["sshd pid 77"] }))).toBe(false);
  });

  it("a run without a report, or killed at its timeout, is red and says so", () => {
    expect(runLines(run({ counts: null, exitCode: 1 }), 1)).toEqual([
      "run 1/1: RED · no report · 271 s · load 3.9 at the end",
      "  vitest exited 1",
      "  log: .provision/soak/x/run-1.log",
    ]);
    expect(runLines(run({ counts: null, exitCode: null, timedOut: true }), 1).slice(1)).toEqual([
      "  timed out and was killed",
      "  log: .provision/soak/x/run-1.log",
    ]);
  });

  it("the summary counts green runs, gives the durations, and the load beside them", () => {
    const rs = [
      run({ durationMs: 300_000 }),
      run({ index: 2, durationMs: 280_000, exitCode: 1 }),
      run({ index: 3, durationMs: 290_000 }),
    ];
    expect(summaryLine(rs, 2, 196.4)).toBe(
      "soak: 2 of 3 runs green · durations 280 s–300 s, median 290 s · 2 busy loops beside it (they got 196% CPU of 200%)",
    );
    expect(summaryLine([run({})], 0, null)).toBe(
      "soak: 1 of 1 runs green · durations 271 s–271 s, median 271 s · no extra load",
    );
  });
});
