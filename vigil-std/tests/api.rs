//! The tracing API, through the in-memory capture (no global state).

use std::collections::HashSet;

mod common;

use common::{block_on, YieldOnce};
use serde_json::json;
use vigil_std::sink::{capture, capture_with};
use vigil_std::{
    current_span, current_trace, Config, Context, InstrumentExt, SpanKind, SpanStatus,
};

#[test]
fn spans_nest_under_the_current_span_and_the_trace_root() {
    let c = capture(|| {
        vigil_std::trace("pipeline", |_| {
            vigil_std::span("outer", SpanKind::Agent, |_| {
                vigil_std::span("inner", SpanKind::Tool, |_| ());
            });
        })
    });
    let root = c.span("pipeline").unwrap();
    let outer = c.span("outer").unwrap();
    let inner = c.span("inner").unwrap();
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.kind, "chain");
    assert_eq!(outer.parent_span_id.as_ref(), Some(&root.span_id));
    assert_eq!(inner.parent_span_id.as_ref(), Some(&outer.span_id));
    assert!(c.spans().all(|s| s.trace_id == root.trace_id));
    let trace = c.trace("pipeline").unwrap();
    assert_eq!(trace.status.as_deref(), Some("ok"));
    assert_eq!(c.traces.len(), 1);
    // Durations nest: the parent starts before and ends after its child.
    assert!(outer.start_time <= inner.start_time && outer.end_time >= inner.end_time);
}

#[test]
fn handles_set_input_output_metadata_events_status_and_name() {
    let c = capture(|| {
        vigil_std::trace("t", |t| {
            t.set_metadata("version", "1.0");
            let s = vigil_std::start_span("draft", SpanKind::Llm);
            current_span().set_input(&json!({"prompt": "Hi"}));
            current_span().set_output(&"Hello");
            vigil_std::log_event("token", &json!({"n": 1}));
            vigil_std::attach_metadata("model", "gpt-4");
            current_trace().set_metadata("user", "u1");
            s.set_name("renamed");
            s.set_kind(SpanKind::Tool);
            s.set_status(SpanStatus::Unset);
        })
    });
    let s = c.span("renamed").unwrap();
    assert_eq!(s.kind, "tool");
    assert_eq!(s.status, "unset", "an explicit status is kept");
    assert_eq!(s.input, json!({"prompt": "Hi"}));
    assert_eq!(s.output, json!({"value": "Hello"}));
    assert_eq!(s.metadata, json!({"model": "gpt-4"}));
    assert_eq!(s.events[0]["name"], "token");
    assert_eq!(s.events[0]["attributes"], json!({"n": 1}));
    let trace = c.trace("t").unwrap();
    assert_eq!(trace.metadata["version"], "1.0");
    assert_eq!(trace.metadata["user"], "u1");
}

#[test]
fn errors_and_panics_mark_spans_failed() {
    let c = capture(|| {
        let r: Result<(), String> = vigil_std::try_trace("t", |_| {
            vigil_std::try_span("fails", SpanKind::Tool, |_| Err::<(), _>("boom".to_owned()))
        });
        assert!(r.is_err());
        let caught = std::panic::catch_unwind(|| {
            vigil_std::trace("p", |_| {
                vigil_std::span("panics", SpanKind::Tool, |_| panic!("bad"))
            })
        });
        assert!(caught.is_err());
    });
    let fails = c.span("fails").unwrap();
    assert_eq!(fails.status, "error");
    assert_eq!(fails.metadata["error"], "boom");
    assert_eq!(c.trace("t").unwrap().status.as_deref(), Some("error"));
    assert_eq!(c.span("panics").unwrap().status, "error");
    assert_eq!(c.span("p").unwrap().status, "error");
    assert_eq!(c.trace("p").unwrap().status.as_deref(), Some("error"));
}

