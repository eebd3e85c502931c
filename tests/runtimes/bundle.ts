// Bundles a runtime entry with esbuild the way a Workers or Vercel Edge build would: browser-ish
// platform, the `workerd`/`worker`/`edge-light`/`browser` export conditions, no Node built-ins.
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

export interface BundleOptions {
  /** `esm` for a module Worker, `iife` for a classic script (edge-runtime evaluates scripts). */
  format: "esm" | "iife";
  conditions: string[];
  /** Compile-time constants, e.g. `process.env.CRON_SECRET` for a VM without `process`. */
  define?: Record<string, string>;
}

const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** @returns The bundled JavaScript text. */
export async function bundle(entry: string, options: BundleOptions): Promise<string> {
  const result: esbuild.BuildResult & { outputFiles: esbuild.OutputFile[] } = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [fileURLToPath(new URL(entry, import.meta.url))],
    bundle: true,
    write: false,
    format: options.format,
    platform: "neutral",
    target: "es2022",
    mainFields: ["browser", "module", "main"],
    conditions: options.conditions,
    define: options.define ?? {},
    logLevel: "silent",
    // Anything that reaches for a Node built-in must fail the build, not be silently stubbed.
    external: [],
  });
  if (result.errors.length > 0) throw new Error(result.errors.map((e: esbuild.Message): string => e.text).join("\n"));
  return result.outputFiles[0]!.text;
}
