import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/load.js";
import { DEFAULT_PLAYBOOK, PROJECT_ROOT } from "../../src/installRoot.js";

/** The shipped example must stay valid: it is what a new user copies. */
describe("inventory/example with playbooks/site.yaml", () => {
  const { hosts, problems } = loadConfig(
    join(PROJECT_ROOT, "inventory/example/hosts.yaml"),
    DEFAULT_PLAYBOOK,
    undefined,
  );

  it("validates without a problem", () => {
    expect(problems).toEqual([]);
  });

  it("expands ranges and applies group and host vars by precedence", () => {
    expect(hosts.map((h) => h.name)).toEqual([
      "proxy01.example.com",
      "proxy02.example.com",
      "proxy03.example.com",
      "proxy04.example.com",
      "ws-a.example.com",
      "ws-b.example.com",
      "ws-c.example.com",
      "api01.example.com",
      "api02.example.com",
      "api03.example.com",
      "api04.example.com",
      "api05.example.com",
      "api06.example.com",
    ]);
    const params = (host: string) =>
      hosts.find((h) => h.name === host)!.roles.find((r) => r.role.name === "ephemeral-ports")!;
    expect(params("proxy01.example.com").params.port_range_start).toBe(10000);
    expect(params("proxy01.example.com").sources.port_range_start!.kind).toBe("host");
    expect(params("proxy02.example.com").params.port_range_start).toBe(1024);
    expect(params("proxy02.example.com").sources.port_range_start).toMatchObject({ kind: "group", name: "proxies" });
    expect(params("api01.example.com").sources.port_range_start!.kind).toBe("default");
    expect(hosts.find((h) => h.name === "ws-b.example.com")!.connection).toMatchObject({ port: 2222, user: "deploy" });
    expect(hosts.every((h) => h.become)).toBe(true);
  });
});
