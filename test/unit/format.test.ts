import { describe, expect, it } from "vitest";
import type { HostReport } from "../../src/report.js";
import type { CheckResult } from "../../src/verify.js";
import type { PlannedChange } from "../../src/plan.js";
import {
  groupAlikePlans,
  planSummary,
  plainStyle,
  renderErrors,
  renderPlan,
  renderRunResult,
  renderVerify,
  ttyStyle,
} from "../../src/output/format.js";
import { changed, failed, FILE, RANGE, REUSE } from "./_reports.js";

const reports: HostReport[] = [
  changed("web01", [FILE, REUSE], [{ role: "tw-reuse", text: "hello" }]),
  changed("web02", [FILE, REUSE], [{ role: "tw-reuse", text: "hello" }]),
  changed("web03", [RANGE]),
  changed("db01", []),
  failed("db02", "unreachable", "connect ECONNREFUSED"),
];

describe("groupAlikePlans: identical plans", () => {
  it("groups hosts whose changes are identical, in first-seen order, leaving out failed hosts", () => {
    expect(groupAlikePlans(reports).map((g) => [g.hosts, g.hosts[0]])).toEqual([
      [["web01", "web02"], "web01"],
      [["web03"], "web03"],
      [["db01"], "db01"],
    ]);
  });

  it("keeps hosts apart when the same change belongs to another role", () => {
    const other = { ...REUSE, role: "other-role" } as typeof REUSE;
    expect(groupAlikePlans([changed("a", [REUSE]), changed("b", [other])]).map((g) => g.hosts)).toEqual([["a"], ["b"]]);
  });

  it("keeps hosts apart when the order of changes differs", () => {
    expect(groupAlikePlans([changed("a", [FILE, REUSE]), changed("b", [REUSE, FILE])]).map((g) => g.hosts)).toEqual([
      ["a"],
      ["b"],
    ]);
  });

  it("keeps hosts apart when their notes differ (a per-host finding stays with its host)", () => {
    const note = [{ role: "syn-backlog", text: "port 8080 listens with backlog 16" }];
    expect(groupAlikePlans([changed("a", [REUSE], note), changed("b", [REUSE])]).map((g) => g.hosts)).toEqual([
      ["a"],
      ["b"],
    ]);
  });

  it("groups every host with no changes together", () => {
    expect(groupAlikePlans([changed("a", []), changed("b", []), changed("c", [])]).map((g) => g.hosts)).toEqual([
      ["a", "b", "c"],
    ]);
  });
});

