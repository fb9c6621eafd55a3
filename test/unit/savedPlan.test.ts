import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Facts } from "../../src/role.js";
import type { PlannedChange } from "../../src/plan.js";
import type { ResolvedHost } from "../../src/resolve.js";
import { findRole } from "../../src/roles.js";
import {
  ageWarning,
  configDigest,
  factsDifference,
  hostsDigest,
  planDifference,
  playbookDigest,
  refusal,
  staleReasons,
} from "../../src/savedPlan/compare.js";
import {
  PlanFileError,
  readPlanFile,
  reportsOf,
  savedPlanFor,
  writePlanFile,
  type SavedPlan,
} from "../../src/savedPlan/planFile.js";
import { renderSavedPlanHeader, savedPlanDetails } from "../../src/savedPlan/show.js";
import { changed, FILE, RANGE, REUSE } from "./_reports.js";
import { SNAPSHOT_PATH } from "../../src/snapshot.js";

const dir = mkdtempSync(join(tmpdir(), "provision-saved-plan-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const twReuse = findRole("tw-reuse")!;
function host(name: string, over: { reuse?: number; address?: string; become?: boolean } = {}): ResolvedHost {
  return {
    name,
    become: over.become ?? false,
    roles: [{ role: twReuse, params: { tcp_tw_reuse: over.reuse ?? 1 }, sources: {} }],
    hints: { listenPorts: [], memTotalMb: null },
    groups: ["all"],
    connection: {
      kind: "ssh",
      host: over.address ?? `198.18.0.${name.length}`,
      port: undefined,
      user: "deploy",
      privateKeyFile: "/home/deploy/.ssh/id_ed25519",
      sshArgs: [],
      openSshOnlyOptions: [],
    },
  };
}

const facts = (over: Partial<Facts> = {}): Facts => ({
  sysctl: { "net.ipv4.tcp_tw_reuse": "2" },
  files: { "/etc/sysctl.d/60-provision-tw-reuse.conf": null },
  listeningPorts: { tcp: [22], udp: [] },
  probes: { "sysctl-boot": { ok: true, value: { winner: "none" } } },
  ...over,
});

const selection = { inventory: ["inv.yml"], playbook: "site.yaml", limit: undefined, tags: [], skipTags: [] };
const made = { provision: "1.2.3", at: new Date("2026-12-01T10:00:00Z"), playbookBytes: Buffer.from("- hosts: all\n") };

function savedFor(names: string[]): SavedPlan {
  return savedPlanFor(
    names.map((n) => changed(n, [REUSE])),
    names.map((n) => host(n)),
    () => facts(),
    selection,
    made,
  );
}

describe("factsDifference", () => {
  const table: Array<[string, Partial<Facts>, string[]]> = [
    ["nothing changed", {}, []],
    ["a sysctl changed", { sysctl: { "net.ipv4.tcp_tw_reuse": "0" } }, ['sysctl net.ipv4.tcp_tw_reuse: "2" → "0"']],
    ["a sysctl vanished", { sysctl: {} }, ['sysctl net.ipv4.tcp_tw_reuse: "2" → absent']],
    [
      "a managed file appeared",
      { files: { "/etc/sysctl.d/60-provision-tw-reuse.conf": "a\nb\n" } },
      ["file /etc/sysctl.d/60-provision-tw-reuse.conf: created"],
    ],
    [
      "a listener appeared",
      { listeningPorts: { tcp: [22, 8080], udp: [] } },
      ["listening ports: tcp 22; udp none → tcp 22,8080; udp none"],
    ],
    [
      "a probe's answer changed",
      { probes: { "sysctl-boot": { ok: true, value: { winner: "/etc/sysctl.d/99-x.conf" } } } },
      ['sysctl-boot.value.winner: "none" → "/etc/sysctl.d/99-x.conf"'],
    ],
  ];
  it.each(table)("%s", (_name, over, expected) => {
    expect(factsDifference(facts(), facts(over))).toEqual(expected);
  });

  it("names edited and deleted files with their sizes, and cuts long values", () => {
    const before = facts({ files: { "/a": "1\n2\n", "/b": "x\n" }, sysctl: { k: "v".repeat(200) } });
    const now = facts({ files: { "/a": "1\n2\n3\n", "/b": null }, sysctl: { k: "w" } });
    const lines = factsDifference(before, now);
    expect(lines).toContain("file /a: edited (2 → 3 lines)");
    expect(lines).toContain("file /b: deleted");
    expect(lines[0]).toMatch(/^sysctl k: "v{78}… → "w"$/);
  });
});

describe("factsDifference of probes", () => {
  it("names the leaf that moved, not the whole answer", () => {
    const login = (session: number) => ({
      ok: true as const,
      value: { user: "root", nofile: { soft: 1024 }, session },
    });
    expect(
      factsDifference(facts({ probes: { login: login(10397) } }), facts({ probes: { login: login(10699) } })),
    ).toEqual(["login.value.session: 10397 → 10699"]);
    expect(factsDifference(facts({ probes: { p: { ok: true, value: [1, 2] } } }), facts({ probes: {} }))).toEqual([
      'p: {"ok":true,"value":[1,2]} → absent',
    ]);
  });
});

type SysctlChange = Extract<PlannedChange, { kind: "sysctl" }>;
type FileChange = Extract<PlannedChange, { kind: "file" }>;
const sysctlChange = (over: Partial<SysctlChange>): PlannedChange => ({ ...(REUSE as SysctlChange), ...over });
const fileChange = (over: Partial<FileChange>): PlannedChange => ({ ...(FILE as FileChange), ...over });

describe("planDifference", () => {
  const table: Array<[string, PlannedChange[], PlannedChange[], string[]]> = [
    ["same", [REUSE, FILE], [REUSE, FILE], []],
    [
      "a value moved on the host",
      [REUSE],
      [sysctlChange({ before: "0" })],
      ["net.ipv4.tcp_tw_reuse: reviewed 2 → 1, now 0 → 1"],
    ],
    ["no longer needed", [REUSE, RANGE], [RANGE], ["no longer planned: net.ipv4.tcp_tw_reuse 2 → 1"]],
    ["newly needed", [], [RANGE], ["newly planned: net.ipv4.ip_local_port_range absent → 1024 65535"]],
    [
      "a file edited on the host",
      [FILE],
      [fileChange({ before: "# hand edit\n" })],
      ["/etc/sysctl.d/60-provision-tw-reuse.conf: its content on the host changed since review"],
    ],
    [
      "a file to write differs",
      [FILE],
      [fileChange({ after: "x\n" })],
      ["/etc/sysctl.d/60-provision-tw-reuse.conf: the content to write differs from the reviewed"],
    ],
  ];
  it.each(table)("%s", (_n, reviewed, now, expected) => {
    expect(planDifference(reviewed, now)).toEqual(expected);
  });
});

describe("refusal", () => {
  const snapshot = fileChange({ path: SNAPSHOT_PATH, role: "snapshot" });
  it("says how the plan changed (the snapshot only when nothing else did) and which facts moved", () => {
    const text = refusal(
      [snapshot, REUSE],
      [fileChange({ path: SNAPSHOT_PATH, role: "snapshot", after: "other" }), sysctlChange({ before: "0" })],
      facts(),
      facts({ sysctl: { "net.ipv4.tcp_tw_reuse": "0" } }),
    );
    expect(text).toBe(
      'its plan changed since review: net.ipv4.tcp_tw_reuse: reviewed 2 → 1, now 0 → 1 (facts that differ: sysctl net.ipv4.tcp_tw_reuse: "2" → "0"). Nothing was applied to it; make and review a new plan for it.',
    );
  });

  it("lists at most five facts", () => {
    const many = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, String(i)]));
    const text = refusal([REUSE], [], facts(), facts({ sysctl: many }));
    expect(text).toContain("; and 4 more)");
  });
});

