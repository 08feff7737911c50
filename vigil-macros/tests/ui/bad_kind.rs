#[vigil_std::span(kind = "bogus")]
fn f() {}

fn main() {}