#[test]
fn guards_dropped_out_of_order_leave_the_stack_consistent() {
    let c = capture(|| {
        let t = vigil_std::start_trace("t");
        let a = vigil_std::start_span("a", SpanKind::Tool);
        let b = vigil_std::start_span("b", SpanKind::Tool);
        drop(a); // ends before its child
        assert_eq!(current_span().id(), b.id(), "b is still current");
        let c2 = vigil_std::start_span("c", SpanKind::Tool);
        drop(b);
        drop(c2);
        assert_eq!(current_span().id(), t.id());
        vigil_std::span("d", SpanKind::Tool, |_| ());
    });
    let id = |n: &str| c.span(n).unwrap().span_id.clone();
    assert_eq!(c.span("b").unwrap().parent_span_id, Some(id("a")));
    assert_eq!(c.span("c").unwrap().parent_span_id, Some(id("b")));
    assert_eq!(c.span("d").unwrap().parent_span_id, Some(id("t")));
}

#[test]
fn nested_traces_are_separate_traces_and_a_lone_span_starts_its_own() {
    let c = capture(|| {
        vigil_std::trace("outer", |_| {
            vigil_std::trace("inner", |_| vigil_std::span("x", SpanKind::Tool, |_| ()));
        });
        vigil_std::span("lone", SpanKind::Tool, |_| ());
    });
    assert_eq!(c.traces.len(), 3);
    let x = c.span("x").unwrap();
    assert_eq!(x.trace_id, c.span("inner").unwrap().trace_id);
    assert_ne!(x.trace_id, c.span("outer").unwrap().trace_id);
    // Documented: a span with no active trace is the root of a trace of its own.
    let lone = c.trace("lone").unwrap();
    assert_eq!(lone.spans.len(), 1);
    assert_eq!(lone.spans[0].parent_span_id, None);
}

#[test]
fn context_follows_spawned_threads() {
    let c = capture(|| {
        vigil_std::trace("t", |_| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    vigil_std::spawn(move || {
                        vigil_std::span(format!("worker-{i}"), SpanKind::Tool, |_| ());
                    })
                })
                .collect();
            handles.into_iter().for_each(|h| h.join().unwrap());
            // Attached and detached explicitly.
            let ctx = Context::current();
            std::thread::spawn(move || {
                {
                    let _g = ctx.attach();
                    vigil_std::span("attached", SpanKind::Tool, |_| ());
                }
                assert!(current_span().id().is_none(), "detached again");
            })
            .join()
            .unwrap();
        })
    });
    let root = c.span("t").unwrap();
    for name in ["worker-0", "worker-3", "attached"] {
        assert_eq!(
            c.span(name).unwrap().parent_span_id.as_ref(),
            Some(&root.span_id),
            "{name}"
        );
    }
    assert_eq!(c.traces.len(), 1);
}

#[test]
fn instrumented_futures_keep_their_span_across_polls_with_a_hand_written_executor() {
    let c = capture(|| {
        block_on(
            async {
                YieldOnce(false).await;
                vigil_std::span("after-await", SpanKind::Tool, |_| ());
                current_span().set_metadata("polled", &true);
                async {
                    YieldOnce(false).await;
                    vigil_std::log_event("inside", &());
                }
                .in_span("inner-future", SpanKind::Llm)
                .await;
            }
            .in_trace("async-trace"),
        );
        assert!(
            current_span().id().is_none(),
            "nothing leaks onto the thread"
        );
    });
    let root = c.span("async-trace").unwrap();
    assert_eq!(root.metadata["polled"], true);
    assert_eq!(
        c.span("after-await").unwrap().parent_span_id.as_ref(),
        Some(&root.span_id)
    );
    let inner = c.span("inner-future").unwrap();
    assert_eq!(inner.parent_span_id.as_ref(), Some(&root.span_id));
    assert_eq!(inner.events[0]["name"], "inside");
}

#[test]
fn instrumented_and_with_context_futures_show_their_future_and_span_in_debug() {
    let (id, c) = capture_with(Config::builder(), || {
        let mut task = std::pin::pin!(std::future::ready(7).in_span("debugged", SpanKind::Tool));
        let id = task.handle().id().expect("recorded");
        assert_eq!(
            format!("{task:?}"),
            format!("Instrumented {{ future: Ready(Some(7)), span_id: Some({id:?}) }}")
        );
        assert_eq!(block_on(task.as_mut()), 7);
        assert_eq!(
            format!("{task:?}"),
            "Instrumented { future: Ready(None), span_id: None }",
            "ended"
        );
        vigil_std::trace("parent", |t| {
            let trace = t.trace_id().unwrap();
            let task = std::future::ready(()).with_context(Context::current());
            let shown = format!("{task:?}");
            assert!(
                shown.starts_with("WithContext { future: Ready(Some(())), context: Context {"),
                "{shown}"
            );
            assert!(shown.contains(&format!("trace_id: {trace:?}")), "{shown}");
        });
        id
    });
    assert_eq!(c.span("debugged").unwrap().span_id, id.to_string());
}

