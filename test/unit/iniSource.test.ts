import { describe, expect, it } from "vitest";
import { formatProblem, type ConfigProblem } from "../../src/config/errors.js";
import {
  ansibleExpandHostnameRange,
  parseAddress,
  parseIniSource,
  type IniOptions,
} from "../../src/inventory/sources/ini.js";
import type { ParsedSource, SourceEvent } from "../../src/inventory/sources/model.js";

// Every inventory below was checked against ansible-core 2.14's ini plugin (the same groups, hosts,
// children and variables, in the same order; an error wherever Ansible raises one).

const FILE = "inv.ini";

function parse(text: string, options?: IniOptions): { parsed: ParsedSource | null; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const parsed = parseIniSource(text, FILE, problems, options);
  return { parsed, problems };
}

/** One line per event: `group web`, `child p>c`, `host web h1`, `hostVars h1 {"a":1}`, `groupVars web {"x":1}`. */
function describeEvent(e: SourceEvent): string {
  switch (e.kind) {
    case "group":
      return `group ${e.name}`;
    case "child":
      return `child ${e.parent}>${e.child}`;
    case "host":
      return `host ${e.group} ${e.name}`;
    case "hostVars":
      return `hostVars ${e.host} ${JSON.stringify(e.block.vars)}`;
    case "groupVars":
      return `groupVars ${e.group} ${JSON.stringify(e.block.vars)}`;
  }
}

function events(text: string, options?: IniOptions): string[] {
  const { parsed, problems } = parse(text, options);
  expect(problems.filter((p) => p.severity === "error").map(formatProblem)).toEqual([]);
  return parsed!.events.map(describeEvent);
}

function errors(text: string): string[] {
  const { parsed, problems } = parse(text);
  expect(parsed).toBeNull();
  return problems.map(formatProblem);
}

/** The vars of the last hostVars (or groupVars) event. */
function lastVars(text: string): Record<string, unknown> {
  const { parsed, problems } = parse(text);
  expect(problems.map(formatProblem)).toEqual([]);
  const block = parsed!.events.filter((e) => e.kind === "hostVars" || e.kind === "groupVars").at(-1);
  return (block as { block: { vars: Record<string, unknown> } }).block.vars;
}

describe("sections and states", () => {
  it.each<[string, string, string[]]>([
    ["hosts before any section are ungrouped", "h1\nh2", ["host ungrouped h1", "host ungrouped h2"]],
    [
      "hosts, vars and children sections",
      "[web]\nh1\n[web:vars]\nx=1\n[all:children]\nweb",
      ["group web", "host web h1", 'groupVars web {"x":1}', "child all>web"],
    ],
    ["[g:hosts] is [g]", "[web:hosts]\nh1", ["group web", "host web h1"]],
    ["a trailing # comment after a header", "[web] # the web tier\nh1", ["group web", "host web h1"]],
    ["a group is declared once", "[a]\nh1\n[a]\nh2", ["group a", "host a h1", "host a h2"]],
    [
      "all and ungrouped exist already",
      "[all]\nh1\n[all:vars]\nx=1\n[ungrouped]\nh2",
      ["host all h1", 'groupVars all {"x":1}', "host ungrouped h2"],
    ],
    [
      "[g:vars] before [g] creates the group",
      "[web:vars]\nx=1\n[web]\nh1",
      ["group web", 'groupVars web {"x":1}', "host web h1"],
    ],
    ["[g:children] declares g", "[web:children]\n[web:vars]\nx = 1", ["group web", 'groupVars web {"x":1}']],
    ["an empty section", "[web]\n[db]\nh1", ["group web", "group db", "host db h1"]],
    [
      "one groupVars event per [g:vars] line, later lines override",
      "[web]\n[web:vars]\nx=1\nx=2",
      ["group web", 'groupVars web {"x":1}', 'groupVars web {"x":2}'],
    ],
    [
      "a line that is a range is a host pattern, not a header",
      "[a:b] x=1",
      ["host ungrouped a", 'hostVars a {"x":1}', "host ungrouped b", 'hostVars b {"x":1}'],
    ],
    ["[1:2] alone is a header with an unknown type", "[web]\nh[1:2]", ["group web", "host web h1", "host web h2"]],
  ])("%s", (_name, text, expected) => {
    expect(events(text)).toEqual(expected);
  });

  it("Windows line ends and Python's other line breaks split lines", () => {
    expect(events("[web]\r\nh1\r\nh2\fh3\vh4\u2028h5")).toEqual([
      "group web",
      "host web h1",
      "host web h2",
      "host web h3",
      "host web h4",
      "host web h5",
    ]);
  });
});

