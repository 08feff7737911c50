struct Connection;

#[vigil_std::span(input)]
fn query(sql: &str, conn: &Connection) -> usize {
    let _ = conn;
    sql.len()
}

#[vigil_std::span(input)]
fn generic<T: Clone>(value: T) -> T {
    value.clone()
}

#[vigil_std::span(input)]
async fn fetch(url: String, client: Connection) -> usize {
    let _ = client;
    url.len()
}

fn main() {}
