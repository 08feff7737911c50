//! What a model call cost: its token usage, and a price table kept as data.
//!
//! [`PriceTable::builtin`] holds the list prices of the common OpenAI,
//! Anthropic, Google, Mistral, DeepSeek and open-model endpoints, in USD per
//! million tokens, from `prices.json` (compiled in; its `as_of` date says
//! when its figures were published). An application adds or overrides
//! prices with [`PriceTable::extend`] (`vigil`'s config takes a table, and a
//! file in the same format through `VIGIL_PRICES`).
//!
//! A model name is matched, case-insensitively, to the first of these the
//! table has: the name; the name without a provider prefix up to its last
//! `/` (`openai/gpt-4o`, `models/gemini-2.5-pro`); and each of those with
//! version suffixes taken off one at a time from the end: `-latest`, a date
//! `-YYYY-MM-DD` or `@YYYYMMDD`, or a `-` segment of three or more digits
//! (`-20241022`, `-0613`, `-002`). So `gpt-4o-2024-08-06` is `gpt-4o`, and
//! `claude-3-5-sonnet-20241022` is `claude-3-5-sonnet`, but `gpt-4o-audio`
//! is not `gpt-4o`: a model the table does not name is unpriced, never
//! costed at 0.
//!
//! ```
//! use serde_json::json;
//! use vigil::llm::pricing::{PriceTable, TokenUsage};
//!
//! let prices = PriceTable::builtin();
//! let (model, price) = prices.find("gpt-4o-mini-2024-07-18").unwrap();
//! assert_eq!(model, "gpt-4o-mini");
//! let usage = TokenUsage::from_usage(&json!({
//!     "prompt_tokens": 1_000_000, "completion_tokens": 100_000,
//!     "prompt_tokens_details": { "cached_tokens": 200_000 }
//! })).unwrap();
//! let cost = price.cost(&usage);
//! assert!((cost.total_usd - (0.8 * 0.15 + 0.2 * 0.075 + 0.1 * 0.6)).abs() < 1e-9);
//! assert!(prices.find("my-fine-tune").is_none());
//! ```

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::keys;

/// The built-in table's text: `{"as_of": "YYYY-MM-DD", "models": {name: price}}`.
pub const BUILTIN_PRICES: &str = include_str!("prices.json");

/// A model's prices, in USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
pub struct Price {
    /// Input tokens not read from a cache.
    pub input: f64,
    /// Output tokens, reasoning tokens included (providers bill them as output).
    pub output: f64,
    /// Input tokens read from the provider's prompt cache; `None`: as input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Input tokens written to the prompt cache (Anthropic); `None`: as input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl Price {
    /// What `usage` costs at these prices.
    pub fn cost(&self, usage: &TokenUsage) -> Cost {
        let usd = |tokens: u64, per_million: f64| tokens as f64 * per_million / 1e6;
        let input_usd = usd(usage.input, self.input);
        let cached_input_usd = usd(usage.cached_input, self.cached_input.unwrap_or(self.input));
        let cache_write_usd = usd(usage.cache_write, self.cache_write.unwrap_or(self.input));
        let output_usd = usd(usage.output, self.output);
        Cost {
            input_usd,
            cached_input_usd,
            cache_write_usd,
            output_usd,
            reasoning_usd: usd(usage.reasoning.min(usage.output), self.output),
            total_usd: input_usd + cached_input_usd + cache_write_usd + output_usd,
        }
    }

    fn check(&self) -> bool {
        let ok = |p: f64| p.is_finite() && p >= 0.0;
        ok(self.input)
            && ok(self.output)
            && self.cached_input.is_none_or(ok)
            && self.cache_write.is_none_or(ok)
    }
}

/// The tokens of one call, split the way they are priced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    /// Input tokens not read from a cache.
    #[serde(rename = "input_tokens")]
    pub input: u64,
    /// Input tokens read from the prompt cache (left out when 0).
    #[serde(rename = "cached_input_tokens", skip_serializing_if = "is_zero")]
    pub cached_input: u64,
    /// Input tokens written to the prompt cache (left out when 0).
    #[serde(rename = "cache_write_tokens", skip_serializing_if = "is_zero")]
    pub cache_write: u64,
    /// Output tokens, reasoning included.
    #[serde(rename = "output_tokens")]
    pub output: u64,
    /// The part of the output spent reasoning (left out when 0).
    #[serde(rename = "reasoning_tokens", skip_serializing_if = "is_zero")]
    pub reasoning: u64,
}

