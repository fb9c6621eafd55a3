import { describe, expect, it } from "vitest";
import {
  connectedAddress,
  explainConnectFailure,
  forwardRefusal,
  masterEndFromLog,
  offeredIdentities,
  logLines,
  parseIdentity,
  sanitize,
  type FailureContext,
} from "../../src/transport/openSshLog.js";

/**
 * Lines as OpenSSH 9.2p1 wrote them to `ssh -v -E log` (plus its stderr) for a master that failed
 * or ended, captured against the test fleet and throwaway loopback sshds; kex and config chatter
 * left out.
 */
const HEADER = "OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026";
const CONNECTED = [
  HEADER,
  "debug1: Connecting to 198.18.0.2 [198.18.0.2] port 22.",
  "debug1: Connection established.",
  "debug1: Authenticating to 198.18.0.2:22 as 'deploy'",
  "debug1: Server host key: ssh-ed25519 SHA256:dj7vHOZgYxXE+CfIN7l90whR2NeQBpTcIZ8LdPMUfco",
];
const KNOWN = [
  "debug1: Host '198.18.0.2' is known and matches the ED25519 host key.",
  "debug1: Found key in /tmp/fleet/known_hosts:1",
];

const LOGS = {
  unknownHostKey: [
    ...CONNECTED,
    "No ED25519 host key is known for 198.18.0.2 and you have requested strict checking.",
    "Host key verification failed.",
  ],
  changedHostKey: [
    ...CONNECTED,
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
    "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
    "It is also possible that a host key has just been changed.",
    "The fingerprint for the ED25519 key sent by the remote host is",
    "SHA256:dj7vHOZgYxXE+CfIN7l90whR2NeQBpTcIZ8LdPMUfco.",
    "Please contact your system administrator.",
    "Add correct host key in /tmp/ox/changed_kh to get rid of this message.",
    "Offending ED25519 key in /tmp/ox/changed_kh:1",
    "  remove with:",
    '  ssh-keygen -f "/tmp/ox/changed_kh" -R "198.18.0.2"',
    "Host key for 198.18.0.2 has changed and you have requested strict checking.",
    "Host key verification failed.",
  ],
  expiredHostCertificate: [
    HEADER,
    "debug1: Connecting to 127.0.0.1 [127.0.0.1] port 2398.",
    "debug1: Connection established.",
    "debug1: Authenticating to 127.0.0.1:2398 as 'root'",
    'debug1: Server host certificate: ssh-ed25519-cert-v01@openssh.com SHA256:5TFekIDMiCwEJdw8YB47QuTAVOg//r4qvXoszBrCvxk, serial 0 ID "t" CA ssh-ed25519 SHA256:gFILYXQ+GxiCgALcvVZrXLE3Y4lAkkVB7MMD8E0DepQ valid from 2020-01-01T00:00:00 to 2020-01-02T00:00:00',
    "debug1: Host '[127.0.0.1]:2398' is known and matches the ED25519-CERT host certificate.",
    "debug1: Found CA key in /tmp/ox/hc/kh:1",
    "Certificate invalid: expired",
    "debug1: No matching CA found. Retry with plain key",
    "debug1: checking without port identifier",
    "No ED25519 host key is known for [127.0.0.1]:2398 and you have requested strict checking.",
    "Host key verification failed.",
  ],
  foreignCaHostCertificate: [
    HEADER,
    "debug1: Connecting to 127.0.0.1 [127.0.0.1] port 2398.",
    "debug1: Connection established.",
    "debug1: Authenticating to 127.0.0.1:2398 as 'root'",
    'debug1: Server host certificate: ssh-ed25519-cert-v01@openssh.com SHA256:5TFekIDMiCwEJdw8YB47QuTAVOg//r4qvXoszBrCvxk, serial 0 ID "t" CA ssh-ed25519 SHA256:gFILYXQ+GxiCgALcvVZrXLE3Y4lAkkVB7MMD8E0DepQ valid from 2020-01-01T00:00:00 to 2020-01-02T00:00:00',
    "debug1: checking without port identifier",
    "debug1: No matching CA found. Retry with plain key",
    "No ED25519 host key is known for [127.0.0.1]:2398 and you have requested strict checking.",
    "Host key verification failed.",
  ],
  wrongKey: [
    ...CONNECTED,
    ...KNOWN,
    "debug1: Will attempt key: /tmp/ox/wrongkey ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc explicit",
    "debug1: Authentications that can continue: publickey",
    "debug1: Next authentication method: publickey",
    "debug1: Offering public key: /tmp/ox/wrongkey ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc explicit",
    "debug1: Authentications that can continue: publickey",
    "debug1: No more authentication methods to try.",
    "deploy@198.18.0.2: Permission denied (publickey).",
  ],
  agentKeysAndAMissingFile: [
    ...CONNECTED,
    ...KNOWN,
    "debug1: get_agent_identities: bound agent to hostkey",
    "debug1: get_agent_identities: agent returned 2 keys",
    "debug1: Will attempt key: wrong@x ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc agent",
    "debug1: Will attempt key: agent comment@laptop ECDSA SHA256:ekpLP5sP1h1hjOoGMi35CcXYdYjfO9QGz9W6SySqj60 agent",
    "debug1: Will attempt key: /tmp/ox/nonexistent_key  explicit",
    "debug1: Authentications that can continue: publickey",
    "debug1: Next authentication method: publickey",
    "debug1: Offering public key: wrong@x ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc agent",
    "debug1: Authentications that can continue: publickey",
    "debug1: Offering public key: agent comment@laptop ECDSA SHA256:ekpLP5sP1h1hjOoGMi35CcXYdYjfO9QGz9W6SySqj60 agent",
    "debug1: Authentications that can continue: publickey",
    "debug1: Trying private key: /tmp/ox/nonexistent_key",
    "no such identity: /tmp/ox/nonexistent_key: No such file or directory",
    "debug1: No more authentication methods to try.",
    "deploy@198.18.0.2: Permission denied (publickey).",
  ],
  certificateAndEncryptedKey: [
    ...CONNECTED,
    ...KNOWN,
    "debug1: Will attempt key: /tmp/ox/wrongkey ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc explicit",
    "debug1: Will attempt key: /tmp/ox/wrongkey ED25519-CERT SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc explicit",
    "debug1: Will attempt key: /tmp/ox/enckey ED25519 SHA256:SKN/D7Ft5Ag0GJNeO+jQFBl0CE0JIKBa4FJLQPo1zKo explicit",
    "debug1: Authentications that can continue: publickey",
    "debug1: Next authentication method: publickey",
    "debug1: Offering public key: /tmp/ox/wrongkey ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc explicit",
    "debug1: Authentications that can continue: publickey",
    "debug1: Offering public key: /tmp/ox/wrongkey ED25519-CERT SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc explicit",
    "debug1: Authentications that can continue: publickey",
    "debug1: Offering public key: /tmp/ox/enckey ED25519 SHA256:SKN/D7Ft5Ag0GJNeO+jQFBl0CE0JIKBa4FJLQPo1zKo explicit",
    "debug1: Server accepts key: /tmp/ox/enckey ED25519 SHA256:SKN/D7Ft5Ag0GJNeO+jQFBl0CE0JIKBa4FJLQPo1zKo explicit",
    "debug1: No more authentication methods to try.",
    "deploy@198.18.0.2: Permission denied (publickey).",
  ],
  refused: [
    HEADER,
    "debug1: Connecting to 198.18.0.2 [198.18.0.2] port 2222.",
    "debug1: connect to address 198.18.0.2 port 2222: Connection refused",
    "ssh: connect to host 198.18.0.2 port 2222: Connection refused",
  ],
  connectTimedOut: [
    HEADER,
    "debug1: Connecting to 198.18.0.200 [198.18.0.200] port 22.",
    "debug1: connect to address 198.18.0.200 port 22: Connection timed out",
    "ssh: connect to host 198.18.0.200 port 22: Connection timed out",
  ],
  bannerTimedOut: [
    HEADER,
    "debug1: Connecting to 127.0.0.1 [127.0.0.1] port 2399.",
    "debug1: Connection established.",
    "debug1: Local version string SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10",
    "Connection timed out during banner exchange",
    "Connection to 127.0.0.1 port 2399 timed out",
  ],
  unresolvable: [HEADER, "ssh: Could not resolve hostname nonexistent-host.invalid: Name or service not known"],
  forwardRefusedByBastion: [
    HEADER,
    "debug1: Executing proxy command: exec ssh -F none -S /tmp/ox/cp/m1 -o ControlMaster=no -o ProxyCommand=false -W [198.18.0.3]:2222 bastion",
    "debug1: identity file /tmp/fleet/client_ed25519 type 3",
    "Stdio forwarding request failed: Session open refused by peer",
    "kex_exchange_identification: Connection closed by remote host",
    "Connection closed by UNKNOWN port 65535",
  ],
  stalledInAuthentication: [
    ...CONNECTED,
    ...KNOWN,
    "debug1: Will attempt key: /home/u/.ssh/id_ed25519_sk ED25519-SK SHA256:SKN/D7Ft5Ag0GJNeO+jQFBl0CE0JIKBa4FJLQPo1zKo explicit authenticator",
    "debug1: SSH2_MSG_SERVICE_ACCEPT received",
    "debug1: Authentications that can continue: publickey",
  ],
};

