import { userInfo } from "node:os";
import { Flags } from "@oclif/core";
import type { UnitSpec } from "../../service/unit.js";
import { RelayCommand, UsageError } from "../base.js";

/** The account a system unit runs as: the one who ran sudo, else the current one. */
export function serviceAccount(): string {
  const sudoUser = process.env.SUDO_USER;
  if (process.getuid?.() === 0 && sudoUser && /^[a-z_][a-z0-9_-]*\$?$/i.test(sudoUser)) return sudoUser;
  return userInfo().username;
}

export async function unitFor(root: string, user: boolean): Promise<{ name: string; text: string }> {
  const [{ relayBin }, { renderUnit, unitName, UnitPathError }] = await Promise.all([import("../../claude-code/settings.js"), import("../../service/unit.js")]);
  const spec: UnitSpec = { root, node: process.execPath, bin: relayBin(), user, ...(user ? {} : { runAs: serviceAccount() }) };
  try {
    return { name: unitName(root), text: renderUnit(spec) };
  } catch (err) {
    if (err instanceof UnitPathError) throw new UsageError(err.message);
    throw err;
  }
}

export default class ServicePrint extends RelayCommand {
  static override description = "Print a systemd unit that runs `relay run` on this root.";
  static override enableJsonFlag = true;
  static override flags = {
    user: Flags.boolean({ description: "a user unit (systemctl --user) instead of a system one" }),
  };

  async run(): Promise<{ name: string; text: string }> {
    const { flags } = await this.parse(ServicePrint);
    const unit = await unitFor(this.resolvePaths(flags.root).root, flags.user);
    this.log(unit.text.replace(/\n$/, ""));
    return unit;
  }
}
