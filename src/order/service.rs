//! Placing an order: the buy protocol between the order log and the catalog.

use super::log::{Begin, OrderLog, Outcome, Refusal};
use crate::http::backend::Backend;
use crate::http::ApiError;
use crate::wire::{BuyOutcome, BuyState, CatalogBuy, CatalogBuys, Placement};

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

    /// Places orders: their intents (one fsync), their catalog buys (one call), their
    /// commits (one fsync). One result per order, in order: the order number, or why not.
    pub fn place_many(&self, orders: &[Placement], request_id: &str) -> Vec<Result<u64, ApiError>> {
        let mut results = Vec::with_capacity(orders.len());
        let mut started = Vec::new();
        let mut last = None;
        for (index, order) in orders.iter().enumerate() {
            results.push(
                match self
                    .log
                    .begin(&order.name, order.quantity, order.key.as_deref())
                {
                    Begin::Replay(Outcome::Placed(number)) => Ok(number),
                    Begin::Replay(Outcome::Refused(refusal)) => {
                        Err(ApiError::new(refusal.status, refusal.message))
                    }
                    Begin::InProgress => Err(ApiError::new(
                        409,
                        "a request with this idempotency key is still in progress",
                    )),
                    Begin::Started(buy_id, ticket) => {
                        started.push((index, buy_id));
                        last = Some(ticket);
                        Err(ApiError::new(500, "buy not settled"))
                    }
                },
            );
        }
        let Some(ticket) = last else {
            return results;
        };
        if let Err(e) = self.log.wait(ticket) {
            let error = storage_failure(e);
            for &(index, buy_id) in &started {
                self.log.release(buy_id);
                results[index] = Err(error.clone());
            }
            return results;
        }
        let settled_below = self.log.settled_below();
        let batch = CatalogBuys {
            buys: started
                .iter()
                .map(|&(index, buy_id)| CatalogBuy {
                    buy_id,
                    name: orders[index].name.clone(),
                    quantity: orders[index].quantity,
                    settled_below,
                })
                .collect(),
        };
        let outcomes =
            self.catalog
                .send_batch::<BuyOutcome>("/buys", &batch, started.len(), request_id, true);
        let mut applied = Vec::with_capacity(started.len());
        // Once the catalog fails to resolve one buy, the rest go straight to the resolver.
        let mut reachable = true;
        for (position, &(index, buy_id)) in started.iter().enumerate() {
            let outcome = match &outcomes {
                Ok(items) => items[position].clone(),
                Err(error) => Err(error.clone()),
            };
            match outcome {
                Ok(_) => applied.push((index, buy_id)),
                Err(refusal) if outcomes.is_ok() && (400..500).contains(&refusal.status) => {
                    self.log.abort(
                        buy_id,
                        Some(Refusal {
                            status: refusal.status,
                            message: refusal.message.to_string(),
                        }),
                    );
                    results[index] = Err(refusal);
                }
                // The catalog may or may not have applied it: ask.
                Err(error) => {
                    let state = if reachable {
                        self.resolve(buy_id)
                    } else {
                        None
                    };
                    reachable &= state.is_some();
                    match state {
                        Some(BuyState::Applied) => applied.push((index, buy_id)),
                        Some(BuyState::Voided) => {
                            self.log.abort(buy_id, None);
                            results[index] = Err(error);
                        }
                        None => {
                            self.log.release(buy_id);
                            results[index] = Err(error);
                        }
                    }
                }
            }
        }
        let buys: Vec<u64> = applied.iter().map(|&(_, buy_id)| buy_id).collect();
        match self.log.commit_many(&buys) {
            Ok(numbers) => {
                for (&(index, _), number) in applied.iter().zip(numbers) {
                    results[index] =
                        number.ok_or_else(|| ApiError::new(500, "buy was settled twice"));
                }
            }
            Err(e) => {
                let error = storage_failure(e);
                for &(index, _) in &applied {
                    results[index] = Err(error.clone());
                }
            }
        }
        results
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
                        crate::logging::info(format!(
                            "order: recovered buy {buy_id} as order {number}"
                        ));
                    }
                }
                Some(BuyState::Voided) => self.log.abort(buy_id, None),
                None => remaining += 1,
            }
        }
        remaining
    }
}

/// A failed read or write of the order files: said on stderr, a 500 to the client.
pub(crate) fn storage_failure(error: std::io::Error) -> ApiError {
    crate::logging::warn(format!("order: storage failure: {error}"));
    ApiError::new(500, "storage failure")
}
