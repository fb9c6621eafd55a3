import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFleet, type Fleet } from "../fleet/fleet.js";
import { provision, tempDir, writeFile } from "./helpers.js";

const NETWORKD_DROPIN = "/etc/systemd/network/10-eth0.network.d/60-provision-secondary-ips.conf";
const IFUPDOWN_HOOK = "/etc/network/if-up.d/60-provision-secondary-ips";
const STATE = "/etc/provision/secondary-source-ips.state";
const PLAYBOOK = "- name: Extra source IPs\n  hosts: all\n  roles:\n    - secondary-source-ips\n";

/**
 * Runs inside a host: from each source IP in turn, bind(src, 0) + connect() to one ip:port until
 * the kernel refuses; prints how many each source got and the error that stopped it.
 */
const CONNECT_UNTIL_REFUSED = `
const net = require("node:net");
const [dst, port, ...sources] = process.argv.slice(2);
const counts = {};
const open = [];
const once = (src) => new Promise((resolve) => {
  const s = net.connect({ host: dst, port: Number(port), localAddress: src, timeout: 5000 });
  s.once("connect", () => { open.push(s); resolve(null); });
  s.once("timeout", () => { s.destroy(); resolve("timeout"); });
  s.once("error", (e) => resolve(e.code));
});
(async () => {
  for (const src of sources) {
    counts[src] = 0;
    for (let i = 0; i < 100; i++) {
      const err = await once(src);
      if (err) { counts[src + " then"] = err; break; }
      counts[src]++;
    }
  }
  console.log(JSON.stringify(counts));
  for (const s of open) s.destroy();
})();
`;

type TcpAnswer = "open" | "refused" | "no answer";

/** One bounded TCP connect: "refused" still proves the address answers on the wire. */
function tcp(host: string, port: number, timeoutMs = 1_500): Promise<TcpAnswer> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (answer: TcpAnswer) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => finish("no answer"));
    socket.once("connect", () => finish("open"));
    socket.once("error", (err: NodeJS.ErrnoException) => finish(err.code === "ECONNREFUSED" ? "refused" : "no answer"));
  });
}