const BASTION_LOG = [
  "debug1: channel 6: new stdio-forward [stdio-forward] (inactive timeout: 0)",
  "debug1: getpeername failed: Bad file descriptor",
  "channel 6: open failed: connect failed: Connection refused",
  "debug1: channel 6: free: direct-tcpip: listening port 0 for 198.18.0.3 port 2222, connect from 127.0.0.1 port 65535 to UNKNOWN port 65536, nchannels 7",
].join("\n");

const context = (more: Partial<FailureContext> = {}): FailureContext => ({
  where: "deploy@198.18.0.2:22",
  hostKeyAt: "198.18.0.2:22",
  hostPort: "198.18.0.2:22",
  knownHostsFiles: ["/tmp/fleet/known_hosts"],
  connectTimeoutMs: 10_000,
  ...more,
});
const explain = (name: keyof typeof LOGS, more: Partial<FailureContext> = {}) =>
  explainConnectFailure(LOGS[name].join("\n"), context(more));

describe("explaining a master that did not come up, from ssh -v", () => {
  const cases: Array<[keyof typeof LOGS, Partial<FailureContext>, string, string]> = [
    [
      "unknownHostKey",
      {},
      "hostkey",
      "host key of 198.18.0.2:22 is unknown (ssh-ed25519 SHA256:dj7vHOZgYxXE+CfIN7l90whR2NeQBpTcIZ8LdPMUfco); refused before authenticating. Check the fingerprint out of band, then add it to /tmp/fleet/known_hosts or rerun with --accept-new-host-keys.",
    ],
    [
      "changedHostKey",
      {},
      "hostkey",
      "HOST KEY CHANGED for 198.18.0.2:22: it presented ssh-ed25519 SHA256:dj7vHOZgYxXE+CfIN7l90whR2NeQBpTcIZ8LdPMUfco but known_hosts has ED25519 key at /tmp/ox/changed_kh:1; refused before authenticating. This can be a man-in-the-middle attack or a reinstalled host. If the change is expected, remove the old line (ssh-keygen -R) and connect again.",
    ],
    [
      "expiredHostCertificate",
      { hostKeyAt: "127.0.0.1:2398" },
      "hostkey",
      "host certificate of 127.0.0.1:2398 is invalid (expired); refused before authenticating. Renew the host certificate, or check the @cert-authority line and the host's principals.",
    ],
    [
      "foreignCaHostCertificate",
      { hostKeyAt: "127.0.0.1:2398" },
      "hostkey",
      "host certificate of 127.0.0.1:2398 (ssh-ed25519-cert-v01@openssh.com SHA256:5TFekIDMiCwEJdw8YB47QuTAVOg//r4qvXoszBrCvxk) is signed by CA ssh-ed25519 SHA256:gFILYXQ+GxiCgALcvVZrXLE3Y4lAkkVB7MMD8E0DepQ, which no @cert-authority line in /tmp/fleet/known_hosts trusts for it; refused before authenticating. Add the right @cert-authority line, or check the fingerprint out of band and add the host key itself.",
    ],
    [
      "wrongKey",
      {},
      "auth",
      "authentication failed for deploy@198.18.0.2:22. the server refused the identity offered: /tmp/ox/wrongkey (ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc). it accepts: publickey. Check the login user (ansible_user, User in ssh_config) and that one of these public keys is in its authorized_keys.",
    ],
    [
      "agentKeysAndAMissingFile",
      {},
      "auth",
      'authentication failed for deploy@198.18.0.2:22. the server refused all 2 identities offered: agent key "wrong@x" (ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc); agent key "agent comment@laptop" (ECDSA SHA256:ekpLP5sP1h1hjOoGMi35CcXYdYjfO9QGz9W6SySqj60). cannot load /tmp/ox/nonexistent_key: No such file or directory. it accepts: publickey. Check the login user (ansible_user, User in ssh_config) and that one of these public keys is in its authorized_keys.',
    ],
    [
      "certificateAndEncryptedKey",
      {},
      "auth",
      "authentication failed for deploy@198.18.0.2:22. the server refused all 3 identities offered: /tmp/ox/wrongkey (ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc); /tmp/ox/wrongkey (ED25519-CERT SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc); /tmp/ox/enckey (ED25519 SHA256:SKN/D7Ft5Ag0GJNeO+jQFBl0CE0JIKBa4FJLQPo1zKo). the server accepts /tmp/ox/enckey (ED25519 SHA256:SKN/D7Ft5Ag0GJNeO+jQFBl0CE0JIKBa4FJLQPo1zKo), but ssh could not sign with it (an encrypted key: load it into ssh-agent, as ssh runs without prompts here; or a security key that needs a touch or PIN). it accepts: publickey. Check the login user (ansible_user, User in ssh_config) and that one of these public keys is in its authorized_keys.",
    ],
    [
      "refused",
      { hostPort: "198.18.0.2:2222" },
      "unreachable",
      "connection refused by 198.18.0.2:2222: is sshd running and listening there?",
    ],
    [
      "connectTimedOut",
      { hostPort: "198.18.0.200:22", connectTimeoutMs: 3000 },
      "unreachable",
      "no SSH handshake from 198.18.0.200:22 within 3 s (host down, packets dropped, or a firewall)",
    ],
    [
      "bannerTimedOut",
      { hostPort: "127.0.0.1:2399", connectTimeoutMs: 1000 },
      "unreachable",
      "no SSH handshake from 127.0.0.1:2399 within 1 s (host down, packets dropped, or a firewall)",
    ],
    [
      "unresolvable",
      {},
      "unreachable",
      "cannot resolve nonexistent-host.invalid (Name or service not known); set ansible_host to its address, or HostName in ssh_config",
    ],
    [
      "forwardRefusedByBastion",
      { hostPort: "198.18.0.3:2222", via: "bastion root@198.18.0.2:22", forwardRefusal: forwardRefusal(BASTION_LOG) },
      "unreachable",
      "bastion root@198.18.0.2:22 could not open a connection to 198.18.0.3:2222: connect failed: Connection refused",
    ],
    [
      "forwardRefusedByBastion",
      { hostPort: "198.18.0.3:2222", via: "bastion root@198.18.0.2:22" },
      "unreachable",
      "bastion root@198.18.0.2:22 could not open a connection to 198.18.0.3:2222: Session open refused by peer",
    ],
    [
      "stalledInAuthentication",
      { deadlinePassed: true },
      "auth",
      "authentication for deploy@198.18.0.2:22 did not finish within 10 s (a security key waiting for a touch or PIN, or an agent asking for confirmation?)",
    ],
  ];

  it.each(cases)("%s %j → %s", (name, more, kind, message) => {
    expect(explain(name, more)).toEqual({ kind, message });
  });

  it("a master stopped at its deadline is told by how far it got", () => {
    const tcpOnly = [HEADER, "debug1: Connecting to 198.18.0.200 [198.18.0.200] port 22."].join("\n");
    expect(explainConnectFailure(tcpOnly, context({ deadlinePassed: true, hostPort: "198.18.0.200:22" })).message).toBe(
      "no SSH handshake from 198.18.0.200:22 within 10 s (host down, packets dropped, or a firewall)",
    );
    const afterTcp = LOGS.bannerTimedOut.slice(0, 4).join("\n");
    expect(explainConnectFailure(afterTcp, context({ deadlinePassed: true })).message).toBe(
      "no SSH handshake from 198.18.0.2:22 within 10 s (sshd overloaded, or packets dropped after the connection was made)",
    );
  });

  it("anything unrecognised comes back in ssh's own words", () => {
    expect(
      explainConnectFailure(
        [HEADER, "debug1: Reading configuration data cfg", "Bad owner or permissions on /root/.ssh/config"].join("\n"),
        context(),
      ),
    ).toEqual({
      kind: "unreachable",
      message: "cannot connect to deploy@198.18.0.2:22: Bad owner or permissions on /root/.ssh/config",
    });
  });
});

