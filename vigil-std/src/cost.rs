//! What an LLM call cost: its tokens priced at the client's prices, shared
//! by the integrations and `log_llm_call`.

use serde_json::Value;

use crate::client::Client;
use crate::llm::pricing::{PriceTable, PricedCost, TokenUsage};

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
    usage: &Value,
    model: Option<&'a str>,
) -> Option<Priced<'a>> {
    let tokens = TokenUsage::from_usage(usage)?;
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

/// The prices of `client` (the built-in ones when there is none).
pub(crate) fn prices_of(client: Option<&Client>) -> &PriceTable {
    match client {
        Some(client) => client.config().prices(),
        None => crate::config::builtin_prices(),
    }
}
