#!/usr/bin/env node
// Part of `npm run build`: copies the dashboard's static files (index.html, style.css) next to
// the browser code tsc wrote to dist/src/dashboard/ui/ (src/dashboard/ui/tsconfig.json), so the
// package's dist/src ships the whole UI.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "src", "dashboard", "ui");
const target = join(root, "dist", "src", "dashboard", "ui");
mkdirSync(target, { recursive: true });
for (const file of ["index.html", "style.css"])
  copyFileSync(join(source, file), join(target, file));
