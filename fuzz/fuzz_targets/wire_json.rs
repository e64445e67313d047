//! Arbitrary bytes as the JSON bodies and path/query texts the services validate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toystore::wire::{quantity_from_text, BuyRequest, ListQuery, ProductUpdate};

fuzz_target!(|data: &[u8]| {
    if let Ok(buy) = BuyRequest::from_json(data) {
        assert!(buy.quantity >= 1);
        assert!(!buy.name.is_empty());
        // What we accept, re-serialized, is accepted as the same buy.
        let again = BuyRequest::from_json(&serde_json::to_vec(&buy).unwrap());
        assert_eq!(again, Ok(buy));
    }
    if let Ok(update) = ProductUpdate::from_json(data) {
        assert!(update.price.is_some() || update.quantity.is_some());
        if let Some(price) = update.price {
            assert!(price.is_finite() && price >= 0.0);
        }
        let again = ProductUpdate::from_json(&serde_json::to_vec(&update).unwrap());
        assert_eq!(again, Ok(update));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(quantity) = quantity_from_text(text) {
        assert!(quantity >= 1);
        assert_eq!(quantity.to_string(), text.trim_start_matches('0'));
    }
    // The text as undecoded query pairs.
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key.to_string(), value.to_string())
        })
        .collect();
    if let Ok(filter) = ListQuery::from_pairs(&pairs) {
        assert!((1..=ListQuery::MAX_LIMIT).contains(&filter.limit));
    }
});
