// Reads a marked block of commands out of a Markdown file, so a check can run the very commands a
// README tells users to run (and fails when the README and the check drift apart).
import { readFileSync } from "node:fs";

/**
 * The lines of the fenced code block between `<!-- <marker> … -->` (the comment may say more)
 * and `<!-- /<marker> -->` in `file`, without comment-only and blank lines, and with trailing `# comments` removed.
 * Throws, naming the file and marker, when the block is missing or empty.
 */
export function readmeCommands(file, marker) {
  const text = readFileSync(file, "utf8");
  const open = `<!-- ${marker}`;
  const close = `<!-- /${marker} -->`;
  const start = text.search(new RegExp(`${open}[\\s(]`));
  const end = text.indexOf(close, start);
  if (start < 0 || end < 0) throw new Error(`${file} has no block marked ${open} --> … ${close}`);
  const fence = /```[a-z]*\n([\s\S]*?)```/.exec(text.slice(text.indexOf("-->", start), end));
  const lines = (fence?.[1] ?? "")
    .split("\n")
    .map((line) => line.replace(/\s+#\s.*$/, "").trim())
    .filter((line) => line && !line.startsWith("#"));
  if (lines.length === 0) throw new Error(`the block marked ${open} in ${file} has no commands`);
  return lines;
}
