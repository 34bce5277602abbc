// browser.test.mjs -- chartgate's web page in a real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core), against a real gateway and a private redis-server.
//
// Starts: redis-server (free port, no persistence), the gateway (--dev-login --record-bars
// --service alerts), the alerts service (scripts/services/alerts), the indicators service
// (scripts/services/indicators: chart overlays), an in-test publisher (RESP
// over node:net). Then, as a person would: logs in through /dev/login,
// checks the first visit opens a chart full of candles and a watchlist whose change is from the
// previous day's close (seeded 1d bars), opens two instruments, checks candles are drawn and
// prices move, switches interval, scrolls
// back to load history, drops the socket and restarts the gateway (the page must resume), checks
// overlays (the indicator lines and markers drawn, a user's level, legend toggles, removal, interval
// switches), notifications, price alerts (set from the chart, fired in every tab, refused, cancelled),
// persistence, themes and phone size, and the logged-out state.
// Screenshots go to test-artifacts/browser/. Last line: "browser: N passed, N failed".
//
// usage: node browser.test.mjs [--gateway PATH] [--artifacts DIR]
// env: CHARTGATE_BIN (= --gateway; default build/gateway/chartgate), BROWSER_ARTIFACTS (= --artifacts;
// default test-artifacts/browser), CHARTGATE_WEB_ROOT (default: build web/ into a temporary
// directory), CHROMIUM (default /usr/bin/chromium), BROWSER_TEST_TIMEOUT_S (240).

import { spawn, execFileSync } from "node:child_process";
import {
  createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync,
} from "node:fs";
import net from "node:net";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Redis } from "./lib/redis.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
function option(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const ARTIFACTS = resolve(option("--artifacts") || process.env.BROWSER_ARTIFACTS || join(ROOT, "test-artifacts", "browser"));
const BIN = resolve(option("--gateway") || process.env.CHARTGATE_BIN || join(ROOT, "build", "gateway", "chartgate"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TOTAL_S = Number(process.env.BROWSER_TEST_TIMEOUT_S || 240);
const A = "tst.alpha"; // seeded with recorded 1m bars: history has something to page through
const B = "tst.beta";
const OTHERS = ["tst.gamma", "tst.delta"];
const SEEDED_BARS = 800;
const DAY = 86400000;
const PREV_CLOSE = 3600; // A's close yesterday (UTC day): the watchlist's reference for A
const MAX_ALERTS = 2; // the alerts service's cap per user here, so that a refusal is easy to get

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1)}s]`, ...a);
const T0 = Date.now();

// --- processes: every one stopped by PID -----------------------------------------------------

const procs = new Set();
const tmp = mkdtempSync(join(os.tmpdir(), "chartgate-browser-"));

function start(name, cmd, args, logFile) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  const out = createWriteStream(logFile, { flags: "a" });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  child.name = name;
  child.exited = new Promise((r) => child.once("exit", (code, sig) => r({ code, sig })));
  child.exited.then(() => procs.delete(child));
  procs.add(child);
  log(`started ${name} pid ${child.pid}`);
  return child;
}

async function stop(child, signal = "SIGTERM", graceMs = 6000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const done = await Promise.race([child.exited, sleep(graceMs).then(() => null)]);
  if (!done) {
    log(`${child.name} (pid ${child.pid}) ignored ${signal}; SIGKILL`);
    child.kill("SIGKILL");
    await child.exited;
  }
}

let cleaning = null;
function cleanup() {
  cleaning ??= (async () => {
    clearInterval(publisher);
    try {
      await context?.close();
    } catch {
      // the browser may be gone already
    }
    for (const p of [...procs].reverse()) await stop(p);
    rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

const watchdog = setTimeout(async () => {
  console.log(`browser: FAIL: the whole test took longer than ${TOTAL_S}s`);
  await cleanup();
  console.log(`browser: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, TOTAL_S * 1000);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    await cleanup();
    process.exit(130);
  });
}

function freePort() {
  return new Promise((resolve_, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve_(port));
    });
  });
}

async function waitFor(what, fn, timeoutMs = 10000, everyMs = 100) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      if (e && e.fatal) throw e;
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
      (last instanceof Error ? ` (${last.message})` : ""));
    await sleep(everyMs);
  }
}

async function httpGet(port, path, headers = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers, redirect: "manual" });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

// --- the system under test ---------------------------------------------------------------------

let redis;
let redisPort;
let gwPort;
let gateway;
let alertsSvc;
let indicatorsSvc;
let webRoot;
let gwRuns = 0;

async function startRedis() {
  redisPort = await freePort();
  // The private redis-server's command line is written once, in scripts/lib/localstack.py.
  const argv = execFileSync("/usr/bin/python3", [join(ROOT, "scripts", "lib", "localstack.py"),
    "redis-argv", String(redisPort), tmp, join(ARTIFACTS, "redis.log")]).toString().split("\0");
  start("redis-server", argv[0], argv.slice(1), join(ARTIFACTS, "redis.log"));
  redis = await waitFor("redis-server", async () => {
    const r = await Redis.connect(redisPort);
    await r.call("PING");
    return r;
  }, 10000);
}

async function startGateway() {
  gwRuns++;
  gateway = start(`chartgate#${gwRuns}`, BIN, ["--listen", `127.0.0.1:${gwPort}`,
    "--redis", `redis://127.0.0.1:${redisPort}`, "--web-root", webRoot, "--dev-login", "--record-bars",
    "--session-check-s", "1", "--session-cache-ms", "0", "--service", "alerts", "--service-events", "alerts"],
  join(ARTIFACTS, "gateway.log"));
  const child = gateway;
  await waitFor("the gateway's /healthz", async () => {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = readFileSync(join(ARTIFACTS, "gateway.log"), "utf8").trim().split("\n").slice(-3).join("\n    ");
      throw Object.assign(new Error(`the gateway exited (${child.exitCode ?? child.signalCode}):\n    ${tail}`), { fatal: true });
    }
    return (await httpGet(gwPort, "/healthz")).status === 200;
  }, 10000);
}

