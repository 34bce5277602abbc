// build.mjs -- bundle web/src into web/dist (the directory the gateway serves with --web-root).
// usage: node build.mjs [--watch] [--outdir DIR]   (default DIR: web/dist)
import { build, context } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const at = args.indexOf("--outdir");
const out = at >= 0 && args[at + 1] ? resolve(args[at + 1]) : join(here, "dist");
const options = {
  entryPoints: { app: join(here, "src/app.js"), style: join(here, "src/style.css") },
  outdir: out,
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: true,
  sourcemap: true,
  legalComments: "linked", // lightweight-charts' Apache-2.0 notice goes to dist/*.LEGAL.txt
  logLevel: "info",
};

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await copyFile(join(here, "src/index.html"), join(out, "index.html"));
if (args.includes("--watch")) {
  const ctx = await context(options);
  await ctx.watch();
} else {
  await build(options);
}
