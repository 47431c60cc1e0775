/** Implementation name announced in hello frames. */
export const RUNTIME_NAME = "rrqkit-node";
/** Implementation version announced in hello frames. */
export const RUNTIME_VERSION = "0.1.0";