describe("comments", () => {
  it.each<[string, string, string[]]>([
    ["# and ; at the start of a line", "# c\n; c\n   # indented\n\t; indented\nh1", ["host ungrouped h1"]],
    ["# after a host line", "h1 # c\nh2 x=1 # c", ["host ungrouped h1", "host ungrouped h2", 'hostVars h2 {"x":1}']],
    ["# in the middle of a word ends it", "h1 x=a#b y=2", ["host ungrouped h1", 'hostVars h1 {"x":"a"}']],
    ["# inside quotes is kept", 'h1 x="a#b"', ["host ungrouped h1", 'hostVars h1 {"x":"a#b"}']],
    ["# after a child name", "[p:children]\nc # c\n[c]", ["group p", "group c", "child p>c"]],
    ["a # inside a child name is part of it", "[p:children]\nc#d\n[c#d]", ["group p", "group c#d", "child p>c#d"]],
    [
      "# in [g:vars] is Python's comment when the value is a literal",
      "[all:vars]\nx = 1 # c\ny = a b # c",
      ['groupVars all {"x":1}', 'groupVars all {"y":"a b # c"}'],
    ],
  ])("%s", (_name, text, expected) => {
    expect(events(text)).toEqual(expected);
  });
});

describe("host line values (shlex, then literal_eval)", () => {
  it.each<[string, unknown]>([
    ["ansible_port=2222", 2222],
    ['x="1"', 1],
    ["x='1'", 1],
    ["x=\"'1'\"", "1"],
    ["x='a b'", "a b"],
    ['x="a b"', "a b"],
    ["x=yes", "yes"],
    ["x=True", true],
    ["x=true", "true"],
    ["x=None", null],
    ["x=[1,2]", [1, 2]],
    ['x="[1, 2]"', [1, 2]],
    ["x=1,2", [1, 2]],
    ["x=\"{'a': 1}\"", { a: 1 }],
    ["x={'a':1}", "{a:1}"],
    ["x=1.5", 1.5],
    ["x=1e3", 1000],
    ["x=-1", -1],
    ["x=0x10", 16],
    ["x=1_000", 1000],
    ["x=01", "01"],
    ["x=inf", "inf"],
    ["x=a#b", "a"],
    ["x=", ""],
    ['x=""', ""],
    ["x=a=b", "a=b"],
    ["x=1:2", "1:2"],
    ["x=b'v'", "bv"],
    ["x=\"b'v'\"", "v"],
    ['x="{{ var }}"', "{{ var }}"],
    ["x=9007199254740993", "9007199254740993"],
    ["x=1j", "1j"],
  ])("h1 %s", (token, expected) => {
    expect(lastVars(`[g]\nh1 ${token}`)).toStrictEqual({ [token.slice(0, token.indexOf("="))]: expected });
  });

  it("keeps all the vars of a line in one event, the last of a repeated key winning", () => {
    expect(events("h1 a=1 b=2 a=3")).toEqual(["host ungrouped h1", 'hostVars h1 {"a":3,"b":2}']);
  });

  it("accepts an empty key and a quoted key with spaces, as Ansible does", () => {
    expect(events("h1 =1 'q r'=2")).toEqual(["host ungrouped h1", 'hostVars h1 {"":1,"q r":2}']);
  });

  it("gives every host of a range the line's vars", () => {
    expect(events("web[1:2] x=1")).toEqual([
      "host ungrouped web1",
      'hostVars web1 {"x":1}',
      "host ungrouped web2",
      'hostVars web2 {"x":1}',
    ]);
  });

  it("sends the vars of a host named like an existing group to that group, as InventoryData.set_variable does", () => {
    expect(events("[web]\nweb x=1\nother")).toEqual([
      "group web",
      "host web web",
      'groupVars web {"x":1}',
      "host web other",
    ]);
    expect(events("web x=1\n[web]")).toEqual(["host ungrouped web", 'hostVars web {"x":1}', "group web"]);
  });
});

