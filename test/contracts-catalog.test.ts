import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterEach, describe, expect, it } from "vitest";
import { CatalogError, JobCatalog, type JobContract } from "@rrqkit/runner/contracts";

const FIXTURE = "conformance/fixtures/catalog";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temporary catalog directory with the given files (name → JSON value or raw text). */
function catalogDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), "rrq-catalog-"));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files))
    writeFileSync(
      join(dir, name),
      typeof content === "string" ? content : JSON.stringify(content, null, 2),
    );
  return dir;
}

const objectParams = (properties: Record<string, unknown> = {}) => ({
  type: "object",
  properties,
});

/** The problems a CatalogError lists for `load` of the given files. */
function loadProblems(files: Record<string, unknown>): readonly string[] {
  try {
    JobCatalog.load(catalogDir(files));
  } catch (error) {
    expect(error).toBeInstanceOf(CatalogError);
    expect((error as CatalogError).code).toBe("invalid_catalog");
    return (error as CatalogError).problems;
  }
  throw new Error("the catalog loaded");
}

describe("the fixture catalog", () => {
  const catalog = JobCatalog.load(FIXTURE);

  it("lists its jobs sorted, each with its file", () => {
    expect(catalog.names()).toEqual(["resize_image", "send_email"]);
    expect(catalog.get("send_email")?.description).toBe("Sends one email.");
    expect(catalog.get("send_email")?.file).toMatch(/send_email\.json$/);
    expect(catalog.get("nope")).toBeUndefined();
  });

  it("accepts valid params and leaves uncatalogued functions alone", () => {
    const ok = { to: "a@b", subject: "hi", cc: ["c@d"], priority: "low" };
    expect(catalog.checkParams("send_email", ok)).toBeNull();
    expect(catalog.checkParams("not_catalogued", 42)).toBeNull();
    expect(catalog.checkParams("resize_image", { url: "u", width: 1, height: 2 })).toBeNull();
  });

  it.each([
    [{ to: 1, subject: "x" }, "/to", "send_email: params/to must be string"],
    [{ subject: "x" }, "", "send_email: params must have required property 'to'"],
    [{ to: "a", subject: "b", x: 1 }, "", "send_email: params must NOT have additional properties"],
    [
      { to: "a", subject: "b", priority: "mid" },
      "/priority",
      "send_email: params/priority must be equal to one of the allowed values",
    ],
    [
      {
        to: "a",
        subject: "b",
        attachments: [
          { name: "f", bytes: 1 },
          { name: "g", bytes: -1 },
        ],
      },
      "/attachments/1/bytes",
      "send_email: params/attachments/1/bytes must be >= 0",
    ],
    [["a"], "", "send_email: params must be object"],
  ])("refuses %j at field %j", (params, field, message) => {
    expect(catalog.checkParams("send_email", params)).toEqual({
      functionName: "send_email",
      field,
      message,
    });
  });

  it("reports the failing location whose pointer sorts first (byte order)", () => {
    // three failures: /to, /subject and /cc/0 — "/cc/0" < "/subject" < "/to"
    const problem = catalog.checkParams("send_email", { to: 1, subject: 2, cc: [3] });
    expect(problem?.field).toBe("/cc/0");
    // a missing required key reports the object itself (""), which sorts before every child
    expect(catalog.checkParams("send_email", { to: 1, cc: [3] })?.field).toBe("");
    expect(catalog.checkParams("resize_image", { url: "u", width: 0, height: "x" })?.field).toBe(
      "/height",
    );
  });

  it("checks results when the contract has a result schema", () => {
    expect(catalog.checkResult("send_email", { message_id: "m1" })).toBeNull();
    expect(catalog.checkResult("send_email", { message_id: 7 })).toEqual({
      functionName: "send_email",
      field: "/message_id",
      message: "send_email: result/message_id must be string",
    });
    expect(catalog.checkResult("resize_image", "anything")).toBeNull();
  });

  it("matches schemas/job-contract.schema.json", () => {
    const schema = JSON.parse(readFileSync("schemas/job-contract.schema.json", "utf8")) as object;
    const validate = new Ajv2020({ strict: true }).compile(schema);
    for (const file of ["send_email.json", "resize_image.json"])
      expect(validate(JSON.parse(readFileSync(join(FIXTURE, file), "utf8")))).toBe(true);
    expect(validate({ name: "x", params: { type: "object" }, parms: {} })).toBe(false);
    expect(validate({ name: "x", params: { type: "array" } })).toBe(false);
  });
});

