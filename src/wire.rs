//! The JSON shapes that cross the wire, shared by every service and the client.
//!
//! Services meet only over HTTP; these types are the one place where the shape
//! of a body is written down, so a change to a field shows up everywhere it is used.

use crate::http::ApiError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest product name or category, in bytes. The catalog refuses a seed with a longer
/// one, so a longer name names no product: the front-end answers it at once (404, or
/// nothing matches) instead of passing it on. This keeps every request between services
/// small whatever a client sends (a 16 KiB name once could not be forwarded at all, and
/// the front-end took the failure for the catalog being down).
pub const MAX_NAME_BYTES: usize = 256;

/// Whether a product could have this name: at most [`MAX_NAME_BYTES`], and no control
/// or whitespace character (a seed name is one whitespace-free token, and the catalog
/// refuses control characters in it). A name that fails names no product, so it is
/// answered as unknown before anything is forwarded or logged.
pub fn could_be_product_name(name: &str) -> bool {
    name.len() <= MAX_NAME_BYTES && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// A product as `GET /products/{name}` shows it: exactly these three fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductView {
    /// The toy's name, the key of the catalog.
    pub name: String,
    /// Price in the seed's currency unit.
    pub price: f64,
    /// Units in stock.
    pub quantity: u64,
}

/// A product as `GET /products` lists it: the view plus its category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductListItem {
    /// The toy's name.
    pub name: String,
    /// Price in the seed's currency unit.
    pub price: f64,
    /// Units in stock.
    pub quantity: u64,
    /// Category from the seed's optional 5th column; absent when the seed has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// The reply to a successful buy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order's number: unique, from 0, one more per successful order.
    pub order_number: u64,
}

/// An order as `GET /orders/{number}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order's number.
    pub number: u64,
    /// The product bought.
    pub name: String,
    /// Units bought.
    pub quantity: u64,
}

/// A validated buy: what `POST /orders` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyRequest {
    /// The product's name.
    pub name: String,
    /// Units to buy, at least 1.
    pub quantity: u64,
}

impl BuyRequest {
    /// Parses and validates a JSON body. `quantity` must be a JSON integer ≥ 1 that fits
    /// the stock type: `0`, `-1`, `1.5`, `"2"`, `null`, a missing field or a number too
    /// large for u64 are all refused with a message saying so.
    pub fn from_json(body: &[u8]) -> Result<BuyRequest, WireError> {
        let object = json_object(body)?;
        let name = match object.get("name") {
            Some(serde_json::Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(WireError::BadName),
        };
        let quantity = object.get("quantity").ok_or(WireError::MissingQuantity)?;
        Ok(BuyRequest {
            name,
            quantity: quantity_from_json(quantity)?,
        })
    }
}

/// A request body that must be a JSON object.
fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, WireError> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        _ => Err(WireError::NotAnObject),
    }
}

/// Why a body, a path segment, a query or a header was refused: always a 400, with
/// the contract's message as its `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The body is not a JSON object.
    NotAnObject,
    /// `name` is missing, empty or not a string.
    BadName,
    /// `quantity` is missing from a buy.
    MissingQuantity,
    /// A buy's quantity is not an integer ≥ 1 that fits u64.
    BadQuantity,
    /// An order number is not decimal digits that fit u64.
    BadOrderNumber,
    /// An `Idempotency-Key` is not 1 to 255 visible ASCII characters.
    BadIdempotencyKey,
    /// `limit` is not an integer from 1 to [`ListQuery::MAX_LIMIT`].
    BadLimit,
    /// `offset` is not a non-negative integer.
    BadOffset,
    /// An update names a field other than `price` and `quantity`.
    UnknownField(String),
    /// An update's price is not a non-negative number.
    BadPrice,
    /// An update's stock is not a non-negative integer.
    BadStock,
    /// An update changes nothing.
    NoChange,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::NotAnObject => f.write_str("invalid request: body must be a json object"),
            WireError::BadName => f.write_str("invalid request: name must be a non-empty string"),
            WireError::MissingQuantity => f.write_str("invalid request: quantity is missing"),
            WireError::BadQuantity => {
                f.write_str("invalid request: quantity must be a positive integer")
            }
            WireError::BadOrderNumber => {
                f.write_str("invalid order number: must be a non-negative integer")
            }
            WireError::BadIdempotencyKey => {
                f.write_str("invalid idempotency-key: 1 to 255 visible ascii characters")
            }
            WireError::BadLimit => write!(
                f,
                "invalid limit: must be an integer from 1 to {}",
                ListQuery::MAX_LIMIT
            ),
            WireError::BadOffset => f.write_str("invalid offset: must be a non-negative integer"),
            WireError::UnknownField(key) => write!(f, "invalid request: unknown field {key:?}"),
            WireError::BadPrice => {
                f.write_str("invalid request: price must be a non-negative number")
            }
            WireError::BadStock => {
                f.write_str("invalid request: quantity must be a non-negative integer")
            }
            WireError::NoChange => f.write_str("invalid request: give price and/or quantity"),
        }
    }
}

