#[vigil_std::span(color = "red")]
fn f() {}

fn main() {}
