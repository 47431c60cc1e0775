//! Job contracts (feature `contracts`, on by default): a catalog of JSON Schemas for each job's
//! params (and result).
//!
//! A catalog is a directory of JSON files, one per job, named `<function_name>.json`:
//!
//! ```json
//! {"name": "send_email", "description": "Sends one email.",
//!  "params": {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]},
//!  "result": {"type": "object"}}
//! ```
//!
//! Schemas are JSON Schema 2020-12, checked with the `boon` crate; `format` is an
//! annotation only (as in the TypeScript and Python catalogs, so all three accept and refuse the
//! same params), and `$ref` may only point into the contract's own `#/$defs/...`.
//!
//! ```no_run
//! # fn demo() -> Result<(), rrqkit::contracts::CatalogError> {
//! let catalog = rrqkit::contracts::JobCatalog::load("jobs")?;
//! let problem = catalog.check_params("send_email", &serde_json::json!({"to": 1}));
//! assert_eq!(problem.unwrap().field, "/to");
//! # Ok(()) }
//! ```
//!
//! The producer ([`crate::Producer::catalog`]) refuses params that break their contract with
//! the error code `invalid_params`; the runner ([`crate::Runner::catalog`] or
//! `RRQ_JOB_CATALOG`) answers them with an `error` outcome of type `invalid_params`.

mod shape;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use boon::{Compiler, Draft, ErrorKind, Schemas, ValidationError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

pub use shape::{pointer_token, shape_problems, walk_schema, CONTRACT_KEYS};

/// The environment variable that gives a runner its catalog directory.
pub const CATALOG_ENV: &str = "RRQ_JOB_CATALOG";

/// Longest library message kept in a problem: a message can quote a (large) params value.
const MAX_DETAIL: usize = 300;

/// A job's params type as `rrq jobs types --lang rust` generates it: the job's name and its
/// result type. [`crate::Producer::enqueue_typed`] and [`crate::Runner::register_typed`] use it.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct ResizeImageParams { url: String, width: i64, height: i64 }
/// impl rrqkit::contracts::JobContract for ResizeImageParams {
///     const NAME: &'static str = "resize_image";
///     type Result = serde_json::Value;
/// }
/// ```
pub trait JobContract: Serialize + DeserializeOwned {
    /// The function name the job is enqueued and registered under.
    const NAME: &'static str;
    /// What the handler returns.
    type Result: Serialize + DeserializeOwned;
}

/// A catalog (or a contract in it) is unusable; [`CatalogError::problems`] lists every one,
/// each naming its file. Its code is `invalid_catalog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    problems: Vec<String>,
    message: String,
}

impl CatalogError {
    /// The stable code of every catalog error.
    pub const CODE: &'static str = "invalid_catalog";

    /// An error listing `problems` (at least one).
    pub fn new(problems: Vec<String>) -> Self {
        let message = if problems.len() == 1 {
            format!("invalid job catalog: {}", problems[0])
        } else {
            format!(
                "invalid job catalog ({} problems):\n  {}",
                problems.len(),
                problems.join("\n  ")
            )
        };
        CatalogError { problems, message }
    }

    /// `invalid_catalog`.
    pub fn code(&self) -> &'static str {
        Self::CODE
    }

    /// Every problem found, each naming its file (or contract).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// The message (one problem, or a count and one problem a line).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CatalogError {}

/// One job contract: a function name and the JSON Schemas of its params and result.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    pub name: String,
    pub params: Value,
    pub description: Option<String>,
    pub result: Option<Value>,
    /// The file the contract was read from, when it came from a directory.
    pub file: Option<PathBuf>,
}

impl Contract {
    fn to_raw(&self) -> Value {
        let mut raw = Map::new();
        raw.insert("name".into(), Value::String(self.name.clone()));
        if let Some(d) = &self.description {
            raw.insert("description".into(), Value::String(d.clone()));
        }
        raw.insert("params".into(), self.params.clone());
        if let Some(r) = &self.result {
            raw.insert("result".into(), r.clone());
        }
        Value::Object(raw)
    }

    fn from_raw(raw: &Value, file: Option<PathBuf>) -> Contract {
        Contract {
            name: raw["name"].as_str().unwrap_or_default().to_string(),
            params: raw["params"].clone(),
            description: raw
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            result: raw.get("result").filter(|r| !r.is_null()).cloned(),
            file,
        }
    }
}

/// Why params (or a result) break their job's contract: the first failing location.
///
/// `field` is a JSON Pointer into the params (`""` is the root); `message` is
/// `<function>: params<field> <what is wrong>` (`result<field>` for a result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsProblem {
    pub function_name: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ParamsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A compiled schema (one per params or result schema: each is its own root document).
