import type { JobCatalog } from "@rrqkit/runner/contracts";
import { buildModel } from "./model.js";
import { renderPython } from "./python.js";
import { renderRust } from "./rust.js";
import { renderTypeScript } from "./ts.js";

/** The languages `rrq jobs types` writes. */
export const TYPE_LANGUAGES = ["ts", "python", "rust"] as const;

/** One of {@link TYPE_LANGUAGES}. */
export type TypeLanguage = (typeof TYPE_LANGUAGES)[number];

/**
 * The source of a module with the types of every catalogued job (params, results, their
 * definitions) in one language; the same catalog always gives the same text.
 */
export function generateTypes(catalog: JobCatalog, language: TypeLanguage): string {
  const model = buildModel(catalog);
  if (language === "ts") return renderTypeScript(model);
  return language === "python" ? renderPython(model) : renderRust(model);
}

export { buildModel, GENERATED_HEADER, type TypesModel } from "./model.js";
