// A GET whose response may stay open for hours (ntfy's subscription stream), made with node:http
// rather than fetch. Node's fetch (undici) keeps its body and headers timeouts on a shared timer
// that ticks every half second while any response is open: the subscription alone woke an idle
// relay twice a second for as long as it lived. node:http arms no timer of its own; the caller's
// idle timer (one per connection, re-armed on each line) is the only one.
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

function headersOf(raw: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) out.append(name, one);
  }
  return out;
}

/** GET `url` as fetch would (redirects followed, a web Response back), aborted by `signal`. */
export async function longGet(url: string, headers: Record<string, string>, signal: AbortSignal, redirects = 0): Promise<Response> {
  const target = new URL(url);
  const request = target.protocol === "https:" ? httpsRequest : target.protocol === "http:" ? httpRequest : null;
  if (request === null) throw new TypeError(`cannot GET ${target.protocol} URLs`);
  const { status, location, response } = await new Promise<{ status: number; location: string | undefined; response: Response | null }>((resolve, reject) => {
    const req = request(target, { method: "GET", headers, signal }, (res) => {
      const code = res.statusCode ?? 0;
      if (REDIRECTS.has(code) && res.headers.location !== undefined) {
        res.resume();
        resolve({ status: code, location: res.headers.location, response: null });
        return;
      }
      const body = code === 204 || code === 304 ? null : Readable.toWeb(res);
      if (body === null) res.resume();
      resolve({ status: code, location: undefined, response: new Response(body, { status: code, headers: headersOf(res.headers) }) });
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