describe("groupAlikePlans: plans alike but for per-host live values", () => {
  const sysctl = (before: string | null, after = "1", key = "net.ipv4.tcp_tw_reuse"): PlannedChange => ({
    ...(REUSE as Extract<PlannedChange, { kind: "sysctl" }>),
    key,
    before,
    after,
  });
  const file = (before: string | null, after = "# why\n"): PlannedChange => ({
    ...(FILE as Extract<PlannedChange, { kind: "file" }>),
    before,
    after,
  });
  const command = (argv: string[]): PlannedChange => ({ kind: "command", argv, description: "d", role: "tw-reuse" });
  const note = (text: string, role = "tw-reuse") => ({ role, text });

  it.each<[string, HostReport[], string[][]]>([
    ["identical plans group as before", reports, [["web01", "web02"], ["web03"], ["db01"]]],
    [
      "live values differ",
      [changed("a", [sysctl("0")]), changed("b", [sysctl("2")]), changed("c", [sysctl(null)])],
      [["a", "b", "c"]],
    ],
    ["new values differ", [changed("a", [sysctl("0", "1")]), changed("b", [sysctl("0", "2")])], [["a"], ["b"]]],
    ["keys differ", [changed("a", [sysctl("0")]), changed("b", [sysctl("0", "1", "other.key")])], [["a"], ["b"]]],
    [
      "a file's old content differs (another diff)",
      [changed("a", [file(null)]), changed("b", [file("x\n")])],
      [["a"], ["b"]],
    ],
    [
      "a file's new content differs",
      [changed("a", [file(null, "1\n")]), changed("b", [file(null, "2\n")])],
      [["a"], ["b"]],
    ],
    ["commands differ", [changed("a", [command(["true"])]), changed("b", [command(["false"])])], [["a"], ["b"]]],
    [
      "the order of changes differs",
      [changed("a", [sysctl("0"), file(null)]), changed("b", [file(null), sysctl("0")])],
      [["a"], ["b"]],
    ],
    ["the role differs", [changed("a", [sysctl("0")]), changed("b", [{ ...sysctl("0"), role: "x" }])], [["a"], ["b"]]],
    [
      "notes differ only in per-host details",
      [
        changed("a", [sysctl("5")], [note("backlog 5 on 10.0.0.5")]),
        changed("b", [sysctl("6")], [note("backlog 6 on 10.0.0.6")]),
      ],
      [["a", "b"]],
    ],
    [
      "notes differ in words",
      [changed("a", [sysctl("5")], [note("backlog 5")]), changed("b", [sysctl("5")], [note("queue 5")])],
      [["a"], ["b"]],
    ],
    [
      "one host has a note more",
      [changed("a", [sysctl("5")], [note("n")]), changed("b", [sysctl("5")])],
      [["a"], ["b"]],
    ],
    ["hosts without changes, whatever their notes", [changed("a", [], [note("x")]), changed("b", [])], [["a", "b"]]],
  ])("%s", (_what, rs, expected) => {
    expect(groupAlikePlans(rs).map((g) => g.hosts)).toEqual(expected);
  });

  it.each<[string, Array<string | null>, string | null]>([
    ["the same on all hosts: itself", ["2", "2"], "2"],
    ["a run: a range", ["1001", "1002", "1003"], "[1001:1003]"],
    ["absent on all hosts", [null, null], null],
    ["absent on some", [null, "2"], "{(absent), 2}"],
    ["several numbers, one differing", ["32768 60999", "32768 61000"], "32768 {60999, 61000}"],
  ])("folds the live values: %s", (_what, befores, expected) => {
    const groups = groupAlikePlans(befores.map((b, i) => changed(`h${i}`, [sysctl(b)])));
    expect(groups).toHaveLength(1);
    expect(groups[0]!.changes[0]).toMatchObject({ kind: "sysctl", before: expected });
  });

  it("shows each group's live values and notes folded, in text and Markdown; the reports are left as they are", () => {
    const rs = [1, 2, 3].map((i) =>
      changed(`web0${i}`, [sysctl(String(i), "0")], [note(`port ${8000 + i} listens with backlog ${i}`)]),
    );
    const copy = structuredClone(rs);
    expect(renderPlan(rs, "text")).toBe(
      [
        "web[01:03] (3 hosts): 1 change",
        "  tw-reuse:",
        "    net.ipv4.tcp_tw_reuse: [1:3] → 0",
        "  note (tw-reuse): port [8001:8003] listens with backlog [1:3]",
        "",
        "Plan: 3 changes on 3 hosts, 0 unchanged, 0 failed.",
        "",
      ].join("\n"),
    );
    const md = renderPlan(rs, "markdown");
    expect(md).toContain("<details><summary>web[01:03] (3 hosts): 1 change</summary>");
    expect(md).toContain("| `net.ipv4.tcp_tw_reuse` | `[1:3]` | `0` |");
    expect(md).toContain("- _tw-reuse_: port [8001:8003] listens with backlog [1:3]");
    expect(rs).toEqual(copy);
  });
});

