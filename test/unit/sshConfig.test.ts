import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RouteError, type RouteRequest, type SshRoute } from "../../src/transport/route.js";
import { NO_SSH_NOTICE, resolveRoutes, type ResolveRoutesOptions } from "../../src/transport/sshConfig.js";
import {
  globPaths,
  hostLineMatcher,
  hostLineMatches,
  matchPattern,
  parseConfigLine,
  parseJumpList,
  percentExpand,
  scanSshConfig,
  splitConfigArgs,
  tildeExpand,
} from "../../src/transport/sshConfigFiles.js";

// These tests run the real `ssh -G` (it opens no connection). Every config is passed with -F,
// because ssh finds ~/.ssh/config through the passwd database, not $HOME.

const HOME = userInfo().homedir;
const LOCAL_USER = userInfo().username;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(process.env.PROVISION_TEST_RUN_DIR ?? tmpdir(), "provision-sshconfig-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  return path;
}

function request(destination: string, overrides: Partial<RouteRequest> = {}): RouteRequest {
  return { destination, sshArgs: [], ...overrides };
}

async function routes(requests: RouteRequest[], opts: ResolveRoutesOptions) {
  return (await resolveRoutes(requests, opts)).routes;
}

async function routeOf(req: RouteRequest, configFile: string): Promise<SshRoute> {
  const [route] = await routes([req], { configFile });
  if (route instanceof RouteError) throw new Error(`unexpected RouteError: ${route.message}`);
  return route!;
}

async function errorOf(req: RouteRequest, configFile: string): Promise<RouteError> {
  const [route] = await routes([req], { configFile });
  if (!(route instanceof RouteError)) throw new Error(`expected a RouteError, got ${JSON.stringify(route)}`);
  return route;
}

