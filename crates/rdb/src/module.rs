//! Module type ids (RDB-FORMAT.md §9): a 9-character name in 6-bit characters and a 10-bit
//! encoding version packed into 64 bits.

use crate::event::ModuleType;

const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Decodes a module type id.
pub fn module_type(id: u64) -> ModuleType {
    let mut name = String::with_capacity(9);
    for i in 0..9 {
        let shift = 10 + 6 * (8 - i);
        let c = ((id >> shift) & 63) as usize;
        name.push(CHARSET[c] as char);
    }
    ModuleType {
        id,
        name,
        encver: (id & 1023) as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids() {
        let m = module_type(0x45e25238df912c03);
        assert_eq!((m.name.as_str(), m.encver), ("ReJSON-RL", 3));
        let m = module_type(0x85e965a2dca97800);
        assert_eq!((m.name.as_str(), m.encver), ("hellotype", 0));
    }
}
