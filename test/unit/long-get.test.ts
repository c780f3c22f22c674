// The ntfy subscription's GET (src/operator/long-get.ts): node:http instead of fetch, so an open
// subscription arms no half-second timer; it must still behave as fetch did for the subscriber:
// a streamed body read line by line as it arrives, the status and headers, redirects followed
// (credentials kept only on the same origin), and an abort that ends the stream.
import { spawnSync } from "node:child_process";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { longGet } from "../../src/operator/long-get.js";
import { REPO_ROOT } from "../support/cli.js";

const servers: Server[] = [];
const open: ServerResponse[] = [];
afterEach(async () => {
  for (const res of open.splice(0)) res.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((ok) => s.close(ok))));
});

async function serve(handler: (url: string, headers: IncomingHttpHeaders, res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => handler(req.url ?? "", req.headers, res));
  servers.push(server);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return `http://127.0.0.1:${address.port}`;
}

describe("longGet", () => {
  it("streams a body that stays open, line by line as it is written, with its status and headers", async () => {
    const server: { writeMore?: () => void } = {};
    const url = await serve((_url, _h, res) => {
      open.push(res);
      res.writeHead(200, { "content-type": "application/x-ndjson", date: "Sun, 29 Nov 2026 05:00:00 GMT" });
      res.write('{"event":"open"}\n');
      server.writeMore = () => res.write('{"event":"keepalive"}\n');
    });
    const res = await longGet(`${url}/topic/json`, { Accept: "application/x-ndjson" }, AbortSignal.timeout(20_000));
    expect(res.status).toBe(200);
    expect(res.headers.get("date")).toBe("Sun, 29 Nov 2026 05:00:00 GMT");
    const reader = res.body?.getReader();
    if (!reader) throw new Error("no body");
    const decoder = new TextDecoder();
    expect(decoder.decode((await reader.read()).value)).toBe('{"event":"open"}\n');
    server.writeMore?.();
    expect(decoder.decode((await reader.read()).value)).toBe('{"event":"keepalive"}\n');
    await reader.cancel();
  });

  it("follows a redirect, keeping Authorization on the same origin and dropping it on another", async () => {
    const seen: { url: string; auth: string | undefined }[] = [];
    const other = await serve((u, h, res) => {
      seen.push({ url: `other${u}`, auth: h.authorization });
      res.end("done");
    });
    const url = await serve((u, h, res) => {
      seen.push({ url: u, auth: h.authorization });
      if (u === "/a") res.writeHead(302, { location: "/b" }).end();
      else res.writeHead(307, { location: `${other}/c` }).end();
    });
    const res = await longGet(`${url}/a`, { Authorization: "Bearer tk_secret" }, AbortSignal.timeout(20_000));
    expect(await res.text()).toBe("done");
    expect(seen).toEqual([
      { url: "/a", auth: "Bearer tk_secret" },
      { url: "/b", auth: "Bearer tk_secret" },
      { url: "other/c", auth: undefined },
    ]);
  });

  it("an abort ends a stream that is still open", async () => {
    const url = await serve((_u, _h, res) => {
      open.push(res);
      res.writeHead(200);
      res.write("x\n");
    });
    const conn = new AbortController();
    const res = await longGet(url, {}, conn.signal);
    const reader = res.body?.getReader();
    if (!reader) throw new Error("no body");
    await reader.read();
    conn.abort();
    await expect(reader.read()).rejects.toThrow();
  });

  it("loads no more of Node than node:http itself does: not fetch (undici: about 9 MB resident on Node 20) nor, for an http server, node:https", () => {
    // a fresh node each: the test runner itself has loaded both long since. On Node 24 node:http's
    // client loads undici itself, so the reference is a plain node:http GET in the same Node.
    const read = (how: "longGet" | "http") => {
      const script = `
        import { createServer, get } from "node:http";
        import { longGet } from ${JSON.stringify(join(REPO_ROOT, "dist", "src", "operator", "long-get.js"))};
        const server = createServer((req, res) => { res.writeHead(200, { date: "Sun, 29 Nov 2026 05:00:00 GMT" }); res.end('{"event":"open"}\\n'); });
        await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
        const url = "http://127.0.0.1:" + server.address().port + "/topic/json";
        let text = "";
        let date = null;
        if (${JSON.stringify(how)} === "longGet") {
          const res = await longGet(url, {}, AbortSignal.timeout(20_000));
          date = res.headers.get("date");
          const reader = res.body.getReader();
          for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
        } else {
          await new Promise((ok) => get(url, (res) => { date = res.headers.date; res.setEncoding("utf8"); res.on("data", (d) => (text += d)); res.on("end", ok); }));
        }
        server.close();
        const loaded = (name) => process.moduleLoadList.includes("NativeModule " + name);
        console.log(JSON.stringify({ text, date, undici: loaded("internal/deps/undici/undici"), https: loaded("https") }));
      `;
      const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { text: string; date: string; undici: boolean; https: boolean };
    };
    const plain = read("http");
    expect(read("longGet")).toEqual({ text: '{"event":"open"}\n', date: "Sun, 29 Nov 2026 05:00:00 GMT", undici: plain.undici, https: false });
    if (process.versions.node.startsWith("20.")) expect(plain.undici).toBe(false);
  });
});