#[test]
fn futures_on_a_multi_thread_tokio_runtime_never_see_each_others_spans() {
    let c = capture(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let ctx_client = Context::current();
        rt.block_on(async move {
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    tokio::spawn(
                        async move {
                            for j in 0..3 {
                                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                                tokio::task::yield_now().await;
                                vigil_std::span(
                                    format!("task-{i}-step-{j}"),
                                    SpanKind::Tool,
                                    |_| (),
                                );
                            }
                        }
                        .in_trace(format!("task-{i}"))
                        .with_context(ctx_client.clone()),
                    )
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
    });
    assert_eq!(c.traces.len(), 16);
    for i in 0..16 {
        let trace = c.trace(&format!("task-{i}")).unwrap();
        assert_eq!(trace.spans.len(), 4, "task {i}");
        let root = trace
            .spans
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .unwrap();
        for s in trace.spans.iter().filter(|s| s.parent_span_id.is_some()) {
            assert!(
                s.name.starts_with(&format!("task-{i}-")),
                "{} in task {i}",
                s.name
            );
            assert_eq!(s.parent_span_id.as_ref(), Some(&root.span_id));
        }
    }
}

#[test]
fn convenience_functions_do_nothing_without_a_client() {
    vigil_std::log_event("e", &json!({"k": 1}));
    vigil_std::attach_metadata("k", "v");
    vigil_std::log_llm_call("gpt-4", &json!({}), &json!({}));
    vigil_std::log_tool_call("search", &json!({}), &json!({}));
    let out = vigil_std::span("s", SpanKind::Tool, |s| {
        assert!(!s.is_recording());
        7
    });
    assert_eq!(out, 7);
}

#[test]
fn log_llm_call_and_log_tool_call_make_ended_spans() {
    let c = capture(|| {
        vigil_std::trace("t", |_| {
            vigil_std::log_llm_call("gpt-4", &json!({"prompt": "Hi"}), &json!({"text": "Hello"}));
            vigil_std::log_tool_call("search", &json!({"query": "foo"}), &json!({"results": [1]}));
        })
    });
    let llm = c.span("llm:gpt-4").unwrap();
    assert_eq!((llm.kind.as_str(), llm.status.as_str()), ("llm", "ok"));
    assert_eq!(llm.output, json!({"text": "Hello"}));
    assert!(llm.end_time.is_some());
    let tool = c.span("tool:search").unwrap();
    assert_eq!(tool.kind, "tool");
    assert_eq!(tool.input, json!({"query": "foo"}));
}

#[test]
fn trace_context_uses_the_given_client_and_metadata() {
    let (transport, store) = vigil_std::sink::MemoryTransport::new();
    let config = Config::builder()
        .flush_interval_ms(10)
        .transport(move || transport.clone());
    let client = vigil_std::Client::new(config.build().unwrap()).unwrap();
    {
        let _trace = vigil_std::trace_context(&client, "op", &json!({"k": "v"}));
        vigil_std::span("child", SpanKind::Tool, |_| ());
        let handle = std::thread::spawn({
            let ctx = Context::current();
            move || {
                let _g = ctx.attach();
                vigil_std::span("in-thread", SpanKind::Tool, |_| ());
            }
        });
        handle.join().unwrap();
    }
    let r: Result<(), &str> = vigil_std::with_trace_context(&client, "failing", &(), |_| Err("no"));
    assert!(r.is_err());
    let report = client.shutdown();
    assert!(report.completed);
    let c = store.captured();
    let op = c.trace("op").unwrap();
    assert_eq!(op.metadata["k"], "v");
    assert_eq!(op.spans.len(), 3, "children go to the trace's client");
    assert_eq!(c.trace("failing").unwrap().status.as_deref(), Some("error"));
}

#[test]
fn disabled_sdk_records_nothing() {
    let (n, c) = capture_with(Config::builder().enabled(false), || {
        vigil_std::trace("t", |t| {
            assert!(!t.is_recording());
            vigil_std::span("s", SpanKind::Tool, |_| 3)
        })
    });
    assert_eq!(n, 3);
    assert!(c.traces.is_empty());
    assert_eq!(c.report.unwrap().stats.spans_started, 0);
}

#[test]
fn sampling_is_decided_once_per_trace() {
    let (_, none) = capture_with(Config::builder().sample_rate(0.0), || {
        for _ in 0..50 {
            vigil_std::trace("t", |_| vigil_std::span("s", SpanKind::Tool, |_| ()));
        }
    });
    assert!(none.traces.is_empty());
    let (_, half) = capture_with(Config::builder().sample_rate(0.5), || {
        for _ in 0..400 {
            vigil_std::trace("t", |_| vigil_std::span("s", SpanKind::Tool, |_| ()));
        }
    });
    assert!(
        (120..280).contains(&half.traces.len()),
        "{}",
        half.traces.len()
    );
    assert!(
        half.traces.iter().all(|t| t.spans.len() == 2),
        "whole traces or nothing"
    );
}

#[test]
fn masking_and_content_switch() {
    let (_, c) = capture_with(
        Config::builder().mask(|_, v| {
            if let Some(obj) = v.as_object_mut() {
                if obj.contains_key("password") {
                    obj.insert("password".into(), json!("***"));
                }
            }
        }),
        || {
            vigil_std::trace("t", |t| {
                t.set_input(&json!({"user": "a", "password": "hunter2"}));
                t.set_metadata("creds", &json!({"password": "x"}));
            })
        },
    );
    let s = c.span("t").unwrap();
    assert_eq!(s.input, json!({"user": "a", "password": "***"}));
    assert_eq!(s.metadata["creds"]["password"], "***");

    let (_, c) = capture_with(Config::builder().capture_content(false), || {
        vigil_std::trace("t", |t| {
            t.set_input(&json!({"secret": 1}));
            t.set_output(&"also secret");
            t.set_metadata("kept", &true);
        })
    });
    let s = c.span("t").unwrap();
    assert!(s.input.is_null() && s.output.is_null());
    assert_eq!(s.metadata["kept"], true);
}

#[test]
fn ids_are_unique_across_many_traces() {
    let c = capture(|| {
        for _ in 0..200 {
            vigil_std::trace("t", |_| {
                for _ in 0..5 {
                    vigil_std::span("s", SpanKind::Tool, |_| ());
                }
            });
        }
    });
    let ids: HashSet<_> = c.spans().map(|s| s.span_id.clone()).collect();
    assert_eq!(ids.len(), 1200);
    let traces: HashSet<_> = c.traces.iter().map(|t| t.trace_id.clone()).collect();
    assert_eq!(traces.len(), 200);
}

#[test]
fn dropping_the_last_client_flushes_and_stops_its_exporter() {
    let (transport, store) = vigil_std::sink::MemoryTransport::new();
    let config = Config::builder()
        .flush_interval_ms(600_000)
        .transport(move || transport.clone());
    let client = vigil_std::Client::new(config.build().unwrap()).unwrap();
    client.scope(|| vigil_std::trace("t", |_| ()));
    drop(client);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.captured().trace("t").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        store.captured().trace("t").is_some(),
        "sent without waiting for the 10-minute interval"
    );
}