describe("renderPlan (text)", () => {
  it("prints each group once with its changes, diffs, notes, errors and the summary", () => {
    expect(renderPlan(reports, "text")).toBe(
      [
        "web01, web02 (2 hosts): 2 changes",
        "  tw-reuse:",
        "    net.ipv4.tcp_tw_reuse: 2 → 1",
        "    --- /dev/null",
        "    +++ /etc/sysctl.d/60-provision-tw-reuse.conf",
        "    @@ -0,0 +1,2 @@",
        "    +# why",
        "    +net.ipv4.tcp_tw_reuse = 1",
        "  note (tw-reuse): hello",
        "",
        "web03 (1 host): 1 change",
        "  ephemeral-ports:",
        "    net.ipv4.ip_local_port_range: (absent) → 1024 65535",
        "",
        "db01 (1 host): no changes",
        "errors:",
        "  db02: UNREACHABLE: connect ECONNREFUSED",
        "",
        "Plan: 5 changes on 3 hosts, 1 unchanged, 1 failed.",
        "",
      ].join("\n"),
    );
  });

  it("ends with the summary line", () => {
    const lines = renderPlan(reports, "text").trimEnd().split("\n");
    expect(lines.at(-1)).toBe(planSummary(reports));
  });

  it("colors with the tty style: bold titles, red before, green after", () => {
    const out = renderPlan([changed("web01", [REUSE])], "text", ttyStyle);
    expect(out).toContain("\x1b[1mweb01 (1 host): 1 change\x1b[0m");
    expect(out).toContain("net.ipv4.tcp_tw_reuse: \x1b[31m2\x1b[0m → \x1b[32m1\x1b[0m");
  });

  it("colors diff lines", () => {
    const out = renderPlan(
      [changed("web01", [{ ...FILE, before: "# why\nnet.ipv4.tcp_tw_reuse = 2\n" } as typeof FILE])],
      "text",
      ttyStyle,
    );
    expect(out).toContain("\x1b[1m--- /etc/sysctl.d/60-provision-tw-reuse.conf\x1b[0m");
    expect(out).toContain("\x1b[31m-net.ipv4.tcp_tw_reuse = 2\x1b[0m");
    expect(out).toContain("\x1b[32m+net.ipv4.tcp_tw_reuse = 1\x1b[0m");
    expect(out).toContain("\x1b[2m@@ -1,2 +1,2 @@\x1b[0m");
  });

  it("uses no escape codes with the plain style", () => {
    expect(renderPlan(reports, "text", plainStyle)).not.toContain("\x1b[");
  });

  it("prints only the summary for no hosts", () => {
    expect(renderPlan([], "text")).toBe("Plan: 0 changes on 0 hosts, 0 unchanged, 0 failed.\n");
  });
});

