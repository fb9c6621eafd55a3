/** The kernel prints some multi-value sysctls with tabs (`1024\t65535`); compare them by words. */
export function normalizeSysctlValue(value: string): string {
  return value.trim().split(/\s+/).join(" ");
}

export function sysctlEqual(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  return normalizeSysctlValue(a) === normalizeSysctlValue(b);
}

/** `net.ipv4.tcp_tw_reuse` → `/proc/sys/net/ipv4/tcp_tw_reuse`. */
export function sysctlProcPath(key: string): string {
  return `/proc/sys/${key.replace(/\./g, "/")}`;
}

/** Keys we accept anywhere: dotted lowercase words; never a path separator, `=`, space or newline. */
export const SYSCTL_KEY_PATTERN = /^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/;
