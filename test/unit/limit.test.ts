import { describe, expect, it } from "vitest";
import { type HostUniverse, LimitError, selectHosts } from "../../src/inventory/limit.js";

const universe: HostUniverse = {
  hosts: ["web1", "web2", "web3", "db1", "db2", "lb.example.com", "fe80::1"],
  groups: {
    all: ["web1", "web2", "web3", "db1", "db2", "lb.example.com", "fe80::1"],
    // Listed out of inventory order on purpose: subscripts index the group's own order.
    webservers: ["web2", "web1", "web3"],
    dbservers: ["db1", "db2"],
    staging: ["web1", "db1"],
    phoenix: ["web3", "db2"],
    edge: ["lb.example.com", "fe80::1"],
    prod: ["web2", "web3", "db2", "lb.example.com"],
    // A group and a host may share a name; the group wins, as in Ansible.
    web1: ["web1", "web2"],
  },
};

function expectLimitError(pattern: string): LimitError {
  try {
    selectHosts(pattern, universe);
  } catch (error) {
    expect(error).toBeInstanceOf(LimitError);
    return error as LimitError;
  }
  throw new Error(`expected "${pattern}" to be rejected`);
}

describe("selectHosts", () => {
  it.each<[string, string[]]>([
    ["all", universe.hosts],
    ["*", universe.hosts],
    ["db2", ["db2"]],
    ["lb.example.com", ["lb.example.com"]],
    ["webservers", ["web1", "web2", "web3"]],
    ["web1", ["web1", "web2"]],
    ["db2,web1", ["web1", "web2", "db2"]],
    ["dbservers:staging", ["web1", "db1", "db2"]],
    ["  dbservers ,  staging  ", ["web1", "db1", "db2"]],
    ["webservers,,dbservers,", ["web1", "web2", "web3", "db1", "db2"]],
    ["webservers:&staging", ["web1"]],
    ["webservers:!phoenix", ["web1", "web2"]],
    ["webservers:dbservers:&staging:!phoenix", ["web1", "db1"]],
    ["&staging:!phoenix:webservers:dbservers", ["web1", "db1"]],
    ["!phoenix", ["web1", "web2", "db1", "lb.example.com", "fe80::1"]],
    ["&prod", ["web2", "web3", "db2", "lb.example.com"]],
    ["&prod,!phoenix", ["web2", "lb.example.com"]],
    ["all:! phoenix", ["web1", "web2", "db1", "lb.example.com", "fe80::1"]],
    ["web*", ["web1", "web2", "web3"]],
    ["db?", ["db1", "db2"]],
    ["*.example.com", ["lb.example.com"]],
    ["*servers:!db*", ["web1", "web2", "web3"]],
    ["st*", ["web1", "db1"]],
    ["nomatch*", []],
    ["~(web|db)1", ["web1", "web2", "db1"]],
    ["~db\\d", ["db1", "db2"]],
    ["~.*example", ["lb.example.com"]],
    ["~b2", []],
    ["webservers[0]", ["web2"]],
    ["webservers[1]", ["web1"]],
    ["webservers[-1]", ["web3"]],
    ["webservers[0:1]", ["web1", "web2"]],
    ["webservers[0:2]", ["web1", "web2", "web3"]],
    ["webservers[1:]", ["web1", "web3"]],
    ["webservers[:1]", ["web1", "web2"]],
    ["webservers[2:1]", []],
    ["webservers[1:9]", ["web1", "web3"]],
    ["all[0:1],db2", ["web1", "web2", "db2"]],
    ["webservers[0:1]:dbservers[0]", ["web1", "web2", "db1"]],
    ["fe80::1", ["fe80::1"]],
    ["fe80::1,edge[0]", ["lb.example.com", "fe80::1"]],
  ])("%s", (pattern, expected) => {
    expect(selectHosts(pattern, universe)).toEqual(expected);
  });

  it.each([
    ["empty pattern", "", /empty/, /"all"/],
    ["only whitespace", "   ", /empty/, /"all"/],
    ["only separators", ", ,", /empty/, /"all"/],
    ["bare exclusion", "webservers:!", /"!" names no host or group/, /!staging/],
    ["bare intersection", "webservers,&", /"&" names no host or group/, /&staging/],
    ["typo in a group", "webserver", /No host or group named "webserver"/, /Close names in the inventory: webservers/],
    ["typo in a host", "dbb1", /"dbb1"/, /db1/],
    ["wrong case", "Staging", /"Staging"/, /staging/],
    ["typo behind !", "all:!phenix", /"phenix"/, /phoenix/],
    ["typo behind &", "all:&stagin", /"stagin"/, /staging/],
    ["nothing close", "kubernetes-control-plane", /"kubernetes-control-plane"/, /glob such as web\*/],
    ["index past the end", "webservers[3]", /position 3 but "webservers" has 3 hosts/, /from 0 to 2/],
    ["negative index past the start", "dbservers[-3]", /position -3/, /-1 for the last host/],
    ["subscript on an empty glob", "nomatch*[0]", /has 0 hosts/, /matches some hosts/],
    ["subscript of a typo", "webserver[0]", /"webserver"/, /webservers/],
    ["slice with no bounds", "webservers[:]", /not a position or a range/, /webservers\[0:2\]/],
    ["non-numeric subscript", "webservers[a]", /not a position or a range/, /webservers\[-1\]/],
    ["invalid regex", "~web(", /not a valid regular expression/, /~web\\d\+/],
  ])("rejects %s: %s", (_case, pattern, problem, fix) => {
    const error = expectLimitError(pattern);
    expect(error.problem).toMatch(problem);
    expect(error.fix).toMatch(fix);
    expect(error.message).toBe(`${error.problem}. ${error.fix}.`);
  });
});