impl std::error::Error for WireError {}

/// Every refusal of `wire` is the client's mistake: 400, with its message.
impl From<WireError> for ApiError {
    fn from(error: WireError) -> Self {
        ApiError::bad_request(error.to_string())
    }
}

/// A quantity that is there and ≥ 1.
pub fn positive_quantity(quantity: Option<u64>) -> Result<u64, WireError> {
    quantity.filter(|&q| q >= 1).ok_or(WireError::BadQuantity)
}

/// A quantity from JSON: an integer ≥ 1 that fits in u64.
pub fn quantity_from_json(value: &serde_json::Value) -> Result<u64, WireError> {
    positive_quantity(value.as_u64())
}

/// A quantity from a path segment (`POST /Tux/2`): decimal digits only, ≥ 1, fits in u64.
pub fn quantity_from_text(text: &str) -> Result<u64, WireError> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    positive_quantity(text.parse().ok().filter(|_| digits))
}

/// An order number from a path segment (`GET /orders/7`): decimal digits only (no sign,
/// no blanks), fitting in u64; anything else is refused with a message saying so.
pub fn order_number_from_text(text: &str) -> Result<u64, WireError> {
    text.parse()
        .ok()
        .filter(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(WireError::BadOrderNumber)
}

/// The catalog's internal buy: idempotent on `buy_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogBuy {
    /// Chosen by the order service; a repeat returns the first outcome.
    pub buy_id: u64,
    /// The product's name.
    pub name: String,
    /// Units, ≥ 1.
    pub quantity: u64,
    /// Every buy id below this is settled in the order log: the catalog may forget them.
    #[serde(default)]
    pub settled_below: u64,
}

/// What the catalog knows of a buy id (`POST /buys/{id}/resolve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuyState {
    /// The stock was taken.
    Applied,
    /// It never took stock and never will.
    Voided,
}

/// The reply to a catalog buy or resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyOutcome {
    /// Applied or voided.
    pub state: BuyState,
}

/// `POST /lookup` on the catalog: many products in one call (the front-end batches the
/// queries that arrive together; see [`crate::peer::batch`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    /// Product names, answered in this order.
    pub names: Vec<String>,
}

/// `POST /buys` on the catalog: many buys in one call, one journal flush for all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogBuys {
    /// Each idempotent on its `buy_id`, answered in this order.
    pub buys: Vec<CatalogBuy>,
}

/// The media type of the catalog's change stream (`GET /changes`): one JSON object a line.
pub const CHANGES_CONTENT_TYPE: &str = "application/x-ndjson";

/// One line of the catalog's change stream (`GET /changes`, see `docs/internal-api.md`).
/// `seq` numbers the catalog's changes: each change line is one above the line before,
/// so a gap means a lost line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChangeLine {
    /// The first line: every change up to `seq` is already visible to readers; `epoch`
    /// (16 hex digits) is new each time the catalog starts, and `seq` may restart with it.
    Hello {
        /// The catalog's change sequence at subscription.
        seq: u64,
        /// This catalog process's random id.
        epoch: String,
    },
    /// A change, sent once it is visible: the new state of every product it changed.
    Change {
        /// One above the line before.
        seq: u64,
        /// Each changed product as `GET /products/{name}` now shows it.
        products: Vec<ProductView>,
    },
    /// Nothing happened: `seq` is the last one sent. Comes whenever nothing else was sent
    /// for a heartbeat period (at most 200 ms).
    Heartbeat {
        /// The last seq sent.
        seq: u64,
    },
}

