import type { ChangeOutcome } from "./remote/apply.js";
import type { HostPlan } from "./plan.js";
import type { CheckResult } from "./verify.js";

/** "not-reached": a rollout stopped before this host's batch. */
export type HostStatus = "unchanged" | "changed" | "failed" | "unreachable" | "not-reached";

export type HostStage = "connecting" | "reading facts" | "applying" | "checking a fresh login" | "verifying";

/** Progress hooks: the CLI draws a progress line on a terminal, or prints plain events in CI. */
export interface SessionEvents {
  stage?(host: string, stage: HostStage): void;
  /** A host's plan, verify or rollback is over (a rollout reports its hosts through its own hooks). */
  finished?(report: HostReport, phase: "plan" | "verify" | "rollback" | "status"): void;
}

/** What happened on one host; the CLI prints it and `--json` emits it. */
export interface HostReport {
  host: string;
  status: HostStatus;
  plan?: HostPlan;
  outcomes?: ChangeOutcome[];
  checks?: CheckResult[];
  error?: {
    kind: string;
    message: string;
    /** Each problem of a host that failed for several (planning). */ problems?: string[];
  };
}