async function startAlerts() {
  const logFile = join(ARTIFACTS, "alerts.log");
  alertsSvc = start("alerts", "/usr/bin/python3", [join(ROOT, "scripts", "services", "alerts"),
    "--redis", `redis://127.0.0.1:${redisPort}`, "--max-alerts", String(MAX_ALERTS), "--consumer-id", "browser-test"],
    logFile);
  const child = alertsSvc;
  await waitFor("the alerts service", async () => {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw Object.assign(new Error(`the alerts service exited (${child.exitCode ?? child.signalCode})`), { fatal: true });
    }
    return existsSync(logFile) && readFileSync(logFile, "utf8").includes("alerts loaded");
  }, 10000);
}

async function startIndicators() {
  const logFile = join(ARTIFACTS, "indicators.log");
  indicatorsSvc = start("indicators", "/usr/bin/python3", [join(ROOT, "scripts", "services", "indicators"),
    "--redis", `redis://127.0.0.1:${redisPort}`, "--intervals", "1m", "--update-ms", "500"], logFile);
  const child = indicatorsSvc;
  await waitFor("the indicators service", async () => {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw Object.assign(new Error(`the indicators service exited (${child.exitCode ?? child.signalCode})`), { fatal: true });
    }
    return existsSync(logFile) && readFileSync(logFile, "utf8").includes("msg=started");
  }, 10000);
}

function buildWeb() {
  if (process.env.CHARTGATE_WEB_ROOT) return resolve(process.env.CHARTGATE_WEB_ROOT);
  const out = join(tmp, "web");
  execFileSync(process.execPath, [join(ROOT, "web", "build.mjs"), "--outdir", out], { stdio: "pipe" });
  return out;
}

// Older 1m bars of A, as a recording gateway would have written them (bars:<instr>:<interval>).
const MIN = 60000;
let seededOldest = 0;
async function seedBars(name, price) {
  const end = Math.floor(Date.now() / MIN) * MIN - 2 * MIN; // leave the last minutes to live ticks
  const args = [];
  let p = price;
  for (let i = 0; i < SEEDED_BARS; i++) {
    const t = end - i * MIN;
    const c = p;
    const o = Math.round(c * (1 + (Math.random() - 0.5) * 0.004) * 100) / 100;
    const h = Math.round(Math.max(o, c) * (1 + Math.random() * 0.002) * 100) / 100;
    const l = Math.round(Math.min(o, c) * (1 - Math.random() * 0.002) * 100) / 100;
    args.push(t, JSON.stringify([t, o, h, l, c, 10 + Math.floor(Math.random() * 200)]));
    p = o;
    seededOldest = t;
  }
  await redis.call("ZADD", `bars:${name}:1m`, ...args);
}

// Daily bars of A: two days ago, yesterday (close PREV_CLOSE) and a partial one for today, as a
// backend might import it -- the page must take yesterday's close, not today's.
async function seedDailyBars(name) {
  const today = Date.now() - (Date.now() % DAY);
  const bars = [[today - 2 * DAY, 3520, 3590, 3510, 3560, 90000],
    [today - DAY, 3560, 3640, 3550, PREV_CLOSE, 120000], [today, 3600, 3990, 3590, 3980, 5000]];
  await redis.call("ZADD", `bars:${name}:1d`, ...bars.flatMap((b) => [b[0], JSON.stringify(b)]));
}

// Ticks for every test instrument, 10 per second each, as a CTP-like feed would publish them.
const prices = { [A]: 3850, [B]: 612.5, [OTHERS[0]]: 75120, [OTHERS[1]]: 7.25 };
let publisher = 0;
let published = 0;
function startPublisher() {
  let busy = false;
  publisher = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      for (const name of Object.keys(prices)) {
        prices[name] = Math.round(prices[name] * (1 + (Math.random() - 0.5) * 0.002) * 10000) / 10000;
        const tick = { last_price: prices[name], volume: 1 + Math.floor(Math.random() * 30), ts: Date.now() };
        await redis.call("PUBLISH", `md:${name}`, JSON.stringify(tick));
        published++;
      }
    } catch (e) {
      log("publisher:", e.message);
    } finally {
      busy = false;
    }
  }, 100);
}

// --- steps ---------------------------------------------------------------------------------------

let passed = 0;
let failed = 0;
let blocked = null; // a failed step that later steps need
let context;
let page;
const pageErrors = [];
const wsLog = []; // {dir: "out"|"in", t, frame}
let sockets = 0; // WebSockets the page opened (or tried to)

async function step(name, fn, { timeoutMs = 30000, needed = false } = {}) {
  if (blocked) {
    failed++;
    console.log(`not ok - ${name} (not run: "${blocked}" failed)`);
    return;
  }
  const t = Date.now();
  try {
    await Promise.race([fn(), sleep(timeoutMs).then(() => {
      throw new Error(`step timed out after ${timeoutMs} ms`);
    })]);
    passed++;
    console.log(`ok - ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join("\n    ") : e}`);
    if (page) await shot(`FAIL-${name.replace(/[^a-z0-9]+/gi, "-")}`).catch(() => {});
    if (needed) blocked = name;
  }
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function shot(name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

const panelSel = (i) => `#charts section[data-index="${i}"]`;
const connText = () => page.locator("#conn-text").textContent();
const wlPrice = (name) => page.locator(`#watchlist-body tr[data-instrument="${name}"] td.last`).textContent();
const wlRow = (name) => page.locator(`#watchlist-body tr[data-instrument="${name}"]`);
const num = (text) => Number(String(text).replace(/[,+%\s]/g, ""));
const panelAttr = (i, attr) => page.locator(panelSel(i)).getAttribute(`data-${attr}`);

async function waitConn(text, timeoutMs = 15000) {
  await waitFor(`connection state "${text}"`, async () => (await connText()).startsWith(text), timeoutMs);
}

async function pickInPanel(i, name, shotName) {
  await page.locator(`${panelSel(i)} .sym`).click();
  await page.locator("#search").fill(name.slice(0, 5));
  const hit = page.locator(`#results li[data-instrument="${name}"]`);
  await hit.waitFor({ state: "visible", timeout: 5000 });
  if (shotName) await shot(shotName);
  await hit.click();
  await waitFor(`chart ${i} showing ${name}`, async () => (await panelAttr(i, "instrument")) === name);
}

/** How many strongly coloured (candle-coloured) pixels the chart's canvases hold. */
function colouredPixels(i) {
  return page.evaluate((sel) => {
    let n = 0;
    for (const c of document.querySelectorAll(`${sel} canvas`)) {
      if (!c.width || !c.height) continue;
      const ctx = c.getContext("2d");
      if (!ctx) continue;
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let p = 0; p < d.length; p += 4) {
        const max = Math.max(d[p], d[p + 1], d[p + 2]);
        const min = Math.min(d[p], d[p + 1], d[p + 2]);
        if (d[p + 3] > 200 && max - min > 80) n++;
      }
    }
    return n;
  }, panelSel(i));
}

async function barsOf(i) {
  return Number((await panelAttr(i, "bars")) || 0);
}

async function newContext(extra = {}) {
  const profile = join(tmp, `profile-${Date.now()}`);
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 800 },
    colorScheme: "dark",
    timeout: 30000,
    ...extra,
  });
}

