// redis.mjs -- a tiny Redis client speaking RESP over node:net: enough for a test's commands.
import net from "node:net";

export class Redis {
  static connect(port, host = "127.0.0.1") {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ port, host });
      sock.once("connect", () => resolve(new Redis(sock)));
      sock.once("error", reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    sock.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.drain();
    });
    sock.on("error", (e) => this.failAll(e));
    sock.on("close", () => this.failAll(new Error("redis connection closed")));
  }

  failAll(err) {
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  /** call("SET", "k", "v") -> the reply (string, number, array, null); rejects on -ERR. */
  call(...args) {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
      const b = Buffer.from(String(a));
      parts.push(`$${b.length}\r\n`, b, "\r\n");
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    });
  }

  drain() {
    while (this.waiting.length) {
      const r = parse(this.buf, 0);
      if (!r) return;
      this.buf = this.buf.subarray(r.end);
      const w = this.waiting.shift();
      if (r.value instanceof Error) w.reject(r.value);
      else w.resolve(r.value);
    }
  }

  close() {
    this.sock.destroy();
  }
}

// parse(buf, at) -> {value, end} or null when incomplete.
function parse(buf, at) {
  const nl = buf.indexOf("\r\n", at);
  if (nl < 0) return null;
  const kind = String.fromCharCode(buf[at]);
  const line = buf.toString("utf8", at + 1, nl);
  const next = nl + 2;
  switch (kind) {
    case "+":
      return { value: line, end: next };
    case "-":
      return { value: new Error(line), end: next };
    case ":":
      return { value: Number(line), end: next };
    case "$": {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString("utf8", next, next + n), end: next + n + 2 };
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const out = [];
      let end = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, end);
        if (!r) return null;
        out.push(r.value);
        end = r.end;
      }
      return { value: out, end };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(kind)}`);
  }
}
