import { describe, expect, it } from "vitest";
import { explainHosts, explainRoles, PRECEDENCE_NOTE } from "../../src/explain.js";
import { lintHosts } from "../../src/lint.js";
import { loadConfig } from "../../src/load.js";
import { DEFAULT_PLAYBOOK, PROJECT_ROOT } from "../../src/installRoot.js";
import { ROLES } from "../../src/roles.js";
import { fixture, posIn } from "./_helpers.js";

const inv = fixture("inventory", "lint", "hosts.yaml");

describe("explainRoles", () => {
  it("prints every role and param with its default and its why, from the schema", () => {
    const text = explainRoles(ROLES);
    for (const role of ROLES) {
      expect(text).toContain(`${role.name} — ${role.summary}`);
      for (const [name, schema] of Object.entries(role.schema.properties)) {
        expect(text).toContain(
          `  ${name} = ${schema.default === null ? "null (leave the host's value)" : JSON.stringify(schema.default)}  (default)`,
        );
      }
    }
    expect(text).toContain("EADDRNOTAVAIL");
  });
});

describe("explainHosts", () => {
  const { hosts, problems } = loadConfig(inv, DEFAULT_PLAYBOOK, undefined);

  it("names where each value came from: default, group or host, with file:line:col", () => {
    expect(problems).toEqual([]);
    const text = explainHosts(hosts, "ephemeral-ports", PROJECT_ROOT);
    const p1 = text.split("\n\n").find((b) => b.startsWith("p1 "))!;
    const { line, col } = posIn(inv, "reserve_listening_ports: false", "false");
    expect(p1).toMatch(
      new RegExp(
        `reserve_listening_ports = false +group proxies  test/fixtures/inventory/lint/hosts.yaml:${line}:${col}`,
      ),
    );
    expect(p1).toMatch(/port_range_start += 1024 +default/);
    const a2 = text.split("\n\n").find((b) => b.startsWith("a2 "))!;
    expect(a2).toMatch(/port_range_start += 10000 +host a2 /);
    expect(text).not.toContain("tw-reuse");
  });

  it("says the precedence is Ansible's and where it deliberately differs", () => {
    const text = explainHosts(hosts, undefined, PROJECT_ROOT);
    expect(text.trimEnd().endsWith(PRECEDENCE_NOTE)).toBe(true);
    expect(PRECEDENCE_NOTE).toContain("merged param by param");
  });
});

describe("lintHosts", () => {
  const { hosts } = loadConfig(inv, DEFAULT_PLAYBOOK, undefined);
  const problems = lintHosts(hosts);

  it("refuses a range that swallows a listening port nothing reserves, once per location, naming the hosts", () => {
    const errors = problems.filter((p) => p.severity === "error" && p.keyPath.includes("ephemeral_ports"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file: inv, ...posIn(inv, "reserve_listening_ports: false", "false") });
    expect(errors[0]!.problem).toBe(
      "the ephemeral range 1024-65535 swallows port 8080 that the host listens on, and nothing reserves it: an outgoing connection can take it and the service fails to bind() with EADDRINUSE (hosts p1, p2)",
    );
  });

  it("warns when a listening port would be reserved only if it listens during run; a reserved port or one below the range is fine", () => {
    const warnings = problems.filter((p) => p.severity === "warning" && p.problem.includes("ephemeral range"));
    expect(warnings.map((w) => w.problem)).toEqual([
      "port 2222 (listen_ports/ansible_port) inside the ephemeral range 1024-65535 is reserved only if listening when run happens (host a1)",
    ]);
  });
});

describe("lintHosts: conntrack against ansible_memtotal_mb", () => {
  const { hosts } = loadConfig(inv, DEFAULT_PLAYBOOK, undefined);
  const problems = lintHosts(hosts).filter((p) => p.keyPath.endsWith("nf_conntrack_max"));

  it("refuses a table that would take more than max_memory_percent of a small host, and says the largest that fits", () => {
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      severity: "error",
      file: inv,
      ...posIn(inv, "nf_conntrack_max: 1048576", "1048576"),
    });
    expect(problems[0]!.problem).toMatch(
      /^a full conntrack table of 1,048,576 entries takes .* of ansible_memtotal_mb 1,024 MiB, above max_memory_percent 5% \(host s1\)$/,
    );
    expect(problems[0]!.fix).toMatch(/^set nf_conntrack_max to at most [\d,]+ for this host/);
  });
});
