// The page's static files, served from the source tree (src/status/http/page/, which the package ships).
// Only the files named here are served: no path from a request ever reaches the file system.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { packageFile } from "../../package-files.js";

const gzipAsync = promisify(gzip);

/** src/status/http/page/ of this installation (the package ships it as it is). */
function pageDir(): URL {
  const dir = packageFile("src/status/http/page/");
  if (!existsSync(new URL("index.html", dir))) throw new Error(`the status page's files are missing (looked in ${fileURLToPath(dir)})`);
  return dir;
}

export const PAGE_DIR = pageDir();

const TYPES = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
} as const;

interface AssetSource {
  path: string | URL;
  type: string;
}

/** URL path under /assets/ → file. */
const ASSETS: Record<string, () => AssetSource> = {
  "app.js": () => ({ path: new URL("app.js", PAGE_DIR), type: TYPES.js }),
  "style.css": () => ({ path: new URL("style.css", PAGE_DIR), type: TYPES.css }),
  "favicon.svg": () => ({ path: new URL("favicon.svg", PAGE_DIR), type: TYPES.svg }),
};

export interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  /** a strong validator, so a reload revalidates with a 304 instead of fetching the file again */
  etag: string;
}

const cache = new Map<string, Promise<Asset>>();

async function load(source: AssetSource): Promise<Asset> {
  const body = await readFile(source.path);
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
  return { type: source.type, body, gzip: await gzipAsync(body), etag };
}

/** The asset for /assets/NAME, or null when there is no such asset. Files are read once per process. */
export function asset(name: string): Promise<Asset> | null {
  const source = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (!source) return null;
  let p = cache.get(name);
  if (!p) {
    p = load(source());
    p.catch(() => cache.delete(name));
    cache.set(name, p);
  }
  return p;
}

/** index.html with the per-process CSRF token in place of its placeholder. */
export async function pageHtml(csrfToken: string): Promise<string> {
  const template = await readFile(new URL("index.html", PAGE_DIR), "utf8");
  return template.replaceAll("__CSRF_TOKEN__", csrfToken);
}