describe("renderPlan (markdown)", () => {
  const md = renderPlan(reports, "markdown");

  it("renders the summary, the errors, then each group collapsed with its table of live values and fenced diffs", () => {
    expect(md).toBe(
      [
        "### provision plan",
        "",
        "Plan: 5 changes on 3 hosts, 1 unchanged, 1 failed.",
        "",
        "#### errors",
        "- **db02** (unreachable): connect ECONNREFUSED",
        "",
        "<details><summary>web01, web02 (2 hosts): 2 changes</summary>",
        "",
        "**tw-reuse**",
        "",
        "| key | live | new |",
        "|---|---|---|",
        "| `net.ipv4.tcp_tw_reuse` | `2` | `1` |",
        "",
        "```diff",
        "--- /dev/null",
        "+++ /etc/sysctl.d/60-provision-tw-reuse.conf",
        "@@ -0,0 +1,2 @@",
        "+# why",
        "+net.ipv4.tcp_tw_reuse = 1",
        "```",
        "",
        "- _tw-reuse_: hello",
        "",
        "</details>",
        "",
        "<details><summary>web03 (1 host): 1 change</summary>",
        "",
        "**ephemeral-ports**",
        "",
        "| key | live | new |",
        "|---|---|---|",
        "| `net.ipv4.ip_local_port_range` | `(absent)` | `1024 65535` |",
        "",
        "</details>",
        "",
        "**db01 (1 host)**: no changes",
        "",
      ].join("\n"),
    );
  });

  it("never uses terminal colors, even with the tty style", () => {
    expect(renderPlan(reports, "markdown", ttyStyle)).not.toContain("\x1b[");
  });

  it("balances its code fences", () => {
    expect((md.match(/^```/gm) ?? []).length % 2).toBe(0);
  });
});

describe("planSummary", () => {
  it.each<[string, HostReport[], string]>([
    ["nothing", [], "Plan: 0 changes on 0 hosts, 0 unchanged, 0 failed."],
    ["one change on one host", [changed("a", [REUSE])], "Plan: 1 change on 1 host, 0 unchanged, 0 failed."],
    [
      "several",
      [changed("a", [REUSE, FILE]), changed("b", [RANGE]), changed("c", [])],
      "Plan: 3 changes on 2 hosts, 1 unchanged, 0 failed.",
    ],
    [
      "failed and unreachable both count as failed",
      [failed("a", "failed", "x"), failed("b", "unreachable", "y"), changed("c", [])],
      "Plan: 0 changes on 0 hosts, 1 unchanged, 2 failed.",
    ],
  ])("%s", (_what, rs, expected) => {
    expect(planSummary(rs)).toBe(expected);
  });
});

describe("renderErrors", () => {
  const rs = [
    changed("a", []),
    failed("b", "failed", "sudo: a password is required"),
    failed("c", "unreachable", "timeout"),
  ];

  it.each<["text" | "markdown", string[]]>([
    ["text", ["errors:", "  b: FAILED: sudo: a password is required", "  c: UNREACHABLE: timeout", ""]],
    [
      "markdown",
      ["#### errors", "- **b** (failed): sudo: a password is required", "- **c** (unreachable): timeout", ""],
    ],
  ])("%s", (format, expected) => {
    expect(renderErrors(rs, format)).toEqual(expected);
  });

  it("prints nothing without errors", () => {
    expect(renderErrors([changed("a", [])], "text")).toEqual([]);
  });
});

describe("renderErrors at fleet size", () => {
  it("one entry per distinct failure, its hosts folded into a range", () => {
    const many = [
      ...Array.from({ length: 50 }, (_, i) => failed(`web${String(i + 1).padStart(2, "0")}`, "failed", "same refusal")),
      failed("db01", "failed", "another problem"),
      failed("web51", "unreachable", "same refusal"),
    ];
    expect(renderErrors(many, "text")).toEqual([
      "errors:",
      "  web[01:50] (50 hosts): FAILED: same refusal",
      "  db01: FAILED: another problem",
      "  web51: UNREACHABLE: same refusal",
      "",
    ]);
  });
});

describe("per-host details", () => {
  it("hosts refused each at its own address are one entry, the addresses folded", () => {
    const rs = ["h1", "h2", "h3"].map((h, i) => failed(h, "unreachable", `connection refused by 10.0.0.${i + 1}:22`));
    expect(renderErrors(rs, "text")).toEqual([
      "errors:",
      "  h[1:3] (3 hosts): UNREACHABLE: connection refused by 10.0.0.[1:3]:22",
      "",
    ]);
  });

  it("groups colored lines by their text, keeping the colors", () => {
    const rs = ["h1", "h2", "h3"].map((h, i) => failed(h, "failed", `refused by 10.0.0.${i + 1}`));
    expect(renderRunResult(rs, ttyStyle).split("\n")[0]).toBe(
      "h[1:3] (3 hosts): \x1b[31mFAILED\x1b[0m: refused by 10.0.0.[1:3]",
    );
  });

  it("a single host's message is printed as it is", () => {
    expect(renderErrors([failed("h1", "failed", "pid 4711 at 10.0.0.1")], "text")[1]).toBe(
      "  h1: FAILED: pid 4711 at 10.0.0.1",
    );
  });
});

describe("renderVerify (markdown)", () => {
  const check = (key: string, expected: string, actual: string): CheckResult => ({
    check: { kind: "sysctl", key, expected, message: `${key} is live`, role: "tw-reuse" },
    actual,
    ok: expected === actual,
  });
  const verified = (host: string, checks: CheckResult[]): HostReport => ({
    host,
    status: checks.every((c) => c.ok) ? "unchanged" : "failed",
    checks,
  });

  it("the summary, host errors, groups with mismatches open and groups that passed collapsed", () => {
    const md = renderVerify(
      [
        verified("h1", [check("a", "1", "1"), check("b", "2", "2")]),
        verified("h2", [check("a", "1", "0"), check("b", "2", "2")]),
        verified("h3", [check("a", "1", "1"), check("b", "2", "2")]),
        failed("h4", "unreachable", "connect ECONNREFUSED"),
      ],
      "markdown",
    );
    expect(md).toBe(
      [
        "### provision verify",
        "",
        "Verify: 5/6 checks ok on 2/4 hosts; 1 mismatch, 1 host errors.",
        "",
        "#### errors",
        "- **h4** (unreachable): connect ECONNREFUSED",
        "",
        "<details open><summary>h2: 1 of 2 MISMATCH</summary>",
        "",
        "| check | expected | actual | |",
        "|---|---|---|---|",
        "| `a` | `1` | `0` | **MISMATCH** |",
        "",
        "1 other check passed.",
        "",
        "</details>",
        "",
        "<details><summary>h1, h3 (2 hosts): 2/2 ok</summary>",
        "",
        "| check | expected | actual | |",
        "|---|---|---|---|",
        "| `a` | `1` | `1` | ok |",
        "| `b` | `2` | `2` | ok |",
        "",
        "</details>",
        "",
      ].join("\n"),
    );
  });
});
