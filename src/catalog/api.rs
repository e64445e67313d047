//! The catalog's HTTP routes.

use super::push::SubscribeError;
use super::store::{Catalog, CatalogError, Product};
use crate::http::auth::Access;
use crate::http::envelope::{ErrorBody, Item};
use crate::http::{ApiError, Handoff, Request, Response, Router};
use crate::peer::batch;
use crate::wire::{
    positive_quantity, BuyOutcome, BuyState, CatalogBuy, CatalogBuys, ListQuery, Lookup,
    ProductListItem, ProductUpdate, ProductView, CHANGES_CONTENT_TYPE,
};
use std::sync::Arc;

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::UnknownProduct => ApiError::not_found("product not found"),
            CatalogError::OutOfStock => ApiError::conflict("out of stock"),
            CatalogError::Voided => ApiError::conflict("buy was voided"),
            CatalogError::Storage(e) => {
                crate::logging::warn(format!("catalog: storage failure: {e}"));
                storage_unavailable()
            }
        }
    }
}

impl From<SubscribeError> for ApiError {
    fn from(error: SubscribeError) -> Self {
        match error {
            SubscribeError::Full => ApiError::unavailable("too many subscribers"),
            SubscribeError::Closed => ApiError::unavailable("the catalog is stopping"),
        }
    }
}

/// The change was not made: it could not be made durable (contract: storage failures).
fn storage_unavailable() -> ApiError {
    ApiError::unavailable("storage unavailable")
}

fn list_item(product: Product) -> ProductListItem {
    ProductListItem {
        name: product.name,
        price: product.price,
        quantity: product.quantity,
        category: product.category,
    }
}

fn valid(buy: &CatalogBuy) -> Result<(), ApiError> {
    positive_quantity(Some(buy.quantity))?;
    Ok(())
}

fn item<T>(result: Result<T, ApiError>) -> Item<T> {
    Item::new(result.map_err(ErrorBody::from))
}

/// The catalog's routes over `catalog`: `/health` is public, updates are for an admin
/// with `admin_token` (or a service), everything else for the other services only.
pub fn router(catalog: Arc<Catalog>, admin_token: Option<String>) -> Router {
    Router::with_state(catalog)
        .route_for(Access::Public, "GET", "/health", |catalog: &Catalog, _, _| {
            // 503 while changes cannot be made durable; the probe notices when they can.
            if !catalog.writable() {
                return Err(storage_unavailable());
            }
            Ok(Response::data(&serde_json::json!({"status": "ok", "service": "catalog", "products": catalog.stock().len()})))
        })
        .route("GET", "/products", |catalog: &Catalog, request: &Request, _| {
            let query = ListQuery::from_pairs(&request.query_pairs()?)?;
            let items: Vec<ProductListItem> = catalog.list(&query).into_iter().map(list_item).collect();
            Ok(Response::data(&items))
        })
        .route("GET", "/products/{name}", |catalog: &Catalog, _, params| {
            let product = catalog.get(params.get("name")).ok_or(CatalogError::UnknownProduct)?;
            Ok(Response::data(&product.view()))
        })
        .route_for(Access::AdminOrService(admin_token), "PUT", "/products/{name}", |catalog: &Catalog, request: &Request, params| {
            let update = ProductUpdate::from_json(&request.body)?;
            Ok(Response::data(&catalog.update(params.get("name"), update)?.view()))
        })
        .route("POST", "/buy", |catalog: &Catalog, request: &Request, _| {
            let buy: CatalogBuy = serde_json::from_slice(&request.body)
                .ok()
                .filter(|b: &CatalogBuy| b.quantity >= 1)
                .ok_or_else(|| ApiError::bad_request("invalid request: expected buy_id, name and quantity >= 1"))?;
            catalog.buy(&buy)?;
            Ok(Response::data(&BuyOutcome { state: BuyState::Applied }))
        })
        .route("POST", "/lookup", |catalog: &Catalog, request: &Request, _| {
            let lookup: Lookup = request.json_body("{\"names\": [...]}")?;
            let found = catalog.get_many(&lookup.names);
            let items: Vec<Item<ProductView>> = found
                .iter()
                .map(|p| item(p.as_ref().map(Product::view).ok_or(CatalogError::UnknownProduct.into())))
                .collect();
            Ok(Response::data(&items))
        })
        .route("POST", "/buys", |catalog: &Catalog, request: &Request, _| {
            let batch: CatalogBuys = request.json_body("{\"buys\": [{buy_id, name, quantity}, ...]}")?;
            let outcomes = batch::run_checked(batch.buys, valid, |buys| {
                catalog.buy_many(&buys).into_iter().map(|o| o.map_err(ApiError::from)).collect()
            });
            let items: Vec<Item<BuyOutcome>> = outcomes
                .into_iter()
                .map(|outcome| item(outcome.map(|()| BuyOutcome { state: BuyState::Applied })))
                .collect();
            Ok(Response::data(&items))
        })
        .route("POST", "/buys/{id}/resolve", |catalog: &Catalog, _, params| {
            let id = params.get("id").parse::<u64>().map_err(|_| ApiError::bad_request("invalid buy id"))?;
            Ok(Response::data(&BuyOutcome { state: catalog.resolve(id)? }))
        })
        .handoff("GET", "/changes", |catalog: &Catalog, _, _| {
            let subscription = catalog.changes().subscribe()?;
            Ok(Handoff::new(CHANGES_CONTENT_TYPE, move |socket| subscription.start(socket)))
        })
        .into_router()
}
