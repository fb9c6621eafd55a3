import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, readSysctl, tempDir } from "./helpers.js";

/**
 * The pull-request loop: `plan -o` is reviewed, someone changes a host meanwhile, and `run --plan`
 * applies exactly the reviewed changes to the other hosts and refuses that one with the difference.
 */
describe("saved plans: what was reviewed is what runs", () => {
  let fleet: Fleet;
  let dir: string;
  let inventory: string;
  let common: string[];
  const sysctl = (host: string, key: string) => readSysctl(fleet, host, key);
  const planFile = (name: string) => join(dir, name);

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    dir = tempDir("saved-plan");
    // Beside the fleet's own, to share its group_vars; its secrets (unused: become is off) must never reach a plan file.
    inventory = join(dirname(fleet.inventoryFile), "saved-plan-inventory.yml");
    writeInventory(1);
    common = ["--known-hosts", fleet.knownHostsFile];
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function writeInventory(h1TwReuse: number): void {
    const fleetInventory = readFileSync(fleet.inventoryFile, "utf8");
    const withSecrets = fleetInventory.replace(
      "  vars:\n",
      "  vars:\n    ansible_become_password: s3cret-become-7c1\n    app_db_password: s3cret-app-9f2\n",
    );
    const h1 = /( {8}h1:\n {10}ansible_host: \S+\n)/;
    writeFileSync(
      inventory,
      withSecrets.replace(h1, `$1          tw_reuse:\n            tcp_tw_reuse: ${h1TwReuse}\n`),
    );
  }

  it("plan -o saves the plan with the facts it rests on, and no secret", async () => {
    const r = await provision(["plan", inventory, ...common, "-o", planFile("p1.json")]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toContain(`plan saved to ${planFile("p1.json")} (3 hosts, 3 to change)`);
    const text = readFileSync(planFile("p1.json"), "utf8");
    expect(text).not.toContain("s3cret");
    expect(text).not.toContain(fleet.knownHostsFile);
    const saved = JSON.parse(text) as {
      format: string;
      hosts: Array<{ host: string; facts: { sysctl: Record<string, string> } }>;
    };
    expect(saved.format).toBe("provision-plan");
    expect(saved.hosts.map((h) => h.host)).toEqual(["h1", "h2", "h3"]);
    expect(saved.hosts[1]!.facts.sysctl["net.ipv4.tcp_tw_reuse"]).toBe("2");
  });

  it("show renders the saved plan as text, Markdown and JSON", async () => {
    const text = await provision(["show", planFile("p1.json")]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^Saved plan .*p1\.json: made \S+ by provision \d+\.\d+\.\d+/);
    expect(text.stdout).toContain("h[1:3] (3 hosts)");
    expect(text.stdout).toMatch(/net\.ipv4\.tcp_tw_reuse: 2 → 1/);
    const md = await provision(["show", planFile("p1.json"), "--format", "markdown"]);
    expect(md.stdout).toContain("> Saved plan");
    expect(md.stdout).toContain("```diff");
    const json = await provision(["show", planFile("p1.json"), "--json"]);
    const data = JSON.parse(json.stdout) as { summary: { changed: number }; savedPlan: { format: string } };
    expect(data.summary.changed).toBe(3);
    expect(data.savedPlan.format).toBe("provision-plan");
  });

  it("run --plan refuses flags that would change what the plan selects, and sends nothing", async () => {
    const r = await provision(["run", "--plan", planFile("p1.json"), ...common, "--limit", "h1", "-t", "tw-reuse"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--limit, --tags would change them");
    expect(await sysctl("h1", "net.ipv4.tcp_tw_reuse")).toBe("2");
  });

  it("run --plan applies the reviewed changes to the others and refuses the host that changed, with the difference", async () => {
    await fleet.exec("h2", "sysctl -w net.ipv4.tcp_tw_reuse=0 >/dev/null");
    // No inventory given: the plan's own sources are used.
    const r = await provision(["run", "--plan", planFile("p1.json"), ...common, "--yes"]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^Saved plan /);
    expect(r.stdout).toMatch(
      /h2[^\n]*its plan changed since review: net\.ipv4\.tcp_tw_reuse: reviewed 2 → 1, now 0 → 1 \(facts that differ: sysctl net\.ipv4\.tcp_tw_reuse: "2" → "0"/,
    );
    expect(r.stdout).toMatch(/Run: 2 changed, 0 unchanged, 1 failed, 0 unreachable\./);
    for (const h of ["h1", "h3"]) expect(await sysctl(h, "net.ipv4.tcp_tw_reuse")).toBe("1");
    expect(await sysctl("h2", "net.ipv4.tcp_tw_reuse")).toBe("0");
    expect(await sysctl("h2", "net.ipv4.ip_local_port_range")).toBe("32768\t60999");
    const file = await fleet.exec("h2", "test -e /etc/sysctl.d/60-provision-tw-reuse.conf && echo yes || echo no");
    expect(file.stdout.trim()).toBe("no");
  });

  it("a plan whose inventory values, version or playbook changed is refused whole, every reason at once", async () => {
    const p2 = planFile("p2.json");
    const plan = await provision(["plan", inventory, ...common, "-o", p2]);
    expect(plan.code, plan.stderr).toBe(2);
    writeInventory(0);
    const stale = await provision(["run", "--plan", p2, ...common, "--yes"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain("no longer describes what run would do, so nothing was sent to any host");
    expect(stale.stderr).toContain("now gives h1 other roles, params or address than the plan");
    writeInventory(1);

    const saved = JSON.parse(readFileSync(p2, "utf8")) as { provision: string; digests: { playbook: string } };
    const tampered = planFile("p3.json");
    writeFileSync(
      tampered,
      JSON.stringify({ ...saved, provision: "0.0.1", digests: { ...saved.digests, playbook: "0" } }),
    );
    const other = await provision(["run", "--plan", tampered, ...common, "--yes"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain("was made by provision 0.0.1");
    expect(other.stderr).toMatch(/the playbook \(bundled\) changed since the plan was made/);
    expect(await sysctl("h2", "net.ipv4.tcp_tw_reuse")).toBe("0");
  });

  it("an old plan warns but applies when its hosts still match; verify then passes", async () => {
    const p2 = planFile("p2.json");
    const saved = JSON.parse(readFileSync(p2, "utf8")) as Record<string, unknown>;
    writeFileSync(p2, JSON.stringify({ ...saved, createdAt: new Date(Date.now() - 3 * 86_400_000).toISOString() }));
    const r = await provision(["run", "--plan", p2, ...common, "--yes"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: this plan was made 3 days ago/);
    expect(r.stdout).toMatch(/Run: 1 changed, 2 unchanged, 0 failed, 0 unreachable\./);
    expect(await sysctl("h2", "net.ipv4.tcp_tw_reuse")).toBe("1");
    const verify = await provision(["verify", inventory, ...common]);
    expect(verify.code, verify.stdout).toBe(0);
  });
});
