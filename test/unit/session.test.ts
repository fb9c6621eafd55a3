import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { defineProbe } from "../../src/facts/probe.js";
import type { ResolvedHost } from "../../src/resolve.js";
import { defineRole, probeCheck, probeRequest, refused, type AnyRole } from "../../src/role.js";
import { Session } from "../../src/session.js";
import { LocalTransport } from "../../src/transport/local.js";
import { shQuote } from "../../src/transport/shell.js";
import type { Transport } from "../../src/transport/types.js";

/**
 * The Session over a real shell on this machine (LocalTransport, no SSH): what each stage sends,
 * how every role's refusal reaches the report, and typed probe checks read back. Nothing here
 * applies a change, so nothing outside the temp directory is written.
 */
const dir = mkdtempSync(join(tmpdir(), "provision-session-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FILE = join(dir, "managed.conf");
const CONTENT = "a = 1\nb = 2\n";

/** Counts the lines of a file: a typed answer whose field a check names. */
const LINES_PROBE = defineProbe({
  name: "test-lines",
  script: (arg) => `wc -l < ${shQuote(arg!)}`,
  parse: (raw) => ({ lines: Number(raw.trim()), file: { exists: true } }),
});

const empty = { type: "object", additionalProperties: false, properties: {} } as const;

function role(name: string, plan: AnyRole["plan"], facts: AnyRole["facts"] = () => []): AnyRole {
  return defineRole<Record<string, never>>({ name, summary: name, schema: empty, facts, plan });
}

const managed = role(
  "managed",
  (_p, facts) => ({
    changes: facts.files[FILE] === CONTENT ? [] : [{ kind: "command", argv: ["false"], description: "would write" }],
    checks: [
      { kind: "file", path: FILE, expected: CONTENT, message: "the file differs" },
      probeCheck(LINES_PROBE, {
        arg: FILE,
        field: ["lines"],
        expected: "2",
        compare: "equal",
        label: "two lines",
        message: "not two lines",
      }),
      probeCheck(LINES_PROBE, {
        arg: FILE,
        field: ["file", "exists"],
        expected: "true",
        compare: "equal",
        label: "exists",
        message: "gone",
      }),
    ],
    notes: [],
    refusals: [],
  }),
  () => [{ kind: "file", path: FILE }, probeRequest(LINES_PROBE, FILE)],
);

function hostWith(roles: AnyRole[]): ResolvedHost {
  return {
    name: "local",
    connection: { kind: "local" } as ResolvedHost["connection"],
    become: false,
    roles: roles.map((r) => ({ role: r, params: {}, sources: {} })),
    hints: { listenPorts: [], memTotalMb: null },
    groups: ["all"],
  };
}

/** A LocalTransport that records what each exec was: the gather, the apply, or a fresh login's `true`. */
function recordingSession(): { session: Session; sent: string[] } {
  const sent: string[] = [];
  const connect = async (host: ResolvedHost): Promise<Transport> => {
    const local = new LocalTransport(host.name, 30_000);
    return {
      hostName: local.hostName,
      remoteAddress: local.remoteAddress,
      exec: (script, opts) => {
        sent.push(script.includes("\nfailed=0\n") ? "apply" : script === "true" ? "true" : "gather");
        return local.exec(script, opts);
      },
      close: () => local.close(),
    };
  };
  return { session: new Session(connect, 2), sent };
}

describe("Session: every refusal of every role in one report", () => {
  it("fails the host with each role's problems, named by role, and applies nothing", async () => {
    const roles = [
      role("limits", () =>
        refused(["hard nofile is above nr_open: lower it", "sshd lacks CAP_SYS_RESOURCE: raise its limit first"]),
      ),
      role("conntrack", () => refused(["nf_conntrack_max is read-only here: set it to null"])),
      role("buggy", () => {
        throw new Error("a bug in the role");
      }),
      managed,
    ];
    const host = hostWith(roles);
    const { session, sent } = recordingSession();
    try {
      const [report] = await session.plan([host]);
      expect(report).toMatchObject({ host: "local", status: "failed", error: { kind: "plan" } });
      expect(report!.plan).toBeUndefined();
      expect(report!.error!.problems).toEqual([
        "limits: hard nofile is above nr_open: lower it",
        "limits: sshd lacks CAP_SYS_RESOURCE: raise its limit first",
        "conntrack: nf_conntrack_max is read-only here: set it to null",
        "buggy: a bug in the role",
      ]);
      expect(report!.error!.message).toMatch(/^planning failed, 4 problems: limits: hard nofile/);
      const [applied] = await session.apply([host], [report!]);
      expect(applied).toBe(report);
      expect(sent).toEqual(["gather"]);
    } finally {
      await session.close();
    }
  });

  it("reads a single refusal as it always did", async () => {
    const { session } = recordingSession();
    try {
      const [report] = await session.plan([hostWith([role("one", () => refused(["only this"]))])]);
      expect(report!.error).toEqual({ kind: "plan", message: "planning failed: only this", problems: ["only this"] });
    } finally {
      await session.close();
    }
  });
});

describe("Session: typed probe checks read back through one gather", () => {
  it("verify finds the file and both typed fields in place, in one round trip", async () => {
    writeFileSync(FILE, CONTENT);
    const { session, sent } = recordingSession();
    try {
      const [report] = await session.verify([hostWith([managed])]);
      expect(report!.status).toBe("unchanged");
      expect(
        report!.checks!.map((c) => [
          c.check.kind === "probe" ? c.check.label : "file",
          c.actual === CONTENT ? "(content)" : c.actual,
          c.ok,
        ]),
      ).toEqual([
        ["file", "(content)", true],
        ["two lines", "2", true],
        ["exists", "true", true],
      ]);
      expect(sent).toEqual(["gather"]);
    } finally {
      await session.close();
    }
  });

  it("a drifted file fails the file check and the typed field that counts its lines", async () => {
    writeFileSync(FILE, "a = 1\n");
    const { session } = recordingSession();
    try {
      const [report] = await session.verify([hostWith([managed])]);
      expect(report!.status).toBe("failed");
      expect(report!.checks!.filter((c) => !c.ok).map((c) => c.check.message)).toEqual([
        "the file differs",
        "not two lines",
      ]);
    } finally {
      await session.close();
      rmSync(FILE);
    }
    expect(existsSync(FILE)).toBe(false);
  });
});
