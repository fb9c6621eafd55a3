import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { PROJECT_ROOT, provision } from "./helpers.js";

const DOCS = join(PROJECT_ROOT, "docs", "pipelines");
const read = (file: string) => readFileSync(join(DOCS, file), "utf8");
const yamlOf = (file: string) => parse(read(file)) as Record<string, unknown>;

/** Every `--option` a text passes to `provision <command>`. */
function optionsOf(text: string, command: string): string[] {
  const joined = text.replace(/\\\n\s*/g, " ").replace(/>-\n\s*/g, "");
  const found = new Set<string>();
  for (const m of joined.matchAll(new RegExp(`provision ${command}([^\\n]*)`, "g")))
    for (const o of m[1]!.matchAll(/\s(--[a-z-]+)/g)) found.add(o[1]!);
  return [...found];
}

/**
 * The pipeline examples in docs/ can't run here (no GitHub runner, no Kubernetes cluster); the
 * local one runs in shards.test.ts. These checks hold the others to the same shape: stages in
 * order, as many shards as the matrix or Job has pods, a gate that judges budgets and is the
 * stage's verdict, and only options provision really has.
 */
describe("the pipeline examples in docs/pipelines", () => {
  it("GitHub Actions: stages chained by needs, a matrix of N shards each running K/N, a gate that decides", () => {
    const rollout = yamlOf("github/rollout.yml") as {
      jobs: Record<string, { uses: string; needs?: string; with: { stage: number } }>;
    };
    const stages = Object.entries(rollout.jobs);
    expect(stages.map(([, j]) => j.with.stage)).toEqual([1, 2, 3]);
    stages.forEach(([, job], i) => {
      expect(job.uses).toBe("./.github/workflows/provision-stage.yml");
      expect(job.needs).toBe(i === 0 ? undefined : stages[i - 1]![0]);
    });
    const stage = yamlOf("github/provision-stage.yml") as {
      jobs: {
        shard: {
          "continue-on-error": boolean;
          strategy: { "fail-fast": boolean; matrix: { shard: number[] } };
          steps: Array<{ run?: string }>;
        };
        gate: { needs: string; if: string; steps: Array<{ run?: string }> };
      };
    };
    const shards = stage.jobs.shard.strategy.matrix.shard;
    expect(shards).toEqual(Array.from({ length: shards.length }, (_, i) => i + 1));
    expect(stage.jobs.shard.strategy["fail-fast"]).toBe(false);
    expect(stage.jobs.shard["continue-on-error"]).toBe(true);
    const run = stage.jobs.shard.steps.map((s) => s.run ?? "").find((r) => r.includes("provision run"))!;
    expect(run).toContain(`--shard \${{ matrix.shard }}/${shards.length}`);
    expect(run).toContain("stage=${{ inputs.stage }}");
    expect(run).toContain('--stage "$stage" $after');
    expect(run).toContain('[ "$stage" -gt 1 ] && after="--after gates/merged-stage$((stage - 1)).json"');
    expect(stage.jobs.gate.needs).toBe("shard");
    expect(stage.jobs.gate.if).toBe("${{ !cancelled() }}");
    const gate = stage.jobs.gate.steps.map((s) => s.run ?? "").find((r) => r.includes("records merge"))!;
    expect(gate).toMatch(/--check\s+--stage \$\{\{ inputs.stage \}\} \$\{\{ inputs.final && '--final' \|\| '' \}\}/);
    expect(stages.at(-1)![1].with).toEqual({ stage: 3, final: true });
  });

  it("Kubernetes: an Indexed Job of N pods, pod K running shard K+1/N, no retries; a gate Job", () => {
    const job = yamlOf("kubernetes/stage-job.yaml") as {
      metadata: { name: string };
      spec: {
        completionMode: string;
        completions: number;
        parallelism: number;
        backoffLimit: number;
        template: { spec: { containers: Array<{ args: string[] }> } };
      };
    };
    expect(job.spec.completionMode).toBe("Indexed");
    expect(job.spec.parallelism).toBe(job.spec.completions);
    expect(job.spec.backoffLimit).toBe(0);
    const script = job.spec.template.spec.containers[0]!.args[0]!;
    expect(script).toContain("shard=$((JOB_COMPLETION_INDEX + 1))");
    expect(script).toContain(`--shard "$shard/${job.spec.completions}"`);
    expect(read("kubernetes/gate-job.yaml")).toMatch(/provision records merge .*--check/);
    expect(read("kubernetes/rollout.sh")).toContain(`finished "provision-$run-stage-$stage" ${job.spec.completions}`);
    // Each rollout its own Jobs and records; every gate names its stage, the last one is final.
    expect(job.metadata.name).toBe("provision-@RUN@-stage-@STAGE@");
    expect(script).toContain("dir=/records/@RUN@/stage@STAGE@-shard$shard");
    expect(read("kubernetes/gate-job.yaml")).toContain(
      "/records/@RUN@/stage*-shard*/runs/*.json --check --stage @STAGE@ @FINAL@",
    );
  });

  it("every option the examples pass exists in provision's CLI", async () => {
    const texts = [
      "github/provision-stage.yml",
      "kubernetes/stage-job.yaml",
      "kubernetes/gate-job.yaml",
      "local-pipeline.sh",
    ].map(read);
    const policyEnv = /POLICY: (.*)/.exec(read("github/provision-stage.yml"))![1]!;
    const runHelp = (await provision(["run", "--help"])).stdout;
    const mergeHelp = (await provision(["records", "merge", "--help"])).stdout;
    const used = texts.flatMap((t) => optionsOf(t, "run"));
    const policy = [...policyEnv.matchAll(/(--[a-z-]+)/g)].map((m) => m[1]!);
    expect(used).toEqual(expect.arrayContaining(["--shard", "--stage", "--yes", "--state-dir"]));
    for (const option of [...used, ...policy, "--after"]) expect(runHelp, option).toContain(option);
    // Every example checks the gate before a stage, from stage 2 on.
    for (const t of texts.filter((t) => t.includes("provision run"))) expect(t).toMatch(/after="--after /);
    const merged = texts.flatMap((t) => optionsOf(t, "records merge"));
    expect(merged).toEqual(expect.arrayContaining(["--check"]));
    for (const option of merged) expect(mergeHelp, option).toContain(option);
  });
});