describe("resolveRoutes: the target's settings", () => {
  let config: string;
  beforeAll(() => {
    config = writeConfig(
      "basic.conf",
      `Host web
  HostName 10.1.2.3
  User deploy
  Port 2222
  IdentityFile ~/.ssh/web_key
  ConnectTimeout 7
  ServerAliveInterval 5
  ServerAliveCountMax 4
  HostKeyAlias Web-Alias
  StrictHostKeyChecking yes
  UserKnownHostsFile ${dir}/kh/%h_%p
  GlobalKnownHostsFile ~/global_kh

Host web* app*
  User second-block-user
  Port 9999
  IdentitiesOnly yes

Host * !db* !*.internal
  User fallback

Host *
  User last
`,
    );
  });

  it("takes HostName, User, Port and IdentityFile from the alias's Host block", async () => {
    const { target, jumps } = await routeOf(request("web"), config);
    expect(jumps).toEqual([]);
    expect(target).toMatchObject({
      alias: "web",
      hostname: "10.1.2.3",
      user: "deploy",
      port: 2222,
      identityFiles: [`${HOME}/.ssh/web_key`],
      identityFilesConfigured: true,
      identitiesOnly: true,
      certificateFiles: [],
      knownHostsFiles: [`${dir}/kh/10.1.2.3_2222`, `${HOME}/global_kh`],
      recordHostKeysIn: `${dir}/kh/10.1.2.3_2222`,
      hostKeyName: "web-alias",
      hostKeyPort: 22,
      strictHostKeyChecking: "yes",
      connectTimeoutMs: 7000,
      serverAlive: { intervalMs: 5000, countMax: 4 },
      proxyCommand: null,
      sshArgv: ["-F", config, "web"],
      needsOpenSsh: null,
    });
  });

  it("lets the inventory's user, port and key beat ssh_config, as -o does", async () => {
    const { target } = await routeOf(
      request("web", { user: "inv", port: 2200, identityFile: `${dir}/keys/inv key` }),
      config,
    );
    expect(target).toMatchObject({ user: "inv", port: 2200, hostname: "10.1.2.3" });
    expect(target.identityFiles).toEqual([`${dir}/keys/inv key`, `${HOME}/.ssh/web_key`]);
    expect(target.sshArgv).toEqual([
      "-F",
      config,
      "-o",
      "User=inv",
      "-o",
      "Port=2200",
      "-o",
      `IdentityFile="${dir}/keys/inv key"`,
      "web",
    ]);
  });

  it.each([
    ["web-2", "second-block-user", 9999],
    ["app-1", "second-block-user", 9999],
    ["db-1", "last", 22],
    ["x.internal", "last", 22],
    ["mail", "fallback", 22],
    ["Web", "fallback", 22],
  ])("applies the first value of every matching Host block, negations included: %s", async (name, user, port) => {
    const { target } = await routeOf(request(name), config);
    expect(target).toMatchObject({ user, port, hostname: name.toLowerCase() });
  });

  it("reports OpenSSH's defaults when nothing is configured", async () => {
    const { target } = await routeOf(request("plain"), writeConfig("empty.conf", ""));
    expect(target).toMatchObject({
      hostname: "plain",
      port: 22,
      user: LOCAL_USER,
      identityFiles: ["id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"].map(
        (f) => `${HOME}/.ssh/${f}`,
      ),
      identityFilesConfigured: false,
      identitiesOnly: false,
      knownHostsFiles: [
        `${HOME}/.ssh/known_hosts`,
        `${HOME}/.ssh/known_hosts2`,
        "/etc/ssh/ssh_known_hosts",
        "/etc/ssh/ssh_known_hosts2",
      ],
      hostKeyName: "plain",
      strictHostKeyChecking: "ask",
      connectTimeoutMs: null,
      serverAlive: null,
      proxyCommand: null,
    });
  });

  it("expands IdentityFile tokens the way ssh does when it loads the keys, keeping order and dropping duplicates", async () => {
    process.env.PROVISION_SSHCONFIG_TEST_DIR = `${dir}/env`;
    const config = writeConfig(
      "tokens.conf",
      `Host tok
  HostName Real.Example
  User ops
  Port 2022
  IdentityFile ~/.ssh/%h_%r_%p
  IdentityFile %d/k_%u_%n_%%
  IdentityFile ~/.ssh/%h_%r_%p
  IdentityFile /k/%l/%L/%i/%k
  IdentityFile /k/%C
  IdentityFile \${PROVISION_SSHCONFIG_TEST_DIR}/key
  IdentityFile relative/key
`,
    );
    const { target } = await routeOf(request("tok"), config).finally(
      () => delete process.env.PROVISION_SSHCONFIG_TEST_DIR,
    );
    const local = hostname();
    const hash = createHash("sha1").update(`${local}real.example2022ops`).digest("hex");
    expect(target.identityFiles).toEqual([
      `${HOME}/.ssh/real.example_ops_2022`,
      `${HOME}/k_${LOCAL_USER}_tok_%`,
      `/k/${local}/${local.split(".")[0]}/${userInfo().uid}/tok`,
      `/k/${hash}`,
      `${dir}/env/key`,
      join(process.cwd(), "relative/key"),
    ]);
  });

  it("turns a token OpenSSH does not know into a RouteError", async () => {
    const config = writeConfig("badtoken.conf", "Host *\n  IdentityFile ~/.ssh/%x\n");
    expect((await errorOf(request("h"), config)).message).toMatch(/IdentityFile ~\/\.ssh\/%x: unknown token %x/);
  });

  it("follows Include globs, in sorted order, from inside a Host block too", async () => {
    writeConfig("inc.d/20-second.conf", "Host inc-*\n  User from-second\n  Port 2020\n");
    writeConfig("inc.d/10-first.conf", "Host inc-a\n  User from-first\n");
    writeConfig("inc.d/.hidden.conf", "Host *\n  User hidden\n");
    const config = writeConfig("inc.conf", `Host inc-*\n  Include ${dir}/inc.d/*.conf\nHost *\n  User outside\n`);
    const [a, b, c] = (await routes([request("inc-a"), request("inc-b"), request("other")], {
      configFile: config,
    })) as SshRoute[];
    expect([a!.target.user, a!.target.port]).toEqual(["from-first", 2020]);
    expect([b!.target.user, b!.target.port]).toEqual(["from-second", 2020]);
    expect([c!.target.user, c!.target.port]).toEqual(["outside", 22]);
  });

  it("resolves a relative Include against ~/.ssh, where ~ is $HOME (glob's tilde)", async () => {
    const fakeHome = join(dir, "home");
    writeConfig("home/.ssh/conf.d/x.conf", "Host *\n  User from-home-include\n");
    const config = writeConfig("relinc.conf", "Include conf.d/*.conf\n");
    const saved = process.env.HOME;
    process.env.HOME = fakeHome;
    try {
      const result = await resolveRoutes([request("r1"), request("r2"), request("r3")], { configFile: config });
      expect(result.routes.map((r) => (r as SshRoute).target.user)).toEqual([
        "from-home-include",
        "from-home-include",
        "from-home-include",
      ]);
    } finally {
      if (saved === undefined) delete process.env.HOME;
      else process.env.HOME = saved;
    }
  });
});

