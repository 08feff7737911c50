#[vigil_std::trace]
const fn f() -> u32 {
    1
}

fn main() {}
