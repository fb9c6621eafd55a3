import { createHash } from "node:crypto";

/** Equal for two values of plain data only when they are equal (Maps, Sets and bigints by content; keys in the same order). */
export function contentKey(value: unknown): string {
  const json = JSON.stringify(value, (_key, v: unknown) =>
    v instanceof Map
      ? { $map: [...v] }
      : v instanceof Set
        ? { $set: [...v] }
        : typeof v === "bigint"
          ? { $bigint: v.toString() }
          : v === undefined
            ? { $undefined: true }
            : v,
  );
  return createHash("sha256").update(json).digest("base64");
}