describe("resolveRoutes: ProxyJump and ProxyCommand", () => {
  let config: string;
  beforeAll(() => {
    config = writeConfig(
      "jump.conf",
      `Host t-one
  ProxyJump bast
Host t-two
  ProxyJump ssh://ops@b1:2222,admin@b2:2202
Host t-nested
  ProxyJump b-outer
Host b-outer
  HostName outer.example
  ProxyJump b-inner
Host b-inner
  HostName inner.example
  User innerjump
Host t-second-own
  ProxyJump bast,b-outer
Host t-v6
  ProxyJump u@[fe80::1]:2200
Host t-loop
  ProxyJump la
Host la
  ProxyJump lb
Host lb
  ProxyJump la
Host self
  ProxyJump self
Host t-pc
  HostName real.example
  User pcuser
  ProxyCommand nc -X connect %h %p %r %n %k %% # comment kept
Host t-pc-bad
  ProxyCommand nc %d
Host t-first-pc
  ProxyJump b-pc
Host b-pc
  ProxyCommand socat - TCP:%h:%p
Host bast
  HostName 10.0.0.9
  User jump
  Port 2201
Host b1
  HostName b1.example
Host b2
  HostName b2.example
  User nobody
`,
    );
  });

  it("resolves a single hop with the hop's own ssh_config", async () => {
    const { target, jumps } = await routeOf(request("t-one", { user: "inv" }), config);
    expect(target).toMatchObject({ hostname: "t-one", user: "inv", proxyCommand: null });
    expect(jumps).toHaveLength(1);
    expect(jumps[0]).toMatchObject({
      alias: "bast",
      hostname: "10.0.0.9",
      user: "jump",
      port: 2201,
      sshArgv: ["-F", config, "bast"],
    });
  });

  it("parses ssh:// and user@host:port entries; later hops are reached through the earlier ones", async () => {
    const { jumps } = await routeOf(request("t-two"), config);
    expect(jumps.map((j) => [j.alias, j.hostname, j.user, j.port])).toEqual([
      ["b1", "b1.example", "ops", 2222],
      ["b2", "b2.example", "admin", 2202],
    ]);
    expect(jumps[1]!.sshArgv).toEqual(["-F", config, "-l", "admin", "-p", "2202", "-J", "ssh://ops@b1:2222", "b2"]);
  });

  it("puts the first hop's own ProxyJump in front of it", async () => {
    const { jumps } = await routeOf(request("t-nested"), config);
    expect(jumps.map((j) => [j.alias, j.hostname, j.user])).toEqual([
      ["b-inner", "inner.example", "innerjump"],
      ["b-outer", "outer.example", LOCAL_USER],
    ]);
  });

  it("ignores the ProxyJump of a hop that is not first (ssh passes -J to it)", async () => {
    const { jumps } = await routeOf(request("t-second-own"), config);
    expect(jumps.map((j) => j.alias)).toEqual(["bast", "b-outer"]);
    expect(jumps[1]!.sshArgv).toEqual(["-F", config, "-J", "bast", "b-outer"]);
  });

  it("reads a bracketed address hop", async () => {
    const { jumps } = await routeOf(request("t-v6"), config);
    expect(jumps.map((j) => [j.hostname, j.user, j.port])).toEqual([["fe80::1", "u", 2200]]);
  });

  it("takes ProxyJump from the inventory's ssh args, as -o or -J", async () => {
    const viaO = await routeOf(request("plain", { sshArgs: ["-o", "ProxyJump=bast"] }), config);
    expect(viaO.jumps.map((j) => j.hostname)).toEqual(["10.0.0.9"]);
    expect(viaO.target.sshArgv).toEqual(["-F", config, "-o", "ProxyJump=bast", "plain"]);
    const viaJ = await routeOf(request("t-one", { sshArgs: ["-J", "admin@b2:2202,b1"] }), config);
    expect(viaJ.jumps.map((j) => [j.alias, j.user, j.port])).toEqual([
      ["b2", "admin", 2202],
      ["b1", LOCAL_USER, 22],
    ]);
  });

  it("detects a ProxyJump loop between bastions", async () => {
    const error = await errorOf(request("t-loop"), config);
    expect(error.message).toMatch(/ProxyJump loop: la → lb → la/);
  });

  it("passes on ssh's own refusal of a host that jumps through itself", async () => {
    expect((await errorOf(request("self"), config)).message).toMatch(/jumphost loop via self/);
  });

  it("expands %h %p %r %n %k %% in ProxyCommand and keeps it verbatim otherwise", async () => {
    const { target, jumps } = await routeOf(request("t-pc"), config);
    expect(jumps).toEqual([]);
    expect(target.proxyCommand).toBe("nc -X connect real.example 22 pcuser t-pc t-pc % # comment kept");
  });

  it("refuses a ProxyCommand token ssh would refuse", async () => {
    expect((await errorOf(request("t-pc-bad"), config)).message).toMatch(/ProxyCommand nc %d: unknown token %d/);
  });

  it("keeps the first hop's own ProxyCommand", async () => {
    const { jumps } = await routeOf(request("t-first-pc"), config);
    expect(jumps.map((j) => j.proxyCommand)).toEqual(["socat - TCP:b-pc:22"]);
  });
});

