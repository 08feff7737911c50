//! What the macros accept compiles and records what it says; misuse fails to
//! compile with a clear message.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
