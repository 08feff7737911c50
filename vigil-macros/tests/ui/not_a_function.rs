#[vigil_std::span]
struct S;

fn main() {}