describe("[g:vars] values (no shlex: the text after '=', stripped, through literal_eval)", () => {
  it.each<[string, unknown]>([
    ["x = 1", 1],
    ["x=1", 1],
    ['x = "1"', "1"],
    ["x = 'a b'", "a b"],
    ["x = a b # c", "a b # c"],
    ["x = 1 # c", 1],
    ["x = 'a' # c", "a"],
    ["x = yes", "yes"],
    ["x = True", true],
    ["x = None", null],
    ["x = [1, 2]", [1, 2]],
    ["x = {'a': 1, 'b': [True]}", { a: 1, b: [true] }],
    ["x =", ""],
    ["x = a=b", "a=b"],
    ['x = "a" "b"', "ab"],
    ["x = 0x10", 16],
    ["x = 1_000", 1000],
    ['x = "a#b"', "a#b"],
    ["x = a#b", "a#b"],
    ["x = {{ var }}", "{{ var }}"],
    ["  x   =   1  ", 1],
  ])("%j", (line, expected) => {
    expect(lastVars(`[all:vars]\n${line}`)).toStrictEqual({ x: expected });
  });

  it("takes the key as written, spaces and all", () => {
    expect(lastVars("[all:vars]\nx y = 1")).toStrictEqual({ "x y": 1 });
    expect(lastVars("[all:vars]\n= 1")).toStrictEqual({ "": 1 });
  });
});

describe("host:port", () => {
  it.each<[string, string, string[]]>([
    ["name:port", "h1:2222", ["host ungrouped h1", 'hostVars h1 {"ansible_port":2222}']],
    ["leading zeros", "h1:0022", ["host ungrouped h1", 'hostVars h1 {"ansible_port":22}']],
    ["bracketed IPv6", "[::1]:2222", ["host ungrouped ::1", 'hostVars ::1 {"ansible_port":2222}']],
    [
      "bracketed full IPv6",
      "[2001:db8::1]:22",
      ["host ungrouped 2001:db8::1", 'hostVars 2001:db8::1 {"ansible_port":22}'],
    ],
    ["bare IPv6 has no port", "2001:db8::1", ["host ungrouped 2001:db8::1"]],
    ["IPv6 with a zone", "fe80::1%eth0", ["host ungrouped fe80::1%eth0"]],
    [
      "IPv4 with a range and a port",
      "10.0.0.[1:2]:22",
      [
        "host ungrouped 10.0.0.1",
        'hostVars 10.0.0.1 {"ansible_port":22}',
        "host ungrouped 10.0.0.2",
        'hostVars 10.0.0.2 {"ansible_port":22}',
      ],
    ],
    [
      "a range, a port and vars",
      "web[01:02]:22 x=1",
      [
        "host ungrouped web01",
        'hostVars web01 {"ansible_port":22}',
        'hostVars web01 {"x":1}',
        "host ungrouped web02",
        'hostVars web02 {"ansible_port":22}',
        'hostVars web02 {"x":1}',
      ],
    ],
    [
      "an explicit ansible_port after the port wins",
      "h1:22 ansible_port=99",
      ["host ungrouped h1", 'hostVars h1 {"ansible_port":22}', 'hostVars h1 {"ansible_port":99}'],
    ],
    ["port 0 sets nothing", "h1:0", ["host ungrouped h1"]],
    ["a name parse_address refuses keeps its colon", "web_:22", ["host ungrouped web_:22"]],
    ["user@host is not an address", "user@h:22", ["host ungrouped user@h:22"]],
    ["an unparsable name with no port", "x:y", ["host ungrouped x:y"]],
    [
      "only the first port of a host counts (Host(name, port) is created once)",
      "[a]\nh1:22\n[b]\nh1:33",
      ["group a", "host a h1", 'hostVars h1 {"ansible_port":22}', "group b", "host b h1"],
    ],
    ["no port when the host came without one first", "h1\nh1:22", ["host ungrouped h1", "host ungrouped h1"]],
  ])("%s", (_name, text, expected) => {
    expect(events(text)).toEqual(expected);
  });

  it.each<[string, { host: string; port?: string } | null]>([
    ["h1", { host: "h1" }],
    ["h1:22", { host: "h1", port: "22" }],
    ["[h1]:22", { host: "h1", port: "22" }],
    ["[1.2.3.4:80]:22", { host: "1.2.3.4", port: "80" }],
    ["web[1:3].example.com:22", { host: "web[1:3].example.com", port: "22" }],
    ["web[aa:ab]", null],
    ["-web", null],
    ["web_", null],
    ["wéb:22", { host: "wéb", port: "22" }],
  ])("parse_address(%j)", (address, expected) => {
    const got = parseAddress(address);
    expect(got === null ? null : { host: got.host, ...(got.port === undefined ? {} : { port: got.port }) }).toEqual(
      expected,
    );
  });
});

