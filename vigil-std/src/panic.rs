//! What a panic said, for the span it fails.
//!
//! A span that ends while its thread unwinds only learns *that* it panicked;
//! the message and location are only handed to the panic hook. So the first
//! client installs a hook that notes them for the panicking thread and then
//! calls the hook that was there before (the default one prints as usual).
//! A hook installed later by the application replaces this one: spans then
//! say only `panicked`.

use std::cell::RefCell;
use std::panic::PanicHookInfo;
use std::sync::Once;

thread_local! {
    /// The message of the panic this thread is unwinding from.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook, once per process.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = describe(info);
            let _ = LAST.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = Some(text);
                }
            });
            previous(info);
        }));
    });
}

/// `panicked at src/main.rs:10:5: the message`, as Rust prints it.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    match info.location() {
        Some(at) => format!(
            "panicked at {}:{}:{}: {message}",
            at.file(),
            at.line(),
            at.column()
        ),
        None => format!("panicked: {message}"),
    }
}

/// What the current panic said, for a span's `error` metadata; `panicked`
/// when the hook did not see it.
pub(crate) fn description() -> String {
    LAST.try_with(|last| last.try_borrow().ok().and_then(|l| l.clone()))
        .ok()
        .flatten()
        .unwrap_or_else(|| "panicked".to_owned())
}
