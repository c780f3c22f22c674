// Whether a root's file-system events can be trusted to show every change (CONTRACT §3: the poll
// interval is the slowest the relay may notice one). On a network or FUSE file system, inotify
// sees only the writes made on this machine: a script writing from another host is seen by the
// poll alone. Linux reports the file system's type in statfs; elsewhere the kinds are not
// stable numbers, so no file system is trusted there.
import { statfs } from "node:fs/promises";

/** Linux statfs f_type values of file systems whose changes may come from another machine (linux/magic.h and the file systems' own headers). */
const NOT_LOCAL = new Map<number, string>([
  [0x6969, "nfs"],
  [0x517b, "smb"],
  [0xfe534d42, "smb2"],
  [0xff534d42, "cifs"],
  [0x65735546, "fuse (sshfs, virtiofs, …)"],
  [0x01021997, "9p"],
  [0x5346414f, "afs"],
  [0x6b414653, "kafs"],
  [0x00c36400, "ceph"],
  [0x73757245, "coda"],
  [0x0000564c, "ncp"],
  [0x7461636f, "ocfs2"],
  [0x01161970, "gfs2"],
  [0x0bd00bd0, "lustre"],
  [0x786f4256, "vboxsf"],
  [0x47504653, "gpfs"],
]);

export type FileSystemKind = { local: true } | { local: false; why: string };

/** Whether changes under `path` are all made on this machine, so its file-system events see them all. */
export async function fileSystemKind(path: string, platform: NodeJS.Platform = process.platform): Promise<FileSystemKind> {
  if (platform !== "linux") return { local: false, why: `file-system kinds are not known on ${platform}` };
  try {
    const { type } = await statfs(path);
    const name = NOT_LOCAL.get(type);
    return name === undefined ? { local: true } : { local: false, why: `${path} is on ${name}` };
  } catch (err) {
    return { local: false, why: `cannot statfs ${path}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

