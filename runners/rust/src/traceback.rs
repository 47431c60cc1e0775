//! The bounded traceback of an error outcome (`protocol/RUNNER_PROTOCOL.md` §7.1).
//!
//! Rust has no exceptions, so the rule for `error.traceback` is:
//!
//! - an `Err(e)` converted into a [`HandlerError`](crate::HandlerError) (`?` or `.into()`), and
//!   [`HandlerError::msg`](crate::HandlerError::msg) / `typed`: the line `<type>: <message>`,
//!   the location of the `?` (or the call) as `  at <file>:<line>:<col>`, one `Caused by: <source>`
//!   line per error in the `source()` chain, and the [`Backtrace`] when one is captured
//!   (`RUST_BACKTRACE` / `RUST_LIB_BACKTRACE`, as for `std::backtrace::Backtrace::capture`);
//! - a panic (`error.type = "panic"`): `panicked at <file>:<line>:<col>:` and the panic message,
//!   then the backtrace when captured.
//!
//! Every text is capped by [`cap_traceback`] (8 KiB of UTF-8, head and tail kept).

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::panic::Location;
use std::sync::Once;

/// Largest `error.traceback` in UTF-8 bytes.
pub const MAX_TRACEBACK_BYTES: usize = 8192;
/// Bytes kept from the start of an over-long traceback.
pub const TRACEBACK_HEAD_BYTES: usize = 4096;
/// Bytes kept from the end (where Python's innermost frames are).
pub const TRACEBACK_TAIL_BYTES: usize = 4000;

/// `text` unchanged when it fits in [`MAX_TRACEBACK_BYTES`], else its first
/// [`TRACEBACK_HEAD_BYTES`] and last [`TRACEBACK_TAIL_BYTES`] bytes (whole characters only)
/// around the line `... [N bytes truncated] ...`.
pub fn cap_traceback(text: &str) -> String {
    if text.len() <= MAX_TRACEBACK_BYTES {
        return text.to_string();
    }
    let mut head_end = TRACEBACK_HEAD_BYTES;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - TRACEBACK_TAIL_BYTES;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!(
        "{}\n... [{} bytes truncated] ...\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

/// The traceback of an error value: `<type>: <message>`, where it was converted, its source
/// chain and a captured backtrace (see the module docs).
pub(crate) fn error_traceback(
    error_type: &str,
    message: &str,
    sources: Option<&(dyn std::error::Error + 'static)>,
    at: Option<&Location<'_>>,
) -> String {
    let mut text = format!("{error_type}: {message}");
    if let Some(at) = at {
        let _ = write!(text, "\n  at {at}");
    }
    let mut source = sources;
    while let Some(err) = source {
        let _ = write!(text, "\nCaused by: {err}");
        source = err.source();
    }
    append_backtrace(&mut text, &Backtrace::capture());
    cap_traceback(&text)
}

fn append_backtrace(text: &mut String, backtrace: &Backtrace) {
    if backtrace.status() == BacktraceStatus::Captured {
        let _ = write!(text, "\n\nstack backtrace:\n{backtrace}");
    }
}

thread_local! {
    /// Where the last panic on this thread happened, set by the hook below.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that records each panic's location and backtrace
/// for [`take_panic_traceback`], then calls the hook that was installed before it, so the
/// usual panic report on stderr is unchanged.
pub(crate) fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut text = match info.location() {
                Some(at) => format!("panicked at {at}:"),
                None => "panicked:".to_string(),
            };
            let _ = write!(text, "\n{}", panic_message(info.payload()));
            append_backtrace(&mut text, &Backtrace::capture());
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
            previous(info);
        }));
    });
}

/// The traceback the hook recorded for the panic just caught on this thread, else one made of
/// `message` alone (another hook replaced ours).
pub(crate) fn take_panic_traceback(message: &str) -> String {
    let recorded = LAST_PANIC.with(|last| last.borrow_mut().take());
    cap_traceback(&recorded.unwrap_or_else(|| format!("panicked:\n{message}")))
}

/// The message of a panic payload (`&str` or `String`), else a generic one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "handler panicked".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged() {
        assert_eq!(cap_traceback("a\nb"), "a\nb");
        let exact = "x".repeat(MAX_TRACEBACK_BYTES);
        assert_eq!(cap_traceback(&exact), exact);
    }

    #[test]
    fn long_text_keeps_head_and_tail_on_char_boundaries() {
        let text = format!("{}{}", "é".repeat(3000), "z".repeat(5000)); // 11,000 bytes
        let capped = cap_traceback(&text);
        assert!(capped.len() <= MAX_TRACEBACK_BYTES);
        assert!(capped.starts_with(&"é".repeat(2048)));
        assert!(capped.ends_with(&"z".repeat(4000)));
        assert!(capped.contains("\n... [2904 bytes truncated] ...\n"));
    }
}
