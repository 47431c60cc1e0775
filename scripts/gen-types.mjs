#!/usr/bin/env node
// Generates the TypeScript wire types from schemas/v2 (the single source of truth).
// `--check` regenerates in memory and exits 1 when the committed file differs (run by `npm test`).
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { compile } from "json-schema-to-typescript";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const schemaDir = join(root, "schemas", "v2");
const outFile = join(root, "runners", "node", "src", "protocol", "generated", "wire.ts");

const BANNER = `/* eslint-disable */
/**
 * GENERATED FILE, DO NOT EDIT. Source: schemas/v2/*.schema.json.
 * Regenerate with \`npm run gen\`; \`npm test\` fails when this file drifts from the schemas.
 */`;

const options = {
  bannerComment: "",
  cwd: schemaDir,
  declareExternallyReferenced: true,
  additionalProperties: false, // schemas stay open for readers; generated types list known fields
  strictIndexSignatures: true,
  format: false,
  unknownAny: true,
};

async function generate() {
  // Compiling the envelope declares every payload type it references, once each.
  const envelope = JSON.parse(readFileSync(join(schemaDir, "envelope.schema.json"), "utf8"));
  const text = [BANNER, await compile(envelope, "Frame", options)].join("\n");
  const prettier = await import("prettier");
  const config = (await prettier.resolveConfig(outFile)) ?? {};
  return prettier.format(text, { ...config, parser: "typescript" });
}

const text = await generate();
if (process.argv.includes("--check")) {
  const current = existsSync(outFile) ? readFileSync(outFile, "utf8") : "";
  if (current !== text) {
    console.error(
      "runners/node/src/protocol/generated/wire.ts is out of date with schemas/ (run `npm run gen`)",
    );
    process.exit(1);
  }
  console.log("generated wire types: up to date");
} else {
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, text);
  console.log(`wrote ${outFile}`);
}
