// The packaging check's build half: the three kinds of installable package, built the way a
// release would build them, plus checks of what each one holds. Each builder returns the path of
// its artefact; each throws a CheckFailed (./check-steps.mjs) naming what is wrong.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fail, runStep } from "./check-steps.mjs";

/** The package directories, each with its own README, LICENSE and CHANGELOG.md. */
const PACKAGE_DIRS = [".", "runners/node", "runners/python", "runners/rust"];

/** The version in each package manifest (package.json, pyproject.toml, Cargo.toml). */
export function packageVersions(root) {
  const json = (path) => JSON.parse(readFileSync(join(root, path), "utf8")).version;
  const toml = (path) => /^version\s*=\s*"([^"]+)"/m.exec(readFileSync(join(root, path), "utf8"));
  return {
    rrqkit: json("package.json"),
    "@rrqkit/runner": json("runners/node/package.json"),
    "rrqkit (Python)": toml("runners/python/pyproject.toml")?.[1],
    "rrqkit (Rust)": toml("runners/rust/Cargo.toml")?.[1],
  };
}

/**
 * Every package is at the same version, pinned exactly by the orchestrator, and each package
 * directory has a README, the repository's LICENSE and a CHANGELOG.md entry for its version.
 * Returns that version.
 */
export function checkPackageDocs(root) {
  const versions = packageVersions(root);
  const version = versions.rrqkit;
  const off = Object.entries(versions).filter(([, v]) => v !== version);
  if (off.length) fail(`package versions differ: ${JSON.stringify(versions)}`);
  const pinned = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).dependencies[
    "@rrqkit/runner"
  ];
  if (pinned !== version) fail(`rrqkit depends on @rrqkit/runner "${pinned}", not "${version}"`);
  const license = readFileSync(join(root, "LICENSE"));
  for (const dir of PACKAGE_DIRS) {
    const path = (name) => join(root, dir, name);
    if (!existsSync(path("README.md"))) fail(`${dir}/README.md is missing`);
    if (!existsSync(path("LICENSE")) || !readFileSync(path("LICENSE")).equals(license))
      fail(`${dir}/LICENSE is missing or differs from the repository's LICENSE`);
    const changelog = existsSync(path("CHANGELOG.md"))
      ? readFileSync(path("CHANGELOG.md"), "utf8")
      : "";
    if (!new RegExp(`^## ${version.replaceAll(".", "\\.")}\\b`, "m").test(changelog))
      fail(`${dir}/CHANGELOG.md has no "## ${version}" entry`);
  }
  return version;
}

/** `npm pack` of both npm packages into `dest`; resolves to the two tarball paths. */
export async function packNpm(root, dest, say, env) {
  mkdirSync(dest, { recursive: true });
  const out = await runStep(
    say,
    "npm",
    ["pack", "--json", "--workspaces", "--include-workspace-root", "--pack-destination", dest],
    { cwd: root, env },
  );
  const packed = JSON.parse(out);
  for (const { name, files } of packed) {
    const paths = new Set(files.map((file) => file.path));
    const missing = ["README.md", "LICENSE", "CHANGELOG.md", "package.json"].filter(
      (file) => !paths.has(file),
    );
    if (missing.length) fail(`the ${name} tarball lacks ${missing.join(", ")}`);
  }
  return packed.map(({ filename }) => join(dest, filename));
}

/** The first of python3.13 … python3 that is Python ≥ 3.11. */
export function findPython() {
  for (const candidate of ["python3.13", "python3.12", "python3.11", "python3"]) {
    const probe = spawnSync(candidate, [
      "-c",
      "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)",
    ]);
    if (probe.status === 0) return candidate;
  }
  return fail("Python ≥ 3.11 is required (python3.13, python3.12, python3.11 or python3)");
}

/** Prints the METADATA of the wheel given as the first argument. */
const READ_METADATA = `import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
print(wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode())`;

/**
 * Builds the Python sdist and wheel (`python -m build`, the wheel built from the sdist) into
 * `dest` with `build` and `hatchling` installed from PyPI into a throw-away venv under `work`;
 * checks the wheel's typing marker, Lua scripts, licence and metadata. Resolves to the wheel's
 * path.
 */
export async function buildWheel(root, dest, work, python, say, env) {
  const venv = join(work, "build-venv");
  await runStep(say, python, ["-m", "venv", venv], { env });
  const py = join(venv, "bin", "python");
  await runStep(say, py, ["-m", "pip", "install", "--quiet", "build", "hatchling>=1.27"], { env });
  // --no-isolation: the venv above is already the clean build environment; isolation would
  // install hatchling twice more (once for the sdist, once for the wheel).
  await runStep(say, py, ["-m", "build", "--no-isolation", "--outdir", dest, "runners/python"], {
    cwd: root,
    env,
  });
  const wheel = readdirSync(dest).find((file) => file.endsWith(".whl"));
  if (!wheel || !readdirSync(dest).some((file) => file.endsWith(".tar.gz")))
    fail(`python -m build left no wheel and sdist in ${dest}`);
  const listing = await runStep(say, py, ["-m", "zipfile", "-l", join(dest, wheel)], { env });
  const luaDir = join(root, "runners", "python", "src", "rrqkit", "lua");
  const wanted = [
    "rrqkit/py.typed",
    ...readdirSync(luaDir).map((file) => `rrqkit/lua/${file}`),
    "licenses/LICENSE",
  ];
  const missing = wanted.filter((entry) => !listing.includes(entry));
  if (missing.length) fail(`the wheel ${wheel} lacks ${missing.join(", ")}`);
  const metadata = await runStep(say, py, ["-c", READ_METADATA, join(dest, wheel)], { env });
  const lines = [
    "License-Expression: Apache-2.0",
    "Requires-Python: >=3.11",
    "Classifier: Typing :: Typed",
    "Provides-Extra: otel",
    "Description-Content-Type: text/markdown",
  ].filter((line) => !metadata.includes(`${line}\n`));
  if (lines.length) fail(`the wheel's METADATA lacks ${lines.join(", ")}`);
  return join(dest, wheel);
}

/**
 * `cargo package` of the Rust crate (no verify build: the fresh project that depends on it is
 * the verification), extracted into `dest`. Checks the extracted crate holds the vendored Lua
 * scripts and the package documents. Resolves to the extracted crate's
 * directory.
 */
export async function packageCrate(root, dest, targetDir, version, say, env) {
  const crateDir = join(root, "runners", "rust");
  await runStep(say, "cargo", ["package", "--locked", "--allow-dirty", "--no-verify"], {
    cwd: crateDir,
    env: { ...env, CARGO_TARGET_DIR: targetDir },
  });
  const crate = join(targetDir, "package", `rrqkit-${version}.crate`);
  if (!existsSync(crate)) fail(`cargo package made no ${crate}`);
  mkdirSync(dest, { recursive: true });
  await runStep(say, "tar", ["-xzf", crate, "-C", dest], { env });
  const extracted = join(dest, `rrqkit-${version}`);
  const wanted = [
    "Cargo.toml",
    "Cargo.lock",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "src/lib.rs",
    ...readdirSync(join(crateDir, "lua")).map((file) => `lua/${file}`),
  ];
  const missing = wanted.filter((file) => !existsSync(join(extracted, file)));
  if (missing.length) fail(`the crate ${crate} lacks ${missing.join(", ")}`);
  return extracted;
}
