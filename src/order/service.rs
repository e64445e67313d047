//! Placing an order: the buy protocol between the order log and the catalog.

use super::log::{Begin, OrderLog, Outcome, Refusal};
use crate::http::backend::{Backend, Reply};
use crate::http::ApiError;
use crate::wire::{BuyOutcome, BuyState, CatalogBuy, ErrorEnvelope};

/// The order service's state: its log, and the catalog it buys from.
pub struct OrderService {
    /// The durable log.
    pub log: OrderLog,
    /// The catalog, which also knows whether it answered last time.
    pub catalog: Backend,
}

impl OrderService {
    /// A service over `log` that buys from `catalog`.
    pub fn new(log: OrderLog, catalog: Backend) -> Self {
        OrderService { log, catalog }
    }

    /// Places an order: intent, catalog buy, commit. Returns the order number.
    pub fn place(
        &self,
        name: &str,
        quantity: u64,
        key: Option<&str>,
        request_id: &str,
    ) -> Result<u64, ApiError> {
        let buy_id = match self.log.begin(name, quantity, key) {
            Begin::Replay(Outcome::Placed(number)) => return Ok(number),
            Begin::Replay(Outcome::Refused(refusal)) => {
                return Err(ApiError::new(refusal.status, refusal.message))
            }
            Begin::InProgress => {
                return Err(ApiError::new(
                    409,
                    "a request with this idempotency key is still in progress",
                ))
            }
            Begin::Started(buy_id, ticket) => {
                self.log.wait(ticket).map_err(storage_failure)?;
                buy_id
            }
        };
        let buy = CatalogBuy {
            buy_id,
            name: name.to_string(),
            quantity,
            settled_below: self.log.settled_below(),
        };
        let body = serde_json::to_vec(&buy).unwrap_or_default();
        match self
            .catalog
            .send_json("POST", "/buy", &body, &[("X-Request-Id", request_id)], true)
        {
            Ok(Reply { status: 200, .. }) => self.commit(buy_id),
            Ok(Reply { status, body }) if (400..500).contains(&status) => {
                let message = serde_json::from_slice::<ErrorEnvelope>(&body)
                    .map(|e| e.error.message)
                    .unwrap_or_else(|_| "catalog refused the buy".into());
                self.log.abort(
                    buy_id,
                    Some(Refusal {
                        status,
                        message: message.clone(),
                    }),
                );
                Err(ApiError::new(status, message))
            }
            Ok(Reply { status, .. }) => self.settle_unknown(
                buy_id,
                ApiError::new(502, format!("catalog service failed ({status})")),
            ),
            Err(error) => self.settle_unknown(buy_id, error.into()),
        }
    }

    /// The catalog may or may not have applied the buy: ask it to resolve the id now;
    /// if it cannot answer either, leave the buy to the resolver and report `error`.
    fn settle_unknown(&self, buy_id: u64, error: ApiError) -> Result<u64, ApiError> {
        match self.resolve(buy_id) {
            Some(BuyState::Applied) => self.commit(buy_id),
            Some(BuyState::Voided) => {
                self.log.abort(buy_id, None);
                Err(error)
            }
            None => {
                self.log.release(buy_id);
                Err(error)
            }
        }
    }

    fn commit(&self, buy_id: u64) -> Result<u64, ApiError> {
        match self.log.commit(buy_id) {
            Ok(Some(number)) => Ok(number),
            Ok(None) => Err(ApiError::new(500, "buy was settled twice")),
            Err(e) => Err(storage_failure(e)),
        }
    }

    /// Asks the catalog for the outcome of a buy id (voiding it if it never applied).
    fn resolve(&self, buy_id: u64) -> Option<BuyState> {
        let reply = self
            .catalog
            .send_json("POST", &format!("/buys/{buy_id}/resolve"), b"", &[], true)
            .ok()?;
        let outcome: crate::wire::Data<BuyOutcome> = serde_json::from_slice(&reply.body).ok()?;
        Some(outcome.data.state)
    }

    /// Settles every open buy no handler is working on. Returns how many remain.
    pub fn resolve_open(&self) -> usize {
        let open = self.log.unresolved();
        let mut remaining = 0;
        for buy_id in open {
            match self.resolve(buy_id) {
                Some(BuyState::Applied) => {
                    if let Ok(Some(number)) = self.log.commit(buy_id) {
                        println!("order: recovered buy {buy_id} as order {number}");
                    }
                }
                Some(BuyState::Voided) => self.log.abort(buy_id, None),
                None => remaining += 1,
            }
        }
        remaining
    }
}

fn storage_failure(error: std::io::Error) -> ApiError {
    eprintln!("order: storage failure: {error}");
    ApiError::new(500, "storage failure")
}
