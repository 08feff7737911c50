//! Arguments recorded as input are `Serialize`, or skipped.

use serde_json::json;
use vigil_std::sink::capture;

struct Connection;

#[vigil_std::span(name = "query", input, skip(conn))]
fn query(sql: &str, conn: &Connection) -> usize {
    let _ = conn;
    sql.len()
}

#[vigil_std::span(name = "generic", input)]
fn generic<T: serde::Serialize + Clone>(value: T, n: impl serde::Serialize) -> T {
    let _ = serde_json::to_value(n);
    value.clone()
}

fn main() {
    let c = capture(|| {
        vigil_std::trace("t", |_| {
            query("select 1", &Connection);
            generic(vec![1, 2], 'x');
        })
    });
    assert_eq!(c.span("query").unwrap().input, json!({"sql": "select 1"}));
    assert_eq!(
        c.span("generic").unwrap().input,
        json!({"value": [1, 2], "n": "x"})
    );
}
