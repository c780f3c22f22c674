// A GET whose response may stay open for hours (ntfy's subscription stream), made with node:http
// rather than fetch. Node's fetch (undici) keeps its body and headers timeouts on a shared timer
// that ticks every half second while any response is open: the subscription alone woke an idle
// relay twice a second for as long as it lived. node:http arms no timer of its own; the caller's
// idle timer (one per connection, re-armed on each line) is the only one.
import { type IncomingHttpHeaders, type IncomingMessage, request as httpRequest } from "node:http";

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/**
 * What the subscriber reads of a response, as fetch's Response has it, over node:http's own
 * message: a web Response (and its Headers and web streams) loads Node's fetch, undici, about
 * 9 MB of an idle relay's resident memory for a subscription that needs none of it.
 */
export interface LongGetResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** the body's chunks as they arrive; null for 204 and 304 */
  readonly body: { getReader(): BodyReader } | null;
  text(): Promise<string>;
}

export interface BodyReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(): Promise<void>;
}

/** A header as Headers.get gives it: repeated values joined with ", ", null when absent. */
function headerOf(raw: IncomingHttpHeaders, name: string): string | null {
  const value = raw[name.toLowerCase()];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : value;
}

function responseOf(res: IncomingMessage): LongGetResponse {
  const status = res.statusCode ?? 0;
  const hasBody = status !== 204 && status !== 304;
  if (!hasBody) res.resume();
  let taken = false;
  const chunks = (): AsyncIterator<Buffer> => {
    if (taken) throw new TypeError("the body was already read");
    taken = true;
    return res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  };
  return {
    status,
    ok: status >= 200 && status <= 299,
    headers: { get: (name) => headerOf(res.headers, name) },
    body: hasBody
      ? {
          getReader: () => {
            const it = chunks();
            return {
              read: async () => {
                const next = await it.next();
                return next.done === true ? { done: true } : { done: false, value: next.value };
              },
              cancel: async () => {
                res.destroy();
                await it.return?.();
              },
            };
          },
        }
      : null,
    text: async () => {
      if (!hasBody) return "";
      const it = chunks();
      const parts: Buffer[] = [];
      for (let next = await it.next(); next.done !== true; next = await it.next()) parts.push(next.value);
      return Buffer.concat(parts).toString("utf8");
    },
  };
}

/** GET `url` as fetch would (redirects followed, the response's status, headers and streamed body), aborted by `signal`. */
export async function longGet(url: string, headers: Record<string, string>, signal: AbortSignal, redirects = 0): Promise<LongGetResponse> {
  const target = new URL(url);
  // node:https (and TLS) only for an https server
  const request = target.protocol === "https:" ? (await import("node:https")).request : target.protocol === "http:" ? httpRequest : null;
  if (request === null) throw new TypeError(`cannot GET ${target.protocol} URLs`);
  const { status, location, response } = await new Promise<{ status: number; location: string | undefined; response: LongGetResponse | null }>((resolve, reject) => {
    const req = request(target, { method: "GET", headers, signal }, (res) => {
      const code = res.statusCode ?? 0;
      if (REDIRECTS.has(code) && res.headers.location !== undefined) {
        res.resume();
        resolve({ status: code, location: res.headers.location, response: null });
        return;
      }
      resolve({ status: code, location: undefined, response: responseOf(res) });
    });
    req.on("error", reject);
    req.end();
  });
  if (response !== null) return response;
  if (location === undefined || redirects >= MAX_REDIRECTS) throw new Error(`HTTP ${status}: too many redirects`);
  const next = new URL(location, target);
  // as fetch does: credentials do not follow a redirect to another origin
  const kept = next.origin === target.origin ? headers : Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== "authorization"));
  return longGet(next.href, kept, signal, redirects + 1);
}