describe("resolveRoutes: errors", () => {
  it("turns a config syntax error into the same RouteError for every host, naming file and line", async () => {
    const config = writeConfig("broken.conf", "Host *\n  User ok\n  NoSuchOption yes\n");
    const result = await resolveRoutes(
      ["a", "b", "c", "d"].map((n) => request(n)),
      { configFile: config },
    );
    const messages = result.routes.map((r) => (r instanceof RouteError ? r.message : "resolved"));
    expect(new Set(messages).size).toBe(1);
    expect(messages[0]).toContain(`${config}: line 3: Bad configuration option: nosuchoption`);
    expect(messages[0]).toContain("fix the ssh_config line it names");
  });

  it.each(["-oProxyCommand=touch x", ""])("refuses the destination %j before ssh sees it", async (destination) => {
    const result = await resolveRoutes([request(destination)], { configFile: "none" });
    expect(result.sshGCalls).toBe(0);
    expect((result.routes[0] as RouteError).message).toMatch(/destination .*starts with "-"|destination is empty/);
  });

  it("shares ssh's refusal of a line the scanner cannot read either, without one ssh -G per host", async () => {
    const config = writeConfig("quotes.conf", 'Host *\n  User "unclosed\n');
    const result = await resolveRoutes(
      Array.from({ length: 20 }, (_, i) => request(`q${i}`)),
      { configFile: config },
    );
    expect(new Set(result.routes.map((r) => (r as RouteError).message))).toEqual(
      new Set([expect.stringMatching(/quotes\.conf line 2: invalid quotes/)]),
    );
    expect(result.sshGCalls).toBe(2);
  });

  it("names a missing --ssh-config file", async () => {
    expect((await errorOf(request("a"), join(dir, "missing.conf"))).message).toMatch(
      /Can't open user config file .*missing\.conf.*check the --ssh-config path/,
    );
  });
});

describe("resolveRoutes: where new host keys are recorded", () => {
  it.each([
    ["default", "", `${HOME}/.ssh/known_hosts`],
    ["a user file", "UserKnownHostsFile /tmp/kh-a /tmp/kh-b", "/tmp/kh-a"],
    ["/dev/null", "UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /etc/ssh/ssh_known_hosts", null],
    ["none", "UserKnownHostsFile none", null],
  ])("%s", async (name, block, expected) => {
    const config = writeConfig(`record-${name.replace(/\W/g, "")}.conf`, `Host *\n  ${block}\n`);
    const { target } = await routeOf(request("h"), config);
    expect(target.recordHostKeysIn).toBe(expected);
  });
});

describe("resolveRoutes: needsOpenSsh", () => {
  let keys: string;
  beforeAll(() => {
    keys = join(dir, "keys");
    mkdirSync(keys, { recursive: true });
    for (const name of ["plain", "certified", "fido"]) writeFileSync(join(keys, name), "private key placeholder\n");
    writeFileSync(
      join(keys, "plain.pub"),
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN0nh/gJbHu4epU/Ooy1jgid12yRdBW9a2IqKfHDsw3F\n",
    );
    writeFileSync(join(keys, "certified-cert.pub"), "ssh-ed25519-cert-v01@openssh.com AAAA\n");
    writeFileSync(join(keys, "fido.pub"), "sk-ssh-ed25519@openssh.com AAAA\n");
  });

  it.each([
    ["plain", `IdentityFile KEYS/plain`, null],
    [
      "cert-file",
      `IdentityFile KEYS/plain\n  CertificateFile ~/.ssh/%h-cert.pub`,
      /CertificateFile .*\/cert-file-cert\.pub is set/,
    ],
    ["cert-sibling", `IdentityFile KEYS/certified`, /certified-cert\.pub is a user certificate/],
    ["fido", `IdentityFile KEYS/fido`, /fido is a FIDO security key \(sk-ssh-ed25519@openssh\.com\)/],
    ["pkcs11", `PKCS11Provider /usr/lib/none-such.so`, /PKCS11Provider \/usr\/lib\/none-such\.so is set/],
    [
      "krl",
      `RevokedHostKeys /etc/ssh/revoked.krl`,
      /ssh_config sets revokedhostkeys \/etc\/ssh\/revoked\.krl, a host-key check only the OpenSSH client performs/,
    ],
    ["khcommand", `KnownHostsCommand /usr/local/bin/kh %H`, /ssh_config sets knownhostscommand/],
    ["agent-none", `IdentityAgent none`, /ssh_config sets IdentityAgent none/],
  ])("%s", async (name, block, reason) => {
    const config = writeConfig(`needs-${name}.conf`, `Host *\n  ${block.replace("KEYS", keys)}\n`);
    const { target } = await routeOf(request(name), config);
    if (reason === null) expect(target.needsOpenSsh).toBeNull();
    else expect(target.needsOpenSsh).toMatch(reason);
  });
});