impl ChangeLine {
    /// The line's seq, whichever kind it is.
    pub fn seq(&self) -> u64 {
        match self {
            ChangeLine::Hello { seq, .. }
            | ChangeLine::Change { seq, .. }
            | ChangeLine::Heartbeat { seq } => *seq,
        }
    }
}

/// One order of `POST /orders/batch` on the order service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The product's name.
    pub name: String,
    /// Units, ≥ 1.
    pub quantity: u64,
    /// The buyer's `Idempotency-Key`, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The header a buyer's idempotency key comes in (lower-case, as headers are looked up).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters. The bound keeps every
/// order's intent record small.
pub fn valid_idempotency_key(key: &str) -> Result<&str, WireError> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(key)
    } else {
        Err(WireError::BadIdempotencyKey)
    }
}

impl Placement {
    /// A buy and its `Idempotency-Key` header, if any, as an order to place (the
    /// front-end's and the order service's `POST /orders` alike).
    pub fn from_buy(buy: BuyRequest, key: Option<&str>) -> Result<Placement, WireError> {
        Ok(Placement {
            name: buy.name,
            quantity: buy.quantity,
            key: key
                .map(valid_idempotency_key)
                .transpose()?
                .map(str::to_string),
        })
    }

    /// What `POST /orders` checks of its body, for an order inside a batch (the key is
    /// the order service's to check).
    pub fn check(&self) -> Result<(), WireError> {
        if self.name.is_empty() {
            return Err(WireError::BadName);
        }
        positive_quantity(Some(self.quantity)).map(drop)
    }

    /// Its share of a batch's size limit ([`crate::peer::PeerLimits::batch_max_bytes`]): the bytes it
    /// takes as JSON, escapes included.
    pub fn batch_bytes(&self) -> usize {
        crate::peer::batch::json_len(self) + 1
    }
}

