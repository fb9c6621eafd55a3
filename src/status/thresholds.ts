import { closest } from "../config/suggest.js";
import { DEFAULT_THRESHOLD, WALL_IDS, type Thresholds, type WallId } from "./walls.js";

export class ThresholdError extends Error {}

/**
 * `--warn 60` sets every wall, `--warn ephemeral-ports=50` one wall (repeatable, later wins; a
 * wall's own setting beats the all-walls one whatever the order). Every problem at once.
 */
export function thresholdsFrom(warn: readonly string[], critical: readonly string[]): Thresholds {
  const problems: string[] = [];
  const read = (flag: string, values: readonly string[], fallback: number) => {
    let all = fallback;
    const own = new Map<WallId, number>();
    for (const value of values) {
      const m = /^(?:([a-z-]+)=)?(\d+(?:\.\d+)?)$/.exec(value.trim());
      const percent = m ? Number(m[2]) : NaN;
      if (!m || !(percent > 0 && percent <= 100)) {
        problems.push(
          `${flag} ${JSON.stringify(value)}: expected a percentage above 0 and at most 100, or WALL=PERCENT`,
        );
        continue;
      }
      if (m[1] === undefined) {
        all = percent;
        continue;
      }
      if (!(WALL_IDS as readonly string[]).includes(m[1])) {
        const guess = closest(m[1], WALL_IDS);
        problems.push(
          `${flag} ${JSON.stringify(value)}: no wall is named ${m[1]}; ${guess ? `did you mean ${guess}?` : `walls: ${WALL_IDS.join(", ")}`}`,
        );
        continue;
      }
      own.set(m[1] as WallId, percent);
    }
    return (wall: WallId) => own.get(wall) ?? all;
  };
  const warnOf = read("--warn", warn, DEFAULT_THRESHOLD.warn);
  const criticalOf = read("--critical", critical, DEFAULT_THRESHOLD.critical);
  const out = {} as Thresholds;
  for (const wall of WALL_IDS) {
    out[wall] = { warn: warnOf(wall), critical: criticalOf(wall) };
    if (out[wall].warn > out[wall].critical)
      problems.push(
        `${wall}: --warn ${out[wall].warn} is above --critical ${out[wall].critical}; a warning comes before the critical threshold`,
      );
  }
  if (problems.length > 0) throw new ThresholdError(problems.join("\n"));
  return out;
}