/// Work done by a `Drop` while the thread unwinds did not fail itself.
#[test]
fn spans_made_during_unwinding_are_not_blamed_for_the_panic() {
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            vigil_std::log_tool_call("cleanup", &"files", &"removed");
        }
    }
    let c = capture(|| {
        let caught = std::panic::catch_unwind(|| {
            vigil_std::trace("work", |_| {
                let _cleanup = Cleanup;
                panic!("bad");
            })
        });
        assert!(caught.is_err());
    });
    assert_eq!(c.span("work").unwrap().status, "error");
    assert_eq!(c.span("tool:cleanup").unwrap().status, "ok");
}

/// An executor that catches a panicking poll and drops the future later.
#[test]
fn a_future_whose_poll_panicked_ends_failed_even_if_dropped_later() {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let c = capture(|| {
        let mut future = Box::pin(
            async {
                panic!("in poll");
            }
            .in_span("task", SpanKind::Agent),
        );
        let mut cx = TaskContext::from_waker(&waker);
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            matches!(future.as_mut().poll(&mut cx), Poll::Ready(()))
        }));
        assert!(polled.is_err());
        drop(future); // outside the unwind
    });
    let task = c.span("task").unwrap();
    assert_eq!(task.status, "error");
    let error = task.metadata["error"].as_str().unwrap();
    assert!(
        error.starts_with("panicked at ") && error.ends_with(": in poll"),
        "{error}"
    );
}