describe("resolveRoutes: the hybrid agrees with one ssh -G per host", () => {
  let config: string;
  beforeAll(() => {
    writeConfig("oracle.d/10-cache.conf", "Host cache-*\n  Port 6022\n  IdentitiesOnly yes\n");
    writeConfig("oracle.d/20-canary.conf", "Host *-canary\n  CertificateFile ~/.ssh/%h-cert.pub\n  User canary\n");
    config = writeConfig(
      "oracle.conf",
      `Host *.db.example !legacy.db.example
  User dbadmin
  Port 5022
  UserKnownHostsFile ${dir}/kh/%h %d/.ssh/kh_%n_%r

Host web-?? web-canary
  HostName %h.internal.example
  IdentityFile ~/.ssh/web_%h
  IdentityFile ~/.ssh/shared
  ProxyJump bastion-1

Host bastion-*
  HostName %h.mgmt.example
  User jump

Include ${dir}/oracle.d/*.conf

Host Legacy* legacy*
  HostKeyAlias legacy-%h
  StrictHostKeyChecking no
  ProxyCommand nc -q0 %h %p

Host 10.0.*
  User ip-user
  ConnectTimeout 7

Host jump-*
  ProxyJump jump-1

Host * !*.example
  ServerAliveInterval 15

Host *
  User default-user
  IdentityFile ~/.ssh/id_%r
  UserKnownHostsFile ~/.ssh/known_%h
`,
    );
  });

  const names = [
    ...Array.from({ length: 12 }, (_, i) => `web-${String(i + 1).padStart(2, "0")}`),
    "web-100",
    "web-canary",
    "WEB-02",
    "Web-03",
    ...Array.from({ length: 10 }, (_, i) => `n${i}.db.example`),
    "legacy.db.example",
    "Legacy-1",
    "legacy-2",
    "LEGACY-3",
    ...Array.from({ length: 8 }, (_, i) => `cache-${i + 1}`),
    "cache-canary",
    ...Array.from({ length: 6 }, (_, i) => `10.0.0.${i + 1}`),
    "10.1.0.1",
    "10.0.0.01",
    "bastion-1",
    "bastion-2",
    "db",
    "example",
    "plain",
    "plainer",
    "a",
    "ab",
    "abc",
    "Mixed.Case.Host",
    "Node-A",
    "Node-B",
    "NODE-C",
    "fe80::1",
    "2001:db8::1",
    "2001:db8::2",
    "FE80::2",
    "jump-1",
    "jump-22",
    "jump-33",
    "jump-44",
  ];

  it(`gives the same routes for ${names.length} names with far fewer ssh -G runs`, async () => {
    const requests = names.map((n) => request(n));
    requests.push(
      request("web-01", { user: "override", port: 2200 }),
      request("cache-9", { identityFile: "~/.ssh/inv" }),
    );
    const hybrid = await resolveRoutes(requests, { configFile: config });
    const perHost = await resolveRoutes(requests, { configFile: config, strategy: "per-host" });
    expect(hybrid.routes).toEqual(perHost.routes);
    const failed = requests.filter((_, i) => hybrid.routes[i] instanceof RouteError).map((r) => r.destination);
    expect(failed).toEqual(["jump-1", "jump-22", "jump-33", "jump-44"]); // jump-1 jumps through itself
    expect((hybrid.routes[names.indexOf("jump-1")] as RouteError).message).toMatch(/jumphost loop via jump-1/);
    expect(perHost.sshGCalls).toBeGreaterThanOrEqual(requests.length);
    expect(hybrid.sshGCalls).toBeLessThan(requests.length / 2);
  });

  it("needs a handful of ssh -G runs for 1000 names that only Host * matches", async () => {
    const star = writeConfig(
      "star.conf",
      "Host *\n  User fleet\n  UserKnownHostsFile ~/.ssh/kh_%h\n  IdentityFile ~/.ssh/id_%h\n",
    );
    const requests = Array.from({ length: 1000 }, (_, i) => request(`node-${i}.fleet.example`));
    const hybrid = await resolveRoutes(requests, { configFile: star });
    expect(hybrid.sshGCalls).toBeLessThanOrEqual(4);
    const sample = [0, 1, 499, 998, 999];
    const reference = await resolveRoutes(
      sample.map((i) => requests[i]!),
      { configFile: star, strategy: "per-host" },
    );
    expect(sample.map((i) => hybrid.routes[i])).toEqual(reference.routes);
    expect((hybrid.routes[999] as SshRoute).target).toMatchObject({
      hostname: "node-999.fleet.example",
      user: "fleet",
      identityFiles: [`${HOME}/.ssh/id_node-999.fleet.example`],
    });
  });

  it("stays exact when a probe's name also appears literally in a value", async () => {
    const literal = writeConfig(
      "literal.conf",
      "Host *\n  IdentityFile /keys/ssh-keys/id_%h\n  UserKnownHostsFile /kh/ssh-keys/%h\n",
    );
    const requests = ["ssh-keys", "mailer", "db", "web", "api", "ssh", "keys"].map((n) => request(n));
    const hybrid = await resolveRoutes(requests, { configFile: literal });
    const perHost = await resolveRoutes(requests, { configFile: literal, strategy: "per-host" });
    expect(hybrid.routes).toEqual(perHost.routes);
    expect((hybrid.routes[0] as SshRoute).target.identityFiles).toEqual(["/keys/ssh-keys/id_ssh-keys"]);
    expect(hybrid.sshGCalls).toBe(4); // three probes (the first disagreed) and the check of which files ssh reads
  });

  it("runs ssh -G once for a repeated destination and once for a bastion shared by many targets", async () => {
    const shared = writeConfig("shared.conf", "Host t-*\n  ProxyJump bast\n");
    const requests = [...Array.from({ length: 5 }, (_, i) => request(`t-${i}`)), request("t-0")];
    const result = await resolveRoutes(requests, { configFile: shared, strategy: "per-host" });
    expect(result.sshGCalls).toBe(5 + 1);
    expect(new Set(result.routes.map((r) => (r as SshRoute).jumps[0]))).toHaveProperty("size", 1);
  });

  it("derives nothing when ssh reads files the scan did not find (another build's SSHDIR)", async () => {
    const wrapper = join(dir, "ssh-reading-more");
    writeFileSync(
      wrapper,
      `#!/bin/sh\n[ "$1" = -v ] && echo "debug1: Reading configuration data /elsewhere/ssh_config" >&2\nexec ssh "$@"\n`,
      { mode: 0o755 },
    );
    const star = writeConfig("star-sshdir.conf", "Host *\n  User fleet\n");
    const requests = Array.from({ length: 10 }, (_, i) => request(`n${i}`));
    const result = await resolveRoutes(requests, { configFile: star, sshBinary: wrapper });
    expect(result.sshGCalls).toBe(1 + requests.length);
    expect(result.routes).toEqual((await resolveRoutes(requests, { configFile: star, strategy: "per-host" })).routes);
  });

  it("falls back to one ssh -G per host when the config has a Match it cannot scope", async () => {
    const match = writeConfig("match.conf", "Match host *.a\n  User matched\nHost *\n  User other\n");
    const requests = ["x.a", "y.a", "z.b", "w.b"].map((n) => request(n));
    const result = await resolveRoutes(requests, { configFile: match });
    expect(result.sshGCalls).toBe(4);
    expect(result.routes.map((r) => (r as SshRoute).target.user)).toEqual(["matched", "matched", "other", "other"]);
  });
});

