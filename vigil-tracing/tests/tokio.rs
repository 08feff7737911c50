//! `tracing`'s futures on tokio's multi-thread runtime: `Instrument`ed
//! futures and `tokio::spawn(fut.in_current_span())` keep their spans, and
//! Vigil's, in one tree whichever worker polls them. One global subscriber
//! for the binary (worker threads need it), so one test.

use std::time::Duration;

use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use vigil::SpanKind;

#[vigil::span(kind = "tool")]
async fn fetch(i: usize) -> usize {
    tokio::time::sleep(Duration::from_millis(1)).await;
    i
}

#[test]
fn instrumented_and_spawned_futures_keep_one_tree_on_any_worker() {
    let subscriber = tracing_subscriber::registry().with(vigil_tracing::layer());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let captured = runtime.block_on(vigil::sink::capture_async(async {
        async {
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let task = async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        let n = fetch(i).await;
                        tracing::info_span!("after-fetch", n).in_scope(|| ());
                        vigil::span("sync-step", SpanKind::Custom, |_| ());
                    }
                    .instrument(tracing::info_span!("task", i));
                    tokio::spawn(task.in_current_span())
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
        .instrument(tracing::info_span!("fan-out"))
        .await
    }));
    let fan_out = captured.span("fan-out").unwrap();
    let tasks: Vec<_> = captured.spans().filter(|s| s.name == "task").collect();
    assert_eq!(tasks.len(), 20);
    for task in &tasks {
        assert_eq!(task.parent_span_id, Some(fan_out.span_id.clone()));
        let children: Vec<_> = captured
            .spans()
            .filter(|s| s.parent_span_id.as_ref() == Some(&task.span_id))
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(children.len(), 3, "{children:?}");
        assert!(
            children.iter().any(|n| n.ends_with("fetch")),
            "{children:?}"
        );
        assert!(children.contains(&"after-fetch") && children.contains(&"sync-step"));
    }
    assert!(captured.spans().all(|s| s.trace_id == fan_out.trace_id));
    assert_eq!(captured.spans().count(), 1 + 20 * 4);
}
