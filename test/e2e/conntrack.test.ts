import { readFileSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sysctlProcPath } from "../../src/sysctl/value.js";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, readSysctls, tempDir, writeFile } from "./helpers.js";

const TIME_WAIT = "net.netfilter.nf_conntrack_tcp_timeout_time_wait";
const ESTABLISHED = "net.netfilter.nf_conntrack_tcp_timeout_established";
const FILES = {
  modulesLoad: "/etc/modules-load.d/60-provision-conntrack.conf",
  modprobe: "/etc/modprobe.d/60-provision-conntrack.conf",
  sysctl: "/etc/sysctl.d/60-provision-conntrack.conf",
  udev: "/etc/udev/rules.d/60-provision-conntrack.rules",
};
const HASHSIZE = "/sys/module/nf_conntrack/parameters/hashsize";

/**
 * The fleet's hosts are non-initial network namespaces on a kernel with nf_conntrack built in:
 * nf_conntrack_max is read-only there and hashsize is global to the machine, so only the
 * per-namespace timeouts may be set, and hashsize is never written (hashsize: null throughout).
 */
describe("conntrack on a fleet of real hosts (non-initial network namespaces)", () => {
  let fleet: Fleet;
  let dir: string;
  let withPlaybook: (playbook: string) => (command: string, ...extra: string[]) => string[];
  let timeoutsOnly: (command: string, ...extra: string[]) => string[];
  let withMax: (command: string, ...extra: string[]) => string[];
  const machine = { hashsize: "", max: "", timeWait: "" };
  const live = (host: string) => readSysctls(fleet, host, [TIME_WAIT, ESTABLISHED]);
  const etcState = async (host: string) =>
    (
      await fleet.exec(
        host,
        `for f in ${Object.values(FILES).join(" ")}; do if [ -e "$f" ]; then sha256sum "$f"; else echo "absent $f"; fi; done`,
      )
    ).stdout;

  beforeAll(async () => {
    machine.hashsize = readFileSync(HASHSIZE, "utf8");
    machine.max = readFileSync(sysctlProcPath("net.netfilter.nf_conntrack_max"), "utf8");
    machine.timeWait = readFileSync(sysctlProcPath(TIME_WAIT), "utf8");
    fleet = await startFleet({ hosts: 2 });
    dir = tempDir("conntrack");
    const play = (name: string, params: string[]) =>
      writeFile(
        dir,
        `${name}.yaml`,
        [
          "- name: conntrack only",
          "  hosts: all",
          "  roles:",
          "    - role: conntrack",
          "      params:",
          ...params.map((p) => `        ${p}`),
          "",
        ].join("\n"),
      );
    withPlaybook =
      (playbook) =>
      (command, ...extra) => [
        command,
        fleet.inventoryFile,
        "--playbook",
        playbook,
        "--known-hosts",
        fleet.knownHostsFile,
        ...extra,
      ];
    timeoutsOnly = withPlaybook(play("timeouts", ["nf_conntrack_max: null", "hashsize: null"]));
    withMax = withPlaybook(play("max", ["nf_conntrack_max: 524288", "hashsize: null"]));
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("with nf_conntrack_max set, plan fails each host naming the read-only namespace, and run writes nothing", async () => {
    const before = { h1: await etcState("h1"), h2: await etcState("h2") };
    expect(before.h1).toContain(`absent ${FILES.sysctl}`);

    const plan = await provision(withMax("plan"));
    expect(plan.code, plan.stdout + plan.stderr).toBe(1);
    // Both hosts refused for the same reason: one entry.
    expect(plan.stdout).toContain(
      `h1, h2 (2 hosts): FAILED: planning failed: nf_conntrack_max is read-only in this network namespace (a container): set it on the host that owns the namespace, or set nf_conntrack_max: null`,
    );

    const run = await provision(withMax("run", "--yes"));
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect(run.stdout).toContain("nf_conntrack_max is read-only in this network namespace");
    expect({ h1: await etcState("h1"), h2: await etcState("h2") }).toEqual(before);
    // not even the timeouts the same play sets: a refused host gets no change at all
    expect(await live("h1")).toEqual(["120", "432000"]);
  });

  it("a host two roles refuse gets every refusal of both in one plan (fd-limits two, conntrack one), each named by its role", async () => {
    writeFile(
      dir,
      "two-refusals.yaml",
      [
        "- name: two roles that must refuse here",
        "  hosts: all",
        "  roles:",
        "    - role: fd-limits",
        "      params: { soft_nofile: 65536, hard_nofile: 2000000, nr_open: null }",
        "    - role: conntrack",
        "      params: { nf_conntrack_max: 524288, hashsize: null }",
        "",
      ].join("\n"),
    );
    const plan = await provision(withPlaybook(`${dir}/two-refusals.yaml`)("plan"));
    expect(plan.code, plan.stdout + plan.stderr).toBe(1);
    // One entry when both hosts' problems read alike but for per-host numbers, else one each.
    for (const h of ["h1", "h2"]) {
      expect(plan.stdout).toMatch(
        new RegExp(`^ {2}(h1, h2 \\(2 hosts\\)|${h}): FAILED: planning failed, 3 problems:`, "m"),
      );
    }
    expect(plan.stdout).toMatch(/fd-limits: hard_nofile 2,000,000 is above this host's fs\.nr_open 1,048,576/);
    expect(plan.stdout).toContain("conntrack: nf_conntrack_max is read-only in this network namespace (a container)");
  });

  it("plan shows the timeouts, the module-load file, the drop-in and the udev rule, and exits 2", async () => {
    const r = await provision(timeoutsOnly("plan"));
    expect(r.stderr).toBe("");
    expect(r.code, r.stdout).toBe(2);
    expect(r.stdout).toContain("h1, h2 (2 hosts): 6 changes");
    expect(r.stdout).toContain(`${TIME_WAIT}: 120 → 60`);
    expect(r.stdout).toContain(`${ESTABLISHED}: 432000 → 86400`);
    for (const path of [FILES.modulesLoad, FILES.sysctl, FILES.udev]) expect(r.stdout).toContain(`+++ ${path}`);
    expect(r.stdout).not.toContain(FILES.modprobe);
    expect(r.stdout).toContain(
      '+ACTION=="add", SUBSYSTEM=="module", KERNEL=="nf_conntrack", RUN+="/lib/systemd/systemd-sysctl --prefix=/net/netfilter"',
    );
    expect(r.stdout).toContain("note (conntrack): nf_conntrack is built into kernel");
    expect(r.stdout).toContain("note (conntrack): this host is not in the initial network namespace");
    expect(r.stdout).not.toMatch(/modprobe nf_conntrack|parameters\/hashsize/);
    expect(await live("h1")).toEqual(["120", "432000"]);
  });

  it("run applies, verify reads everything back, and a second plan changes nothing", async () => {
    const run = await provision(timeoutsOnly("run", "--yes"));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 2 changed, 0 unchanged, 0 failed, 0 unreachable\./);
    for (const h of ["h1", "h2"]) expect(await live(h)).toEqual(["60", "86400"]);

    const files = await fleet.exec(
      "h2",
      `cat ${FILES.modulesLoad} ${FILES.sysctl} ${FILES.udev}; stat -c '%a %U %n' ${Object.values(FILES)
        .filter((f) => f !== FILES.modprobe)
        .join(" ")}; ls -a /etc/udev/rules.d /etc/sysctl.d`,
    );
    expect(files.stdout).toContain("# Managed by provision, role conntrack.");
    expect(files.stdout).toMatch(/\nnf_conntrack\n/);
    expect(files.stdout).toContain(`${TIME_WAIT} = 60\n`);
    expect(files.stdout).toContain(`${ESTABLISHED} = 86400\n`);
    expect(files.stdout).not.toContain("net.netfilter.nf_conntrack_max =");
    expect(files.stdout).toContain(`644 root ${FILES.udev}`);
    expect(files.stdout).not.toContain(".provision-tmp");

    const verify = await provision(timeoutsOnly("verify"));
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).toMatch(/Verify: 16\/16 checks ok on 2\/2 hosts; 0 mismatches/);

    const again = await provision(timeoutsOnly("plan"));
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toContain("h1, h2 (2 hosts): no changes");
  });

  it("verify catches a timeout changed by hand and an edited udev rule on one host; run repairs them", async () => {
    await fleet.exec("h2", `sysctl -w ${ESTABLISHED}=432000 >/dev/null; echo '# hand edit' >> ${FILES.udev}`);
    const verify = await provision(timeoutsOnly("verify"));
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`MISMATCH ${ESTABLISHED}: expected 86400, found 432000`);
    expect(verify.stdout).toContain(`MISMATCH ${FILES.udev}`);
    expect(verify.stdout).toMatch(/Verify: 14\/16 checks ok on 1\/2 hosts; 2 mismatches/);

    const run = await provision(timeoutsOnly("run", "--yes"));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Run: 1 changed, 1 unchanged/);
    expect(await live("h2")).toEqual(["60", "86400"]);
    expect((await provision(timeoutsOnly("verify"))).code).toBe(0);
  });

  it("left the machine's own conntrack table alone: hashsize, nf_conntrack_max and the initial namespace's timeouts", () => {
    expect(readFileSync(HASHSIZE, "utf8")).toBe(machine.hashsize);
    expect(readFileSync(sysctlProcPath("net.netfilter.nf_conntrack_max"), "utf8")).toBe(machine.max);
    expect(readFileSync(sysctlProcPath(TIME_WAIT), "utf8")).toBe(machine.timeWait);
  });
});