describe("reading identities", () => {
  it.each([
    [
      "/tmp/ox/wrongkey ED25519 SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc explicit",
      {
        name: "/tmp/ox/wrongkey",
        type: "ED25519",
        fingerprint: "SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc",
        fromAgent: false,
      },
    ],
    [
      "/tmp/ox/wrongkey ED25519-CERT SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc explicit",
      {
        name: "/tmp/ox/wrongkey",
        type: "ED25519-CERT",
        fingerprint: "SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc",
        fromAgent: false,
      },
    ],
    [
      "agent comment@laptop ECDSA SHA256:ekpLP5sP1h1hjOoGMi35CcXYdYjfO9QGz9W6SySqj60 agent",
      {
        name: "agent comment@laptop",
        type: "ECDSA",
        fingerprint: "SHA256:ekpLP5sP1h1hjOoGMi35CcXYdYjfO9QGz9W6SySqj60",
        fromAgent: true,
      },
    ],
    [
      "/home/u/.ssh/id_ed25519_sk ED25519-SK SHA256:SKN/D7Ft5Ag0GJNeO+jQFBl0CE0JIKBa4FJLQPo1zKo explicit authenticator",
      {
        name: "/home/u/.ssh/id_ed25519_sk",
        type: "ED25519-SK",
        fingerprint: "SHA256:SKN/D7Ft5Ag0GJNeO+jQFBl0CE0JIKBa4FJLQPo1zKo",
        fromAgent: false,
      },
    ],
    [
      "/tmp/ox/nonexistent_key  explicit",
      { name: "/tmp/ox/nonexistent_key", type: null, fingerprint: null, fromAgent: false },
    ],
  ])("%s", (text, identity) => {
    expect(parseIdentity(text)).toEqual(identity);
  });

  it("lists what was offered, in order, without files that do not exist", () => {
    expect(offeredIdentities(logLines(LOGS.agentKeysAndAMissingFile.join("\n"))).map((i) => i.name)).toEqual([
      "wrong@x",
      "agent comment@laptop",
    ]);
  });
});

