//! Committed orders by number, kept compact: the service answers `GET /orders/{n}` for
//! every order it ever took, so this table is the one thing in it that grows with use.

use std::collections::HashMap;
use std::sync::Arc;

/// Orders a chunk holds. Chunks are allocated whole, so the table never copies itself
/// to grow (a `Vec` that doubles would, briefly holding the old and the new copy).
const CHUNK: usize = 1 << 16;
/// The name id of a number whose commit never became durable (a crash took it).
const GAP: u32 = u32::MAX;

/// 12 bytes an order: a product id and a quantity, in chunks of [`CHUNK`].
#[derive(Default)]
pub struct OrderTable {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
    chunks: Vec<Chunk>,
    len: u64,
}

struct Chunk {
    name_ids: Vec<u32>,
    quantities: Vec<u64>,
}

impl OrderTable {
    /// Numbers taken so far: the next order's number.
    pub fn taken(&self) -> u64 {
        self.len
    }

    /// Takes the next number, not yet readable (a gap until [`place`](Self::place)).
    pub fn reserve(&mut self) -> u64 {
        let number = self.len;
        if number as usize % CHUNK == 0 {
            self.chunks.push(Chunk {
                name_ids: Vec::with_capacity(CHUNK),
                quantities: Vec::with_capacity(CHUNK),
            });
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.name_ids.push(GAP);
            chunk.quantities.push(0);
        }
        self.len += 1;
        number
    }

    /// Makes order `number` readable (reserving the numbers up to it if needed).
    pub fn place(&mut self, number: u64, name: &str, quantity: u64) {
        while self.len <= number {
            self.reserve();
        }
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                let shared: Arc<str> = Arc::from(name);
                self.names.push(Arc::clone(&shared));
                self.ids.insert(shared, id);
                id
            }
        };
        let (chunk, index) = Self::locate(number);
        self.chunks[chunk].name_ids[index] = id;
        self.chunks[chunk].quantities[index] = quantity;
    }

    /// Order `number`: its product and quantity, if it is readable.
    pub fn get(&self, number: u64) -> Option<(&Arc<str>, u64)> {
        if number >= self.len {
            return None;
        }
        let (chunk, index) = Self::locate(number);
        let chunk = &self.chunks[chunk];
        let id = chunk.name_ids[index];
        (id != GAP).then(|| (&self.names[id as usize], chunk.quantities[index]))
    }

    fn locate(number: u64) -> (usize, usize) {
        let number = number as usize;
        (number / CHUNK, number % CHUNK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_across_chunks_with_gaps() {
        let mut table = OrderTable::default();
        let tux: Arc<str> = Arc::from("Tux");
        let whale: Arc<str> = Arc::from("Whale");
        assert_eq!(table.reserve(), 0);
        table.place(0, "Tux", 3);
        assert_eq!(table.reserve(), 1); // never placed: a gap
        let far = CHUNK as u64 + 5;
        table.place(far, "Whale", 7);
        assert_eq!(table.taken(), far + 1);
        assert_eq!(table.get(0), Some((&tux, 3)));
        assert_eq!(table.get(1), None);
        assert_eq!(table.get(CHUNK as u64), None);
        assert_eq!(table.get(far), Some((&whale, 7)));
        assert_eq!(table.get(far + 1), None);
        assert_eq!(table.reserve(), far + 1);
        assert_eq!(table.chunks.len(), 2);
    }
}
