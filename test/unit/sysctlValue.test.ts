import { describe, expect, it } from "vitest";
import { normalizeSysctlValue, SYSCTL_KEY_PATTERN, sysctlEqual, sysctlProcPath } from "../../src/sysctl/value.js";

describe("normalizeSysctlValue", () => {
  it.each([
    ["1", "1"],
    ["1\n", "1"],
    ["32768\t60999", "32768 60999"],
    ["32768\t60999\n", "32768 60999"],
    ["  4096   87380\t6291456 ", "4096 87380 6291456"],
    ["", ""],
    ["\n", ""],
    ["8080,9000-9010", "8080,9000-9010"],
  ])("%j → %j", (input, expected) => {
    expect(normalizeSysctlValue(input)).toBe(expected);
  });
});

describe("sysctlEqual", () => {
  it.each<[string | null, string | null, boolean]>([
    ["1024\t65535", "1024 65535", true],
    ["1024 65535", "1024\t65535", true],
    ["1024\t65535\n", "1024 65535", true],
    ["1024  65535", "1024 65535", true],
    ["1", "1", true],
    ["1", "2", false],
    ["1024 65535", "1024 65534", false],
    ["1024 65535", "102465535", false],
    ["10", "1", false],
    [null, null, true],
    [null, "", false],
    ["", null, false],
    [null, "1", false],
    ["1", null, false],
    ["", "", true],
    ["", " \n", true],
  ])("%j vs %j → %s", (a, b, expected) => {
    expect(sysctlEqual(a, b)).toBe(expected);
  });
});

describe("sysctlProcPath", () => {
  it.each([
    ["net.ipv4.tcp_tw_reuse", "/proc/sys/net/ipv4/tcp_tw_reuse"],
    ["net.ipv4.ip_local_port_range", "/proc/sys/net/ipv4/ip_local_port_range"],
    ["fs.nr_open", "/proc/sys/fs/nr_open"],
    ["net.netfilter.nf_conntrack_max", "/proc/sys/net/netfilter/nf_conntrack_max"],
  ])("%s → %s", (key, path) => {
    expect(sysctlProcPath(key)).toBe(path);
  });
});

describe("SYSCTL_KEY_PATTERN", () => {
  it.each([
    ["net.ipv4.tcp_tw_reuse", true],
    ["fs.file-max", true],
    ["net.core.somaxconn", true],
    ["net.ipv4.conf.eth0.rp_filter", true],
    ["kernel", false],
    ["net..ipv4", false],
    [".net.ipv4", false],
    ["net.ipv4.", false],
    ["net/ipv4/tcp_tw_reuse", false],
    ["net.ipv4.tcp_tw_reuse=1", false],
    ["net.ipv4.tcp tw", false],
    ["net.ipv4.tcp_tw_reuse\n", false],
    ["Net.IPv4.x", false],
    ["net.ipv4.../etc", false],
  ])("%j → %s", (key, ok) => {
    expect(SYSCTL_KEY_PATTERN.test(key)).toBe(ok);
  });
});
