//! The integrations registry, with the seed's names.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

const NAMES: [&str; 2] = ["openai", "anthropic"];
static ACTIVE: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

/// The integrations this build knows: `["openai", "anthropic"]`.
pub fn available_integrations() -> &'static [&'static str] {
    &NAMES
}

/// Turns on the integration called `name`.
///
/// ```
/// vigil_std::activate_integration("openai").unwrap();
/// assert!(vigil_std::is_integration_active("openai"));
/// let err = vigil_std::activate_integration("cohere").unwrap_err();
/// assert_eq!(err.to_string(), "unknown integration \"cohere\"; available: openai, anthropic");
/// ```
pub fn activate_integration(name: &str) -> Result<(), UnknownIntegration> {
    let at = NAMES
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| UnknownIntegration(name.to_owned()))?;
    ACTIVE[at].store(true, Ordering::Relaxed);
    Ok(())
}

/// Turns on every integration.
pub fn activate_all_integrations() {
    ACTIVE.iter().for_each(|a| a.store(true, Ordering::Relaxed));
}

/// Turns off the integration called `name` (unknown names are ignored).
pub fn deactivate_integration(name: &str) {
    if let Some(at) = NAMES.iter().position(|n| *n == name) {
        ACTIVE[at].store(false, Ordering::Relaxed);
    }
}

/// Whether the integration called `name` is on.
pub fn is_integration_active(name: &str) -> bool {
    NAMES
        .iter()
        .position(|n| *n == name)
        .is_some_and(|at| ACTIVE[at].load(Ordering::Relaxed))
}

/// An integration name that is not in [`available_integrations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownIntegration(pub String);

impl fmt::Display for UnknownIntegration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown integration {:?}; available: {}",
            self.0,
            NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownIntegration {}