describe("resolveRoutes without an ssh binary", () => {
  it("builds endpoints from the request and OpenSSH's defaults, and says ssh_config was not read", async () => {
    const result = await resolveRoutes(
      [
        request("Host.Example", {
          user: "inv",
          port: 2200,
          sshArgs: ["-o", "IdentityFile=/k/%h", "-o", "User=ignored", "-o", "StrictHostKeyChecking=accept-new"],
        }),
        request("bare"),
      ],
      { sshBinary: join(dir, "no-such-ssh"), configFile: join(dir, "unused.conf") },
    );
    expect(result.notice).toBe(NO_SSH_NOTICE);
    expect(result.sshGCalls).toBe(0);
    const [first, second] = result.routes as SshRoute[];
    expect(first!.target).toMatchObject({
      hostname: "host.example",
      user: "inv",
      port: 2200,
      identityFiles: ["/k/host.example"],
      identityFilesConfigured: true,
      strictHostKeyChecking: "accept-new",
    });
    expect(second!.target).toMatchObject({
      hostname: "bare",
      user: LOCAL_USER,
      port: 22,
      identityFilesConfigured: false,
      strictHostKeyChecking: "ask",
    });
    expect(second!.target.knownHostsFiles).toEqual([
      `${HOME}/.ssh/known_hosts`,
      `${HOME}/.ssh/known_hosts2`,
      "/etc/ssh/ssh_known_hosts",
      "/etc/ssh/ssh_known_hosts2",
    ]);
  });

  it("takes the first value in argv order, as ssh does", async () => {
    const {
      routes: [route],
    } = await resolveRoutes(
      [request("h", { sshArgs: ["-o", "User=first", "-l", "second", "-p", "2201", "-o", "Port=2202"] })],
      { sshBinary: join(dir, "no-such-ssh") },
    );
    expect((route as SshRoute).target).toMatchObject({ user: "first", port: 2201 });
  });

  it("refuses ProxyJump and ProxyCommand, which need the OpenSSH client", async () => {
    const {
      routes: [viaJ, viaCommand],
    } = await resolveRoutes(
      [request("a", { sshArgs: ["-J", "bast"] }), request("b", { sshArgs: ["-o", "ProxyCommand=nc %h %p"] })],
      { sshBinary: join(dir, "no-such-ssh") },
    );
    expect((viaJ as RouteError).message).toMatch(/ProxyJump bast needs the OpenSSH client.*install openssh-client/);
    expect((viaCommand as RouteError).message).toMatch(/ProxyCommand nc %h %p needs the OpenSSH client/);
  });
});

