import { describe, expect, it } from "vitest";
import { checkSshArgs } from "../../src/transport/sshArgs.js";

describe("ansible_ssh_common_args / extra_args", () => {
  it.each<[string, string[], string[]]>([
    ["-o ProxyJump=bastion", ["-o", "ProxyJump=bastion"], []],
    ["-oProxyJump=bastion", ["-o", "ProxyJump=bastion"], []],
    ["-J admin@b1:2222,b2", ["-o", "ProxyJump=admin@b1:2222,b2"], []],
    ["-Jb1", ["-o", "ProxyJump=b1"], []],
    ["-o 'ProxyCommand ssh -W %h:%p bastion'", ["-o", "ProxyCommand ssh -W %h:%p bastion"], []],
    [
      "-i ~/.ssh/deploy -l deploy -p 2222",
      ["-o", "IdentityFile=~/.ssh/deploy", "-o", "User=deploy", "-o", "Port=2222"],
      [],
    ],
    ["-F /etc/ssh/fleet.conf", ["-F", "/etc/ssh/fleet.conf"], []],
    ["-C -q -o ControlMaster=auto -o ControlPersist=60s", ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s"], []],
    [
      "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/tmp/kh",
      ["-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=/tmp/kh"],
      [],
    ],
    [
      "-c aes256-ctr -o KexAlgorithms=curve25519-sha256 -o GSSAPIAuthentication=yes",
      ["-o", "Ciphers=aes256-ctr", "-o", "KexAlgorithms=curve25519-sha256", "-o", "GSSAPIAuthentication=yes"],
      ["Ciphers", "KexAlgorithms", "GSSAPIAuthentication"],
    ],
    ["", [], []],
  ])("%s", (text, args, openSshOnly) => {
    expect(checkSshArgs(text)).toEqual({ ok: true, args, openSshOnly });
  });

  it.each<[string, RegExp]>([
    ["-L 8080:localhost:80", /ssh flag -L is not supported/],
    ["-R 9000:localhost:9000", /ssh flag -R is not supported/],
    ["-D 1080", /ssh flag -D is not supported/],
    ["-t", /ssh flag -t is not supported/],
    ["-o ProxyJump=b extra-host", /"extra-host" is not an ssh option/],
    ["-J", /-J has no value/],
    ["-o '=x'", /is not an ssh option \(expected Key=Value\)/],
    ["-o 'ProxyJump=b", /cannot be split as Ansible splits them: No closing quotation \(at character 4\)/],
  ])("refuses %s", (text, problem) => {
    const r = checkSshArgs(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).toMatch(problem);
  });
});
