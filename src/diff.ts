import { createTwoFilesPatch } from "diff";

/** The only place the unified-diff library is used. `before === null` means the file is created. */
export function fileDiff(path: string, before: string | null, after: string): string {
  const patch = createTwoFilesPatch(
    before === null ? "/dev/null" : path,
    path,
    before ?? "",
    after,
    undefined,
    undefined,
    { context: 3 },
  );
  // The library starts with an `Index:`/`===` banner; reviewers expect plain `---`/`+++` headers.
  return patch
    .split("\n")
    .filter((l) => !l.startsWith("Index: ") && !/^=+$/.test(l))
    .join("\n");
}
