// Which service manager a service command speaks to and the file it writes: a systemd unit on
// Linux, a launchd agent on macOS (`--platform` is hidden: tests and the curious see the other one).
import { join, resolve } from "node:path";
import { userInfo } from "node:os";
import { Flags } from "@oclif/core";
import { UsageError } from "../base.js";

export type ServiceKind = "systemd" | "launchd";

export const serviceKind = (platform: string): ServiceKind => (platform === "darwin" ? "launchd" : "systemd");

export const serviceFlags = {
  user: Flags.boolean({ description: "systemd: a user unit (systemctl --user) instead of a system one (launchd agents are always the user's)" }),
  agent: Flags.boolean({ description: "the service runs relay agent (transport: nats, a root served for a relay on another host) instead of relay run" }),
  platform: Flags.string({ hidden: true, options: ["linux", "darwin"], description: "the platform whose service to write (default: this one)" }),
};

export interface ServiceFile {
  kind: ServiceKind;
  /** the unit's name, or the agent's label */
  name: string;
  dir: string;
  path: string;
  text: string;
  /** the commands to run once it is written */
  next: string[];
}

/** The account a system unit runs as: the one who ran sudo, else the current one. */
export function serviceAccount(): string {
  const sudoUser = process.env.SUDO_USER;
  if (process.getuid?.() === 0 && sudoUser && /^[a-z_][a-z0-9_-]*\$?$/i.test(sudoUser)) return sudoUser;
  return userInfo().username;
}

export async function serviceFile(root: string, opts: { user: boolean; agent?: boolean; platform?: string | undefined; dir?: string | undefined }): Promise<ServiceFile> {
  const [{ relayBin }, unit, launchd] = await Promise.all([import("../../claude-code/settings.js"), import("../../service/unit.js"), import("../../service/launchd.js")]);
  const kind = serviceKind(opts.platform ?? process.platform);
  const node = process.execPath;
  const bin = relayBin();
  const agent = opts.agent === true;
  try {
    if (kind === "launchd") {
      const dir = opts.dir ? resolve(opts.dir) : launchd.agentDir();
      const path = join(dir, launchd.agentFile(root, agent));
      const label = launchd.agentLabel(root, agent);
      return { kind, name: label, dir, path, text: launchd.renderPlist({ root, node, bin, agent }), next: launchd.agentNextCommands(path, label) };
    }
    const name = unit.unitName(root, agent);
    const dir = opts.dir ? resolve(opts.dir) : unit.unitDir(opts.user);
    const text = unit.renderUnit({ root, node, bin, user: opts.user, agent, ...(opts.user ? {} : { runAs: serviceAccount() }) });
    return { kind, name, dir, path: join(dir, name), text, next: unit.nextCommands(name, opts.user) };
  } catch (err) {
    if (err instanceof unit.UnitPathError || err instanceof launchd.AgentPathError) throw new UsageError(err.message);
    throw err;
  }
}