/// `POST /orders/batch` on the order service: many orders in one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placements {
    /// Answered in this order.
    pub orders: Vec<Placement>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The change stream's three kinds of line, as the front-end parses them.
    #[test]
    fn change_lines_round_trip() {
        let tux = ProductView {
            name: "Tux".into(),
            price: 25.99,
            quantity: 79,
        };
        for (text, line) in [
            (
                r#"{"seq":3,"epoch":"00ff00ff00ff00ff"}"#,
                ChangeLine::Hello {
                    seq: 3,
                    epoch: "00ff00ff00ff00ff".into(),
                },
            ),
            (
                r#"{"seq":4,"products":[{"name":"Tux","price":25.99,"quantity":79}]}"#,
                ChangeLine::Change {
                    seq: 4,
                    products: vec![tux],
                },
            ),
            (r#"{"seq":4}"#, ChangeLine::Heartbeat { seq: 4 }),
        ] {
            assert_eq!(serde_json::to_string(&line).unwrap(), text);
            assert_eq!(serde_json::from_str::<ChangeLine>(text).unwrap(), line);
        }
        assert!(serde_json::from_str::<ChangeLine>(r#"{"epoch":"x"}"#).is_err());
    }

    #[test]
    fn buy_bodies_table() {
        let ok: &[(&str, u64)] = &[
            (r#"{"name":"Tux","quantity":1}"#, 1),
            (
                r#"{"quantity":18446744073709551615,"name":"Tux","extra":true}"#,
                u64::MAX,
            ),
        ];
        for (body, quantity) in ok {
            assert_eq!(
                BuyRequest::from_json(body.as_bytes()).unwrap().quantity,
                *quantity,
                "{body}"
            );
        }
        let bad = [
            r#"{"name":"Tux","quantity":0}"#,
            r#"{"name":"Tux","quantity":-1}"#,
            r#"{"name":"Tux","quantity":1.5}"#,
            r#"{"name":"Tux","quantity":2.0}"#,
            r#"{"name":"Tux","quantity":"2"}"#,
            r#"{"name":"Tux","quantity":null}"#,
            r#"{"name":"Tux","quantity":1e30}"#,
            r#"{"name":"Tux","quantity":18446744073709551616}"#,
            r#"{"name":"Tux"}"#,
            r#"{"name":"","quantity":1}"#,
            r#"{"name":5,"quantity":1}"#,
            r#"{"quantity":1}"#,
            r#"[1]"#,
            r#"{"name":"Tux","quantity":1"#,
            "",
        ];
        for body in bad {
            assert!(BuyRequest::from_json(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn path_quantities_table() {
        for (text, want) in [
            ("1", Some(1)),
            ("007", Some(7)),
            ("0", None),
            ("-1", None),
            ("+1", None),
            ("1.0", None),
            ("abc", None),
            ("", None),
            ("18446744073709551616", None),
        ] {
            assert_eq!(quantity_from_text(text).ok(), want, "{text}");
        }
    }

    /// Issue 11: a placement's share of a batch was its name's length plus 64, but a
    /// control character is six bytes as JSON.
    #[test]
    fn a_placement_counts_its_json_bytes() {
        for name in ["Tux", &"\u{1}".repeat(1000), &"\"".repeat(1000)] {
            let order = Placement {
                name: name.to_string(),
                quantity: 1,
                key: Some("k".into()),
            };
            assert_eq!(
                order.batch_bytes(),
                serde_json::to_vec(&order).unwrap().len() + 1
            );
        }
    }

    #[test]
    fn path_order_numbers_table() {
        for (text, want) in [
            ("0", Some(0)),
            ("007", Some(7)),
            ("18446744073709551615", Some(u64::MAX)),
            ("+0", None),
            ("-0", None),
            (" 1", None),
            ("1e3", None),
            ("", None),
            ("18446744073709551616", None),
        ] {
            assert_eq!(order_number_from_text(text).ok(), want, "{text}");
        }
    }
}

/// Filters of `GET /products`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this category (case-insensitive).
    pub category: Option<String>,
    /// Only names containing this (case-insensitive).
    pub q: Option<String>,
    /// At most this many items (1..=1000, default 100).
    pub limit: usize,
    /// Skip this many first.
    pub offset: usize,
}

impl ListQuery {
    /// Largest page a client may ask for.
    pub const MAX_LIMIT: usize = 1000;

    /// Validates decoded query pairs. Unknown parameters are ignored, as HTTP APIs
    /// customarily do; known ones with bad values are refused.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<ListQuery, WireError> {
        let mut query = ListQuery {
            limit: 100,
            ..ListQuery::default()
        };
        for (key, value) in pairs {
            match key.as_str() {
                "category" => query.category = Some(value.clone()),
                "q" => query.q = Some(value.clone()),
                "limit" => match value.parse::<usize>() {
                    Ok(n)
                        if (1..=Self::MAX_LIMIT).contains(&n)
                            && value.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        query.limit = n
                    }
                    _ => return Err(WireError::BadLimit),
                },
                "offset" => match value.parse::<usize>() {
                    Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) => query.offset = n,
                    _ => return Err(WireError::BadOffset),
                },
                _ => {}
            }
        }
        Ok(query)
    }

    /// Whether no product can match: a filter longer than any name or category can be.
    /// Categories compare ASCII-case-insensitively (same length), names by lower-case
    /// containment: lowering a character never drops it and gives at most two, so a
    /// name of at most [`MAX_NAME_BYTES`] characters lowers to at most twice that many,
    /// and a `q` of more characters than that is contained in none.
    pub fn matches_nothing(&self) -> bool {
        let q_too_long = self
            .q
            .as_ref()
            .is_some_and(|q| q.chars().count() > 2 * MAX_NAME_BYTES);
        let category_too_long = self
            .category
            .as_ref()
            .is_some_and(|c| c.len() > MAX_NAME_BYTES);
        q_too_long || category_too_long
    }

    /// The canonical query string, percent-encoded, for forwarding.
    pub fn to_query_string(&self) -> String {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let mut parts = vec![
            format!("limit={}", self.limit),
            format!("offset={}", self.offset),
        ];
        if let Some(category) = &self.category {
            parts.push(format!(
                "category={}",
                utf8_percent_encode(category, NON_ALPHANUMERIC)
            ));
        }
        if let Some(q) = &self.q {
            parts.push(format!("q={}", utf8_percent_encode(q, NON_ALPHANUMERIC)));
        }
        parts.join("&")
    }
}

/// An admin update (`PUT /products/{name}`): new price and/or stock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProductUpdate {
    /// New price, finite and ≥ 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// New stock, an integer ≥ 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
}

impl ProductUpdate {
    /// Parses and validates: at least one of the two, nothing else, sane values.
    pub fn from_json(body: &[u8]) -> Result<ProductUpdate, WireError> {
        let object = json_object(body)?;
        if let Some(key) = object.keys().find(|k| *k != "price" && *k != "quantity") {
            return Err(WireError::UnknownField(key.clone()));
        }
        let price = match object.get("price") {
            None => None,
            Some(v) => match v.as_f64() {
                // `-0.0 >= 0.0` holds, but a negative zero is no price.
                Some(p) if p.is_finite() && p.is_sign_positive() && v.is_number() => Some(p),
                _ => return Err(WireError::BadPrice),
            },
        };
        let quantity = match object.get("quantity") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or(WireError::BadStock)?),
        };
        if price.is_none() && quantity.is_none() {
            return Err(WireError::NoChange);
        }
        Ok(ProductUpdate { price, quantity })
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_queries_table() {
        let q = ListQuery::from_pairs(&pairs(&[
            ("category", "animal"),
            ("q", "t u"),
            ("limit", "2"),
            ("offset", "1"),
            ("x", "y"),
        ]))
        .unwrap();
        assert_eq!(
            (q.category.as_deref(), q.q.as_deref(), q.limit, q.offset),
            (Some("animal"), Some("t u"), 2, 1)
        );
        assert_eq!(
            q.to_query_string(),
            "limit=2&offset=1&category=animal&q=t%20u"
        );
        for bad in [
            ("limit", "0"),
            ("limit", "-1"),
            ("limit", "abc"),
            ("limit", "1001"),
            ("offset", "-1"),
            ("offset", "1.5"),
            ("offset", "+1"),
        ] {
            assert!(ListQuery::from_pairs(&pairs(&[bad])).is_err(), "{bad:?}");
        }
    }

    /// Found by `cargo fuzz run wire_json`: serde_json's default float parsing may be one
    /// ulp off for long decimals, so a price accepted here came back different once
    /// re-serialized and re-read (as the catalog's log and snapshot do on restart).
    #[test]
    fn prices_parse_exactly_and_round_trip() {
        for text in [
            "1.31333333333333350",
            "1.33133333333323333333333333333305",
            "25.99",
            "0.1",
            "1e-300",
        ] {
            let body = format!(r#"{{"price":{text}}}"#);
            let update = ProductUpdate::from_json(body.as_bytes()).unwrap();
            assert_eq!(update.price, text.parse::<f64>().ok(), "{text}");
            let again = serde_json::to_vec(&update).unwrap();
            assert_eq!(ProductUpdate::from_json(&again), Ok(update), "{text}");
        }
    }

    #[test]
    fn updates_table() {
        assert_eq!(
            ProductUpdate::from_json(br#"{"price":1.5}"#).unwrap(),
            ProductUpdate {
                price: Some(1.5),
                quantity: None
            }
        );
        assert_eq!(
            ProductUpdate::from_json(br#"{"quantity":0}"#).unwrap(),
            ProductUpdate {
                price: None,
                quantity: Some(0)
            }
        );
        for bad in [
            r#"{}"#,
            r#"{"price":-1}"#,
            r#"{"price":-0.0}"#,
            r#"{"price":-0}"#,
            r#"{"price":"1"}"#,
            r#"{"quantity":1.5}"#,
            r#"{"quantity":-2}"#,
            r#"{"qty":1}"#,
            r#"[]"#,
            "x",
        ] {
            assert!(ProductUpdate::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
