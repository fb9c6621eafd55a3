import { renderShapes, shapeKey, shapeOf, type Shape } from "./details.js";

/** What one host's line says, before hosts with the same outcome share a line. */
export interface Outcome<T> {
  host: string;
  /** What the shared line is built from: the first host's. */
  item: T;
  /** Equal for every host of a line: the status, or whatever must never be merged. */
  kind: string;
  /** The line (or lines) after `host: `. */
  text: string;
  /**
   * Hosts share a line when their texts are equal, or with this set, equal but for per-host
   * details (addresses, fingerprints, numbers, their own names), which the line then lists
   * compactly. Set for failures: a success whose counts differ is another outcome.
   */
  perHostDetails: boolean;
}

export interface OutcomeGroup<T> {
  hosts: string[];
  item: T;
  text: string;
}

/** Hosts with the same outcome as one group each, in the order of their first host. */
export function groupOutcomes<T>(outcomes: readonly Outcome<T>[]): OutcomeGroup<T>[] {
  const groups = new Map<string, { hosts: string[]; item: T; shapes: Shape[] }>();
  for (const o of outcomes) {
    const shape = shapeOfOutcome(o);
    const key = keyOf(o, shape);
    const group = groups.get(key);
    if (group) {
      group.hosts.push(o.host);
      group.shapes.push(shape);
    } else groups.set(key, { hosts: [o.host], item: o.item, shapes: [shape] });
  }
  return [...groups.values()].map((g) => ({ hosts: g.hosts, item: g.item, text: renderShapes(g.shapes) }));
}

/** Equal for two outcomes exactly when groupOutcomes puts them on one line. */
export function outcomeKey(o: Outcome<unknown>): string {
  return keyOf(o, shapeOfOutcome(o));
}

function shapeOfOutcome(o: Outcome<unknown>): Shape {
  return o.perHostDetails ? shapeOf(o.text, o.host) : { literals: [o.text], details: [] };
}

function keyOf(o: Outcome<unknown>, shape: Shape): string {
  return JSON.stringify([o.kind, o.perHostDetails, shapeKey(shape)]);
}
