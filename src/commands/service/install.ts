import { access, mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Flags } from "@oclif/core";
import { RelayCommand, UsageError } from "../base.js";
import { unitFor } from "./print.js";

const WHY: Record<string, string> = { EACCES: "permission denied", EPERM: "permission denied", EROFS: "read-only file system", ENOENT: "its directory cannot be created" };
const errCode = (err: unknown): string => (typeof err === "object" && err !== null && "code" in err ? String(err.code) : "");

/** mkdir -p, one level at a time (a recursive mkdir can spin forever under /proc). */
async function makeDirs(dir: string): Promise<void> {
  const { isErrno } = await import("../../store/files.js");
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const st = await stat(d).catch((err: unknown) => {
      if (isErrno(err, "ENOENT")) return null;
      throw err;
    });
    if (st) {
      if (!st.isDirectory()) throw new UsageError(`${d} is not a directory`);
      break;
    }
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) await mkdir(d);
}

export default class ServiceInstall extends RelayCommand {
  static override description =
    "Write the systemd unit for `relay run` on this root: ~/.config/systemd/user/relay-<name>.service with --user, else /etc/systemd/system/relay-<name>.service.";
  static override enableJsonFlag = true;
  static override flags = {
    user: Flags.boolean({ description: "a user unit (systemctl --user) instead of a system one" }),
    "unit-dir": Flags.string({ description: "write the unit into this directory instead" }),
  };

  async run(): Promise<{ path: string; name: string; changed: boolean; next: string[] }> {
    const { flags } = await this.parse(ServiceInstall);
    const paths = this.resolvePaths(flags.root);
    const [{ loadEnv }, { nextCommands, unitDir }, { isErrno, writeAtomic }] = await Promise.all([
      import("../../config/config.js"),
      import("../../service/unit.js"),
      import("../../store/files.js"),
    ]);
    const unit = await unitFor(paths.root, flags.user);
    const dir = flags["unit-dir"] ? resolve(flags["unit-dir"]) : unitDir(flags.user);
    const path = join(dir, unit.name);

    const current = await readFile(path, "utf8").catch((err: unknown) => {
      if (isErrno(err, "ENOENT")) return null;
      throw err;
    });
    const changed = current !== unit.text;
    if (changed) {
      try {
        await makeDirs(dir);
        await writeAtomic(path, unit.text);
      } catch (err) {
        if (isErrno(err, "EACCES") || isErrno(err, "EPERM") || isErrno(err, "EROFS") || isErrno(err, "ENOENT")) {
          throw new UsageError(`cannot write ${path}: ${WHY[errCode(err)] ?? "refused"}; run it with sudo, or use --user for a user unit`);
        }
        throw err;
      }
    }
    const next = nextCommands(unit.name, flags.user);
    this.log(changed ? `wrote ${path}` : `${path} is already up to date`);
    if (!(await access(paths.config).then(() => true, () => false))) {
      this.logToStderr(`relay: note: ${paths.config} does not exist yet; the first start creates it with commented defaults`);
    }
    if ((await loadEnv(paths, {})).ANTHROPIC_API_KEY === undefined) {
      this.logToStderr(`relay: note: the service reads only ${paths.env} and its own environment: put ANTHROPIC_API_KEY=... in ${paths.env}`);
    }
    this.log("next:");
    for (const command of next) this.log(`  ${command}`);
    if (flags.user) this.log("to keep it running while you are logged out: loginctl enable-linger \"$USER\"");
    return { path, name: unit.name, changed, next };
  }
}
