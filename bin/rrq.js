#!/usr/bin/env node
// The `rrq` command. Runs the compiled CLI (npm run build).
import "../dist/src/cli/main.js";
