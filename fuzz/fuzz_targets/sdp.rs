#![no_main]
use control::sdp::Sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(sdp) = Sdp::parse(text) {
            // line-preserving: emitting and parsing again is stable
            let again = Sdp::parse(&sdp.to_text()).unwrap();
            assert_eq!(again.to_text(), sdp.to_text());
            for i in 0..sdp.media.len() {
                let _ = sdp.effective_connection(i);
                let _ = sdp.direction(i);
                let _ = sdp.media[i].rtcp_port();
            }
        }
    }
});
