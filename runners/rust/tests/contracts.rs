//! Job catalogs: the shared fixture catalog (conformance/fixtures/catalog), the first failing
//! field (the same as the TypeScript and Python catalogs), result checks, every catalog load
//! error, and the typed params of `rrq jobs types --lang rust`.
#![cfg(feature = "contracts")]

mod common;

use std::path::PathBuf;

use rrqkit::contracts::{CatalogError, Contract, JobCatalog, JobContract};
use serde_json::{json, Value};

use common::TempDir;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance/fixtures/catalog")
}

fn fixture() -> JobCatalog {
    JobCatalog::load(fixture_dir()).expect("the fixture catalog loads")
}

fn field(catalog: &JobCatalog, name: &str, params: Value) -> Option<String> {
    catalog.check_params(name, &params).map(|p| p.field)
}

/// What `rrq jobs types --lang rust` emits for send_email (test/fixtures/contracts-generate).
mod generated {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SendEmailAttachment {
        pub name: String,
        pub bytes: i64,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    pub enum SendEmailParamsPriority {
        #[serde(rename = "low")]
        Low,
        #[serde(rename = "high")]
        High,
    }

    /// Params of the job "send_email".
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SendEmailParams {
        /// Recipient address.
        pub to: String,
        pub subject: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cc: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub priority: Option<SendEmailParamsPriority>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub attachments: Option<Vec<SendEmailAttachment>>,
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct SendEmailResult {
        pub message_id: String,
    }

    impl rrqkit::contracts::JobContract for SendEmailParams {
        const NAME: &'static str = "send_email";
        type Result = SendEmailResult;
    }
}

use generated::*;

#[test]
fn fixture_catalog_loads_with_sorted_names() {
    let catalog = fixture();
    assert_eq!(catalog.names(), ["resize_image", "send_email"]);
    assert_eq!(catalog.len(), 2);
    let contract = catalog.get("send_email").unwrap();
    assert_eq!(contract.description.as_deref(), Some("Sends one email."));
    assert!(contract.result.is_some());
    assert!(contract.file.as_ref().unwrap().ends_with("send_email.json"));
    assert!(catalog.get("nope").is_none());
}

#[test]
fn valid_params_and_uncatalogued_functions_pass() {
    let catalog = fixture();
    let ok = json!({"to": "a@b", "subject": "hi", "cc": ["c@d"], "priority": "low",
                    "attachments": [{"name": "x.pdf", "bytes": 0}]});
    assert_eq!(catalog.check_params("send_email", &ok), None);
    assert_eq!(field(&catalog, "not_catalogued", json!({"x": 1})), None);
    // format is an annotation only, in every language
    let formats = JobCatalog::from_values([json!({"name": "f", "params": {
        "type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}})])
    .unwrap();
    assert_eq!(field(&formats, "f", json!({"at": "not a date"})), None);
}

#[test]
fn first_failing_field_and_message() {
    let catalog = fixture();
    let p = catalog
        .check_params("send_email", &json!({"to": 1, "subject": "hi"}))
        .unwrap();
    assert_eq!(p.function_name, "send_email");
    assert_eq!(p.field, "/to");
    assert!(
        p.message.starts_with("send_email: params/to "),
        "{}",
        p.message
    );
    assert!(p.message.contains("string"), "{}", p.message);
    // a missing required param is reported at the params object itself
    assert_eq!(
        field(&catalog, "send_email", json!({"to": "a"})).as_deref(),
        Some("")
    );
    // several failures: the pointer that sorts first in byte order wins
    assert_eq!(
        field(
            &catalog,
            "send_email",
            json!({"to": "a", "subject": 2, "cc": [1]})
        )
        .as_deref(),
        Some("/cc/0")
    );
    assert_eq!(
        field(
            &catalog,
            "send_email",
            json!({"to": "a", "subject": "s", "attachments": [{"name": "n", "bytes": -1}]})
        )
        .as_deref(),
        Some("/attachments/0/bytes")
    );
    assert_eq!(
        field(
            &catalog,
            "send_email",
            json!({"to": "a", "subject": "s", "priority": "urgent"})
        )
        .as_deref(),
        Some("/priority")
    );
    // additionalProperties false: reported at the object (ajv and jsonschema agree)
    assert_eq!(
        field(
            &catalog,
            "send_email",
            json!({"to": "a", "subject": "s", "bcc": "x"})
        )
        .as_deref(),
        Some("")
    );
    assert_eq!(
        field(
            &catalog,
            "resize_image",
            json!({"url": "u", "width": 0, "height": 1.5})
        )
        .as_deref(),
        Some("/height")
    );
}

#[test]
fn result_checks() {
    let catalog = fixture();
    assert_eq!(
        catalog.check_result("send_email", &json!({"message_id": "m"})),
        None
    );
    let p = catalog.check_result("send_email", &json!({})).unwrap();
    assert_eq!(p.field, "");
    assert!(
        p.message.starts_with("send_email: result "),
        "{}",
        p.message
    );
    // no result schema: not checked
    assert_eq!(catalog.check_result("resize_image", &json!(1)), None);
}

fn load_error(files: &[(&str, &str)]) -> CatalogError {
    let dir = TempDir::new("catalog");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    JobCatalog::load(dir.path()).expect_err("the catalog must not load")
}

#[test]
fn catalog_load_errors_name_file_and_problem() {
    let cases: [(&str, &str, &str); 11] = [
        ("a.json", "{", "cannot read JSON"),
        (
            "a.json",
            r#"{"name":"a","params":{"type":"object"},"parms":{}}"#,
            "unknown key \"parms\"",
        ),
        (
            "a.json",
            r#"{"name":"b","params":{"type":"object"}}"#,
            "but the file is named \"a.json\"",
        ),
        (
            "a.json",
            r#"{"name":"a","params":{"type":"array"}}"#,
            "\"params\" must have \"type\": \"object\"",
        ),
        (
            "a.json",
            r#"{"name":"a"}"#,
            "\"params\" must be a JSON Schema object",
        ),
        (
            "a.json",
            r##"{"name":"a","params":{"type":"object","properties":{"x":{"$ref":"other.json#/x"}}}}"##,
            "only references to",
        ),
        (
            "a.json",
            r##"{"name":"a","params":{"type":"object","properties":{"x":{"$ref":"#/$defs/nope"}}}}"##,
            "does not resolve",
        ),
        (
            "a.json",
            r#"{"name":"a","params":{"type":"object","$id":"urn:x"}}"#,
            "$id is not allowed",
        ),
        (
            "a.json",
            r#"{"name":"a","params":{"type":"object","properties":{"x":{"type":"string","minimum":1}}}}"#,
            "keyword \"minimum\" applies to numbers",
        ),
        (
            "a.json",
            r#"{"name":"a","params":{"type":"object","required":["x"],"properties":{}}}"#,
            "required property \"x\" is not defined",
        ),
        (
            "a.json",
            r#"{"name":"a","params":{"type":"object","properties":{"x":{"type":"strin"}}}}"#,
            "params/properties/x/type",
        ),
    ];
    for (file, text, expected) in cases {
        let e = load_error(&[(file, text)]);
        assert_eq!(e.code(), "invalid_catalog");
        assert!(e.message().contains(expected), "{text}: {}", e.message());
        assert!(e.message().contains("a.json"), "{}", e.message());
    }
    let e = load_error(&[
        (
            "a.json",
            r#"{"name":"a","params":{"type":"object","tpye":1}}"#,
        ),
        ("b.json", "[]"),
    ]);
    assert_eq!(e.problems().len(), 2, "{e}");
    assert!(e.problems()[0].contains("unknown keyword \"tpye\""));
    assert!(e.problems()[1].contains("a contract must be a JSON object"));
    let missing = JobCatalog::load("/nonexistent/catalog").unwrap_err();
    assert!(missing.message().contains("is not a directory"));
}

#[test]
fn from_contracts_validates_like_load() {
    let twice = JobCatalog::from_contracts([
        Contract {
            name: "a".into(),
            params: json!({"type": "object"}),
            description: None,
            result: None,
            file: None,
        },
        Contract {
            name: "a".into(),
            params: json!({"type": "object"}),
            description: None,
            result: None,
            file: None,
        },
    ])
    .unwrap_err();
    assert!(twice.message().contains("defined twice"), "{twice}");
    let catalog = JobCatalog::from_contracts([Contract {
        name: "a".into(),
        params: json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
        description: None,
        result: None,
        file: None,
    }])
    .unwrap();
    assert_eq!(
        field(&catalog, "a", json!({"n": "x"})).as_deref(),
        Some("/n")
    );
}

#[test]
fn generated_params_round_trip_and_match_the_contract() {
    assert_eq!(SendEmailParams::NAME, "send_email");
    let params = SendEmailParams {
        to: "a@b".into(),
        subject: "hi".into(),
        cc: None,
        priority: Some(SendEmailParamsPriority::High),
        attachments: Some(vec![SendEmailAttachment {
            name: "x.pdf".into(),
            bytes: 3,
        }]),
    };
    let value = serde_json::to_value(&params).unwrap();
    assert_eq!(
        value,
        json!({"to": "a@b", "subject": "hi", "priority": "high",
               "attachments": [{"name": "x.pdf", "bytes": 3}]})
    );
    assert_eq!(fixture().check_params(SendEmailParams::NAME, &value), None);
    let back: SendEmailParams = serde_json::from_value(value).unwrap();
    assert_eq!(back, params);
    let result: <SendEmailParams as JobContract>::Result =
        serde_json::from_value(json!({"message_id": "m-1"})).unwrap();
    assert_eq!(result.message_id, "m-1");
}