/// Client scopes that end out of order each remove their own client.
#[test]
fn scopes_ending_out_of_order_remove_their_own_client() {
    let config = || {
        Config::builder()
            .transport(vigil_std::sink::NullTransport::default)
            .build()
            .unwrap()
    };
    let (a, b) = (
        vigil_std::Client::new(config()).unwrap(),
        vigil_std::Client::new(config()).unwrap(),
    );
    // Contexts that carry only a client (no span yet).
    let (in_a, in_b) = (a.scope(Context::current), b.scope(Context::current));
    let guard_a = in_a.attach();
    let guard_b = in_b.attach();
    drop(guard_a); // a ends first; b must stay the client here
    vigil_std::span("after", SpanKind::Tool, |_| ());
    drop(guard_b);
    assert!(b.flush(std::time::Duration::from_secs(5)));
    assert_eq!(b.stats().spans_ended, 1);
    assert_eq!(a.stats().spans_ended, 0);
}

#[test]
fn spans_still_open_when_their_thread_exits_end_then_and_are_marked() {
    let captured = capture(|| {
        vigil_std::spawn(|| {
            let trace = vigil_std::start_trace("leaked");
            let step = vigil_std::start_span("leaked step", SpanKind::Tool);
            step.set_input(&json!({"query": "kept"}));
            std::mem::forget(step);
            std::mem::forget(trace);
        })
        .join()
        .unwrap();
    });
    let trace = captured.span("leaked").expect("the trace was sent");
    let step = captured.span("leaked step").expect("the step was sent");
    for span in [trace, step] {
        assert_eq!(span.metadata["vigil.ended_at_thread_exit"], true);
        assert_eq!(span.status, "ok");
    }
    assert_eq!(step.input["query"], "kept");
    assert_eq!(step.parent_span_id.as_ref(), Some(&trace.span_id));
}

#[test]
fn a_span_reached_through_a_context_stops_recording_when_it_ends() {
    use std::sync::mpsc::channel;
    let (report, reports) = channel::<bool>();
    let (end, ended) = channel::<()>();
    let _captured = capture(|| {
        let worker = vigil_std::trace("parent", |_| {
            let context = Context::current();
            let worker = std::thread::spawn(move || {
                let _attached = context.attach();
                let parent = current_span();
                report.send(parent.is_recording()).unwrap();
                ended.recv().unwrap();
                report.send(parent.is_recording()).unwrap();
            });
            assert!(reports.recv().unwrap(), "recording while the span lives");
            worker
        });
        end.send(()).unwrap();
        worker.join().unwrap();
    });
    assert!(!reports.recv().unwrap(), "not recording once it ended");
}

#[test]
fn updates_from_threads_that_hold_only_a_context_reach_the_span() {
    let captured = capture(|| {
        vigil_std::trace("parent", |_| {
            vigil_std::spawn(|| {
                vigil_std::log_event("cache-hit", &json!({"key": "user:123"}));
                vigil_std::attach_metadata("worker", &7);
                let parent = current_span();
                assert!(parent.is_recording());
                assert!(parent.trace_id().is_some());
                parent.set_output(&json!({"answer": 42}));
                parent.record_error(&"worker failed");
                // New spans here still become children, as before.
                vigil_std::span("in-thread", SpanKind::Tool, |_| ());
            })
            .join()
            .unwrap();
        });
    });
    let parent = captured.span("parent").unwrap();
    assert_eq!(parent.events.len(), 1);
    assert_eq!(parent.events[0]["name"], "cache-hit");
    assert_eq!(parent.events[0]["attributes"]["key"], "user:123");
    assert_eq!(parent.metadata["worker"], 7);
    assert_eq!(parent.output["answer"], 42);
    assert_eq!(parent.status, "error");
    assert_eq!(parent.metadata["error"], "worker failed");
    let child = captured.span("in-thread").unwrap();
    assert_eq!(child.parent_span_id.as_ref(), Some(&parent.span_id));
}

