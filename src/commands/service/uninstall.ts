import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { Flags } from "@oclif/core";
import { RelayCommand, UsageError } from "../base.js";
import { whyRefused } from "./install.js";
import { type ServiceKind, serviceFile, serviceFlags } from "./target.js";

export interface Step {
  command: string;
  ok: boolean;
  /** the first line it printed when it failed */
  detail?: string;
}

/** Run a service manager's command; a failure (it is not there, the unit is not loaded) is a step that did not work, not an error. */
function runStep(file: string, args: string[]): Promise<Step> {
  const command = [file, ...args].join(" ");
  return new Promise((resolveStep) => {
    execFile(file, args, { timeout: 30_000, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err === null) return resolveStep({ command, ok: true });
      const detail = `${stderr}\n${stdout}`.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? ("code" in err && err.code === "ENOENT" ? `${file} not found` : err.message.split("\n")[0] ?? "failed");
      resolveStep({ command, ok: false, detail });
    });
  });
}

export default class ServiceUninstall extends RelayCommand {
  static override summary = "Stop and remove the service that runs `relay run` on this root (systemd unit or launchd agent).";
  static override description = [
    "systemd: systemctl stop, systemctl disable, remove the unit file, systemctl daemon-reload (each with --user for a user unit).",
    "macOS: launchctl bootout of the agent, then its property list is removed.",
    "A step that fails (the unit was not running, no systemd here) is reported and the rest still happens; the root itself is never touched.",
  ].join("\n");
  static override examples = ["<%= config.bin %> service uninstall --user --root ~/relay", "sudo <%= config.bin %> service uninstall --root ~/relay"];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    "unit-dir": Flags.string({ description: "the directory the unit (or agent) was installed into with --unit-dir" }),
  };

  async run(): Promise<{ kind: ServiceKind; path: string; removed: boolean; steps: Step[] }> {
    const { flags } = await this.parse(ServiceUninstall);
    const paths = this.resolvePaths(flags.root);
    const { isErrno } = await import("../../store/files.js");
    const file = await serviceFile(paths.root, { user: flags.user, agent: flags.agent, platform: flags.platform, dir: flags["unit-dir"] });
    const there = await rm(file.path).then(
      () => true,
      (err: unknown) => {
        if (isErrno(err, "ENOENT")) return false;
        const why = whyRefused(err);
        if (why !== null) throw new UsageError(`cannot remove ${file.path}: ${why}; ${file.kind === "systemd" && !flags.user ? "run it with sudo" : "check the file's owner"}`);
        throw err;
      },
    );
    // Removed first, so a refusal leaves everything as it was; the manager is told afterwards.
    const steps: Step[] = [];
    if (!there) {
      this.log(`no service at ${file.path}: nothing to remove`);
      return { kind: file.kind, path: file.path, removed: false, steps };
    }
    if (file.kind === "launchd") {
      steps.push(await runStep("launchctl", ["bootout", `gui/${process.getuid?.() ?? 501}/${file.name}`]));
    } else {
      const ctl = flags.user ? ["--user"] : [];
      for (const verb of ["stop", "disable"]) steps.push(await runStep("systemctl", [...ctl, verb, file.name]));
      steps.push(await runStep("systemctl", [...ctl, "daemon-reload"]));
    }
    this.log(`removed ${file.path}`);
    for (const s of steps) this.log(s.ok ? `ran: ${s.command}` : `could not run: ${s.command}: ${s.detail ?? "failed"} (nothing more to do if the service was not loaded)`);
    return { kind: file.kind, path: file.path, removed: true, steps };
  }
}