describe("host ranges", () => {
  it.each<[string, string[]]>([
    ["web[01:03]", ["web01", "web02", "web03"]],
    ["db-[a:c]", ["db-a", "db-b", "db-c"]],
    ["h[1:2][a:b]", ["h1a", "h1b", "h2a", "h2b"]],
    ["h[1:5:2]", ["h1", "h3", "h5"]],
    ["h[:2]", ["h0", "h1", "h2"]],
    ["h[x:B]", ["hx", "hy", "hz", "hA", "hB"]],
  ])("%s", (pattern, hosts) => {
    expect(events(pattern)).toEqual(hosts.map((h) => `host ungrouped ${h}`));
  });

  it.each<[string, string[], string]>([
    [
      "h[3:1]",
      [],
      'inv.ini:1:1 ungrouped.h[3:1]: warning: "[3:1]" in "h[3:1]" starts after it ends; Ansible reads it as no hosts. Put the smaller bound first, e.g. [1:3].',
    ],
    [
      "h[1:3:-1]",
      [],
      'inv.ini:1:1 ungrouped.h[1:3:-1]: warning: "[1:3:-1]" in "h[1:3:-1]" has step "-1", which is not a positive whole number; Ansible reads it as no hosts. Use a step of 1 or more, e.g. [1:10:2].',
    ],
    [
      "h[-1:1]",
      ["h-1", "h0", "h1"],
      'inv.ini:1:1 ungrouped.h[-1:1]: warning: "[-1:1]" in "h[-1:1]" has a bound that is neither a number nor a letter; Ansible reads it as 3 hosts "h-1", "h0", "h1". Use two numbers, e.g. [1:9], or two single letters, e.g. [a:f].',
    ],
  ])("%s: Ansible's quirky result, with a warning", (pattern, hosts, warning) => {
    const { parsed, problems } = parse(pattern);
    expect(problems.map(formatProblem)).toEqual([warning]);
    expect(parsed!.events.map(describeEvent)).toEqual(hosts.map((h) => `host ungrouped ${h}`));
  });

  it.each<[string, string[] | null]>([
    ["h[1:3]", ["h1", "h2", "h3"]],
    ["h[3:1]", []],
    ["h[ab:cd]", ["ha", "hb", "hc"]],
    ["h[a:c:-1]", []],
    ["h[-3:-1]", ["h-3", "h-2", "h-1"]],
    ["h[01:3]", null],
    ["h[1:2:0]", null],
    ["h[1:2", null],
    ["h[b:a]", null],
    ["h[1:100001]", null],
  ])("Ansible's expand_hostname_range(%j)", (pattern, expected) => {
    expect(ansibleExpandHostnameRange(pattern)).toEqual(expected);
  });
});

