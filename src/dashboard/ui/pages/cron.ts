/** `#/cron`: the cron entries with their last and next fire times, and "trigger now". */
import { api } from "../api.js";
import { actionButton, card, formatTime, h, table } from "../dom.js";
import type { PageContext } from "../route.js";

/** `#/cron`. */
export async function cronPage(ctx: PageContext): Promise<Node> {
  const { entries } = await api.cron();
  const headers = ["Entry", "Function", "Schedule", "Queue", "Last fire", "Next fire"];
  if (!ctx.config.readOnly) headers.push("");
  return h(
    "div",
    { class: "page cron" },
    card(
      "Cron",
      table(
        headers,
        entries.map((entry) => [
          entry.id,
          entry.function,
          entry.error ? `${entry.schedule} (${entry.error})` : entry.schedule,
          entry.queue ?? "default",
          formatTime(entry.lastFire),
          formatTime(entry.nextFire),
          ctx.config.readOnly || entry.error
            ? null
            : actionButton({
                name: "trigger",
                label: "Trigger now",
                confirm: `Enqueue ${entry.function} now (cron entry ${entry.id})?`,
                run: () => api.cronTrigger(entry.id),
                done: () => ctx.reload(),
              }),
        ]),
        "No cron entries are configured.",
      ),
    ),
  );
}
