//! The JSON shapes that cross the wire, shared by every service and the client.
//!
//! Services meet only over HTTP; these types are the one place where the shape
//! of a body is written down, so a change to a field shows up everywhere it is used.

use serde::{Deserialize, Serialize};

/// Success envelope: every 2xx body is `{"data": ...}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Data<T> {
    /// The payload.
    pub data: T,
}

/// Failure envelope: `{"error": {"code": 404, "message": "product not found"}}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The code and message.
    pub error: ErrorBody,
}

/// The inside of the failure envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The HTTP status, repeated so that a body read alone still says what happened.
    pub code: u16,
    /// A lower-case sentence for people.
    pub message: String,
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