describe("a master that was up and ended", () => {
  it.each([
    ["Timeout, server 198.18.0.4 not responding.", "stopped-answering"],
    ["Connection to 198.18.0.3 closed by remote host.", "closed-by-host"],
    ["client_loop: send disconnect: Broken pipe", "closed-by-host"],
    ["Connection closed by UNKNOWN port 65535", "proxy-closed"],
    ["debug1: Exit status -1", null],
  ])("%s → %s", (last, end) => {
    const log = [
      "debug1: Remote: /etc/ssh/authorized_keys/root:1: key options: agent-forwarding port-forwarding pty user-rc x11-forwarding",
      last,
    ].join("\n");
    expect(masterEndFromLog(log)).toBe(end);
  });
});

describe("small readings", () => {
  it("finds the address TCP went to, and none through a proxy", () => {
    expect(connectedAddress(LOGS.wrongKey.join("\n"))).toBe("198.18.0.2");
    expect(connectedAddress(LOGS.forwardRefusedByBastion.join("\n"))).toBeNull();
  });

  it("cuts anything blob-like out of a line, keeping fingerprints", () => {
    const blob = "AAAAC3NzaC1lZDI1NTE5AAAAIPZ5ZUWn0Qy2fDg1NnHq8PcXrG2lm0KMuBvGYe1V7jtU";
    expect(sanitize(`debug1: key ssh-ed25519 ${blob} SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc`)).toBe(
      "debug1: key ssh-ed25519 [key] SHA256:kdA7+sN5LyTC35QP5thpcXrEOOpT99Jryh5UP9KnUQc",
    );
  });
});