describe("[g:children] and pending declarations", () => {
  it.each<[string, string, string[]]>([
    [
      "a child declared later is added when it is declared",
      "[p:children]\nc\n[c]\nh",
      ["group p", "group c", "child p>c", "host c h"],
    ],
    [
      "every parent waiting for a child gets it",
      "[p:children]\nc\n[q:children]\nc\n[c:children]",
      ["group p", "group q", "group c", "child p>c", "child q>c"],
    ],
    ["a child declared before is added at once", "[c]\n[p:children]\nc", ["group c", "group p", "child p>c"]],
    [
      "[c:vars] does not resolve it, [c] then does",
      "[p:children]\nc\n[c:vars]\nx=1\n[c]",
      ["group p", "group c", 'groupVars c {"x":1}', "child p>c"],
    ],
    [
      "[c:children] resolves it too",
      "[p:children]\nc\n[c:children]\nd\n[d]",
      ["group p", "group c", "child p>c", "group d", "child c>d"],
    ],
    ["all and ungrouped may be children", "[p:children]\nungrouped", ["group p", "child p>ungrouped"]],
    ["a child listed twice is one edge", "[c]\n[p:children]\nc\nc", ["group c", "group p", "child p>c"]],
  ])("%s", (_name, text, expected) => {
    expect(events(text)).toEqual(expected);
  });

  it("uses groups and hosts that earlier sources declared", () => {
    expect(events("[web:vars]\nx=1\n[p:children]\nweb", { knownGroups: ["web"] })).toEqual([
      'groupVars web {"x":1}',
      "group p",
      "child p>web",
    ]);
    expect(events("h1:22", { knownHosts: ["h1"] })).toEqual(["host ungrouped h1"]);
  });
});