struct Checker {
    schemas: Schemas,
    index: boon::SchemaIndex,
}

struct Entry {
    contract: Contract,
    params: Checker,
    result: Option<Checker>,
}

/// A set of job contracts, loaded once and validated. Functions that are not in the catalog are
/// never checked. Cloning is cheap (the compiled schemas are shared).
#[derive(Clone, Default)]
pub struct JobCatalog {
    // BTreeMap: names in byte order, as `names()` promises.
    entries: Arc<BTreeMap<String, Entry>>,
}

impl fmt::Debug for JobCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobCatalog")
            .field("names", &self.names())
            .finish()
    }
}

/// The checker of one schema: 2020-12 (unless the schema names another draft in `$schema`),
/// `format` not asserted, the schema itself checked against the meta-schema. Only local
/// references exist (shape rules), so nothing is loaded.
fn compile(schema: &Value) -> Result<Checker, String> {
    const URL: &str = "urn:rrqkit:contract";
    let mut compiler = Compiler::new();
    compiler.set_default_draft(Draft::V2020_12);
    let mut schemas = Schemas::new();
    let compiled = match compiler.add_resource(URL, schema.clone()) {
        Ok(()) => compiler.compile(URL, &mut schemas),
        Err(e) => Err(e),
    };
    match compiled {
        Ok(index) => Ok(Checker { schemas, index }),
        // the schema breaks the meta-schema: where in the schema, and why
        Err(boon::CompileError::ValidationError { src, .. }) => Err(match first_error(&src) {
            Some((at, detail)) => format!("{at}: {detail}"),
            None => format!(": {src}"),
        }),
        Err(other) => Err(format!(": {other}")),
    }
}

/// The failures a validation error tree stands for, each with its instance pointer. Groups,
/// `$ref`s and `allOf` are looked through; a failed `anyOf` / `oneOf` / `not` is one failure at
/// its own location (as `jsonschema` in Python reports it, and as its branches' pointers, which
/// extend it, would sort after it anyway).
fn failures<'e, 's, 'v>(
    error: &'e ValidationError<'s, 'v>,
    out: &mut Vec<(String, &'e ErrorKind<'s, 'v>)>,
) {
    let transparent = matches!(
        error.kind,
        ErrorKind::Group
            | ErrorKind::Schema { .. }
            | ErrorKind::Reference { .. }
            | ErrorKind::AllOf
    );
    if transparent && !error.causes.is_empty() {
        for cause in &error.causes {
            failures(cause, out);
        }
    } else {
        out.push((error.instance_location.to_string(), &error.kind));
    }
}

/// The failure that decides `field`: the one whose instance pointer sorts first in byte order;
/// on a tie the first one reported (the TypeScript and Python catalogs use the same rule, so the
/// three agree on `field` though their messages are worded differently).
fn first_error(error: &ValidationError<'_, '_>) -> Option<(String, String)> {
    let mut all = Vec::new();
    failures(error, &mut all);
    let mut best: Option<(String, String)> = None;
    for (pointer, kind) in all {
        if best.as_ref().is_none_or(|(b, _)| pointer < *b) {
            best = Some((pointer, kind.to_string()));
        }
    }
    best.map(|(field, mut detail)| {
        if detail.chars().count() > MAX_DETAIL {
            detail = detail.chars().take(MAX_DETAIL).collect::<String>() + "…";
        }
        (field, detail)
    })
}

impl Checker {
    fn check(&self, value: &Value) -> Option<(String, String)> {
        match self.schemas.validate(value, self.index) {
            Ok(()) => None,
            Err(error) => first_error(&error),
        }
    }
}

impl JobCatalog {
    /// Loads a directory of contract files (`<name>.json`; other files are left alone).
    /// Fails with every problem found.
    pub fn load(dir: impl AsRef<Path>) -> Result<JobCatalog, CatalogError> {
        let dir = dir.as_ref();
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if !dir.is_dir() {
            return Err(CatalogError::new(vec![format!(
                "{} is not a directory",
                dir.display()
            )]));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| CatalogError::new(vec![format!("cannot read {}: {e}", dir.display())]))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
            .collect();
        files.sort();
        let mut problems = Vec::new();
        let mut contracts = Vec::new();
        for file in files {
            let raw = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
            let raw = match raw {
                Ok(raw) => raw,
                Err(e) => {
                    problems.push(format!("{}: cannot read JSON: {e}", file.display()));
                    continue;
                }
            };
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let shape = shape_problems(&raw, Some(stem));
            if shape.is_empty() {
                contracts.push(Contract::from_raw(&raw, Some(file)));
            } else {
                problems.extend(shape.iter().map(|p| format!("{}: {p}", file.display())));
            }
        }
        Self::build(contracts, problems)
    }