impl TokenUsage {
    /// The usage an `llm` span's output records, in either of its shapes:
    /// OpenAI's (`prompt_tokens`, which counts cached tokens too,
    /// `completion_tokens`, and their `_details` with `cached_tokens` and
    /// `reasoning_tokens`; also what the Responses API and the GenAI
    /// attributes are recorded as) or Anthropic's (`input_tokens`, which does
    /// not, `output_tokens`, `cache_read_input_tokens`,
    /// `cache_creation_input_tokens`). `None` when it has no token counts.
    ///
    /// ```
    /// use serde_json::json;
    /// use vigil::llm::pricing::TokenUsage;
    ///
    /// let anthropic = json!({ "input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90 });
    /// let usage = TokenUsage::from_usage(&anthropic).unwrap();
    /// assert_eq!((usage.input, usage.cached_input, usage.output), (10, 90, 5));
    /// assert_eq!(TokenUsage::from_usage(&json!({ "prompt_tokens": null })), None);
    /// ```
    pub fn from_usage(usage: &Value) -> Option<TokenUsage> {
        let n = |v: &Value| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        };
        TokenUsage::from_counts(|path| path.iter().try_fold(usage, |v, k| v.get(*k)).and_then(n))
    }

    /// [`from_usage`](TokenUsage::from_usage) over `count`, which finds the
    /// count at a path of keys (`["prompt_tokens_details", "cached_tokens"]`).
    pub(crate) fn from_counts(count: impl Fn(&[&str]) -> Option<u64>) -> Option<TokenUsage> {
        if let Some(prompt) = count(&[keys::PROMPT_TOKENS]) {
            let cached = count(&[keys::PROMPT_TOKENS_DETAILS, "cached_tokens"]).unwrap_or(0);
            Some(TokenUsage {
                input: prompt.saturating_sub(cached),
                cached_input: cached.min(prompt),
                cache_write: 0,
                output: count(&[keys::COMPLETION_TOKENS]).unwrap_or(0),
                reasoning: count(&[keys::COMPLETION_TOKENS_DETAILS, "reasoning_tokens"])
                    .unwrap_or(0),
            })
        } else {
            count(&[keys::INPUT_TOKENS]).map(|input| TokenUsage {
                input,
                cached_input: count(&[keys::CACHE_READ_INPUT_TOKENS]).unwrap_or(0),
                cache_write: count(&[keys::CACHE_CREATION_INPUT_TOKENS]).unwrap_or(0),
                output: count(&[keys::OUTPUT_TOKENS]).unwrap_or(0),
                reasoning: 0,
            })
        }
    }
}

/// What a call cost, in USD; `reasoning_usd` is the part of `output_usd`
/// spent on reasoning tokens (counted once, in the total, as output). Parts
/// that come to 0 are left out when it is serialized, `total_usd` never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Input tokens not read from a cache.
    #[serde(skip_serializing_if = "is_nothing")]
    pub input_usd: f64,
    /// Input tokens read from the cache.
    #[serde(skip_serializing_if = "is_nothing")]
    pub cached_input_usd: f64,
    /// Input tokens written to the cache.
    #[serde(skip_serializing_if = "is_nothing")]
    pub cache_write_usd: f64,
    /// Output tokens.
    #[serde(skip_serializing_if = "is_nothing")]
    pub output_usd: f64,
    /// The reasoning part of `output_usd`.
    #[serde(skip_serializing_if = "is_nothing")]
    pub reasoning_usd: f64,
    /// The call's cost.
    pub total_usd: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_nothing(usd: &f64) -> bool {
    *usd == 0.0
}

/// Prices by model name, matched as the [module docs](self) say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    as_of: String,
    models: BTreeMap<String, Price>,
}

#[derive(Deserialize)]
struct PriceFile {
    #[serde(default)]
    as_of: String,
    models: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The table compiled in, [`BUILTIN_PRICES`].
    pub fn builtin() -> PriceTable {
        PriceTable::from_json(BUILTIN_PRICES).unwrap_or_default()
    }

    /// A table from JSON text in the format of [`BUILTIN_PRICES`].
    ///
    /// ```
    /// use vigil::llm::pricing::PriceTable;
    ///
    /// let ours = PriceTable::from_json(r#"{"models": {"Our-Model": {"input": 1, "output": 2}}}"#).unwrap();
    /// assert_eq!(ours.find("our-model-2025-01-01").unwrap().0, "our-model");
    /// let err = PriceTable::from_json(r#"{"models": {"m": {"input": -1, "output": 2}}}"#).unwrap_err();
    /// assert_eq!(err.to_string(), "the price of \"m\" is not a number of USD at or above 0");
    /// ```
    pub fn from_json(text: &str) -> Result<PriceTable, PriceError> {
        let file: PriceFile =
            serde_json::from_str(text).map_err(|e| PriceError::Format(alloc::format!("{e}")))?;
        let mut table = PriceTable {
            as_of: file.as_of,
            models: BTreeMap::new(),
        };
        for (name, price) in file.models {
            if !price.check() {
                return Err(PriceError::Price(name));
            }
            table.models.insert(name.to_ascii_lowercase(), price);
        }
        Ok(table)
    }

