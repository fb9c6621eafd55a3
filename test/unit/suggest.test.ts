import { describe, expect, it } from "vitest";
import { closest, editDistance } from "../../src/config/suggest.js";

describe("editDistance", () => {
  it.each<[string, string, number]>([
    ["", "", 0],
    ["abc", "", 3],
    ["", "abc", 3],
    ["same", "same", 0],
    ["kitten", "sitting", 3],
    ["hosts", "hostz", 1],
    ["hosts", "host", 1],
    ["hosts", "hostss", 1],
    ["ab", "ba", 1], // a swap of neighbours is one typo
    ["port_range_start", "port_range_strat", 1],
    ["abc", "ca", 3],
    ["Hosts", "hosts", 1],
  ])("%j → %j = %i", (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
    expect(editDistance(b, a)).toBe(d);
  });
});

describe("closest", () => {
  const roles = ["ephemeral-ports", "tw-reuse"];
  const groupKeys = ["hosts", "vars", "children"];
  const vars = [
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_ssh_private_key_file",
    "ansible_become",
    "ephemeral_ports",
    "tw_reuse",
  ];

  it.each<[string, readonly string[], string | undefined]>([
    ["hostz", groupKeys, "hosts"],
    ["host", groupKeys, "hosts"],
    ["var", groupKeys, "vars"],
    ["chidlren", groupKeys, "children"],
    ["HOSTS", groupKeys, "hosts"],
    ["ephemeral-port", roles, "ephemeral-ports"],
    ["tw_reuse", roles, "tw-reuse"],
    ["twreuse", roles, "tw-reuse"],
    ["ansible_prot", vars, "ansible_port"],
    ["ansible_usr", vars, "ansible_user"],
    ["ephemeral_port", vars, "ephemeral_ports"],
    ["sysctl-magic", roles, undefined],
    ["completely_unrelated", vars, undefined],
    ["x", groupKeys, undefined],
    ["anything", [], undefined],
  ])("%j → %j", (word, candidates, expected) => {
    expect(closest(word, candidates)).toBe(expected);
  });

  it("allows at least 2 edits for short words and a third of the length for long ones", () => {
    expect(closest("ab", ["abcd"])).toBe("abcd");
    expect(closest("ab", ["abcde"])).toBeUndefined();
    // 12 letters → 4 edits allowed
    expect(closest("abcdefghijkl", ["abcdefghWXYZ"])).toBe("abcdefghWXYZ");
    expect(closest("abcdefghijkl", ["abcdefgVWXYZ"])).toBeUndefined();
  });

  it("returns the first of equally close candidates", () => {
    expect(closest("cat", ["bat", "hat"])).toBe("bat");
  });
});