    /// A catalog from contracts in memory, validated like [`JobCatalog::load`].
    pub fn from_contracts(
        contracts: impl IntoIterator<Item = Contract>,
    ) -> Result<JobCatalog, CatalogError> {
        let mut problems = Vec::new();
        let mut valid = Vec::new();
        for contract in contracts {
            let where_ = match &contract.file {
                Some(f) => f.display().to_string(),
                None => format!("contract {}", Value::String(contract.name.clone())),
            };
            let stem = contract
                .file
                .as_ref()
                .and_then(|f| f.file_stem())
                .and_then(|s| s.to_str())
                .map(str::to_string);
            let shape = shape_problems(&contract.to_raw(), stem.as_deref());
            if shape.is_empty() {
                valid.push(contract);
            } else {
                problems.extend(shape.iter().map(|p| format!("{where_}: {p}")));
            }
        }
        Self::build(valid, problems)
    }

    /// A catalog from contract-file values (`{"name": ..., "params": ...}`), validated like
    /// [`JobCatalog::load`].
    pub fn from_values(
        values: impl IntoIterator<Item = Value>,
    ) -> Result<JobCatalog, CatalogError> {
        let mut problems = Vec::new();
        let mut valid = Vec::new();
        for raw in values {
            let shape = shape_problems(&raw, None);
            if shape.is_empty() {
                valid.push(Contract::from_raw(&raw, None));
            } else {
                let where_ = format!("contract {}", raw.get("name").unwrap_or(&Value::Null));
                problems.extend(shape.iter().map(|p| format!("{where_}: {p}")));
            }
        }
        Self::build(valid, problems)
    }

    fn build(
        contracts: Vec<Contract>,
        mut problems: Vec<String>,
    ) -> Result<JobCatalog, CatalogError> {
        let mut entries = BTreeMap::new();
        for contract in contracts {
            let where_ = contract
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| contract.name.clone());
            if entries.contains_key(&contract.name) {
                problems.push(format!(
                    "{where_}: job \"{}\" is defined twice",
                    contract.name
                ));
                continue;
            }
            let params = compile(&contract.params)
                .map_err(|e| problems.push(format!("{where_}: params{e}")))
                .ok();
            let result = match &contract.result {
                None => Some(None),
                Some(schema) => compile(schema)
                    .map(Some)
                    .map_err(|e| problems.push(format!("{where_}: result{e}")))
                    .ok(),
            };
            if let (Some(params), Some(result)) = (params, result) {
                let name = contract.name.clone();
                entries.insert(
                    name,
                    Entry {
                        contract,
                        params,
                        result,
                    },
                );
            }
        }
        if !problems.is_empty() {
            return Err(CatalogError::new(problems));
        }
        Ok(JobCatalog {
            entries: Arc::new(entries),
        })
    }

    /// The contract of a job, or `None` when it is not catalogued.
    pub fn get(&self, name: &str) -> Option<&Contract> {
        self.entries.get(name).map(|e| &e.contract)
    }

    /// The catalogued job names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Whether `name` is catalogued.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// How many contracts the catalog has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the catalog has no contract.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a job's params against its contract: the first failing location, or `None` when
    /// they are valid or when `name` is not catalogued.
    pub fn check_params(&self, name: &str, params: &Value) -> Option<ParamsProblem> {
        let entry = self.entries.get(name)?;
        entry
            .params
            .check(params)
            .map(|f| problem(name, "params", f))
    }

    /// Checks a handler's result; `None` when valid, uncatalogued, or without a result schema.
    pub fn check_result(&self, name: &str, result: &Value) -> Option<ParamsProblem> {
        let checker = self.entries.get(name)?.result.as_ref()?;
        checker.check(result).map(|f| problem(name, "result", f))
    }
}

fn problem(name: &str, part: &str, (field, detail): (String, String)) -> ParamsProblem {
    ParamsProblem {
        function_name: name.to_string(),
        message: format!("{name}: {part}{field} {detail}"),
        field,
    }
}

/// Loads a catalog directory ([`JobCatalog::load`]).
pub fn load_job_catalog(dir: impl AsRef<Path>) -> Result<JobCatalog, CatalogError> {
    JobCatalog::load(dir)
}

/// The catalog `RRQ_JOB_CATALOG` names (a directory), or `None` when it is unset or empty.
pub fn catalog_from_env() -> Result<Option<JobCatalog>, CatalogError> {
    match std::env::var(CATALOG_ENV) {
        Ok(dir) if !dir.trim().is_empty() => JobCatalog::load(dir.trim()).map(Some),
        _ => Ok(None),
    }
}