describe("errors, each at its line and column", () => {
  it.each<[string, string, string[]]>([
    [
      "an unknown section type",
      "[web:var]\nh1",
      [
        'inv.ini:1:6 web:var: section [web:var] has unknown type "var". The type after ":" must be vars, children or hosts: did you mean [web:vars]?',
      ],
    ],
    [
      "a space in a section name",
      "[web servers]",
      [
        'inv.ini:1:1 "web servers": section header "[web servers]" has a space in it. Group names cannot contain spaces: write e.g. [web_servers].',
      ],
    ],
    [
      "an empty section name",
      "[]",
      [
        'inv.ini:1:1 : section header "[]" has no group name. Write the group name between the brackets, e.g. [web].'.replace(
          "inv.ini:1:1 :",
          "inv.ini:1:1:",
        ),
      ],
    ],
    [
      "a ; comment after a header",
      "[web] ; c\nh1",
      [
        'inv.ini:1:1 web: the ";" comment after "[web]" makes Ansible read the line as something other than a section header. Use # for a comment after a section header.',
      ],
    ],
    [
      "text after a header",
      "[web] h1",
      [
        'inv.ini:1:1 web: "h1" follows the section header "[web]" on the same line. Put it on its own line; only a # comment may follow a section header.',
      ],
    ],
    ["an unclosed header", "[web\nh1", ['inv.ini:1:1 web: section header "[web" has no closing "]". Close it: [web].']],
    [
      "a bracketed address alone",
      "[::1]",
      [
        'inv.ini:1:1 ::1: "[::1]" reads as a section header, not as the host ::1. Write the address without brackets (::1), or with a port after them ([::1]:22).',
      ],
    ],
    [
      "[g:vars] for a group never declared",
      "[web:vars]\nx=1",
      [
        'inv.ini:1:2 web:vars: [web:vars] sets variables for group "web", which is never declared. Declare the group with a [web] section (it may be empty) or a [web:children] section.',
      ],
    ],
    [
      "a typo in a [g:vars] name",
      "[webservers]\n[webserver:vars]\nx=1",
      [
        'inv.ini:2:2 webserver:vars: [webserver:vars] sets variables for group "webserver", which is never declared. Did you mean [webservers:vars]? Otherwise declare the group with a [webserver] section.',
      ],
    ],
    [
      "a child never declared",
      "[p:children]\nc",
      [
        'inv.ini:2:1 p:children.c: [p:children] lists "c", which is never declared as a group. Declare it with a [c] section (it may be empty), or remove it.',
      ],
    ],
    [
      "a child with only [c:vars]",
      "[p:children]\nc\n[c:vars]\nx=1",
      [
        'inv.ini:2:1 p:children.c: [p:children] lists "c", which is never declared as a group. A [c:vars] section does not declare a group: add a [c] section (it may be empty).',
      ],
    ],
    [
      "[c:vars] then a reference",
      "[c:vars]\nx=1\n[p:children]\nc",
      [
        'inv.ini:1:2 c:vars: [c:vars] sets variables for group "c", which is never declared. Declare the group with a [c] section (it may be empty) or a [c:children] section.',
      ],
    ],
    [
      "a group its own child",
      "[a:children]\na",
      ['inv.ini:2:1 a:children.a: group "a" is listed as its own child. Remove "a" from [a:children].'],
    ],
    [
      "a loop",
      "[a:children]\nb\n[b:children]\na",
      [
        'inv.ini:4:1 b:children.a: making "a" a child of "b" creates a loop: "a" already contains "b". Remove one of the two [..:children] entries.',
      ],
    ],
    [
      "a host in [g:children]",
      "[p:children]\nh1 x=1",
      [
        'inv.ini:2:1 p:children: "h1 x=1" in [p:children] is not a group name. List one group name per line; hosts belong under [p], not [p:children].',
      ],
    ],
    [
      "not key=value in [g:vars]",
      "[web]\n[web:vars]\n  x",
      [
        'inv.ini:3:3 web:vars: "x" in [web:vars] is not a key=value variable. Write one variable per line as key = value; hosts belong under [web], not [web:vars].',
      ],
    ],
    [
      "not key=value after a host",
      "[web]\nh1 foo",
      [
        'inv.ini:2:4 web.h1: "foo" after host "h1" is not a key=value variable. Write host variables as key=value (quote values with spaces: key="a b"), and each host on its own line.',
      ],
    ],
    [
      "spaces around = on a host line",
      "h1 x = 1",
      [
        'inv.ini:1:4 ungrouped.h1: "x" after host "h1" is not a key=value variable. Write key=value with no spaces around "=" (spaces are allowed in [group:vars] sections).',
        'inv.ini:1:8 ungrouped.h1: "1" after host "h1" is not a key=value variable. Write key=value with no spaces around "=" (spaces are allowed in [group:vars] sections).',
      ],
    ],
    [
      "an unquoted dict with a space",
      "h1 x={'a': 1}",
      [
        'inv.ini:1:12 ungrouped.h1: "1}" after host "h1" is not a key=value variable. Write host variables as key=value (quote values with spaces: key="a b"), and each host on its own line.',
      ],
    ],
    [
      "a host ending in ':'",
      "h1:",
      [
        'inv.ini:1:1 ungrouped.h1:: host "h1:" ends in ":" but has no port after it. Write the port after the colon (h1:2222), or remove the colon.',
      ],
    ],
    [
      "an unclosed quote",
      '  h1 x="a b',
      [
        'inv.ini:1:8 ungrouped: the " quote opened here is never closed. Close it with a matching ", or escape it as \\".',
      ],
    ],
    [
      "a trailing backslash",
      "h1 x=a\\",
      ["inv.ini:1:7 ungrouped: the line ends with a backslash that escapes nothing. Remove the trailing backslash."],
    ],
    [
      "a bad range",
      "[web]\nweb[01:3]",
      [
        'inv.ini:2:1 web.web[01:3]: "[01:3]" in "web[01:3]" is zero-padded to 2 digits but its end has 1. Write both bounds with the same number of digits, e.g. [01:03].',
      ],
    ],
    [
      "an unclosed range",
      "h[1:2",
      [
        'inv.ini:1:1 ungrouped.h[1:2: "h[1:2" has a range that is never closed. Close the range with "]", e.g. web[01:20].',
      ],
    ],
    [
      "a bracketed address with vars",
      "[::1] x=1",
      [
        'inv.ini:1:1 ::1: "[::1]" reads as a section header, not as the host ::1. Write the address without brackets (::1), or with a port after them ([::1]:22).',
      ],
    ],
    ["an empty host name", "''", ["inv.ini:1:1 ungrouped.: the host name is empty. Give the host a name."]],
    [
      "an unhashable dict key (Python's TypeError)",
      'h1 x="{[1]: 2}"',
      [
        "inv.ini:1:6 ungrouped.h1.x: the value \"{[1]: 2}\" is a Python literal that Ansible cannot load (unhashable type: 'list'). Use only strings and numbers as dict keys and set members, or quote the whole value to keep it a string.",
      ],
    ],
    [
      "an unhashable set member in [g:vars]",
      "[all:vars]\nx = {[1]}",
      [
        "inv.ini:2:5 all:vars.x: the value \"{[1]}\" is a Python literal that Ansible cannot load (unhashable type: 'list'). Use only strings and numbers as dict keys and set members, or quote the whole value to keep it a string.",
      ],
    ],
    [
      "a YAML file stops the parse",
      "---\nall:\n  hosts:",
      [
        'inv.ini:1:1 ungrouped.---: "---" starts a YAML document, but this file is read as an INI inventory. Give a YAML inventory a .yml or .yaml extension.',
      ],
    ],
  ])("%s", (_name, text, expected) => {
    expect(errors(text)).toEqual(expected);
  });

  it("reports every problem of the file in one pass", () => {
    const text = [
      "[web]",
      "h1 junk",
      "h2:",
      "[web:foo]",
      "ignored line",
      "[db:vars]",
      "x",
      "[p:children]",
      "nope",
      "[ok]",
      'h3 y="{[1]: 2}" z=1',
    ].join("\n");
    expect(errors(text)).toEqual([
      'inv.ini:2:4 web.h1: "junk" after host "h1" is not a key=value variable. Write host variables as key=value (quote values with spaces: key="a b"), and each host on its own line.',
      'inv.ini:3:1 web.h2:: host "h2:" ends in ":" but has no port after it. Write the port after the colon (h2:2222), or remove the colon.',
      'inv.ini:4:6 web:foo: section [web:foo] has unknown type "foo". The type after ":" must be vars, children or hosts, e.g. [web:vars].',
      'inv.ini:7:1 db:vars: "x" in [db:vars] is not a key=value variable. Write one variable per line as key = value; hosts belong under [db], not [db:vars].',
      "inv.ini:11:6 ok.h3.y: the value \"{[1]: 2}\" is a Python literal that Ansible cannot load (unhashable type: 'list'). Use only strings and numbers as dict keys and set members, or quote the whole value to keep it a string.",
      'inv.ini:6:2 db:vars: [db:vars] sets variables for group "db", which is never declared. Declare the group with a [db] section (it may be empty) or a [db:children] section.',
      'inv.ini:9:1 p:children.nope: [p:children] lists "nope", which is never declared as a group. Declare it with a [nope] section (it may be empty), or remove it.',
    ]);
  });

  it("warns about a byte-order mark, which Ansible keeps in the first host name", () => {
    const { parsed, problems } = parse("\ufeffh1\nh2");
    expect(problems.map(formatProblem)).toEqual([
      "inv.ini:1:1: warning: the file starts with a byte-order mark, which Ansible reads as part of the first line. Save the file as UTF-8 without a BOM.",
    ]);
    expect(parsed!.events.map(describeEvent)).toEqual(["host ungrouped \ufeffh1", "host ungrouped h2"]);
  });
});