#[test]
fn updates_that_arrive_after_their_span_ended_are_counted() {
    let client = null_client();
    let context = client.scope(|| {
        let _trace = vigil_std::start_trace("short-lived");
        Context::current()
    });
    std::thread::spawn(move || {
        let _attached = context.attach();
        vigil_std::log_event("too late", &());
        vigil_std::attach_metadata("also", &"too late");
    })
    .join()
    .unwrap();
    let report = client.shutdown();
    assert_eq!(report.stats.refused_updates, 2);
    assert_eq!(report.stats.spans_delivered, 1);
}

#[test]
fn a_guard_held_across_an_await_is_not_current_for_other_tasks_on_the_thread() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context as TaskContext, Poll};

    /// Polls both futures in turn on this thread until both are done.
    struct Both<A, B>(Option<Pin<Box<A>>>, Option<Pin<Box<B>>>);
    impl<A: Future<Output = ()>, B: Future<Output = ()>> Future for Both<A, B> {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
            if self
                .0
                .as_mut()
                .is_some_and(|a| a.as_mut().poll(cx).is_ready())
            {
                self.0 = None;
            }
            if self
                .1
                .as_mut()
                .is_some_and(|b| b.as_mut().poll(cx).is_ready())
            {
                self.1 = None;
            }
            if self.0.is_none() && self.1.is_none() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    let captured = capture(|| {
        let _trace = vigil_std::start_trace("root");
        let a = async {
            let _held = vigil_std::start_span("a-guard", SpanKind::Tool);
            YieldOnce(false).await;
            vigil_std::span("a-child", SpanKind::Tool, |_| ());
        }
        .in_span("a", SpanKind::Chain);
        let b = async {
            YieldOnce(false).await;
            vigil_std::span("b-child", SpanKind::Tool, |_| ());
        }
        .in_span("b", SpanKind::Chain);
        block_on(Both(Some(Box::pin(a)), Some(Box::pin(b))));
        // And once the tasks are done, nothing of theirs is left current.
        vigil_std::span("after", SpanKind::Tool, |_| ());

        // A task dropped while it holds a guard: both spans end, cancelled.
        let mut cancelled = Box::pin(
            async {
                let _held = vigil_std::start_span("c-guard", SpanKind::Tool);
                YieldOnce(false).await;
                unreachable!("never polled again");
            }
            .in_span("c", SpanKind::Chain),
        );
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
        assert!(cancelled
            .as_mut()
            .poll(&mut TaskContext::from_waker(&waker))
            .is_pending());
        drop(cancelled);
    });
    let id = |name: &str| captured.span(name).unwrap().span_id.clone();
    let parent = |name: &str| captured.span(name).unwrap().parent_span_id.clone().unwrap();
    assert_eq!(parent("a-guard"), id("a"));
    assert_eq!(parent("a-child"), id("a-guard"));
    assert_eq!(parent("b-child"), id("b"), "not the other task's guard");
    assert_eq!(parent("after"), id("root"));
    assert_eq!(parent("c-guard"), id("c"));
    assert_eq!(
        captured.span("c").unwrap().metadata["vigil.cancelled"],
        true
    );
    assert!(captured.span("c-guard").is_some());
}

