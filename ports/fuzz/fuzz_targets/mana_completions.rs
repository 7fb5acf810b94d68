//! Fuzz the MANA driver's completion path: arbitrary CQE bytes (valid or
//! arbitrary owner bits) in live RX and TX completion queues must never
//! panic, read or write out of bounds, or lose or double-free a buffer.
//! See `ports::mana::fuzzing::completions` for the input format.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ports::mana::fuzzing::completions(data);
});