describe("configDigest", () => {
  it("changes with params, become and address, not with login user or key path", () => {
    const base = configDigest(host("web1"));
    expect(configDigest(host("web1"))).toBe(base);
    expect(configDigest(host("web1", { reuse: 0 }))).not.toBe(base);
    expect(configDigest(host("web1", { become: true }))).not.toBe(base);
    expect(configDigest(host("web1", { address: "198.18.9.9" }))).not.toBe(base);
    const otherLogin = host("web1");
    otherLogin.connection = { ...otherLogin.connection, user: "ops", privateKeyFile: "/k" };
    expect(configDigest(otherLogin)).toBe(base);
  });
});

describe("staleReasons", () => {
  const saved = savedFor(["web1", "web2", "web3"]);
  const now = (over: Partial<Parameters<typeof staleReasons>[2]> = {}) => ({
    provision: "1.2.3",
    playbookDigest: playbookDigest("- hosts: all\n"),
    hosts: ["web1", "web2", "web3"].map((n) => ({ name: n, configDigest: configDigest(host(n)) })),
    ...over,
  });

  it("none when version, playbook and every host's configuration are the same", () => {
    expect(staleReasons("p.json", saved, now())).toEqual([]);
  });

  it("every reason at once: version, playbook, added, removed and changed hosts", () => {
    const reasons = staleReasons(
      "p.json",
      saved,
      now({
        provision: "1.3.0",
        playbookDigest: playbookDigest("- hosts: web\n"),
        hosts: [
          { name: "web1", configDigest: configDigest(host("web1", { reuse: 0 })) },
          { name: "web2", configDigest: configDigest(host("web2")) },
          { name: "web9", configDigest: configDigest(host("web9")) },
        ],
      }),
    );
    expect(reasons).toEqual([
      "p.json was made by provision 1.2.3; this is provision 1.3.0, which may plan differently. Make the plan again with this version.",
      "the playbook site.yaml changed since the plan was made.",
      "1 host not in the plan: web9.",
      "1 planned host no longer selected: web3.",
      "the inventory or playbook now gives web1 other roles, params or address than the plan (provision explain -i … shows the values now).",
    ]);
  });
});

