//! The catalog's HTTP routes.

use super::store::{Catalog, CatalogError, Product};
use crate::http::auth::require_bearer;
use crate::http::{ApiError, Request, Response, Router};
use crate::wire::{
    BuyOutcome, BuyState, CatalogBuy, ListQuery, ProductListItem, ProductUpdate, ProductView,
};
use std::sync::Arc;

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::UnknownProduct => ApiError::not_found("product not found"),
            CatalogError::OutOfStock => ApiError::new(409, "out of stock"),
            CatalogError::Voided => ApiError::new(409, "buy was voided"),
            CatalogError::Storage(e) => {
                eprintln!("catalog: storage failure: {e}");
                ApiError::new(500, "storage failure")
            }
        }
    }
}

fn view(product: &Product) -> ProductView {
    ProductView {
        name: product.name.clone(),
        price: product.price,
        quantity: product.quantity,
    }
}

fn list_item(product: Product) -> ProductListItem {
    ProductListItem {
        name: product.name,
        price: product.price,
        quantity: product.quantity,
        category: product.category,
    }
}

/// The catalog's routes over `catalog`; `admin_token` guards updates.
pub fn router(catalog: Arc<Catalog>, admin_token: Option<String>) -> Router {
    let (c1, c2, c3, c4, c5, c6) = (
        catalog.clone(),
        catalog.clone(),
        catalog.clone(),
        catalog.clone(),
        catalog.clone(),
        catalog,
    );
    Router::new()
        .route("GET", "/health", move |_, _| {
            Ok(Response::data(&serde_json::json!({"status": "ok", "service": "catalog", "products": c1.stock().len()})))
        })
        .route("GET", "/products", move |request: &Request, _| {
            let query = ListQuery::from_pairs(&request.query_pairs()?).map_err(ApiError::bad_request)?;
            let items: Vec<ProductListItem> = c2.list(&query).into_iter().map(list_item).collect();
            Ok(Response::data(&items))
        })
        .route("GET", "/products/{name}", move |_, params| {
            let product = c3.get(params.get(0)).ok_or(CatalogError::UnknownProduct)?;
            Ok(Response::data(&view(&product)))
        })
        .route("PUT", "/products/{name}", move |request: &Request, params| {
            require_bearer(request, admin_token.as_deref())?;
            let update = ProductUpdate::from_json(&request.body).map_err(ApiError::bad_request)?;
            Ok(Response::data(&view(&c4.update(params.get(0), update)?)))
        })
        .route("POST", "/buy", move |request: &Request, _| {
            let buy: CatalogBuy = serde_json::from_slice(&request.body)
                .ok()
                .filter(|b: &CatalogBuy| b.quantity >= 1)
                .ok_or_else(|| ApiError::bad_request("invalid request: expected buy_id, name and quantity >= 1"))?;
            c5.buy(&buy)?;
            Ok(Response::data(&BuyOutcome { state: BuyState::Applied }))
        })
        .route("POST", "/buys/{id}/resolve", move |_, params| {
            let id = params.get(0).parse::<u64>().map_err(|_| ApiError::bad_request("invalid buy id"))?;
            Ok(Response::data(&BuyOutcome { state: c6.resolve(id)? }))
        })
}