describe("locate()", () => {
  const text = [
    "[web]",
    'web[01:03]:2222 ansible_user=deploy  x="a b"',
    "[web:vars]",
    "  ephemeral_ports = {'port_range_start': 32768}",
    "ansible_port=22",
    "[all:children]",
    "web",
  ].join("\n");
  const { parsed } = parse(text);
  const source = parsed!.events[0]!.kind === "group" ? parsed!.events[0]!.at.source : null;

  it.each<[Array<string | number>, "key" | "value", number, number]>([
    [["web:vars", "ephemeral_ports"], "key", 4, 3],
    [["web:vars", "ephemeral_ports"], "value", 4, 21],
    [["web:vars", "ephemeral_ports", "port_range_start"], "value", 4, 21],
    [["web:vars", "ephemeral_ports", "port_range_start"], "key", 4, 21],
    [["web:vars", "ansible_port"], "key", 5, 1],
    [["web:vars", "ansible_port"], "value", 5, 14],
    [["web:vars"], "value", 3, 2],
    [["web", "web[01:03]:2222"], "value", 2, 1],
    [["web", "web[01:03]:2222", "ansible_port"], "key", 2, 1],
    [["web", "web[01:03]:2222", "ansible_port"], "value", 2, 12],
    [["web", "web[01:03]:2222", "ansible_user"], "key", 2, 17],
    [["web", "web[01:03]:2222", "ansible_user"], "value", 2, 30],
    [["web", "web[01:03]:2222", "x"], "key", 2, 38],
    [["web", "web[01:03]:2222", "x"], "value", 2, 40],
    [["web", "web[01:03]:2222", "nope"], "value", 2, 1],
    [["web", "unknown"], "value", 1, 2],
    [["web"], "key", 1, 2],
    [["all:children", "web"], "value", 7, 1],
    [["nope"], "value", 1, 1],
    [[], "value", 1, 1],
  ])("%j at %s", (path, at, line, col) => {
    expect(source!.locate(path, at)).toEqual({ line, col });
  });

  it("tags each event with the path its var block or entry was recorded at", () => {
    const paths = parsed!.events.map((e) => ("at" in e ? e.at.path : e.block.basePath).join(" / "));
    expect(paths).toEqual([
      "web",
      "web / web[01:03]:2222",
      "web / web[01:03]:2222",
      "web / web[01:03]:2222",
      "web / web[01:03]:2222",
      "web / web[01:03]:2222",
      "web / web[01:03]:2222",
      "web / web[01:03]:2222",
      "web / web[01:03]:2222",
      "web / web[01:03]:2222",
      "web:vars",
      "web:vars",
      "all:children / web",
    ]);
    expect(parsed!.events[0]!.kind === "group" && parsed!.events[0]!.at.source.file).toBe(FILE);
  });
});

describe("size", () => {
  it("parses a 10,000-line inventory", () => {
    const lines = ["[web]"];
    for (let i = 0; i < 6000; i++)
      lines.push(`web-${i}.example.com ansible_host=10.0.${i >> 8}.${i & 255} rack=${i % 10}`);
    lines.push("[db]");
    for (let i = 0; i < 2000; i++) lines.push(`db${i}:2222`);
    lines.push("[cache]", "cache[0001:2000]", "[all:vars]");
    for (let i = 0; i < 1995; i++) lines.push(`v${i} = '${i}'`);
    expect(lines.length).toBe(10_000);
    const { parsed, problems } = parse(lines.join("\n"));
    expect(problems).toEqual([]);
    const hosts = new Set(parsed!.events.filter((e) => e.kind === "host").map((e) => (e as { name: string }).name));
    expect(hosts.size).toBe(10_000);
  });
});
