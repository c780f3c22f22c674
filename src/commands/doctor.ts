import { resolve } from "node:path";
import { Flags } from "@oclif/core";
import type { Finding } from "../doctor/checks.js";
import { EXIT } from "../errors.js";
import { RelayCommand } from "./base.js";

/** `relay doctor --json` (CONTRACT §9). */
export interface DoctorReport {
  ok: boolean;
  checks: Finding[];
}

export default class Doctor extends RelayCommand {
  static override summary = "Check the set-up, one line per finding (ok, warn, fail); exit 1 if any check fails.";
  static override description = [
    "Node.js against the package's engines; the root, config.yaml and .env (mode 0600); the key set and not the placeholder;",
    "the API reachable and the key and each model accepted (a free count_tokens call); every model priced when a budget is set;",
    "ntfy: the topics, a test notification with --ntfy-test (it pings the phone), the reply topic's subscription;",
    "the Claude Code hooks (of the current directory, or each --project) and the service unit pointing at a node and a relay that exist;",
    "the lock free or held by a live relay. Each check gives up after --timeout seconds, so doctor never hangs.",
  ].join("\n");
  static override examples = [
    "<%= config.bin %> doctor --root ~/relay",
    { description: "Also send a test notification to the phone", command: "<%= config.bin %> doctor --root ~/relay --ntfy-test" },
    { description: "Check a Claude Code project's hooks too, as JSON", command: "<%= config.bin %> doctor --root ~/relay --project ~/code/app --json" },
  ];
  static override enableJsonFlag = true;
  static override flags = {
    "ntfy-test": Flags.boolean({ description: "publish a test notification to the ntfy topic (it reaches the phone)" }),
    project: Flags.string({ description: "a Claude Code project whose relay hooks to check (default: the current directory); repeatable", multiple: true }),
    timeout: Flags.integer({ description: "the longest any one check may take, in seconds", default: 10, min: 1, max: 600, helpValue: "SECONDS" }),
  };

  async run(): Promise<DoctorReport> {
    const { flags } = await this.parse(Doctor);
    const paths = this.resolvePaths(flags.root);
    const [{ runChecks }, { scrubber, secretsFromEnv }, { loadEnv }] = await Promise.all([import("../doctor/checks.js"), import("../runtime/redact.js"), import("../config/config.js")]);
    const checks = await runChecks({
      paths,
      env: process.env,
      timeoutMs: flags.timeout * 1000,
      ntfyTest: flags["ntfy-test"],
      projects: (flags.project ?? [process.cwd()]).map((p) => resolve(p)),
      platform: process.platform,
    });
    // No finding ever quotes a secret, even when an upstream message does (CONTRACT §8).
    const vars = await loadEnv(paths, process.env).catch(() => ({}) as Record<string, string | undefined>);
    const redact = scrubber([...secretsFromEnv(process.env), ...secretsFromEnv(vars)]);
    const report: DoctorReport = { ok: !checks.some((c) => c.status === "fail"), checks: checks.map((c) => ({ ...c, message: redact(c.message) })) };
    // Exit 1 on a fail, with the report printed all the same (as JSON too: this.exit would replace it with an error).
    if (!report.ok) process.exitCode = EXIT.failure;
    if (this.jsonEnabled()) return report;
    const width = Math.max(...report.checks.map((c) => c.name.length));
    for (const c of report.checks) this.log(`${c.status.padEnd(4)}  ${c.name.padEnd(width)}  ${c.message}`);
    const failed = report.checks.filter((c) => c.status === "fail").length;
    const warned = report.checks.filter((c) => c.status === "warn").length;
    this.log(failed > 0 ? `${failed} failed, ${warned} warning${warned === 1 ? "" : "s"}` : warned > 0 ? `no failures, ${warned} warning${warned === 1 ? "" : "s"}` : "all good");
    return report;
  }
}
