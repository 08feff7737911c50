//! What an LLM call cost: its tokens priced at the client's prices, shared
//! by the integrations and `log_llm_call`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use vigil_core::TraceId;

use crate::client::Client;
use crate::llm::pricing::{
    PriceTable, PricedCost, TokenUsage, COST_KEY, TOKENS_KEY, TOTALS_KEY, UNPRICED_KEY,
};
use crate::Record;

/// A call's tokens, and their cost or the name of a model with no price.
pub(crate) enum Priced<'a> {
    /// Priced.
    Cost(TokenUsage, PricedCost<'a>),
    /// The model (empty if unknown) has no price.
    Unpriced(TokenUsage, &'a str),
}

/// Prices `usage` (an output's, in the shapes [`TokenUsage::from_usage`]
/// reads) for `model`; `None` when it has no token counts.
pub(crate) fn price<'a>(
    prices: &'a PriceTable,
    tokens: Option<TokenUsage>,
    model: Option<&'a str>,
) -> Option<Priced<'a>> {
    let tokens = tokens?;
    Some(match model.and_then(|m| prices.find(m)) {
        Some((name, price)) => Priced::Cost(
            tokens,
            PricedCost {
                cost: price.cost(&tokens),
                model: name,
                prices_as_of: prices.as_of(),
            },
        ),
        None => Priced::Unpriced(tokens, model.unwrap_or("")),
    })
}

/// Prices a call of `trace` (its output's `usage`, for `model`) at the
/// prices of `client`, records its entries through `set`, and adds it to
/// the trace's totals. Nothing when `usage` has no token counts.
pub(crate) fn record_call(
    client: Option<&Client>,
    trace: TraceId,
    tokens: Option<TokenUsage>,
    model: Option<&str>,
    mut set: impl FnMut(&str, &Entry<'_>),
) {
    let Some(priced) = price(prices_of(client), tokens, model) else {
        return;
    };
    for (key, value) in priced.entries() {
        set(key, &value);
    }
    add_to_trace(trace, &priced);
}

/// The prices of `client` (the built-in ones when there is none).
pub(crate) fn prices_of(client: Option<&Client>) -> &PriceTable {
    match client {
        Some(client) => client.config().prices(),
        None => crate::config::builtin_prices(),
    }
}

impl Priced<'_> {
    /// The metadata entries the call records: its tokens, and its cost or
    /// its unpriced model.
    pub(crate) fn entries(&self) -> [(&'static str, Entry<'_>); 2] {
        match self {
            Priced::Cost(tokens, cost) => [
                (TOKENS_KEY, Entry::Tokens(tokens)),
                (COST_KEY, Entry::Cost(cost)),
            ],
            Priced::Unpriced(tokens, model) => [
                (TOKENS_KEY, Entry::Tokens(tokens)),
                (UNPRICED_KEY, Entry::Unpriced(model)),
            ],
        }
    }

    fn tokens(&self) -> &TokenUsage {
        match self {
            Priced::Cost(tokens, _) | Priced::Unpriced(tokens, _) => tokens,
        }
    }
}

/// One metadata entry of a priced call.
pub(crate) enum Entry<'a> {
    Tokens(&'a TokenUsage),
    Cost(&'a PricedCost<'a>),
    Unpriced(&'a str),
}

impl Serialize for Entry<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Tokens(t) => t.serialize(serializer),
            Entry::Cost(c) => c.serialize(serializer),
            Entry::Unpriced(m) => m.serialize(serializer),
        }
    }
}

/// What the priced calls of one trace add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub(crate) struct TraceTotals {
    /// Calls with token counts.
    calls: u64,
    /// Of those, calls whose model has no price (not in `total_usd`).
    unpriced_calls: u64,
    input_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    /// The priced calls' cost.
    total_usd: f64,
}

/// Most traces whose totals are kept at once; beyond it, the oldest (a
/// trace whose root ended before a call of it did) is forgotten.
const MAX_TRACES: usize = 4096;

/// Totals of the traces with priced calls whose roots have not ended.
static TOTALS: Mutex<Option<HashMap<TraceId, (u64, TraceTotals)>>> = Mutex::new(None);
/// How many traces `TOTALS` holds: ending a root looks only when some do.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Adds a call of `trace` to its totals.
pub(crate) fn add_to_trace(trace: TraceId, priced: &Priced<'_>) {
    let Ok(mut totals) = TOTALS.lock() else {
        return;
    };
    let map = totals.get_or_insert_with(HashMap::new);
    if map.len() >= MAX_TRACES && !map.contains_key(&trace) {
        if let Some(oldest) = map
            .iter()
            .min_by_key(|(_, (seq, _))| *seq)
            .map(|(id, _)| *id)
        {
            map.remove(&oldest);
        }
    }
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) as u64;
    let entry = &mut map.entry(trace).or_insert((seq, TraceTotals::default())).1;
    let t = priced.tokens();
    entry.calls += 1;
    entry.input_tokens += t.input;
    entry.cached_input_tokens += t.cached_input;
    entry.cache_write_tokens += t.cache_write;
    entry.output_tokens += t.output;
    entry.reasoning_tokens += t.reasoning;
    match priced {
        Priced::Cost(_, cost) => entry.total_usd += cost.cost.total_usd,
        Priced::Unpriced(..) => entry.unpriced_calls += 1,
    }
    HELD.store(map.len(), Ordering::Relaxed);
}

/// A root span ending: its trace's totals, if any of its calls were priced,
/// go into its metadata (and so into the trace's PATCH).
#[inline(always)]
pub(crate) fn close_trace(root: &mut Record) {
    if HELD.load(Ordering::Relaxed) != 0 {
        take_totals(root);
    }
}

#[cold]
fn take_totals(root: &mut Record) {
    let taken = TOTALS.lock().ok().and_then(|mut totals| {
        let map = totals.as_mut()?;
        let taken = map.remove(&root.trace_id());
        HELD.store(map.len(), Ordering::Relaxed);
        taken
    });
    if let Some((_, totals)) = taken {
        let _ = root.set_metadata(TOTALS_KEY, &totals);
    }
}
