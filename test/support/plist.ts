/**
 * A strict reader for XML property lists (`plutil` is macOS-only): the prolog, the DOCTYPE, then
 * one `<plist version="1.0">` holding dict, array, key, string, integer, true and false. Anything
 * else (a stray tag, an unclosed element, text outside a string, an undefined entity) throws, so
 * a malformed file fails the test that reads it.
 */
export type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decode(text: string): string {
  return text.replace(/&([a-z]+);|&/g, (whole, name: string | undefined) => {
    const ch = name === undefined ? undefined : ENTITIES[name];
    if (ch === undefined) throw new Error(`plist: bad entity ${whole}`);
    return ch;
  });
}

export function parsePlist(xml: string): PlistValue {
  let rest = xml.replace(/^<\?xml [^?]*\?>\s*/, "").replace(/^<!DOCTYPE plist [^>]*>\s*/, "");
  const open = /^<plist version="1\.0">/.exec(rest);
  if (!open) throw new Error("plist: expected <plist version=\"1.0\"> after the prolog");
  rest = rest.slice(open[0].length);

  const skip = () => (rest = rest.replace(/^\s+/, ""));
  const take = (re: RegExp): RegExpExecArray | null => {
    skip();
    const m = re.exec(rest);
    if (m) rest = rest.slice(m[0].length);
    return m;
  };
  const expectTag = (tag: string) => {
    if (!take(new RegExp(`^<${tag}>`))) throw new Error(`plist: expected <${tag}> at ${JSON.stringify(rest.slice(0, 40))}`);
  };

  const value = (): PlistValue => {
    if (take(/^<true\/>/)) return true;
    if (take(/^<false\/>/)) return false;
    const str = take(/^<string>([^<]*)<\/string>/);
    if (str) return decode(str[1] ?? "");
    const int = take(/^<integer>(-?\d+)<\/integer>/);
    if (int) return Number(int[1]);
    if (take(/^<array>/)) {
      const items: PlistValue[] = [];
      while (!take(/^<\/array>/)) items.push(value());
      return items;
    }
    if (take(/^<dict>/)) {
      const dict: Record<string, PlistValue> = {};
      while (!take(/^<\/dict>/)) {
        const key = take(/^<key>([^<]*)<\/key>/);
        if (!key) throw new Error(`plist: expected <key> at ${JSON.stringify(rest.slice(0, 40))}`);
        const name = decode(key[1] ?? "");
        if (name in dict) throw new Error(`plist: duplicate key ${name}`);
        dict[name] = value();
      }
      return dict;
    }
    throw new Error(`plist: unexpected ${JSON.stringify(rest.slice(0, 40))}`);
  };

  const top = value();
  expectTag("/plist");
  if (rest.trim() !== "") throw new Error("plist: text after </plist>");
  return top;
}
