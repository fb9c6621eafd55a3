import { describe, expect, it } from "vitest";
import type { ConfigProblem } from "../../src/config/errors.js";
import { parseYamlText } from "../../src/config/yamlFile.js";
import { ansibleBoolean, checkVarBlock, isSecretName, USED_VARS } from "../../src/inventory/usedVars.js";

function check(text: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const yaml = parseYamlText(text, "vars.yml", problems)!;
  expect(problems).toEqual([]);
  checkVarBlock({ vars: yaml.data as Record<string, unknown>, source: yaml, basePath: [] }, problems);
  return problems;
}

const brief = (p: ConfigProblem) => `${p.line}:${p.col} ${p.keyPath} ${p.severity}: ${p.problem} | ${p.fix}`;

describe("checkVarBlock: vars provision doesn't use are the user's business", () => {
  it.each([
    ["ansible_python_interpreter: /usr/bin/python3\n"],
    ["ntp_servers: [10.0.0.1, 10.0.0.2]\n"],
    ["datacenter: eu-west-1\nrack: 12\n"],
    ["app: {port: 8080, workers: '{{ ansible_processor_vcpus * 2 }}'}\n"],
    ["vault_db_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n"],
    ["ansible_become_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n"],
    ["motd: \"{{ lookup('file', 'motd.txt') }}\"\n"],
    ["keepalived: {vrrp_instance: VI_1}\n"],
    ["ansible_become_exe: /usr/bin/sudo\nansible_ssh_pipelining: true\n"],
  ])("%j: no problem", (text) => {
    expect(check(text)).toEqual([]);
  });
});

describe("checkVarBlock: Ansible's values for the vars provision uses", () => {
  it.each([
    ["ansible_become: yes\n"],
    ["ansible_become: 'on'\n"],
    ["ansible_become: 'True'\n"],
    ["ansible_become: '1'\n"],
    ["ansible_become: no\n"],
    ["ansible_port: '2222'\n"],
    ["ansible_ssh_port: 2222\n"],
    ["ansible_user: jdoe@corp.example.com\n"],
    ["ansible_user: Administrator\n"],
    ["ansible_ssh_user: first.last\n"],
    ["ansible_ssh_host: 10.0.0.5\n"],
    ["ansible_private_key_file: ~/.ssh/id_ed25519\n"],
    ["ansible_become_user: root\nansible_become_method: sudo\n"],
    ["ansible_connection: local\n"],
    ["ansible_memtotal_mb: '16384'\n"],
    ["listen_ports: [8080, '9090']\n"],
    ["ansible_host: !unsafe 10.0.0.9\n"],
  ])("%j is accepted", (text) => {
    expect(check(text)).toEqual([]);
  });

  it.each([
    [
      "ansible_port: 70000\n",
      "1:15 ansible_port error: 70000 is not a whole number from 1 to 65535 | use a port from 1 to 65535",
    ],
    [
      "ansible_ssh_port: abc\n",
      '1:19 ansible_ssh_port error: "abc" is not a whole number from 1 to 65535 | use a port from 1 to 65535',
    ],
    [
      "ansible_become: maybe\n",
      '1:17 ansible_become error: "maybe" is not a boolean | write true or false (yes/no, on/off and 1/0 work too, as in Ansible)',
    ],
    [
      "ansible_user: 'bad user'\n",
      '1:15 ansible_user error: "bad user" is not a login name | write the login name, such as deploy or jdoe@corp.example.com',
    ],
    [
      "ansible_host: 'a b'\n",
      '1:15 ansible_host error: "a b" is not a host name or IP address | write a host name or IP address (letters, digits and . : _ - only, at most 253 characters)',
    ],
  ])("%j is refused at its value", (text, expected) => {
    expect(check(text).map(brief)).toEqual([expected]);
  });
});

describe("checkVarBlock: templates and vault where provision would have to read them", () => {
  it("a Jinja ansible_host is an error at its value that says how to resolve it", () => {
    const [p] = check('ansible_host: "{{ inventory_hostname }}.corp"\n');
    expect(p).toMatchObject({ line: 1, col: 15, keyPath: "ansible_host", severity: "error" });
    expect(p!.problem).toBe(
      'ansible_host is a Jinja template ("{{ inventory_hostname }}.corp"), and provision does not evaluate templates',
    );
    expect(p!.fix).toMatch(/write the value itself/);
  });

  it("a vault value inside a role block is an error at that param", () => {
    const [p] = check("ephemeral_ports:\n  port_range_start: !vault |\n    $ANSIBLE_VAULT;1.1;AES256\n    6162\n");
    expect(p).toMatchObject({ line: 2, col: 28, keyPath: "ephemeral_ports.port_range_start", severity: "error" });
    expect(p!.problem).toBe("ephemeral_ports.port_range_start is vault-encrypted, and provision never decrypts vault");
  });

  it("!unsafe text is plain text: no template error", () => {
    expect(check("ansible_user: !unsafe 'deploy'\n")).toEqual([]);
  });
});

