import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SshEndpoint } from "../../src/transport/route.js";
import {
  authFailureMessage,
  authHandlerFor,
  nothingToOffer,
  planAuthentication,
  type AuthTrace,
} from "../../src/transport/sshAuth.js";

const dir = mkdtempSync(join(process.env.PROVISION_TEST_RUN_DIR ?? tmpdir(), "provision-sshauth-"));
const agentSocket = join(dir, "agent.sock");
let agent: ChildProcess | undefined;

function keygen(name: string, type: string, passphrase = ""): string {
  const file = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", type, "-N", passphrase, "-C", `comment-${name}`, "-f", file]);
  return file;
}

function endpoint(identityFiles: string[], extra: Partial<SshEndpoint> = {}): SshEndpoint {
  return {
    alias: "h",
    hostname: "198.18.0.9",
    port: 22,
    user: "root",
    identityFiles,
    identityFilesConfigured: true,
    identitiesOnly: false,
    certificateFiles: [],
    knownHostsFiles: [],
    recordHostKeysIn: null,
    hostKeyName: "198.18.0.9",
    hostKeyPort: 22,
    strictHostKeyChecking: "yes",
    connectTimeoutMs: null,
    serverAlive: null,
    proxyCommand: null,
    sshArgv: ["198.18.0.9"],
    needsOpenSsh: null,
    ...extra,
  };
}

let ed: string, rsa: string, locked: string, agentOnly: string;

beforeAll(async () => {
  ed = keygen("id_ed25519", "ed25519");
  rsa = keygen("id_rsa", "rsa");
  locked = keygen("id_locked", "ed25519", "secret words");
  agentOnly = keygen("id_agent_only", "ecdsa");
  // The agent holds the locked key (as a user who ran ssh-add) and one key no config names.
  agent = spawn("ssh-agent", ["-D", "-a", agentSocket], { stdio: "ignore" });
  for (let i = 0; i < 200 && !existsSync(agentSocket); i++) await new Promise((r) => setTimeout(r, 10));
  execFileSync("ssh-add", [agentOnly], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket }, stdio: "ignore" });
  const askpass = join(dir, "askpass");
  writeFileSync(askpass, "#!/bin/sh\necho 'secret words'\n", { mode: 0o700 });
  execFileSync("ssh-add", [locked], {
    env: { ...process.env, SSH_AUTH_SOCK: agentSocket, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force" },
    stdio: "ignore",
  });
}, 30_000);

