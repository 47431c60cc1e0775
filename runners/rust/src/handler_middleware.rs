//! Runner (handler) middleware: an onion around every handler (docs/middleware.md).
//!
//! A middleware gets the request and a [`Next`]; `next.run(request).await` runs the rest of the
//! chain (the later middleware, then the handler) and gives back its [`ExecutionOutcome`]. The
//! first registered middleware is the outermost. A middleware may time or log around `next`,
//! pass a changed request, map the outcome (e.g. an error into a non-retryable one) or return
//! without calling `next` at all.
//!
//! The runtime runs the chain after the checks that answer without a handler: a missing
//! handler (`handler_not_found`), an expired deadline and the runner-side contract check
//! (`invalid_params`) never reach middleware. The chain runs with the request's
//! [`crate::JobContext`] current, under the request's deadline, and is dropped as a whole when
//! the job is cancelled.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::handler::{BoxFuture, CatchUnwind, HandlerFn, IntoHandlerOutcome};
use crate::protocol::{ExecutionOutcome, ExecutionRequest, UNHANDLED_ERROR_MESSAGE};
use crate::traceback;

/// A type-erased runner middleware.
pub type HandlerMiddleware =
    Arc<dyn Fn(ExecutionRequest, Next) -> BoxFuture<ExecutionOutcome> + Send + Sync>;

/// Boxes a middleware closure. Its future may resolve to anything a handler's may (a
/// `Result<impl Serialize, impl Into<HandlerError>>`, or an [`ExecutionOutcome`] such as the
/// one `next` returned).
pub fn middleware_fn<F, Fut>(middleware: F) -> HandlerMiddleware
where
    F: Fn(ExecutionRequest, Next) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoHandlerOutcome,
{
    Arc::new(move |request, next| {
        let fut = middleware(request, next);
        Box::pin(async move { fut.await.into_handler_outcome() }) as BoxFuture<_>
    })
}

/// The rest of the chain, handed to a middleware. [`Next::run`] takes it by value, so a
/// middleware calls it at most once: calling it twice does not compile.
///
/// ```compile_fail
/// # use rrqkit::Runner;
/// let mut runner = Runner::new();
/// runner.middleware(|request, next| async move {
///     let _ = next.run(request.clone()).await;
///     next.run(request).await // error: use of moved value `next`
/// });
/// ```
pub struct Next {
    chain: Arc<Vec<HandlerMiddleware>>,
    index: usize,
    handler: HandlerFn,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("remaining_middleware", &(self.chain.len() - self.index))
            .finish()
    }
}

impl Next {
    /// Runs the later middleware and the handler with `request` (changed or not) and returns
    /// the outcome. A panicking handler gives an `error` outcome of type `panic` here, so the
    /// middleware around it sees it like any other error.
    pub fn run(self, request: ExecutionRequest) -> BoxFuture<ExecutionOutcome> {
        match self.chain.get(self.index) {
            Some(middleware) => {
                let next = Next {
                    index: self.index + 1,
                    chain: self.chain.clone(),
                    handler: self.handler,
                };
                middleware(request, next)
            }
            None => {
                let handler = self.handler;
                traceback::install_panic_hook(); // so a caught panic's location is known
                match std::panic::catch_unwind(AssertUnwindSafe(|| handler(request))) {
                    Ok(fut) => Box::pin(async move {
                        CatchUnwind::new(fut).await.unwrap_or_else(panic_outcome)
                    }),
                    Err(payload) => {
                        let outcome = panic_outcome(traceback::panic_message(payload.as_ref()));
                        Box::pin(async move { outcome })
                    }
                }
            }
        }
    }
}

/// `handler` wrapped in `chain` (first = outermost); `handler` itself without middleware.
pub(crate) fn wrap(chain: &Arc<Vec<HandlerMiddleware>>, handler: HandlerFn) -> HandlerFn {
    if chain.is_empty() {
        return handler;
    }
    let chain = chain.clone();
    Arc::new(move |request| {
        Next {
            chain: chain.clone(),
            index: 0,
            handler: handler.clone(),
        }
        .run(request)
    })
}

/// The `error` outcome (type `panic`) of a handler that panicked with `message`.
pub(crate) fn panic_outcome(message: String) -> ExecutionOutcome {
    let message = if message.is_empty() {
        UNHANDLED_ERROR_MESSAGE.to_string()
    } else {
        message
    };
    let mut outcome = ExecutionOutcome::error(message).with_error_type("panic");
    if let Some(error) = outcome.error.as_mut() {
        error.traceback = Some(traceback::take_panic_traceback(&error.message));
    }
    outcome
}