/** Connects to each host's sshd every 100 ms while `during` runs; returns the failed attempts. */
async function reachableThroughout(addresses: string[], during: () => Promise<void>): Promise<string[]> {
  const failures: string[] = [];
  let running = true;
  const watch = (async () => {
    for (let i = 0; running && i < 600; i++) {
      for (const a of addresses) if ((await tcp(a, 22)) !== "open") failures.push(`${a} at attempt ${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    await during();
  } finally {
    running = false;
    await watch;
  }
  return failures;
}

describe("secondary-source-ips on real hosts (networkd on h1, ifupdown on h2, netplan on h3)", () => {
  let fleet: Fleet;
  let dir: string;
  let common: string[];
  let net: string;
  let primary: Record<string, string>;

  /** IPv4 addresses of an interface in kernel order, " secondary" appended where the kernel marks it. */
  const addrsWithFlags = async (host: string, dev = "eth0") => {
    const r = await fleet.exec(host, `ip -j addr show dev ${dev}`);
    const links = JSON.parse(r.stdout) as Array<{
      addr_info: Array<{ local: string; prefixlen: number; secondary?: boolean }>;
    }>;
    return links[0]!.addr_info
      .filter((a) => !a.local.includes(":"))
      .map((a) => `${a.local}/${a.prefixlen}${a.secondary ? " secondary" : ""}`);
  };
  const addrs = async (host: string, dev = "eth0") =>
    (await addrsWithFlags(host, dev)).map((a) => a.replace(/ secondary$/, ""));

  /** An inventory with each host's role params in its host vars. */
  function inventory(name: string, vars: Record<string, string>): string {
    const hosts = fleet.hosts
      .filter((h) => h.name in vars)
      .flatMap((h) => [
        `        ${h.name}:`,
        `          ansible_host: ${h.address}`,
        `          secondary_source_ips: ${vars[h.name]}`,
      ]);
    const text = [
      "all:",
      "  vars:",
      "    ansible_user: root",
      `    ansible_ssh_private_key_file: ${fleet.clientKeyFile}`,
      "  children:",
      "    fleet:",
      "      hosts:",
      ...hosts,
      "",
    ].join("\n");
    return writeFile(dir, name, text);
  }

  let main: string;
  const mainVars = () => ({
    h1: `{ addresses: [${net}.200/24, ${net}.201/24] }`,
    h2: `{ interface: eth0, addresses: [${net}.210/24] }`,
  });

  beforeAll(async () => {
    fleet = await startFleet({ hosts: 3 });
    dir = tempDir("secondary-ips");
    // Extra addresses come from the fleet's own /24 only, so traffic stays inside 198.18.0.0/15.
    net = fleet.subnet.split(".").slice(0, 3).join(".");
    primary = Object.fromEntries(fleet.hosts.map((h) => [h.name, h.address]));
    common = ["--playbook", writeFile(dir, "playbook.yaml", PLAYBOOK), "--known-hosts", fleet.knownHostsFile];
    main = inventory("main.yaml", mainVars());
    // Each host's /etc is private: h1 looks like a networkd host, h2 like a Debian ifupdown host.
    await fleet.exec(
      "h1",
      `mkdir -p /etc/systemd/network && printf '[Match]\\nName=eth0\\n\\n[Network]\\nAddress=${primary.h1}/24\\n' > /etc/systemd/network/10-eth0.network`,
    );
    await fleet.exec(
      "h2",
      `mkdir -p /etc/network/interfaces.d && printf 'source /etc/network/interfaces.d/*\\n\\nauto lo\\niface lo inet loopback\\n\\nauto eth0\\niface eth0 inet static\\n    address ${primary.h2}/24\\n' > /etc/network/interfaces`,
    );
  });
  afterAll(async () => {
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("plan shows the drop-ins, the live adds and the capacity, changes nothing, and exits 2", async () => {
    const r = await provision(["plan", main, ...common]);
    expect(r.stderr).toBe("");
    expect(r.code, r.stdout).toBe(2);
    expect(r.stdout).toContain(`run: ip addr add ${net}.200/24 dev eth0`);
    expect(r.stdout).toContain(`run: ip addr add ${net}.210/24 dev eth0`);
    expect(r.stdout).toContain(`+++ ${NETWORKD_DROPIN}`);
    expect(r.stdout).toContain(`+Address=${net}.201/24`);
    expect(r.stdout).toContain(`+++ ${IFUPDOWN_HOOK}`);
    expect(r.stdout).toContain(`+if has_family inet; then add ${net}.210/24 dev eth0; fi`);
    expect(r.stdout).toContain(`+++ ${STATE}`);
    expect(r.stdout).toContain(`+${net}.201/24 eth0`);
    expect(r.stdout).toContain("over IPv4 from eth0: 3 source IPs × 28,232 ports = 84,696 connections");
    expect(r.stdout).toContain("over IPv4 from eth0: 2 source IPs × 28,232 ports = 56,464 connections");
    expect(r.stdout).toContain("ifup is not installed here");
    expect(r.stdout).toMatch(/Plan: 9 changes on 2 hosts, 0 unchanged, 0 failed\./);
    expect(await addrs("h1")).toEqual([`${primary.h1}/24`]);
    expect(await tcp(`${net}.200`, 22)).toBe("no answer");
  });

  it("run adds the addresses and writes the files while every host stays reachable; verify passes; a second plan is empty", async () => {
    let run = { code: null as number | null, stdout: "", stderr: "" };
    const failures = await reachableThroughout([primary.h1!, primary.h2!], async () => {
      run = await provision(["run", main, ...common, "--yes"]);
    });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(failures).toEqual([]);
    expect(run.stdout).toMatch(/Run: 2 changed, 0 unchanged, 0 failed, 0 unreachable\./);

    expect(await addrs("h1")).toEqual([`${primary.h1}/24`, `${net}.200/24`, `${net}.201/24`]);
    expect(await addrs("h2")).toEqual([`${primary.h2}/24`, `${net}.210/24`]);
    // the new addresses answer on the wire (sshd listens on the primary only, so the kernel refuses)
    expect(await tcp(`${net}.201`, 22)).toBe("refused");
    expect(await tcp(`${net}.210`, 22)).toBe("refused");

    const h1File = await fleet.exec(
      "h1",
      `cat ${NETWORKD_DROPIN}; stat -c '%a %U' ${NETWORKD_DROPIN}; ls -a /etc/systemd/network/10-eth0.network.d`,
    );
    expect(h1File.stdout).toContain("# Managed by provision, role secondary-source-ips.");
    expect(h1File.stdout).toContain(
      `[Address]\n# Extra source address 2 of 2 on eth0; a socket uses it after bind() to ${net}.201, port 0.\nAddress=${net}.201/24\n`,
    );
    expect(h1File.stdout).toContain("644 root");
    expect(h1File.stdout).not.toContain(".provision-tmp");
    const h2File = await fleet.exec("h2", `cat ${IFUPDOWN_HOOK}; stat -c '%a %U' ${IFUPDOWN_HOOK}; cat ${STATE}`);
    expect(h2File.stdout).toContain(`\nif has_family inet; then add ${net}.210/24 dev eth0; fi\n`);
    expect(h2File.stdout).toContain("755 root");
    expect(h2File.stdout).toContain(`\n${net}.210/24 eth0\n`);

    const verify = await provision(["verify", main, ...common]);
    expect(verify.code, verify.stdout).toBe(0);
    // h1: record + drop-in + 2 addresses + fresh login; h2: record + hook (content, mode) + 1 address + fresh login
    expect(verify.stdout).toContain("Verify: 10/10 checks ok on 2/2 hosts; 0 mismatches");

    const again = await provision(["plan", main, ...common]);
    expect(again.code, again.stdout).toBe(0);
    // unchanged hosts are one line, whatever their notes
    expect(again.stdout).toContain("h1, h2 (2 hosts): no changes");
    expect(again.stdout).toContain("Plan: 0 changes on 0 hosts, 2 unchanged, 0 failed.");
  });

  it("verify catches an address deleted by hand; run adds it back, reachable throughout", async () => {
    await fleet.exec("h1", `ip addr del ${net}.201/24 dev eth0`);
    const verify = await provision(["verify", main, ...common]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`MISMATCH ${net}.201/24 on eth0: expected including ${net}.201/24`);
    expect(verify.stdout).toContain("removed by hand, by ifdown, or by the network stack reconfiguring the link");
    expect(verify.stdout).toMatch(/Verify: 9\/10 checks ok on 1\/2 hosts; 1 mismatch,/);

    const plan = await provision(["plan", main, ...common]);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain("h1 (1 host): 1 change");
    expect(plan.stdout).toContain(`run: ip addr add ${net}.201/24 dev eth0`);

    let run = { code: null as number | null, stdout: "", stderr: "" };
    const failures = await reachableThroughout([primary.h1!], async () => {
      run = await provision(["run", main, ...common, "--yes"]);
    });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(failures).toEqual([]);
    expect(run.stdout).toMatch(/Run: 1 changed, 1 unchanged/);
    expect(await addrs("h1")).toContain(`${net}.201/24`);
    expect((await provision(["verify", main, ...common])).code).toBe(0);
  });

  it("the capacity note holds on the wire: with a 10-port range, 3 source IPs make 30 connections to one ip:port", async () => {
    await fleet.exec("h1", "echo '40000 40009' > /proc/sys/net/ipv4/ip_local_port_range");
    try {
      const json = await provision(["plan", main, ...common, "--json", "--limit", "h1"]);
      const notes = (
        JSON.parse(json.stdout) as { hosts: Array<{ notes: Array<{ text: string }> }> }
      ).hosts[0]!.notes.map((n) => n.text);
      expect(notes[0]).toContain("3 source IPs × 10 ports = 30 connections");
      const sources = [primary.h1!, `${net}.200`, `${net}.201`];
      const r = await fleet.exec("h1", `${process.execPath} - ${primary.h2} 22 ${sources.join(" ")}`, {
        input: CONNECT_UNTIL_REFUSED,
        timeoutMs: 30_000,
      });
      expect(r.code, r.stderr).toBe(0);
      const counts = JSON.parse(r.stdout) as Record<string, number | string>;
      for (const src of sources) {
        expect(counts[src], src).toBe(10);
        expect(["EADDRINUSE", "EADDRNOTAVAIL"]).toContain(counts[`${src} then`]);
      }
    } finally {
      await fleet.exec("h1", "echo '32768 60999' > /proc/sys/net/ipv4/ip_local_port_range");
    }
  });

  it("verify catches a hand-edited hook; run restores it", async () => {
    await fleet.exec("h2", `echo '# hand edit' >> ${IFUPDOWN_HOOK}`);
    const verify = await provision(["verify", main, ...common]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`MISMATCH ${IFUPDOWN_HOOK} (sha256)`);
    const plan = await provision(["plan", main, ...common]);
    expect(plan.stdout).toContain("-# hand edit");
    expect((await provision(["run", main, ...common, "--yes"])).code).toBe(0);
    expect((await fleet.exec("h2", `cat ${IFUPDOWN_HOOK}`)).stdout).not.toContain("hand edit");
  });

  it("the hook, run as ifupdown runs it, adds the address only after eth0's own inet stanza, as a secondary", async () => {
    await fleet.exec("h2", `ip addr del ${net}.210/24 dev eth0`);
    const hook = (addrfam: string) =>
      fleet.exec(
        "h2",
        `IFACE=eth0 LOGICAL=eth0 MODE=start PHASE=post-up ADDRFAM=${addrfam} METHOD=static ${IFUPDOWN_HOOK}`,
      );
    expect((await hook("inet6")).code).toBe(0);
    expect(await addrs("h2")).toEqual([`${primary.h2}/24`]);
    const r = await hook("inet");
    expect(r.code, r.stderr).toBe(0);
    expect(await addrsWithFlags("h2")).toEqual([`${primary.h2}/24`, `${net}.210/24 secondary`]);
    // once more, as for a second stanza: `replace` changes nothing
    expect((await hook("inet")).code).toBe(0);
    expect((await provision(["verify", main, ...common])).code).toBe(0);
  });

  it("an address dropped from the list is removed live and from the drop-in", async () => {
    const fewer = inventory("fewer.yaml", { h1: `{ addresses: [${net}.200/24] }` });
    const plan = await provision(["plan", fewer, ...common]);
    expect(plan.code, plan.stdout).toBe(2);
    expect(plan.stdout).toContain(`run: ip addr del ${net}.201/24 dev eth0`);
    expect(plan.stdout).toContain(`-Address=${net}.201/24`);
    const run = await provision(["run", fewer, ...common, "--yes"]);
    expect(run.code, run.stdout).toBe(0);
    expect(await addrs("h1")).toEqual([`${primary.h1}/24`, `${net}.200/24`]);
    expect((await fleet.exec("h1", `cat ${NETWORKD_DROPIN}`)).stdout).not.toContain(`${net}.201`);
    expect((await provision(["plan", fewer, ...common])).code).toBe(0);
  });

  it("refuses to touch the SSH session's address, and changes nothing", async () => {
    const before = await addrs("h1");
    const fileBefore = (await fleet.exec("h1", `cat ${NETWORKD_DROPIN}`)).stdout;
    const bad = inventory("ssh-address.yaml", { h1: `{ addresses: [${net}.202/24, ${primary.h1}/32] }` });
    for (const command of ["plan", "run"]) {
      const r = await provision([command, bad, ...common, ...(command === "run" ? ["--yes"] : [])]);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stdout).toContain(
        `h1: FAILED: planning failed: ${primary.h1}/32 on eth0 is the address this SSH session uses (${primary.h1}); secondary-source-ips never adds, changes or removes it.`,
      );
    }
    expect(await addrs("h1")).toEqual(before);
    expect((await fleet.exec("h1", `cat ${NETWORKD_DROPIN}`)).stdout).toBe(fileBefore);
    expect(await tcp(primary.h1!, 22)).toBe("open");
  });

  it("refuses an interface that does not exist, naming those that do", async () => {
    const bad = inventory("no-iface.yaml", { h1: `{ interface: eth9, addresses: [${net}.202/24] }` });
    const r = await provision(["plan", bad, ...common]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'interface "eth9" does not exist on this host (it has: lo, eth0). Set secondary_source_ips.interface to one of them',
    );
  });

  it("refuses to persist where no stack configures the interface, and refuses netplan clearly; persist: false still works", async () => {
    const h3 = inventory("h3.yaml", { h3: `{ addresses: [${net}.220/24] }` });
    const none = await provision(["plan", h3, ...common]);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain("h3: FAILED: planning failed: no network stack configures eth0 here");
    expect(none.stdout).toContain("Set persist: false to add them live only");

    await fleet.exec(
      "h3",
      "mkdir -p /etc/netplan && printf 'network:\\n  version: 2\\n  ethernets:\\n    eth0:\\n      dhcp4: true\\n' > /etc/netplan/50-cloud-init.yaml",
    );
    const netplan = await provision(["plan", h3, ...common]);
    expect(netplan.code).toBe(1);
    expect(netplan.stdout).toContain(
      "netplan manages eth0 (/etc/netplan/50-cloud-init.yaml); secondary-source-ips does not write netplan configuration.",
    );
    expect(await addrs("h3")).toEqual([`${primary.h3}/24`]);

    const liveOnly = inventory("h3-live.yaml", { h3: `{ addresses: [${net}.220/24], persist: false }` });
    const run = await provision(["run", liveOnly, ...common, "--yes"]);
    expect(run.code, run.stdout).toBe(0);
    expect(await addrs("h3")).toEqual([`${primary.h3}/24`, `${net}.220/24`]);
    expect((await fleet.exec("h3", "ls /etc/netplan")).stdout.trim()).toBe("50-cloud-init.yaml");
    expect((await provision(["verify", liveOnly, ...common])).code).toBe(0);
  });

  it("persist: false, then [] deletes what was added live (recorded in the state file)", async () => {
    const emptied = inventory("h3-empty.yaml", { h3: "{ addresses: [], persist: false }" });
    const plan = await provision(["plan", emptied, ...common]);
    expect(plan.code, plan.stdout).toBe(2);
    expect(plan.stdout).toContain(`run: ip addr del ${net}.220/24 dev eth0`);
    expect(plan.stdout).toContain(`run: rm -f -- ${STATE}`);
    const run = await provision(["run", emptied, ...common, "--yes"]);
    expect(run.code, run.stdout).toBe(0);
    expect(await addrs("h3")).toEqual([`${primary.h3}/24`]);
    expect((await fleet.exec("h3", `test -e ${STATE}; echo $?`)).stdout.trim()).toBe("1");
    expect((await provision(["plan", emptied, ...common])).code).toBe(0);
  });

  it("refuses to delete an extra address that is its subnet's primary while promote_secondaries is 0; deletes it once it is 1", async () => {
    // A second interface inside h3's namespace (a veth pair: this kernel has no dummy driver): the
    // managed .151 comes first, so it is the subnet's primary there and the hand-added .150 its secondary.
    await fleet.exec("h3", "ip link add sip0 type veth peer name sip1 && ip link set sip0 up && ip link set sip1 up");
    const added = inventory("h3-sip0.yaml", { h3: `{ interface: sip0, addresses: [${net}.151/24], persist: false }` });
    expect((await provision(["run", added, ...common, "--yes"])).code).toBe(0);
    await fleet.exec("h3", `ip addr add ${net}.150/24 dev sip0`);
    expect(await addrsWithFlags("h3", "sip0")).toEqual([`${net}.151/24`, `${net}.150/24 secondary`]);
    expect(
      (
        await fleet.exec(
          "h3",
          "cat /proc/sys/net/ipv4/conf/sip0/promote_secondaries /proc/sys/net/ipv4/conf/all/promote_secondaries",
        )
      ).stdout,
    ).toBe("0\n0\n");

    const emptied = inventory("h3-sip0-empty.yaml", { h3: "{ interface: sip0, addresses: [], persist: false }" });
    for (const command of ["plan", "run"]) {
      const r = await provision([command, emptied, ...common, ...(command === "run" ? ["--yes"] : [])]);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stdout).toContain(
        `h3: FAILED: planning failed: deleting ${net}.151/24 from sip0 would also delete ${net}.150/24: ${net}.151/24 is the primary address of ${net}.0/24 on sip0`,
      );
      expect(r.stdout).toContain(
        "net.ipv4.conf.sip0.promote_secondaries is 0, so the kernel deletes the subnet's secondary addresses with it. Set net.ipv4.conf.sip0.promote_secondaries=1 first",
      );
    }
    expect(await addrsWithFlags("h3", "sip0")).toEqual([`${net}.151/24`, `${net}.150/24 secondary`]);

    await fleet.exec("h3", "echo 1 > /proc/sys/net/ipv4/conf/sip0/promote_secondaries");
    let run = { code: null as number | null, stdout: "", stderr: "" };
    const failures = await reachableThroughout([primary.h3!], async () => {
      run = await provision(["run", emptied, ...common, "--yes"]);
    });
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).not.toContain("FAILED");
    expect(failures).toEqual([]);
    // the kernel promoted the secondary instead of deleting it
    expect(await addrsWithFlags("h3", "sip0")).toEqual([`${net}.150/24`]);
    expect((await provision(["verify", emptied, ...common])).code).toBe(0);
    expect((await provision(["plan", emptied, ...common])).code).toBe(0);
  });

  it("after the interface changes, the address leaves the old interface and its drop-in", async () => {
    await fleet.exec(
      "h1",
      "ip link add sip0 type veth peer name sip1 && ip link set sip0 up && ip link set sip1 up && printf '[Match]\\nName=sip0\\n' > /etc/systemd/network/20-sip0.network",
    );
    const moved = inventory("h1-sip0.yaml", { h1: `{ interface: sip0, addresses: [${net}.200/24] }` });
    const plan = await provision(["plan", moved, ...common]);
    expect(plan.code, plan.stdout).toBe(2);
    for (const step of [
      `run: ip addr del ${net}.200/24 dev eth0`,
      `run: rm -f -- ${NETWORKD_DROPIN}`,
      "+++ /etc/systemd/network/20-sip0.network.d/60-provision-secondary-ips.conf",
      `run: ip addr add ${net}.200/24 dev sip0`,
    ]) {
      expect(plan.stdout).toContain(step);
    }
    let run = { code: null as number | null, stdout: "", stderr: "" };
    const failures = await reachableThroughout([primary.h1!], async () => {
      run = await provision(["run", moved, ...common, "--yes"]);
    });
    expect(run.code, run.stdout).toBe(0);
    expect(failures).toEqual([]);
    expect(await addrs("h1")).toEqual([`${primary.h1}/24`]);
    expect(await addrs("h1", "sip0")).toEqual([`${net}.200/24`]);
    expect((await fleet.exec("h1", `test -e ${NETWORKD_DROPIN}; echo $?`)).stdout.trim()).toBe("1");
    expect((await provision(["verify", moved, ...common])).code).toBe(0);
    expect((await provision(["plan", moved, ...common])).code).toBe(0);
  });

  it("the machine's own addresses are untouched", () => {
    const machine = execFileSync("ip", ["-o", "addr", "show"], { encoding: "utf8" });
    for (const last of [150, 151, 200, 201, 210, 220]) expect(machine).not.toContain(`${net}.${last}/`);
  });
});
