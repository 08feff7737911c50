const KIND: &str = "llm";

#[vigil_std::span(kind = KIND)]
fn f() {}

fn main() {}
