// `--http [HOST:]PORT` and what a bind address means for security: loopback or not, wildcard or not.
import { isIP, isIPv4, isIPv6 } from "node:net";

export interface ListenSpec {
  host: string;
  port: number;
}

export const DEFAULT_HTTP_HOST = "127.0.0.1";

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function bad(spec: string, why: string): Error {
  return new Error(`invalid listen address ${JSON.stringify(spec)}: ${why}; expected [HOST:]PORT such as 8080, 127.0.0.1:8080 or [::1]:8080`);
}

/** "[HOST:]PORT": the host defaults to 127.0.0.1; an IPv6 host goes in brackets ("[::1]:8080"); port 0 lets the OS choose. */
export function parseListen(spec: string): ListenSpec {
  const s = spec.trim();
  if (s === "") throw bad(spec, "it is empty");
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(s);
  if (bracketed) {
    host = bracketed[1] ?? "";
    portText = bracketed[2] ?? "";
    if (!isIPv6(host)) throw bad(spec, `${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon === -1) {
      host = DEFAULT_HTTP_HOST;
      portText = s;
    } else {
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
      if (host.includes(":")) throw bad(spec, "an IPv6 address must be in brackets");
      if (host === "") host = DEFAULT_HTTP_HOST;
      else if (!isIPv4(host) && !HOSTNAME.test(host)) throw bad(spec, `${JSON.stringify(host)} is not a host name or IP address`);
    }
  }
  if (!/^\d{1,5}$/.test(portText)) throw bad(spec, `the port ${JSON.stringify(portText)} is not a number`);
  const port = Number(portText);
  if (port > 65_535) throw bad(spec, `the port ${port} is over 65535`);
  return { host: host.toLowerCase(), port };
}

/** The host as it appears in a URL or a Host header: IPv6 in brackets. */
export const urlHost = (host: string): string => (isIPv6(host) ? `[${host}]` : host);

/** 127.0.0.0/8, ::1 (also IPv4-mapped), "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost") return true;
  if (isIPv4(h)) return h.startsWith("127.");
  if (isIPv6(h)) {
    if (h === "::1" || /^(0{1,4}:){7}0{0,3}1$/.test(h)) return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped?.[1] !== undefined && mapped[1].startsWith("127.");
  }
  return false;
}

/** 0.0.0.0 and :: listen on every interface. */
export const isWildcardHost = (host: string): boolean => isIP(host) !== 0 && /^[0:.]+$/.test(host) && !isLoopbackHost(host);
