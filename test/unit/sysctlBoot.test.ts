import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { bootSettings, parseBootListing, parseLine, SYSCTL_DIRS, sysctlBootProbe } from "../../src/facts/sysctlBoot.js";
import { bootTruthChecks } from "../../src/sysctl/dropin.js";
import { evaluateChecks } from "../../src/verify.js";
import { planHost } from "../../src/plan.js";
import { findRole } from "../../src/roles.js";
import { facts, factsAfter, hostWith, withBootTruth } from "./_roles.js";

const f = (path: string, content: string) => ({ path, content });

describe("bootSettings: which file wins at boot (sysctl.d(5))", () => {
  it.each([
    [
      "a later file name wins, whatever its directory",
      [f("/etc/sysctl.d/60-a.conf", "k = 1\n"), f("/usr/lib/sysctl.d/70-b.conf", "k = 2\n")],
      "/usr/lib/sysctl.d/70-b.conf:1",
    ],
    [
      "/etc hides a file of the same name in /usr/lib",
      [f("/usr/lib/sysctl.d/60-a.conf", "k = 2\n"), f("/etc/sysctl.d/60-a.conf", "x = 1\n")],
      undefined,
    ],
    [
      "/run hides /usr/local/lib and /lib",
      [
        f("/lib/sysctl.d/60-a.conf", "k = 3\n"),
        f("/run/sysctl.d/60-a.conf", "k = 1\n"),
        f("/usr/local/lib/sysctl.d/60-a.conf", "k = 2\n"),
      ],
      "/run/sysctl.d/60-a.conf:1",
    ],
    [
      "within a file the last line wins",
      [f("/etc/sysctl.d/60-a.conf", "k = 1\n# c\nk=2\n")],
      "/etc/sysctl.d/60-a.conf:3",
    ],
    [
      "/etc/sysctl.conf comes last (procps sysctl --system)",
      [f("/etc/sysctl.d/99-z.conf", "k = 1\n"), f("/etc/sysctl.conf", "\nk = 9\n")],
      "/etc/sysctl.conf:2",
    ],
    [
      "slashes and a leading - are the same key",
      [f("/etc/sysctl.d/60-a.conf", "k = 1\n"), f("/etc/sysctl.d/61-b.conf", "-k = 2\n")],
      "/etc/sysctl.d/61-b.conf:1",
    ],
    [
      "names sort by bytes: 60-provision before 99-sysctl",
      [f("/etc/sysctl.d/99-sysctl.conf", "k = 2\n"), f("/etc/sysctl.d/60-provision-x.conf", "k = 1\n")],
      "/etc/sysctl.d/99-sysctl.conf:1",
    ],
  ])("%s", (_what, files, winner) => {
    const s = bootSettings(files).get("k");
    expect(s ? `${s.path}:${s.line}` : undefined).toBe(winner);
  });

  it.each([
    ["net.ipv4.tcp_tw_reuse = 1", { key: "net.ipv4.tcp_tw_reuse", value: "1" }],
    ["net/ipv4/ip_local_port_range=1024 65535", { key: "net.ipv4.ip_local_port_range", value: "1024 65535" }],
    ["  # net.x = 1", null],
    ["; net.x = 1", null],
    ["no equals sign", null],
  ])("parseLine(%j)", (line, expected) => {
    expect(parseLine(line)).toEqual(expected);
  });

  it.each<[string, string[], Record<string, string>]>([
    [
      "the later file wins",
      [
        "F\t/etc/sysctl.d/60-a.conf",
        "F\t/etc/sysctl.d/99-b.conf",
        "L\t/etc/sysctl.d/60-a.conf\t1\tk = 0",
        "L\t/etc/sysctl.d/99-b.conf\t1\tk = 1",
      ],
      { k: "/etc/sysctl.d/99-b.conf:1" },
    ],
    [
      "line numbers as awk counts them, tabs and CR kept in the line",
      [
        "F\t/etc/sysctl.d/60-a.conf",
        "L\t/etc/sysctl.d/60-a.conf\t1\t# c",
        "L\t/etc/sysctl.d/60-a.conf\t2\t",
        "L\t/etc/sysctl.d/60-a.conf\t3\tk\t=\t2\r",
      ],
      { k: "/etc/sysctl.d/60-a.conf:3" },
    ],
    [
      "an empty file in /etc shadows the same name below",
      ["F\t/etc/sysctl.d/50-x.conf", "F\t/usr/lib/sysctl.d/50-x.conf", "L\t/usr/lib/sysctl.d/50-x.conf\t1\tk = 3"],
      {},
    ],
    [
      "a path that starts like another path",
      ["F\t/etc/sysctl.d/a.conf", "F\t/etc/sysctl.d/a.conf\t2.conf", "L\t/etc/sysctl.d/a.conf\t2.conf\t1\tk = 4"],
      { k: "/etc/sysctl.d/a.conf\t2.conf:1" },
    ],
    [
      "/etc/sysctl.conf last",
      [
        "F\t/etc/sysctl.d/99-z.conf",
        "F\t/etc/sysctl.conf",
        "L\t/etc/sysctl.conf\t7\tk = 5",
        "L\t/etc/sysctl.d/99-z.conf\t1\tk = 6",
      ],
      { k: "/etc/sysctl.conf:7" },
    ],
    ["nothing readable", [], {}],
  ])("the probe's listing: %s", (_what, lines, fields) => {
    expect(sysctlBootProbe.parse(lines.map((l) => `${l}\n`).join(""), undefined)).toEqual(fields);
  });

  it.each(["garbage", "L\t/etc/sysctl.d/unlisted.conf\t1\tk = 1", "F\t/a.conf\nL\t/a.conf\tx\tk = 1"])(
    "refuses a listing line it can't place: %j",
    (raw) => {
      expect(() => sysctlBootProbe.parse(`${raw}\n`, undefined)).toThrow(/unexpected sysctl-boot line/);
    },
  );

  it("the probe command in a real shell lists the files and lines awk reads", () => {
    const dir = mkdtempSync(join(tmpdir(), "sysctl-boot-"));
    try {
      writeFileSync(join(dir, "60-a.conf"), "# why\nk = 1\n");
      writeFileSync(join(dir, "empty.conf"), "");
      const command = sysctlBootProbe
        .script(undefined)
        .replace(`for d in ${SYSCTL_DIRS.join(" ")}; do`, `for d in ${dir} ${dir}; do`)
        .replace(/\/etc\/sysctl\.conf/g, join(dir, "none"));
      const out = execFileSync("sh", ["-c", `set -u\n${command}`], { encoding: "utf8" });
      // only lines that can set a key travel; each keeps its number
      expect(out).toBe(`F\t${dir}/60-a.conf\nF\t${dir}/empty.conf\nL\t${dir}/60-a.conf\t2\tk = 1\n`);
      expect(parseBootListing(out)).toEqual([
        { path: `${dir}/60-a.conf`, content: "\nk = 1" },
        { path: `${dir}/empty.conf`, content: "" },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("every role that writes sysctls checks its file wins at boot", () => {
  it.each(["ephemeral-ports", "tw-reuse", "syn-backlog", "keepalive"])(
    "%s: passes when ours wins, fails naming the file that overrides it",
    (name) => {
      const role = findRole(name)!;
      const params = name === "syn-backlog" ? { netdev_max_backlog: null } : {};
      const host = hostWith("h", [[role, params]]);
      // Kernel defaults of every key these roles manage (syn-backlog refuses keys a kernel lacks).
      const before = facts({
        sysctl: {
          "net.ipv4.ip_local_port_range": "32768\t60999",
          "net.ipv4.ip_local_reserved_ports": "",
          "net.core.somaxconn": "4096",
          "net.ipv4.tcp_max_syn_backlog": "1024",
          "net.ipv4.tcp_syncookies": "1",
          "net.ipv4.tcp_abort_on_overflow": "0",
          "net.ipv4.tcp_synack_retries": "5",
        },
      });
      const first = planHost(host, before);
      const boot = first.checks.filter((c) => c.kind === "probe" && c.label.startsWith("at boot: "));
      const keys = first.checks.filter((c) => c.kind === "sysctl").map((c) => (c as { key: string }).key);
      expect(boot.map((c) => c.kind === "probe" && c.field[0]).sort()).toEqual([...keys].sort());
      const after = factsAfter(first, before);
      expect(evaluateChecks(planHost(host, after, "verify").checks, after).filter((r) => !r.ok)).toEqual([]);

      const key = keys[0]!;
      const overridden = withBootTruth({
        ...after,
        files: { ...after.files, "/etc/sysctl.d/99-local.conf": `# tuned by hand\n${key} = 0\n` },
      });
      const failed = evaluateChecks(planHost(host, overridden, "verify").checks, overridden).filter((r) => !r.ok);
      expect(failed.map((r) => [r.check.kind === "probe" && r.check.label, r.actual])).toEqual([
        [`at boot: ${key}`, "/etc/sysctl.d/99-local.conf:2"],
      ]);
      expect(failed[0]!.check.message).toMatch(/wins at boot and undoes this value at the next reboot/);
    },
  );

  it("bootTruthChecks points at the last line that sets each key in our file", () => {
    const checks = bootTruthChecks("/etc/sysctl.d/60-provision-x.conf", "# why\na = 1\n\n# why\nb = 2\n", [
      "a",
      "b",
      "missing",
    ]);
    expect(checks.map((c) => c.kind === "probe" && [c.field, c.expected])).toEqual([
      [["a"], "/etc/sysctl.d/60-provision-x.conf:2"],
      [["b"], "/etc/sysctl.d/60-provision-x.conf:5"],
    ]);
  });
});
