// Who may see the status page and who may answer as JC: the Host check against DNS rebinding,
// loopback-or-token access, the same-origin and CSRF checks of POST /jc, the security headers.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { hostname, networkInterfaces } from "node:os";
import { isLoopbackHost, isWildcardHost, type ListenSpec } from "./listen.js";

/** Shorter tokens are refused: on a network, the token is the only password. */
export const MIN_TOKEN_LENGTH = 16;

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
};

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();
/** Compare secrets in constant time (whatever their lengths). */
export const safeEqual = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

/** "host:port", "[v6]:port" or "host" → lowercased host without brackets, and the port (80 when absent). */
export function parseHostHeader(value: string | undefined): { host: string; port: number } | null {
  if (value === undefined) return null;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/.exec(value.trim());
  if (!m?.[1]) return null;
  return { host: m[1].replace(/^\[|\]$/g, "").toLowerCase(), port: m[2] === undefined ? 80 : Number(m[2]) };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header(req, "cookie") ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

const FORWARDING_HEADERS = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"];

export type Access = { ok: true; setCookie?: string } | { ok: false; status: 401 | 403; message: string };

export interface Guard {
  /** the per-process CSRF token embedded in the page and required by POST /jc */
  readonly csrfToken: string;
  /** DNS-rebinding defence: the Host header names this server (one of its names, and its port). */
  hostAllowed(req: IncomingMessage): boolean;
  /** With a token: Bearer, cookie or ?token=; without: a loopback peer that is not a proxy. */
  access(req: IncomingMessage, url: URL): Access;
  /** The request comes from a page of this server, not from another site (Origin, Sec-Fetch-Site). */
  sameOrigin(req: IncomingMessage): boolean;
  csrfValid(provided: string | undefined): boolean;
}

/** `public_url`'s host (and the port its Host header carries; none means the scheme's default) and origin. */
function publicAddress(publicUrl: string | undefined): { host: string; port: number; origin: string } | null {
  if (publicUrl === undefined) return null;
  const u = new URL(publicUrl);
  return { host: u.hostname.replace(/^\[|\]$/g, "").toLowerCase(), port: u.port === "" ? (u.protocol === "https:" ? 443 : 80) : Number(u.port), origin: u.origin.toLowerCase() };
}

export function createGuard(opts: { bound: ListenSpec; token?: string; allowedHosts?: string[]; publicUrl?: string }): Guard {
  const { bound } = opts;
  const token = opts.token === undefined || opts.token === "" ? undefined : opts.token;
  const names = new Set(["localhost", "127.0.0.1", "::1", bound.host.toLowerCase()]);
  if (!isLoopbackHost(bound.host)) {
    names.add(hostname().toLowerCase());
    if (isWildcardHost(bound.host)) {
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(a.address.toLowerCase());
    }
  }
  for (const h of opts.allowedHosts ?? []) names.add(h.toLowerCase().replace(/^\[|\]$/g, ""));

  // public_url: a proxy that keeps the Host header, and the page's own posts from that origin
  const published = publicAddress(opts.publicUrl);

  const csrfToken = randomBytes(32).toString("base64url");
  const cookieName = `relay_auth_${bound.port}`;
  // The cookie holds a value derived from the token, not the token itself.
  const cookieValue = token === undefined ? "" : createHmac("sha256", token).update("relay status page cookie").digest("base64url");

  return {
    csrfToken,
    hostAllowed(req) {
      const value = header(req, "host");
      const h = parseHostHeader(value);
      if (h === null) return false;
      if (h.port === bound.port && names.has(h.host)) return true;
      // a Host header without a port names the scheme's default, which the server behind a proxy cannot see
      return published !== null && h.host === published.host && (h.port === published.port || !/:\d+$/.test(value ?? ""));
    },
    access(req, url) {
      if (token === undefined) {
        const peer = req.socket.remoteAddress ?? "";
        if (!isLoopbackHost(peer)) return { ok: false, status: 403, message: "this status page serves loopback clients only (set RELAY_HTTP_TOKEN to serve others)" };
        if (FORWARDING_HEADERS.some((h) => req.headers[h] !== undefined)) {
          return { ok: false, status: 403, message: "a proxied request needs RELAY_HTTP_TOKEN" };
        }
        return { ok: true };
      }
      const auth = /^Bearer\s+(\S+)$/i.exec(header(req, "authorization") ?? "");
      if (auth?.[1] !== undefined && safeEqual(auth[1], token)) return { ok: true };
      const fromCookie = cookies(req).get(cookieName);
      if (fromCookie !== undefined && safeEqual(fromCookie, cookieValue)) return { ok: true };
      const fromQuery = url.searchParams.get("token");
      if (fromQuery !== null && safeEqual(fromQuery, token)) {
        return { ok: true, setCookie: `${cookieName}=${cookieValue}; Path=/; HttpOnly; SameSite=Strict` };
      }
      return { ok: false, status: 401, message: "this status page needs RELAY_HTTP_TOKEN: open it once as /?token=TOKEN, or send Authorization: Bearer TOKEN" };
    },
    sameOrigin(req) {
      const site = header(req, "sec-fetch-site");
      if (site !== undefined && site !== "same-origin") return false;
      const origin = header(req, "origin");
      if (origin === undefined) return true; // browsers send Origin with every POST; a client without it is not a page
      const host = (header(req, "host") ?? "").toLowerCase();
      const o = origin.toLowerCase();
      return o === `http://${host}` || o === `https://${host}` || o === published?.origin;
    },
    csrfValid(provided) {
      return provided !== undefined && safeEqual(provided, csrfToken);
    },
  };
}
