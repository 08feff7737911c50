#[vigil_std::span(input, skip(self))]
fn f(user: &str) -> usize {
    user.len()
}

fn main() {}