describe("checkVarBlock: role blocks stay closed", () => {
  it("an unknown key inside a role block is an error at its line with a did-you-mean", () => {
    expect(check("ephemeral_ports:\n  port_rnage_end: 60000\n").map(brief)).toEqual([
      '2:3 ephemeral_ports.port_rnage_end error: unknown key "port_rnage_end" | did you mean "port_range_end"?',
    ]);
  });

  it("tcp_tw_recycle is refused at top level, in a block and as the full sysctl name", () => {
    const problems = check("tcp_tw_recycle: 1\nnet.ipv4.tcp_tw_recycle: 0\ntw_reuse:\n  tcp_tw_recycle: 1\n");
    expect(problems.map((p) => p.keyPath)).toEqual([
      "tcp_tw_recycle",
      "net.ipv4.tcp_tw_recycle",
      "tw_reuse.tcp_tw_recycle",
    ]);
    expect(problems.every((p) => p.problem.startsWith("tcp_tw_recycle is refused"))).toBe(true);
  });
});

describe("checkVarBlock: near-misses of provision's names warn", () => {
  it.each([
    ["ephemeral_port:\n  port_range_start: 10000\n", "ephemeral_ports"],
    ["ephemeral-ports: {}\n", "ephemeral_ports"],
    ["Ephemeral_Ports: {}\n", "ephemeral_ports"],
    ["fd_limit: {}\n", "fd_limits"],
    ["ansible_prot: 22\n", "ansible_port"],
    ["listen_port: 8080\n", "listen_ports"],
  ])("%j → did you mean %s", (text, guess) => {
    const problems = check(text);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ severity: "warning", fix: `did you mean "${guess}"?`, line: 1, col: 1 });
  });

  it.each([
    ["ansible_become_exe: sudo\n"],
    ["ansible_hostname: x\n"],
    ["keepalived: {}\n"],
    ["port: 1\n"],
    ["conntrack_zones: 2\n"],
  ])("%j is not a near-miss", (text) => {
    expect(check(text)).toEqual([]);
  });
});

describe("checkVarBlock: plain-text passwords", () => {
  it("warn (provision never reads them) but do not stop the run", () => {
    const problems = check("ansible_become_password: hunter2\n");
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ severity: "warning", keyPath: "ansible_become_password" });
    expect(JSON.stringify(problems)).not.toContain("hunter2");
  });
});

describe("ansibleBoolean", () => {
  it.each<[unknown, boolean | undefined]>([
    [true, true],
    ["yes", true],
    ["Yes", true],
    ["on", true],
    ["1", true],
    [1, true],
    ["t", true],
    ["y", true],
    ["TRUE", true],
    [false, false],
    ["no", false],
    ["off", false],
    ["0", false],
    [0, false],
    ["f", false],
    ["n", false],
    ["maybe", undefined],
    [2, undefined],
    [null, undefined],
    ["", undefined],
  ])("%j → %j", (value, expected) => {
    expect(ansibleBoolean(value)).toBe(expected);
  });
});

describe("USED_VARS", () => {
  it("lists the older Ansible names before the newer ones, so the ssh_ name wins as in Ansible's ssh plugin", () => {
    expect(USED_VARS.host.names).toEqual(["ansible_host", "ansible_ssh_host"]);
    expect(USED_VARS.port.names).toEqual(["ansible_port", "ansible_ssh_port"]);
    expect(USED_VARS.user.names).toEqual(["ansible_user", "ansible_ssh_user"]);
    expect(USED_VARS.privateKeyFile.names).toEqual(["ansible_private_key_file", "ansible_ssh_private_key_file"]);
  });

  it.each([
    ["ansible_become_password", true],
    ["vault_db_password", true],
    ["api_token", true],
    ["ansible_ssh_private_key_file", false],
    ["passenger_root", false],
  ])("isSecretName(%s) = %s", (name, secret) => {
    expect(isSecretName(name)).toBe(secret);
  });
});
