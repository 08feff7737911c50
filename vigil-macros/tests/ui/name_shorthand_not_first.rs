#[vigil_std::span(kind = "tool", "answer")]
fn f() {}

fn main() {}