describe("ageWarning", () => {
  const at = "2026-12-01T10:00:00.000Z";
  it.each([
    ["an hour old", "2026-12-01T11:00:00Z", null],
    ["a day and a half", "2026-12-02T22:00:00Z", /made 36 hours ago/],
    ["three days", "2026-12-04T10:00:00Z", /made 3 days ago/],
  ])("%s", (_n, now, expected) => {
    const w = ageWarning(at, new Date(now));
    if (expected === null) expect(w).toBeNull();
    else expect(w).toMatch(expected);
  });
});

describe("plan file", () => {
  it("round-trips, with one digest per host and none of the connection settings", () => {
    const saved = savedFor(["web1", "web2"]);
    const file = join(dir, "plan.json");
    writePlanFile(file, saved);
    const text = readFileSync(file, "utf8");
    expect(text).not.toContain("id_ed25519");
    expect(text).not.toContain("deploy");
    const back = readPlanFile(file);
    expect(back).toEqual(saved);
    expect(back.digests.hosts).toBe(hostsDigest(back.hosts.map((h) => h.configDigest)));
    expect(reportsOf(back).map((r) => [r.host, r.status])).toEqual([
      ["web1", "changed"],
      ["web2", "changed"],
    ]);
    expect(savedPlanDetails(back)).not.toHaveProperty("hosts");
  });

  it("refuses to save a host that could not be planned", () => {
    expect(() =>
      savedPlanFor(
        [{ host: "web1", status: "failed", error: { kind: "plan", message: "x" } }],
        [host("web1")],
        () => facts(),
        selection,
        made,
      ),
    ).toThrow(/web1 has no plan to save/);
  });

  it.each([
    ["not JSON", "{", /is not a saved plan: .*Make one with provision plan/],
    ["another JSON", '{"command":"plan","hosts":[]}', /no "format": "provision-plan"/],
    [
      "another format version",
      '{"format":"provision-plan","formatVersion":2,"hosts":[],"digests":{},"plans":{}}',
      /format version 2; this provision reads version 1/,
    ],
  ])("refuses %s with how to make one", (_n, content, message) => {
    const file = join(dir, "bad.json");
    writeFileSync(file, content);
    expect(() => readPlanFile(file)).toThrow(PlanFileError);
    expect(() => readPlanFile(file)).toThrow(message);
  });

  it("refuses a file whose host names a plan it does not hold", () => {
    const file = join(dir, "damaged.json");
    const saved = savedFor(["web1", "web2"]);
    writeFileSync(file, JSON.stringify({ ...saved, plans: {} }));
    expect(() => readPlanFile(file)).toThrow(/is damaged: no plan for web1, web2/);
  });

  it("keeps a plan shared by many hosts once", () => {
    const saved = savedFor(["web1", "web2", "web3"]);
    expect(Object.keys(saved.plans)).toHaveLength(1);
    expect(new Set(saved.hosts.map((h) => h.plan)).size).toBe(1);
    expect(reportsOf(saved)[2]!.plan!.host).toBe("web3");
  });

  it("refuses a missing file by name", () => {
    expect(() => readPlanFile(join(dir, "missing.json"))).toThrow(/cannot read plan file .*missing\.json/);
  });

  it("shows who made it, when, from what, in text and Markdown", () => {
    const saved = savedFor(["web1"]);
    const text = renderSavedPlanHeader("p.json", saved, "text");
    expect(text).toContain("Saved plan p.json: made 2026-12-01T10:00:00.000Z by provision 1.2.3");
    expect(text).toContain("from inventory inv.yml, playbook site.yaml");
    expect(text).toContain("1 host, 1 to change");
    expect(renderSavedPlanHeader("p.json", saved, "markdown").split("\n")[0]).toMatch(/^> Saved plan/);
  });
});
