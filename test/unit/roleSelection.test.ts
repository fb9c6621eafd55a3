import { describe, expect, it } from "vitest";
import { selectRoles, splitTags } from "../../src/roleSelection.js";
import type { ResolvedHost } from "../../src/resolve.js";

const KNOWN = ["fd-limits", "tw-reuse", "keepalive"];
const host = (name: string, roles: string[]) =>
  ({ name, roles: roles.map((r) => ({ role: { name: r }, params: {} })) }) as unknown as ResolvedHost;
const rolesOf = (hosts: ResolvedHost[]) => hosts.map((h) => `${h.name}: ${h.roles.map((r) => r.role.name).join(",")}`);

describe("--tags / --skip-tags", () => {
  const hosts = [host("a", KNOWN), host("b", ["keepalive", "tw-reuse"])];

  it.each<[string, string[], string[], string[]]>([
    ["nothing asked: every role", [], [], ["a: fd-limits,tw-reuse,keepalive", "b: keepalive,tw-reuse"]],
    [
      "tags keep only those, in the playbook's order",
      ["keepalive", "fd-limits"],
      [],
      ["a: fd-limits,keepalive", "b: keepalive"],
    ],
    ["skip-tags drop those", [], ["tw-reuse"], ["a: fd-limits,keepalive", "b: keepalive"]],
    ["skip wins over tags", ["keepalive", "tw-reuse"], ["tw-reuse"], ["a: keepalive", "b: keepalive"]],
  ])("%s", (_what, tags, skipTags, expected) => {
    const r = selectRoles(hosts, KNOWN, { tags, skipTags });
    expect(r.problems).toEqual([]);
    expect(rolesOf(r.hosts)).toEqual(expected);
  });

  it("names every unknown role at once, with the closest known name", () => {
    const r = selectRoles(hosts, KNOWN, { tags: ["keepalve"], skipTags: ["nope"] });
    expect(r.problems).toEqual([
      "--tags keepalve: no such role. Did you mean keepalive? Roles: fd-limits, tw-reuse, keepalive",
      "--skip-tags nope: no such role. Roles: fd-limits, tw-reuse, keepalive",
    ]);
  });

  it("splits comma lists and repeated flags as Ansible does", () => {
    expect(splitTags(["a,b", " c ", ",", "d"])).toEqual(["a", "b", "c", "d"]);
  });
});
