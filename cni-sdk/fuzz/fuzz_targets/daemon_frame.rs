//! The daemon's wire format from both ends: arbitrary bytes read as a frame (header checks,
//! length cap, truncation), then decoded as a request (what the daemon reads from a shim) and
//! as a response (what a shim reads from the daemon). Never a panic, never a read past the
//! announced length or the cap.
#![no_main]

use cni_sdk::daemon::{HEADER_LEN, WireRequest, WireResponse, decode_header, read_frame};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if let Some(h) = data.get(..HEADER_LEN) {
        let header: [u8; HEADER_LEN] = h.try_into().expect("header length");
        if let Ok(len) = decode_header(&header, MAX) {
            assert!(len <= MAX);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut reader: &[u8] = data;
    if let Ok(payload) = rt.block_on(read_frame(&mut reader, MAX)) {
        assert!(payload.len() <= MAX && payload.len() + HEADER_LEN <= data.len());
        if let Ok(req) = serde_json::from_slice::<WireRequest>(&payload) {
            let _ = req.env.len();
        }
        if let Ok(resp) = serde_json::from_slice::<WireResponse>(&payload) {
            let _ = (resp.stdout_bytes(), resp.stderr_bytes());
            for v in ["0.1.0", "0.4.0", "1.0.0", "1.1.0", "9.9.9"] {
                let _ = resp.outcome(v);
            }
        }
    }
    // The payload alone, as the daemon decodes a request body.
    let _ = serde_json::from_slice::<WireRequest>(data);
});
