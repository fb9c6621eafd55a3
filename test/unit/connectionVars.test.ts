import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/errors.js";
import { loadConfig } from "../../src/load.js";
import { DEFAULT_PLAYBOOK } from "../../src/installRoot.js";
import { LocalTransport } from "../../src/transport/local.js";
import { HostError } from "../../src/transport/types.js";

const root = mkdtempSync(join(tmpdir(), "provision-connection-vars-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function load(files: Record<string, string>): {
  hosts: ReturnType<typeof loadConfig>["hosts"];
  problems: ConfigProblem[];
  dir: string;
} {
  const dir = join(root, String(++n));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  const { hosts, problems } = loadConfig(join(dir, "hosts"), DEFAULT_PLAYBOOK, undefined);
  return { hosts, problems, dir };
}

describe("Ansible's connection vars, as an INI inventory writes them", () => {
  it("takes the older names, INI typing and Ansible's booleans; the ssh_ name wins when both are set", () => {
    const { hosts, problems } = load({
      hosts:
        "[web]\nweb1 ansible_ssh_host=10.0.0.1 ansible_host=10.9.9.9 ansible_ssh_port=2222 ansible_port=22 ansible_user=deploy ansible_ssh_user=jdoe@corp.example.com ansible_become=yes\n",
    });
    expect(problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(hosts[0]!.connection).toMatchObject({
      kind: "ssh",
      host: "10.0.0.1",
      port: 2222,
      user: "jdoe@corp.example.com",
    });
    expect(hosts[0]!.become).toBe(true);
  });

  it("ansible_connection=local needs no address and connects without SSH", () => {
    const { hosts, problems } = load({ hosts: "localhost ansible_connection=local\n" });
    expect(problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(hosts[0]!.connection.kind).toBe("local");
  });

  it.each([
    ["ansible_become_method=su", "ansible_become=true ansible_become_method=su", 'become method "su" is not supported'],
    [
      "ansible_become_user=deploy",
      "ansible_become=true ansible_become_user=deploy",
      'become user "deploy" cannot run provision\'s steps',
    ],
    ["ansible_connection=docker", "ansible_connection=docker", 'connection type "docker" is not supported'],
    [
      "ansible_ssh_common_args with a forwarding flag",
      "ansible_ssh_common_args='-J bastion -L 8080:localhost:80'",
      "ansible_ssh_common_args: ssh flag -L is not supported",
    ],
    [
      "ansible_ssh_extra_args with an unclosed quote",
      "ansible_ssh_extra_args='-o \"ProxyJump=b'",
      "ansible_ssh_extra_args: the ssh options cannot be split",
    ],
  ])("%s is refused for the host, at the line that sets it", (_what, vars, problem) => {
    const { problems, dir } = load({
      hosts: `[web]\nweb1 ansible_host=10.0.0.1 ${vars}\nweb2 ansible_host=10.0.0.2 ${vars}\n`,
    });
    const errors = problems.filter((p) => p.severity === "error");
    // Both hosts have it on their own line: one error each, each naming its host.
    expect(
      errors.map((p) => [p.file, p.line, p.problem.includes(problem), p.problem.endsWith(`(host web${p.line - 1})`)]),
    ).toEqual([
      [join(dir, "hosts"), 2, true, true],
      [join(dir, "hosts"), 3, true, true],
    ]);
  });

  it("ssh options are split as Ansible splits them and handed to ssh resolution; inventory user and port stay unset when not written", () => {
    const { hosts, problems } = load({
      hosts:
        "[web]\nweb1 ansible_host=10.0.0.1 ansible_ssh_common_args='-o ProxyJump=admin@bastion:2222 -C' ansible_ssh_extra_args='-o \"Ciphers aes256-ctr\" -i ~/k'\n",
    });
    expect(problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(hosts[0]!.connection).toMatchObject({
      host: "10.0.0.1",
      user: undefined,
      port: undefined,
      sshArgs: ["-o", "ProxyJump=admin@bastion:2222", "-o", "Ciphers aes256-ctr", "-o", "IdentityFile=~/k"],
      openSshOnlyOptions: ["Ciphers"],
    });
  });

  it("a become method is only refused where become is used", () => {
    const { problems } = load({
      hosts: "[web]\nweb1 ansible_host=10.0.0.1 ansible_become=false ansible_become_method=su\n",
    });
    expect(problems.filter((p) => p.severity === "error")).toEqual([]);
  });
});

describe("LocalTransport", () => {
  it("runs a script in sh with LC_ALL=C and reports its exit code and output", async () => {
    const t = new LocalTransport("localhost", 10_000);
    const r = await t.exec('echo "$LC_ALL"; echo err >&2; exit 3');
    expect(r).toEqual({ stdout: "C\n", stderr: "err\n", code: 3, signal: null });
  });

  it("ends a script that runs past its timeout, with everything it started", async () => {
    const t = new LocalTransport("localhost", 10_000);
    const pidFile = join(root, "background.pid");
    const started = Date.now();
    const err = await t.exec(`sleep 30 & echo $! > ${pidFile}; sleep 30`, { timeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostError);
    expect((err as HostError).kind).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(10_000);
    const pid = Number(readFileSync(pidFile, "utf8"));
    // Killed with its group: gone, or a zombie until whoever adopted it reaps it.
    await new Promise((r) => setTimeout(r, 100));
    const state = existsSync(`/proc/${pid}/status`)
      ? /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]
      : "gone";
    expect(["gone", "Z", "X"]).toContain(state);
  });
});