    /// When the table's figures were published (`YYYY-MM-DD`; empty if not said).
    pub fn as_of(&self) -> &str {
        &self.as_of
    }

    /// Adds `other`'s prices, replacing this table's for the same names;
    /// its date, if it has one, becomes the table's.
    pub fn extend(&mut self, other: PriceTable) {
        if !other.as_of.is_empty() {
            self.as_of = other.as_of;
        }
        self.models.extend(other.models);
    }

    /// Sets the price of `model` (matched by its lowercase name).
    pub fn insert(&mut self, model: &str, price: Price) {
        self.models.insert(model.to_ascii_lowercase(), price);
    }

    /// The table's name for `model` and its price, or `None`: unpriced.
    pub fn find(&self, model: &str) -> Option<(&str, &Price)> {
        let model = model.trim();
        // Names are usually lowercase already: no copy then.
        let lower: Cow<'_, str> = if model.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(model.to_ascii_lowercase())
        } else {
            Cow::Borrowed(model)
        };
        let lower = lower.as_ref();
        let bare = lower.rsplit('/').next().unwrap_or(lower);
        for name in [lower, bare] {
            let mut candidate = name;
            loop {
                if let Some((k, p)) = self.models.get_key_value(candidate) {
                    return Some((k.as_str(), p));
                }
                match without_version(candidate) {
                    Some(shorter) => candidate = shorter,
                    None => break,
                }
            }
        }
        None
    }

    /// How many models it prices.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether it prices none.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// `name` without its last version suffix, if it has one.
fn without_version(name: &str) -> Option<&str> {
    if let Some(rest) = name.strip_suffix("-latest") {
        return Some(rest);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // -YYYY-MM-DD
    if name.len() > 11 {
        let (rest, date) = name.split_at(name.len() - 11);
        let b = date.as_bytes();
        if b[0] == b'-'
            && b[5] == b'-'
            && b[8] == b'-'
            && digits(&date[1..5])
            && digits(&date[6..8])
            && digits(&date[9..])
        {
            return Some(rest);
        }
    }
    // @YYYYMMDD
    if let Some((rest, date)) = name.rsplit_once('@') {
        if date.len() == 8 && digits(date) {
            return Some(rest);
        }
    }
    // -NNN...
    let (rest, last) = name.rsplit_once('-')?;
    (last.len() >= 3 && digits(last) && !rest.is_empty()).then_some(rest)
}

/// A price table that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriceError {
    /// The text is not a table in the format of [`BUILTIN_PRICES`].
    Format(String),
    /// A model's price is negative or not a finite number.
    Price(String),
}

impl fmt::Display for PriceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceError::Format(e) => write!(f, "not a price table: {e}"),
            PriceError::Price(m) => {
                write!(f, "the price of {m:?} is not a number of USD at or above 0")
            }
        }
    }
}

impl core::error::Error for PriceError {}

/// The metadata key of a priced call's [`TokenUsage`] (`vigil.tokens`).
pub const TOKENS_KEY: &str = "vigil.tokens";
/// The metadata key of a priced call's [`Cost`], with the table's name
/// for the model and the date of its prices (`vigil.cost`).
pub const COST_KEY: &str = "vigil.cost";
/// The metadata key marking a call whose model has no price: its name
/// (`vigil.unpriced`).
pub const UNPRICED_KEY: &str = "vigil.unpriced";

/// The metadata key of a trace's totals, on its root span and so in the
/// trace's final `PATCH` (`vigil.totals`): its `calls` with token counts,
/// `unpriced_calls` among them, the sums of their [`TokenUsage`] fields
/// (`input_tokens`...) and `total_usd`, the cost of the priced ones.
pub const TOTALS_KEY: &str = "vigil.totals";

