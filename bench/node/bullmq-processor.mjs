// BullMQ sandboxed processor file (loaded by BullMQ in a forked child per concurrent job).
export { handle as default } from "./bullmq-handler.mjs";