function watchPage(p) {
  p.on("pageerror", (e) => pageErrors.push(e.message));
  p.on("console", (m) => {
    // The browser itself logs refused handshakes and 401s of the logged-out checks: expected.
    const expected = /WebSocket connection to .* failed|Failed to load resource/;
    if (m.type() === "error" && !expected.test(m.text())) pageErrors.push(`console: ${m.text()}`);
  });
  p.on("websocket", (ws) => {
    const sock = ++sockets;
    ws.on("framesent", (f) => wsLog.push({ sock, dir: "out", t: Date.now(), frame: safeParse(f.payload) }));
    ws.on("framereceived", (f) => {
      for (const line of String(f.payload).split("\n")) wsLog.push({ sock, dir: "in", t: Date.now(), frame: safeParse(line) });
    });
  });
}

function safeParse(s) {
  try {
    return JSON.parse(s);
  } catch {
    return { unparsable: String(s).slice(0, 200) };
  }
}

// --- main ----------------------------------------------------------------------------------------

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const f of readdirSync(ARTIFACTS)) if (/\.(png|log|jsonl)$/.test(f)) unlinkSync(join(ARTIFACTS, f));
  check(existsSync(BIN), `no gateway binary at ${BIN} (build it, or set CHARTGATE_BIN)`);
  check(existsSync(CHROMIUM), `no ${CHROMIUM}: apt-get install chromium`);

  await step("start redis, gateway and publisher", async () => {
    webRoot = buildWeb();
    await startRedis();
    gwPort = await freePort();
    await redis.call("SADD", "md:instruments", A, B, ...OTHERS);
    await seedBars(A, prices[A]);
    await seedDailyBars(A);
    await startAlerts();
    await startGateway();
    await startIndicators();
    startPublisher();
  }, { needed: true });

  await step("the page is served at /", async () => {
    const r = await httpGet(gwPort, "/");
    check(r.status === 200, `GET / -> ${r.status}`);
    check(/<script type="module" src="app\.js">/.test(r.body), "GET / is not the chart page");
    const js = await httpGet(gwPort, "/app.js");
    check(js.status === 200 && /javascript/.test(js.headers.get("content-type") || ""), `GET /app.js -> ${js.status} ${js.headers.get("content-type")}`);
  }, { needed: true });

  context = await newContext();
  page = context.pages()[0] || (await context.newPage());
  watchPage(page);

  await step("without a session the page says logged out", async () => {
    await page.goto(`http://127.0.0.1:${gwPort}/`);
    await waitConn("Logged out");
    const link = page.locator('#conn-action a[href^="/dev/login"]');
    check(await link.isVisible(), "no dev login link while logged out");
    check(await page.locator("#gate").isVisible(), "no logged-out notice over the charts");
    await shot("01-logged-out");
  });

  await step("dev login sets the cookie and the page goes live", async () => {
    await page.goto(`http://127.0.0.1:${gwPort}/dev/login?user=tester`);
    check(new URL(page.url()).pathname === "/", `after /dev/login the page is at ${page.url()}`);
    const cookie = (await context.cookies()).find((c) => c.name === "sessionid");
    check(cookie, "no sessionid cookie after /dev/login");
    check(cookie.httpOnly, "the sessionid cookie is not HttpOnly");
    check(/^[A-Za-z0-9_-]{16,128}$/.test(cookie.value), `unexpected session id ${cookie.value}`);
    await waitConn("Live");
    check(!(await page.locator("#gate").isVisible()), "the logged-out notice is still shown");
  }, { needed: true });

  await step("first visit: a chart full of candles, change from the previous day's close", async () => {
    // A fresh page opens the first instrument of the catalog (A, with recorded bars) and fills
    // the watchlist with the catalog.
    await waitFor("chart 0 opened on A", async () => (await panelAttr(0, "instrument")) === A, 10000);
    await waitFor("many candles in chart 0", async () => (await barsOf(0)) > 50, 10000);
    await waitFor("candles drawn in chart 0", async () => (await colouredPixels(0)) > 100, 10000);
    const ask = await waitFor("a history request for A's daily bars", async () => wsLog.find((e) => e.dir === "out" &&
      e.frame.action === "history" && e.frame.instrument === A && e.frame.interval === "1d"));
    check(ask.frame.limit === 2, `reference request: ${JSON.stringify(ask.frame)}`);
    // A: measured from yesterday's close, not from today's bar nor the first price seen.
    await waitFor("A's change from the previous close", async () =>
      (await wlRow(A).getAttribute("data-ref")) === "close" && (await wlRow(A).locator("td").nth(2).textContent()) !== "", 10000);
    const [last, chg, pct] = await page.evaluate((a) => {
      const tds = document.querySelectorAll(`#watchlist-body tr[data-instrument="${a}"] td`);
      return [tds[1].textContent, tds[2].textContent, tds[3].textContent];
    }, A);
    check(num(chg) !== 0, `A's change reads ${chg}`);
    check(Math.abs(num(last) - num(chg) - PREV_CLOSE) < 0.02, `A: last ${last}, change ${chg}; expected from ${PREV_CLOSE}`);
    const wantPct = ((num(last) - PREV_CLOSE) / PREV_CLOSE) * 100;
    check(Math.abs(num(pct) - wantPct) < 0.02, `A: change ${pct}, expected about ${wantPct.toFixed(2)}%`);
    const head = await page.locator(`${panelSel(0)} .chg`).textContent();
    check(/^\+[0-9,.]+ \(\+[0-9.]+%\)$/.test(head) && num(head.split(" ")[0]) > 0, `chart 0's header change reads "${head}"`);
    // B has no daily bars: it falls back to the first price the page saw, marked as such.
    await waitFor("B's fallback reference", async () => (await wlRow(B).getAttribute("data-ref")) === "seen", 10000);
    check(/^[+-]?[0-9,]+\.[0-9]+%$/.test((await wlRow(B).locator("td").nth(3).textContent()).trim()), "B shows no change %");
    await shot("01b-first-visit");
  });

  await step("the page's socket negotiated permessage-deflate and gets compressed messages", async () => {
    // Chromium offers permessage-deflate on its own; the gateway accepts it (--deflate on by
    // default) and compresses batches of at least 256 bytes, such as the snapshot just shown.
    const value = (text, name) => {
      const m = text.match(new RegExp(`^${name} ([0-9.e+]+)$`, "m"));
      return m ? Number(m[1]) : NaN;
    };
    const r = await httpGet(gwPort, "/metrics");
    check(r.status === 200, `GET /metrics -> ${r.status}`);
    const sockets = value(r.body, "chartgate_deflate_sockets");
    const conns = value(r.body, "chartgate_connections");
    check(sockets >= 1 && sockets === conns, `${sockets} sockets with permessage-deflate of ${conns} open`);
    const compressed = value(r.body, "chartgate_deflate_messages_out_total");
    check(compressed > 0, `${compressed} compressed messages sent to the page`);
  });

  await step("open two instruments side by side", async () => {
    await page.locator('#layouts button[data-layout="2"]').click();
    await page.locator(panelSel(1)).waitFor();
    await pickInPanel(0, A);
    await pickInPanel(1, B, "02-picker");
    for (const name of [A, B]) {
      await page.locator(`#watchlist-body tr[data-instrument="${name}"]`).waitFor({ timeout: 5000 });
    }
  }, { needed: true });

  await step("candles are drawn from the snapshot and live bars", async () => {
    for (const i of [0, 1]) {
      await waitFor(`bars in chart ${i}`, async () => (await barsOf(i)) > 0, 10000);
      await waitFor(`candles drawn in chart ${i}`, async () => (await colouredPixels(i)) > 100, 10000);
    }
    const n = await barsOf(0);
    check(n >= 250, `chart 0 got ${n} bars; the snapshot should have been filled from the recorded bars`);
    const snap = wsLog.find((e) => e.dir === "in" && e.frame.type === "snapshot" && e.frame.instrument === A);
    check(snap, "no snapshot frame for A");
    await shot("02-two-charts-dark");
  });

  await step("last price changes in the watchlist and the chart header", async () => {
    const first = await wlPrice(A);
    const head = await page.locator(`${panelSel(0)} .price`).textContent();
    await waitFor("A's watchlist price to change", async () => (await wlPrice(A)) !== first, 5000);
    await waitFor("A's header price to change", async () =>
      (await page.locator(`${panelSel(0)} .price`).textContent()) !== head, 5000);
    check(/^[0-9,]+\.[0-9]+$/.test((await wlPrice(B)).trim()), `B's price reads ${await wlPrice(B)}`);
  });

  await step("switch chart 1 to 1s bars", async () => {
    await page.locator(`${panelSel(1)} .intervals button[data-iv="1s"]`).click();
    await waitFor("chart 1 at 1s", async () => (await panelAttr(1, "interval")) === "1s");
    const sub = await waitFor("a subscribe asking for 1s", async () => wsLog.find((e) => e.dir === "out" &&
      e.frame.action === "subscribe" && e.frame.instruments?.includes(B) && e.frame.intervals?.includes("1s")));
    check(!sub.frame.intervals.includes("1m"), `the 1m interval is still asked for: ${JSON.stringify(sub.frame)}`);
    await waitFor("1s bars in chart 1", async () => (await barsOf(1)) >= 1, 5000);
    const t0 = Number(await panelAttr(1, "last-t"));
    await waitFor("a new 1s bar", async () => Number(await panelAttr(1, "last-t")) > t0, 5000);
    await waitFor("1s candles drawn", async () => (await colouredPixels(1)) > 20, 5000);
    await shot("03-interval-1s");
  });

  await step("a late tick corrects a completed bar", async () => {
    const t = Math.floor(Date.now() / 1000) * 1000 - 3000; // a 1s bar that has closed
    const spike = Math.round(prices[B] * 1.03 * 100) / 100;
    await waitFor("chart 1 to hold that bar", async () => page.evaluate((t) =>
      window.chartgate.panels[1].data.some((b) => b[0] === t), t), 3000);
    const mark = wsLog.length;
    await redis.call("PUBLISH", `md:${B}`, JSON.stringify({ last_price: spike, volume: 1, ts: t + 500 }));
    const fix = await waitFor("a final bar frame correcting it", async () => wsLog.slice(mark).find((e) => e.dir === "in" &&
      e.frame.type === "bar" && e.frame.instrument === B && e.frame.interval === "1s" && e.frame.bar.t === t), 3000);
    check(fix.frame.final === true && fix.frame.bar.h === spike, `correction frame: ${JSON.stringify(fix.frame)}`);
    await waitFor("the chart to show the corrected high", async () => page.evaluate(([t, spike]) =>
      window.chartgate.panels[1].data.some((b) => b[0] === t && b[2] === spike), [t, spike]), 3000);
    const lastT = Number(await panelAttr(1, "last-t"));
    check(lastT > t, "the corrected bar became the last one");
  });

  await step("scrolling left loads older bars with history", async () => {
    const before = await barsOf(0);
    const box = await page.locator(`${panelSel(0)} .chart-host`).boundingBox();
    const y = box.y + box.height * 0.45;
    const mark = wsLog.length;
    const historyOfA = () => wsLog.slice(mark).find((e) => e.dir === "in" && e.frame.type === "history" && e.frame.instrument === A);
    await waitFor("a history reply for A", async () => {
      await page.mouse.move(box.x + box.width * 0.15, y);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width * 0.8, y, { steps: 8 });
      await page.mouse.up();
      return historyOfA();
    }, 15000, 50);
    const req = wsLog.slice(mark).find((e) => e.dir === "out" && e.frame.action === "history" && e.frame.instrument === A);
    check(req && req.frame.interval === "1m", `history request: ${JSON.stringify(req?.frame)}`);
    check(Number.isInteger(req.frame.before) && req.frame.limit === 500, `history request: ${JSON.stringify(req.frame)}`);
    const got = historyOfA().frame.bars.length;
    check(got > 0, "the history reply is empty");
    await waitFor("the older bars in chart 0", async () => (await barsOf(0)) >= before + got, 3000);
    // Keep scrolling: every seeded bar comes back, then the page stops asking.
    await waitFor("all seeded bars", async () => {
      await page.mouse.move(box.x + box.width * 0.15, y);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width * 0.9, y, { steps: 8 });
      await page.mouse.up();
      return Number(await page.evaluate(() => window.chartgate.panels[0].data[0][0])) <= seededOldest;
    }, 15000, 50);
    const n = await barsOf(0);
    check(n >= SEEDED_BARS, `chart 0 holds ${n} bars, expected at least ${SEEDED_BARS}`);
    await shot("04-history");
  });

  // Overlays (PROTOCOL.md §17): the indicators service's lines and crossovers, and operations a
  // backend publishes here through the chartgate_overlay function.
  const overlay = (op) => redis.call("FCALL", "chartgate_overlay", "1", `overlays:{${A}}`, A, JSON.stringify(op));
  const ovButton = (key) => page.locator(`${panelSel(0)} .ov-legend .ov[data-overlay="${key}"]`);
  const ovVisible = (key) => page.evaluate((k) => {
    const d = window.chartgate.panels[0].ovDrawn.get(k);
    return d && d.series ? d.series.options().visible : null;
  }, key);
  const LINE_KEYS = ["ma20.1m", "ma60.1m", "bb_upper.1m", "bb_lower.1m", "vwap.1m"];

  await step("overlays: the indicators service's lines are drawn, with a legend", async () => {
    const sub = wsLog.find((e) => e.dir === "out" && e.frame.action === "subscribe" && e.frame.instruments?.includes(A) &&
      e.frame.overlays === true);
    check(sub, "no subscribe with overlays:true for A");
    await waitFor("the indicator lines on chart 0", async () => Number(await panelAttr(0, "overlay-series")) >= 5, 20000);
    const keys = await page.locator(`${panelSel(0)} .ov-legend .ov`).evaluateAll((bs) => bs.map((b) => b.dataset.overlay));
    for (const k of LINE_KEYS) check(keys.includes(k), `no legend entry for ${k}: ${keys}`);
    const points = await page.evaluate((ks) => ks.map((k) => window.chartgate.panels[0].ovDrawn.get(k)?.series?.data().length ?? 0),
      LINE_KEYS);
    check(points.every((n) => n > 0), `line series without points: ${LINE_KEYS.map((k, i) => `${k}=${points[i]}`)}`);
    // They move with the market: the forming bar's MA20 point follows the ticks.
    const last = () => page.evaluate(() => {
      const d = window.chartgate.panels[0].ovDrawn.get("ma20.1m").series.data();
      return JSON.stringify(d[d.length - 1]);
    });
    const before = await last();
    await waitFor("MA20's last point to move", async () => (await last()) !== before, 10000);
    await page.evaluate(() => window.chartgate.panels[0].chart.timeScale().scrollToRealTime());
    await sleep(300);
    await shot("04b-overlays");
  });

  await step("overlays: a backend's markers and this user's level; another user's stays away", async () => {
    const T = Number(await panelAttr(0, "last-t"));
    await overlay({ op: "set", overlay: "fills", kind: "markers", interval: "1m", style: { color: "#26a69a", title: "fills" },
      points: [{ t: T - 5 * MIN, position: "below", shape: "arrowUp", text: "bought" },
        { t: T - 2 * MIN, position: "above", shape: "arrowDown", color: "#ef5350", text: "sold" }] });
    await overlay({ op: "set", overlay: "entry", kind: "level", price: prices[A], color: "#f5a623", title: "my entry", user: "tester" });
    await overlay({ op: "set", overlay: "entry", kind: "level", price: prices[A] * 0.9, title: "not mine", user: "someone" });
    await waitFor("the markers and one level on chart 0", async () => Number(await panelAttr(0, "overlay-markers")) >= 2 &&
      Number(await panelAttr(0, "overlay-levels")) === 1, 5000);
    const markers = await page.evaluate(() => window.chartgate.panels[0].ovMarkers.markers().map((m) => m.text));
    check(markers.includes("bought") && markers.includes("sold"), `markers on the candles: ${markers}`);
    check(await ovButton("entry|tester").count() === 1, "no legend entry for the user's level");
    check(await ovButton("entry|someone").count() === 0, "another user's level reached this page");
    check(!wsLog.some((e) => e.dir === "in" && e.frame.type === "overlay" && e.frame.op.user === "someone"),
      "another user's overlay frame reached this page");
    await shot("04c-overlays-markers-level");
  });

  await step("overlays: the legend toggles one, remove takes them off the chart", async () => {
    await ovButton("ma20.1m").click();
    await waitFor("MA20 hidden", async () => (await ovVisible("ma20.1m")) === false &&
      (await ovButton("ma20.1m").getAttribute("aria-pressed")) === "false", 3000);
    check((await ovVisible("ma60.1m")) === true, "hiding MA20 hid MA60 too");
    await ovButton("ma20.1m").click();
    await waitFor("MA20 shown again", async () => (await ovVisible("ma20.1m")) === true, 3000);
    await ovButton("fills").click();
    await waitFor("the markers hidden", async () => (await page.evaluate(() =>
      window.chartgate.panels[0].ovMarkers.markers().filter((m) => m.text === "bought").length)) === 0, 3000);
    await ovButton("fills").click();
    await overlay({ op: "remove", overlay: "fills" });
    await overlay({ op: "remove", overlay: "entry", user: "tester" });
    await waitFor("markers and level removed", async () => Number(await panelAttr(0, "overlay-levels")) === 0 &&
      (await ovButton("fills").count()) === 0 && (await ovButton("entry|tester").count()) === 0, 5000);
    const left = await page.evaluate(() => window.chartgate.panels[0].ovMarkers.markers().map((m) => m.text));
    check(!left.includes("bought") && !left.includes("sold"), `removed markers still drawn: ${left}`);
  });

  await step("a dropped socket resumes with since (recovered)", async () => {
    const mark = wsLog.length;
    await page.evaluate(() => window.chartgate.conn.ws.close(4000, "test"));
    await waitConn("Live", 10000);
    const sub = await waitFor("a resubscribe with since", async () => wsLog.slice(mark).find((e) => e.dir === "out" &&
      e.frame.action === "subscribe" && e.frame.since && e.frame.since[A] !== undefined));
    check(sub.frame.intervals.includes("1m"), `resubscribe without 1m: ${JSON.stringify(sub.frame)}`);
    const rep = await waitFor("subscribed with recovered", async () => wsLog.slice(mark).find((e) => e.dir === "in" &&
      e.frame.type === "subscribed" && e.frame.id === sub.frame.id));
    check(rep.frame.recovered && rep.frame.recovered[A] === true, `not recovered: ${JSON.stringify(rep.frame)}`);
    // No gap: the replayed ticks continue right after the seq the page had seen.
    const S = sub.frame.since[A];
    const at = wsLog.indexOf(rep);
    const next = await waitFor("A's first tick after the resume", async () => wsLog.slice(at).find((e) => e.dir === "in" &&
      e.frame.type === "tick" && e.frame.instrument === A));
    check(next.frame.seq === S + 1, `first tick after resuming from seq ${S} has seq ${next.frame.seq}`);
    const bars = await barsOf(0);
    check(bars >= SEEDED_BARS, `chart 0 lost its history on resume (${bars} bars)`);
    const p = await wlPrice(A);
    await waitFor("prices moving after resume", async () => (await wlPrice(A)) !== p, 5000);
  });

  await step("the gateway is killed and restarted: the page reconnects and resumes", async () => {
    const mark = wsLog.length;
    await stop(gateway, "SIGKILL");
    await waitConn("Reconnecting", 5000);
    await shot("05-reconnecting");
    await sleep(1500);
    await startGateway();
    await waitConn("Live", 20000);
    const sub = await waitFor("a resubscribe", async () => wsLog.slice(mark).find((e) => e.dir === "out" &&
      e.frame.action === "subscribe" && e.frame.instruments?.includes(A)));
    check(sub.frame.since && Number.isInteger(sub.frame.since[A]), `no since on resubscribe: ${JSON.stringify(sub.frame)}`);
    const rep = await waitFor("subscribed", async () => wsLog.slice(mark).find((e) => e.dir === "in" &&
      e.frame.type === "subscribed" && e.frame.id === sub.frame.id));
    check(rep.frame.recovered && rep.frame.recovered[A] === false, `a new process cannot recover: ${JSON.stringify(rep.frame)}`);
    await waitFor("a fresh snapshot of A", async () => wsLog.slice(mark).find((e) => e.dir === "in" &&
      e.frame.type === "snapshot" && e.frame.instrument === A));
    await waitFor("bars again in chart 0", async () => (await barsOf(0)) >= 250, 5000);
    const p = await wlPrice(A);
    await waitFor("prices moving after the restart", async () => (await wlPrice(A)) !== p, 5000);
    const t = Number(await panelAttr(1, "last-t"));
    await waitFor("new 1s bars after the restart", async () => Number(await panelAttr(1, "last-t")) > t, 5000);
    await waitFor("candles drawn after the restart", async () => (await colouredPixels(0)) > 100, 5000);
    await shot("06-reconnected");
  });

  await step("overlays after the gateway's restart, and across an interval switch", async () => {
    // The restarted process read them back from Redis: the snapshot carried them.
    await waitFor("the indicator lines after the restart", async () => Number(await panelAttr(0, "overlay-series")) >= 5, 10000);
    await page.locator(`${panelSel(0)} .intervals button[data-iv="5m"]`).click();
    await waitFor("chart 0 at 5m without the 1m overlays", async () => (await panelAttr(0, "interval")) === "5m" &&
      Number(await panelAttr(0, "overlay-series")) === 0, 5000);
    check(await page.locator(`${panelSel(0)} .ov-legend .ov`).count() === 0, "1m overlays in the legend at 5m");
    await page.locator(`${panelSel(0)} .intervals button[data-iv="1m"]`).click();
    await waitFor("the 1m overlays back", async () => (await panelAttr(0, "interval")) === "1m" &&
      Number(await panelAttr(0, "overlay-series")) >= 5, 10000);
    await waitFor("bars back in chart 0", async () => (await barsOf(0)) >= 250, 10000);
  });

  await step("user and broadcast messages appear as notifications", async () => {
    await redis.call("PUBLISH", "user:tester", JSON.stringify({ kind: "order_filled", text: "Bought 2 tst.alpha at 3851" }));
    await redis.call("PUBLISH", "broadcast", JSON.stringify("Market closes early today at 14:00"));
    await page.locator(".toast", { hasText: "Bought 2 tst.alpha" }).waitFor({ timeout: 5000 });
    await page.locator(".toast.broadcast", { hasText: "Market closes early" }).waitFor({ timeout: 5000 });
    await shot("07-notifications");
  });

  // Price alerts: the alerts service behind the gateway's "send" (PROTOCOL.md §16).
  const alertForm = (p = page) => p.locator(`${panelSel(0)} .alert-form`);
  const userAlerts = async () => Number(await redis.call("HLEN", "chartgate:alerts:user:tester"));
  async function setAlert(side, level) {
    const form = alertForm();
    if (!(await form.isVisible())) await page.locator(`${panelSel(0)} .bell`).click();
    await form.waitFor({ state: "visible", timeout: 3000 });
    await form.locator("input").fill(String(level));
    await form.locator("select").selectOption(side);
    await form.locator(".set").click();
  }

  await step("a price alert set on the chart fires as a notification in every tab", async () => {
    await waitFor("the alerts list", async () => (await page.evaluate(() => document.body.dataset.alerts)) === "ok", 10000);
    check(/No alerts/.test(await page.locator("#alerts-body .al-note").textContent()), "the empty alerts list says nothing");
    await page.locator(`${panelSel(0)} .bell`).click();
    const form = alertForm();
    await form.waitFor({ state: "visible", timeout: 3000 });
    check((await form.locator(".lbl").textContent()).startsWith(A), "the form does not name the chart's instrument");
    const pre = Number(await form.locator("input").inputValue());
    check(Math.abs(pre - prices[A]) / prices[A] < 0.02, `the price is not prefilled with the last price: ${pre}`);
    const level = Math.round(prices[A] * 1.05 * 100) / 100; // the publisher's walk never gets there
    await form.locator("input").fill(String(level));
    check((await form.locator("select").inputValue()) === "above", "a price over the last one is not taken as above");
    const mark = wsLog.length;
    await form.locator(".set").click();
    await waitFor("the form to close", async () => !(await form.isVisible()), 6000);
    const row = page.locator(`#alerts-body li[data-instrument="${A}"]`);
    await row.waitFor({ timeout: 3000 });
    const id = await row.getAttribute("data-alert");
    check((await row.getAttribute("data-side")) === "above", "the listed alert is not an above one");
    const out = wsLog.slice(mark).find((e) => e.dir === "out" && e.frame.action === "send");
    check(out && out.frame.service === "alerts" && out.frame.data.op === "set" && out.frame.data.instrument === A &&
      out.frame.data.above === level, `the page sent ${JSON.stringify(out?.frame)}`);
    const inFor = (type) => wsLog.slice(mark).find((e) => e.dir === "in" && e.frame.type === type && e.frame.id === out.frame.id);
    check(inFor("sent"), "no sent frame for the request");
    check(inFor("reply")?.frame.data.alert === id, `reply ${JSON.stringify(inFor("reply")?.frame)}, listed ${id}`);
    check((await panelAttr(0, "alerts")) === "1", "no alert line on the chart");
    check((await userAlerts()) === 1, "the alert is not stored by the service");

    const page2 = await context.newPage(); // a second tab of the same user
    page2.on("pageerror", (e) => pageErrors.push(`second tab: ${e.message}`));
    try {
      await page2.goto(`http://127.0.0.1:${gwPort}/`);
      await page2.locator(`#alerts-body li[data-alert="${id}"]`).waitFor({ timeout: 10000 });
      await shot("07b-alert-set");
      await redis.call("PUBLISH", `md:${A}`, JSON.stringify({ last_price: level + 0.5, volume: 1, ts: Date.now() }));
      for (const [p, tab] of [[page, "first"], [page2, "second"]]) {
        await p.locator(`.toast.alert[data-alert="${id}"]`, { hasText: `Alert: ${A}` }).waitFor({ timeout: 5000 });
        await waitFor(`the alert to leave the ${tab} tab's list`, async () =>
          (await p.locator(`#alerts-body li[data-alert="${id}"]`).count()) === 0, 5000);
      }
      await shot("07c-alert-fired");
    } finally {
      await page2.close();
    }
    check((await panelAttr(0, "alerts")) === "0", "the fired alert's line is still on the chart");
    check((await userAlerts()) === 0, "the fired alert is still stored");
  });

  await step("alerts: Alt-click picks a price, a refusal is shown, cancel works", async () => {
    const box = await page.locator(`${panelSel(0)} .chart-host`).boundingBox();
    await page.keyboard.down("Alt");
    await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.4);
    await page.keyboard.up("Alt");
    const form = alertForm();
    await form.waitFor({ state: "visible", timeout: 3000 });
    const picked = Number(await form.locator("input").inputValue());
    check(Number.isFinite(picked) && Math.abs(picked - prices[A]) / prices[A] < 0.2, `Alt-click picked ${picked}`);
    const up = Math.round(prices[A] * 1.05 * 100) / 100;
    const down = Math.round(prices[A] * 0.95 * 100) / 100;
    await setAlert("above", up);
    await page.locator("#alerts-body li").first().waitFor({ timeout: 6000 });
    await setAlert("below", down);
    await waitFor("two alerts listed", async () => (await page.locator("#alerts-body li").count()) === 2, 6000);
    check((await panelAttr(0, "alerts")) === "2", "two alerts, not two lines on the chart");
    // One more than the service allows (--max-alerts 2): its refusal shows in the form.
    await setAlert("above", up + 1);
    await form.locator(".err", { hasText: "too many alerts" }).waitFor({ timeout: 6000 });
    check(await form.isVisible(), "the form closed although the alert was refused");
    await shot("07d-alert-refused");
    await page.keyboard.press("Escape");
    check(!(await form.isVisible()), "Escape does not close the form");
    const mark = wsLog.length;
    for (let n = 2; n > 0; n--) {
      await page.locator("#alerts-body li .rm").first().click();
      await waitFor(`${n - 1} alerts listed`, async () => (await page.locator("#alerts-body li").count()) === n - 1, 6000);
    }
    const cancels = wsLog.slice(mark).filter((e) => e.dir === "out" && e.frame.action === "send" && e.frame.data?.op === "cancel");
    check(cancels.length === 2, `${cancels.length} cancel requests`);
    check((await userAlerts()) === 0, "cancelled alerts are still stored");
    check((await panelAttr(0, "alerts")) === "0", "alert lines left on the chart");
  });

  await step("layout and watchlist persist across a reload", async () => {
    await page.reload();
    await waitConn("Live");
    check((await page.locator("#charts").getAttribute("data-layout")) === "2", "layout not restored");
    check((await panelAttr(0, "instrument")) === A && (await panelAttr(1, "instrument")) === B, "charts not restored");
    check((await panelAttr(1, "interval")) === "1s", "interval not restored");
    for (const name of [A, B]) await page.locator(`#watchlist-body tr[data-instrument="${name}"]`).waitFor({ timeout: 2000 });
    await waitFor("bars after reload", async () => (await barsOf(0)) > 0 && (await barsOf(1)) > 0, 5000);
  });

  await step("four charts, light theme", async () => {
    const before = await barsOf(0);
    await page.locator('#layouts button[data-layout="4"]').click();
    await page.locator(panelSel(3)).waitFor();
    check((await barsOf(0)) >= before, `chart 0 lost bars when the layout changed (${before} -> ${await barsOf(0)})`);
    await pickInPanel(2, OTHERS[0]);
    await pickInPanel(3, OTHERS[1]);
    await page.locator("#theme").click();
    check((await page.evaluate(() => document.documentElement.dataset.theme)) === "light", "theme toggle did nothing");
    for (const i of [0, 1, 2, 3]) await waitFor(`bars in chart ${i}`, async () => (await barsOf(i)) > 0, 5000);
    await sleep(1500);
    await shot("08-four-charts-light");
    await page.locator('#layouts button[data-layout="1"]').click();
    await sleep(500);
    await shot("09-one-chart-light");
  });

  await step("phone-size viewport, both themes", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(800);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    check(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
    await shot("10-phone-light");
    await page.locator("#theme").click();
    await sleep(500);
    await shot("11-phone-dark");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step("a deleted session shows logged out and stops retrying", async () => {
    const cookie = (await context.cookies()).find((c) => c.name === "sessionid");
    await redis.call("DEL", `session:${cookie.value}`);
    await waitConn("Logged out", 15000);
    const n = sockets;
    await sleep(3000);
    check((await connText()).startsWith("Logged out"), "no longer logged out");
    check(sockets === n, `the page opened ${sockets - n} more WebSockets while logged out`);
    await shot("12-session-ended");
  });

  await step("the alerts service ran throughout and stops cleanly on SIGTERM", async () => {
    check(alertsSvc.exitCode === null && alertsSvc.signalCode === null, "the alerts service exited during the test");
    const exited = alertsSvc.exited;
    await stop(alertsSvc, "SIGTERM", 5000);
    const { code, sig } = await exited;
    check(code === 0, `the alerts service exited with ${code === null ? sig : "status " + code} (see alerts.log)`);
    check(!/level=error|Traceback/.test(readFileSync(join(ARTIFACTS, "alerts.log"), "utf8")), "errors in alerts.log");
  });

  await step("a trading calendar: exchange local time on the axis, sessions back to back", async () => {
    // A second gateway on the same Redis with the cn-futures calendar (PROTOCOL.md §18) and its
    // own bars prefix, holding the recorded day of test/integration/fixtures: 1h bars of the
    // night session (Monday 21:00, Shanghai) and the day sessions, and the Tuesday 1d bar.
    const want = JSON.parse(readFileSync(join(ROOT, "test", "integration", "fixtures",
      "rb2501-20241119.expected.json"), "utf8"));
    for (const iv of ["1h", "1d"]) {
      await redis.call("ZADD", `cal:rb2501:${iv}`, ...want[iv].flatMap((b) => [b[0], JSON.stringify(b)]));
    }
    await redis.call("SADD", "md:instruments", "rb2501");
    const port = await freePort();
    const logFile = join(ARTIFACTS, "gateway-calendar.log");
    const gw2 = start("chartgate-calendar", BIN, ["--listen", `127.0.0.1:${port}`,
      "--redis", `redis://127.0.0.1:${redisPort}`, "--web-root", webRoot, "--dev-login",
      "--bars-prefix", "cal:", "--sessions", join(ROOT, "scripts", "sessions", "cn-futures.json"),
      "--timezone", "Asia/Shanghai"], logFile);
    const saved = page;
    const ctx = await newContext({ timezoneId: "UTC" }); // the viewer's zone is not the exchange's
    try {
      await waitFor("the calendar gateway's /healthz", async () => (await httpGet(port, "/healthz")).status === 200);
      page = await ctx.newPage();
      watchPage(page);
      await page.goto(`http://127.0.0.1:${port}/dev/login?user=caltester`);
      await waitConn("Live");
      await pickInPanel(0, "rb2501");
      await page.locator(`${panelSel(0)} .intervals button[data-iv="1h"]`).click();
      await waitFor("the 1h bars of the recorded day", async () => (await panelAttr(0, "interval")) === "1h" &&
        (await barsOf(0)) === want["1h"].length && (await panelAttr(0, "tz")) === "Asia/Shanghai", 10000);
      const labels = await page.evaluate((ts) => {
        const p = window.chartgate.panels[0];
        const fmt = p.chart.options().timeScale.tickMarkFormatter;
        return { ticks: ts.map((t) => fmt(t / 1000, 3)), first: p.formatTime(ts[0] / 1000) };
      }, want["1h"].map((b) => b[0]));
      check(JSON.stringify(labels.ticks) === JSON.stringify(["21:00", "22:00", "09:00", "10:00", "10:30", "13:30",
        "14:30", "21:00"]), `1h axis labels not in Shanghai time: ${labels.ticks}`);
      check(labels.first === "2024-11-18 21:00", `crosshair time ${labels.first}`);
      await waitFor("candles drawn", async () => (await colouredPixels(0)) > 20, 5000);
      await shot("calendar-1h");
      await page.locator(`${panelSel(0)} .intervals button[data-iv="1d"]`).click();
      await waitFor("the 1d bars", async () => (await panelAttr(0, "interval")) === "1d" &&
        (await barsOf(0)) === want["1d"].length, 10000);
      const day = await page.evaluate((t) => window.chartgate.panels[0].formatTime(t / 1000), want["1d"][0][0]);
      check(day === "2024-11-19", `the Tuesday bar (Monday night + Tuesday) is dated ${day}`);
    } finally {
      page = saved;
      await ctx.close();
      await stop(gw2);
    }
    const { code } = await gw2.exited;
    check(code === 0, `the calendar gateway exited with ${code}`);
  });

  await step("the indicators service ran throughout and stops cleanly on SIGTERM", async () => {
    check(indicatorsSvc.exitCode === null && indicatorsSvc.signalCode === null, "the indicators service exited during the test");
    const exited = indicatorsSvc.exited;
    await stop(indicatorsSvc, "SIGTERM", 5000);
    const { code, sig } = await exited;
    check(code === 0, `the indicators service exited with ${code === null ? sig : "status " + code} (see indicators.log)`);
    check(!/level=error|Traceback/.test(readFileSync(join(ARTIFACTS, "indicators.log"), "utf8")), "errors in indicators.log");
  });

  await step("no script errors in the page", async () => {
    check(pageErrors.length === 0, `page errors:\n    ${pageErrors.slice(0, 10).join("\n    ")}`);
  });

  await step("the gateway ran throughout and stops cleanly on SIGTERM", async () => {
    check(gateway.exitCode === null && gateway.signalCode === null, "the gateway exited during the test");
    const exited = gateway.exited;
    await stop(gateway, "SIGTERM", 8000);
    const { code, sig } = await exited;
    check(code === 0, `the gateway exited with ${code === null ? sig : "status " + code} (see gateway.log)`);
  });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - test harness: ${e.stack || e}`);
}
try {
  // Every frame the page sent and received, for debugging a failure.
  writeFileSync(join(ARTIFACTS, "frames.jsonl"), wsLog.map((e) => JSON.stringify(e)).join("\n") + "\n");
} catch {
  // artifacts are best effort
}
await cleanup();
clearTimeout(watchdog);
log(`published ${published} ticks; artifacts in ${ARTIFACTS}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