/// What a priced call records under [`COST_KEY`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricedCost<'a> {
    /// The cost.
    #[serde(flatten)]
    pub cost: Cost,
    /// The table's name of the model.
    pub model: &'a str,
    /// When its prices were published.
    pub prices_as_of: &'a str,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_builtin_table_parses_and_prices_every_provider() {
        let prices = PriceTable::from_json(BUILTIN_PRICES).unwrap();
        assert!(prices.len() >= 40, "{}", prices.len());
        assert!(!prices.as_of().is_empty());
        for (name, key) in [
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("GPT-4o", "gpt-4o"),
            ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
            ("o3-2025-04-16", "o3"),
            ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
            ("claude-sonnet-4-5", "claude-sonnet-4-5"),
            ("models/gemini-2.5-pro", "gemini-2.5-pro"),
            ("gemini-1.5-pro-002", "gemini-1.5-pro"),
            ("mistral-large-latest", "mistral-large"),
            ("mistral-large-2411", "mistral-large"),
            ("deepseek-chat", "deepseek-chat"),
            (
                "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                "meta-llama/llama-3.3-70b-instruct-turbo",
            ),
            ("text-embedding-3-small", "text-embedding-3-small"),
        ] {
            assert_eq!(prices.find(name).map(|(k, _)| k), Some(key), "{name}");
        }
        for unpriced in [
            "gpt-4o-audio-preview",
            "llama3.2:3b",
            "claude-3-5",
            "",
            "-2024-08-06",
            "my-model-123",
        ] {
            assert!(prices.find(unpriced).is_none(), "{unpriced}");
        }
    }

    #[test]
    fn usage_shapes_split_cached_and_reasoning_tokens() {
        let openai = json!({ "prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
            "prompt_tokens_details": { "cached_tokens": 600 }, "completion_tokens_details": { "reasoning_tokens": 300 } });
        let u = TokenUsage::from_usage(&openai).unwrap();
        assert_eq!(
            u,
            TokenUsage {
                input: 400,
                cached_input: 600,
                cache_write: 0,
                output: 500,
                reasoning: 300
            }
        );
        let price = Price {
            input: 2.0,
            output: 8.0,
            cached_input: Some(0.5),
            cache_write: None,
        };
        let c = price.cost(&u);
        assert!((c.input_usd - 0.0008).abs() < 1e-12);
        assert!((c.cached_input_usd - 0.0003).abs() < 1e-12);
        assert!((c.output_usd - 0.004).abs() < 1e-12);
        assert!(
            (c.reasoning_usd - 0.0024).abs() < 1e-12,
            "a part of the output"
        );
        assert!(
            (c.total_usd - 0.0051).abs() < 1e-12,
            "reasoning counted once"
        );

        let anthropic = json!({ "input_tokens": 100, "output_tokens": 50,
            "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200 });
        let u = TokenUsage::from_usage(&anthropic).unwrap();
        let sonnet = PriceTable::builtin()
            .find("claude-sonnet-4-5")
            .unwrap()
            .1
            .cost(&u);
        let expected = (100.0 * 3.0 + 1000.0 * 0.3 + 200.0 * 3.75 + 50.0 * 15.0) / 1e6;
        assert!((sonnet.total_usd - expected).abs() < 1e-12);

        // No cache price: cached tokens cost as input; odd counts are no usage.
        let plain = Price {
            input: 1.0,
            output: 1.0,
            cached_input: None,
            cache_write: None,
        };
        let u = TokenUsage::from_usage(
            &json!({ "prompt_tokens": 10, "prompt_tokens_details": { "cached_tokens": 50 } }),
        )
        .unwrap();
        assert_eq!(
            (u.input, u.cached_input),
            (0, 10),
            "cached never above the prompt"
        );
        assert!((plain.cost(&u).total_usd - 10.0 / 1e6).abs() < 1e-15);
        assert_eq!(
            TokenUsage::from_usage(&json!({ "prompt_tokens": "ten" })),
            None
        );
        assert_eq!(TokenUsage::from_usage(&json!(null)), None);
    }

    #[test]
    fn overrides_replace_and_add_prices() {
        let mut prices = PriceTable::builtin();
        let ours = PriceTable::from_json(
            r#"{"as_of": "2026-12-01", "models": {"gpt-4o": {"input": 1, "output": 1}, "ours": {"input": 3, "output": 4}}}"#,
        )
        .unwrap();
        prices.extend(ours);
        assert_eq!(prices.find("gpt-4o-2024-08-06").unwrap().1.input, 1.0);
        assert_eq!(prices.find("ours").unwrap().1.output, 4.0);
        assert_eq!(prices.as_of(), "2026-12-01");
        assert!(matches!(
            PriceTable::from_json("{}"),
            Err(PriceError::Format(_))
        ));
        assert!(matches!(
            PriceTable::from_json(
                r#"{"models": {"m": {"input": 1, "output": 1, "cached_input": -0.1}}}"#
            ),
            Err(PriceError::Price(_))
        ));
        let _ = without_version("x");
        let _ = without_version("-");
        let _ = without_version("@");
    }
}