describe("ProxyJump entries", () => {
  it.each([
    ["bast", [{ user: undefined, host: "bast", port: undefined }]],
    ["u@bast:2202", [{ user: "u", host: "bast", port: "2202" }]],
    ["a@b@bast", [{ user: "a@b", host: "bast", port: undefined }]],
    ["u@[fe80::1]:22", [{ user: "u", host: "fe80::1", port: "22" }]],
    ["[10.0.0.1]", [{ user: undefined, host: "10.0.0.1", port: undefined }]],
    ["ssh://u%40x@b1:2222/", [{ user: "u@x", host: "b1", port: "2222" }]],
    ["ssh://u;fp=x@b1", [{ user: "u", host: "b1", port: undefined }]],
    [
      "b1,ssh://b2:2,u@b3",
      [
        { user: undefined, host: "b1", port: undefined },
        { user: undefined, host: "b2", port: "2" },
        { user: "u", host: "b3", port: undefined },
      ],
    ],
  ])("%s", (text, expected) => {
    const entries = parseJumpList(text);
    expect(
      typeof entries === "string" ? entries : entries.map(({ user, host, port }) => ({ user, host, port })),
    ).toEqual(expected);
  });

  it.each(["@bast", "bast/x", "ssh://b1/path", "[fe80::1", ""])("rejects %j", (text) => {
    expect(typeof parseJumpList(text)).toBe("string");
  });
});

