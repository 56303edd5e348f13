//! Fuzz target: the SMTP reply parser must never panic, must consume only bytes it was given,
//! and must parse a complete reply the same whether or not more bytes follow it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollcall_smtp_proto::{Capabilities, parse_reply};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Parse replies back to back, like a pipelined read buffer.
    while let Ok(Some((reply, used))) = parse_reply(rest) {
        assert!(used > 0 && used <= rest.len());
        assert_eq!(parse_reply(&rest[..used]), Ok(Some((reply.clone(), used))));
        let _ = reply.text();
        let _ = Capabilities::from_ehlo(&reply);
        rest = &rest[used..];
    }
});
