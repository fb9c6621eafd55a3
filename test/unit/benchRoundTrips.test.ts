import { describe, expect, it } from "vitest";
import { Session } from "../../src/session.js";
import { defineProbe } from "../../src/facts/probe.js";
import { defineRole, probeCheck, probeRequest, type Facts } from "../../src/role.js";
import type { ResolvedHost } from "../../src/resolve.js";
import { DEFAULT_POLICY } from "../../src/rollout/policy.js";
import { rollout } from "../../src/rollout/run.js";
import { HostError, type ExecResult, type Transport } from "../../src/transport/types.js";

/**
 * What `npm run bench` measures comes down to round trips per host. These count them with a
 * scripted host: which connections a run opens and which scripts it sends through each.
 */

/** Reads fs.nr_open the way a fact probe does: `nr_open=N` lines parsed into a typed value. */
const NR_OPEN_PROBE = defineProbe({
  name: "test-nr-open",
  script: () => `printf 'nr_open=%s\\n' "$(cat /proc/sys/fs/nr_open)"`,
  parse: (raw) => ({ nrOpen: Number(/^nr_open=(\d+)$/m.exec(raw)?.[1]) }),
});

const PATH = "/etc/fake/60-provision-fake.conf";
const CONTENT = "# managed\nfake = 1\n";

/** Writes one file; a brand-new login must get nr_open 1048576 (read through a probe). */
const fakeRole = defineRole<Record<string, never>>({
  name: "fake",
  summary: "one file, and a check read through a fresh login",
  schema: { type: "object", additionalProperties: false, properties: {} },
  touchesLogin: true,
  facts: () => [{ kind: "file", path: PATH }, probeRequest(NR_OPEN_PROBE)],
  plan: (_p, facts: Facts) => ({
    changes:
      facts.files[PATH] === CONTENT
        ? []
        : [
            {
              kind: "file",
              path: PATH,
              before: facts.files[PATH] ?? null,
              after: CONTENT,
              mode: "0644",
              owner: "root",
              group: "root",
              description: `write ${PATH}`,
            },
          ],
    checks: [
      { kind: "file", path: PATH, expected: CONTENT, message: `${PATH} differs` },
      probeCheck(NR_OPEN_PROBE, {
        field: ["nrOpen"],
        expected: "1048576",
        compare: "equal",
        freshLogin: true,
        label: "fresh login: nr_open",
        message: "a fresh login sees another nr_open",
      }),
    ],
    notes: [],
    refusals: [],
  }),
});

const host: ResolvedHost = {
  name: "h1",
  connection: {
    kind: "ssh",
    host: "198.18.0.2",
    port: 22,
    user: "root",
    privateKeyFile: undefined,
    sshArgs: [],
    openSshOnlyOptions: [],
  },
  become: false,
  roles: [{ role: fakeRole, params: {}, sources: {} }],
  hints: { listenPorts: [], memTotalMb: null },
  groups: ["all"],
};

