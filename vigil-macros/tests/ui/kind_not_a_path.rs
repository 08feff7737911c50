#[vigil_std::span(kind = 3)]
fn f() {}

fn main() {}
