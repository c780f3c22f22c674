/**
 * A NATS link for the tests that look at what the NATS side asks of the server: the real
 * connection, with each bucket it binds passed through `wrap` (a view over the real one, to count
 * or bend its calls).
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KV } from "@nats-io/kv";
import { type RelayPaths, relayPaths } from "../../src/config/paths.js";
import { ensureDirs } from "../../src/store/files.js";
import type { NatsLink } from "../../src/transport/nats/connection.js";

export function linkWithBuckets(link: NatsLink, wrap: (name: string, kv: KV, view: KV) => KV): NatsLink {
  const kvm = Object.create(link.kvm) as NatsLink["kvm"];
  kvm.open = async (name, o) => {
    const kv = await link.kvm.open(name, o);
    return wrap(name, kv, Object.create(kv) as KV);
  };
  return { ...link, kvm };
}

/** A temp root with every directory a relay or agent uses, its path pushed onto `dirs` for the file's cleanup. */
export async function natsTempRoot(prefix: string, dirs: string[]): Promise<RelayPaths> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(root);
  const paths = relayPaths(root);
  await ensureDirs(paths.state, paths.queue, paths.rejected, paths.dispatch, paths.history, paths.logs);
  return paths;
}
