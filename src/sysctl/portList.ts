/** An inclusive port range. */
export interface PortRange {
  from: number;
  to: number;
}

/**
 * Parses the kernel's `ip_local_reserved_ports` form (`8080,9000-9010`) or list items like
 * `9000-9010`. Returns null when the text is not of that form.
 */
export function parsePortList(text: string): PortRange[] | null {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  const ranges: PortRange[] = [];
  for (const part of trimmed.split(",")) {
    const range = parsePortRange(part.trim(), 0);
    if (!range) return null;
    ranges.push(range);
  }
  return normalizePortRanges(ranges);
}

/** `lowest` is 1 for ports a user asks for; the kernel's own list may contain 0. */
export function parsePortRange(text: string, lowest = 1): PortRange | null {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) return null;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  // The kernel's reserved-ports bitmap covers 0-65535, so a live list may contain 0.
  if (from < lowest || to > 65535 || from > to) return null;
  return { from, to };
}

/** Sorted, with overlapping and adjacent ranges joined: the form the kernel prints. */
export function normalizePortRanges(ranges: PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.from - b.from || a.to - b.to);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

export function formatPortList(ranges: PortRange[]): string {
  return normalizePortRanges(ranges)
    .map((r) => (r.from === r.to ? String(r.from) : `${r.from}-${r.to}`))
    .join(",");
}

export function portsToRanges(ports: readonly number[]): PortRange[] {
  return normalizePortRanges(ports.map((p) => ({ from: p, to: p })));
}

/** net.ipv4.ip_local_port_range as the kernel prints it ("32768\t60999"); null when it is not two numbers. */
export function parseLocalPortRange(text: string | null | undefined): PortRange | null {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text ?? "");
  return m ? { from: Number(m[1]), to: Number(m[2]) } : null;
}