#[test]
fn a_future_dropped_before_it_completes_is_dropped_inside_its_span() {
    struct OnDrop;
    impl Drop for OnDrop {
        fn drop(&mut self) {
            vigil_std::span("in-drop", SpanKind::Tool, |_| ());
        }
    }
    let captured = capture(|| {
        let _trace = vigil_std::start_trace("root");
        let mut task = Box::pin(
            async {
                let _on_drop = OnDrop;
                let _held = vigil_std::start_span("held", SpanKind::Tool);
                YieldOnce(false).await;
            }
            .in_span("task", SpanKind::Chain),
        );
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::future::Future::poll(task.as_mut(), &mut cx).is_pending());
        drop(task);
        vigil_std::span("after", SpanKind::Tool, |_| ());
    });
    let span = |name: &str| captured.span(name).unwrap();
    let task = span("task");
    assert_eq!(task.metadata["vigil.cancelled"], true);
    assert_eq!(span("held").parent_span_id.as_ref(), Some(&task.span_id));
    assert!(
        span("held").metadata.get("vigil.cancelled").is_none(),
        "ended by its own guard, dropped with the future inside the span"
    );
    assert_eq!(span("in-drop").parent_span_id.as_ref(), Some(&task.span_id));
    assert_eq!(
        span("after").parent_span_id.as_ref(),
        Some(&span("root").span_id),
        "the task's span ended after its future"
    );
}

#[test]
fn handed_over_updates_come_before_later_local_ones_and_are_capped() {
    let captured = capture(|| {
        let span = vigil_std::start_trace("parent");
        vigil_std::spawn(|| {
            current_span().set_output(&json!({"answer": "partial"}));
            current_span().set_status(SpanStatus::Error);
            vigil_std::log_event("handed-over", &());
        })
        .join()
        .unwrap();
        // Set here after the worker's updates: these win.
        span.set_output(&json!({"answer": "final"}));
        span.set_status(SpanStatus::Ok);
        span.add_event("local", &());
    });
    let parent = captured.span("parent").unwrap();
    assert_eq!(parent.output["answer"], "final");
    assert_eq!(parent.status, "ok");
    let events: Vec<_> = parent.events.iter().map(|e| e["name"].clone()).collect();
    assert_eq!(events, [json!("handed-over"), json!("local")]);

    let client = null_client();
    client.scope(|| {
        let _span = vigil_std::start_trace("fed");
        vigil_std::spawn(|| {
            for i in 0..1100 {
                vigil_std::attach_metadata(&format!("k{i}"), &i);
            }
        })
        .join()
        .unwrap();
    });
    let report = client.shutdown();
    assert_eq!(report.stats.refused_updates, 1100 - 1024);
    assert_eq!(report.stats.spans_delivered, 1);
}

#[test]
fn a_guard_returned_by_a_future_stays_current_until_it_drops() {
    let captured = capture(|| {
        let _trace = vigil_std::start_trace("root");
        let session = block_on(
            async { vigil_std::start_span("session", SpanKind::Agent) }
                .in_span("setup", SpanKind::Chain),
        );
        vigil_std::span("in-session", SpanKind::Tool, |_| ());
        drop(session);
        vigil_std::span("after-session", SpanKind::Tool, |_| ());
    });
    let span = |name: &str| captured.span(name).unwrap();
    assert_eq!(
        span("session").parent_span_id,
        Some(span("setup").span_id.clone())
    );
    assert_eq!(
        span("in-session").parent_span_id,
        Some(span("session").span_id.clone())
    );
    assert_eq!(
        span("after-session").parent_span_id,
        Some(span("root").span_id.clone())
    );
    assert!(span("session").metadata.get("vigil.cancelled").is_none());
}

/// A client of its own that ships to nowhere.
fn null_client() -> vigil_std::Client {
    vigil_std::Client::new(
        Config::builder()
            .transport(vigil_std::sink::NullTransport::default)
            .build()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn an_update_that_cannot_reach_its_span_is_counted() {
    use vigil_std::InstrumentExt;
    let c = capture(|| {
        // Ended: the handle outlives its span.
        let handle = vigil_std::span("done", SpanKind::Tool, |s| *s);
        handle.set_metadata("late", &1);
        // Not polled yet: the span lives in the future, not on this thread.
        let task = async {}.in_span("task", SpanKind::Agent);
        task.handle().set_metadata("early", &true);
        drop(task);
    });
    assert_eq!(c.report.unwrap().stats.refused_updates, 2);
    assert!(c.span("done").unwrap().metadata.get("late").is_none());
}
