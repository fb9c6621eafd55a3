// Lint: typescript-eslint's recommended rules, and one rule of our own design: roles and the pure
// modules of the pipeline never do I/O themselves (no file, process, network or SSH import). They
// get what they need as data (facts in, plans out), which is what keeps `plan` reproducible and
// every role testable with fixture tables.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const IO_MODULES = [
  "fs",
  "fs/promises",
  "child_process",
  "net",
  "tls",
  "http",
  "https",
  "dgram",
  "dns",
  "readline",
  "worker_threads",
  "cluster",
].flatMap((name) => [name, `node:${name}`]);
const IO_LIBRARIES = ["ssh2", "node-ssh", "handlebars", "yaml", "ajv"];

/** Pure by design: the role contract, every role, and the pipeline steps between facts and a plan. */
const PURE = [
  "src/role.ts",
  "src/plan.ts",
  "src/verify.ts",
  "src/facts/**/*.ts",
  "src/remote/**/*.ts",
  "src/sysctl/**/*.ts",
  "src/managedFile.ts",
  "src/snapshot.ts",
  "src/diff.ts",
  "src/explain.ts",
  "src/lint.ts",
  "src/rollout/policy.ts",
];

/** What a module that does no I/O may not import; roles also render only through PlanContext.render. */
function noIo(extraPatterns) {
  return {
    "no-restricted-imports": [
      "error",
      {
        paths: [...IO_MODULES, ...IO_LIBRARIES].map((name) => ({
          name,
          message:
            "roles and pure pipeline modules do no I/O: take the value as a fact or a parameter (see eslint.config.js)",
        })),
        patterns: [
          {
            group: [
              "**/transport/*",
              "!**/transport/shell.js",
              "!**/transport/types.js",
              "**/session.js",
              "**/cli.js",
              "**/load.js",
              ...extraPatterns,
            ],
            message:
              "roles and pure pipeline modules do not reach hosts or files: the gathered facts (and PlanContext.render, for roles) are their only inputs",
          },
        ],
      },
    ],
  };
}

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "bench/results/**", "**/*.py"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
      ],
      // The inventory and input parsers match control characters on purpose (INI separators, NUL in hostile input).
      "no-control-regex": "off",
    },
  },
  { files: ["**/*.js"], languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly" } } },
  { files: PURE, rules: noIo([]) },
  { files: ["roles/**/*.ts"], rules: noIo(["**/render.js", "**/installRoot.js", "**/playbookChoice.js"]) },
);
