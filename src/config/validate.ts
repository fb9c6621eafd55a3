import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { ConfigProblem } from "./errors.js";
import { formatKeyPath, type KeyPath, type YamlFile } from "./yamlFile.js";
import { closest } from "./suggest.js";

/**
 * The only place ajv is used. Schemas may carry `fix` (how to correct a bad value) next to
 * `description` (why the value exists); both are metadata only.
 */
// code.optimize off: the validators run once per file on small documents, while optimizing their
// code at every start of the CLI costs more (about a third of the compile time) than it saves.
const ajv = new Ajv({
  allErrors: true,
  strict: true,
  allowUnionTypes: true,
  verbose: true,
  useDefaults: false,
  code: { optimize: false },
});
ajv.addKeyword({ keyword: "fix", schemaType: "string" });

const compiled = new WeakMap<object, ValidateFunction>();

function compile(schema: object): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = ajv.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

/** Settings whose mere presence is refused with a reason, wherever a schema meets them. */
const REFUSED_KEYS: Record<string, { problem: string; fix: string }> = {
  tcp_tw_recycle: {
    problem:
      "tcp_tw_recycle is refused: it drops SYNs from clients behind NAT (their timestamps are not monotonic per address) and was removed in Linux 4.12",
    fix: "remove it; for outbound TIME_WAIT churn use the tw-reuse role (tcp_tw_reuse: 1 with tcp_timestamps: 1)",
  },
};

export function refusedKey(key: string): { problem: string; fix: string } | undefined {
  return REFUSED_KEYS[key] ?? REFUSED_KEYS[key.split(".").pop() ?? ""];
}

/** Where validated data was read from: a YAML file, or any source that can locate a key path. */
type Located = Pick<YamlFile, "file" | "locate">;

/** Whether `data` satisfies `schema`, without reporting anything. */
export function satisfies(schema: object, data: unknown): boolean {
  return compile(schema)(data) === true;
}

/**
 * Validates `data` (found at `basePath` inside `source`) against `schema` and appends every
 * problem, located at the offending key or value.
 */
export function validateAgainstSchema(
  schema: object,
  data: unknown,
  source: Located,
  basePath: KeyPath,
  problems: ConfigProblem[],
): boolean {
  const validate = compile(schema);
  if (validate(data)) return true;
  const seen = new Set<string>();
  for (const err of validate.errors ?? []) {
    const p = describe(err, source, basePath);
    const id = `${p.line}:${p.col}:${p.keyPath}:${p.problem}`;
    if (seen.has(id)) continue;
    seen.add(id);
    problems.push(p);
  }
  return false;
}

function describe(err: ErrorObject, source: Located, basePath: KeyPath): ConfigProblem {
  const path = [...basePath, ...pointerToPath(err.instancePath)];
  const fixFromSchema = typeof err.parentSchema?.fix === "string" ? (err.parentSchema.fix as string) : undefined;
  const at = (p: KeyPath, kind: "key" | "value") => ({ file: source.file, ...source.locate(p, kind) });

  switch (err.keyword) {
    case "additionalProperties": {
      const key = String(err.params.additionalProperty);
      const keyPath = [...path, key];
      const refused = refusedKey(key);
      if (refused) {
        return { ...at(keyPath, "key"), keyPath: formatKeyPath(keyPath), severity: "error", ...refused };
      }
      const allowed = Object.keys((err.parentSchema?.properties as object | undefined) ?? {});
      const guess = closest(key, allowed);
      return {
        ...at(keyPath, "key"),
        keyPath: formatKeyPath(keyPath),
        severity: "error",
        problem: `unknown key ${JSON.stringify(key)}`,
        fix: guess
          ? `did you mean "${guess}"?`
          : allowed.length > 0
            ? `remove it; allowed keys here: ${allowed.join(", ")}`
            : "remove it",
      };
    }
    case "required": {
      const key = String(err.params.missingProperty);
      return {
        ...at(path, "value"),
        keyPath: formatKeyPath(path),
        severity: "error",
        problem: `missing required key "${key}"`,
        fix: fixFromSchema ?? `add "${key}:" here`,
      };
    }
    default:
      return {
        ...at(path, "value"),
        keyPath: formatKeyPath(path),
        severity: "error",
        problem: valueProblem(err),
        fix: fixFromSchema ?? valueFix(err),
      };
  }
}

function valueProblem(err: ErrorObject): string {
  const shown = JSON.stringify(err.data);
  switch (err.keyword) {
    case "type":
      return `expected ${article(String(err.params.type))}, got ${err.data === null ? "an empty value" : `${typeName(err.data)} ${shown}`}`;
    case "minimum":
    case "exclusiveMinimum":
    case "maximum":
    case "exclusiveMaximum":
      return `${shown} is out of range (${err.message ?? ""})`;
    case "enum":
      return `${shown} is not one of ${(err.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
    case "const":
      return `${shown} is not allowed here (only ${JSON.stringify(err.params.allowedValue)})`;
    case "pattern":
      return `${shown} has an invalid form`;
    case "minItems":
    case "maxItems":
    case "minLength":
    case "maxLength":
    case "uniqueItems":
      return `${err.message ?? "invalid"}`;
    default:
      return `${shown} is invalid (${err.message ?? err.keyword})`;
  }
}

function valueFix(err: ErrorObject): string {
  switch (err.keyword) {
    case "type":
      return `write ${article(String(err.params.type))}`;
    case "minimum":
      return `use a value of at least ${String(err.params.limit)}`;
    case "maximum":
      return `use a value of at most ${String(err.params.limit)}`;
    case "exclusiveMinimum":
      return `use a value greater than ${String(err.params.limit)}`;
    case "exclusiveMaximum":
      return `use a value less than ${String(err.params.limit)}`;
    case "enum":
      return `use one of ${(err.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
    case "const":
      return `set it to ${JSON.stringify(err.params.allowedValue)} or remove it`;
    case "pattern":
      return `it must match ${String(err.params.pattern)}`;
    default:
      return "correct the value";
  }
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return typeof v === "string"
    ? "a string"
    : typeof v === "number"
      ? Number.isInteger(v)
        ? "an integer"
        : "a number"
      : `a ${typeof v}`;
}

function article(type: string): string {
  const names: Record<string, string> = {
    object: "a mapping",
    array: "a list",
    string: "a string",
    integer: "an integer",
    number: "a number",
    boolean: "a boolean (true/false)",
    null: "nothing (null)",
  };
  return type
    .split(",")
    .map((t) => names[t] ?? t)
    .join(" or ");
}

function pointerToPath(pointer: string): KeyPath {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}
