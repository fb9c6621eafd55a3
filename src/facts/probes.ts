import type { Probe } from "./probe.js";

/** Every probe a role may request, by name. A new probe is one module in src/facts/ and one line here. */
const REGISTRY = new Map<string, Probe>();

export function registerProbes(...probes: Probe[]): void {
  for (const p of probes) {
    if (REGISTRY.has(p.name) && REGISTRY.get(p.name) !== p) throw new Error(`two probes named ${p.name}`);
    REGISTRY.set(p.name, p);
  }
}

export function findProbe(name: string): Probe {
  const p = REGISTRY.get(name);
  if (!p) throw new Error(`no probe named ${name}; register it in src/facts/probes.ts`);
  return p;
}
