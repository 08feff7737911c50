#[vigil_std::span("answer", name = "reply")]
fn f() {}

fn main() {}