afterAll(() => {
  agent?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe("the order identities are offered in (OpenSSH's pubkey_prepare)", () => {
  it("without an agent: configured files in order; a missing default file is skipped silently, a missing configured one is named", async () => {
    const plan = await planAuthentication(endpoint([rsa, join(dir, "missing"), ed]), {
      agentSocket: undefined,
      passphrase: undefined,
    });
    expect(plan.attempts.map((a) => a.label.split(" ")[0])).toEqual([rsa, ed]);
    expect(plan.attempts[0]!.label).toMatch(/^\S+ \(RSA SHA256:[A-Za-z0-9+/]{43}\)$/);
    expect(plan.skipped).toEqual([`${join(dir, "missing")}: cannot read it (ENOENT)`]);
    const defaults = await planAuthentication(
      endpoint([join(dir, "missing"), ed], { identityFilesConfigured: false }),
      { agentSocket: undefined, passphrase: undefined },
    );
    expect(defaults.skipped).toEqual([]);
  });

  it("an encrypted file: decrypted with the passphrase, else named as not offered", async () => {
    const withPassphrase = await planAuthentication(endpoint([locked]), {
      agentSocket: undefined,
      passphrase: "secret words",
    });
    expect(withPassphrase.attempts.map((a) => a.label.split(" ")[0])).toEqual([locked]);
    const without = await planAuthentication(endpoint([locked]), { agentSocket: undefined, passphrase: undefined });
    expect(without.attempts).toEqual([]);
    expect(without.skipped).toEqual([
      `private key ${locked} is encrypted: set PROVISION_KEY_PASSPHRASE or load the key into ssh-agent`,
    ]);
    expect(nothingToOffer("root@h:22", without)).toBe(
      `cannot log in to root@h:22: private key ${locked} is encrypted: set PROVISION_KEY_PASSPHRASE or load the key into ssh-agent`,
    );
    const wrong = await planAuthentication(endpoint([locked]), { agentSocket: undefined, passphrase: "nope" });
    expect(wrong.skipped[0]).toBe(
      `cannot decrypt private key ${locked} with PROVISION_KEY_PASSPHRASE (wrong passphrase?)`,
    );
  });

  it("with an agent: the agent's keys in its order, then files the agent lacks", async () => {
    const plan = await planAuthentication(endpoint([ed, locked]), { agentSocket, passphrase: undefined });
    expect(plan.attempts.map((a) => a.label.replace(/ \(.*\)$/, ""))).toEqual([
      `agent key "comment-id_agent_only"`,
      `agent key "comment-id_locked"`,
      ed,
    ]);
    expect(plan.skipped).toEqual([]);
  });

  it("IdentitiesOnly: only agent keys that are configured files", async () => {
    const plan = await planAuthentication(endpoint([ed, locked], { identitiesOnly: true }), {
      agentSocket,
      passphrase: undefined,
    });
    expect(plan.attempts.map((a) => a.label.replace(/ \(.*\)$/, ""))).toEqual([`agent key "comment-id_locked"`, ed]);
  });

  it("an agent that does not answer is named, the files are still offered", async () => {
    const plan = await planAuthentication(endpoint([ed]), {
      agentSocket: join(dir, "no-agent.sock"),
      passphrase: undefined,
    });
    expect(plan.attempts.map((a) => a.label.split(" ")[0])).toEqual([ed]);
    expect(plan.skipped[0]).toMatch(/^ssh-agent at .*no-agent\.sock: /);
  });
});

describe("the auth handler and the failure message", () => {
  it("offers each identity once, stops when the server no longer takes keys, and says what was offered and accepted", async () => {
    const plan = await planAuthentication(endpoint([rsa, ed, join(dir, "gone")]), {
      agentSocket: undefined,
      passphrase: undefined,
    });
    const trace: AuthTrace = { offered: [], serverAccepts: null };
    const handler = authHandlerFor(plan, "deploy", trace);
    const next: unknown[] = [];
    handler(null, null, (m) => next.push(m));
    handler(["publickey", "password"], false, (m) => next.push(m));
    handler(["publickey", "password"], false, (m) => next.push(m));
    expect(
      next.map((m) =>
        m === false
          ? false
          : (m as { type: string; username: string }).type + ":" + (m as { username: string }).username,
      ),
    ).toEqual(["publickey:deploy", "publickey:deploy", false]);
    const message = authFailureMessage("deploy@198.18.0.9:22", plan, trace);
    expect(message).toContain("authentication failed for deploy@198.18.0.9:22");
    expect(message).toContain(`the server refused all 2 identities offered: ${rsa} (RSA SHA256:`);
    expect(message).toContain(`; ${ed} (ED25519 SHA256:`);
    expect(message).toContain(`not offered: ${join(dir, "gone")}: cannot read it (ENOENT)`);
    expect(message).toContain("it accepts: publickey, password");

    const passwordOnly: AuthTrace = { offered: [], serverAccepts: null };
    const h2 = authHandlerFor(plan, "deploy", passwordOnly);
    const calls: unknown[] = [];
    h2(null, null, (m) => calls.push(m));
    h2(["password", "keyboard-interactive"], false, (m) => calls.push(m));
    expect(calls[1]).toBe(false);
    expect(authFailureMessage("deploy@h:22", plan, passwordOnly)).toContain(
      "it accepts only password, keyboard-interactive, not public keys",
    );
  });

  it("with nothing to offer, says how to provide a key", async () => {
    const plan = await planAuthentication(endpoint([join(dir, "none1")], { identityFilesConfigured: false }), {
      agentSocket: undefined,
      passphrase: undefined,
    });
    expect(authFailureMessage("root@h:22", plan, { offered: [], serverAccepts: null })).toMatch(
      /no identity could be offered: set ansible_ssh_private_key_file or IdentityFile/,
    );
    expect(nothingToOffer("root@h:22", plan)).toMatch(/^cannot log in to root@h:22: no SSH identity to offer: /);
  });
});
