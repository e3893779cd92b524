//! Token-endpoint responses the providers parse: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]) % 600;
    let _ = tower_mandate::__fuzz::token_response(status, &data[2..]);
});
