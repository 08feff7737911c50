#[vigil_std::span(name = 42)]
fn f() {}

#[vigil_std::span(name = tool)]
fn g(tool: &str) -> usize {
    tool.len()
}

fn main() {}
