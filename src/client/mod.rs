//! The load-generating client (being written).
