import { describe, expect, it } from "vitest";
import {
  expandHostPattern,
  hasHostRange,
  HostPatternError,
  MAX_EXPANDED_HOSTS,
} from "../../src/inventory/hostRange.js";

function expectPatternError(pattern: string): HostPatternError {
  try {
    expandHostPattern(pattern);
  } catch (error) {
    expect(error).toBeInstanceOf(HostPatternError);
    return error as HostPatternError;
  }
  throw new Error(`expected "${pattern}" to be rejected`);
}

describe("hasHostRange", () => {
  it.each([
    ["web01.example.com", false],
    ["10.0.0.1", false],
    ["web[01:20].example.com", true],
    ["[::1]", true],
    ["web]", true],
  ])("%s → %s", (pattern, expected) => {
    expect(hasHostRange(pattern)).toBe(expected);
  });
});

describe("expandHostPattern", () => {
  it.each<[string, string[]]>([
    ["web01.example.com", ["web01.example.com"]],
    ["web[1:3]", ["web1", "web2", "web3"]],
    ["web[01:03].example.com", ["web01.example.com", "web02.example.com", "web03.example.com"]],
    ["web[08:11]", ["web08", "web09", "web10", "web11"]],
    ["node[098:101]", ["node098", "node099", "node100", "node101"]],
    ["db-[99:101]-node", ["db-99-node", "db-100-node", "db-101-node"]],
    ["h[0:10:5]", ["h0", "h5", "h10"]],
    ["h[1:10:2]", ["h1", "h3", "h5", "h7", "h9"]],
    ["h[01:10:4]", ["h01", "h05", "h09"]],
    ["h[:2]", ["h0", "h1", "h2"]],
    ["h[5:5]", ["h5"]],
    ["db-[a:f].x", ["db-a.x", "db-b.x", "db-c.x", "db-d.x", "db-e.x", "db-f.x"]],
    ["db-[a:e:2]", ["db-a", "db-c", "db-e"]],
    ["z[y:B]", ["zy", "zz", "zA", "zB"]],
    ["[1:2]-[a:b]", ["1-a", "1-b", "2-a", "2-b"]],
    ["r[1:2]n[01:02].dc", ["r1n01.dc", "r1n02.dc", "r2n01.dc", "r2n02.dc"]],
  ])("%s", (pattern, expected) => {
    expect(expandHostPattern(pattern)).toEqual(expected);
  });

  it("expands a range exactly at the size limit", () => {
    expect(expandHostPattern(`h[1:${MAX_EXPANDED_HOSTS}]`)).toHaveLength(MAX_EXPANDED_HOSTS);
  });

  it.each([
    ["descending numbers", "web[20:01]", /starts after it ends/, /\[01:20\]/],
    ["descending letters", "db-[f:a]", /starts after it ends/, /\[a:f\]/],
    ["uppercase before lowercase", "db-[A:c]", /starts after it ends/, /smaller bound first/],
    ["number then letter", "web[1:f]", /mixes a number and a letter/, /two numbers/],
    ["letter then number", "web[a:9]", /mixes a number and a letter/, /two single letters/],
    ["multi-letter bounds", "db-[aa:az]", /multi-letter bound/, /\[a:b\]\[a:z\]/],
    ["negative bound", "web[-1:3]", /neither a number nor a letter/, /two numbers/],
    ["zero step", "web[1:10:0]", /step "0"/, /step of 1 or more/],
    ["negative step", "web[1:10:-2]", /step "-2"/, /step of 1 or more/],
    ["fractional step", "web[1:10:1.5]", /step "1.5"/, /step of 1 or more/],
    ["empty step", "web[1:10:]", /step ""/, /step of 1 or more/],
    ["unterminated range", "web[01:20.example.com", /never closed/, /Close the range/],
    ["stray closing bracket", "web01:20].example.com", /without a matching "\["/, /Remove the "\]"/],
    ["nested range", "web[1:[2:3]]", /nested/, /side by side/],
    ["empty brackets", "web[]", /is not a range/, /\[start:end\]/],
    ["single value", "web[5]", /is not a range/, /\[start:end:step\]/],
    ["empty end", "web[1:]", /has no end/, /both bounds/],
    ["empty bounds", "web[:]", /has no end/, /both bounds/],
    ["empty start before a letter", "db-[:c]", /has no start/, /two single letters/],
    ["end wider than padded start", "web[01:100]", /zero-padded to 2 digits but its end has 3/, /\[001:100\]/],
    ["end narrower than padded start", "web[001:99]", /zero-padded to 3 digits but its end has 2/, /\[001:099\]/],
    ["IPv6 loopback", "[::1]", /brackets an address/, /name the host and set ansible_host/],
    ["IPv6 with port", "[2001:db8::1]:22", /brackets an address/, /ansible_host/],
    ["full IPv6", "[2001:db8:0:0:0:0:0:1]", /brackets an address/, /ansible_host/],
    ["bracketed IPv4", "[10.0.0.1]", /brackets an address/, /ansible_host/],
    ["one huge range", "web[1:100001]", /more than 100000 host names/, /Split it/],
    ["huge product", "r[1:1000]n[1:1000]", /more than 100000 host names/, /Split it/],
    ["empty name", "  ", /empty/, /Give the host a name/],
  ])("rejects %s: %s", (_case, pattern, problem, fix) => {
    const error = expectPatternError(pattern);
    expect(error.problem).toMatch(problem);
    expect(error.fix).toMatch(fix);
    expect(error.message).toBe(`${error.problem}. ${error.fix}.`);
  });
});
