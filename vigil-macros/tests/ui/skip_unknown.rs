#[vigil_std::span(input, skip(password))]
fn f(user: &str) -> usize {
    user.len()
}

fn main() {}