describe("loading a catalog", () => {
  it("ignores $schema, files that are not .json, and does not assert format", () => {
    const catalog = JobCatalog.load(
      catalogDir({
        "notify.json": {
          $schema: "../schemas/job-contract.schema.json",
          name: "notify",
          params: objectParams({ email: { type: "string", format: "email" } }),
        },
        "README.md": "not a contract",
      }),
    );
    expect(catalog.names()).toEqual(["notify"]);
    expect(catalog.checkParams("notify", { email: "not an address" })).toBeNull();
    expect(catalog.get("notify")).not.toHaveProperty("$schema");
  });

  it("accepts nullable type arrays", () => {
    const catalog = JobCatalog.fromContracts([
      { name: "n", params: objectParams({ note: { type: ["string", "null"] } }) },
    ]);
    expect(catalog.checkParams("n", { note: null })).toBeNull();
    expect(catalog.checkParams("n", { note: 1 })?.field).toBe("/note");
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    [
      "an unknown contract key",
      { name: "a", params: objectParams(), parms: {} },
      /unknown key "parms"/,
    ],
    [
      "a name that is not the file's",
      { name: "b", params: objectParams() },
      /"name" is "b" but the file is named "a.json"/,
    ],
    [
      "params that are not an object schema",
      { name: "a", params: { type: "array" } },
      /"params" must have "type": "object"/,
    ],
    ["a missing params", { name: "a" }, /"params" must be a JSON Schema object/],
    [
      "a non-string description",
      { name: "a", description: 1, params: objectParams() },
      /"description" must be a string/,
    ],
    [
      "an unknown keyword (strict mode)",
      { name: "a", params: objectParams({ s: { type: "string", minLenght: 1 } }) },
      /params: strict mode: unknown keyword: "minLenght"/,
    ],
    [
      "a keyword on the wrong type (strict mode)",
      { name: "a", params: objectParams({ s: { type: "string", minimum: 1 } }) },
      /params: strict mode/,
    ],
    [
      "a $ref outside the file",
      { name: "a", params: objectParams({ s: { $ref: "other.json#/x" } }) },
      /params\/properties\/s\/\$ref "other.json#\/x": only references to "#\/\$defs\/\.\.\."/,
    ],
    [
      "a $ref to a missing definition",
      { name: "a", params: objectParams({ s: { $ref: "#/$defs/nope" } }) },
      /params: can't resolve reference #\/\$defs\/nope/,
    ],
    [
      "an $id",
      { name: "a", params: { ...objectParams(), $id: "urn:x" } },
      /params\/\$id is not allowed/,
    ],
    [
      "a result that is not an object",
      { name: "a", params: objectParams(), result: true },
      /"result" must be a JSON Schema object/,
    ],
  ])("refuses %s, naming the file", (_what, contract, problem) => {
    const problems = loadProblems({ "a.json": contract });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/a\.json: /);
    expect(problems[0]).toMatch(problem);
  });

  it("lists every problem of every file, and unreadable JSON", () => {
    const problems = loadProblems({
      "a.json": "{ not json",
      "b.json": { name: "b", params: objectParams(), extra: 1 },
      "c.json": { name: "c", params: objectParams() },
    });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/a\.json: cannot read JSON/);
    expect(problems[1]).toMatch(/b\.json: unknown key "extra"/);
  });

  it("refuses a directory that does not exist", () => {
    expect(() => JobCatalog.load("/nonexistent/catalog")).toThrow(
      /invalid job catalog: \/nonexistent\/catalog is not a directory/,
    );
  });

  it("refuses duplicate names and validates contracts given in memory", () => {
    const contract: JobContract = { name: "x", params: objectParams() };
    expect(() => JobCatalog.fromContracts([contract, contract])).toThrow(/"x" is defined twice/);
    expect(() =>
      JobCatalog.fromContracts([{ name: "x", params: objectParams(), file: "/c/y.json" }]),
    ).toThrow(/\/c\/y\.json: "name" is "x" but the file is named "y.json"/);
  });
});
