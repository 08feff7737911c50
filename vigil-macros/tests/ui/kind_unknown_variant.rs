use vigil_std::SpanKind;

#[vigil_std::span(kind = SpanKind::Bogus)]
fn f() {}

fn main() {}
