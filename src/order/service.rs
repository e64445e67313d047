//! Placing an order: the buy protocol between the order log and the catalog (see
//! [`super::log`] for the records and why an open buy is always aborted).

use super::log::{Begin, OrderLog, Outcome, Refusal};
use crate::failpoint::{self, Point};
use crate::http::backend::Backend;
use crate::http::ApiError;
use crate::wire::{BuyOutcome, CatalogBuy, CatalogBuys, Placement};
use std::time::Instant;

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
    /// aborts and commits (one fsync each, when there are any). One result per order,
    /// in order: the order number, or why not.
    pub fn place_many(&self, orders: &[Placement], request_id: &str) -> Vec<Result<u64, ApiError>> {
        let mut results = Vec::with_capacity(orders.len());
        let mut started = Vec::new();
        let mut last = None;
        for (index, order) in orders.iter().enumerate() {
            let begun = failpoint::fail(Point::OrderBeforeIntent).map(|()| {
                self.log
                    .begin(&order.name, order.quantity, order.key.as_deref())
            });
            results.push(match begun {
                Err(e) => Err(storage_failure(e)),
                Ok(Begin::Replay(Outcome::Placed(number))) => Ok(number),
                Ok(Begin::Replay(Outcome::Refused(refusal))) => {
                    Err(ApiError::new(refusal.status, refusal.message))
                }
                Ok(Begin::InProgress) => Err(ApiError::new(
                    409,
                    "a request with this idempotency key is still in progress",
                )),
                Ok(Begin::KeyReused) => Err(ApiError::new(
                    422,
                    "idempotency key reused with a different request",
                )),
                Ok(Begin::Started(buy_id, ticket)) => {
                    started.push((index, buy_id));
                    last = Some(ticket);
                    Err(ApiError::new(500, "buy not settled"))
                }
            });
        }
        let Some(ticket) = last else {
            return results;
        };
        failpoint::crash(Point::OrderIntentAppended);
        if let Err(e) = self.log.wait(ticket) {
            let error = storage_failure(e);
            let buys: Vec<u64> = started.iter().map(|&(_, buy_id)| buy_id).collect();
            self.log.forget(&buys);
            for &(index, _) in &started {
                results[index] = Err(error.clone());
            }
            return results;
        }
        failpoint::crash(Point::OrderAfterIntentDurable);
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
        let deadline = self.catalog.deadline(Instant::now());
        let outcomes = self.catalog.send_batch::<BuyOutcome>(
            "/buys",
            &batch,
            started.len(),
            request_id,
            true,
            deadline,
        );
        failpoint::crash(Point::OrderAfterCatalog);
        let mut applied = Vec::with_capacity(started.len());
        let mut aborted = Vec::new();
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
                    let kept = Refusal::new(refusal.status, &refusal.message);
                    aborted.push((buy_id, Some(kept)));
                    results[index] = Err(refusal);
                }
                // The catalog may or may not have applied it: void it there (giving the
                // stock back if it did), then abort it here.
                Err(error) => {
                    reachable = reachable && self.resolve(buy_id);
                    if reachable {
                        aborted.push((buy_id, None));
                    } else {
                        self.log.release(buy_id);
                    }
                    results[index] = Err(error);
                }
            }
        }
        if let Err(e) = self.log.abort_many(&aborted) {
            // The refusals stand (nothing was bought); the resolver settles the buys.
            storage_failure(e);
        }
        if applied.is_empty() {
            return results;
        }
        let buys: Vec<u64> = applied.iter().map(|&(_, buy_id)| buy_id).collect();
        match self.log.commit_many(&buys) {
            Ok(numbers) => {
                failpoint::crash(Point::OrderAfterCommitDurable);
                for (&(index, _), number) in applied.iter().zip(numbers) {
                    results[index] =
                        number.ok_or_else(|| ApiError::new(500, "buy was settled twice"));
                }
            }
            Err(e) => {
                // Not committed: the buys are open, and the resolver gives their stock back.
                let error = storage_failure(e);
                for &(index, _) in &applied {
                    results[index] = Err(error.clone());
                }
            }
        }
        results
    }

    /// Asks the catalog to settle a buy id as aborted: it gives the stock back if the
    /// buy applied and voids the id for good. Whether it answered.
    fn resolve(&self, buy_id: u64) -> bool {
        failpoint::crash(Point::OrderBeforeResolve);
        let answered = self
            .catalog
            .send_json("POST", &format!("/buys/{buy_id}/resolve"), b"", &[], true)
            .is_ok_and(|reply| {
                reply.status == 200
                    && serde_json::from_slice::<crate::wire::Data<BuyOutcome>>(&reply.body).is_ok()
            });
        failpoint::crash(Point::OrderAfterResolve);
        answered
    }

    /// Aborts every open buy no handler is working on. Returns how many remain.
    pub fn resolve_open(&self) -> usize {
        let open = self.log.unresolved();
        let resolved: Vec<(u64, Option<Refusal>)> = open
            .iter()
            .take_while(|&&buy_id| self.resolve(buy_id))
            .map(|&buy_id| (buy_id, None))
            .collect();
        if let Err(e) = self.log.abort_many(&resolved) {
            storage_failure(e);
            return open.len();
        }
        open.len() - resolved.len()
    }
}

/// A failed read or write of the order files: said on stderr, a 503 to the client (the
/// contract's answer to a change that could not be made durable).
pub(crate) fn storage_failure(error: std::io::Error) -> ApiError {
    crate::logging::warn(format!("order: storage failure: {error}"));
    ApiError::new(503, "storage unavailable")
}