describe("ssh_config scanning", () => {
  it.each([
    ["web1", "web*", true],
    ["web1", "WEB*", false],
    ["web1", "web?", true],
    ["web12", "web?", false],
    ["a.b.example", "*.example", true],
    ["example", "*.example", false],
    ["abcabd", "*ab?", true],
    ["", "*", true],
  ])("matchPattern(%j, %j) is %s", (name, pattern, expected) => {
    expect(matchPattern(name, pattern)).toBe(expected);
  });

  it.each([
    ["db1", ["*", "!db*"], false],
    ["web1", ["*", "!db*"], true],
    ["web1", ["!db*"], false],
    ["a,b", ["a,b"], true],
    ["a", ["a,b"], false],
  ])("Host %j against %j is %s", (name, patterns, expected) => {
    const line = {
      file: "f",
      line: 1,
      patterns: patterns.map((p) =>
        p.startsWith("!") ? { pattern: p.slice(1), negated: true } : { pattern: p, negated: false },
      ),
    };
    expect(hostLineMatches(line, name)).toBe(expected);
  });

  it("finds the matching Host lines through its index exactly as line-by-line matching does", () => {
    const lines = ["web1 web2", "web*", "* !db*", "db1", "!web1 *", "generated-1", "web1", "?eb1", "*"].map(
      (text, i) => ({
        file: "f",
        line: i + 1,
        patterns: text
          .split(" ")
          .map((p) => (p.startsWith("!") ? { pattern: p.slice(1), negated: true } : { pattern: p, negated: false })),
      }),
    );
    const generated = Array.from({ length: 5000 }, (_, i) => ({
      file: "g",
      line: i + 1,
      patterns: [{ pattern: `generated-${i}`, negated: false }],
    }));
    const all = [...lines, ...generated];
    const matcher = hostLineMatcher(all);
    for (const name of ["web1", "web2", "db1", "dbx", "generated-1", "generated-4999", "Web1", "x"]) {
      expect(matcher(name)).toEqual(all.flatMap((line, i) => (hostLineMatches(line, name) ? [i] : [])));
    }
  });

  it.each([
    ["Host a b", { keyword: "host", args: ["a", "b"] }],
    ["  HOST=a", { keyword: "host", args: ["a"] }],
    ["Host = a # comment", { keyword: "host", args: ["a"] }],
    ['IdentityFile "/a b/c"', { keyword: "identityfile", args: ["/a b/c"] }],
    ["Host a\\ b 'c d'", { keyword: "host", args: ["a b", "c d"] }],
    ["# only a comment", null],
    ["", null],
  ])("parseConfigLine(%j)", (line, expected) => {
    expect(parseConfigLine(line, "f", 1)).toEqual(expected);
  });

  it("rejects unbalanced quotes as ssh does", () => {
    expect(() => splitConfigArgs('"open', "f line 1")).toThrow(/invalid quotes/);
  });

  it("flags what Host lines cannot scope, and lines ssh itself refuses", () => {
    const scope = (text: string) =>
      scanSshConfig({ configFile: writeConfig("scope.conf", text), passwdHome: HOME, globHome: HOME });
    expect(scope("Host *\n  User x\nMatch all\n  Port 2\n")).toMatchObject({ unscopable: null, rejected: null });
    expect(scope("Host *\n  CanonicalizeHostname no\n").unscopable).toBeNull();
    expect(scope("Match host x\n").unscopable).toMatch(/scope\.conf line 1: Match host x/);
    expect(scope("Match canonical all\n").unscopable).toMatch(/Match canonical all/);
    expect(scope("Host *\n  CanonicalizeHostname yes\n").unscopable).toMatch(/line 2: CanonicalizeHostname yes/);
    expect(scope("Include ~other/cfg\n").unscopable).toMatch(/another user's home/);
    expect(scope('Host "x\nHost y\n')).toMatchObject({
      unscopable: null,
      rejected: expect.stringMatching(/scope\.conf line 1: invalid quotes/),
    });
  });

  it("reads ~/.ssh/config then the system ssh_config without -F, each resolving relative Includes its own way", () => {
    const home = join(dir, "scan-home");
    const etc = join(dir, "scan-etc");
    writeConfig("scan-home/.ssh/config", "Host user-level\nInclude user.d/*\n");
    writeConfig("scan-home/.ssh/user.d/one", "Host from-user-include\n");
    writeConfig("scan-etc/ssh_config", "Host system-level\nInclude ssh_config.d/*.conf\n");
    writeConfig("scan-etc/ssh_config.d/a.conf", "Host from-system-include\n");
    const scope = scanSshConfig({ configFile: undefined, passwdHome: home, globHome: home, systemDir: etc });
    expect(scope.files).toEqual([
      `${home}/.ssh/config`,
      `${home}/.ssh/user.d/one`,
      `${etc}/ssh_config`,
      `${etc}/ssh_config.d/a.conf`,
    ]);
    expect(scope.hostLines.map((l) => l.patterns[0]!.pattern)).toEqual([
      "user-level",
      "from-user-include",
      "system-level",
      "from-system-include",
    ]);
    expect(scanSshConfig({ configFile: "none", passwdHome: home, globHome: home, systemDir: etc }).files).toEqual([]);
  });

  it("lists the files it read, Includes in place", () => {
    writeConfig("order.d/b.conf", "Host b\n");
    writeConfig("order.d/a.conf", "Host a\n");
    const top = writeConfig("order.conf", `Host x\nInclude ${dir}/order.d/*.conf ${dir}/order.d/none-*.conf\nHost y\n`);
    const scope = scanSshConfig({ configFile: top, passwdHome: HOME, globHome: HOME });
    expect(scope.files).toEqual([top, `${dir}/order.d/a.conf`, `${dir}/order.d/b.conf`]);
    expect(scope.hostLines.map((l) => l.patterns[0]!.pattern)).toEqual(["x", "a", "b", "y"]);
    expect(globPaths(`${dir}/order.d/[ab].conf`)).toEqual([`${dir}/order.d/a.conf`, `${dir}/order.d/b.conf`]);
  });
});

describe("tildeExpand", () => {
  it.each([
    ["~", "/home/me/"],
    ["~/", "/home/me/"],
    ["~/.ssh/id", "/home/me/.ssh/id"],
    ["~//x", "/home/me/x"],
    ["/abs/~", "/abs/~"],
    [`~${LOCAL_USER}/k`, `${HOME}${HOME.endsWith("/") ? "" : "/"}k`],
    ["~no-such-user-provision/k", null],
  ])("%j", (path, expected) => {
    expect(tildeExpand(path, "/home/me")).toBe(expected);
  });
});

describe("percentExpand", () => {
  it.each([
    ["%h:%p", "h.example:22"],
    ["100%%", "100%"],
    ["%x", { problem: "unknown token %x" }],
    ["trailing %", { problem: "a lone % at the end" }],
  ])("%j", (text, expected) => {
    expect(percentExpand(text, { h: "h.example", p: "22" }, false)).toEqual(expected);
  });
});