/** A host that answers the gather and apply scripts by their records, and logs every round trip. */
function scriptedHost(opts: { refuseLoginsAfter?: number } = {}) {
  const files = new Map<string, string>();
  const log: string[] = [];
  let logins = 0;
  const answer = (script: string): string => {
    const nonce = /rec\(\) \{ printf '@@([0-9a-f]+) /.exec(script)?.[1];
    if (!nonce) return "";
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const out: string[] = [];
    if (script.includes("\nfailed=0\n")) {
      // apply: every step succeeds; a file step carries its content in base64
      for (const m of script.matchAll(
        /printf '%s' '?([A-Za-z0-9+/=]+)'? \| base64 -d > "\$tmp"[\s\S]*?mv -f "\$tmp" (\S+)/g,
      ))
        files.set(m[2]!, Buffer.from(m[1]!, "base64").toString());
      for (const m of script.matchAll(/rec (c\d+) skipped/g)) out.push(`@@${nonce} ${m[1]} ok`, "");
      return `${out.join("\n")}\n`;
    }
    for (const m of script.matchAll(/if \[ -f (\S+) \] && \[ -r \S+ \]; then rec (f\d+) ok/g)) {
      const content = files.get(m[1]!);
      out.push(
        content === undefined ? `@@${nonce} ${m[2]} absent` : `@@${nonce} ${m[2]} ok`,
        content === undefined ? "" : b64(content),
      );
    }
    for (const m of script.matchAll(/then rec (f\d+) ok; else rec f\d+ fail; fi/g))
      out.push(`@@${nonce} ${m[1]} ok`, b64("nr_open=1048576\n"));
    return `${out.join("\n")}\n`;
  };
  const connect = async (h: ResolvedHost): Promise<Transport> => {
    const login = ++logins;
    if (opts.refuseLoginsAfter !== undefined && login > opts.refuseLoginsAfter)
      throw new HostError(`connection refused by ${h.connection.host}:22`, "unreachable");
    log.push(`login ${login}`);
    return {
      hostName: h.name,
      remoteAddress: h.connection.host,
      async exec(script: string): Promise<ExecResult> {
        log.push(
          `login ${login}: ${script === "true" ? "true" : script.includes("\nfailed=0\n") ? "apply" : "gather"}`,
        );
        return { stdout: answer(script), stderr: "", code: 0, signal: null };
      },
      async close() {},
    };
  };
  return { connect, files, log };
}

async function run(h: ReturnType<typeof scriptedHost>) {
  const session = new Session(h.connect, 50);
  try {
    const planned = await session.plan([host]);
    return await rollout(session, [host], planned, DEFAULT_POLICY, { pause: async () => true }, { shownIsFresh: true });
  } finally {
    await session.close();
  }
}

describe("round trips of `provision run` per host", () => {
  it("first run: one login for gather → apply → read back, one fresh login that both guards against lockout and reads the fresh-login checks", async () => {
    const h = scriptedHost();
    const r = await run(h);
    expect(r.reports[0]).toMatchObject({ status: "changed" });
    expect(r.reports[0]!.checks!.map((c) => c.ok)).toEqual([true, true]);
    expect(h.log).toEqual([
      "login 1",
      "login 1: gather",
      "login 1: apply",
      "login 2",
      "login 2: gather",
      "login 1: gather",
    ]);
  });

  it("no-op run: one login, one gather; its facts are the read-back and that login is the fresh one", async () => {
    const h = scriptedHost();
    await run(h);
    h.log.length = 0;
    const r = await run(h);
    expect(r.reports[0]).toMatchObject({ status: "unchanged" });
    expect(r.reports[0]!.checks!.map((c) => `${c.check.kind} ${c.ok}`)).toEqual(["file true", "probe true"]);
    expect(h.log).toEqual(["login 3", "login 3: gather"]);
  });

  it("no-op run still fails a host whose read-back does not match", async () => {
    const h = scriptedHost();
    await run(h);
    h.files.set(PATH, CONTENT);
    const hostWithStricterCheck: ResolvedHost = {
      ...host,
      roles: [
        {
          role: {
            ...fakeRole,
            plan: (p, f, c) => ({
              ...fakeRole.plan(p, f, c),
              checks: [{ kind: "file", path: PATH, expected: "other\n", message: `${PATH} is not other` }],
            }),
          },
          params: {},
          sources: {},
        },
      ],
    };
    const session = new Session(h.connect, 50);
    const planned = await session.plan([hostWithStricterCheck]);
    const r = await rollout(
      session,
      [hostWithStricterCheck],
      planned,
      DEFAULT_POLICY,
      { pause: async () => true },
      { shownIsFresh: true },
    );
    await session.close();
    expect(r.reports[0]).toMatchObject({ status: "failed", error: { kind: "apply", message: `${PATH} is not other` } });
  });

  it("a fresh login that fails after the change reverts through the open connection, with no read-back", async () => {
    const h = scriptedHost({ refuseLoginsAfter: 1 });
    const r = await run(h);
    expect(r.reports[0]).toMatchObject({ status: "failed", error: { kind: "lockout" } });
    expect(r.reports[0]!.error!.message).toMatch(
      /^a fresh login failed after the change \(connection refused by 198\.18\.0\.2:22\); reverted 2 changes through the open connection$/,
    );
    expect(h.log).toEqual(["login 1", "login 1: gather", "login 1: apply", "login 1: apply"]);
  });
});

describe("connections kept between plan and apply (memory follows --forks, not the fleet)", () => {
  /** Three hosts on one scripted machine; counts the connections open at once. */
  function counted(h: ReturnType<typeof scriptedHost>) {
    let open = 0;
    let most = 0;
    const connect = async (target: ResolvedHost): Promise<Transport> => {
      const t = await h.connect(target);
      most = Math.max(most, ++open);
      return { ...t, exec: t.exec.bind(t), close: async () => void open-- };
    };
    return { connect, open: () => open, most: () => most };
  }
  const hosts = ["a", "b", "c"].map((name) => ({ ...host, name }));

  it.each([
    { keep: Infinity, logins: 3 + 3, most: 3 },
    { keep: 3, logins: 3 + 3, most: 3 },
    { keep: 1, logins: 3 + 2 + 3, most: 2 },
  ])("keepConnections $keep: $logins logins, at most $most open, none left open", async ({ keep, logins, most }) => {
    const h = scriptedHost();
    const c = counted(h);
    const session = new Session(c.connect, 1, {}, async () => undefined, { keepConnections: keep });
    try {
      const planned = await session.plan(hosts);
      const r = await rollout(
        session,
        hosts,
        planned,
        DEFAULT_POLICY,
        { pause: async () => true },
        { shownIsFresh: true },
      );
      expect(r.reports.map((x) => x.status)).toEqual(["changed", "changed", "changed"]);
      // Every host: one login that plans (kept or not), one more for its apply if it was not kept, one fresh login.
      expect(h.log.filter((l) => /^login \d+$/.test(l))).toHaveLength(logins);
      expect(c.most()).toBeLessThanOrEqual(most + 1);
      // Each host's connection closes when its apply is done, not at the end of the run.
      expect(c.open()).toBe(0);
    } finally {
      await session.close();
    }
  });
});
