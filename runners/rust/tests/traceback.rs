//! `error.traceback` of a handler's `Err` (RUNNER_PROTOCOL.md §7.1): type, place, sources.

use std::fmt;

use rrqkit::{HandlerError, HandlerResult, IntoHandlerOutcome};

#[derive(Debug)]
struct Outer(std::io::Error);

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot load config")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

const LOAD_LINE: u32 = line!() + 4;

#[allow(clippy::result_large_err)] // HandlerError's size, as in any handler
fn load() -> HandlerResult<()> {
    Err(Outer(std::io::Error::other("disk gone")))?;
    Ok(())
}

#[test]
fn question_mark_records_type_place_and_sources() {
    let e = load().unwrap_err();
    let tb = e.traceback().unwrap().to_string();
    let expected = format!(
        "Outer: cannot load config\n  at {}:{LOAD_LINE}:5\nCaused by: disk gone",
        file!()
    );
    assert!(tb.starts_with(&expected), "{tb}");
    let o = Err::<(), _>(e).into_handler_outcome();
    assert_eq!(o.error.unwrap().traceback.as_deref(), Some(tb.as_str()));
}

#[test]
fn msg_records_the_call_site() {
    let line = line!() + 1;
    let e = HandlerError::msg("kaput");
    let expected = format!("Error: kaput\n  at {}:{line}:13", file!());
    assert!(e.traceback().unwrap().starts_with(&expected));
}

#[test]
fn non_retryable_records_the_call_site() {
    let line = line!() + 1;
    let e = HandlerError::non_retryable("card number is invalid");
    let expected = format!(
        "non_retryable: card number is invalid\n  at {}:{line}:13",
        file!()
    );
    assert!(e.traceback().unwrap().starts_with(&expected));
    let o = Err::<(), _>(e).into_handler_outcome();
    let error = o.error.unwrap();
    assert_eq!(error.error_type.as_deref(), Some("non_retryable"));
    assert!(error.traceback.unwrap().starts_with(&expected));
}

#[test]
fn long_tracebacks_are_capped() {
    let e = HandlerError::msg("x".repeat(20_000));
    let tb = e.traceback().unwrap();
    assert!(tb.len() <= rrqkit::traceback::MAX_TRACEBACK_BYTES);
    assert!(tb.starts_with("Error: xxx"));
    assert!(tb.contains("bytes truncated] ...\n"));
}
