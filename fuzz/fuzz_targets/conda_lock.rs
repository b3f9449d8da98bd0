//! The conda-lock.yml parser (`declared::parse_text`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "declared_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::check("conda-lock.yml", data));
