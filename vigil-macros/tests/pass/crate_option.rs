//! `crate = ".."` names the SDK's path, for a crate that renames it.

extern crate vigil_std as sdk;

#[sdk::span(crate = "sdk", name = "renamed", input)]
fn renamed(n: u32) -> u32 {
    n + 1
}

fn main() {
    let c = sdk::sink::capture(|| sdk::trace("t", |_| assert_eq!(renamed(1), 2)));
    assert_eq!(c.span("renamed").unwrap().input["n"], 1);
}
