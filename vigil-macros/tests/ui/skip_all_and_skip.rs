#[vigil_std::span(input, skip_all, skip(password))]
fn login(user: &str, password: &str) -> bool {
    user != password
}

fn main() {}
