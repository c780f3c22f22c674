/**
 * A NATS link for the tests that look at what the NATS side asks of the server: the real
 * connection, with each bucket it binds passed through `wrap` (a view over the real one, to count
 * or bend its calls).
 */
import type { KV } from "@nats-io/kv";
import type { NatsLink } from "../../src/transport/nats/connection.js";

export function linkWithBuckets(link: NatsLink, wrap: (name: string, kv: KV, view: KV) => KV): NatsLink {
  const kvm = Object.create(link.kvm) as NatsLink["kvm"];
  kvm.open = async (name, o) => {
    const kv = await link.kvm.open(name, o);
    return wrap(name, kv, Object.create(kv) as KV);
  };
  return { ...link, kvm };
}
